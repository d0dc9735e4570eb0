/**
 * What the lab fleet needs on this machine, checked up front so a suite fails with one
 * readable list instead of a half-built fleet.
 */
import * as fs from "node:fs";
import * as path from "node:path";

export class LabPrerequisiteError extends Error {}

/** Tools the harness runs, with the Debian package that brings each (for the error message). */
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

/** The command's path, searching PATH and the sbin dirs (sudo-less root shells often lack them). */
export function which(cmd: string): string | null {
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

/** The command's path, or a LabPrerequisiteError naming its package. */
export function tool(cmd: string): string {
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

export function assertPrerequisites(): void {
    const problems = checkLabPrerequisites();
    if (problems.length > 0) {
        throw new LabPrerequisiteError(
            `lab fleet prerequisites missing:\n  - ${problems.join("\n  - ")}\n` +
                "scripts/setup.sh installs the Debian packages (openssh-server openssh-client iproute2 iputils-ping); run it as root.",
        );
    }
}
