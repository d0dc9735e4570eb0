/**
 * macos-tools — TEST DOUBLES of the macOS (BSD) userland for the lab fleet's macOS-shaped
 * hosts (LabHostSpec.os "macos"; see ../index.ts and docs/macos-userland.md). None of them is
 * the real tool. The harness puts one wrapper per tool (types.ts BSD_TOOLS) in the host's
 * /usr/bin, which runs `node macos-tools.mjs <tool> <args...>`; keep these modules to erasable
 * TypeScript, node built-ins, `plist` and `import type` (../doubleBuild.ts strips the types).
 *
 * Each stand-in accepts the options of the macOS tool (BSD getopt: getopt.ts) and refuses
 * every other one as BSD does: "<tool>: illegal option -- <c>", the BSD usage text, BSD's exit
 * status (1; 64 for mv, cp, install and base64). stat, readlink, mktemp and wc are implemented
 * here (fileTools.ts); mv, cp, ln, install, chmod, chown (fileTools.ts), sed, date, head, tail,
 * find, dd (textTools.ts), base64 and gzip (codecTools.ts) have their BSD options translated for
 * the real GNU tool, which the host keeps under types.ts MACOS_REAL_BIN. launchctl is
 * launchctl.ts.
 *
 * Every call is logged (one JSON line, ToolInvocation) to tools.log in the host's stand-in
 * state directory, as service-doubles does; a call by a user who may not write there is not.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Exit, complain, err, out } from "../service-doubles/common";
import type { ToolInvocation } from "../service-doubles/types";
import { chmod, chown, cp, install, ln, mktemp, mv, readlink, stat, wc } from "./fileTools";
import { base64, gzip } from "./codecTools";
import { launchctl, stateDir } from "./launchctl";
import { date, dd, find, head, sed, tail } from "./textTools";

const TOOLS: Readonly<Record<string, (argv: string[]) => number>> = {
    stat,
    readlink,
    mktemp,
    wc,
    mv,
    cp,
    ln,
    install,
    chmod,
    chown,
    sed,
    date,
    head,
    tail,
    find,
    dd,
    base64,
    gzip,
    launchctl,
};

export function main(): void {
    const atMs = Date.now();
    const monoUs = Number(process.hrtime.bigint() / 1000n);
    const tool = process.argv[2] ?? "";
    const argv = process.argv.slice(3);
    let code: number;
    try {
        const impl = TOOLS[tool];
        if (impl === undefined) throw new Exit(64, `macos-tools (lab TEST DOUBLE, scripts/lab/macos): unknown tool ${JSON.stringify(tool)}`);
        code = impl(argv);
    } catch (e) {
        if (e instanceof Exit) {
            code = e.code;
            if (e.message !== "") complain(e.message);
        } else {
            code = 70;
            complain(`${tool} (lab TEST DOUBLE, scripts/lab/macos): internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
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
        exitCode: code,
        stdoutHead: stdout.slice(0, 2000),
        stderrHead: stderr.slice(0, 2000),
    };
    try {
        if (process.env.LAB_MACOS_NO_LOG === undefined) fs.appendFileSync(path.join(stateDir(), "tools.log"), JSON.stringify(rec) + "\n");
    } catch {
        // recording must not change the tool's answer
    }
    process.stdout.write(stdout);
    process.stderr.write(stderr);
    process.exitCode = code;
}

if (process.argv[1] !== undefined && /macos-tools\.(mjs|ts|js)$/.test(process.argv[1])) main();
