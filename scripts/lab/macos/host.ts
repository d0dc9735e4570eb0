/**
 * The harness side of a macOS-shaped lab host (LabHostSpec.os "macos"): its runtime directory
 * (types.ts MACOS_RUNTIME), its /usr/bin (the machine's own tools minus what a Mac lacks, plus
 * the BSD stand-ins and launchctl), the binds its boot script makes, and its sshd settings.
 *
 * The host's /usr/bin (= /bin: the machine's /bin is a link to usr/bin) is a directory of
 * links into MACOS_REAL_BIN, the machine's real /usr/bin bound read-only there, without the
 * MACOS_ABSENT_TOOLS, and with a wrapper per BSD_TOOLS entry. A script on the host thus
 * finds `stat` (and `/usr/bin/stat`) to be the BSD stand-in and no `sha256sum` at all, while
 * the stand-ins reach the real tools by their MACOS_REAL_BIN paths.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { shQuote } from "../processes";
import type { LaunchdState } from "./types";
import { BSD_TOOLS, MACOS_ABSENT_LOCAL_TOOLS, MACOS_ABSENT_TOOLS, MACOS_BASH_ENV, MACOS_PATH, MACOS_REAL_BIN, MACOS_RUNTIME } from "./types";

export const BASH32_ENV_FILE = path.join(__dirname, "bash32-env.sh");

/** The environment of the host's sessions (sshd SetEnv, and fleet.exec). */
export const MACOS_SESSION_ENV: Readonly<Record<string, string>> = { PATH: MACOS_PATH, BASH_ENV: MACOS_BASH_ENV, BASH_COMPAT: "3.2" };

export function macosWrapper(tool: string): string {
    return [
        "#!/bin/sh",
        `# macos-tools: lab fleet TEST DOUBLE standing in for macOS's \`${tool}\` (not the real one).`,
        "# See scripts/lab/macos and docs/macos-userland.md.",
        `K3S_TEST_DOUBLE_HOST_CONFIG=${shQuote(`${MACOS_RUNTIME}/host.json`)}`,
        `LAB_MACOS_REAL_BIN=${shQuote(MACOS_REAL_BIN)}`,
        "export K3S_TEST_DOUBLE_HOST_CONFIG LAB_MACOS_REAL_BIN",
        `exec ${shQuote(`${MACOS_RUNTIME}/node/bin/node`)} --disable-warning=ExperimentalWarning ${shQuote(`${MACOS_RUNTIME}/mjs/macos-tools.mjs`)} ${tool} "$@"`,
        "",
    ].join("\n");
}

/**
 * Lays out the macOS parts of one host. Returns the binds its boot script makes after the
 * private directories (source, in-host target, "ro" for read-only), in order.
 */
export function layOutMacosHost(args: {
    hostDir: string;
    /** Harness side of /var/lib/rancher/k3s-test-double. */
    stateDir: string;
    /** Harness side of the host's /usr/local/bin. */
    binDir: string;
    hostConfigPath: string;
    /** The built macos-tools.mjs (doubleBuild.ts). */
    builtScript: string;
}): { binds: [string, string, string][]; usrBin: string } {
    const runtime = path.join(args.stateDir, "macos");
    for (const d of ["node", "orig-usr-bin", "mjs"]) fs.mkdirSync(path.join(runtime, d), { recursive: true, mode: 0o755 });
    fs.chmodSync(args.stateDir, 0o755);
    fs.chmodSync(runtime, 0o755);
    fs.cpSync(path.dirname(args.builtScript), path.join(runtime, "mjs"), { recursive: true });
    fs.copyFileSync(args.hostConfigPath, path.join(runtime, "host.json"));
    fs.chmodSync(path.join(runtime, "host.json"), 0o644);
    fs.copyFileSync(BASH32_ENV_FILE, path.join(runtime, "bash32.sh"));
    fs.chmodSync(path.join(runtime, "bash32.sh"), 0o644);

    const usrBin = path.join(args.hostDir, "macos-usr-bin");
    fs.mkdirSync(usrBin, { recursive: true, mode: 0o755 });
    const skip = new Set<string>([...MACOS_ABSENT_TOOLS, ...BSD_TOOLS]);
    for (const entry of fs.readdirSync("/usr/bin")) {
        if (!skip.has(entry)) fs.symlinkSync(path.join(MACOS_REAL_BIN, entry), path.join(usrBin, entry));
    }
    for (const tool of BSD_TOOLS) fs.writeFileSync(path.join(usrBin, tool), macosWrapper(tool), { mode: 0o755 });
    removeAbsentLocalTools(args.binDir);

    const nodeDir = path.dirname(path.dirname(process.execPath));
    return {
        usrBin,
        binds: [
            ["/usr/bin", MACOS_REAL_BIN, "ro"],
            [nodeDir, `${MACOS_RUNTIME}/node`, "ro"],
            [usrBin, "/usr/bin", ""],
        ],
    };
}

/** sshd_config lines of a macOS-shaped host: its sessions' environment. */
export function macosSshdConfig(): string[] {
    return [
        `SetEnv ${Object.entries(MACOS_SESSION_ENV)
            .map(([k, v]) => `${k}=${v}`)
            .join(" ")}`,
    ];
}

/** Takes the Linux-only wrappers (systemctl, k3s, apt-get, ...) out of a macOS host's /usr/local/bin. */
export function removeAbsentLocalTools(binDir: string): void {
    for (const tool of MACOS_ABSENT_LOCAL_TOOLS) fs.rmSync(path.join(binDir, tool), { force: true });
}

/** The launchctl stand-in's state, read from the harness side of the host's state directory. */
export function readLaunchdState(stateDir: string): LaunchdState {
    try {
        const s = JSON.parse(fs.readFileSync(path.join(stateDir, "launchd.json"), "utf8")) as Partial<LaunchdState>;
        return { jobs: s.jobs ?? {}, disabled: s.disabled ?? [], events: s.events ?? [] };
    } catch {
        return { jobs: {}, disabled: [], events: [] };
    }
}
