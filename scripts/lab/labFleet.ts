/**
 * Lab fleet: a reusable test harness of throw-away test hosts, so tests can run the
 * project's exact remote scripts over real SSH (DESIGN.md, "Testing" item 5).
 *
 * What it provides, per host:
 *   - a network namespace `sc-lab-<run>-<host>` with
 *       eth0        veth into a bridge `sc-br-<run>` in the root namespace; the LAN address
 *                   lies in `bridgeCidr` (inside the 198.18.0.0/15 benchmark range, a free
 *                   /24 is picked when not given); no default route, so nothing leaves the
 *                   bridge; the root namespace reaches every host on its LAN address
 *       tailscale0  tun device (stand-in, nothing attached) with the tailnet address, MTU 1280
 *       nebula1     tun device with the Nebula address (name configurable), MTU 1300
 *       peer routes host routes to the other hosts' tailnet/Nebula addresses via their LAN
 *                   address (main table), so overlay addresses answer between hosts
 *   - its own mount and UTS namespaces (hostname = host name) in which
 *       /etc/rancher, /var/lib/rancher  are bind mounts of <rootDir>/etc/rancher and
 *                   <rootDir>/var/lib/rancher on the harness side
 *       LAB_PRIVATE_DIRS  /etc/nebula, /etc/headscale, /etc/systemd/system,
 *                   /var/lib/headscale, /var/run/headscale, /var/lib/derper,
 *                   /usr/local/lib/derper, /usr/local/sbin, /var/lib/shortcircuit,
 *                   /etc/shortcircuit: bind mounts of <rootDir>/<same path>, empty at
 *                   start, so the program's other remote scripts (file delivery, control
 *                   server bootstrap, derper install) write only there; `hostPath()` maps
 *                   any of these (and /usr/local/bin) to the harness side
 *       /tmp        a private tmpfs
 *       /usr/local/bin  a per-host directory holding the TEST DOUBLE wrappers
 *                   (`k3s`, `kubectl`, `systemctl`, `journalctl`, see
 *                   k3s-test-double/k3s-test-double.ts; systemctl is also the
 *                   service-manager stand-in for every other unit, cued per unit with
 *                   `setServiceBehaviour`), the stand-ins of service-doubles.ts
 *                   (`headscale`, `nebula`, `go`, `curl`, `apt-get`, `dpkg`, `cloud-init`,
 *                   `chown`; cued with `setToolBehaviour`), a `sudo` shim (the session is
 *                   root already) and links to the real /usr/local/bin's entries
 *       /usr/bin/systemctl, /usr/bin/journalctl  bind-mounted over by the same shims
 *       /root/.bashrc  an empty file (bash sources it for ssh sessions; the harness
 *                   machine's own one is not part of a test host)
 *   - `sshd` (Debian openssh-server) on port 22 of the namespace, root login with the
 *     run's generated key only (ECDSA P-256, PEM), `UsePAM no`, `StrictModes no`,
 *     `AcceptEnv *`, sftp via internal-sftp.
 * And for the fleet: one shared cluster directory (the test double's API-server shortcut),
 * per-host behaviour cues for the double, table-52 routes, link up/down, and `stop()`,
 * which kills every process in the namespaces, deletes namespaces, veths and the bridge
 * and removes the run directory; it is idempotent. A process `exit` hook does the same
 * synchronously if a test forgets; `cleanupStaleLab()` removes what a killed run left
 * behind (runs are owned by a pid; only runs whose owner is gone are touched).
 *
 * Needs root, Linux network namespaces, /dev/net/tun and the Debian packages
 * openssh-server, openssh-client, iproute2 (plus util-linux/mount, always present).
 * `checkLabPrerequisites()` lists what is missing.
 *
 * Side effects outside the run directory: the empty mount points /etc/rancher,
 * /var/lib/rancher, LAB_PRIVATE_DIRS (and any missing parent) and /run/sshd are created when
 * missing (all but /run/sshd are removed again by the last lab run that stops). Nothing is
 * ever written into them on the real machine: the binds exist only in the hosts' mount
 * namespaces.
 */
import { spawn, execFileSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type {
    DoubleHostConfig,
    DoubleState,
    InvocationRecord,
    K3sBehaviourCue,
    LabRole,
    NodeRecord,
    ServiceBehaviourCue,
    ServiceEvent,
    ServiceManagerState,
    ServiceUnitState,
    UnitStatus,
} from "./k3s-double/k3s-double";
import { versions } from "../../components/versions";
import { STAND_IN_TOOLS } from "./service-doubles/service-doubles";
import type { StandInTool, ToolBehaviour, ToolInvocation, ToolState } from "./service-doubles/service-doubles";

export type { DoubleState, InvocationRecord, K3sBehaviourCue, LabRole, NodeRecord };
export type { ServiceEvent, ServiceManagerState, ServiceUnitState, UnitStatus };
export type { StandInTool, ToolBehaviour, ToolInvocation, ToolState };
export { STAND_IN_TOOLS };

/**
 * Directories every test host gets privately (bind mounts of <rootDir>/<path>, empty at
 * start): what the program's non-k3s remote scripts write.
 */
export const LAB_PRIVATE_DIRS: readonly string[] = [
    "/etc/nebula",
    "/etc/headscale",
    "/etc/systemd/system",
    "/var/lib/headscale",
    "/var/run/headscale",
    "/var/lib/derper",
    "/usr/local/lib/derper",
    "/usr/local/sbin",
    "/var/lib/shortcircuit",
    "/etc/shortcircuit",
];

/** Private directories of a `machine` host besides LAB_PRIVATE_DIRS (a block device path appears there when a test says so). */
export const MACHINE_PRIVATE_DIRS: readonly string[] = ["/dev/disk/by-id"];

/** Cue of one unit of the service-manager stand-in (see setServiceBehaviour). */
export interface ServiceBehaviour {
    /** The next n start attempts (restart, start, enable --now) exit 1 and leave the unit failed. */
    failRestarts?: number;
    /** Start attempts exit 0 but the unit reads `failed` exitAfterMs (default 0) later. */
    exitAtStart?: boolean;
    exitAfterMs?: number;
}

// ---------------------------------------------------------------------------------------
// Public types

export interface LabHostSpec {
    /** Host name: hostname inside the host, default k3s node name. [a-z0-9-], max 63. */
    name: string;
    role: LabRole;
    /** IPv4 inside bridgeCidr; allocated (.11, .12, ...) when omitted. */
    lanAddress?: string;
    /** Address on tailscale0, "100.67.0.1" or "100.67.0.1/32" (default prefix /32). */
    tailnetAddress?: string;
    /** Address on the Nebula interface, "10.67.0.1" or "10.67.0.1/16" (default prefix /16). */
    nebulaAddress?: string;
    /** Nebula interface name (default "nebula1", Nebula's default tun.dev). */
    nebulaIface?: string;
    lanMtu?: number;
    tailnetMtu?: number;
    nebulaMtu?: number;
    /** Behaviour of the k3s test double from the start. */
    k3sBehaviour?: K3sBehaviour;
    /** When set, written to /etc/rancher/k3s/config.yaml and k3s started before the fleet is returned. */
    initialConfig?: string;
    /** Service-manager stand-in cues from the start, by unit ("nebula" = "nebula.service"). */
    services?: Record<string, ServiceBehaviour>;
    /** Tool stand-in cues from the start (versions, failures, curl answers, missing tools). */
    tools?: ToolBehaviour;
    /**
     * Play a whole machine more closely (the droplet stand-in of test/e2e/dropletLab.ts): the
     * host's /etc and /root are overlays of this machine's (whatever a script writes there, such
     * as /etc/fstab or root's authorized_keys, stays in the host; the upper layers live under
     * <hostDir>/machine), /dev/disk/by-id is private (MACHINE_PRIVATE_DIRS), and sshd takes
     * root's keys from the host's own /root/.ssh/authorized_keys, absent at start, instead of
     * the fleet's key: who may log in is up to the test (write that file with `exec`).
     */
    machine?: boolean;
}

export interface LabFleetOptions {
    hosts: LabHostSpec[];
    /** IPv4 CIDR of the bridge (LAN), inside 198.18.0.0/15, prefix 16..29. Default: a free /24. */
    bridgeCidr?: string;
    /** Where run directories go (default /run/sc-lab). */
    baseDir?: string;
    /** Host routes between hosts' overlay addresses via the LAN (default true). */
    overlayPeerRoutes?: boolean;
    /** ssh ConnectTimeout in seconds used by `ssh()` (default 3). */
    connectTimeoutSec?: number;
    /** Version string the double reports (default versions.k3s of components/versions.ts). */
    k3sVersion?: string;
    /** Remove leftovers of dead runs first (default true). */
    cleanupStale?: boolean;
}

export interface K3sBehaviour {
    readyDelayMs?: number;
    neverReady?: boolean;
    failOnStart?: string | null;
    etcdUnhealthy?: boolean;
    keepStaleFlannelLink?: boolean;
    /** A server writes this as /etc/rancher/k3s/k3s.yaml instead of its fake one (null: the fake). */
    kubeconfig?: string | null;
    /** A server's API accepts connections and never answers (kubectl waits for its --request-timeout). */
    apiHangs?: boolean;
}

export interface LabHost {
    name: string;
    role: LabRole;
    /** "k3s" (server) or "k3s-agent" (agent). */
    unit: string;
    /** Address reachable from the root namespace (= lanAddress). */
    sshHost: string;
    sshPort: number;
    user: string;
    /** Client private key (PEM, ECDSA P-256) accepted by every host of the fleet. */
    privateKeyPem: string;
    /** The host's sshd public host key line ("ssh-ed25519 AAAA... <name>"). */
    hostPublicKey: string;
    /**
     * Harness-side root: <rootDir>/etc/rancher, <rootDir>/var/lib/rancher and
     * <rootDir><dir> for every LAB_PRIVATE_DIRS entry.
     */
    rootDir: string;
    /** In-host path -> harness-side path of every private bind mount (rancher dirs and LAB_PRIVATE_DIRS). */
    privateDirs: Record<string, string>;
    /** Harness-side directory mounted over the host's /usr/local/bin (wrappers, stand-ins). */
    binDir: string;
    etcRancherDir: string;
    varLibRancherDir: string;
    /** Harness-side path of the double's state dir (/var/lib/rancher/k3s-test-double). */
    doubleStateDir: string;
    netns: string;
    lanAddress: string;
    tailnetAddress: string | null;
    nebulaAddress: string | null;
    nebulaIface: string;
    /** pid of the host's sshd (its mount/UTS/network namespaces). */
    pid: number;
    /** Started with `machine: true` (see LabHostSpec.machine). */
    machine: boolean;
}

export interface ExecResult {
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
    timedOut: boolean;
    durationMs: number;
}

export interface ExecOptions {
    stdin?: string | Buffer;
    /** Kill after this long (default 60 s). */
    timeoutMs?: number;
    /** Throw unless the exit code is 0. */
    check?: boolean;
    /** Extra environment (ssh: sent with SetEnv; sshd accepts all). */
    env?: Record<string, string>;
}

export type HostRef = string | LabHost;

export interface LabFleet {
    runId: string;
    runDir: string;
    bridge: string;
    bridgeCidr: string;
    gatewayAddress: string;
    clusterDir: string;
    /** File holding privateKeyPem (mode 0600). */
    privateKeyPath: string;
    hosts: LabHost[];
    host(name: string): LabHost;
    /** Runs `bash -c cmd` inside the host (network, mount and UTS namespaces), as root. */
    exec(host: HostRef, cmd: string, opts?: ExecOptions): Promise<ExecResult>;
    /** Runs `script` over real ssh (the remote login shell, bash, runs it), stdin piped. */
    ssh(host: HostRef, script: string, stdin?: string | Buffer, opts?: Omit<ExecOptions, "stdin">): Promise<ExecResult>;
    /** The ssh argv (without the remote command) `ssh()` uses. */
    sshArgv(host: HostRef, connectTimeoutSec?: number): string[];
    setK3sBehaviour(host: HostRef, behaviour: K3sBehaviour): Promise<void>;
    /** Adds `cidr dev tailscale0 table 52` and tailscale's rule `5270: lookup 52`. */
    addTable52Route(host: HostRef, cidr: string): Promise<void>;
    clearTable52(host: HostRef): Promise<void>;
    /** Sets the host's eth0 up or down (down: unreachable from everywhere). */
    setLanLink(host: HostRef, state: "up" | "down"): Promise<void>;
    /**
     * Harness-side path of a path inside the host under /etc/rancher, /var/lib/rancher, a
     * LAB_PRIVATE_DIRS entry (/run/headscale = /var/run/headscale) or /usr/local/bin; throws for
     * any other path (it would be the real machine's).
     */
    hostPath(host: HostRef, pathInHost: string): string;
    /**
     * Cues for one unit of the service-manager stand-in, merged into the current ones. Setting
     * failRestarts starts its count afresh.
     */
    setServiceBehaviour(host: HostRef, unit: string, behaviour: ServiceBehaviour): Promise<void>;
    /** Cues of the tool stand-ins, merged into the current ones; `missing` adds/removes wrappers. */
    setToolBehaviour(host: HostRef, behaviour: ToolBehaviour): Promise<void>;
    /** Service-manager stand-in state, exitAtStart deaths applied as of now (null before any call). */
    serviceState(host: HostRef): ServiceManagerState | null;
    /** Service-manager calls, oldest first, optionally of one unit ("nebula" = "nebula.service"). */
    serviceEvents(host: HostRef, unit?: string): ServiceEvent[];
    /** Current state of one unit of the stand-in ("inactive" when never touched). */
    unitStatus(host: HostRef, unit: string): UnitStatus;
    /** Calls of the tool stand-ins, oldest first, optionally of one tool. */
    toolInvocations(host: HostRef, tool?: StandInTool): ToolInvocation[];
    /** What the chown stand-in recorded instead of applying. */
    toolState(host: HostRef): ToolState;
    k3sState(host: HostRef): DoubleState | null;
    k3sInvocations(host: HostRef): InvocationRecord[];
    clusterNodes(): NodeRecord[];
    stop(): Promise<void>;
}

export class LabPrerequisiteError extends Error {}

// ---------------------------------------------------------------------------------------
// Constants and small helpers

const LAB_RANGE = "198.18.0.0/15";
const DEFAULT_BASE_DIR = "/run/sc-lab";
const RUN_PREFIX = "sc-lab-";
const BRIDGE_PREFIX = "sc-br-";
const VETH_PREFIX = "sc-v";
/** The pinned k3s release: what the double reports unless a test asks for another. */
const DEFAULT_K3S_VERSION: string = versions.k3s;
const DOUBLE_SCRIPT = path.join(__dirname, "k3s-double", "k3s-double.ts");
const HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const SHIM_NAMES: string[] = ["k3s", "kubectl", "systemctl", "journalctl", "sudo", ...STAND_IN_TOOLS];
const SERVICE_DOUBLES_SCRIPT = path.join(__dirname, "service-doubles", "service-doubles.ts");

const TOOLS: Record<string, string> = {
    ip: "iproute2",
    sshd: "openssh-server",
    ssh: "openssh-client",
    "ssh-keygen": "openssh-client",
    unshare: "util-linux",
    nsenter: "util-linux",
    mount: "mount",
    hostname: "hostname",
    bash: "bash",
};

function which(cmd: string): string | null {
    const dirs = `${process.env.PATH ?? ""}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`.split(":");
    for (const d of dirs) {
        if (!d) continue;
        const p = path.join(d, cmd);
        try {
            fs.accessSync(p, fs.constants.X_OK);
            if (fs.statSync(p).isFile()) return p;
        } catch {
            // not here
        }
    }
    return null;
}

function tool(cmd: string): string {
    const p = which(cmd);
    if (p === null) throw new LabPrerequisiteError(`lab fleet: \`${cmd}\` not found (Debian package ${TOOLS[cmd] ?? cmd}); run scripts/setup.sh`);
    return p;
}

/** What is missing for the lab fleet on this machine (empty when all is there). */
export function checkLabPrerequisites(): string[] {
    const problems: string[] = [];
    if (process.platform !== "linux") problems.push(`Linux is required (this is ${process.platform})`);
    if (typeof process.getuid === "function" && process.getuid() !== 0) {
        problems.push("root is required (network namespaces, mounts, sshd); run the tests as root");
    }
    for (const [cmd, pkg] of Object.entries(TOOLS)) {
        if (which(cmd) === null) problems.push(`\`${cmd}\` not found (Debian package ${pkg})`);
    }
    if (!fs.existsSync("/dev/net/tun")) problems.push("/dev/net/tun is missing (tun devices stand in for tailscale0/nebula1)");
    if (!fs.existsSync("/proc/self/ns/net")) problems.push("the kernel has no network namespaces");
    return problems;
}

function assertPrerequisites(): void {
    const problems = checkLabPrerequisites();
    if (problems.length > 0) {
        throw new LabPrerequisiteError(
            `lab fleet prerequisites missing:\n  - ${problems.join("\n  - ")}\n` +
                "scripts/setup.sh installs the Debian packages (openssh-server openssh-client iproute2 iputils-ping); run it as root.",
        );
    }
}

function ipToInt(ip: string): number {
    const parts = ip.split(".");
    if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) throw new Error(`not an IPv4 address: ${ip}`);
    return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

function intToIp(n: number): string {
    return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}

interface Cidr {
    network: number;
    prefix: number;
    size: number;
}

function parseCidr(cidr: string): Cidr {
    const [addr, len, extra] = cidr.split("/");
    if (addr === undefined || len === undefined || extra !== undefined || !/^\d+$/.test(len) || Number(len) > 32) {
        throw new Error(`not an IPv4 CIDR: ${cidr}`);
    }
    const prefix = Number(len);
    const size = 2 ** (32 - prefix);
    const network = Math.floor(ipToInt(addr) / size) * size;
    return { network, prefix, size };
}

function cidrContains(c: Cidr, ip: number): boolean {
    return ip >= c.network && ip < c.network + c.size;
}

function cidrOverlaps(a: Cidr, b: Cidr): boolean {
    return a.network < b.network + b.size && b.network < a.network + a.size;
}

function splitAddress(value: string, defaultPrefix: number): { address: string; prefix: number } {
    const [address = "", len] = value.split("/");
    ipToInt(address);
    const prefix = len === undefined ? defaultPrefix : Number(len);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new Error(`bad prefix in ${value}`);
    return { address, prefix };
}

function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

function sleepSync(ms: number): void {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function shQuote(s: string): string {
    return `'${s.replace(/'/g, `'\\''`)}'`;
}

interface RunOptions extends ExecOptions {
    cwd?: string;
    envAll?: NodeJS.ProcessEnv;
    /** Children are added while they run (so stop() can kill them). */
    track?: Set<ChildProcess>;
}

function run(file: string, args: string[], opts: RunOptions = {}): Promise<ExecResult> {
    const started = Date.now();
    const timeoutMs = opts.timeoutMs ?? 60_000;
    return new Promise((resolve, reject) => {
        const child = spawn(file, args, { cwd: opts.cwd ?? "/", env: opts.envAll ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
        opts.track?.add(child);
        const stdout: Buffer[] = [];
        const stderr: Buffer[] = [];
        let timedOut = false;
        const timer = setTimeout(() => {
            timedOut = true;
            child.kill("SIGKILL");
        }, timeoutMs);
        child.stdout.on("data", (d: Buffer) => stdout.push(d));
        child.stderr.on("data", (d: Buffer) => stderr.push(d));
        child.stdin.on("error", () => undefined); // the remote side may close early
        child.on("error", (e) => {
            clearTimeout(timer);
            opts.track?.delete(child);
            reject(e);
        });
        child.on("close", (code, signal) => {
            clearTimeout(timer);
            opts.track?.delete(child);
            const result: ExecResult = {
                code,
                signal,
                stdout: Buffer.concat(stdout).toString("utf8"),
                stderr: Buffer.concat(stderr).toString("utf8"),
                timedOut,
                durationMs: Date.now() - started,
            };
            if (opts.check === true && code !== 0) {
                reject(
                    new Error(
                        `${path.basename(file)} ${args.join(" ")} failed (exit ${String(code)}${timedOut ? ", timed out" : ""}):\n${result.stderr}${result.stdout}`,
                    ),
                );
            } else resolve(result);
        });
        if (opts.stdin !== undefined) child.stdin.end(opts.stdin);
        else child.stdin.end();
    });
}

async function runOk(file: string, args: string[], input?: string): Promise<string> {
    const r = await run(file, args, { check: true, timeoutMs: 20_000, ...(input !== undefined ? { stdin: input } : {}) });
    return r.stdout;
}

function procStartTime(pid: number): string | null {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        if (rest[0] === "Z" || rest[0] === "X") return null;
        return rest[19] ?? null;
    } catch {
        return null;
    }
}

function alive(pid: number): boolean {
    return procStartTime(pid) !== null;
}

// ---------------------------------------------------------------------------------------
// Run ownership and teardown (shared by stop(), the exit hook and cleanupStaleLab)

interface OwnerFile {
    runId: string;
    pid: number;
    pidStart: string | null;
    createdAt: string;
    bridge: string;
    netns: string[];
    links: string[];
    createdDirs: string[];
}

function ownerLive(o: OwnerFile): boolean {
    return o.pid > 0 && procStartTime(o.pid) === o.pidStart && o.pidStart !== null;
}

function readOwner(runDir: string): OwnerFile | null {
    try {
        return JSON.parse(fs.readFileSync(path.join(runDir, "owner.json"), "utf8")) as OwnerFile;
    } catch {
        return null;
    }
}

function writeOwner(runDir: string, o: OwnerFile): void {
    const tmp = path.join(runDir, `owner.json.tmp-${process.pid}`);
    fs.writeFileSync(tmp, JSON.stringify(o, null, 2));
    fs.renameSync(tmp, path.join(runDir, "owner.json"));
}

function ipPath(): string {
    return which("ip") ?? "ip";
}

function netnsPids(ns: string): number[] {
    try {
        return execFileSync(ipPath(), ["netns", "pids", ns], { encoding: "utf8", timeout: 5000, stdio: ["ignore", "pipe", "ignore"] })
            .split(/\s+/)
            .filter((s) => /^\d+$/.test(s))
            .map(Number);
    } catch {
        return [];
    }
}

function killAll(pids: number[]): void {
    const live = pids.filter(alive);
    for (const sig of ["SIGTERM", "SIGKILL"] as const) {
        for (const pid of live) {
            try {
                process.kill(pid, sig);
            } catch {
                // already gone
            }
        }
        const deadline = Date.now() + 2000;
        for (let i = 0; i < 400 && Date.now() < deadline && live.some(alive); i++) sleepSync(5);
        if (!live.some(alive)) return;
    }
}

function listNetns(): string[] {
    try {
        return execFileSync(ipPath(), ["netns", "list"], { encoding: "utf8", timeout: 5000, stdio: ["ignore", "pipe", "ignore"] })
            .split("\n")
            .map((l) => l.split(" ")[0] ?? "")
            .filter((s) => s !== "");
    } catch {
        return [];
    }
}

function listLinks(): string[] {
    try {
        const raw = JSON.parse(execFileSync(ipPath(), ["-j", "link", "show"], { encoding: "utf8", timeout: 5000 })) as { ifname?: string }[];
        return raw.map((l) => l.ifname ?? "").filter((s) => s !== "");
    } catch {
        return [];
    }
}

function quiet(args: string[]): void {
    try {
        execFileSync(ipPath(), args, { timeout: 5000, stdio: "ignore" });
    } catch {
        // already gone
    }
}

/** Synchronous teardown of one run; returns what it removed. Safe to repeat. */
function teardownSync(runId: string, runDir: string | null, extraPids: number[] = []): CleanupReport {
    const report: CleanupReport = { runs: [runId], namespaces: [], links: [], dirs: [], killedPids: [] };
    const namespaces = listNetns().filter((n) => n.startsWith(`${RUN_PREFIX}${runId}-`));
    const pids = [...new Set([...extraPids, ...namespaces.flatMap(netnsPids)])];
    report.killedPids = pids.filter(alive);
    killAll(pids);
    // Processes that entered the namespaces after the first sweep (exec/ssh children).
    killAll(namespaces.flatMap(netnsPids));
    const links = listLinks().filter((l) => l.startsWith(`${VETH_PREFIX}${runId}-`) || l === `${BRIDGE_PREFIX}${runId}`);
    for (const l of links.filter((x) => !x.startsWith(BRIDGE_PREFIX))) quiet(["link", "del", l]);
    for (const n of namespaces) quiet(["netns", "del", n]);
    for (const l of links.filter((x) => x.startsWith(BRIDGE_PREFIX))) quiet(["link", "del", l]);
    report.namespaces = namespaces;
    report.links = links;
    if (runDir !== null && fs.existsSync(runDir)) {
        const owner = readOwner(runDir);
        fs.rmSync(runDir, { recursive: true, force: true });
        report.dirs.push(runDir);
        removeCreatedMountPoints(owner?.createdDirs ?? [], path.dirname(runDir));
        if (path.dirname(runDir) === DEFAULT_BASE_DIR) {
            try {
                fs.rmdirSync(DEFAULT_BASE_DIR); // when no other run is left
            } catch {
                // other runs still there
            }
        }
    }
    return report;
}

/** Run directories of all lab runs in the known base dirs. */
function allRunDirs(extraBase?: string): string[] {
    const bases = [...new Set([DEFAULT_BASE_DIR, os.tmpdir(), ...(extraBase !== undefined ? [extraBase] : [])])];
    return bases.flatMap((b) => {
        try {
            return fs
                .readdirSync(b)
                .filter((d) => d.startsWith(RUN_PREFIX))
                .map((d) => path.join(b, d));
        } catch {
            return [];
        }
    });
}

/**
 * rmdir the empty mount points a run created (or inherited from the run that created them),
 * unless another lab run may still use them.
 */
function removeCreatedMountPoints(dirs: string[], baseDir: string): void {
    if (dirs.length === 0) return;
    if (allRunDirs(baseDir).length > 0) return;
    for (const d of [...dirs].reverse()) {
        try {
            fs.rmdirSync(d);
        } catch {
            // not empty or in use: leave it
        }
    }
}

export interface CleanupReport {
    runs: string[];
    namespaces: string[];
    links: string[];
    dirs: string[];
    killedPids: number[];
}

/**
 * Removes what crashed lab runs left behind: namespaces `sc-lab-<run>-*`, links
 * `sc-br-<run>`/`sc-v<run>-*` and run directories, for every run whose owner process is gone.
 * Runs of live processes (parallel test runs) are left alone.
 */
export function cleanupStaleLab(opts: { baseDir?: string } = {}): Promise<CleanupReport> {
    const baseDirs = [...new Set([opts.baseDir ?? DEFAULT_BASE_DIR, DEFAULT_BASE_DIR, os.tmpdir()])];
    const total: CleanupReport = { runs: [], namespaces: [], links: [], dirs: [], killedPids: [] };
    const liveRuns = new Set<string>();
    const staleRuns = new Map<string, string | null>();
    for (const base of baseDirs) {
        let entries: string[] = [];
        try {
            entries = fs.readdirSync(base).filter((d) => d.startsWith(RUN_PREFIX));
        } catch {
            continue;
        }
        for (const d of entries) {
            const runId = d.slice(RUN_PREFIX.length);
            const dir = path.join(base, d);
            const owner = readOwner(dir);
            let young = false;
            try {
                young = owner === null && Date.now() - fs.statSync(dir).mtimeMs < 60_000;
            } catch {
                young = false;
            }
            if ((owner !== null && ownerLive(owner)) || young) liveRuns.add(runId);
            else staleRuns.set(runId, dir);
        }
    }
    const idOf = (name: string, prefix: string): string | null => {
        if (!name.startsWith(prefix)) return null;
        const m = /^([0-9a-f]{6})/.exec(name.slice(prefix.length));
        return m ? (m[1] ?? null) : null;
    };
    for (const n of listNetns()) {
        const id = idOf(n, RUN_PREFIX);
        if (id !== null && !liveRuns.has(id) && !staleRuns.has(id)) staleRuns.set(id, null);
    }
    for (const l of listLinks()) {
        const id = idOf(l, BRIDGE_PREFIX) ?? idOf(l, VETH_PREFIX);
        if (id !== null && !liveRuns.has(id) && !staleRuns.has(id)) staleRuns.set(id, null);
    }
    for (const [runId, dir] of staleRuns) {
        const r = teardownSync(runId, dir);
        total.runs.push(runId);
        total.namespaces.push(...r.namespaces);
        total.links.push(...r.links);
        total.dirs.push(...r.dirs);
        total.killedPids.push(...r.killedPids);
    }
    return Promise.resolve(total);
}

// ---------------------------------------------------------------------------------------
// Fleet start

interface PlannedHost {
    spec: LabHostSpec;
    index: number;
    netns: string;
    veth: string;
    lan: string;
    tailnet: { address: string; prefix: number } | null;
    nebula: { address: string; prefix: number } | null;
    hostDir: string;
    rootDir: string;
}

function chooseBridgeCidr(runId: string, requested: string | undefined): string {
    const range = parseCidr(LAB_RANGE);
    const taken: Cidr[] = [];
    try {
        const routes = JSON.parse(execFileSync(ipPath(), ["-j", "-4", "route", "show", "table", "all"], { encoding: "utf8", timeout: 5000 })) as {
            dst?: string;
        }[];
        for (const r of routes) {
            if (r.dst === undefined || r.dst === "default") continue;
            try {
                taken.push(parseCidr(r.dst.includes("/") ? r.dst : `${r.dst}/32`));
            } catch {
                // not IPv4
            }
        }
    } catch {
        // no routes to compare against
    }
    if (requested !== undefined) {
        const c = parseCidr(requested);
        if (c.network < range.network || c.network + c.size > range.network + range.size) {
            throw new Error(`lab fleet: bridgeCidr ${requested} must lie inside ${LAB_RANGE} (the bridge lives in the root namespace)`);
        }
        if (c.prefix < 16 || c.prefix > 29) throw new Error(`lab fleet: bridgeCidr ${requested}: prefix must be 16..29`);
        const clash = taken.find((t) => cidrOverlaps(t, c));
        if (clash) {
            throw new Error(
                `lab fleet: bridgeCidr ${requested} overlaps an existing route ${intToIp(clash.network)}/${clash.prefix} (another lab run? cleanupStaleLab() removes dead ones)`,
            );
        }
        return `${intToIp(c.network)}/${c.prefix}`;
    }
    const count = range.size / 256;
    const start = parseInt(runId, 16) % count;
    for (let i = 0; i < count; i++) {
        const net = range.network + ((start + i) % count) * 256;
        const c: Cidr = { network: net, prefix: 24, size: 256 };
        if (!taken.some((t) => cidrOverlaps(t, c))) return `${intToIp(net)}/24`;
    }
    throw new Error(`lab fleet: no free /24 left in ${LAB_RANGE}`);
}

function planHosts(opts: LabFleetOptions, runId: string, runDir: string, bridgeCidr: string): PlannedHost[] {
    const cidr = parseCidr(bridgeCidr);
    const gateway = cidr.network + 1;
    const names = new Set<string>();
    const used = new Set<number>([gateway]);
    const overlay = new Set<string>();
    if (opts.hosts.length === 0) throw new Error("lab fleet: no hosts");
    for (const h of opts.hosts) if (h.lanAddress !== undefined) used.add(ipToInt(h.lanAddress));
    let next = cidr.network + 11;
    return opts.hosts.map((spec, index) => {
        if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(spec.name)) throw new Error(`lab fleet: bad host name ${JSON.stringify(spec.name)}`);
        if (names.has(spec.name)) throw new Error(`lab fleet: duplicate host name ${spec.name}`);
        names.add(spec.name);
        if (spec.role !== "server" && spec.role !== "agent") throw new Error(`lab fleet: ${spec.name}: role must be server or agent`);
        let lan: string;
        if (spec.lanAddress !== undefined) {
            const n = ipToInt(spec.lanAddress);
            if (!cidrContains(cidr, n) || n === cidr.network || n === cidr.network + cidr.size - 1 || n === gateway) {
                throw new Error(
                    `lab fleet: ${spec.name}: lanAddress ${spec.lanAddress} must be a host address of ${bridgeCidr} other than the gateway ${intToIp(gateway)}`,
                );
            }
            lan = spec.lanAddress;
        } else {
            while (used.has(next)) next++;
            if (next >= cidr.network + cidr.size - 1) throw new Error(`lab fleet: ${bridgeCidr} has no room for ${opts.hosts.length} hosts`);
            used.add(next);
            lan = intToIp(next);
        }
        const tailnet = spec.tailnetAddress !== undefined ? splitAddress(spec.tailnetAddress, 32) : null;
        const nebula = spec.nebulaAddress !== undefined ? splitAddress(spec.nebulaAddress, 16) : null;
        for (const a of [lan, tailnet?.address, nebula?.address]) {
            if (a === undefined) continue;
            if (overlay.has(a)) throw new Error(`lab fleet: address ${a} used twice`);
            overlay.add(a);
        }
        if (spec.nebulaIface !== undefined && !/^[a-z][a-z0-9]{0,14}$/.test(spec.nebulaIface))
            throw new Error(`lab fleet: bad nebulaIface ${spec.nebulaIface}`);
        const hostDir = path.join(runDir, "hosts", spec.name);
        return {
            spec,
            index,
            netns: `${RUN_PREFIX}${runId}-${spec.name}`,
            veth: `${VETH_PREFIX}${runId}-${index}`,
            lan,
            tailnet,
            nebula,
            hostDir,
            rootDir: path.join(hostDir, "root"),
        };
    });
}

/**
 * Strips the double's types once per run (node:module stripTypeScriptTypes, in a child so
 * its experimental warning stays out of the test output) into <runDir>/k3s-test-double.mjs:
 * each invocation then starts in ~50 ms instead of ~150 ms. Falls back to the .ts file,
 * which node >= 22.18 runs directly.
 */
async function buildDouble(runDir: string, source = DOUBLE_SCRIPT): Promise<string> {
    const target = path.join(runDir, path.basename(source).replace(/\.ts$/, ".mjs"));
    const script = `
const fs = require("node:fs");
const m = require("node:module");
const [src, dst, yamlPath] = process.argv.slice(1);
let js = m.stripTypeScriptTypes(fs.readFileSync(src, "utf8"));
const marker = 'from "yaml"';
const n = js.split(marker).length - 1;
if (n > 1) throw new Error("unexpected yaml import");
if (n === 1) js = js.replace(marker, "from " + JSON.stringify(yamlPath));
fs.writeFileSync(dst, "// generated from " + require("node:path").basename(src) + " by the lab fleet harness\\n" + js);
`;
    try {
        const r = await run(process.execPath, ["--disable-warning=ExperimentalWarning", "-e", script, source, target, require.resolve("yaml")], {
            timeoutMs: 20_000,
        });
        if (r.code === 0 && fs.existsSync(target)) return target;
    } catch {
        // fall back below
    }
    return source;
}

function standInWrapper(tool: string, hostConfig: string, script: string): string {
    return [
        "#!/bin/sh",
        `# service-doubles: lab fleet TEST DOUBLE standing in for \`${tool}\` (not the real one).`,
        "# See test/lab/service-doubles.ts and test/lab/labFleet.ts.",
        `K3S_TEST_DOUBLE_HOST_CONFIG=${shQuote(hostConfig)}`,
        "export K3S_TEST_DOUBLE_HOST_CONFIG",
        `exec ${shQuote(process.execPath)} --disable-warning=ExperimentalWarning ${shQuote(script)} ${tool} "$@"`,
        "",
    ].join("\n");
}

function shimWrapper(tool: string, hostConfig: string, doubleScript: string): string {
    return [
        "#!/bin/sh",
        `# k3s-test-double: lab fleet TEST DOUBLE standing in for \`${tool}\` (not the real one).`,
        "# See test/lab/k3s-test-double/k3s-test-double.ts and test/lab/labFleet.ts.",
        `K3S_TEST_DOUBLE_HOST_CONFIG=${shQuote(hostConfig)}`,
        "export K3S_TEST_DOUBLE_HOST_CONFIG",
        `exec ${shQuote(process.execPath)} --disable-warning=ExperimentalWarning ${shQuote(doubleScript)} ${tool} "$@"`,
        "",
    ].join("\n");
}

const SUDO_SHIM = `#!/bin/bash
# lab fleet sudo shim (test harness, not sudo): lab sessions are root already.
while [ $# -gt 0 ]; do
  case "$1" in
    -n|-E|-H|-S|-k|--non-interactive|--preserve-env|--preserve-env=*|--login-class=*) shift ;;
    -u|--user) [ "\${2:-}" = root ] || { echo "lab sudo shim: only -u root is supported" >&2; exit 1; }; shift 2 ;;
    --user=root|-uroot) shift ;;
    --) shift; break ;;
    -*) echo "lab sudo shim: unsupported option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "lab sudo shim: no command" >&2; exit 1; }
exec "$@"
`;

function sshdConfig(h: PlannedHost, runDir: string): string {
    return [
        "# lab fleet test host sshd (throw-away config)",
        "Port 22",
        "ListenAddress 0.0.0.0",
        `HostKey ${path.join(h.hostDir, "ssh_host_ed25519_key")}`,
        `PidFile ${path.join(h.hostDir, "sshd.pid")}`,
        `AuthorizedKeysFile ${h.spec.machine === true ? "/root/.ssh/authorized_keys" : path.join(runDir, "authorized_keys")}`,
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "AcceptEnv *",
        "MaxStartups 64:30:128",
        "MaxSessions 64",
        "LoginGraceTime 20",
        "LogLevel VERBOSE",
        "Subsystem sftp internal-sftp",
        "",
    ].join("\n");
}

/** The script run by `ip netns exec NS unshare -m -u`: builds the host's view, execs sshd. */
const HOST_BOOT = `set -euo pipefail
host="$1" etc_src="$2" var_src="$3" bin_src="$4" orig_bin="$5" cfg="$6" private_tmp="$7" sshd="$8" bashrc="$9" private_list="\${10}"; shift 10
hostname "$host"
machine="$(dirname "$cfg")/machine"
if [ -d "$machine" ]; then
  for dir in etc root; do
    mount -t overlay "lab-$dir" -o "lowerdir=/$dir,upperdir=$machine/$dir-upper,workdir=$machine/$dir-work" "/$dir"
  done
fi
mount --bind "$etc_src" /etc/rancher
mount --bind "$var_src" /var/lib/rancher
while IFS="$(printf '\t')" read -r src target; do
  [ -n "$src" ] || continue
  mount --bind "$src" "$target"
done < "$private_list"
mount --bind /usr/local/bin "$orig_bin"
mount --bind "$bin_src" /usr/local/bin
for target in "$@"; do
  mount --bind "$bin_src/$(basename "$target")" "$target"
done
if [ "$private_tmp" = yes ]; then mount -t tmpfs -o size=64m,mode=1777 lab-tmp /tmp; fi
if [ -f /root/.bashrc ]; then mount --bind "$bashrc" /root/.bashrc; fi
exec "$sshd" -D -e -f "$cfg"
`;

export async function startLabFleet(opts: LabFleetOptions): Promise<LabFleet> {
    assertPrerequisites();
    if (opts.cleanupStale !== false) await cleanupStaleLab(opts.baseDir !== undefined ? { baseDir: opts.baseDir } : {});
    const ip = tool("ip");
    const sshKeygen = tool("ssh-keygen");
    const sshBin = tool("ssh");
    const nsenter = tool("nsenter");
    const unshare = tool("unshare");
    const sshd = tool("sshd");
    const baseDir = opts.baseDir ?? DEFAULT_BASE_DIR;
    fs.mkdirSync(baseDir, { recursive: true, mode: 0o700 });

    let runId = "";
    let runDir = "";
    for (let i = 0; i < 20; i++) {
        runId = crypto.randomBytes(3).toString("hex");
        runDir = path.join(baseDir, `${RUN_PREFIX}${runId}`);
        try {
            fs.mkdirSync(runDir, { mode: 0o700 });
            break;
        } catch {
            runDir = "";
        }
    }
    if (runDir === "") throw new Error("lab fleet: could not create a run directory");
    const bridge = `${BRIDGE_PREFIX}${runId}`;
    const owner: OwnerFile = {
        runId,
        pid: process.pid,
        pidStart: procStartTime(process.pid),
        createdAt: new Date().toISOString(),
        bridge,
        netns: [],
        links: [],
        createdDirs: [],
    };
    writeOwner(runDir, owner);

    let stopped: Promise<void> | null = null;
    const liveChildren = new Set<ChildProcess>();
    const pending = new Set<ChildProcess>();
    const sshdPids: number[] = [];
    const exitHook = (): void => {
        teardownSync(runId, runDir, sshdPids);
    };
    process.on("exit", exitHook);

    const teardown = async (): Promise<void> => {
        process.removeListener("exit", exitHook);
        for (const c of pending) c.kill("SIGKILL");
        for (const c of liveChildren) c.kill("SIGTERM");
        teardownSync(runId, runDir, sshdPids);
        await sleep(0);
    };

    try {
        const bridgeCidr = chooseBridgeCidr(runId, opts.bridgeCidr);
        const cidr = parseCidr(bridgeCidr);
        const gatewayAddress = intToIp(cidr.network + 1);
        const planned = planHosts(opts, runId, runDir, bridgeCidr);
        const clusterDir = path.join(runDir, "cluster");
        fs.mkdirSync(path.join(clusterDir, "nodes"), { recursive: true });
        const k3sVersion = opts.k3sVersion ?? DEFAULT_K3S_VERSION;
        const connectTimeoutSec = opts.connectTimeoutSec ?? 3;

        // Mount points in the shared file system (empty dirs; the binds live only in the hosts).
        const createdByOthers = new Set(
            allRunDirs(baseDir)
                .filter((d) => d !== runDir)
                .flatMap((d) => readOwner(d)?.createdDirs ?? []),
        );
        const machineDirs = opts.hosts.some((h) => h.machine === true) ? MACHINE_PRIVATE_DIRS : [];
        for (const d of ["/etc/rancher", "/var/lib/rancher", ...LAB_PRIVATE_DIRS, ...machineDirs, "/run/sshd"]) {
            if (!fs.existsSync(d)) {
                const first = fs.mkdirSync(d, { recursive: true, mode: 0o755 });
                if (d === "/run/sshd") continue;
                // Every directory this created, parents first (removal goes in reverse).
                const created: string[] = [];
                for (let p = d; first !== undefined && p.length >= first.length && p !== "/"; p = path.dirname(p)) created.unshift(p);
                for (const c of created) if (!owner.createdDirs.includes(c)) owner.createdDirs.push(c);
            } else if (createdByOthers.has(d)) {
                owner.createdDirs.push(d); // whichever run stops last removes it
            }
        }
        for (const d of createdByOthers) {
            if (!owner.createdDirs.includes(d) && fs.existsSync(d)) owner.createdDirs.push(d); // parents created by another run
        }
        writeOwner(runDir, owner);
        const privateTmp = [runDir, DOUBLE_SCRIPT, process.execPath, path.dirname(require.resolve("yaml"))].every(
            (p) => !(p === "/tmp" || p.startsWith("/tmp/")),
        );

        const doubleBuild = buildDouble(runDir);
        const serviceDoublesBuild = buildDouble(runDir, SERVICE_DOUBLES_SCRIPT);
        // Client key.
        const keyPath = path.join(runDir, "id_lab");
        await runOk(sshKeygen, ["-q", "-t", "ecdsa", "-b", "256", "-m", "PEM", "-N", "", "-C", `sc-lab-${runId}`, "-f", keyPath]);
        fs.chmodSync(keyPath, 0o600);
        const privateKeyPem = fs.readFileSync(keyPath, "utf8");
        fs.copyFileSync(`${keyPath}.pub`, path.join(runDir, "authorized_keys"));

        // Bridge in the root namespace.
        owner.links.push(bridge);
        writeOwner(runDir, owner);
        await runOk(ip, ["link", "add", bridge, "type", "bridge"]);
        try {
            fs.writeFileSync(`/proc/sys/net/ipv6/conf/${bridge}/disable_ipv6`, "1");
        } catch {
            // IPv6 disabled already
        }
        await runOk(ip, ["addr", "add", `${gatewayAddress}/${cidr.prefix}`, "dev", bridge]);
        await runOk(ip, ["link", "set", bridge, "up"]);

        const origUsrLocalBin = fs.existsSync("/usr/local/bin") ? fs.readdirSync("/usr/local/bin") : [];
        const bindTargets: string[] = [];
        const seen = new Set<string>();
        for (const t of ["/usr/bin/systemctl", "/bin/systemctl", "/usr/bin/journalctl", "/bin/journalctl"]) {
            try {
                const real = fs.realpathSync(path.dirname(t)) + "/" + path.basename(t);
                if (fs.existsSync(t) && !seen.has(real)) {
                    seen.add(real);
                    bindTargets.push(real);
                }
            } catch {
                // no such dir
            }
        }

        const doubleScript = await doubleBuild;
        const serviceDoublesScript = await serviceDoublesBuild;
        const settled = await Promise.allSettled(
            planned.map(async (h): Promise<LabHost> => {
                const role = h.spec.role;
                const unit = role === "server" ? "k3s" : "k3s-agent";
                const nebulaIface = h.spec.nebulaIface ?? "nebula1";
                const etcDir = path.join(h.rootDir, "etc", "rancher");
                const varDir = path.join(h.rootDir, "var", "lib", "rancher");
                const stateDir = path.join(varDir, "k3s-test-double");
                const binDir = path.join(h.hostDir, "bin");
                const origBin = path.join(h.hostDir, "orig-usr-local-bin");
                for (const d of [etcDir, path.join(etcDir, "k3s"), stateDir, binDir, origBin]) fs.mkdirSync(d, { recursive: true });
                const privateDirs: Record<string, string> = { "/etc/rancher": etcDir, "/var/lib/rancher": varDir };
                const ownDirs = h.spec.machine === true ? [...LAB_PRIVATE_DIRS, ...MACHINE_PRIVATE_DIRS] : LAB_PRIVATE_DIRS;
                for (const d of ownDirs) {
                    privateDirs[d] = path.join(h.rootDir, d);
                    fs.mkdirSync(privateDirs[d], { recursive: true, mode: 0o755 });
                }
                if (h.spec.machine === true) {
                    for (const layer of ["etc-upper", "etc-work", "root-upper", "root-work"])
                        fs.mkdirSync(path.join(h.hostDir, "machine", layer), { recursive: true });
                }
                const privateList = path.join(h.hostDir, "private-mounts.tsv");
                fs.writeFileSync(privateList, ownDirs.map((d) => `${privateDirs[d]}\t${d}\n`).join(""));

                const hostConfigPath = path.join(h.hostDir, "double-host.json");
                const hostConfig: DoubleHostConfig = {
                    runId,
                    hostName: h.spec.name,
                    role,
                    unit,
                    clusterDir,
                    hostSideStateDir: stateDir,
                    k3sVersion,
                    ipPath: ip,
                };
                fs.writeFileSync(hostConfigPath, JSON.stringify(hostConfig, null, 2));
                writeCue(stateDir, h.spec.k3sBehaviour ?? {});
                for (const t of ["k3s", "kubectl", "systemctl", "journalctl"]) {
                    fs.writeFileSync(path.join(binDir, t), shimWrapper(t, hostConfigPath, doubleScript), { mode: 0o755 });
                }
                fs.writeFileSync(path.join(binDir, "sudo"), SUDO_SHIM, { mode: 0o755 });
                writeJsonFile(path.join(stateDir, "tool-cue.json"), h.spec.tools ?? {});
                applyMissingTools(binDir, hostConfigPath, serviceDoublesScript, h.spec.tools?.missing ?? []);
                for (const [unit, behaviour] of Object.entries(h.spec.services ?? {})) writeServiceCue(stateDir, unit, behaviour);
                for (const entry of origUsrLocalBin) {
                    if (!SHIM_NAMES.includes(entry)) fs.symlinkSync(path.join(origBin, entry), path.join(binDir, entry));
                }

                await runOk(sshKeygen, ["-q", "-t", "ed25519", "-N", "", "-C", h.spec.name, "-f", path.join(h.hostDir, "ssh_host_ed25519_key")]);
                fs.writeFileSync(path.join(h.hostDir, "sshd_config"), sshdConfig(h, runDir));
                const bashrcPath = path.join(h.hostDir, "bashrc");
                fs.writeFileSync(bashrcPath, "# lab fleet test host: the harness machine's /root/.bashrc is hidden here\n");

                // Network namespace, veth into the bridge, overlay stand-ins, peer routes.
                owner.netns.push(h.netns);
                owner.links.push(h.veth);
                writeOwner(runDir, owner);
                await runOk(ip, ["netns", "add", h.netns]);
                await runOk(ip, ["link", "add", h.veth, "mtu", String(h.spec.lanMtu ?? 1500), "type", "veth", "peer", "name", "eth0", "netns", h.netns]);
                try {
                    fs.writeFileSync(`/proc/sys/net/ipv6/conf/${h.veth}/disable_ipv6`, "1");
                } catch {
                    // fine
                }
                await runOk(ip, ["link", "set", h.veth, "master", bridge, "up"]);
                const batch: string[] = ["link set lo up", `addr add ${h.lan}/${cidr.prefix} dev eth0`, `link set eth0 mtu ${h.spec.lanMtu ?? 1500} up`];
                if (h.tailnet) {
                    batch.push(
                        "tuntap add dev tailscale0 mode tun",
                        `addr add ${h.tailnet.address}/${h.tailnet.prefix} dev tailscale0`,
                        `link set tailscale0 mtu ${h.spec.tailnetMtu ?? 1280} up`,
                    );
                }
                if (h.nebula) {
                    batch.push(
                        `tuntap add dev ${nebulaIface} mode tun`,
                        `addr add ${h.nebula.address}/${h.nebula.prefix} dev ${nebulaIface}`,
                        `link set ${nebulaIface} mtu ${h.spec.nebulaMtu ?? 1300} up`,
                    );
                }
                if (opts.overlayPeerRoutes !== false) {
                    for (const peer of planned) {
                        if (peer === h) continue;
                        if (peer.tailnet)
                            batch.push(`route add ${peer.tailnet.address}/32 via ${peer.lan} dev eth0${h.tailnet ? ` src ${h.tailnet.address}` : ""}`);
                        if (peer.nebula)
                            batch.push(`route add ${peer.nebula.address}/32 via ${peer.lan} dev eth0${h.nebula ? ` src ${h.nebula.address}` : ""}`);
                    }
                }
                await runOk(ip, ["-n", h.netns, "-batch", "-"], batch.join("\n") + "\n");

                // sshd in its own mount + UTS namespace inside the network namespace.
                const logPath = path.join(h.hostDir, "sshd.log");
                const logFd = fs.openSync(logPath, "a");
                const child = spawn(
                    ip,
                    [
                        "netns",
                        "exec",
                        h.netns,
                        unshare,
                        "--mount",
                        "--uts",
                        "--propagation",
                        "private",
                        "--",
                        "/bin/bash",
                        "-c",
                        HOST_BOOT,
                        "lab-host-boot",
                        h.spec.name,
                        etcDir,
                        varDir,
                        binDir,
                        origBin,
                        path.join(h.hostDir, "sshd_config"),
                        privateTmp ? "yes" : "no",
                        sshd,
                        bashrcPath,
                        privateList,
                        ...bindTargets,
                    ],
                    { stdio: ["ignore", logFd, logFd], cwd: "/", env: { PATH: HOST_PATH, LANG: "C.UTF-8" } },
                );
                fs.closeSync(logFd);
                child.unref();
                liveChildren.add(child);
                child.on("exit", () => liveChildren.delete(child));
                const pid = child.pid;
                if (pid === undefined) throw new Error(`lab fleet: ${h.spec.name}: could not spawn sshd`);
                sshdPids.push(pid);
                const deadline = Date.now() + 10_000;
                for (let i = 0; ; i++) {
                    const log = fs.readFileSync(logPath, "utf8");
                    if (log.includes("Server listening on")) break;
                    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline || i > 2000) {
                        throw new Error(`lab fleet: ${h.spec.name}: sshd did not come up (${sshd}):\n${log}`);
                    }
                    await sleep(10);
                }
                return {
                    name: h.spec.name,
                    role,
                    unit,
                    sshHost: h.lan,
                    sshPort: 22,
                    user: "root",
                    privateKeyPem,
                    hostPublicKey: fs.readFileSync(path.join(h.hostDir, "ssh_host_ed25519_key.pub"), "utf8").trim(),
                    rootDir: h.rootDir,
                    privateDirs,
                    binDir,
                    etcRancherDir: etcDir,
                    varLibRancherDir: varDir,
                    doubleStateDir: stateDir,
                    netns: h.netns,
                    lanAddress: h.lan,
                    tailnetAddress: h.tailnet?.address ?? null,
                    nebulaAddress: h.nebula?.address ?? null,
                    nebulaIface,
                    pid,
                    machine: h.spec.machine === true,
                };
            }),
        );
        const failedHost = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
        if (failedHost) throw failedHost.reason;
        const hosts = settled.map((r) => (r as PromiseFulfilledResult<LabHost>).value);
        writeOwner(runDir, owner);

        const byName = new Map(hosts.map((h) => [h.name, h]));
        const resolve = (ref: HostRef): LabHost => {
            const name = typeof ref === "string" ? ref : ref.name;
            const h = byName.get(name);
            if (!h) throw new Error(`lab fleet: no host ${name} (hosts: ${[...byName.keys()].join(", ")})`);
            return h;
        };
        const ensureRunning = (): void => {
            if (stopped !== null) throw new Error("lab fleet: already stopped");
        };

        const sshArgv = (ref: HostRef, timeout = connectTimeoutSec): string[] => {
            const h = resolve(ref);
            return [
                "-F",
                "/dev/null",
                "-i",
                keyPath,
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                `ConnectTimeout=${timeout}`,
                "-o",
                "ConnectionAttempts=1",
                "-o",
                "ServerAliveInterval=5",
                "-o",
                "ServerAliveCountMax=3",
                "-p",
                String(h.sshPort),
                "-l",
                h.user,
                h.sshHost,
            ];
        };

        const fleet: LabFleet = {
            runId,
            runDir,
            bridge,
            bridgeCidr,
            gatewayAddress,
            clusterDir,
            privateKeyPath: keyPath,
            hosts,
            host: (name) => resolve(name),
            exec: async (ref, cmd, o = {}) => {
                ensureRunning();
                const h = resolve(ref);
                return await run(nsenter, ["-t", String(h.pid), "-m", "-u", "-n", "--", "/bin/bash", "-c", cmd], {
                    ...o,
                    track: pending,
                    envAll: { PATH: HOST_PATH, HOME: "/root", LANG: "C.UTF-8", USER: "root", LOGNAME: "root", ...(o.env ?? {}) },
                });
            },
            ssh: async (ref, script, stdin, o = {}) => {
                ensureRunning();
                const env = Object.entries(o.env ?? {}).flatMap(([k, v]) => ["-o", `SetEnv=${k}=${v}`]);
                const args = [...sshArgv(ref), ...env, "--", script];
                return await run(sshBin, args, {
                    ...o,
                    ...(stdin !== undefined ? { stdin } : {}),
                    track: pending,
                    envAll: { PATH: process.env.PATH ?? HOST_PATH, HOME: process.env.HOME ?? "/root", LANG: "C.UTF-8" },
                });
            },
            sshArgv: (ref, timeout) => sshArgv(ref, timeout),
            setK3sBehaviour: async (ref, behaviour) => {
                ensureRunning();
                writeCue(resolve(ref).doubleStateDir, behaviour);
                await Promise.resolve();
            },
            addTable52Route: async (ref, cidrText) => {
                ensureRunning();
                const h = resolve(ref);
                if (h.tailnetAddress === null) throw new Error(`lab fleet: ${h.name} has no tailscale0 (no tailnetAddress)`);
                parseCidr(cidrText);
                await runOk(ip, ["-n", h.netns, "route", "replace", cidrText, "dev", "tailscale0", "table", "52"]);
                const rules = JSON.parse(await runOk(ip, ["-n", h.netns, "-j", "rule", "show"])) as { priority?: number }[];
                if (!rules.some((r) => r.priority === 5270)) await runOk(ip, ["-n", h.netns, "rule", "add", "pref", "5270", "lookup", "52"]);
            },
            clearTable52: async (ref) => {
                ensureRunning();
                const h = resolve(ref);
                await run(ip, ["-n", h.netns, "route", "flush", "table", "52"], { timeoutMs: 10_000 });
                await run(ip, ["-n", h.netns, "rule", "del", "pref", "5270"], { timeoutMs: 10_000 });
            },
            setLanLink: async (ref, state) => {
                ensureRunning();
                await runOk(ip, ["-n", resolve(ref).netns, "link", "set", "eth0", state]);
            },
            hostPath: (ref, p) => {
                const h = resolve(ref);
                let norm = path.posix.normalize(p);
                if (norm === "/run/headscale" || norm.startsWith("/run/headscale/")) norm = `/var${norm}`;
                const mapped = Object.entries({ ...h.privateDirs, "/usr/local/bin": h.binDir }).sort((a, b) => b[0].length - a[0].length);
                for (const [inside, outside] of mapped) {
                    if (norm === inside || norm.startsWith(inside + "/")) return outside + norm.slice(inside.length);
                }
                throw new Error(
                    `lab fleet: ${p} is not under a host's private directory (${mapped
                        .map(([inside]) => inside)
                        .sort()
                        .join(", ")})`,
                );
            },
            setServiceBehaviour: async (ref, unit, behaviour) => {
                ensureRunning();
                writeServiceCue(resolve(ref).doubleStateDir, unit, behaviour);
                await Promise.resolve();
            },
            setToolBehaviour: async (ref, behaviour) => {
                ensureRunning();
                const h = resolve(ref);
                const file = path.join(h.doubleStateDir, "tool-cue.json");
                const next: ToolBehaviour = { ...readJsonFile<ToolBehaviour>(file, {}), ...behaviour };
                writeJsonFile(file, next);
                if (behaviour.missing !== undefined)
                    applyMissingTools(h.binDir, path.join(path.dirname(h.rootDir), "double-host.json"), serviceDoublesScript, behaviour.missing);
                await Promise.resolve();
            },
            serviceState: (ref) => readServiceState(resolve(ref).doubleStateDir),
            serviceEvents: (ref, unit) => {
                const events = readServiceState(resolve(ref).doubleStateDir)?.events ?? [];
                return unit === undefined ? events : events.filter((e) => e.unit === fullUnitName(unit));
            },
            unitStatus: (ref, unit) => readServiceState(resolve(ref).doubleStateDir)?.units[fullUnitName(unit)]?.status ?? "inactive",
            toolInvocations: (ref, toolName) => {
                try {
                    return fs
                        .readFileSync(path.join(resolve(ref).doubleStateDir, "tools.log"), "utf8")
                        .split("\n")
                        .filter((l) => l !== "")
                        .map((l) => JSON.parse(l) as ToolInvocation)
                        .filter((r) => toolName === undefined || r.tool === toolName);
                } catch {
                    return [];
                }
            },
            toolState: (ref) => readJsonFile<ToolState>(path.join(resolve(ref).doubleStateDir, "tool-state.json"), { owners: {} }),
            k3sState: (ref) => {
                try {
                    return JSON.parse(fs.readFileSync(path.join(resolve(ref).doubleStateDir, "state.json"), "utf8")) as DoubleState;
                } catch {
                    return null;
                }
            },
            k3sInvocations: (ref) => {
                try {
                    return fs
                        .readFileSync(path.join(resolve(ref).doubleStateDir, "invocations.log"), "utf8")
                        .split("\n")
                        .filter((l) => l !== "")
                        .map((l) => JSON.parse(l) as InvocationRecord);
                } catch {
                    return [];
                }
            },
            clusterNodes: () => {
                const dir = path.join(clusterDir, "nodes");
                return fs
                    .readdirSync(dir)
                    .filter((f) => f.endsWith(".json"))
                    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as NodeRecord)
                    .sort((a, b) => a.name.localeCompare(b.name));
            },
            stop: () => {
                stopped ??= teardown();
                return stopped;
            },
        };

        // Seed initial configs and start k3s where asked.
        for (const h of planned) {
            if (h.spec.initialConfig === undefined) continue;
            const lab = resolve(h.spec.name);
            fs.writeFileSync(path.join(lab.etcRancherDir, "k3s", "config.yaml"), h.spec.initialConfig, { mode: 0o600 });
            const r = await fleet.exec(lab, `systemctl start ${lab.unit}`, { timeoutMs: 30_000 });
            if (r.code !== 0)
                throw new Error(
                    `lab fleet: ${lab.name}: initial k3s start failed:\n${r.stderr}\n${r.stdout}\n${JSON.stringify(fleet.k3sState(lab)?.lastError)}`,
                );
        }
        return fleet;
    } catch (e) {
        await teardown();
        throw e;
    }
}

function readJsonFile<T>(file: string, fallback: T): T {
    try {
        return JSON.parse(fs.readFileSync(file, "utf8")) as T;
    } catch {
        return fallback;
    }
}

function writeJsonFile(file: string, value: unknown): void {
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(value, null, 2));
    fs.renameSync(tmp, file);
}

/** "nebula" -> "nebula.service" (the stand-in's unit naming). */
function fullUnitName(u: string): string {
    return /\.(service|socket|timer|target|path|mount|slice)$/.test(u) ? u : `${u}.service`;
}

let serviceCueGen = 0;

function writeServiceCue(stateDir: string, unit: string, behaviour: ServiceBehaviour): void {
    const file = path.join(stateDir, "service-cue.json");
    const all = readJsonFile<Record<string, Partial<ServiceBehaviourCue>>>(file, {});
    const name = fullUnitName(unit);
    const current: ServiceBehaviourCue = { failRestarts: 0, exitAtStart: false, exitAfterMs: 0, gen: 0, ...(all[name] ?? {}) };
    const next: ServiceBehaviourCue = { ...current, ...behaviour };
    if (behaviour.failRestarts !== undefined) next.gen = Date.now() * 1000 + (serviceCueGen++ % 1000);
    all[name] = next;
    writeJsonFile(file, all);
}

/** Writes the stand-in wrappers into a host's /usr/local/bin, except the missing ones (removed). */
function applyMissingTools(binDir: string, hostConfig: string, script: string, missing: readonly StandInTool[]): void {
    for (const t of STAND_IN_TOOLS) {
        const file = path.join(binDir, t);
        if (missing.includes(t)) fs.rmSync(file, { force: true });
        else fs.writeFileSync(file, standInWrapper(t, hostConfig, script), { mode: 0o755 });
    }
}

/** services.json with exitAtStart deaths applied as of now (same rule as the double). */
function readServiceState(stateDir: string): ServiceManagerState | null {
    const st = readJsonFile<ServiceManagerState | null>(path.join(stateDir, "services.json"), null);
    if (st === null) return null;
    const nowUs = Number(process.hrtime.bigint() / 1000n);
    for (const u of Object.values(st.units)) {
        if (u.status === "active" && u.diesAtMonoUs !== null && nowUs >= u.diesAtMonoUs) {
            u.status = "failed";
            u.result = "exit-code";
            u.failureCount += 1;
            u.inactiveEnterMonoUs = u.diesAtMonoUs;
            u.inactiveEnterMs = Date.now() - Math.round((nowUs - u.diesAtMonoUs) / 1000);
            u.diesAtMonoUs = null;
        }
    }
    return st;
}

function writeCue(stateDir: string, behaviour: K3sBehaviour): void {
    const file = path.join(stateDir, "cue.json");
    let current: Partial<K3sBehaviourCue> = {};
    try {
        current = JSON.parse(fs.readFileSync(file, "utf8")) as Partial<K3sBehaviourCue>;
    } catch {
        current = {};
    }
    const next = { ...current, ...behaviour };
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(next, null, 2));
    fs.renameSync(tmp, file);
}
