/**
 * What the harness and the macOS-shaped host's stand-ins share: the in-host paths of the
 * host's macOS runtime, which tools it has and lacks, and the launchctl stand-in's state,
 * events and cues.
 */

/**
 * In-host directory of everything the macOS stand-ins need (under the host's private
 * /var/lib/rancher, so a non-root user reaches it: the run directory and root's home are 0700).
 *   node/          bind of the harness's Node directory (the wrappers run its bin/node)
 *   mjs/           the built stand-ins (doubleBuild.ts output, copied per host)
 *   orig-usr-bin/  bind of the machine's real /usr/bin (the GNU tools the stand-ins call)
 *   host.json      the host config (DoubleHostConfig)
 *   bash32.sh      BASH_ENV of the host's bash sessions (bash 3.2 setup)
 */
export const MACOS_RUNTIME = "/var/lib/rancher/k3s-test-double/macos";
export const MACOS_REAL_BIN = `${MACOS_RUNTIME}/orig-usr-bin`;
export const MACOS_BASH_ENV = `${MACOS_RUNTIME}/bash32.sh`;
/** macOS's default PATH (path_helper's /etc/paths order), /usr/local/bin first. */
export const MACOS_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/** BSD (macOS) stand-ins placed in the host's /usr/bin (which is also its /bin). */
export const BSD_TOOLS = [
    "stat",
    "readlink",
    "sed",
    "mv",
    "cp",
    "ln",
    "date",
    "mktemp",
    "install",
    "find",
    "chmod",
    "chown",
    "head",
    "tail",
    "wc",
    "dd",
    "base64",
    "gzip",
    "launchctl",
] as const;
export type BsdTool = (typeof BSD_TOOLS)[number];

/**
 * GNU/Linux tools a Mac does not have: absent from the macOS-shaped host's /usr/bin (`command
 * -v` fails, running one is "command not found", 127). shasum, which macOS has, stays (Debian's
 * is the same Perl script).
 */
export const MACOS_ABSENT_TOOLS: readonly string[] = [
    "sha1sum",
    "sha224sum",
    "sha256sum",
    "sha384sum",
    "sha512sum",
    "md5sum",
    "b2sum",
    "timeout",
    "ip",
    "ss",
    "systemctl",
    "journalctl",
    "systemd-run",
    "loginctl",
    "hostnamectl",
    "busctl",
    "stdbuf",
    "nproc",
    "flock",
    "setsid",
    "getent",
    "tac",
    "numfmt",
    "apt",
    "apt-get",
    "dpkg",
    "runuser",
];

/** /usr/local/bin entries a macOS-shaped host does not get (Linux service manager, packages, k3s). */
export const MACOS_ABSENT_LOCAL_TOOLS: readonly string[] = ["systemctl", "journalctl", "k3s", "kubectl", "apt-get", "dpkg", "cloud-init", "chown"];

/** One launchd job as the launchctl stand-in keeps it (launchd.json). */
export interface LaunchdJob {
    label: string;
    plist: string;
    /** What is executed: Program, else ProgramArguments[0]. */
    program: string;
    /** Its argv (argv[0] included), as launchd passes it. */
    programArguments: string[];
    runAtLoad: boolean;
    /** KeepAlive true (or a dictionary, taken as true): a job found dead is started again at the next launchctl call. */
    keepAlive: boolean;
    standardOutPath: string | null;
    standardErrorPath: string | null;
    /** pid and /proc start time of the running process, or null. */
    pid: number | null;
    pidStart: string | null;
    runs: number;
    lastExitCode: number | null;
    loadedAtMs: number;
}

export interface LaunchdEvent {
    /** "bootstrap", "bootout", "kickstart", "enable", "disable", "print", "spawn", "kill", "signal" (launchctl kill), "keepalive-respawn". */
    verb: string;
    label: string;
    domain: string;
    atMs: number;
    /** CLOCK_MONOTONIC µs (the service-manager stand-in's clock). */
    monoUs: number;
    uid: number;
    exitCode: number;
    /** "running", "not running", "not loaded" after the call. */
    result: string;
    pid?: number | null;
    detail?: string;
}

export interface LaunchdState {
    jobs: Record<string, LaunchdJob>;
    /** launchctl disable'd labels of the system domain (launchd's override database). */
    disabled: string[];
    events: LaunchdEvent[];
}

/** Cues of the launchctl stand-in, per label. */
export interface LaunchdBehaviour {
    /** Run this argv instead of the plist's ProgramArguments (the plist is still parsed and checked). */
    program?: string[] | null;
    /** The next n spawns of the job's program fail at once (the job reads `not running`, last exit code 78). */
    failSpawns?: number;
}
