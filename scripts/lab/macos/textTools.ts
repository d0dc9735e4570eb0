/**
 * sed, date, head, tail and find: BSD (macOS) options parsed and checked here, the work done by
 * the real (GNU) tool with the matching GNU options.
 */
import { Exit, complain } from "../service-doubles/common";
import { bsdGetopt, has, last, usageError } from "./getopt";
import type { BsdUsage } from "./getopt";
import { forward, forwardCapturingStderr } from "./userland";

const STAND_IN = "lab TEST DOUBLE, scripts/lab/macos";

export const SED_USAGE: BsdUsage = {
    tool: "sed",
    optstring: "EI:ae:f:i:lnru",
    usage: "usage: sed script [-Ealnru] [-i extension] [file ...]\n\tsed [-Ealnu] [-i extension] [-e script] ... [-f script_file] ... [file ...]",
    usageExit: 1,
};

/** sed: -i and -I take the backup suffix as their argument ("" for none), as BSD's getopt has it. */
export function sed(argv: string[]): number {
    const p = bsdGetopt(SED_USAGE, argv);
    const gnu: string[] = ["--posix"];
    let scripts = 0;
    let inPlace = false;
    for (const [o, a] of p.opts) {
        if (o === "E" || o === "r") gnu.push("-E");
        else if (o === "e") {
            gnu.push("-e", a);
            scripts++;
        } else if (o === "f") {
            gnu.push("-f", a);
            scripts++;
        } else if (o === "i" || o === "I") {
            gnu.push(`-i${a}`);
            inPlace = true;
        } else if (o === "n") gnu.push("-n");
        else if (o === "u" || o === "l") gnu.push("-u");
    }
    const operands = [...p.operands];
    let script = "";
    if (scripts === 0) {
        if (operands.length === 0) usageError(SED_USAGE, null);
        script = operands.shift() ?? "";
        gnu.push("-e", script);
    }
    // BSD sed compiles the script before it looks at the input: a bad script is reported first.
    const noInput = inPlace && operands.length === 0;
    const r = noInput
        ? forwardCapturingStderr("sed", [...gnu.filter((a) => !a.startsWith("-i")), "-n", "--", "/dev/null"])
        : forwardCapturingStderr("sed", [...gnu, "--", ...operands]);
    // GNU: "sed: -e expression #1, char 1: unknown command: `f'"; BSD: sed: 1: "f": invalid command code f
    const m = /^sed: -e expression #\d+, char \d+: (.*)$/m.exec(r.stderr);
    if (m !== null) {
        const why = (m[1] ?? "")
            .replace(/^unknown command: `(.)'$/, "invalid command code $1")
            .replace(/^unterminated `s' command$/, "unterminated substitute pattern");
        complain(`sed: 1: ${JSON.stringify(script)}: ${why}`);
        return 1;
    }
    if (noInput) throw new Exit(1, "sed: -i may not be used with stdin");
    if (r.stderr !== "") complain(r.stderr);
    return r.status;
}

export const DATE_USAGE: BsdUsage = {
    tool: "date",
    optstring: "f:jnRr:uv:",
    usage: [
        "usage: date [-jnRu] [-I[date|hours|minutes|seconds]] [-f input_fmt]",
        "            [-r filename|seconds] [-v[+|-]val[y|m|w|d|H|M|S]]",
        "            [[[[mm]dd]HH]MM[[cc]yy][.SS] | new_date] [+output_fmt]",
    ].join("\n"),
    usageExit: 1,
};

/** BSD strftime has no %N: it prints "N" (date +%s.%N gives "1733400000.N"). */
export function bsdOutputFormat(fmt: string): string {
    return fmt.replace(/%(.)/g, (all, c: string) => (c === "N" ? "N" : all));
}

export function date(argv: string[]): number {
    const p = bsdGetopt(DATE_USAGE, argv);
    for (const o of ["j", "f", "v"]) if (has(p, o)) throw new Exit(64, `date (${STAND_IN}): -${o} is not supported by the stand-in`);
    const gnu: string[] = [];
    if (has(p, "u")) gnu.push("-u");
    if (has(p, "R")) gnu.push("-R");
    const r = last(p, "r");
    if (r !== undefined) gnu.push(...(/^-?\d+$/.test(r) ? ["-d", `@${r}`] : ["-r", r]));
    for (const op of p.operands) {
        if (!op.startsWith("+")) throw new Exit(64, `date (${STAND_IN}): setting the date is not supported by the stand-in`);
        gnu.push(bsdOutputFormat(op));
    }
    return forward("date", gnu);
}

export const HEAD_USAGE: BsdUsage = { tool: "head", optstring: "c:n:", usage: "usage: head [-n lines | -c bytes] [file ...]", usageExit: 1 };

function positiveCount(tool: string, what: string, v: string): string {
    if (!/^\d+$/.test(v) || Number(v) <= 0) throw new Exit(1, `${tool}: illegal ${what} count -- ${v}`);
    return v;
}

export function head(argv: string[]): number {
    // The obsolete form `head -5` is -n 5.
    const args = argv.map((a, i) => (i === 0 && /^-\d+$/.test(a) ? `-n${a.slice(1)}` : a));
    const p = bsdGetopt(HEAD_USAGE, args);
    const gnu: string[] = [];
    const n = last(p, "n");
    const c = last(p, "c");
    if (n !== undefined && c !== undefined) throw new Exit(1, "head: can't combine line and byte counts");
    if (n !== undefined) gnu.push("-n", positiveCount("head", "line", n));
    if (c !== undefined) gnu.push("-c", positiveCount("head", "byte", c));
    return forward("head", [...gnu, "--", ...p.operands]);
}

export const TAIL_USAGE: BsdUsage = {
    tool: "tail",
    optstring: "Fb:c:fn:qr",
    usage: "usage: tail [-F | -f | -r] [-q] [-b # | -c # | -n #] [file ...]",
    usageExit: 1,
};

export function tail(argv: string[]): number {
    const args = argv.map((a, i) => (i === 0 && /^[-+]\d+$/.test(a) ? `-n${a}` : a));
    const p = bsdGetopt(TAIL_USAGE, args);
    if (has(p, "r")) throw new Exit(64, `tail (${STAND_IN}): -r is not supported by the stand-in`);
    const gnu: string[] = [];
    for (const [o, a] of p.opts) {
        if (o === "F" || o === "f" || o === "q") gnu.push(`-${o}`);
        else if (o === "n" || o === "c") gnu.push(`-${o}`, a);
        else if (o === "b") gnu.push("-c", String(Number(a) * 512));
    }
    return forward("tail", [...gnu, "--", ...p.operands]);
}

export const FIND_USAGE: BsdUsage = {
    tool: "find",
    optstring: "EHLPXdf:sx",
    usage: "usage: find [-H | -L | -P] [-EXdsx] [-f path] path ... [expression]\n       find [-H | -L | -P] [-EXdsx] -f path [path ...] [expression]",
    usageExit: 1,
};

/** find(1) primaries of macOS that GNU find also has, with how many arguments each takes. */
const FIND_PRIMARIES: Readonly<Record<string, number>> = {
    "-amin": 1,
    "-anewer": 1,
    "-atime": 1,
    "-cmin": 1,
    "-cnewer": 1,
    "-ctime": 1,
    "-d": 0,
    "-delete": 0,
    "-depth": 0,
    "-empty": 0,
    "-false": 0,
    "-fstype": 1,
    "-gid": 1,
    "-group": 1,
    "-ilname": 1,
    "-iname": 1,
    "-inum": 1,
    "-ipath": 1,
    "-iregex": 1,
    "-iwholename": 1,
    "-links": 1,
    "-lname": 1,
    "-ls": 0,
    "-maxdepth": 1,
    "-mindepth": 1,
    "-mmin": 1,
    "-mnewer": 1,
    "-mount": 0,
    "-mtime": 1,
    "-name": 1,
    "-newer": 1,
    "-nogroup": 0,
    "-nouser": 0,
    "-path": 1,
    "-perm": 1,
    "-print": 0,
    "-print0": 0,
    "-prune": 0,
    "-quit": 0,
    "-regex": 1,
    "-samefile": 1,
    "-size": 1,
    "-true": 0,
    "-type": 1,
    "-uid": 1,
    "-user": 1,
    "-wholename": 1,
    "-xdev": 0,
    "-not": 0,
    "-and": 0,
    "-or": 0,
    "-a": 0,
    "-o": 0,
};
const FIND_EXEC = ["-exec", "-execdir", "-ok", "-okdir"];

export function find(argv: string[]): number {
    const p = bsdGetopt(FIND_USAGE, argv);
    const paths: string[] = p.opts.filter(([o]) => o === "f").map(([, a]) => a);
    const rest = [...p.operands];
    while (rest.length > 0 && !(rest[0] ?? "").startsWith("-") && !["(", ")", "!"].includes(rest[0] ?? "")) paths.push(rest.shift() ?? "");
    if (paths.length === 0) usageError(FIND_USAGE, null);
    const expr: string[] = [];
    for (let i = 0; i < rest.length; i++) {
        const t = rest[i] ?? "";
        if (FIND_EXEC.includes(t)) {
            let j = i + 1;
            while (j < rest.length && rest[j] !== ";" && rest[j] !== "+") j++;
            expr.push(...rest.slice(i, j + 1));
            i = j;
            continue;
        }
        if (["(", ")", "!"].includes(t)) {
            expr.push(t);
            continue;
        }
        const n = FIND_PRIMARIES[t];
        if (n === undefined) throw new Exit(1, `find: ${t}: unknown primary or operator`);
        expr.push(t === "-d" ? "-depth" : t, ...rest.slice(i + 1, i + 1 + n));
        i += n;
    }
    const gnu: string[] = [];
    for (const [o] of p.opts) if ("HLP".includes(o)) gnu.push(`-${o}`);
    const pre: string[] = [];
    if (has(p, "E")) pre.push("-regextype", "posix-extended");
    if (has(p, "d")) pre.push("-depth");
    if (has(p, "x")) pre.push("-xdev");
    return forward("find", [...gnu, ...paths, ...pre, ...expr]);
}

/**
 * dd as an older macOS has it (macOS 12's dd(1)): operands only, and an operand it does not know
 * (`iflag=`, `oflag=`, `status=`) or a word without `=` is refused with "dd: unknown operand
 * <name>" and exit 1 before any input is read (POSIX: all operands are processed first). A
 * recent macOS's dd also takes iflag=fullblock; the launcher and the prelude work with either
 * (they fall back to bs=1), so the stand-in plays the older one to exercise the fallback.
 */
const BSD_DD_OPERANDS = new Set(["bs", "cbs", "count", "files", "ibs", "if", "iseek", "obs", "of", "oseek", "seek", "skip", "conv"]);

export function dd(argv: string[]): number {
    for (const operand of argv) {
        const eq = operand.indexOf("=");
        const name = eq < 0 ? operand : operand.slice(0, eq);
        if (eq < 0 || !BSD_DD_OPERANDS.has(name)) throw new Exit(1, `dd: unknown operand ${name}`);
    }
    return forward("dd", argv);
}
