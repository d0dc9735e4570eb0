/**
 * headscale, nebula and go: what the control server bootstrap and the derper install run.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { TAG, complain, cue, err, fail, flagValue, help, out, say, unsupported } from "./common";

export function headscale(argv: string[]): number {
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

export function nebula(argv: string[]): number {
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

export const DERPER_LIKE = (name: string, spec: string, version: string): string => `#!/bin/sh
# ${name}: ${TAG}. Installed by the lab's \`go\` stand-in
# (go install ${spec}); it is not ${name} and serves nothing.
case "\${1:-}" in
  -version|--version) echo ${JSON.stringify(`${version} (lab fleet test double, not ${name})`)}; exit 0 ;;
esac
echo ${JSON.stringify(`${name} (${TAG}): a stand-in binary; the lab's systemctl stand-in never runs it`)} >&2
exit 64
`;

export function go(argv: string[], env: Record<string, string>): number {
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
