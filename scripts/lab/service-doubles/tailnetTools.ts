/**
 * headscale, nebula and go: what the control server bootstrap and the derper install run.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { TAG, complain, cue, err, fail, flagValue, help, loadHostConfig, out, say, unsupported } from "./common";

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

/**
 * Where Go keeps what `go install` downloads and builds, by cmd/go's rules: GOMODCACHE, else
 * pkg/mod under GOPATH's first entry, GOPATH defaulting to $HOME/go; GOCACHE, else go-build under
 * os.UserCacheDir(): $HOME/Library/Caches on macOS, $XDG_CACHE_HOME or else $HOME/.cache on
 * Linux. Without them Go refuses to build, with its own messages.
 */
function goCaches(): { modules: string; build: string } {
    const home = process.env.HOME ?? "";
    // An empty variable counts as unset, as in Go.
    const gopath = (process.env.GOPATH || (home !== "" ? path.join(home, "go") : "")).split(":")[0];
    const modules = process.env.GOMODCACHE || (gopath !== "" ? path.join(gopath, "pkg", "mod") : "");
    if (modules === "") fail(1, "go: module cache not found: neither GOMODCACHE nor GOPATH is set");
    const userCache =
        loadHostConfig()?.os === "macos"
            ? home !== ""
                ? path.join(home, "Library", "Caches")
                : ""
            : process.env.XDG_CACHE_HOME || (home !== "" ? path.join(home, ".cache") : "");
    const build = process.env.GOCACHE || (userCache !== "" ? path.join(userCache, "go-build") : "");
    if (build === "") fail(1, "build cache is required, but could not be located: GOCACHE is not defined and neither $XDG_CACHE_HOME nor $HOME are defined");
    return { modules, build };
}

/**
 * What an install leaves in the caches, owned by whoever ran it: the module's download record and
 * its extracted tree (read-only, as Go leaves them, unless GOFLAGS has -modcacherw) and the build
 * cache's README. The stand-in takes the package path's first element as its module.
 */
function fillGoCaches(caches: { modules: string; build: string }, pkg: string, version: string): void {
    const module = pkg.split("/")[0];
    const download = path.join(caches.modules, "cache", "download", module, "@v");
    fs.mkdirSync(download, { recursive: true });
    fs.writeFileSync(path.join(download, `${version}.info`), `${JSON.stringify({ Version: version })}\n`);
    const tree = path.join(caches.modules, `${module}@${version}`);
    fs.mkdirSync(tree, { recursive: true });
    fs.writeFileSync(path.join(tree, "go.mod"), `module ${module}\n`);
    if (!(process.env.GOFLAGS ?? "").split(/\s+/).includes("-modcacherw")) {
        fs.chmodSync(path.join(tree, "go.mod"), 0o444);
        fs.chmodSync(tree, 0o555);
    }
    fs.mkdirSync(caches.build, { recursive: true });
    fs.writeFileSync(path.join(caches.build, "README"), `This directory holds cached build artifacts from the Go build system (${TAG}).\n`);
}

export function go(argv: string[], env: Record<string, string>): number {
    const c = cue();
    const [cmd, ...rest] = argv;
    if (cmd === undefined || cmd === "help" || cmd === "--help" || cmd === "-h")
        return help("go", "version, install PKG@VERSION (writes a stand-in binary into $GOBIN)");
    if (cmd === "version") {
        say(`go version go1.26.0 ${loadHostConfig()?.os === "macos" ? "darwin/arm64" : "linux/amd64"} (${TAG}, not Go)`);
        return 0;
    }
    if (cmd === "install") {
        const specs = rest.filter((a) => !a.startsWith("-"));
        if (specs.length === 0) fail(1, `go: no install location for directory (${TAG}: give PKG@VERSION)`);
        if (typeof c.goInstallFails === "string") fail(1, c.goInstallFails);
        const gobin = process.env.GOBIN ?? path.join(process.env.HOME ?? "/root", "go", "bin");
        const caches = goCaches();
        env.GOBIN = gobin;
        env.GOMODCACHE = caches.modules;
        env.GOCACHE = caches.build;
        for (const spec of specs) {
            const at = spec.lastIndexOf("@");
            if (at < 0) fail(1, `go: 'go install' requires a version when current directory is not in a module (${TAG}: give ${spec}@VERSION)`);
            const pkg = spec.slice(0, at);
            const version = spec.slice(at + 1);
            const name = pkg.split("/").pop() ?? pkg;
            fillGoCaches(caches, pkg, version);
            fs.mkdirSync(gobin, { recursive: true });
            const target = path.join(gobin, name);
            // As cmd/go puts a built binary into GOBIN (Shell.CopyFile): the old file removed,
            // the new one opened with O_TRUNC at its final mode and copied in. Not atomic: a
            // `go install` killed mid-copy leaves part of an executable there.
            const binary = DERPER_LIKE(name, spec, version);
            fs.rmSync(target, { force: true });
            if (c.goInstallCutShort === true) {
                fs.writeFileSync(target, binary.slice(0, Math.floor(binary.length / 2)), { mode: 0o755 });
                fail(2, `go (${TAG}): killed while copying ${name} into ${gobin} (goInstallCutShort)`);
            }
            fs.writeFileSync(target, binary, { mode: 0o755 });
            complain(`go (${TAG}): installed a stand-in ${name} ${version} at ${target}`);
        }
        return 0;
    }
    return unsupported("go", argv);
}
