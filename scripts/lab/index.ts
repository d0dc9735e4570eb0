/**
 * The lab harness (lab fleet): a reusable harness of throw-away test hosts, so tests can run the
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
 *                   k3s-double/; systemctl is also the
 *                   service-manager stand-in for every other unit, cued per unit with
 *                   `setServiceBehaviour`), the stand-ins of service-doubles/
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
 * synchronously if a test forgets; `teardownLabRun(runId)` does it for any one run (the
 * run's owner alive or not); `cleanupStaleLab()` removes what killed runs left behind (runs
 * are owned by a pid; only runs whose owner is gone are touched).
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
 *
 * A host with `os: "macos"` is macOS-shaped (macos/, docs/macos-userland.md): its /usr/bin
 * (= /bin) holds the BSD stand-ins and launchctl and lacks sha256sum, timeout, ip, systemctl
 * (macos/types.ts MACOS_ABSENT_TOOLS), its /usr/local/bin has no systemctl, journalctl, k3s,
 * kubectl, apt-get, dpkg, cloud-init or chown wrapper, /Library/LaunchDaemons is private
 * (MACOS_PRIVATE_DIRS), and its sessions get the Mac's PATH and bash 3.2 setup (sshd SetEnv,
 * ~/.bashrc). launchdState/launchdEvents/setLaunchdBehaviour read and cue launchctl.
 *
 * Modules, by concern: startLabFleet.ts (the composition), hostPlan.ts (specs to names and
 * addresses), hostLayout.ts (a host's files), hostTools.ts (its /usr/local/bin), network.ts
 * (bridge, namespaces, links), sshd.ts, runDir.ts (run directory and owner file), teardown.ts,
 * fleetHandle.ts (the LabFleet a test holds), cues.ts (files shared with the doubles),
 * doubleBuild.ts, processes.ts, prerequisites.ts, ipv4.ts, constants.ts, types.ts; the doubles
 * in k3s-double/, service-doubles/ and macos/.
 */
export { LAB_PRIVATE_DIRS, MACHINE_PRIVATE_DIRS, MACOS_PRIVATE_DIRS } from "./constants";
export type { LaunchdBehaviour, LaunchdEvent, LaunchdJob, LaunchdState } from "./macos/types";
export { checkLabPrerequisites, LabPrerequisiteError } from "./prerequisites";
export { startLabFleet } from "./startLabFleet";
export { cleanupStaleLab, teardownLabRun } from "./teardown";
export type { CleanupReport } from "./teardown";
export type {
    ExecOptions,
    ExecResult,
    HostRef,
    K3sBehaviour,
    LabFleet,
    LabFleetOptions,
    LabHost,
    LabHostSpec,
    LabLogin,
    LabSudo,
    ServiceBehaviour,
} from "./types";
export type {
    DoubleState,
    InvocationRecord,
    K3sBehaviourCue,
    LabRole,
    NodeRecord,
    ServiceEvent,
    ServiceManagerState,
    ServiceUnitState,
    UnitStatus,
} from "./k3s-double/types";
export { STAND_IN_TOOLS } from "./service-doubles/types";
export type { StandInTool, ToolBehaviour, ToolInvocation, ToolState } from "./service-doubles/types";
