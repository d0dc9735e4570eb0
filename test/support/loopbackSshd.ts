import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

/*
 * A throwaway sshd on 127.0.0.1 with generated host and client keys, standing in for many
 * hosts at once (the drift benchmark): root login with the generated key only, nothing else.
 * Needs root, unshare (util-linux) and Debian's openssh-server; stop() kills it and removes its
 * directory.
 */

export interface LoopbackSshd {
    port: number;
    keyPath: string;
    stop(): void;
}

function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => {
            const address = server.address();
            server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))));
        });
    });
}

export async function startLoopbackSshd(): Promise<LoopbackSshd> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sc-loopback-sshd-"));
    const keyPath = path.join(dir, "id_client");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyPath], { timeout: 20_000 });
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "host_key")], { timeout: 20_000 });
    fs.copyFileSync(`${keyPath}.pub`, path.join(dir, "authorized_keys"));
    fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    const port = await freePort();
    const config = [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${path.join(dir, "host_key")}`,
        `PidFile ${path.join(dir, "sshd.pid")}`,
        `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`,
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "UseDNS no",
        "PrintMotd no",
        "MaxStartups 128:30:256",
        "MaxSessions 128",
        "",
    ].join("\n");
    fs.writeFileSync(path.join(dir, "sshd_config"), config);
    const sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"].find((candidate) => fs.existsSync(candidate)) ?? "sshd";
    const log = path.join(dir, "sshd.log");
    const fd = fs.openSync(log, "a");
    // In its own mount namespace with an empty /root/.bashrc (bash sources it for every ssh
    // session; the machine's own one is not part of a stand-in host), as the lab fleet does.
    const bashrc = path.join(dir, "bashrc");
    fs.writeFileSync(bashrc, "");
    const boot = 'if [ -f /root/.bashrc ]; then mount --bind "$1" /root/.bashrc; fi; shift; exec "$@"';
    const child = spawn(
        "unshare",
        ["--mount", "--propagation", "private", "--", "/bin/bash", "-c", boot, "sshd-boot", bashrc, sshd, "-D", "-e", "-f", path.join(dir, "sshd_config")],
        {
            stdio: ["ignore", fd, fd],
        },
    );
    fs.closeSync(fd);
    const stop = (): void => {
        child.kill("SIGTERM");
        fs.rmSync(dir, { recursive: true, force: true });
    };
    for (let attempt = 0; attempt < 500; attempt++) {
        if (fs.readFileSync(log, "utf8").includes("Server listening")) {
            return { port, keyPath, stop };
        }
        if (child.exitCode !== null) {
            break;
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const text = fs.readFileSync(log, "utf8");
    stop();
    throw new Error(`loopback sshd did not start:\n${text}`);
}
