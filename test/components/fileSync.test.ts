import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileSyncPayload, fileSyncScript, type DeliveredFile } from "../../components/remote/fileSync";

/*
 * Runs the exact delivery script with bash, as root, inside a private mount namespace where
 * /etc/nebula and /etc/systemd/system are fresh tmpfs mounts, and `systemctl`/`launchctl` are
 * recording shims. Nothing outside the namespace is touched.
 */

let work: string;
let shims: string;
let state: string;

beforeAll(() => {
    if (process.getuid?.() !== 0) {
        throw new Error("the file delivery tests need root for a private mount namespace (CI runs as root)");
    }
});

beforeEach(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "sc-filesync-"));
    shims = path.join(work, "bin");
    state = path.join(work, "state");
    fs.mkdirSync(shims);
    fs.mkdirSync(state);
    for (const tool of ["systemctl", "launchctl"]) {
        fs.writeFileSync(path.join(shims, tool), `#!/bin/sh\necho "${tool} $*" >> "${work}/calls.log"\n[ ! -e "${work}/fail-restart" ]\n`, { mode: 0o755 });
    }
});

afterEach(() => {
    fs.rmSync(work, { recursive: true, force: true });
});

interface Delivery {
    status: number | null;
    stdout: string;
    stderr: string;
    calls: string[];
}

/**
 * Delivers `files` with the script; the tmpfs contents are persisted to `state` between
 * deliveries so a second run sees what the first wrote.
 */
function deliver(script: string, files: readonly DeliveredFile[]): Delivery {
    fs.rmSync(path.join(work, "calls.log"), { force: true });
    const inner = [
        "set -euo pipefail",
        "mount -t tmpfs tmpfs /etc/nebula 2>/dev/null || { mkdir -p /etc/nebula && mount -t tmpfs tmpfs /etc/nebula; }",
        "mount -t tmpfs tmpfs /etc/systemd/system",
        `cp -a "${state}/." / 2>/dev/null || true`,
        `PATH="${shims}:$PATH" bash -c "$SCRIPT" < "${work}/payload"`,
        "status=$?",
        `rm -rf "${state}" && mkdir -p "${state}/etc" && cp -a /etc/nebula "${state}/etc/" && mkdir -p "${state}/etc/systemd" && cp -a /etc/systemd/system "${state}/etc/systemd/"`,
        "exit $status",
    ].join("\n");
    fs.writeFileSync(path.join(work, "payload"), fileSyncPayload(files));
    const result = spawnSync("unshare", ["-m", "--propagation", "private", "bash", "-c", inner], {
        env: { ...process.env, SCRIPT: script },
        encoding: "utf8",
        timeout: 30000,
    });
    const log = path.join(work, "calls.log");
    return {
        status: result.status,
        stdout: result.stdout,
        stderr: result.stderr,
        calls: fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : [],
    };
}

const delivered = (file: string): string => path.join(state, file);

const config: DeliveredFile = { path: "/etc/nebula/config.yml", content: "tun:\n  mtu: 1300\n", mode: 0o644 };
const key: DeliveredFile = { path: "/etc/nebula/host.key", content: "-----BEGIN NEBULA X25519 PRIVATE KEY-----\nAAAA\n-----END NEBULA X25519 PRIVATE KEY-----\n", mode: 0o600 };
const unit: DeliveredFile = { path: "/etc/systemd/system/nebula.service", content: "[Service]\nExecStart=/usr/bin/env nebula\n", mode: 0o644 };
const systemd = fileSyncScript({ manager: "systemd", unit: "nebula.service" });

describe("the file delivery script", () => {
    it("writes every file with its mode and restarts once on first delivery", () => {
        const result = deliver(systemd, [config, key, unit]);
        expect(result.status).toBe(0);
        expect(fs.readFileSync(delivered("etc/nebula/config.yml"), "utf8")).toBe(config.content);
        expect(fs.statSync(delivered("etc/nebula/host.key")).mode & 0o777).toBe(0o600);
        expect(fs.statSync(delivered("etc/nebula/config.yml")).mode & 0o777).toBe(0o644);
        expect(result.calls).toEqual(["systemctl daemon-reload", "systemctl enable nebula.service", "systemctl restart nebula.service"]);
        expect(result.stdout).toContain("shortcircuit: wrote /etc/nebula/config.yml");
        // Command output lands in Pulumi state and logs: it names files, never their content.
        expect(`${result.stdout}${result.stderr}`).not.toContain("PRIVATE KEY");
        expect(`${result.stdout}${result.stderr}`).not.toContain("AAAA");
    });

    it("touches nothing and restarts nothing when every file is unchanged", () => {
        deliver(systemd, [config, key, unit]);
        const before = fs.statSync(delivered("etc/nebula/config.yml")).mtimeMs;
        const result = deliver(systemd, [config, key, unit]);
        expect(result.status).toBe(0);
        expect(result.stdout.trim()).toBe("shortcircuit: no change");
        expect(result.calls).toEqual([]);
        expect(fs.statSync(delivered("etc/nebula/config.yml")).mtimeMs).toBe(before);
        expect(fs.existsSync(delivered("etc/nebula/config.yml.previous"))).toBe(false);
    });

    it("rewrites only the changed file, keeps its previous version, and restarts once", () => {
        deliver(systemd, [config, key, unit]);
        const changed = { ...config, content: "tun:\n  mtu: 1280\n" };
        const result = deliver(systemd, [changed, key, unit]);
        expect(result.status).toBe(0);
        expect(result.stdout).toContain("wrote /etc/nebula/config.yml");
        expect(result.stdout).not.toContain("wrote /etc/nebula/host.key");
        expect(fs.readFileSync(delivered("etc/nebula/config.yml"), "utf8")).toBe(changed.content);
        expect(fs.readFileSync(delivered("etc/nebula/config.yml.previous"), "utf8")).toBe(config.content);
        expect(result.calls.filter((call) => call.startsWith("systemctl restart"))).toHaveLength(1);
        expect(fs.readdirSync(delivered("etc/nebula")).filter((name) => name.includes(".shortcircuit."))).toEqual([]);
    });

    it("carries content verbatim: quotes, $(…), backslashes and no trailing newline never reach a shell", () => {
        const tricky = { path: "/etc/nebula/notes.txt", content: "a 'quote' \"dq\" $(touch /tmp/pwned) `id` \\n\nlast line", mode: 0o644 };
        const result = deliver(fileSyncScript({ manager: "none" }), [tricky]);
        expect(result.status).toBe(0);
        expect(fs.readFileSync(delivered("etc/nebula/notes.txt"), "utf8")).toBe(tricky.content);
        expect(fs.existsSync("/tmp/pwned")).toBe(false);
    });

    it("fails the delivery when the service does not restart", () => {
        fs.writeFileSync(path.join(work, "fail-restart"), "");
        const result = deliver(systemd, [config]);
        expect(result.status).not.toBe(0);
    });

    it("restarts through launchd on macOS hosts", () => {
        const result = deliver(fileSyncScript({ manager: "launchd", label: "net.defined.nebula" }), [config]);
        expect(result.calls).toEqual(["launchctl kickstart -k system/net.defined.nebula"]);
    });

    it("refuses paths that are relative or contain whitespace, and unit names a shell would split", () => {
        expect(() => fileSyncPayload([{ path: "etc/x", content: "", mode: 0o644 }])).toThrow("must be absolute");
        expect(() => fileSyncPayload([{ path: "/etc/a b", content: "", mode: 0o644 }])).toThrow("no whitespace");
        expect(() => fileSyncScript({ manager: "systemd", unit: "nebula; reboot" })).toThrow("has characters a unit name cannot");
    });
});
