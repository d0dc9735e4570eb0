/**
 * stat, readlink, mktemp and wc as macOS has them (implemented here), and mv, cp, ln, install,
 * chmod, chown: BSD options parsed and checked, then carried out by the real (GNU) tool.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { Exit, complain, out } from "../service-doubles/common";
import { bsdGetopt, has, last, usageError } from "./getopt";
import type { BsdUsage } from "./getopt";
import { forward, groupId, groupName, modeString, typeName, userId, userName } from "./userland";

// ---------------------------------------------------------------------------------------------
// stat (and readlink, which is stat on macOS)

export const STAT_USAGE: BsdUsage = {
    tool: "stat",
    optstring: "FLlnqrsxf:t:",
    usage: "usage: stat [-FLnq] [-f format | -l | -r | -s | -x] [-t timefmt] [file|handle ...]",
    usageExit: 1,
};
export const READLINK_USAGE: BsdUsage = { tool: "readlink", optstring: "fn", usage: "usage: readlink [-fn] [file ...]", usageExit: 1 };

const DEF_FORMAT = '%d %i %Sp %l %Su %Sg %r %z "%Sa" "%Sm" "%Sc" "%SB" %k %b %#Xf %N';
const RAW_FORMAT = "%d %i %#p %l %u %g %r %z %a %m %c %B %k %b %f %N";
const LS_FORMAT = "%Sp %l %Su %Sg %Z %Sm %N%SY";
const SHELL_FORMAT =
    "st_dev=%d st_ino=%i st_mode=%#p st_nlink=%l st_uid=%u st_gid=%g st_rdev=%r st_size=%z st_atime=%a st_mtime=%m st_ctime=%c st_birthtime=%B st_blksize=%k st_blocks=%b st_flags=%f";

function strftimeBsd(ms: number, fmt: string): string {
    const d = new Date(ms);
    const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const p2 = (n: number): string => String(n).padStart(2, "0");
    return fmt.replace(/%([a-zA-Z%])/g, (_all, c: string) => {
        switch (c) {
            case "b":
                return months[d.getUTCMonth()] ?? "";
            case "e":
                return String(d.getUTCDate()).padStart(2, " ");
            case "d":
                return p2(d.getUTCDate());
            case "m":
                return p2(d.getUTCMonth() + 1);
            case "Y":
                return String(d.getUTCFullYear());
            case "H":
                return p2(d.getUTCHours());
            case "M":
                return p2(d.getUTCMinutes());
            case "S":
                return p2(d.getUTCSeconds());
            case "T":
                return `${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}`;
            case "s":
                return String(Math.floor(ms / 1000));
            case "%":
                return "%";
            default:
                return `%${c}`;
        }
    });
}

/** One BSD stat(1) format, for one file (FORMATS in stat(1): %[flags][size][.prec][fmt][sub]datum). */
export function bsdStatFormat(fmt: string, file: string, st: fs.BigIntStats, timefmt: string): string {
    let result = "";
    for (let i = 0; i < fmt.length; i++) {
        const ch = fmt[i] ?? "";
        if (ch === "\\" && i + 1 < fmt.length) {
            const e = fmt[++i] ?? "";
            result += e === "n" ? "\n" : e === "t" ? "\t" : e;
            continue;
        }
        if (ch !== "%") {
            result += ch;
            continue;
        }
        const m = /^([#+\- 0]*)(\d*)(?:\.(\d+))?([DOUXFS]?)([HLM]?)([a-zA-Z%])/.exec(fmt.slice(i + 1));
        if (m === null) throw new Exit(1, `stat: ${fmt.slice(i)}: bad format`);
        i += m[0].length;
        const [, flags = "", width = "", prec, kind = "", sub = "", datum = ""] = m;
        let v: string;
        const octal = (n: number): string => (flags.includes("#") && n !== 0 ? "0" : "") + n.toString(8);
        const time = (ns: bigint): string => {
            const s = ns / 1_000_000_000n;
            const frac = (ns % 1_000_000_000n).toString().padStart(9, "0");
            if (kind === "S") return strftimeBsd(Number(ns / 1_000_000n), timefmt);
            if (kind === "F") {
                const digits = prec === undefined ? 9 : Number(prec);
                return digits === 0 ? s.toString() : `${s}.${frac.slice(0, digits).padEnd(digits, "0")}`;
            }
            return s.toString();
        };
        const mode = Number(st.mode);
        switch (datum) {
            case "%":
                v = "%";
                break;
            case "n":
                v = "\n";
                break;
            case "t":
                v = "\t";
                break;
            case "d":
                v = st.dev.toString();
                break;
            case "i":
                v = st.ino.toString();
                break;
            case "l":
                v = st.nlink.toString();
                break;
            case "r":
                v = st.rdev.toString();
                break;
            case "z":
                v = st.size.toString();
                break;
            case "k":
                v = st.blksize.toString();
                break;
            case "b":
                v = st.blocks.toString();
                break;
            case "f":
                v = kind === "X" || flags.includes("#") ? (flags.includes("#") ? "0" : "") : "0";
                break;
            case "p": {
                const part = sub === "H" ? (mode >> 12) & 0o17 : sub === "M" ? (mode >> 9) & 0o7 : sub === "L" ? mode & 0o777 : mode;
                if (kind === "S") v = sub === "" ? modeString(mode) : modeString(mode).slice(sub === "H" ? 0 : 1, sub === "H" ? 1 : undefined);
                else if (kind === "D") v = String(part);
                else if (kind === "X") v = (flags.includes("#") ? "0x" : "") + part.toString(16);
                else v = octal(part);
                break;
            }
            case "u":
                v = kind === "S" ? userName(Number(st.uid)) : st.uid.toString();
                break;
            case "g":
                v = kind === "S" ? groupName(Number(st.gid)) : st.gid.toString();
                break;
            case "a":
                v = time(st.atimeNs);
                break;
            case "m":
                v = time(st.mtimeNs);
                break;
            case "c":
                v = time(st.ctimeNs);
                break;
            case "B":
                v = time(st.birthtimeNs);
                break;
            case "N":
                v = file;
                break;
            case "T":
                if (sub === "H") v = typeName(st);
                else v = st.isDirectory() ? "/" : st.isSymbolicLink() ? "@" : st.isFIFO() ? "|" : st.isSocket() ? "=" : st.isFile() && mode & 0o111 ? "*" : "";
                break;
            case "Y":
                v = st.isSymbolicLink() ? `${kind === "S" || kind === "" ? " -> " : ""}${fs.readlinkSync(file)}` : "";
                if (kind === "" && st.isSymbolicLink()) v = fs.readlinkSync(file);
                break;
            case "Z":
                v = st.isCharacterDevice() || st.isBlockDevice() ? `${Number(st.rdev) >> 8},${Number(st.rdev) & 0xff}` : st.size.toString();
                break;
            case "R":
                v = fs.realpathSync(file);
                break;
            default:
                throw new Exit(1, `stat: %${datum}: bad format`);
        }
        if (width !== "") v = flags.includes("-") ? v.padEnd(Number(width)) : v.padStart(Number(width), flags.includes("0") ? "0" : " ");
        result += v;
    }
    return result;
}

export function stat(argv: string[]): number {
    const p = bsdGetopt(STAT_USAGE, argv);
    const follow = has(p, "L");
    const quiet = has(p, "q");
    const timefmt = last(p, "t") ?? "%b %e %T %Y";
    let fmt = DEF_FORMAT;
    if (has(p, "r")) fmt = RAW_FORMAT;
    if (has(p, "s")) fmt = SHELL_FORMAT;
    if (has(p, "l")) fmt = LS_FORMAT;
    if (has(p, "x")) throw new Exit(64, "stat (lab TEST DOUBLE, scripts/lab/macos): -x is not supported by the stand-in");
    const f = last(p, "f");
    if (f !== undefined) fmt = f;
    if (p.operands.length === 0) throw new Exit(64, "stat (lab TEST DOUBLE, scripts/lab/macos): stat of standard input is not supported");
    let code = 0;
    for (const file of p.operands) {
        let st: fs.BigIntStats;
        try {
            st = follow ? fs.statSync(file, { bigint: true }) : fs.lstatSync(file, { bigint: true });
        } catch (e) {
            if (!quiet) complain(`stat: ${file}: stat: ${errnoText(e)}`);
            code = 1;
            continue;
        }
        out.push(bsdStatFormat(fmt, file, st, timefmt) + (has(p, "n") ? "" : "\n"));
    }
    return code;
}

export function readlink(argv: string[]): number {
    const p = bsdGetopt(READLINK_USAGE, argv);
    let code = 0;
    for (const file of p.operands) {
        try {
            const st = fs.lstatSync(file);
            let v: string;
            if (has(p, "f")) v = fs.realpathSync(file);
            else if (st.isSymbolicLink()) v = fs.readlinkSync(file);
            else {
                code = 1;
                continue;
            }
            out.push(v + (has(p, "n") ? "" : "\n"));
        } catch {
            code = 1; // readlink is stat -q: no message
        }
    }
    return code;
}

export function errnoText(e: unknown): string {
    const code = (e as NodeJS.ErrnoException).code;
    const texts: Record<string, string> = {
        ENOENT: "No such file or directory",
        EACCES: "Permission denied",
        EEXIST: "File exists",
        ENOTDIR: "Not a directory",
        EISDIR: "Is a directory",
        EPERM: "Operation not permitted",
        ELOOP: "Too many levels of symbolic links",
    };
    return texts[code ?? ""] ?? (e instanceof Error ? e.message : String(e));
}

// ---------------------------------------------------------------------------------------------
// mktemp

export const MKTEMP_USAGE: BsdUsage = {
    tool: "mktemp",
    optstring: "dp:qt:u",
    usage: "usage: mktemp [-d] [-p tmpdir] [-q] [-t prefix] [-u] template ...\n       mktemp [-d] [-p tmpdir] [-q] [-u] -t prefix ",
    usageExit: 1,
};
const TEMP_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

export function mktemp(argv: string[]): number {
    const p = bsdGetopt(MKTEMP_USAGE, argv);
    const tmpdir = last(p, "p") ?? process.env.TMPDIR ?? "/tmp";
    const prefix = last(p, "t");
    const templates = [...p.operands];
    if (templates.length === 0) templates.push(path.join(tmpdir, `${prefix ?? "tmp"}.${prefix !== undefined ? "XXXXXXXX" : "XXXXXXXXXX"}`));
    let code = 0;
    for (const template of templates) {
        const xs = /X*$/.exec(template)?.[0].length ?? 0;
        const stem = template.slice(0, template.length - xs);
        let made: string | null = null;
        let lastError: unknown = null;
        for (let attempt = 0; attempt < 100 && made === null; attempt++) {
            const bytes = crypto.randomBytes(xs);
            const name = stem + Array.from(bytes, (b) => TEMP_CHARS[b % TEMP_CHARS.length]).join("");
            try {
                if (has(p, "u")) {
                    if (fs.existsSync(name)) continue;
                } else if (has(p, "d")) fs.mkdirSync(name, { mode: 0o700 });
                else fs.closeSync(fs.openSync(name, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_RDWR, 0o600));
                made = name;
            } catch (e) {
                lastError = e;
                if ((e as NodeJS.ErrnoException).code !== "EEXIST" || xs === 0) break;
            }
        }
        if (made === null) {
            if (!has(p, "q")) complain(`mktemp: ${has(p, "d") ? "mkdtemp" : "mkstemp"} failed on ${template}: ${errnoText(lastError)}`);
            code = 1;
            continue;
        }
        out.push(made + "\n");
    }
    return code;
}

// ---------------------------------------------------------------------------------------------
// wc

export const WC_USAGE: BsdUsage = { tool: "wc", optstring: "Lclmw", usage: "usage: wc [-Lclmw] [file ...]", usageExit: 1 };

export function wc(argv: string[]): number {
    const p = bsdGetopt(WC_USAGE, argv);
    let which = p.opts.map(([o]) => o).filter((o, i, a) => a.indexOf(o) === i);
    if (which.length === 0) which = ["l", "w", "c"];
    const order = ["l", "w", "c", "m", "L"].filter((o) => which.includes(o));
    const counts = (buf: Buffer): Record<string, number> => {
        const text = buf.toString("utf8");
        return {
            l: buf.filter((b) => b === 10).length,
            w: text.split(/[\s]+/).filter((w) => w !== "").length,
            c: buf.length,
            m: [...text].length,
            L: Math.max(0, ...text.split("\n").map((l) => [...l].length)),
        };
    };
    const line = (c: Record<string, number>, name: string | null): string =>
        order.map((o) => ` ${String(c[o] ?? 0).padStart(7)}`).join("") + (name !== null ? ` ${name}` : "") + "\n";
    if (p.operands.length === 0) {
        out.push(line(counts(fs.readFileSync(0)), null));
        return 0;
    }
    let code = 0;
    const total: Record<string, number> = { l: 0, w: 0, c: 0, m: 0, L: 0 };
    for (const file of p.operands) {
        let buf: Buffer;
        try {
            buf = fs.readFileSync(file);
        } catch (e) {
            complain(`wc: ${file}: open: ${errnoText(e)}`);
            code = 1;
            continue;
        }
        const c = counts(buf);
        for (const k of Object.keys(total)) total[k] = k === "L" ? Math.max(total[k] ?? 0, c[k] ?? 0) : (total[k] ?? 0) + (c[k] ?? 0);
        out.push(line(c, file));
    }
    if (p.operands.length > 1) out.push(line(total, "total"));
    return code;
}

// ---------------------------------------------------------------------------------------------
// mv, cp, ln, install, chmod, chown: checked here, done by the real tool

export const MV_USAGE: BsdUsage = {
    tool: "mv",
    optstring: "fhinv",
    usage: "usage: mv [-f | -i | -n] [-hv] source target\n       mv [-f | -i | -n] [-v] source ... directory",
    usageExit: 64,
};

export function mv(argv: string[]): number {
    const p = bsdGetopt(MV_USAGE, argv);
    if (p.operands.length < 2) usageError(MV_USAGE, null);
    const target = p.operands[p.operands.length - 1] ?? "";
    const gnu: string[] = [];
    for (const [o] of p.opts) if (o !== "h") gnu.push(`-${o}`);
    // -h: a target that is a symbolic link (to a directory) is renamed over, not moved into.
    let isLink = false;
    try {
        isLink = fs.lstatSync(target).isSymbolicLink();
    } catch {
        isLink = false;
    }
    if (has(p, "h") && isLink && p.operands.length === 2) gnu.push("-T");
    return forward("mv", [...gnu, "--", ...p.operands]);
}

export const CP_USAGE: BsdUsage = {
    tool: "cp",
    optstring: "HLPRSXacfilnprsvx",
    usage: "usage: cp [-R [-H | -L | -P]] [-fi | -n] [-aclpSsvXx] source_file target_file\n       cp [-R [-H | -L | -P]] [-fi | -n] [-aclpSsvXx] source_file ... target_directory",
    usageExit: 64,
};

export function cp(argv: string[]): number {
    const p = bsdGetopt(CP_USAGE, argv);
    if (p.operands.length < 2) usageError(CP_USAGE, null);
    const gnu = p.opts.map(([o]) => o).filter((o) => "HLPRfinaplvs".includes(o) && o !== "r");
    if (has(p, "r")) gnu.push("R");
    return forward("cp", [...gnu.map((o) => `-${o}`), "--", ...p.operands]);
}

export const LN_USAGE: BsdUsage = {
    tool: "ln",
    optstring: "FLPfhinsv",
    usage: "usage: ln [-s [-F] | -L | -P] [-f | -i] [-hnv] source_file [target_file]\n       ln [-s [-F] | -L | -P] [-f | -i] [-hnv] source_file ... target_dir\n       link source_file target_file",
    usageExit: 1,
};

export function ln(argv: string[]): number {
    const p = bsdGetopt(LN_USAGE, argv);
    if (p.operands.length < 1) usageError(LN_USAGE, null);
    const gnu = new Set<string>();
    for (const [o] of p.opts) {
        if (o === "h" || o === "n") gnu.add("-n");
        else if (o !== "F") gnu.add(`-${o}`);
    }
    return forward("ln", [...gnu, "--", ...p.operands]);
}

export const INSTALL_USAGE: BsdUsage = {
    tool: "install",
    optstring: "B:bCcdf:g:Mm:o:pSsv",
    usage: [
        "usage: install [-bCcpSsv] [-B suffix] [-f flags] [-g group] [-m mode]",
        "               [-o owner] file1 file2",
        "       install [-bCcpSsv] [-B suffix] [-f flags] [-g group] [-m mode]",
        "               [-o owner] file1 ... fileN directory",
        "       install -d [-v] [-g group] [-m mode] [-o owner] directory ...",
    ].join("\n"),
    usageExit: 64,
};

export function install(argv: string[]): number {
    const p = bsdGetopt(INSTALL_USAGE, argv);
    if (p.operands.length < (has(p, "d") ? 1 : 2)) usageError(INSTALL_USAGE, null);
    const gnu: string[] = [];
    for (const [o, a] of p.opts) {
        if (o === "B") gnu.push("-b", "-S", a);
        else if (o === "g") {
            const gid = groupId(a);
            if (gid === undefined) throw new Exit(67, `install: unknown group ${a}`);
            gnu.push("-g", String(gid));
        } else if (o === "o") {
            const uid = userId(a);
            if (uid === undefined) throw new Exit(67, `install: unknown user ${a}`);
            gnu.push("-o", String(uid));
        } else if (o === "m") gnu.push("-m", a);
        else if ("bCdpsv".includes(o)) gnu.push(`-${o}`);
    }
    return forward("install", [...gnu, "--", ...p.operands]);
}

export const CHMOD_USAGE: BsdUsage = {
    tool: "chmod",
    optstring: "HLPRfhv",
    usage: "usage:\tchmod [-fhv] [-R [-H | -L | -P]] [-a | +a | =a  [i][# [ n]]] mode|entry file ...\n\tchmod [-fhv] [-R [-H | -L | -P]] [-E | -C | -N | -i | -I] file ...",
    usageExit: 1,
};

export function chmod(argv: string[]): number {
    // A mode such as -w is an operand, not options (chmod(1)).
    const firstMode = argv.findIndex((a) => /^-[rwxXstugoa=+,-]*[rwxXst]$/.test(a) && !/^-[HLPRfhv]+$/.test(a));
    const optPart = firstMode >= 0 ? argv.slice(0, firstMode) : argv;
    const p = bsdGetopt(CHMOD_USAGE, optPart);
    const operands = [...p.operands, ...(firstMode >= 0 ? argv.slice(firstMode) : [])];
    if (operands.length < 2) usageError(CHMOD_USAGE, null);
    const [mode = "", ...files] = operands;
    const targets = has(p, "h") ? files.filter((f) => !isSymlink(f)) : files;
    if (targets.length === 0) return 0;
    const gnu = p.opts.map(([o]) => o).filter((o) => "HLPRfv".includes(o));
    return forward("chmod", [...gnu.map((o) => `-${o}`), "--", mode, ...targets]);
}

function isSymlink(f: string): boolean {
    try {
        return fs.lstatSync(f).isSymbolicLink();
    } catch {
        return false;
    }
}

export const CHOWN_USAGE: BsdUsage = {
    tool: "chown",
    optstring: "HLPRfhnvx",
    usage: "usage: chown [-fhnvx] [-R [-H | -L | -P]] owner[:group] file ...\n       chown [-fhnvx] [-R [-H | -L | -P]] :group file ...",
    usageExit: 1,
};

export function chown(argv: string[]): number {
    const p = bsdGetopt(CHOWN_USAGE, argv);
    if (p.operands.length < 2) usageError(CHOWN_USAGE, null);
    const [spec = "", ...files] = p.operands;
    const sep = spec.search(/[:.]/);
    const user = sep < 0 ? spec : spec.slice(0, sep);
    const group = sep < 0 ? "" : spec.slice(sep + 1);
    let numeric = "";
    if (user !== "") {
        const uid = userId(user);
        if (uid === undefined) throw new Exit(1, `chown: ${user}: illegal user name`);
        numeric = String(uid);
    }
    if (group !== "") {
        const gid = groupId(group);
        if (gid === undefined) throw new Exit(1, `chown: ${group}: illegal group name`);
        numeric += `:${gid}`;
    }
    const gnu = p.opts.map(([o]) => o).filter((o) => "HLPRfhv".includes(o));
    return forward("chown", [...gnu.map((o) => `-${o}`), "--", numeric, ...files]);
}
