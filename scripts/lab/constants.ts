/**
 * Names, paths and ranges every part of the lab harness agrees on. Teardown finds a run's
 * leftovers by these prefixes alone (namespaces, links), so they must not change between the
 * run that made something and the one that removes it.
 */
import * as path from "node:path";
import { versions } from "../../components/versions";
import { STAND_IN_TOOLS } from "./service-doubles/types";

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

/** Private directories of a macOS-shaped host (`os: "macos"`) besides LAB_PRIVATE_DIRS. */
export const MACOS_PRIVATE_DIRS: readonly string[] = ["/Library/LaunchDaemons"];

/** Bridges are picked inside the benchmark range: never a real network, routable only on this machine. */
export const LAB_RANGE = "198.18.0.0/15";
/** Run directories go here by default (tmpfs; gone after a reboot, like the namespaces). */
export const DEFAULT_BASE_DIR = "/run/sc-lab";
/** Run directory `sc-lab-<run>` and network namespaces `sc-lab-<run>-<host>`. */
export const RUN_PREFIX = "sc-lab-";
/** The run's bridge `sc-br-<run>` in the root namespace (interface names are 15 characters at most). */
export const BRIDGE_PREFIX = "sc-br-";
/** The root-namespace end of a host's veth, `sc-v<run>-<index>`. */
export const VETH_PREFIX = "sc-v";
/** The pinned k3s release: what the double reports unless a test asks for another. */
export const DEFAULT_K3S_VERSION: string = versions.k3s;
/** Entry points of the doubles, built per run into plain JavaScript (doubleBuild.ts). */
export const DOUBLE_SCRIPT = path.join(__dirname, "k3s-double", "k3s-double.ts");
export const SERVICE_DOUBLES_SCRIPT = path.join(__dirname, "service-doubles", "service-doubles.ts");
export const MACOS_TOOLS_SCRIPT = path.join(__dirname, "macos", "macos-tools.ts");
/** PATH inside a host: /usr/local/bin (the doubles) before the system's own tools. */
export const HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** What the harness writes into a host's /usr/local/bin; the real one's entries of these names are hidden. */
export const SHIM_NAMES: readonly string[] = ["k3s", "kubectl", "systemctl", "journalctl", "sudo", ...STAND_IN_TOOLS];
