/**
 * A host's sshd: its config, the boot script that builds the host's private view (mount and UTS
 * namespaces inside the network namespace) and execs sshd, and the ssh client argv that reaches it.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { HOST_PATH } from "./constants";
import { macosSshdConfig } from "./macos/host";
import type { PlannedHost } from "./hostPlan";
import { sleep } from "./processes";
import type { LabHost } from "./types";

export function sshdConfig(h: PlannedHost, runDir: string): string {
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
        ...(h.spec.os === "macos" ? macosSshdConfig() : []),
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
while IFS="$(printf '\t')" read -r src target opts; do
  [ -n "$src" ] || continue
  mount --bind "$src" "$target"
  if [ "\${opts:-}" = ro ]; then mount -o remount,bind,ro "$target"; fi
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

/** What the boot script mounts, by harness-side path (see HOST_BOOT's arguments). */
export interface HostBootPaths {
    etcDir: string;
    varDir: string;
    binDir: string;
    origBin: string;
    bashrcPath: string;
    privateList: string;
    /** Mount a private tmpfs on /tmp (not when the run or the doubles live under /tmp). */
    privateTmp: boolean;
    /** Real systemctl/journalctl paths to bind the shims over. */
    bindTargets: readonly string[];
}

/**
 * Starts the host's sshd in its own mount + UTS namespace inside the network namespace and waits
 * (10 s at most) until it listens. The child is unref'd: the harness process may exit while hosts
 * run (the exit hook kills them).
 */
export async function startSshd(
    ip: string,
    unshare: string,
    sshd: string,
    h: PlannedHost,
    p: HostBootPaths,
    onSpawn: (child: ChildProcess) => void,
): Promise<ChildProcess> {
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
            p.etcDir,
            p.varDir,
            p.binDir,
            p.origBin,
            path.join(h.hostDir, "sshd_config"),
            p.privateTmp ? "yes" : "no",
            sshd,
            p.bashrcPath,
            p.privateList,
            ...p.bindTargets,
        ],
        { stdio: ["ignore", logFd, logFd], cwd: "/", env: { PATH: HOST_PATH, LANG: "C.UTF-8" } },
    );
    fs.closeSync(logFd);
    child.unref();
    // Registered before the wait: a host that never listens is still torn down with the run.
    onSpawn(child);
    if (child.pid === undefined) throw new Error(`lab fleet: ${h.spec.name}: could not spawn sshd`);
    const deadline = Date.now() + 10_000;
    for (let i = 0; ; i++) {
        const log = fs.readFileSync(logPath, "utf8");
        if (log.includes("Server listening on")) break;
        if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline || i > 2000) {
            throw new Error(`lab fleet: ${h.spec.name}: sshd did not come up (${sshd}):\n${log}`);
        }
        await sleep(10);
    }
    return child;
}

/** ssh options for a throw-away host: the run's key only, no agent, no known_hosts, bounded connect. */
export function sshArgv(keyPath: string, h: LabHost, timeout: number): string[] {
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
}
