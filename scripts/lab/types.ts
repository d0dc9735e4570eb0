/** The lab fleet's public types: what a test asks for (specs, options) and what it gets (hosts, the fleet). */
import type { DoubleState, InvocationRecord, LabRole, NodeRecord, ServiceEvent, ServiceManagerState, UnitStatus } from "./k3s-double/types";
import type { LaunchdBehaviour, LaunchdEvent, LaunchdState } from "./macos/types";
import type { StandInTool, ToolBehaviour, ToolInvocation, ToolState } from "./service-doubles/types";

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

/**
 * How a host's non-root login user gains root, with Debian's real sudo: `nopasswd` (the rule
 * docs/runbooks give: `<user> ALL=(root) NOPASSWD: /bin/bash`), `password` (a rule that asks for
 * the user's password), `refused` (no rule at all), `missing` (no sudo on the host's PATH).
 */
export type LabSudo = "nopasswd" | "password" | "refused" | "missing";

/** A non-root SSH login (see LabHostSpec.login). */
export interface LabLogin {
    /** A POSIX user name other than root. */
    user: string;
    sudo: LabSudo;
}

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
    /**
     * Also accept the run's key for this non-root user (the host's /etc and /root become
     * overlays as with `machine`, and /home and /var/log private tmpfs): the user is added to
     * the host's own /etc/passwd, and sudo is set up as `login.sudo` says, the real sudo
     * logging every command to /var/log/sudo.log. The harness's root login stays (`exec`, `ssh`).
     */
    login?: LabLogin;
    /**
     * "macos": a macOS-shaped host (scripts/lab/macos, docs/macos-userland.md): the BSD
     * stand-ins and launchctl in its /usr/bin (= /bin), no sha256sum, timeout, ip, systemctl
     * (MACOS_ABSENT_TOOLS), a private /Library/LaunchDaemons, gid 0 named wheel, and bash
     * sessions set up as 3.2 (BASH_COMPAT=3.2, BASH_ENV). Default "linux".
     */
    os?: "linux" | "macos";
    /** launchctl stand-in cues from the start, by label (macOS hosts). */
    launchd?: Record<string, LaunchdBehaviour>;
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
    /** A pod on this node whose disruption budget forbids its eviction: a drain retries it every 5 s until its --timeout. */
    evictionBlocked?: boolean;
    /** A ReplicaSet's pod on this node: a drain evicts it; it is back once the node is schedulable. */
    workloadPod?: boolean;
    /** A pod no controller owns on this node: a drain refuses to evict it. */
    unmanagedPod?: boolean;
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
    /** The non-root login of LabHostSpec.login, or null (root only). */
    login: LabLogin | null;
    /** "macos" for a macOS-shaped host (LabHostSpec.os). */
    os: "linux" | "macos";
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
    /** The launchctl stand-in's jobs, overrides and events (macOS hosts; empty before any call). */
    launchdState(host: HostRef): LaunchdState;
    /** launchctl calls and job starts/kills, oldest first, optionally of one label. */
    launchdEvents(host: HostRef, label?: string): LaunchdEvent[];
    /** Cues of the launchctl stand-in for one label, merged into the current ones. */
    setLaunchdBehaviour(host: HostRef, label: string, behaviour: LaunchdBehaviour): Promise<void>;
    k3sState(host: HostRef): DoubleState | null;
    k3sInvocations(host: HostRef): InvocationRecord[];
    clusterNodes(): NodeRecord[];
    stop(): Promise<void>;
}
