/**
 * Types the double shares with the harness (scripts/lab imports them with `import type`):
 * the files both sides read and write in a host's state directory.
 */

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
    /** The OS the host plays: the go stand-in keeps its build cache where Go does on it. */
    os: "linux" | "macos";
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
    /**
     * A pod on this node whose disruption budget forbids its eviction (its name in
     * BUDGET_GUARDED_POD): `kubectl drain` retries it every 5 s and fails at its --timeout, with
     * the words kubectl v1.33.4 gives against a processed budget (test/scripts/lab/stack/apiServer.lab.test.ts).
     * Read at every attempt, so lifting it mid-drain lets the drain finish.
     */
    evictionBlocked: boolean;
    /** A ReplicaSet's pod on this node (pods.ts): evicted by a drain, back once the node is schedulable. */
    workloadPod: boolean;
    /** A pod no controller owns on this node (pods.ts): a drain refuses to evict it. */
    unmanagedPod: boolean;
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
    /** `namespace/name` of pods evicted from it; they come back when it is schedulable again (pods.ts). */
    evictedPods?: string[];
}
