/**
 * service-doubles — TEST DOUBLES of the commands the program's non-k3s remote scripts call
 * (file delivery, the control server bootstrap, the derper install), for the lab fleet's
 * test hosts (see ../index.ts). None of them is the real tool; each says so in --help and in
 * its errors. The harness puts a wrapper per tool in the host's /usr/local/bin (first on
 * PATH) that runs `node service-doubles.mjs <tool> <args...>`; keep these modules to
 * erasable TypeScript, node built-ins and `import type` for types (the harness strips the
 * types once per run, ../doubleBuild.ts).
 *
 * Modules: this file (entry: dispatch and the call log), types.ts (shared with the harness),
 * common.ts (output, exit codes, cues), tailnetTools.ts (headscale, nebula, go), curl.ts,
 * systemTools.ts (apt-get, dpkg, cloud-init, chown).
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
 *               prints VERSION) into DIR (default $HOME/go/bin), and leaves module and build
 *               cache entries where Go would (GOMODCACHE/GOPATH/HOME; GOCACHE, then the OS's
 *               user cache directory), owned by the caller; the binary is copied into
 *               place as cmd/go does (O_TRUNC, not atomic); goInstallFails: exit 1;
 *               goInstallCutShort: half the binary copied, exit 2;
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
import { Exit, STATE_DIR, TAG, complain, err, fail, loadHostConfig, out } from "./common";
import { curl } from "./curl";
import { aptGet, chown, cloudInit, dpkg } from "./systemTools";
import { go, headscale, nebula } from "./tailnetTools";
import type { ToolInvocation } from "./types";

export function main(): void {
    const atMs = Date.now();
    const monoUs = Number(process.hrtime.bigint() / 1000n);
    const tool = process.argv[2] ?? "";
    const argv = process.argv.slice(3);
    const env: Record<string, string> = {};
    let code = 0;
    try {
        if (loadHostConfig() === null) fail(2, `${tool} (${TAG}): K3S_TEST_DOUBLE_HOST_CONFIG is not set; run it through the lab fleet wrappers`);
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
