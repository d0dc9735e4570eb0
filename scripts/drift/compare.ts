import { isIpv4Cidr, networksOverlap, parseIpv4Network } from "../../stacks/net";
import { CONFIG_ANNOTATION } from "../../components/k3s/rollout";
import { parseNebulaCert, type ParsedNebulaCert } from "../../stacks/nebulaCert";
import { unifiedDiff } from "./diff";
import type { DriftExpectation, ExpectedHost, ExpectedService } from "./expect";
import type { Observation } from "./observe";

/*
 * Pure comparison of one host's plan with what its collector saw. `drift` findings make the
 * command exit 3; `warning`s are reported but are not drift (an expiring certificate, a value
 * that could not be read).
 */

export type Area = "file" | "address" | "route" | "service" | "k3s" | "nebula";

export interface Finding {
    area: Area;
    /** The path, interface, service or node the finding is about. */
    subject: string;
    severity: "drift" | "warning";
    message: string;
    /** Unified diff of a public file (only with --diff). */
    diff?: string;
}

/** Every node's config annotation and cordon as the genesis listed them. */
export type ClusterView = { nodes: Observation["knodes"] } | { error: string };

export interface CompareOptions {
    now: Date;
    diff: boolean;
    /** From the genesis' session; undefined when no K3s host is in the plan. */
    cluster?: ClusterView;
}

const DAY_MS = 86_400_000;

function short(hash: string | undefined): string {
    return hash === undefined ? "none" : hash.slice(0, 12);
}

function octal(mode: number): string {
    return mode.toString(8).padStart(4, "0");
}

function iso(seconds: number): string {
    return new Date(Math.round(seconds * 1000)).toISOString();
}

/** Wall-clock seconds a service entered `active`, and how exact that is; undefined if unknown. */
export function serviceStart(props: Record<string, string>, clock: Observation["clock"]): { at: number; tolerance: number } | undefined {
    const monotonicUs = Number(props.ActiveEnterTimestampMonotonic ?? "0");
    if (monotonicUs > 0 && clock?.monotonicNs !== undefined && Number.isFinite(clock.realtime)) {
        const at = clock.realtime - (clock.monotonicNs / 1e9 - monotonicUs / 1e6);
        return { at, tolerance: clock.source === "timer_list" ? 0.05 : 1 };
    }
    // "Sun 2026-11-29 12:34:56 UTC": seconds only, and only a UTC spelling is parsed.
    const match = /(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) UTC$/.exec(props.ActiveEnterTimestamp ?? "");
    if (match) {
        return { at: Date.parse(`${match[1]}T${match[2]}Z`) / 1000, tolerance: 1 };
    }
    return undefined;
}

function routeDestination(route: string): string | undefined {
    const [first, second] = route.split(/\s+/);
    if (["", "throw", "unreachable", "prohibit", "blackhole", "local", "broadcast", "anycast", "multicast", "nat"].includes(first)) {
        return undefined;
    }
    const dest = first === "unicast" ? second : first === "default" ? "0.0.0.0/0" : first;
    if (dest === undefined) {
        return undefined;
    }
    const cidr = dest.includes("/") ? dest : `${dest}/32`;
    return isIpv4Cidr(cidr) ? cidr : undefined;
}

function compareFiles(host: ExpectedHost, seen: Observation, options: CompareOptions, findings: Finding[]): void {
    for (const file of host.files) {
        const live = seen.files.get(file.path);
        const add = (message: string, extra: Partial<Finding> = {}): void => {
            findings.push({ area: "file", subject: file.path, severity: "drift", message, ...extra });
        };
        if (!live || !live.present) {
            add("missing");
            continue;
        }
        if (live.type !== "regular file") {
            add(`is a ${live.type ?? "non-file"}, not a regular file`);
            continue;
        }
        if (file.check === "content" && live.sha256 !== file.sha256) {
            const text = seen.texts.get(file.path);
            const diff =
                options.diff && text !== undefined && file.text !== undefined
                    ? unifiedDiff(file.text, text, { before: `plan/${host.name}${file.path}`, after: `${host.name}:${file.path}` })
                    : undefined;
            add(`content differs (sha256 ${short(live.sha256)} on the host, ${short(file.sha256)} planned)`, diff ? { diff } : {});
        }
        if (live.mode !== file.mode) {
            add(`mode ${live.mode === undefined ? "?" : octal(live.mode)}, planned ${octal(file.mode)}`);
        }
        if (file.owner !== undefined && live.owner !== file.owner) {
            add(`owner ${live.owner ?? "?"}, planned ${file.owner}`);
        }
    }
}

function compareAddresses(host: ExpectedHost, seen: Observation, findings: Finding[]): void {
    for (const { iface, address } of host.addresses) {
        if (seen.unreadableIfaces?.has(iface)) {
            findings.push({
                area: "address",
                subject: iface,
                severity: "warning",
                message: `not read: the host has neither ip nor ifconfig (expected ${address})`,
            });
            continue;
        }
        const live = seen.ifaces.get(iface);
        if (live === undefined || live === null) {
            findings.push({ area: "address", subject: iface, severity: "drift", message: `interface missing, expected ${address}` });
            continue;
        }
        const bare = live.map((cidr) => cidr.split("/")[0]);
        if (!bare.includes(address)) {
            findings.push({
                area: "address",
                subject: iface,
                severity: "drift",
                message: `has ${bare.length > 0 ? bare.join(" ") : "no IPv4 address"}, expected ${address}`,
            });
        }
    }
}

function compareRoutes(host: ExpectedHost, seen: Observation, findings: Finding[]): void {
    if (host.clusterCidrs.length === 0) {
        return;
    }
    for (const route of seen.table52) {
        const dest = routeDestination(route);
        if (dest === undefined) {
            continue;
        }
        for (const cidr of host.clusterCidrs) {
            if (networksOverlap(parseIpv4Network(dest), parseIpv4Network(cidr))) {
                findings.push({
                    area: "route",
                    subject: "table 52",
                    severity: "drift",
                    message: `routes ${dest} (${route.trim()}), which covers cluster range ${cidr}`,
                });
            }
        }
    }
    if (seen.acceptRoutes === "yes") {
        findings.push({
            area: "route",
            subject: "tailscale",
            severity: "drift",
            message: "accepts subnet routes (--accept-routes); the fleet runs with --accept-routes=false",
        });
    }
}

function compareService(service: ExpectedService, seen: Observation, findings: Finding[]): void {
    const add = (severity: Finding["severity"], message: string): void => {
        findings.push({ area: "service", subject: service.name, severity, message });
    };
    const props = seen.services.get(service.name)?.props ?? {};
    const pending = seen.pending.get(service.name);
    if (pending !== undefined) {
        add("drift", `restart pending since ${iso(pending)} (/var/lib/shortcircuit/restart-pending.${service.name})`);
    }
    if (props.LoadState === "not-found") {
        add("drift", service.manager === "launchd" ? "job not loaded (launchctl print finds no such service)" : "unit not found");
        return;
    }
    const state = props.ActiveState;
    if (state !== "active") {
        add("drift", `not active (${state === undefined ? "state unknown" : state})`);
        return;
    }
    if (props.NeedDaemonReload === "yes") {
        add("drift", "its unit file changed on disk since systemd loaded it (daemon-reload and restart pending)");
    }
    // launchd: the job file it was loaded from (deliver-files.sh's record) against the one in place.
    const jobFile = service.jobFile === undefined ? undefined : seen.files.get(service.jobFile);
    if (jobFile?.present && props.LoadedJobSha256 !== undefined && props.LoadedJobSha256 !== jobFile.sha256) {
        add("drift", `loaded from another job file than ${service.jobFile} (bootout and bootstrap pending)`);
    }
    const start = service.manager === "systemd" ? serviceStart(props, seen.clock) : undefined;
    if (start === undefined) {
        return;
    }
    const newer = service.files
        .map((path) => ({ path, mtime: seen.files.get(path)?.mtime }))
        .filter((file): file is { path: string; mtime: number } => file.mtime !== undefined && file.mtime > start.at + start.tolerance)
        .sort((a, b) => b.mtime - a.mtime);
    if (newer.length > 0) {
        add("drift", `runs an older config: started ${iso(start.at)}, ${newer.map((file) => `${file.path} changed ${iso(file.mtime)}`).join(", ")}`);
    }
}

function compareK3s(host: ExpectedHost, seen: Observation, cluster: ClusterView | undefined, findings: Finding[]): void {
    const k3s = host.k3s;
    if (!k3s) {
        return;
    }
    const add = (severity: Finding["severity"], message: string): void => {
        findings.push({ area: "k3s", subject: host.name, severity, message });
    };
    if (cluster === undefined || "error" in cluster) {
        add("warning", `config annotation and cordon not read: ${cluster === undefined ? "no genesis in the plan" : cluster.error}`);
        return;
    }
    const node = cluster.nodes.get(host.name);
    if (!node) {
        add("drift", "not registered with the cluster");
        return;
    }
    const disk = seen.files.get(k3s.configPath)?.sha256;
    if (node.annotation === undefined) {
        add("drift", `has no ${CONFIG_ANNOTATION} annotation: never rolled by shortcircuit`);
    } else {
        if (node.annotation !== k3s.configSha256) {
            add("drift", `was rolled with config ${short(node.annotation)}, the plan wants ${short(k3s.configSha256)}`);
        }
        if (disk !== undefined && disk !== node.annotation) {
            add(
                "drift",
                `config.yaml on disk (${short(disk)}) is not the config the node was rolled with (${short(node.annotation)}): edited by hand or a rollout was rolled back`,
            );
        }
    }
    // The rollout marks its own cordon; a node an operator cordoned is theirs to lift.
    if (node.unschedulable && node.cordonedByRollout) {
        add("drift", "cordoned by a rollout that did not finish: the next up drains it again and lifts the cordon once it is healthy");
    } else if (node.unschedulable) {
        add("warning", `cordoned, not by a rollout: it stays so through rollouts (kubectl uncordon ${host.name} lifts it)`);
    }
}

function parseCert(text: string | undefined): ParsedNebulaCert | string {
    if (text === undefined) {
        return "not readable";
    }
    try {
        return parseNebulaCert(text);
    } catch (error) {
        return `not a Nebula certificate (${(error as Error).message})`;
    }
}

function compareNebula(host: ExpectedHost, seen: Observation, expectation: Pick<DriftExpectation, "caFingerprint">, now: Date, findings: Finding[]): void {
    const nebula = host.nebula;
    if (!nebula) {
        return;
    }
    const add = (severity: Finding["severity"], subject: string, message: string): void => {
        findings.push({ area: "nebula", subject, severity, message });
    };
    let caFingerprint = expectation.caFingerprint;
    if (seen.files.get(nebula.caPath)?.present) {
        const ca = parseCert(seen.texts.get(nebula.caPath));
        if (typeof ca === "string") {
            add("drift", nebula.caPath, ca);
        } else {
            if (!ca.isCA) {
                add("drift", nebula.caPath, "is not a CA certificate");
            }
            if (expectation.caFingerprint !== undefined && ca.fingerprint !== expectation.caFingerprint) {
                add("drift", nebula.caPath, `CA fingerprint ${short(ca.fingerprint)}, the fleet's CA is ${short(expectation.caFingerprint)}`);
            }
            if (ca.notAfter.getTime() <= now.getTime()) {
                add("drift", nebula.caPath, `the CA expired ${ca.notAfter.toISOString()}`);
            }
            caFingerprint ??= ca.fingerprint;
        }
    }
    if (!seen.files.get(nebula.certPath)?.present) {
        return;
    }
    const cert = parseCert(seen.texts.get(nebula.certPath));
    if (typeof cert === "string") {
        add("drift", nebula.certPath, cert);
        return;
    }
    const problems: string[] = [];
    if (cert.name !== nebula.member) {
        problems.push(`name ${JSON.stringify(cert.name)}, planned ${JSON.stringify(nebula.member)}`);
    }
    if (!cert.ips.includes(nebula.addressWithPrefix)) {
        problems.push(`addresses ${cert.ips.join(" ") || "none"}, planned ${nebula.addressWithPrefix}`);
    }
    const groups = [...cert.groups].sort();
    if (groups.join(",") !== nebula.groups.join(",")) {
        problems.push(`groups ${groups.join(",") || "none"}, planned ${nebula.groups.join(",")}`);
    }
    if (caFingerprint !== undefined && cert.issuer !== caFingerprint) {
        problems.push(
            `issued by ${short(cert.issuer)}, not by the ${expectation.caFingerprint !== undefined ? "fleet's" : "host's"} CA ${short(caFingerprint)}`,
        );
    }
    if (nebula.plannedExpiry !== undefined && Math.abs(Date.parse(nebula.plannedExpiry) - cert.notAfter.getTime()) >= 1000) {
        problems.push(`expires ${cert.notAfter.toISOString()}, the program's certificate expires ${new Date(Date.parse(nebula.plannedExpiry)).toISOString()}`);
    }
    for (const problem of problems) {
        add("drift", nebula.certPath, problem);
    }
    const left = cert.notAfter.getTime() - now.getTime();
    if (left <= 0) {
        add("drift", nebula.certPath, `expired ${cert.notAfter.toISOString()}`);
    } else if (left <= nebula.renewBeforeDays * DAY_MS) {
        add(
            "warning",
            nebula.certPath,
            `expires ${cert.notAfter.toISOString()} (inside the ${nebula.renewBeforeDays}-day renewal window: the next up reissues it)`,
        );
    }
}

/** Every finding for one host that was read. */
export function compareHost(expectation: Pick<DriftExpectation, "caFingerprint">, host: ExpectedHost, seen: Observation, options: CompareOptions): Finding[] {
    const findings: Finding[] = [];
    compareFiles(host, seen, options, findings);
    compareAddresses(host, seen, findings);
    compareRoutes(host, seen, findings);
    for (const service of host.services) {
        compareService(service, seen, findings);
    }
    compareK3s(host, seen, options.cluster, findings);
    compareNebula(host, seen, expectation, options.now, findings);
    return findings;
}

/** The genesis' listing, for every K3s host's comparison. */
export function clusterViewFrom(seen: Observation | undefined, unreadable: string | undefined): ClusterView {
    if (seen === undefined) {
        return { error: `the genesis could not be read (${unreadable ?? "unknown"})` };
    }
    if (seen.kubectlError !== undefined) {
        return { error: `kubectl on the genesis failed: ${seen.kubectlError}` };
    }
    return { nodes: seen.knodes };
}
