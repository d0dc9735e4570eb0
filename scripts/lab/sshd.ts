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
        `AuthorizedKeysFile ${h.spec.machine === true ? "/root/.ssh/authorized_keys" : path.join(runDir, "authorized_keys")}${h.spec.login !== undefined ? " %h/.ssh/authorized_keys" : ""}`,
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
# A host's Go is the go stand-in on its PATH: the machine's own go.dev install (where derp/install.sh
# also looks, off PATH, as on a Mac) would otherwise answer for a host whose Go the test removed.
if [ -d /usr/local/go ]; then mount -t tmpfs -o size=1m,mode=0755 lab-no-go /usr/local/go; fi
if [ "$private_tmp" = yes ]; then mount -t tmpfs -o size=64m,mode=1777 lab-tmp /tmp; fi
if [ -f /root/.bashrc ]; then mount --bind "$bashrc" /root/.bashrc; fi
login="$(dirname "$cfg")/login"
if [ -f "$login" ]; then
  read -r user sudo_rule shell os < "$login"
  mount -t tmpfs -o size=16m,mode=0755 lab-home /home
  mount -t tmpfs -o size=16m,mode=0755 lab-log /var/log
  # sudo resolves the host's name: without this line every call waits for DNS that never answers.
  printf '127.0.1.1 %s\n' "$host" >> /etc/hosts
  useradd --no-create-home --home-dir "/home/$user" --shell "$shell" --user-group "$user"
  # A '*' hash, not useradd's '!': sshd without PAM refuses a locked account even for key logins.
  usermod --password '*' "$user"
  install -d -o "$user" -g "$user" -m 0700 "/home/$user" "/home/$user/.ssh"
  install -o "$user" -g "$user" -m 0600 "$(dirname "$(dirname "$(dirname "$cfg")")")/authorized_keys" "/home/$user/.ssh/authorized_keys"
  # BASH_ENV/BASH_COMPAT: a macOS-shaped host's bash 3.2 setup (scripts/lab/macos) also holds
  # under sudo, whose env_reset would drop it (elsewhere they are unset: nothing to keep).
  printf 'Defaults logfile=/var/log/sudo.log\nDefaults env_keep += "BASH_ENV BASH_COMPAT"\n' > /etc/sudoers.d/lab-log
  # macOS's own /etc/sudoers keeps the login user's HOME (and MAIL) under sudo; Debian's sets root's.
  if [ "$os" = macos ]; then printf 'Defaults env_keep += "HOME MAIL"\n' >> /etc/sudoers.d/lab-log; fi
  case "$sudo_rule" in
    nopasswd) printf '%s ALL=(root) NOPASSWD: /bin/bash\n' "$user" > /etc/sudoers.d/lab-login ;;
    password)
      printf '%s ALL=(root) ALL\n' "$user" > /etc/sudoers.d/lab-login
      printf '%s:lab-password-%s\n' "$user" "$RANDOM" | chpasswd
      ;;
    refused) ;;
    missing)
      # An overlay whiteout (a 0:0 character device) hides the real sudo from the host alone.
      upper="$(dirname "$cfg")/usr-bin/upper"
      for found in /usr/bin/sudo /bin/sudo; do
        if [ -e "$found" ]; then
          dir="$(dirname "$(readlink -f "$found")")"
          mknod "$upper/sudo" c 0 0
          mount -t overlay lab-no-sudo -o "lowerdir=$dir,upperdir=$upper,workdir=$(dirname "$cfg")/usr-bin/work" "$dir"
          break
        fi
      done
      ;;
  esac
  chmod 0440 /etc/sudoers.d/lab-*
fi
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
