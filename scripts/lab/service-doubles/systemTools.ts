/**
 * apt-get, dpkg, cloud-init and chown: the package and machine tools the bootstrap calls.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { STATE_DIR, TAG, complain, cue, err, fail, help, out, readJson, say, unsupported } from "./common";
import type { ToolState } from "./types";

export function aptGet(argv: string[]): number {
    if (argv.includes("--help") || argv.includes("-h")) return help("apt-get", "update, install ... (records, installs nothing)");
    say(`apt-get (${TAG}): ${argv.join(" ")} recorded; nothing fetched or installed`);
    return 0;
}

export function dpkg(argv: string[]): number {
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

export function cloudInit(argv: string[]): number {
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

export function namesIn(file: string): Set<string> {
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

export function chown(argv: string[]): number {
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
