/**
 * kubectl's command line and the Node objects it prints, shared by the verbs.
 */
import { STATE_DIR, WAIT_MAX_MS } from "./constants";
import { loadCue } from "./host";
import { allNodes, liveness } from "./nodes";
import type { DoubleHostConfig, NodeRecord } from "./types";
import { fail, sleepSync, unsupported } from "./util";

export interface KubectlArgs {
    positional: string[];
    flags: Map<string, string>;
}

export const KUBECTL_VALUE_FLAGS = new Set([
    "-o",
    "--output",
    "--kubeconfig",
    "--request-timeout",
    "-n",
    "--namespace",
    "--timeout",
    "--for",
    "--grace-period",
    "--raw",
    "--context",
    "--pod-selector",
    "--skip-wait-for-delete-timeout",
    "--chunk-size",
    "--type",
    "-p",
    "--patch",
    "--field-selector",
    "-f",
    "--filename",
]);
export const KUBECTL_BOOL_FLAGS = new Set([
    "--overwrite",
    "--no-headers",
    "--ignore-daemonsets",
    "--delete-emptydir-data",
    "--delete-local-data",
    "--force",
    "--disable-eviction",
    "--wait",
    "--all-namespaces",
    "-A",
    "--insecure-skip-tls-verify",
    "--ignore-not-found",
]);

export function parseKubectl(argv: string[]): KubectlArgs {
    const positional: string[] = [];
    const flags = new Map<string, string>();
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i] ?? "";
        if (a === "--") {
            positional.push(...argv.slice(i + 1));
            break;
        }
        if (/^-o./.test(a) && !a.startsWith("-o=")) {
            flags.set("-o", a.slice(2));
            continue;
        }
        if (a.startsWith("-") && a !== "-") {
            const eq = a.indexOf("=");
            const name = eq > 0 ? a.slice(0, eq) : a;
            const canonical = name === "--output" ? "-o" : name === "--namespace" ? "-n" : name === "--filename" ? "-f" : name;
            if (KUBECTL_VALUE_FLAGS.has(name)) {
                const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
                if (v === undefined) fail(1, `error: flag needs an argument: ${name}`);
                flags.set(canonical, v);
            } else if (KUBECTL_BOOL_FLAGS.has(name)) {
                flags.set(canonical, eq > 0 ? a.slice(eq + 1) : "true");
            } else {
                fail(1, `error: unknown flag: ${name} (k3s-test-double kubectl)`);
            }
            continue;
        }
        positional.push(a);
    }
    return { positional, flags };
}

export function nodeObject(rec: NodeRecord): Record<string, unknown> {
    const live = liveness(rec);
    const sinceIso = new Date(live.since ?? Date.parse(rec.registeredAt)).toISOString();
    const spec: Record<string, unknown> = {};
    if (rec.taints.length > 0) spec.taints = rec.taints;
    if (rec.unschedulable) spec.unschedulable = true;
    return {
        apiVersion: "v1",
        kind: "Node",
        metadata: {
            name: rec.name,
            uid: rec.uid,
            creationTimestamp: rec.registeredAt,
            labels: rec.labels,
            annotations: rec.annotations,
        },
        spec,
        status: {
            addresses: [
                ...rec.internalIPs.map((a) => ({ type: "InternalIP", address: a })),
                ...rec.externalIPs.map((a) => ({ type: "ExternalIP", address: a })),
                { type: "Hostname", address: rec.hostName },
            ],
            conditions: [
                {
                    type: "Ready",
                    status: live.ready,
                    reason: live.reason,
                    message: live.message,
                    lastHeartbeatTime: new Date().toISOString(),
                    lastTransitionTime: sinceIso,
                },
            ],
            nodeInfo: {
                kubeletVersion: rec.kubeletVersion,
                kubeProxyVersion: rec.kubeletVersion,
                containerRuntimeVersion: "containerd://k3s-test-double",
                operatingSystem: "linux",
                architecture: "amd64",
                osImage: "k3s-test-double lab host",
            },
        },
    };
}

/** kubectl's --request-timeout: a bare number is seconds, "0" (the default) waits forever. */
export function requestTimeoutMs(value: string | undefined): number {
    if (value === undefined || value === "0") return 0;
    const match = /^(\d+)(ms|s|m|h)?$/.exec(value);
    if (!match) fail(1, `error: invalid argument "${value}" for "--request-timeout" flag`);
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? "s"] ?? 1000;
    return Number(match[1]) * unit;
}

/** A server whose API never answers: what the kubectl call sees, bounded only by its own flag. */
export function hangOnUnansweringApi(host: DoubleHostConfig, flags: Map<string, string>): void {
    const hangs =
        host.role === "server" ? loadCue(STATE_DIR).apiHangs : allNodes(host).some((n) => n.role === "server" && loadCue(n.hostSideStateDir).apiHangs);
    if (!hangs) return;
    const limit = requestTimeoutMs(flags.get("--request-timeout"));
    sleepSync(limit === 0 ? WAIT_MAX_MS : limit);
    fail(1, "Unable to connect to the server: net/http: request canceled (Client.Timeout exceeded while awaiting headers)");
}

/** Whether the positional arguments after the verb name pods (`pods`, `pod`, `po`). */
export function namesPods(rest: string[]): boolean {
    return rest[0] !== undefined && ["pods", "pod", "po"].includes(rest[0]);
}

/** The nodes `annotate`/`label` change: `node NAME` or `node/NAME`, before the changes. */
export function metaTargetNames(rest: string[]): string[] {
    return nodeNames(rest.slice(0, rest[0] !== undefined && ["node", "nodes", "no"].includes(rest[0]) ? 2 : 1));
}

/** Accepts `node NAME...`, `nodes NAME`, `node/NAME`, or bare names (cordon/drain). */
export function nodeNames(rest: string[], allowBare = true): string[] {
    const names: string[] = [];
    let i = 0;
    if (rest[0] !== undefined && ["node", "nodes", "no"].includes(rest[0])) i = 1;
    else if (!allowBare && !(rest[0] ?? "").includes("/")) unsupported(`kubectl resource ${JSON.stringify(rest[0] ?? "")} (only nodes are simulated)`);
    for (; i < rest.length; i++) {
        const r = rest[i] ?? "";
        const slash = r.indexOf("/");
        if (slash >= 0) {
            const kind = r.slice(0, slash);
            if (!["node", "nodes", "no"].includes(kind)) unsupported(`kubectl resource ${JSON.stringify(kind)} (only nodes are simulated)`);
            names.push(r.slice(slash + 1));
        } else names.push(r);
    }
    return names;
}
