/**
 * The kubectl verbs the rollout scripts use: get, get --raw (etcd health), wait, cordon,
 * uncordon, drain, annotate, label, patch (merge).
 */
import * as YAML from "yaml";
import { loadCue, loadState } from "./host";
import { jsonpath } from "./jsonpath";
import { nodeNames, nodeObject } from "./kubectlArgs";
import { allNodes, getNode, liveness, nodeFile, saveNode } from "./nodes";
import { BUDGET_GUARDED_POD, rescheduleOnto } from "./pods";
import type { DoubleHostConfig, NodeRecord } from "./types";
import { age, complain, fail, out, parseDuration, readJson, say, sleepSync, unsupported, withLock } from "./util";

export function kubectlGet(host: DoubleHostConfig, rest: string[], flags: Map<string, string>): number {
    const raw = flags.get("--raw");
    if (raw !== undefined) return kubectlRaw(host, raw);
    const first = rest[0] ?? "";
    if (!["node", "nodes", "no"].includes(first) && !first.startsWith("node/") && !first.startsWith("nodes/")) {
        unsupported(`kubectl get ${JSON.stringify(first)} (only nodes and --raw health paths are simulated)`);
    }
    const names = nodeNames(rest, false);
    const single = names.length === 1;
    // kubectl v1.33 --ignore-not-found: a named node that does not exist is left out instead of
    // failing; when nothing is left, nothing is printed (whatever -o says) and the exit is 0.
    const ignoreNotFound = flags.get("--ignore-not-found") === "true";
    const recs =
        names.length > 0
            ? names.flatMap((n) => (ignoreNotFound ? (readJson<NodeRecord | null>(nodeFile(host, n), null) ?? []) : [getNode(host, n)]))
            : allNodes(host);
    if (ignoreNotFound && recs.length === 0) return 0;
    const objects = recs.map(nodeObject);
    const output = flags.get("-o") ?? "";
    const listObj = { apiVersion: "v1", kind: "List", items: objects, metadata: { resourceVersion: "" } };
    const target: unknown = single ? objects[0] : listObj;
    if (output === "json") {
        say(JSON.stringify(target, null, 4));
    } else if (output === "yaml") {
        say(YAML.stringify(target).trimEnd());
    } else if (output === "name") {
        for (const o of recs) say(`node/${o.name}`);
    } else if (output.startsWith("jsonpath=") || output.startsWith("jsonpath-as-json=")) {
        const template = output.slice(output.indexOf("=") + 1);
        const text = jsonpath(template, target);
        if (text !== "") out.push(text);
    } else if (output === "" || output === "wide") {
        const rows = recs.map((r, idx) => {
            const o = objects[idx] as { status: { conditions: { status: string }[] } };
            const ready = o.status.conditions[0]?.status === "True" ? "Ready" : "NotReady";
            const roles = Object.keys(r.labels)
                .filter((l) => l.startsWith("node-role.kubernetes.io/"))
                .map((l) => l.slice("node-role.kubernetes.io/".length))
                .sort();
            const base = [r.name, ready + (r.unschedulable ? ",SchedulingDisabled" : ""), roles.join(",") || "<none>", age(r.registeredAt), r.kubeletVersion];
            if (output === "wide")
                base.push(r.internalIPs[0] ?? "<none>", r.externalIPs[0] ?? "<none>", "k3s-test-double", "<unknown>", "containerd://k3s-test-double");
            return base;
        });
        const header = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"];
        if (output === "wide") header.push("INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME");
        const table = flags.get("--no-headers") === "true" ? rows : [header, ...rows];
        if (rows.length === 0) {
            complain("No resources found");
            return 0;
        }
        const widths = header.map((_, c) => Math.max(...table.map((r) => (r[c] ?? "").length)));
        for (const r of table) say(r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd((widths[c] ?? 0) + 3))).join(""));
    } else {
        unsupported(`kubectl output format ${JSON.stringify(output)}`);
    }
    return 0;
}

export function etcdHealth(host: DoubleHostConfig): { ok: boolean; detail: string } {
    const nodes = allNodes(host);
    const self = nodes.find((n) => n.hostName === host.hostName && n.role === "server" && n.name === loadState(host).nodeName);
    if (!self) return { ok: false, detail: "this server is not registered" };
    const selfLive = liveness(self);
    if (!self.etcd) return selfLive.status === "active" ? { ok: true, detail: "no embedded etcd (sqlite)" } : { ok: false, detail: "not running" };
    const members = nodes.filter((n) => n.etcd);
    const up = members.filter((m) => liveness(m).etcdUp);
    const quorum = Math.floor(members.length / 2) + 1;
    if (!selfLive.etcdUp) return { ok: false, detail: `local member ${self.name} not healthy (${selfLive.reason})` };
    if (up.length < quorum) return { ok: false, detail: `${up.length}/${members.length} members up, quorum ${quorum}` };
    return { ok: true, detail: `${up.length}/${members.length} members up` };
}

export function kubectlRaw(host: DoubleHostConfig, rawPath: string): number {
    const [p = "", query = ""] = rawPath.split("?");
    const verbose = query.split("&").includes("verbose");
    const paths = ["/healthz", "/livez", "/readyz"];
    const base = paths.find((x) => p === x || p === `${x}/etcd`);
    if (base === undefined) fail(1, "Error from server (NotFound): the server could not find the requested resource");
    const h = etcdHealth(host);
    if (!h.ok) {
        fail(
            1,
            `Error from server (InternalServerError): an error on the server ("[-]etcd failed: reason withheld\\n${p.slice(1).split("/")[0] ?? ""} check failed") has prevented the request from succeeding (k3s-test-double: ${h.detail})`,
        );
    }
    if (verbose) {
        say("[+]ping ok");
        say("[+]etcd ok");
        say(`${p.slice(1)} check passed`);
    } else out.push("ok");
    return 0;
}

export function kubectlWait(host: DoubleHostConfig, rest: string[], flags: Map<string, string>): number {
    const forSpec = flags.get("--for") ?? "";
    const m = /^condition=([A-Za-z]+)(?:=(true|false|True|False))?$/.exec(forSpec);
    if (!m || m[1] !== "Ready") unsupported(`kubectl wait --for=${forSpec} (only condition=Ready is simulated)`);
    const want = (m[2] ?? "true").toLowerCase() === "true" ? "True" : "False";
    const names = nodeNames(rest, false);
    if (names.length === 0) fail(1, "error: resource(s) were provided, but no name was specified");
    const timeoutMs = parseDuration(flags.get("--timeout") ?? "30s");
    const deadline = Date.now() + timeoutMs;
    for (const name of names) {
        for (let i = 0; ; i++) {
            const rec = getNode(host, name);
            if (liveness(rec).ready === want) {
                say(`node/${name} condition met`);
                break;
            }
            if (Date.now() >= deadline || i > 100_000) fail(1, `error: timed out waiting for the condition on nodes/${name}`);
            sleepSync(Math.min(100, Math.max(0, deadline - Date.now())));
        }
    }
    return 0;
}

export function kubectlCordon(host: DoubleHostConfig, verb: "cordon" | "uncordon", names: string[], print: boolean): number {
    if (names.length === 0) fail(1, `error: USAGE: ${verb} NODE [flags]`);
    withLock(host.clusterDir, () => {
        for (const name of names) {
            const rec = getNode(host, name);
            const want = verb === "cordon";
            if (rec.unschedulable === want) {
                if (print) say(`node/${name} already ${verb}ed`);
                continue;
            }
            rec.unschedulable = want;
            rescheduleOnto(rec);
            saveNode(host, rec);
            if (print) say(`node/${name} ${verb}ed`);
        }
    });
    return 0;
}

export function kubectlDrain(host: DoubleHostConfig, names: string[], flags: Map<string, string>): number {
    if (names.length === 0) fail(1, "error: USAGE: drain NODE [flags]");
    for (const name of names) {
        kubectlCordon(host, "cordon", [name], true);
        if (flags.get("--ignore-daemonsets") !== "true") {
            fail(
                1,
                `error: unable to drain node "${name}" due to error: cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): kube-system/svclb-traefik-${name} (k3s-test-double assumes DaemonSet pods on every node), continuing command...\nThere are pending nodes to be drained:\n ${name}`,
            );
        }
        if (flags.has("--ignore-daemonsets")) complain(`Warning: ignoring DaemonSet-managed Pods: kube-system/svclb-traefik-${name}`);
        evictGuardedPod(getNode(host, name), flags);
        say(`node/${name} drained`);
    }
    return 0;
}

/** A duration as Go prints it (time.Duration.String), as kubectl's messages carry it: 6s, 5m0s, 1h0m0s. */
export function goDuration(ms: number): string {
    const seconds = Math.round(ms / 1000);
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    return h > 0 ? `${h}h${m}m${s}s` : m > 0 ? `${m}m${s}s` : `${s}s`;
}

/**
 * kubectl drain's eviction of a pod a processed disruption budget guards (kubectl v1.33.4): each
 * attempt is refused with 429, kubectl says it will retry after 5 s and sleeps, and once its
 * --timeout has passed it gives up with "global timeout reached" (so a 6 s timeout fails after
 * 10 s). Without the cue the node has no such pod and nothing is printed.
 */
function evictGuardedPod(rec: NodeRecord, flags: Map<string, string>): void {
    const { namespace, name } = BUDGET_GUARDED_POD;
    if (!loadCue(rec.hostSideStateDir).evictionBlocked) return;
    // --timeout=0 waits forever in kubectl; here every wait is bounded (parseDuration caps it).
    const timeoutText = flags.get("--timeout") ?? "0s";
    const timeoutMs = parseDuration(timeoutText) || parseDuration("1h");
    const started = Date.now();
    // kubectl says "evicting pod" at the top of each attempt, before it looks at its timeout.
    for (let attempt = 0; attempt < 1000; attempt++) {
        say(`evicting pod ${namespace}/${name}`);
        if (attempt > 0 && Date.now() - started >= timeoutMs) break;
        if (!loadCue(rec.hostSideStateDir).evictionBlocked) {
            say(`pod/${name} evicted`);
            return;
        }
        complain(
            `error when evicting pods/"${name}" -n "${namespace}" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.`,
        );
        sleepSync(5000);
    }
    const error = `error when evicting pods/"${name}" -n "${namespace}": global timeout reached: ${goDuration(timeoutMs)}`;
    complain(`There are pending pods in node "${rec.name}" when an error occurred: ${error}`);
    complain(`pod/${name}`);
    fail(
        1,
        `error: unable to drain node "${rec.name}" due to error: ${error}, continuing command...\nThere are pending nodes to be drained:\n ${rec.name}\n${error}`,
    );
}

export const META_KEY = /^(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export function kubectlMeta(host: DoubleHostConfig, verb: "annotate" | "label", rest: string[], flags: Map<string, string>): number {
    let names: string[];
    let changes: string[];
    if (rest[0] !== undefined && ["node", "nodes", "no"].includes(rest[0])) {
        names = [rest[1] ?? ""];
        changes = rest.slice(2);
    } else if ((rest[0] ?? "").includes("/")) {
        names = nodeNames([rest[0] ?? ""]);
        changes = rest.slice(1);
    } else {
        return unsupported(`kubectl ${verb} ${JSON.stringify(rest.join(" "))} (only nodes are simulated)`);
    }
    if (changes.length === 0) fail(1, `error: at least one ${verb === "annotate" ? "annotation" : "label"} update is required`);
    const overwrite = flags.get("--overwrite") === "true";
    const sets: [string, string][] = [];
    const removes: string[] = [];
    for (const c of changes) {
        if (c.endsWith("-") && !c.includes("=")) removes.push(c.slice(0, -1));
        else {
            const eq = c.indexOf("=");
            if (eq <= 0) fail(1, `error: invalid ${verb === "annotate" ? "annotation" : "label"} format: ${c}`);
            sets.push([c.slice(0, eq), c.slice(eq + 1)]);
        }
    }
    for (const k of [...sets.map(([k]) => k), ...removes]) {
        if (!META_KEY.test(k)) fail(1, `error: invalid ${verb === "annotate" ? "annotation" : "label"} key: "${k}"`);
    }
    withLock(host.clusterDir, () => {
        for (const name of names) {
            const rec = getNode(host, name);
            const bag = verb === "annotate" ? rec.annotations : rec.labels;
            if (!overwrite) {
                const clash = sets.filter(([k, v]) => bag[k] !== undefined && bag[k] !== v);
                if (clash.length > 0) {
                    fail(
                        1,
                        `error: --overwrite is false but found the following declared ${verb === "annotate" ? "annotation" : "label"}(s): ${clash
                            .map(([k]) => `'${k}' already has a value (${bag[k] ?? ""})`)
                            .join(", ")}`,
                    );
                }
            }
            for (const [k, v] of sets) bag[k] = v;
            for (const k of removes) delete bag[k];
            saveNode(host, rec);
            say(`node/${name} ${verb === "annotate" ? "annotated" : "labeled"}`);
        }
    });
    return 0;
}

/**
 * `kubectl patch node NAME --type merge -p JSON`: a JSON merge patch (RFC 7386) of the fields
 * the rollout writes: spec.unschedulable and metadata.annotations/labels, null removing a key.
 * As the real one (checked against kube-apiserver v1.33.4 and its kubectl): prints
 * `node/NAME patched`, or `patched (no change)` when nothing moved; an unknown node is
 * `Error from server (NotFound)`. Any other patch type or field is refused as unsimulated.
 */
export function kubectlPatch(host: DoubleHostConfig, rest: string[], flags: Map<string, string>): number {
    const names = nodeNames(rest);
    if (names.length !== 1 || names[0] === "") fail(1, "error: resource(s) were provided, but no name was specified");
    const type = flags.get("--type") ?? "strategic";
    if (type !== "merge") unsupported(`kubectl patch --type ${type} (only merge is simulated)`);
    const text = flags.get("-p") ?? flags.get("--patch");
    if (text === undefined) fail(1, "error: must specify --patch or --patch-file containing the contents of the patch");
    let patch: unknown;
    try {
        patch = JSON.parse(text);
    } catch {
        fail(1, `error: unable to parse "${text}": yaml: did not find expected node content`);
    }
    const { spec, metadata, ...others } = (patch ?? {}) as { spec?: Record<string, unknown>; metadata?: Record<string, unknown> };
    const { unschedulable, ...otherSpec } = spec ?? {};
    const { annotations, labels, ...otherMeta } = metadata ?? {};
    const unhandled = [...Object.keys(others), ...Object.keys(otherSpec).map((k) => `spec.${k}`), ...Object.keys(otherMeta).map((k) => `metadata.${k}`)];
    if (unhandled.length > 0) unsupported(`kubectl patch of ${unhandled.join(", ")} (only spec.unschedulable and metadata.annotations/labels are simulated)`);
    if (unschedulable !== undefined && unschedulable !== null && typeof unschedulable !== "boolean")
        fail(1, 'The request is invalid: spec.unschedulable: Invalid value: "non-boolean"');
    const name = names[0] ?? "";
    withLock(host.clusterDir, () => {
        const rec = getNode(host, name);
        // Pods coming back to a node are not a change of its Node object.
        const nodeObjectText = (): string => JSON.stringify({ ...rec, evictedPods: undefined });
        const before = nodeObjectText();
        if (unschedulable !== undefined) rec.unschedulable = unschedulable === true;
        rescheduleOnto(rec);
        for (const [bagName, change] of [
            ["annotations", annotations],
            ["labels", labels],
        ] as const) {
            if (change === undefined || change === null) continue;
            const bag = bagName === "annotations" ? rec.annotations : rec.labels;
            for (const [k, v] of Object.entries(change as Record<string, unknown>)) {
                if (!META_KEY.test(k)) fail(1, `The Node "${name}" is invalid: metadata.${bagName}: Invalid value: "${k}"`);
                if (v === null) delete bag[k];
                else if (typeof v === "string") bag[k] = v;
                else fail(1, `error: metadata.${bagName}.${k}: a string or null is required (k3s-test-double)`);
            }
        }
        if (nodeObjectText() === before) {
            say(`node/${name} patched (no change)`);
            return;
        }
        saveNode(host, rec);
        say(`node/${name} patched`);
    });
    return 0;
}
