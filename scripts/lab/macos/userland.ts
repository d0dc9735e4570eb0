/**
 * Shared by the BSD stand-ins: where the real (GNU) tools are, running one, and the user and
 * group names of a Mac (gid 0 is `wheel` on macOS; a Debian machine calls it `root`).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { Exit } from "../service-doubles/common";
import { MACOS_REAL_BIN } from "./types";

/** The machine's real tool (the host's original /usr/bin, bound under MACOS_REAL_BIN). */
export function realTool(tool: string): string {
    const dir = process.env.LAB_MACOS_REAL_BIN ?? (fs.existsSync(MACOS_REAL_BIN) ? MACOS_REAL_BIN : "/usr/bin");
    return path.join(dir, tool);
}

/** Runs the real tool with the caller's stdio; returns its exit status. */
export function forward(tool: string, args: string[]): number {
    const r = spawnSync(realTool(tool), args, { stdio: "inherit" });
    if (r.error) throw new Exit(126, `${tool}: ${r.error.message}`);
    return r.status ?? 128 + 15;
}

/** Like forward, but stderr is returned (to be reworded) instead of passed on. */
export function forwardCapturingStderr(tool: string, args: string[]): { status: number; stderr: string } {
    const r = spawnSync(realTool(tool), args, { stdio: ["inherit", "inherit", "pipe"], encoding: "utf8" });
    if (r.error) throw new Exit(126, `${tool}: ${r.error.message}`);
    return { status: r.status ?? 128 + 15, stderr: r.stderr };
}

function table(file: string): { byName: Map<string, number>; byId: Map<number, string> } {
    const byName = new Map<string, number>();
    const byId = new Map<number, string>();
    let text = "";
    try {
        text = fs.readFileSync(file, "utf8");
    } catch {
        text = "";
    }
    for (const line of text.split("\n")) {
        const [name = "", , id = ""] = line.split(":");
        if (name === "" || !/^\d+$/.test(id)) continue;
        byName.set(name, Number(id));
        if (!byId.has(Number(id))) byId.set(Number(id), name);
    }
    return { byName, byId };
}

/** gid 0 is `wheel` on macOS (and has no other name there). */
export const MAC_GROUP_ALIASES: Readonly<Record<string, number>> = { wheel: 0 };

export function userName(uid: number): string {
    return table("/etc/passwd").byId.get(uid) ?? String(uid);
}
export function groupName(gid: number): string {
    if (gid === 0) return "wheel";
    return table("/etc/group").byId.get(gid) ?? String(gid);
}
export function userId(name: string): number | undefined {
    if (/^\d+$/.test(name)) return Number(name);
    return table("/etc/passwd").byName.get(name);
}
export function groupId(name: string): number | undefined {
    if (/^\d+$/.test(name)) return Number(name);
    return table("/etc/group").byName.get(name) ?? MAC_GROUP_ALIASES[name];
}

/** "Regular File", "Directory", ... (BSD stat's %HT). */
export function typeName(st: fs.Stats | fs.BigIntStats): string {
    if (st.isFile()) return "Regular File";
    if (st.isDirectory()) return "Directory";
    if (st.isSymbolicLink()) return "Symbolic Link";
    if (st.isFIFO()) return "Fifo File";
    if (st.isSocket()) return "Socket";
    if (st.isCharacterDevice()) return "Character Device";
    if (st.isBlockDevice()) return "Block Device";
    return "Unknown";
}

/** ls -l's mode string ("-rw-r--r--"). */
export function modeString(mode: number): string {
    const type =
        (mode & 0o170000) === 0o040000
            ? "d"
            : (mode & 0o170000) === 0o120000
              ? "l"
              : (mode & 0o170000) === 0o010000
                ? "p"
                : (mode & 0o170000) === 0o140000
                  ? "s"
                  : (mode & 0o170000) === 0o020000
                    ? "c"
                    : (mode & 0o170000) === 0o060000
                      ? "b"
                      : "-";
    const bits = "rwxrwxrwx".split("").map((c, i) => ((mode >> (8 - i)) & 1 ? c : "-"));
    if (mode & 0o4000) bits[2] = bits[2] === "x" ? "s" : "S";
    if (mode & 0o2000) bits[5] = bits[5] === "x" ? "s" : "S";
    if (mode & 0o1000) bits[8] = bits[8] === "x" ? "t" : "T";
    return type + bits.join("");
}
