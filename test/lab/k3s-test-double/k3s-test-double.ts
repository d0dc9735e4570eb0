/**
 * k3s-test-double — a TEST DOUBLE that plays k3s on the lab fleet's test hosts
 * (see ../labFleet.ts). It is NOT k3s: no kubelet, no API server, no etcd, no pods.
 * It exists so the project's exact remote scripts can run over real SSH against hosts
 * that answer like k3s nodes do.
 *
 * Run by node through per-host wrappers that the harness puts first in the host's PATH
 * (bind-mounted over /usr/local/bin) and over /usr/bin/systemctl and /usr/bin/journalctl in
 * the host's mount namespace. The harness strips the types once per run (node:module
 * stripTypeScriptTypes) into <runDir>/k3s-test-double.mjs; node >= 22.18 also runs this
 * file directly. Keep to erasable TypeScript (no enums, namespaces, parameter properties)
 * and `import type` for types.
 *
 *   k3s ...         -> `k3s` tool: --version, kubectl (below); `k3s server|agent` is refused
 *   kubectl ...     -> same as `k3s kubectl ...` (k3s installs kubectl as a symlink)
 *   systemctl ...   -> systemctl shim for the units k3s (server hosts) / k3s-agent (agent hosts),
 *                      and a service-manager stand-in for every other unit (below)
 *   journalctl ...  -> prints the double's log for those units
 *
 * Each wrapper sets K3S_TEST_DOUBLE_HOST_CONFIG to a JSON file written by the harness
 * (host name, role, shared cluster dir) and execs
 *   node k3s-test-double.{mjs,ts} <tool> <args...>
 *
 * Per host state (inside the host's view; host side: <rootDir>/var/lib/rancher/k3s-test-double):
 *   state.json        unit status (active|inactive|failed), merged config last loaded, config
 *                     files with sha256, restart/start/failure counts, history, last error,
 *                     node name, certificate SANs, flannel.1 handling
 *   cue.json          behaviour cue written by the harness (readyDelayMs, neverReady,
 *                     failOnStart, etcdUnhealthy, keepStaleFlannelLink)
 *   invocations.log   one JSON line per invocation of any tool (argv, exit code, output head)
 *   k3s.log           journal-like log, shown by the journalctl shim and `systemctl status`
 *   services.json     service-manager stand-in: per unit state and every call (ServiceEvent:
 *                     unit, verb, Date.now() and CLOCK_MONOTONIC µs, exit code, resulting state)
 *   service-cue.json  per unit cues written by the harness (failRestarts, exitAtStart, exitAfterMs)
 *   services.log      journal lines of those units (journalctl -u, systemctl status)
 *
 * Service-manager stand-in (TEST DOUBLE, not systemd; nothing is executed, ExecStart never
 * runs): any unit other than k3s/k3s-agent exists when its file is in the host's (private)
 * /etc/systemd/system ("nebula" means "nebula.service"). daemon-reload; start, restart,
 * try-restart, reload-or-restart, reload, stop (several units per call, the first error's exit
 * code, like systemctl); enable/disable [--now]; is-active/is-failed/is-enabled [--quiet] with
 * systemd's words and exit codes (is-active: 0 active, 3 otherwise); status (0/3, 4 unknown);
 * show [-p P,...] [--value] with ActiveState, SubState, Result, LoadState, UnitFileState,
 * NeedDaemonReload, ActiveEnterTimestamp(Monotonic), InactiveEnterTimestamp(Monotonic),
 * ExecMainStartTimestamp(Monotonic), NRestarts (always 0: no automatic restarts happen);
 * reset-failed. Start/restart of a unit without a unit file: "Failed to restart x.service:
 * Unit x.service not found.", exit 5. Cues: failRestarts n (the next n start attempts exit 1,
 * unit failed), exitAtStart (start exits 0, the unit reads failed exitAfterMs later, as when a
 * daemon dies at once under a unit without Type=). A unit file edited after it was loaded
 * (daemon-reload or first use) draws systemd's "changed on disk" warning on start.
 *
 * Cluster state (TEST DOUBLE SHORTCUT): every host of a fleet reads and writes one shared
 * directory on the harness side (clusterDir/nodes/<node>.json). It is visible at the same
 * path in every host's mount namespace, so `k3s kubectl` on the genesis server sees the
 * other nodes, as a real API server would. Node readiness is computed when asked, from the
 * owning host's state.json and cue.json: no daemon runs.
 *
 * On `systemctl start|restart <unit>` the double reads /etc/rancher/k3s/config.yaml and then
 * /etc/rancher/k3s/config.yaml.d/*.yaml in lexical order (later files override keys; a key
 * written `key+:` appends to a list key) and refuses to start (unit `failed`, systemctl exits
 * 1 with systemd's message) when:
 *   - a key is not a k3s flag name for the host's role (agents refuse server-only keys such
 *     as tls-san, cluster-init, etcd-arg, cluster-cidr, disable, write-kubeconfig-mode);
 *     deliberately strict: the project's renderer must produce only valid keys
 *   - a value has the wrong type (bool keys take booleans, list keys a scalar or a list of
 *     scalars, string keys a scalar); the YAML does not parse or is not a mapping
 *   - node-ip is not an address on one of the host's interfaces (kubelet's check), a
 *     node-ip/node-external-ip is not an IP, cluster-cidr/service-cidr is not a CIDR
 *   - flannel-iface names a missing interface; flannel-backend is not a known backend
 *   - an agent has no `server`, a joining node (server: set) has no token/token-file,
 *     token-file does not exist
 *   - a joining server's critical values (cluster-cidr, service-cidr, cluster-dns,
 *     cluster-domain, flannel-backend, disable, ...) differ from the server it joins
 *     ("critical configuration value mismatch"); the server is found by matching the
 *     `server:` URL host against registered nodes' addresses; if none matches, the double
 *     only logs a warning
 *   - cue.json has failOnStart set
 * Started, it registers/updates the node (labels and taints from node-label/node-taint only
 * at first registration, like k3s), sets the annotations k3s/flannel set
 * (flannel.alpha.coreos.com/public-ip = non-empty public-ip-overwrite, else flannel-iface's
 * IPv4, else the internal IP), writes a fake kubeconfig /etc/rancher/k3s/k3s.yaml (servers; the
 * `kubeconfig` cue replaces it with a real one),
 * the server token files, tracks certificate SANs (added SANs apply on restart; removed ones
 * only when /var/lib/rancher/k3s/server/tls/dynamic-cert-regenerate exists, which it deletes)
 * and, for the vxlan backend, keeps a real `flannel.1` vxlan link on the parent interface
 * with MTU = parent MTU - 50 (recreated when the parent changes unless keepStaleFlannelLink).
 *
 * `systemctl start|restart` returns as soon as the config is accepted (like a Type=exec
 * unit); it does not block for the ready delay, so callers wait for readiness themselves.
 *
 * Readiness: Ready=True once the unit is active, cue.neverReady is false and readyDelayMs
 * has passed since the last start; False while starting or neverReady; Unknown when the
 * unit is stopped or failed. The cue is read at query time.
 *
 * kubectl (only on server hosts whose unit is active; otherwise "connection refused"):
 *   get node|nodes|no [NAME...] | get node/NAME   -o json|yaml|name|wide|jsonpath=TEMPLATE,
 *       --no-headers, --ignore-not-found (a missing named node prints nothing, exit 0); jsonpath subset: .field, \. escapes, ['k'], [n], [*], [?(@.a=="v")],
 *       {range ...}{end}, {"literal"}
 *   wait --for=condition=Ready[=true|false] node/NAME [--timeout=30s]
 *   cordon|uncordon NAME; drain NAME --ignore-daemonsets [--delete-emptydir-data --force
 *       --timeout=... --grace-period=...]   (drain without --ignore-daemonsets fails: the
 *       double assumes DaemonSet pods such as svclb-traefik on every node)
 *   annotate|label node NAME k=v... k- [--overwrite]
 *   delete node NAME
 *   get --raw /healthz/etcd (also /readyz/etcd, /livez/etcd, /healthz, /readyz, /livez):
 *       the etcd health query. "ok" when this server is up (active, past its ready delay,
 *       not neverReady, not etcdUnhealthy) and a quorum of the etcd members (servers started
 *       with cluster-init or joined with server:) is up; otherwise the apiserver's
 *       InternalServerError text and exit 1.
 * Anything else exits 64 with "k3s-test-double: unsupported ..." so a test author knows
 * to extend the double rather than chase a phantom bug.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as crypto from "node:crypto";
import { execFileSync } from "node:child_process";
import * as YAML from "yaml";

// ---------------------------------------------------------------------------------------
// Types shared with the harness (imported there with `import type`)

export type LabRole = "server" | "agent";
export type UnitStatus = "active" | "inactive" | "failed";

/** Written by the harness; the wrapper passes its path in K3S_TEST_DOUBLE_HOST_CONFIG. */
export interface DoubleHostConfig {
    runId: string;
    hostName: string;
    role: LabRole;
    /** "k3s" on servers, "k3s-agent" on agents. */
    unit: string;
    /** Shared cluster directory (same path in every host's view). */
    clusterDir: string;
    /** Host-side path of this host's /var/lib/rancher/k3s-test-double. */
    hostSideStateDir: string;
    k3sVersion: string;
    ipPath: string;
}

export interface K3sBehaviourCue {
    /** Ready this long after each (re)start. */
    readyDelayMs: number;
    /** Never becomes Ready (and its etcd member never healthy). */
    neverReady: boolean;
    /** When a string, every start fails with this message. */
    failOnStart: string | null;
    /** This server's etcd member reports unhealthy even when Ready. */
    etcdUnhealthy: boolean;
    /** Keep an existing flannel.1 on its old parent when flannel-iface changes (incident 01). */
    keepStaleFlannelLink: boolean;
    /**
     * When a string, the kubeconfig a server writes instead of the fake one: the end-to-end
     * suite hands the genesis the admin kubeconfig of its real API server (test/e2e).
     */
    kubeconfig: string | null;
    /**
     * This server's API accepts connections and never answers: kubectl against it waits for its
     * --request-timeout and then fails as kubectl does, or waits (10 min) when it has none.
     */
    apiHangs: boolean;
}

export interface LoadedConfigFile {
    path: string;
    sha256: string;
    text: string;
}

export interface HistoryEntry {
    at: string;
    atMs: number;
    action: "start" | "stop" | "restart";
    result: UnitStatus;
    error?: string;
    configSha256?: string;
}

export interface FlannelState {
    backend: string;
    parent: string | null;
    mtu: number | null;
    recreated: boolean;
    publicIp: string | null;
    note?: string;
}

export interface DoubleState {
    unit: string;
    role: LabRole;
    status: UnitStatus;
    enabled: boolean;
    /** Epoch ms of the last successful start. */
    startedAt: number | null;
    stoppedAt: number | null;
    restartCount: number;
    startCount: number;
    failureCount: number;
    lastError: string | null;
    /** Merged config of the last successful start. */
    config: Record<string, unknown> | null;
    /** Config files of the last attempt (successful or not). */
    configFiles: LoadedConfigFile[];
    /** sha256 over the config files of the last successful start. */
    configSha256: string | null;
    nodeName: string | null;
    nodeId: string;
    certSans: string[];
    /**
     * Set when a server's etcd peer address moved to an IP its certificates did not cover
     * before this start: peers reject it ("x509: certificate is valid for …, not <ip>"), so
     * etcd is unhealthy until a start with the IP already in the SANs (the incident of
     * background/01 that the two-pass rollout prevents).
     */
    peerTlsMismatch?: string | null;
    flannel: FlannelState | null;
    history: HistoryEntry[];
}

export interface InvocationRecord {
    at: string;
    tool: string;
    argv: string[];
    exitCode: number;
    durationMs: number;
    stdoutHead: string;
    stderrHead: string;
}

/**
 * Behaviour cue of one service-manager stand-in unit (any unit but k3s/k3s-agent), written
 * by the harness into service-cue.json keyed by the full unit name ("nebula.service").
 */
export interface ServiceBehaviourCue {
    /** The next n start attempts (restart, start, enable --now, ...) exit 1 and leave the unit failed. */
    failRestarts: number;
    /** Start attempts exit 0, but the unit is `failed` exitAfterMs later (a daemon that dies at once, unit without Type=). */
    exitAtStart: boolean;
    /** With exitAtStart: how long the unit reads `active` after a start (default 0). */
    exitAfterMs: number;
    /** Set by the harness whenever failRestarts is (re)set: restarts the count of failures used. */
    gen: number;
}

/** One call of the service-manager stand-in for one unit (also daemon-reload, unit ""). */
export interface ServiceEvent {
    unit: string;
    verb: string;
    /** Epoch ms (Date.now()) of the double's process. */
    atMs: number;
    /**
     * CLOCK_MONOTONIC in µs, the clock of systemd's *TimestampMonotonic properties. For a call
     * that (re)started the unit: exactly its ActiveEnterTimestampMonotonic.
     */
    monoUs: number;
    exitCode: number;
    /** Unit state after the call. */
    result: UnitStatus | "not-found";
    /** sha256 of the unit file definition in effect (the one loaded at the last daemon-reload). */
    unitFileSha256?: string | null;
    /** The unit file changed on disk since it was loaded (systemd warns; daemon-reload missing). */
    staleUnitFile?: boolean;
    /** `start` of an active unit: nothing happened. */
    noop?: boolean;
}

export interface ServiceUnitState {
    unit: string;
    status: UnitStatus;
    result: "success" | "exit-code";
    enabled: boolean;
    activeEnterMs: number | null;
    activeEnterMonoUs: number | null;
    inactiveEnterMs: number | null;
    inactiveEnterMonoUs: number | null;
    /** exitAtStart: when (CLOCK_MONOTONIC µs) the unit dies; applied when the state is next read. */
    diesAtMonoUs: number | null;
    startCount: number;
    restartCount: number;
    stopCount: number;
    failureCount: number;
    /** sha256 of the unit file as loaded (daemon-reload, or first use), null before. */
    loadedSha256: string | null;
    cueGen: number;
    cueFailuresUsed: number;
}

export interface ServiceManagerState {
    units: Record<string, ServiceUnitState>;
    daemonReloads: number;
    /** Every call, oldest first (capped at 5000). */
    events: ServiceEvent[];
}

export interface Taint {
    key: string;
    value?: string;
    effect: string;
}

export interface NodeRecord {
    name: string;
    uid: string;
    hostName: string;
    role: LabRole;
    etcd: boolean;
    hostSideStateDir: string;
    registeredAt: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    taints: Taint[];
    unschedulable: boolean;
    internalIPs: string[];
    externalIPs: string[];
    /** Every IPv4 of the host plus its names and SANs: used to resolve `server:` URLs. */
    addresses: string[];
    kubeletVersion: string;
    critical: Record<string, string>;
}

// ---------------------------------------------------------------------------------------
// Constants

const STATE_DIR = "/var/lib/rancher/k3s-test-double";
const CONFIG_FILE = "/etc/rancher/k3s/config.yaml";
const CONFIG_DROPIN_DIR = "/etc/rancher/k3s/config.yaml.d";
/** Where real k3s agents keep the kubelet's kubeconfig (Node-authorizer credentials). */
const AGENT_KUBELET_KUBECONFIG = "/var/lib/rancher/k3s/agent/kubelet.kubeconfig";
const KUBECONFIG_FILE = "/etc/rancher/k3s/k3s.yaml";
const DYNAMIC_CERT_REGENERATE = "/var/lib/rancher/k3s/server/tls/dynamic-cert-regenerate";
const SERVER_DIR = "/var/lib/rancher/k3s/server";
const HISTORY_LIMIT = 200;
const WAIT_MAX_MS = 10 * 60 * 1000;

const DEFAULT_CUE: K3sBehaviourCue = {
    readyDelayMs: 0,
    neverReady: false,
    failOnStart: null,
    etcdUnhealthy: false,
    keepStaleFlannelLink: false,
    kubeconfig: null,
    apiHangs: false,
};

type Kind = "bool" | "string" | "list" | "int";

/** Flags of both `k3s agent` and `k3s server`. */
const AGENT_KEYS: Record<string, Kind> = {
    config: "string",
    debug: "bool",
    v: "int",
    vmodule: "string",
    log: "string",
    alsologtostderr: "bool",
    token: "string",
    "token-file": "string",
    server: "string",
    "data-dir": "string",
    "node-name": "string",
    "with-node-id": "bool",
    "node-label": "list",
    "node-taint": "list",
    "image-credential-provider-bin-dir": "string",
    "image-credential-provider-config": "string",
    selinux: "bool",
    "lb-server-port": "int",
    "protect-kernel-defaults": "bool",
    docker: "bool",
    "container-runtime-endpoint": "string",
    "default-runtime": "string",
    "image-service-endpoint": "string",
    "disable-default-registry-endpoint": "bool",
    "nonroot-devices": "bool",
    "pause-image": "string",
    snapshotter: "string",
    "private-registry": "string",
    "system-default-registry": "string",
    "node-ip": "list",
    "node-external-ip": "list",
    "node-internal-dns": "list",
    "node-external-dns": "list",
    "resolv-conf": "string",
    "flannel-iface": "string",
    "flannel-conf": "string",
    "flannel-cni-conf": "string",
    "vpn-auth": "string",
    "vpn-auth-file": "string",
    "kubelet-arg": "list",
    "kube-proxy-arg": "list",
    rootless: "bool",
    "prefer-bundled-bin": "bool",
    "airgap-extra-registry": "list",
    "disable-apiserver-lb": "bool",
    "enable-pprof": "bool",
};

/** Flags only `k3s server` has. */
const SERVER_ONLY_KEYS: Record<string, Kind> = {
    "bind-address": "string",
    "advertise-address": "string",
    "advertise-port": "int",
    "https-listen-port": "int",
    "supervisor-port": "int",
    "apiserver-port": "int",
    "apiserver-bind-address": "string",
    "tls-san": "list",
    "tls-san-security": "bool",
    "cluster-cidr": "list",
    "service-cidr": "list",
    "service-node-port-range": "string",
    "cluster-dns": "list",
    "cluster-domain": "string",
    "flannel-backend": "string",
    "flannel-ipv6-masq": "bool",
    "flannel-external-ip": "bool",
    "egress-selector-mode": "string",
    "servicelb-namespace": "string",
    "write-kubeconfig": "string",
    "write-kubeconfig-mode": "string",
    "write-kubeconfig-group": "string",
    "helm-job-image": "string",
    "agent-token": "string",
    "agent-token-file": "string",
    "cluster-init": "bool",
    "cluster-reset": "bool",
    "cluster-reset-restore-path": "string",
    "kube-apiserver-arg": "list",
    "etcd-arg": "list",
    "kube-controller-manager-arg": "list",
    "kube-scheduler-arg": "list",
    "kube-cloud-controller-manager-arg": "list",
    "kine-tls": "bool",
    "datastore-endpoint": "string",
    "datastore-cafile": "string",
    "datastore-certfile": "string",
    "datastore-keyfile": "string",
    "etcd-expose-metrics": "bool",
    "etcd-disable-snapshots": "bool",
    "etcd-snapshot-name": "string",
    "etcd-snapshot-schedule-cron": "string",
    "etcd-snapshot-retention": "int",
    "etcd-snapshot-dir": "string",
    "etcd-snapshot-compress": "bool",
    "etcd-s3": "bool",
    "etcd-s3-endpoint": "string",
    "etcd-s3-bucket": "string",
    "etcd-s3-region": "string",
    "etcd-s3-folder": "string",
    "etcd-s3-access-key": "string",
    "etcd-s3-secret-key": "string",
    "default-local-storage-path": "string",
    disable: "list",
    "disable-scheduler": "bool",
    "disable-cloud-controller": "bool",
    "disable-kube-proxy": "bool",
    "disable-network-policy": "bool",
    "disable-helm-controller": "bool",
    "disable-etcd": "bool",
    "disable-apiserver": "bool",
    "disable-controller-manager": "bool",
    "disable-agent": "bool",
    "embedded-registry": "bool",
    "supervisor-metrics": "bool",
    "secrets-encryption": "bool",
    "secrets-encryption-provider": "string",
};

const FLANNEL_BACKENDS = ["vxlan", "host-gw", "wireguard-native", "none"];

/** Values every server of a cluster must share (checked when a server joins). */
const CRITICAL_DEFAULTS: Record<string, string> = {
    "cluster-cidr": "10.42.0.0/16",
    "service-cidr": "10.43.0.0/16",
    "cluster-dns": "10.43.0.10",
    "cluster-domain": "cluster.local",
    "flannel-backend": "vxlan",
    "flannel-ipv6-masq": "false",
    disable: "",
    "disable-network-policy": "false",
    "disable-helm-controller": "false",
    "egress-selector-mode": "agent",
    "secrets-encryption": "false",
};

// ---------------------------------------------------------------------------------------
// Small utilities

class ToolExit extends Error {
    code: number;
    constructor(code: number, message: string) {
        super(message);
        this.code = code;
    }
}

const out: string[] = [];
const err: string[] = [];
function say(line: string): void {
    out.push(line.endsWith("\n") ? line : line + "\n");
}
function complain(line: string): void {
    err.push(line.endsWith("\n") ? line : line + "\n");
}
function fail(code: number, message: string): never {
    throw new ToolExit(code, message);
}
function unsupported(what: string): never {
    fail(64, `k3s-test-double: unsupported ${what} (extend test/lab/k3s-test-double/k3s-test-double.ts)`);
}

function sleepSync(ms: number): void {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.max(0, ms));
}

function isRecord(v: unknown): v is Record<string, unknown> {
    return typeof v === "object" && v !== null && !Array.isArray(v);
}

function readJson<T>(file: string, fallback: T): T {
    try {
        return JSON.parse(fs.readFileSync(file, "utf8")) as T;
    } catch {
        return fallback;
    }
}

function writeJsonAtomic(file: string, value: unknown): void {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
    fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + "\n");
    fs.renameSync(tmp, file);
}

function withLock<T>(dir: string, fn: () => T): T {
    const lock = path.join(dir, ".lock");
    fs.mkdirSync(dir, { recursive: true });
    const deadline = Date.now() + 10_000;
    for (let i = 0; ; i++) {
        try {
            fs.mkdirSync(lock);
            break;
        } catch {
            try {
                if (Date.now() - fs.statSync(lock).mtimeMs > 15_000) fs.rmSync(lock, { recursive: true, force: true });
            } catch {
                // the holder released it meanwhile
            }
            if (Date.now() > deadline || i > 2000) fail(1, `k3s-test-double: could not take lock ${lock}`);
            sleepSync(5);
        }
    }
    try {
        return fn();
    } finally {
        fs.rmSync(lock, { recursive: true, force: true });
    }
}

function sha256(text: string): string {
    return crypto.createHash("sha256").update(text).digest("hex");
}

function isIPv4(s: string): boolean {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
    return m !== null && m.slice(1).every((p) => Number(p) <= 255 && String(Number(p)) === p);
}
function isIPv6(s: string): boolean {
    return /^[0-9a-fA-F:]+$/.test(s) && s.includes(":") && s.split("::").length <= 2;
}
function isIP(s: string): boolean {
    return isIPv4(s) || isIPv6(s);
}
function isCidr(s: string): boolean {
    const [addr, len, extra] = s.split("/");
    if (extra !== undefined || addr === undefined || len === undefined || !/^\d+$/.test(len)) return false;
    return (isIPv4(addr) && Number(len) <= 32) || (isIPv6(addr) && Number(len) <= 128);
}

function parseDuration(s: string): number {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s);
    if (!m) fail(1, `error: invalid duration "${s}"`);
    const n = Number(m[1]);
    const unit = m[2] ?? "s";
    const factor = unit === "ms" ? 1 : unit === "s" ? 1000 : unit === "m" ? 60_000 : 3_600_000;
    return Math.min(n * factor, WAIT_MAX_MS);
}

function age(fromIso: string): string {
    const s = Math.max(0, Math.floor((Date.now() - Date.parse(fromIso)) / 1000));
    if (s < 120) return `${s}s`;
    if (s < 7200) return `${Math.floor(s / 60)}m`;
    return `${Math.floor(s / 3600)}h`;
}

// ---------------------------------------------------------------------------------------
// Host context

const hostConfigPath = process.env.K3S_TEST_DOUBLE_HOST_CONFIG ?? "";

function loadHost(): DoubleHostConfig {
    if (!hostConfigPath || !fs.existsSync(hostConfigPath)) {
        fail(2, "k3s-test-double: K3S_TEST_DOUBLE_HOST_CONFIG is not set; run it through the lab fleet wrappers");
    }
    return readJson<DoubleHostConfig>(hostConfigPath, {} as DoubleHostConfig);
}

function statePath(dir: string): string {
    return path.join(dir, "state.json");
}
function cuePath(dir: string): string {
    return path.join(dir, "cue.json");
}

function initialState(host: DoubleHostConfig): DoubleState {
    return {
        unit: host.unit,
        role: host.role,
        status: "inactive",
        enabled: true,
        startedAt: null,
        stoppedAt: null,
        restartCount: 0,
        startCount: 0,
        failureCount: 0,
        lastError: null,
        config: null,
        configFiles: [],
        configSha256: null,
        nodeName: null,
        nodeId: crypto.randomBytes(4).toString("hex"),
        certSans: [],
        flannel: null,
        history: [],
    };
}

function loadState(host: DoubleHostConfig, dir = STATE_DIR): DoubleState {
    return { ...initialState(host), ...readJson<Partial<DoubleState>>(statePath(dir), {}) };
}

function loadCue(dir: string): K3sBehaviourCue {
    return { ...DEFAULT_CUE, ...readJson<Partial<K3sBehaviourCue>>(cuePath(dir), {}) };
}

function logLine(host: DoubleHostConfig, level: string, msg: string): void {
    const line = `${new Date().toISOString()} ${host.hostName} k3s-test-double[${host.unit}]: level=${level} msg=${JSON.stringify(msg)}\n`;
    fs.mkdirSync(STATE_DIR, { recursive: true });
    fs.appendFileSync(path.join(STATE_DIR, "k3s.log"), line);
}

function ipJson(host: DoubleHostConfig, args: string[]): unknown {
    try {
        return JSON.parse(execFileSync(host.ipPath, ["-j", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })) as unknown;
    } catch {
        return [];
    }
}

interface IfaceInfo {
    name: string;
    mtu: number;
    ipv4: string[];
    ipv6: string[];
    kind: string | null;
    link: string | null;
}

function interfaces(host: DoubleHostConfig): IfaceInfo[] {
    const raw = ipJson(host, ["-d", "addr", "show"]);
    if (!Array.isArray(raw)) return [];
    const result: IfaceInfo[] = [];
    for (const item of raw as unknown[]) {
        if (!isRecord(item)) continue;
        const addrs = Array.isArray(item.addr_info) ? (item.addr_info as unknown[]) : [];
        const ipv4: string[] = [];
        const ipv6: string[] = [];
        for (const a of addrs) {
            if (!isRecord(a) || typeof a.local !== "string") continue;
            if (a.family === "inet") ipv4.push(a.local);
            else if (a.family === "inet6") ipv6.push(a.local);
        }
        const linkinfo = isRecord(item.linkinfo) ? item.linkinfo : {};
        const infoData = isRecord(linkinfo.info_data) ? linkinfo.info_data : {};
        result.push({
            name: String(item.ifname),
            mtu: Number(item.mtu),
            ipv4,
            ipv6,
            kind: typeof linkinfo.info_kind === "string" ? linkinfo.info_kind : null,
            link: typeof infoData.link === "string" ? infoData.link : null,
        });
    }
    return result;
}

// ---------------------------------------------------------------------------------------
// Cluster registry (shared dir)

function nodesDir(host: DoubleHostConfig): string {
    return path.join(host.clusterDir, "nodes");
}

function nodeFile(host: DoubleHostConfig, name: string): string {
    return path.join(nodesDir(host), `${name}.json`);
}

function allNodes(host: DoubleHostConfig): NodeRecord[] {
    let names: string[] = [];
    try {
        names = fs.readdirSync(nodesDir(host)).filter((f) => f.endsWith(".json"));
    } catch {
        return [];
    }
    return names
        .map((f) => readJson<NodeRecord | null>(path.join(nodesDir(host), f), null))
        .filter((n): n is NodeRecord => n !== null)
        .sort((a, b) => a.name.localeCompare(b.name));
}

function getNode(host: DoubleHostConfig, name: string): NodeRecord {
    const rec = readJson<NodeRecord | null>(nodeFile(host, name), null);
    if (!rec) fail(1, `Error from server (NotFound): nodes "${name}" not found`);
    return rec;
}

function saveNode(host: DoubleHostConfig, rec: NodeRecord): void {
    writeJsonAtomic(nodeFile(host, rec.name), rec);
}

interface Liveness {
    status: UnitStatus;
    ready: "True" | "False" | "Unknown";
    reason: string;
    message: string;
    since: number | null;
    up: boolean;
    etcdUp: boolean;
}

function liveness(rec: NodeRecord): Liveness {
    const st = readJson<Partial<DoubleState>>(statePath(rec.hostSideStateDir), {});
    const cue = loadCue(rec.hostSideStateDir);
    const status = st.status ?? "inactive";
    const startedAt = st.startedAt ?? null;
    if (status !== "active" || st.nodeName !== rec.name || startedAt === null) {
        return {
            status,
            ready: "Unknown",
            reason: "NodeStatusUnknown",
            message: "Kubelet stopped posting node status.",
            since: st.stoppedAt ?? null,
            up: false,
            etcdUp: false,
        };
    }
    const readyAt = startedAt + cue.readyDelayMs;
    if (cue.neverReady || Date.now() < readyAt) {
        const why = cue.neverReady ? "neverReady cue" : `ready delay ${cue.readyDelayMs}ms not over`;
        return {
            status,
            ready: "False",
            reason: "KubeletNotReady",
            message: `container runtime network not ready: NetworkReady=false (k3s-test-double: ${why})`,
            since: startedAt,
            up: false,
            etcdUp: false,
        };
    }
    return {
        status,
        ready: "True",
        reason: "KubeletReady",
        message: "kubelet is posting ready status",
        since: readyAt,
        up: true,
        etcdUp: !cue.etcdUnhealthy && !st.peerTlsMismatch,
    };
}

// ---------------------------------------------------------------------------------------
// Config loading and validation

interface LoadedConfig {
    files: LoadedConfigFile[];
    merged: Record<string, unknown>;
    sha: string;
}

function readConfigFiles(): LoadedConfig {
    const files: LoadedConfigFile[] = [];
    const paths: string[] = [];
    if (fs.existsSync(CONFIG_FILE)) paths.push(CONFIG_FILE);
    if (fs.existsSync(CONFIG_DROPIN_DIR)) {
        for (const f of fs
            .readdirSync(CONFIG_DROPIN_DIR)
            .filter((x) => x.endsWith(".yaml"))
            .sort()) {
            paths.push(path.join(CONFIG_DROPIN_DIR, f));
        }
    }
    const merged: Record<string, unknown> = {};
    const errors: string[] = [];
    for (const p of paths) {
        const text = fs.readFileSync(p, "utf8");
        files.push({ path: p, sha256: sha256(text), text });
        let doc: unknown;
        try {
            doc = YAML.parse(text) as unknown;
        } catch (e) {
            errors.push(`${p}: invalid YAML: ${(e as Error).message.split("\n")[0]}`);
            continue;
        }
        if (doc === null || doc === undefined) continue;
        if (!isRecord(doc)) {
            errors.push(`${p}: top level must be a mapping of k3s flags`);
            continue;
        }
        for (const [rawKey, value] of Object.entries(doc)) {
            if (rawKey.endsWith("+")) {
                const key = rawKey.slice(0, -1);
                const prev = merged[key];
                const prevList = prev === undefined ? [] : Array.isArray(prev) ? (prev as unknown[]) : [prev];
                merged[key] = [...prevList, ...(Array.isArray(value) ? (value as unknown[]) : [value])];
            } else {
                merged[rawKey] = value;
            }
        }
    }
    const sha = sha256(files.map((f) => `${f.path}\n${f.sha256}`).join("\n"));
    if (errors.length > 0) throw new StartError(errors.join("; "), { files, merged, sha });
    return { files, merged, sha };
}

class StartError extends Error {
    loaded: LoadedConfig | null;
    constructor(message: string, loaded: LoadedConfig | null) {
        super(message);
        this.loaded = loaded;
    }
}

function keyKinds(role: LabRole): Record<string, Kind> {
    return role === "server" ? { ...AGENT_KEYS, ...SERVER_ONLY_KEYS } : { ...AGENT_KEYS };
}

/** Normalised config: lists are string[], bools boolean, others string. */
type Normalised = Record<string, string | string[] | boolean>;

function normalise(role: LabRole, merged: Record<string, unknown>): { cfg: Normalised; errors: string[] } {
    const kinds = keyKinds(role);
    const cfg: Normalised = {};
    const errors: string[] = [];
    for (const [key, value] of Object.entries(merged)) {
        const kind = kinds[key];
        if (kind === undefined) {
            const serverOnly = role === "agent" && SERVER_ONLY_KEYS[key] !== undefined;
            errors.push(
                serverOnly
                    ? `flag provided but not defined: -${key} (config key "${key}" is a k3s server flag; this host runs k3s agent)`
                    : `flag provided but not defined: -${key} (unknown config key "${key}")`,
            );
            continue;
        }
        if (value === null || value === undefined) continue;
        const scalar = (v: unknown): string | null => (typeof v === "string" ? v : typeof v === "number" || typeof v === "boolean" ? String(v) : null);
        switch (kind) {
            case "bool":
                if (typeof value === "boolean") cfg[key] = value;
                else if (value === "true" || value === "false") cfg[key] = value === "true";
                else errors.push(`invalid boolean value ${JSON.stringify(value)} for flag -${key}`);
                break;
            case "int":
                if (typeof value === "number" && Number.isInteger(value)) cfg[key] = String(value);
                else if (typeof value === "string" && /^-?\d+$/.test(value)) cfg[key] = value;
                else errors.push(`invalid integer value ${JSON.stringify(value)} for flag -${key}`);
                break;
            case "string": {
                const s = scalar(value);
                if (s === null) errors.push(`invalid value for flag -${key}: expected a string, got ${Array.isArray(value) ? "a list" : "a mapping"}`);
                else cfg[key] = s;
                break;
            }
            case "list": {
                const items = Array.isArray(value) ? (value as unknown[]) : [value];
                const strs: string[] = [];
                for (const item of items) {
                    const s = scalar(item);
                    if (s === null) {
                        errors.push(`invalid value for flag -${key}: list items must be scalars`);
                        break;
                    }
                    // urfave/cli string slices split on commas
                    strs.push(
                        ...s
                            .split(",")
                            .map((x) => x.trim())
                            .filter((x) => x !== ""),
                    );
                }
                cfg[key] = strs;
                break;
            }
        }
    }
    return { cfg, errors };
}

function list(cfg: Normalised, key: string): string[] {
    const v = cfg[key];
    return Array.isArray(v) ? v : [];
}
function str(cfg: Normalised, key: string): string | undefined {
    const v = cfg[key];
    return typeof v === "string" ? v : undefined;
}
function bool(cfg: Normalised, key: string): boolean {
    return cfg[key] === true;
}

function criticalOf(cfg: Normalised): Record<string, string> {
    const result: Record<string, string> = {};
    for (const [key, def] of Object.entries(CRITICAL_DEFAULTS)) {
        const v = cfg[key];
        if (v === undefined) result[key] = def;
        else if (Array.isArray(v)) result[key] = key === "disable" ? [...v].sort().join(",") : v.join(",");
        else result[key] = String(v);
    }
    return result;
}

function urlHost(url: string): string | null {
    const m = /^https:\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(url);
    if (!m || m[1] === undefined) return null;
    return m[1].replace(/^\[|\]$/g, "");
}

// ---------------------------------------------------------------------------------------
// Unit control

function startUnit(host: DoubleHostConfig, action: "start" | "restart"): { ok: boolean; message: string } {
    return withLock(STATE_DIR, () => {
        const state = loadState(host);
        const cue = loadCue(STATE_DIR);
        // systemd: `start` of an active unit is a no-op; `restart` stops it first.
        if (action === "start" && state.status === "active") {
            return { ok: true, message: "" };
        }
        if (state.status === "active") logLine(host, "info", "Stopping Lightweight Kubernetes (k3s-test-double)...");
        if (action === "restart") state.restartCount += 1;
        state.startCount += 1;
        logLine(host, "info", `Starting k3s ${host.k3sVersion} (k3s-test-double) as ${host.role}`);
        let loaded: LoadedConfig | null = null;
        try {
            loaded = readConfigFiles();
            state.configFiles = loaded.files;
            const started = doStart(host, state, cue, loaded);
            state.status = "active";
            state.startedAt = Date.now();
            state.lastError = null;
            state.config = loaded.merged;
            state.configSha256 = loaded.sha;
            state.nodeName = started.nodeName;
            state.history.push({ at: new Date().toISOString(), atMs: Date.now(), action, result: "active", configSha256: loaded.sha });
            logLine(host, "info", `k3s-test-double started: node ${started.nodeName}, config sha256 ${loaded.sha.slice(0, 12)}`);
            return { ok: true, message: "" };
        } catch (e) {
            const message = e instanceof StartError || e instanceof ToolExit ? e.message : `internal error: ${String(e)}`;
            if (e instanceof StartError && e.loaded) state.configFiles = e.loaded.files;
            else if (loaded) state.configFiles = loaded.files;
            state.status = "failed";
            state.stoppedAt = Date.now();
            state.failureCount += 1;
            state.lastError = message;
            state.history.push({ at: new Date().toISOString(), atMs: Date.now(), action, result: "failed", error: message });
            logLine(host, "fatal", message);
            return { ok: false, message };
        } finally {
            state.history = state.history.slice(-HISTORY_LIMIT);
            writeJsonAtomic(statePath(STATE_DIR), state);
        }
    });
}

function stopUnit(host: DoubleHostConfig): void {
    withLock(STATE_DIR, () => {
        const state = loadState(host);
        if (state.status === "active") logLine(host, "info", "Stopped Lightweight Kubernetes (k3s-test-double).");
        if (state.status !== "inactive") state.stoppedAt = Date.now();
        state.status = "inactive";
        state.history.push({ at: new Date().toISOString(), atMs: Date.now(), action: "stop", result: "inactive" });
        state.history = state.history.slice(-HISTORY_LIMIT);
        writeJsonAtomic(statePath(STATE_DIR), state);
    });
}

function doStart(host: DoubleHostConfig, state: DoubleState, cue: K3sBehaviourCue, loaded: LoadedConfig): { nodeName: string } {
    if (cue.failOnStart !== null) throw new StartError(cue.failOnStart, loaded);
    const { cfg, errors } = normalise(host.role, loaded.merged);
    const ifaces = interfaces(host);
    const localIps = new Set(ifaces.flatMap((i) => [...i.ipv4, ...i.ipv6]));

    for (const ip of list(cfg, "node-ip")) {
        if (!isIP(ip)) errors.push(`invalid node-ip "${ip}": not an IP address`);
        else if (!localIps.has(ip)) errors.push(`failed to validate nodeIP: node IP: "${ip}" not found in the host's network interfaces`);
    }
    for (const ip of list(cfg, "node-external-ip")) {
        if (!isIP(ip)) errors.push(`invalid node-external-ip "${ip}": not an IP address`);
    }
    for (const key of ["cluster-cidr", "service-cidr"]) {
        for (const c of list(cfg, key)) if (!isCidr(c)) errors.push(`invalid ${key} "${c}": not a CIDR`);
    }
    const flannelIface = str(cfg, "flannel-iface");
    if (flannelIface !== undefined && !ifaces.some((i) => i.name === flannelIface)) {
        errors.push(`flannel exited: failed to find interface: error looking up interface ${flannelIface}: route ip+net: no such network interface`);
    }
    const backend = str(cfg, "flannel-backend");
    if (backend !== undefined && !FLANNEL_BACKENDS.includes(backend)) {
        errors.push(`invalid flannel backend "${backend}" (known: ${FLANNEL_BACKENDS.join(", ")})`);
    }
    const server = str(cfg, "server");
    if (host.role === "agent" && (server === undefined || server === "")) errors.push("--server is required");
    if (server !== undefined && server !== "") {
        if (urlHost(server) === null) errors.push(`invalid server URL "${server}": expected https://host[:port]`);
        if (str(cfg, "token") === undefined && str(cfg, "token-file") === undefined) errors.push("--token is required");
    }
    const tokenFile = str(cfg, "token-file");
    if (tokenFile !== undefined && !fs.existsSync(tokenFile)) errors.push(`failed to read token file ${tokenFile}: no such file or directory`);
    const mode = str(cfg, "write-kubeconfig-mode");
    if (mode !== undefined && !/^[0-7]{3,4}$/.test(mode)) errors.push(`invalid write-kubeconfig-mode "${mode}"`);
    if (errors.length > 0) throw new StartError(errors.join("; "), loaded);

    const baseName = str(cfg, "node-name") ?? host.hostName;
    const nodeName = bool(cfg, "with-node-id") ? `${baseName}-${state.nodeId}` : baseName;
    const lan = ifaces.find((i) => i.name === "eth0");
    const internalIPs = list(cfg, "node-ip").length > 0 ? list(cfg, "node-ip") : lan && lan.ipv4[0] ? [lan.ipv4[0]] : [];
    const externalIPs = list(cfg, "node-external-ip");
    const isServer = host.role === "server";
    const joining = server !== undefined && server !== "";
    const critical = isServer ? criticalOf(cfg) : {};

    return withLock(host.clusterDir, () => {
        const nodes = allNodes(host);
        // Joining server: critical values must match the server it joins.
        let clusterBackend = isServer ? (critical["flannel-backend"] ?? "vxlan") : "vxlan";
        if (joining && server !== undefined) {
            const target = urlHost(server) ?? "";
            const peer = nodes.find((n) => n.name !== nodeName && n.role === "server" && n.addresses.includes(target));
            if (!peer) {
                logLine(host, "warn", `server URL ${server} matches no registered server (the double does not block on it)`);
            } else {
                if (!isServer) clusterBackend = peer.critical["flannel-backend"] ?? "vxlan";
                if (isServer) {
                    const mismatched = Object.keys(CRITICAL_DEFAULTS).filter((k) => peer.critical[k] !== critical[k]);
                    if (mismatched.length > 0) {
                        throw new StartError(
                            `starting kubernetes: preparing server: failed to validate server configuration: critical configuration value mismatch between servers: ${mismatched
                                .map((k) => `${k} (this server ${JSON.stringify(critical[k])}, ${peer.name} ${JSON.stringify(peer.critical[k])})`)
                                .join(", ")}`,
                            loaded,
                        );
                    }
                }
            }
        }

        // Certificates (servers): added SANs apply on restart, removed ones need the regenerate file.
        let certSans = state.certSans;
        if (isServer) {
            const wanted = [
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "localhost",
                "127.0.0.1",
                "::1",
                host.hostName,
                nodeName,
                ...internalIPs,
                ...externalIPs,
                ...list(cfg, "tls-san"),
            ];
            const coveredBefore = certSans;
            const movedTo = internalIPs.find((ip) => coveredBefore.length > 0 && !coveredBefore.includes(ip));
            state.peerTlsMismatch =
                movedTo !== undefined
                    ? `tls: ${movedTo} does not match any of the certificate's IP SANs (${coveredBefore.filter((san) => /^\d/.test(san)).join(", ")})`
                    : null;
            if (state.peerTlsMismatch) logLine(host, "error", `etcd peer handshake failed: ${state.peerTlsMismatch}`);
            if (fs.existsSync(DYNAMIC_CERT_REGENERATE)) {
                certSans = [];
                fs.rmSync(DYNAMIC_CERT_REGENERATE, { force: true });
                logLine(host, "info", "dynamic-cert-regenerate found: regenerating serving certificates from scratch");
            }
            certSans = [...new Set([...certSans, ...wanted])];
            state.certSans = certSans;
            writeServerFiles(cfg, nodeName);
        }

        // flannel
        const existing = readJson<NodeRecord | null>(nodeFile(host, nodeName), null);
        const overwrite = existing?.annotations["flannel.alpha.coreos.com/public-ip-overwrite"] ?? "";
        const flannelIfaceInfo = flannelIface !== undefined ? ifaces.find((i) => i.name === flannelIface) : undefined;
        const publicIp = overwrite !== "" ? overwrite : (flannelIfaceInfo?.ipv4[0] ?? internalIPs[0] ?? null);
        state.flannel = flannelLink(host, cue, clusterBackend, flannelIface, internalIPs, ifaces, publicIp);

        const hostAddresses = ifaces.flatMap((i) => i.ipv4).filter((a) => !a.startsWith("127."));
        const labels: Record<string, string> = existing?.labels ?? {
            "kubernetes.io/hostname": nodeName,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": "k3s",
            ...Object.fromEntries(
                list(cfg, "node-label").map((l) => {
                    const i = l.indexOf("=");
                    return i < 0 ? [l, ""] : [l.slice(0, i), l.slice(i + 1)];
                }),
            ),
        };
        const etcd = isServer && (bool(cfg, "cluster-init") || joining || (existing?.etcd ?? false));
        if (isServer) {
            labels["node-role.kubernetes.io/control-plane"] = "true";
            labels["node-role.kubernetes.io/master"] = "true";
            if (etcd) labels["node-role.kubernetes.io/etcd"] = "true";
        }
        const taints: Taint[] =
            existing?.taints ??
            list(cfg, "node-taint").map((t) => {
                const [kv = "", effect = "NoSchedule"] = t.split(":");
                const [key = "", value] = kv.split("=");
                return value === undefined ? { key, effect } : { key, value, effect };
            });
        const annotations: Record<string, string> = { ...(existing?.annotations ?? {}) };
        annotations["k3s.io/hostname"] = host.hostName;
        annotations["k3s.io/internal-ip"] = internalIPs.join(",");
        if (externalIPs.length > 0) annotations["k3s.io/external-ip"] = externalIPs.join(",");
        else delete annotations["k3s.io/external-ip"];
        annotations["k3s.io/node-config-hash"] = loaded.sha.slice(0, 52).toUpperCase();
        annotations["k3s.io/node-args"] = JSON.stringify(nodeArgs(host.role, cfg));
        annotations["node.alpha.kubernetes.io/ttl"] = "0";
        if (clusterBackend !== "none" && publicIp !== null) {
            annotations["flannel.alpha.coreos.com/public-ip"] = publicIp;
            annotations["flannel.alpha.coreos.com/backend-type"] = clusterBackend === "wireguard-native" ? "extension" : clusterBackend;
            annotations["flannel.alpha.coreos.com/kube-subnet-manager"] = "true";
        }
        const rec: NodeRecord = {
            name: nodeName,
            uid: existing?.uid ?? crypto.randomUUID(),
            hostName: host.hostName,
            role: host.role,
            etcd,
            hostSideStateDir: host.hostSideStateDir,
            registeredAt: existing?.registeredAt ?? new Date().toISOString(),
            labels,
            annotations,
            taints,
            unschedulable: existing?.unschedulable ?? false,
            internalIPs,
            externalIPs,
            addresses: [...new Set([...hostAddresses, ...internalIPs, ...externalIPs, host.hostName, nodeName, ...list(cfg, "tls-san")])],
            kubeletVersion: host.k3sVersion,
            critical,
        };
        saveNode(host, rec);
        return { nodeName };
    });
}

function nodeArgs(role: LabRole, cfg: Normalised): string[] {
    const args: string[] = [role];
    for (const [k, v] of Object.entries(cfg)) {
        if (Array.isArray(v)) for (const item of v) args.push(`--${k}`, k === "token" ? "********" : item);
        else if (typeof v === "boolean") args.push(`--${k}=${String(v)}`);
        else args.push(`--${k}`, k === "token" || k === "agent-token" ? "********" : v);
    }
    return args;
}

function writeServerFiles(cfg: Normalised, nodeName: string): void {
    const fake = (what: string): string => Buffer.from(`k3s-test-double fake ${what} for ${nodeName}; no API server behind it\n`).toString("base64");
    const kubeconfig = {
        apiVersion: "v1",
        clusters: [{ cluster: { "certificate-authority-data": fake("CA"), server: "https://127.0.0.1:6443" }, name: "default" }],
        contexts: [{ context: { cluster: "default", user: "default" }, name: "default" }],
        "current-context": "default",
        kind: "Config",
        preferences: {},
        users: [{ name: "default", user: { "client-certificate-data": fake("client certificate"), "client-key-data": fake("client key") } }],
    };
    const target = str(cfg, "write-kubeconfig") ?? KUBECONFIG_FILE;
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const real = loadCue(STATE_DIR).kubeconfig;
    fs.writeFileSync(target, real ?? "# k3s-test-double: fake kubeconfig (test double, not k3s)\n" + YAML.stringify(kubeconfig));
    fs.chmodSync(target, parseInt(str(cfg, "write-kubeconfig-mode") ?? "600", 8));
    fs.mkdirSync(SERVER_DIR, { recursive: true });
    const tokenPath = path.join(SERVER_DIR, "token");
    let token = str(cfg, "token");
    if (token === undefined) {
        const tf = str(cfg, "token-file");
        token = tf !== undefined ? fs.readFileSync(tf, "utf8").trim() : fs.existsSync(tokenPath) ? fs.readFileSync(tokenPath, "utf8").trim() : undefined;
    }
    token ??= `K10${crypto.randomBytes(32).toString("hex")}::server:${crypto.randomBytes(16).toString("hex")}`;
    fs.writeFileSync(tokenPath, token + "\n", { mode: 0o600 });
    fs.writeFileSync(path.join(SERVER_DIR, "node-token"), token + "\n", { mode: 0o600 });
}

function flannelLink(
    host: DoubleHostConfig,
    cue: K3sBehaviourCue,
    backend: string,
    flannelIface: string | undefined,
    internalIPs: string[],
    ifaces: IfaceInfo[],
    publicIp: string | null,
): FlannelState {
    if (backend !== "vxlan") return { backend, parent: null, mtu: null, recreated: false, publicIp, note: `backend ${backend}: no flannel.1` };
    const parentInfo =
        flannelIface !== undefined
            ? ifaces.find((i) => i.name === flannelIface)
            : (ifaces.find((i) => internalIPs.some((ip) => i.ipv4.includes(ip))) ?? ifaces.find((i) => i.name === "eth0"));
    if (!parentInfo) return { backend, parent: null, mtu: null, recreated: false, publicIp, note: "no parent interface found" };
    const current = ifaces.find((i) => i.name === "flannel.1");
    const ip = (args: string[]): void => {
        execFileSync(host.ipPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    };
    try {
        let recreated = false;
        if (current && current.link !== parentInfo.name) {
            if (cue.keepStaleFlannelLink) {
                logLine(host, "warn", `flannel.1 stays on ${current.link ?? "?"} (keepStaleFlannelLink cue), wanted ${parentInfo.name}`);
                return { backend, parent: current.link, mtu: current.mtu, recreated: false, publicIp, note: "stale link kept (cue)" };
            }
            ip(["link", "del", "flannel.1"]);
            recreated = true;
        }
        if (!current || recreated) {
            const local = parentInfo.ipv4[0];
            ip([
                "link",
                "add",
                "flannel.1",
                "type",
                "vxlan",
                "id",
                "1",
                "dev",
                parentInfo.name,
                ...(local !== undefined ? ["local", local] : []),
                "dstport",
                "8472",
                "nolearning",
            ]);
            ip(["link", "set", "flannel.1", "mtu", String(parentInfo.mtu - 50), "up"]);
            logLine(host, "info", `flannel.1 ${recreated ? "recreated" : "created"} on ${parentInfo.name}, mtu ${parentInfo.mtu - 50}`);
            return { backend, parent: parentInfo.name, mtu: parentInfo.mtu - 50, recreated, publicIp };
        }
        return { backend, parent: current.link, mtu: current.mtu, recreated: false, publicIp };
    } catch (e) {
        return { backend, parent: parentInfo.name, mtu: null, recreated: false, publicIp, note: `flannel.1 not managed: ${String(e).split("\n")[0]}` };
    }
}

// ---------------------------------------------------------------------------------------
// Service-manager stand-in for every unit but k3s/k3s-agent (TEST DOUBLE, not systemd)
//
// A unit exists when its file is in the host's (private) /etc/systemd/system. Nothing is
// executed: ExecStart is never run; the unit's state lives in services.json and follows the
// cues in service-cue.json (failRestarts, exitAtStart/exitAfterMs). Every call is recorded
// as a ServiceEvent with the double's wall clock and CLOCK_MONOTONIC (µs, what systemd's
// *TimestampMonotonic properties use). daemon-reload snapshots the unit files' sha256; a
// start of a unit whose file changed since then warns like systemd and keeps the old sha.

const UNIT_DIR = "/etc/systemd/system";
const K3S_UNITS = ["k3s", "k3s-agent"];
const SERVICE_EVENT_LIMIT = 5000;
const SERVICE_VERBS = [
    "start",
    "restart",
    "try-restart",
    "reload-or-restart",
    "force-reload",
    "reload",
    "stop",
    "enable",
    "disable",
    "is-active",
    "is-failed",
    "is-enabled",
    "reset-failed",
    "status",
    "show",
];
const DEFAULT_SERVICE_CUE: ServiceBehaviourCue = { failRestarts: 0, exitAtStart: false, exitAfterMs: 0, gen: 0 };

function isK3sUnit(u: string): boolean {
    return K3S_UNITS.includes(unitName(u));
}

/** "nebula" -> "nebula.service"; names with a unit suffix are kept. */
function fullUnit(u: string): string {
    return /\.(service|socket|timer|target|path|mount|slice)$/.test(u) ? u : `${u}.service`;
}

function monoUs(): number {
    return Number(process.hrtime.bigint() / 1000n);
}

function systemdTime(ms: number | null): string {
    if (ms === null) return "";
    const d = new Date(ms);
    const day = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][d.getUTCDay()] ?? "";
    return `${day} ${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 19)} UTC`;
}

function unitFileText(unit: string): string | null {
    try {
        return fs.readFileSync(path.join(UNIT_DIR, unit), "utf8");
    } catch {
        return null;
    }
}

function unitDescription(unit: string): string {
    const m = /^Description=(.*)$/m.exec(unitFileText(unit) ?? "");
    return m?.[1]?.trim() ?? unit;
}

function servicesPath(): string {
    return path.join(STATE_DIR, "services.json");
}

function loadServices(): ServiceManagerState {
    const s = readJson<Partial<ServiceManagerState>>(servicesPath(), {});
    return { units: s.units ?? {}, daemonReloads: s.daemonReloads ?? 0, events: s.events ?? [] };
}

function serviceCue(unit: string): ServiceBehaviourCue {
    const all = readJson<Record<string, Partial<ServiceBehaviourCue>>>(path.join(STATE_DIR, "service-cue.json"), {});
    return { ...DEFAULT_SERVICE_CUE, ...(all[unit] ?? {}) };
}

function newUnitState(unit: string): ServiceUnitState {
    return {
        unit,
        status: "inactive",
        result: "success",
        enabled: false,
        activeEnterMs: null,
        activeEnterMonoUs: null,
        inactiveEnterMs: null,
        inactiveEnterMonoUs: null,
        diesAtMonoUs: null,
        startCount: 0,
        restartCount: 0,
        stopCount: 0,
        failureCount: 0,
        loadedSha256: null,
        cueGen: 0,
        cueFailuresUsed: 0,
    };
}

function serviceLog(host: DoubleHostConfig, unit: string, msg: string, atMs = Date.now()): void {
    fs.mkdirSync(STATE_DIR, { recursive: true });
    fs.appendFileSync(path.join(STATE_DIR, "services.log"), `${new Date(atMs).toISOString()} ${host.hostName} systemd-test-double[1]: ${unit}: ${msg}\n`);
}

/** An exitAtStart unit whose time has come is failed from then on. */
function applyDeath(host: DoubleHostConfig, u: ServiceUnitState, nowUs: number): void {
    if (u.status !== "active" || u.diesAtMonoUs === null || nowUs < u.diesAtMonoUs) return;
    const diedMs = Date.now() - Math.max(0, Math.round((nowUs - u.diesAtMonoUs) / 1000));
    u.status = "failed";
    u.result = "exit-code";
    u.failureCount += 1;
    u.inactiveEnterMonoUs = u.diesAtMonoUs;
    u.inactiveEnterMs = diedMs;
    u.diesAtMonoUs = null;
    serviceLog(host, u.unit, "Main process exited, code=exited, status=1/FAILURE (exitAtStart cue)", diedMs);
    serviceLog(host, u.unit, "Failed with result 'exit-code'.", diedMs);
}

interface SystemctlFlags {
    quiet: boolean;
    value: boolean;
    props: string[];
    now: boolean;
}

/** One verb for units of which at least one is not k3s: each unit in turn, first error's exit code. */
function serviceSystemctl(host: DoubleHostConfig, cmd: string, units: string[], flags: SystemctlFlags): number {
    if (units.length === 0) fail(1, "Too few arguments.");
    let rc = 0;
    let first = true;
    for (const raw of units) {
        let code: number;
        if (isK3sUnit(raw)) {
            try {
                code = systemctl(host, [
                    cmd,
                    raw,
                    ...(flags.quiet ? ["--quiet"] : []),
                    ...(flags.now ? ["--now"] : []),
                    ...flags.props.flatMap((p) => ["-p", p]),
                ]);
            } catch (e) {
                if (!(e instanceof ToolExit)) throw e;
                complain(e.message);
                code = e.code;
            }
        } else {
            if (cmd === "show" && !first) say("");
            code = withLock(STATE_DIR, () => serviceOne(host, cmd, fullUnit(raw), flags));
        }
        first = false;
        if (rc === 0 && code !== 0) rc = code;
    }
    return rc;
}

function serviceDaemonReload(): void {
    withLock(STATE_DIR, () => {
        const st = loadServices();
        st.daemonReloads += 1;
        let files: string[] = [];
        try {
            files = fs.readdirSync(UNIT_DIR).filter((f) => fs.statSync(path.join(UNIT_DIR, f)).isFile());
        } catch {
            files = [];
        }
        for (const f of files) {
            if (isK3sUnit(f)) continue;
            const u = st.units[f] ?? newUnitState(f);
            u.loadedSha256 = sha256(unitFileText(f) ?? "");
            st.units[f] = u;
        }
        st.events.push({ unit: "", verb: "daemon-reload", atMs: Date.now(), monoUs: monoUs(), exitCode: 0, result: "active" });
        st.events = st.events.slice(-SERVICE_EVENT_LIMIT);
        writeJsonAtomic(servicesPath(), st);
    });
}

function serviceOne(host: DoubleHostConfig, cmd: string, unit: string, flags: SystemctlFlags): number {
    const st = loadServices();
    const nowUs = monoUs();
    const text = unitFileText(unit);
    const exists = text !== null;
    const u = st.units[unit] ?? newUnitState(unit);
    applyDeath(host, u, nowUs);
    const event: ServiceEvent = { unit, verb: cmd, atMs: Date.now(), monoUs: nowUs, exitCode: 0, result: u.status };
    const known = exists || st.units[unit] !== undefined;

    const load = (): void => {
        // systemd loads a unit on first use; later edits need daemon-reload.
        const current = sha256(text ?? "");
        if (u.loadedSha256 === null) u.loadedSha256 = current;
        else if (u.loadedSha256 !== current) {
            complain(
                `Warning: The unit file, source configuration file or drop-ins of ${unit} changed on disk. Run 'systemctl daemon-reload' to reload units.`,
            );
            event.staleUnitFile = true;
        }
        event.unitFileSha256 = u.loadedSha256;
    };
    const startAttempt = (action: "start" | "restart"): number => {
        load();
        const cue = serviceCue(unit);
        if (cue.gen !== u.cueGen) {
            u.cueGen = cue.gen;
            u.cueFailuresUsed = 0;
        }
        const t = monoUs();
        const tMs = Date.now();
        // The event's time is when the (re)start took effect: equals ActiveEnterTimestampMonotonic.
        event.monoUs = t;
        event.atMs = tMs;
        if (u.status === "active") {
            u.inactiveEnterMonoUs = t;
            u.inactiveEnterMs = tMs;
            serviceLog(host, unit, "Stopping (restart).");
        }
        if (action === "restart") u.restartCount += 1;
        u.startCount += 1;
        u.diesAtMonoUs = null;
        if (u.cueFailuresUsed < cue.failRestarts) {
            u.cueFailuresUsed += 1;
            u.status = "failed";
            u.result = "exit-code";
            u.failureCount += 1;
            u.inactiveEnterMonoUs = t;
            u.inactiveEnterMs = tMs;
            serviceLog(host, unit, `Control process exited, code=exited, status=1/FAILURE (failRestarts cue, ${u.cueFailuresUsed}/${cue.failRestarts})`);
            complain(`Job for ${unit} failed because the control process exited with error code.`);
            complain(`See "systemctl status ${unit}" and "journalctl -xeu ${unit}" for details.`);
            return 1;
        }
        u.status = "active";
        u.result = "success";
        u.activeEnterMonoUs = t;
        u.activeEnterMs = tMs;
        if (cue.exitAtStart) u.diesAtMonoUs = t + Math.max(0, cue.exitAfterMs) * 1000;
        serviceLog(host, unit, `Started ${unitDescription(unit)} (test double: nothing runs${cue.exitAtStart ? `; exits after ${cue.exitAfterMs} ms` : ""}).`);
        return 0;
    };
    const notFound = (verb: string): number => {
        complain(`Failed to ${verb} ${unit}: Unit ${unit} not found.`);
        return 5;
    };

    let code = 0;
    switch (cmd) {
        case "start":
        case "restart":
        case "try-restart":
        case "reload-or-restart":
        case "force-reload":
            if (!exists) code = notFound(cmd === "start" ? "start" : "restart");
            else if (cmd === "start" && u.status === "active") {
                load();
                event.noop = true;
            } else if (cmd === "try-restart" && u.status !== "active") event.noop = true;
            else code = startAttempt(cmd === "start" ? "start" : "restart");
            break;
        case "reload":
            if (!exists) code = notFound("reload");
            else if (u.status !== "active") {
                complain(`Failed to reload ${unit}: Job type reload is not applicable for unit ${unit}.`);
                code = 1;
            } else {
                load();
                serviceLog(host, unit, "Reloaded (test double: nothing runs).");
            }
            break;
        case "stop":
            if (!known) code = notFound("stop");
            else {
                if (u.status === "active") {
                    u.inactiveEnterMonoUs = monoUs();
                    u.inactiveEnterMs = Date.now();
                    serviceLog(host, unit, "Stopped.");
                }
                u.stopCount += 1;
                u.status = "inactive";
                u.diesAtMonoUs = null;
            }
            break;
        case "enable":
        case "disable":
            if (!exists) {
                complain(`Failed to ${cmd} unit: Unit file ${unit} does not exist.`);
                code = 1;
                break;
            }
            if (cmd === "enable" && !u.enabled && !flags.quiet)
                complain(`Created symlink /etc/systemd/system/multi-user.target.wants/${unit} → /etc/systemd/system/${unit}. (test double: no symlink)`);
            if (cmd === "disable" && u.enabled && !flags.quiet)
                complain(`Removed "/etc/systemd/system/multi-user.target.wants/${unit}". (test double: no symlink)`);
            u.enabled = cmd === "enable";
            if (flags.now) {
                if (cmd === "enable") code = u.status === "active" ? 0 : startAttempt("start");
                else if (u.status === "active") {
                    u.inactiveEnterMonoUs = monoUs();
                    u.inactiveEnterMs = Date.now();
                    u.stopCount += 1;
                    u.status = "inactive";
                    u.diesAtMonoUs = null;
                    serviceLog(host, unit, "Stopped.");
                }
            }
            break;
        case "is-active":
            if (!flags.quiet) say(u.status);
            code = u.status === "active" ? 0 : 3;
            break;
        case "is-failed":
            if (!flags.quiet) say(u.status);
            code = u.status === "failed" ? 0 : 1;
            break;
        case "is-enabled":
            if (!exists) {
                if (!flags.quiet) complain(`Failed to get unit file state for ${unit}: No such file or directory`);
                code = 1;
            } else {
                if (!flags.quiet) say(u.enabled ? "enabled" : "disabled");
                code = u.enabled ? 0 : 1;
            }
            break;
        case "reset-failed":
            if (u.status === "failed") u.status = "inactive";
            u.result = "success";
            break;
        case "status": {
            if (!known) {
                complain(`Unit ${unit} could not be found.`);
                code = 4;
                break;
            }
            const since = u.status === "active" ? u.activeEnterMs : u.inactiveEnterMs;
            const sub = u.status === "active" ? "active (running)" : u.status === "failed" ? "failed (Result: exit-code)" : "inactive (dead)";
            say(`● ${unit} - ${unitDescription(unit)} (systemd TEST DOUBLE: nothing runs)`);
            say(
                `     Loaded: ${exists ? `loaded (${UNIT_DIR}/${unit}; ${u.enabled ? "enabled" : "disabled"}; preset: enabled)` : "not-found (Reason: Unit " + unit + " not found.)"}`,
            );
            say(`     Active: ${sub}${since !== null ? ` since ${systemdTime(since)}` : ""}`);
            say("");
            for (const line of serviceJournal(unit, 10)) say(line);
            code = u.status === "active" ? 0 : 3;
            break;
        }
        case "show": {
            const all: Record<string, string> = {
                Id: unit,
                Names: unit,
                Description: exists ? unitDescription(unit) : unit,
                LoadState: exists ? "loaded" : "not-found",
                ActiveState: u.status,
                SubState: u.status === "active" ? "running" : u.status === "failed" ? "failed" : "dead",
                Result: u.result,
                UnitFileState: exists ? (u.enabled ? "enabled" : "disabled") : "",
                FragmentPath: exists ? `${UNIT_DIR}/${unit}` : "",
                NeedDaemonReload: exists && u.loadedSha256 !== null && u.loadedSha256 !== sha256(text ?? "") ? "yes" : "no",
                MainPID: "0",
                NRestarts: "0",
                ActiveEnterTimestamp: systemdTime(u.activeEnterMs),
                ActiveEnterTimestampMonotonic: String(u.activeEnterMonoUs ?? 0),
                ExecMainStartTimestamp: systemdTime(u.activeEnterMs),
                ExecMainStartTimestampMonotonic: String(u.activeEnterMonoUs ?? 0),
                InactiveEnterTimestamp: systemdTime(u.inactiveEnterMs),
                InactiveEnterTimestampMonotonic: String(u.inactiveEnterMonoUs ?? 0),
            };
            for (const [k, v] of Object.entries(all)) {
                if (flags.props.length > 0 && !flags.props.includes(k)) continue;
                say(flags.value ? v : `${k}=${v}`);
            }
            break;
        }
        default:
            return unsupported(`systemctl command ${JSON.stringify(cmd)} for ${unit}`);
    }
    event.exitCode = code;
    event.result = known || exists ? u.status : "not-found";
    if (exists || st.units[unit] !== undefined) st.units[unit] = u;
    st.events.push(event);
    st.events = st.events.slice(-SERVICE_EVENT_LIMIT);
    writeJsonAtomic(servicesPath(), st);
    return code;
}

function serviceJournal(unit: string, n: number | null): string[] {
    let text = "";
    try {
        text = fs.readFileSync(path.join(STATE_DIR, "services.log"), "utf8");
    } catch {
        return [];
    }
    const lines = text.split("\n").filter((l) => l.includes(` ${unit}: `));
    return n === null ? lines : lines.slice(-n);
}

// ---------------------------------------------------------------------------------------
// systemctl / journalctl shims

function unitName(u: string): string {
    return u.replace(/\.service$/, "");
}

function systemctl(host: DoubleHostConfig, argv: string[]): number {
    let quiet = false;
    let value = false;
    const props: string[] = [];
    const positional: string[] = [];
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i] ?? "";
        if (a === "-q" || a === "--quiet") quiet = true;
        else if (a === "--value") value = true;
        else if (a === "-p" || a === "--property") props.push(...(argv[++i] ?? "").split(","));
        else if (a.startsWith("--property=")) props.push(...a.slice(11).split(","));
        else if (["--no-pager", "--no-block", "--now", "-l", "--full", "--system", "--no-ask-password", "--no-legend", "--plain"].includes(a)) continue;
        else if (a.startsWith("--lines=") || a === "-n") {
            if (a === "-n") i++;
        } else if (a.startsWith("-")) fail(1, `systemctl (k3s-test-double shim): unrecognized option '${a}'`);
        else positional.push(a);
    }
    const [cmd, ...units] = positional;
    if (cmd !== undefined && SERVICE_VERBS.includes(cmd) && units.some((u) => !isK3sUnit(u))) {
        return serviceSystemctl(host, cmd, units, { quiet, value, props, now: argv.includes("--now") });
    }
    const known = (u: string): boolean => unitName(u) === host.unit;
    const notFound = (verb: string, u: string): never => fail(5, `Failed to ${verb} ${unitName(u)}.service: Unit ${unitName(u)}.service not found.`);
    switch (cmd) {
        case "daemon-reload":
        case "daemon-reexec":
            serviceDaemonReload();
            return 0;
        case "start":
        case "restart":
        case "try-restart":
        case "reload-or-restart":
        case "force-reload": {
            if (units.length === 0) fail(1, `Too few arguments.`);
            for (const u of units) {
                if (!known(u)) notFound(cmd === "start" ? "start" : "restart", u);
                if (cmd === "try-restart" && loadState(host).status !== "active") continue;
                const r = startUnit(host, cmd === "start" ? "start" : "restart");
                if (!r.ok) {
                    complain(`Job for ${host.unit}.service failed because the control process exited with error code.`);
                    complain(`See "systemctl status ${host.unit}.service" and "journalctl -xeu ${host.unit}.service" for details.`);
                    return 1;
                }
            }
            return 0;
        }
        case "stop":
            for (const u of units) {
                if (!known(u)) notFound("stop", u);
                stopUnit(host);
            }
            return 0;
        case "enable":
        case "disable":
            for (const u of units) {
                if (!known(u)) notFound(cmd, u);
                withLock(STATE_DIR, () => {
                    const st = loadState(host);
                    st.enabled = cmd === "enable";
                    writeJsonAtomic(statePath(STATE_DIR), st);
                });
                if (argv.includes("--now")) {
                    if (cmd === "enable") {
                        if (!startUnit(host, "start").ok) return 1;
                    } else stopUnit(host);
                }
            }
            return 0;
        case "is-enabled": {
            let rc = 0;
            for (const u of units) {
                const s = known(u) ? (loadState(host).enabled ? "enabled" : "disabled") : "not-found";
                if (s !== "enabled") rc = 1;
                if (!quiet) say(s);
            }
            return rc;
        }
        case "is-active":
        case "is-failed": {
            let rc = cmd === "is-active" ? 0 : 1;
            for (const u of units) {
                const s = known(u) ? loadState(host).status : "inactive";
                if (cmd === "is-active" && s !== "active") rc = 3;
                if (cmd === "is-failed" && s === "failed") rc = 0;
                if (!quiet) say(s);
            }
            return rc;
        }
        case "reset-failed":
            withLock(STATE_DIR, () => {
                const st = loadState(host);
                if (st.status === "failed") st.status = "inactive";
                writeJsonAtomic(statePath(STATE_DIR), st);
            });
            return 0;
        case "show": {
            const u = units[0] ?? "";
            const st = known(u) ? loadState(host) : null;
            const all: Record<string, string> = {
                Id: `${unitName(u)}.service`,
                LoadState: st ? "loaded" : "not-found",
                ActiveState: st?.status ?? "inactive",
                SubState: st?.status === "active" ? "running" : st?.status === "failed" ? "failed" : "dead",
                NRestarts: String(st?.restartCount ?? 0),
                UnitFileState: st ? (st.enabled ? "enabled" : "disabled") : "",
                Result: st?.status === "failed" ? "exit-code" : "success",
            };
            for (const [k, v] of Object.entries(all)) {
                if (props.length > 0 && !props.includes(k)) continue;
                say(value ? v : `${k}=${v}`);
            }
            return 0;
        }
        case "status": {
            const u = units[0] ?? host.unit;
            if (!known(u)) fail(4, `Unit ${unitName(u)}.service could not be found.`);
            const st = loadState(host);
            const since = st.status === "active" ? st.startedAt : st.stoppedAt;
            const when = since !== null ? ` since ${new Date(since).toUTCString()}` : "";
            const sub = st.status === "active" ? "active (running)" : st.status === "failed" ? "failed (Result: exit-code)" : "inactive (dead)";
            say(`● ${host.unit}.service - Lightweight Kubernetes (k3s-test-double, not k3s)`);
            say(`     Loaded: loaded (/etc/systemd/system/${host.unit}.service; ${st.enabled ? "enabled" : "disabled"}; preset: enabled)`);
            say(`     Active: ${sub}${when}`);
            say("");
            for (const line of journalLines(10)) say(line);
            return st.status === "active" ? 0 : 3;
        }
        default:
            return unsupported(`systemctl command ${JSON.stringify(argv.join(" "))}`);
    }
}

function journalLines(n: number | null): string[] {
    let text = "";
    try {
        text = fs.readFileSync(path.join(STATE_DIR, "k3s.log"), "utf8");
    } catch {
        return [];
    }
    const lines = text.split("\n").filter((l) => l !== "");
    return n === null ? lines : lines.slice(-n);
}

function journalctl(host: DoubleHostConfig, argv: string[]): number {
    const units: string[] = [];
    let n: number | null = null;
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i] ?? "";
        if (a === "-u" || a === "--unit") units.push(argv[++i] ?? "");
        else if (a.startsWith("--unit=")) units.push(a.slice(7));
        else if (a.startsWith("-u") && a.length > 2) units.push(a.slice(2));
        else if (a === "-n" || a === "--lines") n = Number(argv[++i] ?? "10");
        else if (a.startsWith("--lines=")) n = Number(a.slice(8));
        else if (a === "-e" && n === null) n = 1000;
        else if (["-x", "-e", "--no-pager", "-q", "--quiet", "-xe", "-xeu", "-b", "--boot", "-o", "cat"].includes(a)) continue;
        else if (a.startsWith("--since") || a.startsWith("--output")) continue;
        else unsupported(`journalctl argument ${JSON.stringify(a)}`);
    }
    if (units.length > 0 && !units.some((u) => unitName(u) === host.unit)) {
        const lines = units.filter((u) => !isK3sUnit(u)).flatMap((u) => serviceJournal(fullUnit(u), n));
        if (lines.length === 0) say("-- No entries --");
        for (const line of lines) say(line);
        return 0;
    }
    for (const line of journalLines(n)) say(line);
    return 0;
}

// ---------------------------------------------------------------------------------------
// kubectl

interface KubectlArgs {
    positional: string[];
    flags: Map<string, string>;
}

const KUBECTL_VALUE_FLAGS = new Set([
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
]);
const KUBECTL_BOOL_FLAGS = new Set([
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

function parseKubectl(argv: string[]): KubectlArgs {
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
            const canonical = name === "--output" ? "-o" : name === "--namespace" ? "-n" : name;
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

function nodeObject(rec: NodeRecord): Record<string, unknown> {
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
function requestTimeoutMs(value: string | undefined): number {
    if (value === undefined || value === "0") return 0;
    const match = /^(\d+)(ms|s|m|h)?$/.exec(value);
    if (!match) fail(1, `error: invalid argument "${value}" for "--request-timeout" flag`);
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? "s"] ?? 1000;
    return Number(match[1]) * unit;
}

/** A server whose API never answers: what the kubectl call sees, bounded only by its own flag. */
function hangOnUnansweringApi(host: DoubleHostConfig, flags: Map<string, string>): void {
    const hangs =
        host.role === "server" ? loadCue(STATE_DIR).apiHangs : allNodes(host).some((n) => n.role === "server" && loadCue(n.hostSideStateDir).apiHangs);
    if (!hangs) return;
    const limit = requestTimeoutMs(flags.get("--request-timeout"));
    sleepSync(limit === 0 ? WAIT_MAX_MS : limit);
    fail(1, "Unable to connect to the server: net/http: request canceled (Client.Timeout exceeded while awaiting headers)");
}

function kubectl(host: DoubleHostConfig, argv: string[]): number {
    const { positional, flags } = parseKubectl(argv);
    const [verb, ...rest] = positional;
    hangOnUnansweringApi(host, flags);
    if (host.role !== "server") {
        // An agent has no admin kubeconfig; its kubelet's credentials reach the API through the
        // agent's local load balancer (127.0.0.1:6444) and, under the Node authorizer, may read nodes.
        if (flags.get("--kubeconfig") !== AGENT_KUBELET_KUBECONFIG)
            fail(1, "The connection to the server localhost:8080 was refused - did you specify the right host or port?");
        if (loadState(host).status !== "active") fail(1, "The connection to the server 127.0.0.1:6444 was refused - did you specify the right host or port?");
        if (!allNodes(host).some((n) => n.role === "server" && liveness(n).status === "active")) {
            fail(1, "The connection to the server 127.0.0.1:6444 was refused - did you specify the right host or port?");
        }
        if (verb !== "get")
            fail(
                1,
                `Error from server (Forbidden): nodes is forbidden: User "system:node:${loadState(host).nodeName ?? host.hostName}" cannot ${verb ?? "use"} resource "nodes"`,
            );
        return kubectlGet(host, rest, flags);
    }
    // The API server lives on servers only, and only while k3s runs.
    if (loadState(host).status !== "active") fail(1, "The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?");
    switch (verb) {
        case "get":
            return kubectlGet(host, rest, flags);
        case "wait":
            return kubectlWait(host, rest, flags);
        case "cordon":
        case "uncordon":
            return kubectlCordon(host, verb, nodeNames(rest), true);
        case "drain":
            return kubectlDrain(host, nodeNames(rest), flags);
        case "annotate":
        case "label":
            return kubectlMeta(host, verb, rest, flags);
        case "delete": {
            const names = nodeNames(rest);
            withLock(host.clusterDir, () => {
                for (const n of names) {
                    getNode(host, n);
                    fs.rmSync(nodeFile(host, n), { force: true });
                    say(`node "${n}" deleted`);
                }
            });
            return 0;
        }
        default:
            return unsupported(`kubectl invocation ${JSON.stringify(argv.join(" "))}`);
    }
}

/** Accepts `node NAME...`, `nodes NAME`, `node/NAME`, or bare names (cordon/drain). */
function nodeNames(rest: string[], allowBare = true): string[] {
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

function kubectlGet(host: DoubleHostConfig, rest: string[], flags: Map<string, string>): number {
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

function etcdHealth(host: DoubleHostConfig): { ok: boolean; detail: string } {
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

function kubectlRaw(host: DoubleHostConfig, rawPath: string): number {
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

function kubectlWait(host: DoubleHostConfig, rest: string[], flags: Map<string, string>): number {
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

function kubectlCordon(host: DoubleHostConfig, verb: "cordon" | "uncordon", names: string[], print: boolean): number {
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
            saveNode(host, rec);
            if (print) say(`node/${name} ${verb}ed`);
        }
    });
    return 0;
}

function kubectlDrain(host: DoubleHostConfig, names: string[], flags: Map<string, string>): number {
    if (names.length === 0) fail(1, "error: USAGE: drain NODE [flags]");
    for (const name of names) {
        kubectlCordon(host, "cordon", [name], false);
        say(`node/${name} cordoned`);
        if (flags.get("--ignore-daemonsets") !== "true") {
            fail(
                1,
                `error: unable to drain node "${name}" due to error: cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): kube-system/svclb-traefik-${name} (k3s-test-double assumes DaemonSet pods on every node), continuing command...\nThere are pending nodes to be drained:\n ${name}`,
            );
        }
        if (flags.has("--ignore-daemonsets")) complain(`Warning: ignoring DaemonSet-managed Pods: kube-system/svclb-traefik-${name}`);
        say(`node/${name} drained`);
    }
    return 0;
}

const META_KEY = /^(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

function kubectlMeta(host: DoubleHostConfig, verb: "annotate" | "label", rest: string[], flags: Map<string, string>): number {
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

// ---------------------------------------------------------------------------------------
// jsonpath (the subset rollout scripts use)

type Seg =
    | { t: "field"; name: string }
    | { t: "index"; i: number }
    | { t: "all" }
    | { t: "filter"; path: Seg[]; op: "==" | "!=" | "exists"; value: string | number | boolean | null };

function parsePath(expr: string): Seg[] {
    const segs: Seg[] = [];
    let i = 0;
    const s = expr.trim();
    if (s[0] === "$" || s[0] === "@") i = 1;
    while (i < s.length) {
        const c = s[i];
        if (c === ".") {
            if (s[i + 1] === ".") unsupported(`jsonpath recursive descent in ${JSON.stringify(expr)}`);
            i++;
            if (s[i] === "*") {
                segs.push({ t: "all" });
                i++;
                continue;
            }
            let name = "";
            while (i < s.length && s[i] !== "." && s[i] !== "[") {
                if (s[i] === "\\" && i + 1 < s.length) {
                    name += s[i + 1];
                    i += 2;
                } else name += s[i++];
            }
            if (name !== "") segs.push({ t: "field", name });
        } else if (c === "[") {
            const close = findClose(s, i);
            const inner = s.slice(i + 1, close).trim();
            i = close + 1;
            if (inner === "*") segs.push({ t: "all" });
            else if (/^-?\d+$/.test(inner)) segs.push({ t: "index", i: Number(inner) });
            else if (/^(['"]).*\1$/.test(inner)) segs.push({ t: "field", name: inner.slice(1, -1) });
            else if (inner.startsWith("?(") && inner.endsWith(")")) {
                const body = inner.slice(2, -1).trim();
                const m = /^(@[^=!<>]*?)\s*(==|!=)\s*(.+)$/.exec(body);
                if (m) {
                    const lit = (m[3] ?? "").trim();
                    let value: string | number | boolean | null;
                    if (/^(['"]).*\1$/.test(lit)) value = lit.slice(1, -1);
                    else if (lit === "true" || lit === "false") value = lit === "true";
                    else if (!Number.isNaN(Number(lit))) value = Number(lit);
                    else unsupported(`jsonpath filter literal ${lit}`);
                    segs.push({ t: "filter", path: parsePath(m[1] ?? "@"), op: m[2] === "==" ? "==" : "!=", value });
                } else if (/^@[\w.\\/-]*$/.test(body)) segs.push({ t: "filter", path: parsePath(body), op: "exists", value: null });
                else unsupported(`jsonpath filter ${JSON.stringify(body)}`);
            } else unsupported(`jsonpath subscript [${inner}]`);
        } else if (c === " ") {
            i++;
        } else {
            unsupported(`jsonpath expression ${JSON.stringify(expr)}`);
        }
    }
    return segs;
}

function findClose(s: string, open: number): number {
    let depth = 0;
    let quote: string | null = null;
    for (let i = open; i < s.length; i++) {
        const c = s[i];
        if (quote !== null) {
            if (c === quote) quote = null;
        } else if (c === "'" || c === '"') quote = c;
        else if (c === "[" || c === "{") depth++;
        else if (c === "]" || c === "}") {
            depth--;
            if (depth === 0) return i;
        }
    }
    return fail(1, `error: error parsing jsonpath ${s}, unclosed bracket`);
}

function evalPath(segs: Seg[], roots: unknown[]): unknown[] {
    let cur = roots;
    for (const seg of segs) {
        const next: unknown[] = [];
        for (const v of cur) {
            if (seg.t === "field") {
                if (isRecord(v) && seg.name in v) next.push(v[seg.name]);
            } else if (seg.t === "index") {
                if (Array.isArray(v)) {
                    const idx = seg.i < 0 ? v.length + seg.i : seg.i;
                    if (idx >= 0 && idx < v.length) next.push(v[idx]);
                }
            } else if (seg.t === "all") {
                if (Array.isArray(v)) next.push(...(v as unknown[]));
                else if (isRecord(v)) next.push(...Object.values(v));
            } else {
                const items: unknown[] = Array.isArray(v) ? (v as unknown[]) : [v];
                for (const item of items) {
                    const got = evalPath(seg.path, [item]);
                    if (seg.op === "exists" ? got.length > 0 : got.some((g) => g === seg.value) === (seg.op === "==")) next.push(item);
                }
            }
        }
        cur = next;
    }
    return cur;
}

function fmt(v: unknown): string {
    if (typeof v === "string") return v;
    if (typeof v === "number" || typeof v === "boolean") return String(v);
    return JSON.stringify(v);
}

function unescapeLiteral(s: string): string {
    return s.replace(/\\([ntr\\"'])/g, (_, c: string) => (c === "n" ? "\n" : c === "t" ? "\t" : c === "r" ? "\r" : c));
}

function jsonpath(template: string, data: unknown): string {
    // Split into literal text and {expressions}.
    const parts: ({ lit: string } | { expr: string })[] = [];
    let i = 0;
    let text = "";
    while (i < template.length) {
        if (template[i] === "{") {
            if (text !== "") parts.push({ lit: text });
            text = "";
            const close = findClose(template, i);
            parts.push({ expr: template.slice(i + 1, close).trim() });
            i = close + 1;
        } else text += template[i++];
    }
    if (text !== "") parts.push({ lit: text });

    const render = (from: number, ctx: unknown, root: unknown): { text: string; end: number } => {
        let result = "";
        for (let p = from; p < parts.length; p++) {
            const part = parts[p];
            if (part === undefined) break;
            if ("lit" in part) {
                result += part.lit;
                continue;
            }
            const expr = part.expr;
            if (expr === "end") return { text: result, end: p };
            if (expr.startsWith("range ")) {
                const items = evalPath(parsePath(expr.slice(6)), [expr.slice(6).trim().startsWith("@") ? ctx : root]);
                const flat = items.length === 1 && Array.isArray(items[0]) ? (items[0] as unknown[]) : items;
                let end = parts.length;
                // find the matching end by rendering once with no items if needed
                if (flat.length === 0) {
                    end = render(p + 1, null, root).end;
                }
                for (const item of flat) {
                    const r = render(p + 1, item, root);
                    result += r.text;
                    end = r.end;
                }
                p = end;
                continue;
            }
            if (/^(['"]).*\1$/s.test(expr)) {
                result += unescapeLiteral(expr.slice(1, -1));
                continue;
            }
            const startsAtCtx = expr.startsWith("@");
            const values = evalPath(parsePath(expr), [startsAtCtx ? ctx : expr.startsWith("$") ? root : ctx]);
            result += values.map(fmt).join(" ");
        }
        return { text: result, end: parts.length };
    };
    return render(0, data, data).text;
}

// ---------------------------------------------------------------------------------------
// k3s top-level

function k3s(host: DoubleHostConfig, argv: string[]): number {
    const [cmd, ...rest] = argv;
    switch (cmd) {
        case "--version":
        case "-v":
        case "version":
            say(`k3s version ${host.k3sVersion} (k3s-test-double)`);
            say("go version go1.22.0 (k3s-test-double, not k3s)");
            return 0;
        case "kubectl":
            return kubectl(host, rest);
        case "server":
        case "agent":
            return fail(2, `k3s-test-double: '${cmd}' is started through the systemctl shim (systemctl restart ${host.unit}), not run directly`);
        default:
            return unsupported(`k3s subcommand ${JSON.stringify(cmd ?? "")}`);
    }
}

function main(): void {
    const started = Date.now();
    const tool = process.argv[2] ?? "";
    const argv = process.argv.slice(3);
    let code = 0;
    let host: DoubleHostConfig | null = null;
    try {
        host = loadHost();
        switch (tool) {
            case "k3s":
                code = k3s(host, argv);
                break;
            case "kubectl":
                code = kubectl(host, argv);
                break;
            case "systemctl":
                code = systemctl(host, argv);
                break;
            case "journalctl":
                code = journalctl(host, argv);
                break;
            default:
                code = unsupported(`tool ${JSON.stringify(tool)}`);
        }
    } catch (e) {
        if (e instanceof ToolExit) {
            code = e.code;
            complain(e.message);
        } else {
            code = 70;
            complain(`k3s-test-double: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        }
    }
    const stdout = out.join("");
    const stderr = err.join("");
    if (host !== null) {
        const rec: InvocationRecord = {
            at: new Date(started).toISOString(),
            tool,
            argv,
            exitCode: code,
            durationMs: Date.now() - started,
            stdoutHead: stdout.slice(0, 2000),
            stderrHead: stderr.slice(0, 2000),
        };
        try {
            fs.mkdirSync(STATE_DIR, { recursive: true });
            fs.appendFileSync(path.join(STATE_DIR, "invocations.log"), JSON.stringify(rec) + "\n");
        } catch {
            // a read-only or missing state dir must not change the tool's answer
        }
    }
    process.stdout.write(stdout);
    process.stderr.write(stderr);
    process.exitCode = code;
}

main();
