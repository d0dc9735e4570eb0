/**
 * service-doubles — TEST DOUBLES of the commands the program's non-k3s remote scripts call
 * (file delivery, the control server bootstrap, the derper install), for the lab fleet's
 * test hosts (see labFleet.ts). None of them is the real tool; each says so in --help and in
 * its errors. The harness puts a wrapper per tool in the host's /usr/local/bin (first on
 * PATH) that runs `node service-doubles.{mjs,ts} <tool> <args...>`; keep this file to
 * erasable TypeScript and node built-ins (the harness strips the types once per run).
 *
 *   headscale   `headscale version` prints the host's cued version (ToolBehaviour.headscaleVersion);
 *               `headscale configtest -c FILE` exits 0 when FILE exists unless
 *               headscaleConfigtestFails is set (then prints it, exit 1)
 *   nebula      `nebula -version` prints "Version: <nebulaVersion>";
 *               `nebula -test -config FILE` runs Debian's real /usr/bin/nebula -test when
 *               present (nebulaTest "real", the default), else checks FILE exists ("stub");
 *               nebulaTestFails set: prints it, exit 1; running the daemon is refused (64)
 *   go          `GOBIN=DIR go install PKG@VERSION` writes an executable stand-in named after
 *               PKG's last element (a shell script saying it is a test double; `-version`
 *               prints VERSION) into DIR (default $HOME/go/bin); goInstallFails: exit 1;
 *               `go version`
 *   curl        fails with exit 7 ("Failed to connect", hosts have no internet) unless the
 *               URL is a key of curlResponses: then writes body to -o FILE or stdout, exit
 *               `exitCode` (default 0; with -f and httpStatus >= 400: exit 22)
 *   apt-get     records, prints what it would do, installs nothing, exit 0
 *   dpkg        `--print-architecture` prints `arch` (default amd64); `-s/--status/-l PKG`:
 *               not installed, exit 1
 *   cloud-init  `status [--wait] [--long]` prints "status: done"; `--version`
 *   chown       owner/group all known to the host (/etc/passwd, /etc/group, or numeric):
 *               runs the real chown; otherwise (headscale:headscale on a machine without that
 *               user) checks the paths exist (exit 1 like chown when not), records the wanted
 *               owner per path in tool-state.json and exits 0
 *
 * Per host files (inside the host: /var/lib/rancher/k3s-test-double; harness side
 * <rootDir>/var/lib/rancher/k3s-test-double):
 *   tool-cue.json    ToolBehaviour written by the harness (setToolBehaviour)
 *   tools.log        one JSON line per call (ToolInvocation)
 *   tool-state.json  ToolState: ownership recorded by the chown stand-in
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import type { DoubleHostConfig } from "../k3s-double/types";

export type StandInTool = "headscale" | "nebula" | "go" | "curl" | "apt-get" | "dpkg" | "cloud-init" | "chown";
export const STAND_IN_TOOLS: readonly StandInTool[] = ["headscale", "nebula", "go", "curl", "apt-get", "dpkg", "cloud-init", "chown"];

export interface CurlResponse {
    body?: string;
    /** curl's exit code (default 0). */
    exitCode?: number;
    /** With -f/--fail and >= 400: exit 22, no body. */
    httpStatus?: number;
}

export interface ToolBehaviour {
    /** What `headscale version` prints (default "v0.0.0-lab-test-double"). */
    headscaleVersion?: string;
    /** When a string, `headscale configtest` prints it and exits 1. */
    headscaleConfigtestFails?: string | null;
    /** What `nebula -version` prints after "Version: " (a leading v is dropped; default "0.0.0-lab-test-double"). */
    nebulaVersion?: string;
    /** "real": Debian's /usr/bin/nebula -test when present (default); "stub": the config file must exist. */
    nebulaTest?: "real" | "stub";
    /** When a string, `nebula -test` prints it and exits 1. */
    nebulaTestFails?: string | null;
    /** When a string, `go install` prints it and exits 1. */
    goInstallFails?: string | null;
    /** Answers by exact URL; every other URL fails with exit 7. */
    curlResponses?: Record<string, CurlResponse>;
    /** `dpkg --print-architecture` (default amd64). */
    arch?: string;
    /** Tools whose wrapper is absent from the host's /usr/local/bin (`command -v` fails). Harness-applied. */
    missing?: StandInTool[];
}

export interface ToolInvocation {
    at: string;
    atMs: number;
    /** CLOCK_MONOTONIC µs (same clock as the service-manager stand-in's events). */
    monoUs: number;
    tool: string;
    argv: string[];
    cwd: string;
    /** GOBIN for go; absent otherwise. */
    env?: Record<string, string>;
    exitCode: number;
    stdoutHead: string;
    stderrHead: string;
}

export interface ToolState {
    /** chown stand-in: path (as given) -> owner spec, for owners the machine does not know. */
    owners: Record<string, { owner: string; recursive: boolean }>;
}

const STATE_DIR = "/var/lib/rancher/k3s-test-double";
const TAG = "lab fleet TEST DOUBLE, see test/lab/service-doubles.ts";

class Exit extends Error {
    code: number;
    constructor(code: number, message: string) {
        super(message);
        this.code = code;
    }
}

const out: string[] = [];
const err: string[] = [];
const say = (line: string): void => {
    out.push(line.endsWith("\n") ? line : line + "\n");
};
const complain = (line: string): void => {
    err.push(line.endsWith("\n") ? line : line + "\n");
};
function fail(code: number, message: string): never {
    throw new Exit(code, message);
}

function readJson<T>(file: string, fallback: T): T {
    try {
        return JSON.parse(fs.readFileSync(file, "utf8")) as T;
    } catch {
        return fallback;
    }
}

function cue(): ToolBehaviour {
    return readJson<ToolBehaviour>(path.join(STATE_DIR, "tool-cue.json"), {});
}

function help(tool: string, what: string): number {
    say(`${tool} (${TAG}): not the real ${tool}.`);
    say(`supports: ${what}`);
    return 0;
}

function unsupported(tool: string, argv: string[]): never {
    return fail(64, `${tool} (${TAG}): unsupported: ${JSON.stringify(argv.join(" "))} (extend test/lab/service-doubles.ts)`);
}

/** Value of `-x V`, `-x=V`, `--x V`, `--x=V` for any of names. */
function flagValue(argv: string[], names: string[]): string | undefined {
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i] ?? "";
        for (const n of names) {
            if (a === n) return argv[i + 1];
            if (a.startsWith(`${n}=`)) return a.slice(n.length + 1);
        }
    }
    return undefined;
}

function headscale(argv: string[]): number {
    const c = cue();
    const [cmd] = argv.filter((a) => !a.startsWith("-"));
    if (argv.includes("--help") || argv.includes("-h") || cmd === "help") return help("headscale", "version, configtest -c FILE");
    if (cmd === "version") {
        say(c.headscaleVersion ?? "v0.0.0-lab-test-double");
        return 0;
    }
    if (cmd === "configtest") {
        const file = flagValue(argv, ["-c", "--config"]) ?? "/etc/headscale/config.yaml";
        if (!fs.existsSync(file)) fail(1, `Error: loading configuration: Config File "${file}" Not Found (${TAG})`);
        if (typeof c.headscaleConfigtestFails === "string") fail(1, c.headscaleConfigtestFails);
        complain(`headscale configtest (${TAG}): ${file} accepted without checking its content`);
        return 0;
    }
    return unsupported("headscale", argv);
}

function nebula(argv: string[]): number {
    const c = cue();
    if (argv.some((a) => ["-help", "--help", "-h"].includes(a)))
        return help("nebula", "-version, -test -config FILE (Debian's /usr/bin/nebula -test when present)");
    if (argv.some((a) => a === "-version" || a === "--version")) {
        say(`Version: ${(c.nebulaVersion ?? "0.0.0-lab-test-double").replace(/^v/, "")}`);
        return 0;
    }
    const file = flagValue(argv, ["-config", "--config"]);
    if (!argv.some((a) => a === "-test" || a === "--test")) {
        return fail(64, `nebula (${TAG}): running the daemon is not supported; the lab's systemctl stand-in never runs ExecStart`);
    }
    if (file === undefined) fail(1, "-config flag must be set");
    if (typeof c.nebulaTestFails === "string") fail(1, c.nebulaTestFails);
    const real = "/usr/bin/nebula";
    if ((c.nebulaTest ?? "real") === "real" && fs.existsSync(real)) {
        const r = spawnSync(real, ["-test", "-config", file], { encoding: "utf8", timeout: 30_000 });
        if (r.stdout) out.push(r.stdout);
        if (r.stderr) err.push(r.stderr);
        return r.status ?? 1;
    }
    if (!fs.existsSync(file)) fail(1, `failed to load config: ${file}: no such file or directory (${TAG})`);
    return 0;
}

const DERPER_LIKE = (name: string, spec: string, version: string): string => `#!/bin/sh
# ${name}: ${TAG}. Installed by the lab's \`go\` stand-in
# (go install ${spec}); it is not ${name} and serves nothing.
case "\${1:-}" in
  -version|--version) echo ${JSON.stringify(`${version} (lab fleet test double, not ${name})`)}; exit 0 ;;
esac
echo ${JSON.stringify(`${name} (${TAG}): a stand-in binary; the lab's systemctl stand-in never runs it`)} >&2
exit 64
`;

function go(argv: string[], env: Record<string, string>): number {
    const c = cue();
    const [cmd, ...rest] = argv;
    if (cmd === undefined || cmd === "help" || cmd === "--help" || cmd === "-h")
        return help("go", "version, install PKG@VERSION (writes a stand-in binary into $GOBIN)");
    if (cmd === "version") {
        say(`go version go1.26.0 linux/amd64 (${TAG}, not Go)`);
        return 0;
    }
    if (cmd === "install") {
        const specs = rest.filter((a) => !a.startsWith("-"));
        if (specs.length === 0) fail(1, `go: no install location for directory (${TAG}: give PKG@VERSION)`);
        if (typeof c.goInstallFails === "string") fail(1, c.goInstallFails);
        const gobin = process.env.GOBIN ?? path.join(process.env.HOME ?? "/root", "go", "bin");
        env.GOBIN = gobin;
        for (const spec of specs) {
            const at = spec.lastIndexOf("@");
            if (at < 0) fail(1, `go: 'go install' requires a version when current directory is not in a module (${TAG}: give ${spec}@VERSION)`);
            const pkg = spec.slice(0, at);
            const version = spec.slice(at + 1);
            const name = pkg.split("/").pop() ?? pkg;
            fs.mkdirSync(gobin, { recursive: true });
            const target = path.join(gobin, name);
            fs.writeFileSync(`${target}.tmp-${process.pid}`, DERPER_LIKE(name, spec, version), { mode: 0o755 });
            fs.renameSync(`${target}.tmp-${process.pid}`, target);
            complain(`go (${TAG}): installed a stand-in ${name} ${version} at ${target}`);
        }
        return 0;
    }
    return unsupported("go", argv);
}

const CURL_VALUE_SHORT = "oHXdumAwerETFbcKCYyzQx";
const CURL_VALUE_LONG = new Set([
    "--output",
    "--retry",
    "--retry-delay",
    "--retry-max-time",
    "--max-time",
    "--connect-timeout",
    "--resolve",
    "--header",
    "--request",
    "--data",
    "--data-raw",
    "--data-binary",
    "--user",
    "--user-agent",
    "--write-out",
    "--cacert",
    "--capath",
    "--cert",
    "--key",
    "--proxy",
    "--url",
    "--referer",
    "--form",
    "--upload-file",
    "--range",
    "--connect-to",
    "--interface",
    "--config",
    "--limit-rate",
]);

function curl(argv: string[]): number {
    const c = cue();
    let output: string | null = null;
    let failFlag = false;
    let silent = false;
    let showError = false;
    const urls: string[] = [];
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i] ?? "";
        if (a === "--help" || a === "-h") return help("curl", "URL [-o FILE] [-fsSL...]; answers only URLs cued in curlResponses, else exit 7");
        if (a.startsWith("--")) {
            const [name, inline] = a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined];
            const v = CURL_VALUE_LONG.has(name) ? (inline ?? argv[++i] ?? "") : undefined;
            if (name === "--output" && v !== undefined) output = v;
            else if (name === "--url" && v !== undefined) urls.push(v);
            else if (name === "--fail") failFlag = true;
            else if (name === "--silent") silent = true;
            else if (name === "--show-error") showError = true;
        } else if (a.startsWith("-") && a.length > 1) {
            for (let j = 1; j < a.length; j++) {
                const ch = a[j] ?? "";
                if (CURL_VALUE_SHORT.includes(ch)) {
                    const v = j + 1 < a.length ? a.slice(j + 1) : (argv[++i] ?? "");
                    if (ch === "o") output = v;
                    break;
                }
                if (ch === "f") failFlag = true;
                else if (ch === "s") silent = true;
                else if (ch === "S") showError = true;
            }
        } else urls.push(a);
    }
    const url = urls[0];
    if (url === undefined) fail(2, "curl: no URL specified");
    const answer = c.curlResponses?.[url];
    const errLine = (code: number, text: string): number => {
        if (!silent || showError) complain(`curl: (${code}) ${text}`);
        return code;
    };
    if (answer === undefined) {
        let hostPort = url;
        try {
            const u = new URL(url);
            hostPort = `${u.hostname} port ${u.port || (u.protocol === "https:" ? "443" : "80")}`;
        } catch {
            // not a URL: say it as given
        }
        return errLine(
            7,
            `Failed to connect to ${hostPort} after 0 ms: Couldn't connect to server (${TAG}: test hosts have no internet; cue curlResponses to answer)`,
        );
    }
    if (failFlag && (answer.httpStatus ?? 200) >= 400) return errLine(22, `The requested URL returned error: ${answer.httpStatus ?? 0}`);
    const code = answer.exitCode ?? 0;
    if (code !== 0) return errLine(code, `cued failure (${TAG})`);
    if (output !== null && output !== "-") fs.writeFileSync(output, answer.body ?? "");
    else out.push(answer.body ?? "");
    return 0;
}

function aptGet(argv: string[]): number {
    if (argv.includes("--help") || argv.includes("-h")) return help("apt-get", "update, install ... (records, installs nothing)");
    say(`apt-get (${TAG}): ${argv.join(" ")} recorded; nothing fetched or installed`);
    return 0;
}

function dpkg(argv: string[]): number {
    if (argv.includes("--help")) return help("dpkg", "--print-architecture, -s/--status/-l PKG (never installed)");
    if (argv[0] === "--print-architecture") {
        say(cue().arch ?? "amd64");
        return 0;
    }
    if (["-s", "--status", "-l", "--list"].includes(argv[0] ?? "")) {
        return fail(1, `dpkg-query: package '${argv[1] ?? ""}' is not installed and no information is available (${TAG})`);
    }
    return unsupported("dpkg", argv);
}

function cloudInit(argv: string[]): number {
    if (argv.includes("--help") || argv.includes("-h")) return help("cloud-init", "status [--wait] [--long], --version");
    if (argv[0] === "--version") {
        say(`/usr/bin/cloud-init 24.1 (${TAG})`);
        return 0;
    }
    if (argv[0] === "status") {
        say("status: done");
        if (argv.includes("--long")) say(`detail: ${TAG}: nothing ran`);
        return 0;
    }
    return unsupported("cloud-init", argv);
}

function namesIn(file: string): Set<string> {
    try {
        return new Set(
            fs
                .readFileSync(file, "utf8")
                .split("\n")
                .map((l) => l.split(":")[0] ?? "")
                .filter((n) => n !== ""),
        );
    } catch {
        return new Set();
    }
}

function chown(argv: string[]): number {
    if (argv.includes("--help")) return help("chown", "[-R] [-h] OWNER[:GROUP] FILE... (unknown owners are recorded, not applied)");
    const opts: string[] = [];
    const rest: string[] = [];
    let endOpts = false;
    for (const a of argv) {
        if (!endOpts && a === "--") endOpts = true;
        else if (!endOpts && a.startsWith("-") && a.length > 1) opts.push(a);
        else rest.push(a);
    }
    const realChown = ["/usr/bin/chown", "/bin/chown"].find((p) => fs.existsSync(p)) ?? "/bin/chown";
    const delegate = (): number => {
        const r = spawnSync(realChown, argv, { encoding: "utf8" });
        if (r.stdout) out.push(r.stdout);
        if (r.stderr) err.push(r.stderr);
        return r.status ?? 1;
    };
    if (opts.some((o) => o.startsWith("--reference"))) return delegate();
    const [spec, ...files] = rest;
    if (spec === undefined || files.length === 0) fail(1, `chown: missing operand (${TAG})`);
    const [user = "", group = ""] = spec.split(/[:.]/);
    const users = namesIn("/etc/passwd");
    const groups = namesIn("/etc/group");
    const known = (user === "" || /^\d+$/.test(user) || users.has(user)) && (group === "" || /^\d+$/.test(group) || groups.has(group));
    if (known) return delegate();
    const recursive = opts.some((o) => o === "-R" || o === "--recursive" || (!o.startsWith("--") && o.includes("R")));
    const statePath = path.join(STATE_DIR, "tool-state.json");
    const state = readJson<ToolState>(statePath, { owners: {} });
    let code = 0;
    for (const f of files) {
        if (!fs.existsSync(f)) {
            complain(`chown: cannot access '${f}': No such file or directory`);
            code = 1;
            continue;
        }
        state.owners[f] = { owner: spec, recursive };
    }
    const tmp = `${statePath}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(state, null, 2));
    fs.renameSync(tmp, statePath);
    complain(`chown (${TAG}): ${spec} is not a user/group of this machine; recorded, ownership unchanged`);
    return code;
}

function loadHost(): DoubleHostConfig | null {
    const p = process.env.K3S_TEST_DOUBLE_HOST_CONFIG ?? "";
    return p !== "" ? readJson<DoubleHostConfig | null>(p, null) : null;
}

function main(): void {
    const atMs = Date.now();
    const monoUs = Number(process.hrtime.bigint() / 1000n);
    const tool = process.argv[2] ?? "";
    const argv = process.argv.slice(3);
    const env: Record<string, string> = {};
    let code = 0;
    try {
        if (loadHost() === null) fail(2, `${tool} (${TAG}): K3S_TEST_DOUBLE_HOST_CONFIG is not set; run it through the lab fleet wrappers`);
        switch (tool) {
            case "headscale":
                code = headscale(argv);
                break;
            case "nebula":
                code = nebula(argv);
                break;
            case "go":
                code = go(argv, env);
                break;
            case "curl":
                code = curl(argv);
                break;
            case "apt-get":
                code = aptGet(argv);
                break;
            case "dpkg":
                code = dpkg(argv);
                break;
            case "cloud-init":
                code = cloudInit(argv);
                break;
            case "chown":
                code = chown(argv);
                break;
            default:
                code = fail(64, `service-doubles (${TAG}): unknown tool ${JSON.stringify(tool)}`);
        }
    } catch (e) {
        if (e instanceof Exit) {
            code = e.code;
            complain(e.message);
        } else {
            code = 70;
            complain(`${tool} (${TAG}): internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        }
    }
    const stdout = out.join("");
    const stderr = err.join("");
    const rec: ToolInvocation = {
        at: new Date(atMs).toISOString(),
        atMs,
        monoUs,
        tool,
        argv,
        cwd: process.cwd(),
        ...(Object.keys(env).length > 0 ? { env } : {}),
        exitCode: code,
        stdoutHead: stdout.slice(0, 2000),
        stderrHead: stderr.slice(0, 2000),
    };
    try {
        fs.mkdirSync(STATE_DIR, { recursive: true });
        fs.appendFileSync(path.join(STATE_DIR, "tools.log"), JSON.stringify(rec) + "\n");
    } catch {
        // recording must not change the tool's answer
    }
    process.stdout.write(stdout);
    process.stderr.write(stderr);
    process.exitCode = code;
}

if (process.argv[1] !== undefined && /service-doubles\.(mjs|ts|js)$/.test(process.argv[1])) main();
