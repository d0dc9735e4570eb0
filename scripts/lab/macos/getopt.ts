/**
 * BSD getopt(3) as the macOS tools use it: options are single letters, clustered ("-fv"), an
 * option that takes an argument takes the rest of its word or the next word ("-i.bak", "-i
 * .bak"), parsing stops at the first operand or at "--", and there are no long options: "--x"
 * is the illegal option "-" (what BSD prints for `stat --format`). An illegal letter is
 * reported as BSD does, "<tool>: illegal option -- <c>", followed by the tool's usage.
 */
import { Exit } from "../service-doubles/common";

export interface BsdUsage {
    tool: string;
    /** getopt(3) option string: letters, ":" after one that takes an argument. */
    optstring: string;
    /** The usage text BSD prints (without the trailing newline). */
    usage: string;
    /** Exit status of usage() (1, or EX_USAGE 64 for mv, cp, install). */
    usageExit: number;
}

export interface Parsed {
    /** Options in order, each [letter, argument or ""]. */
    opts: [string, string][];
    operands: string[];
}

/** Throws Exit(usageExit) with BSD's message and usage; nothing is written yet. */
export function usageError(u: BsdUsage, message: string | null): never {
    throw new Exit(u.usageExit, `${message !== null ? `${message}\n` : ""}${u.usage}`);
}

export function bsdGetopt(u: BsdUsage, argv: readonly string[]): Parsed {
    const opts: [string, string][] = [];
    let i = 0;
    for (; i < argv.length; i++) {
        const a = argv[i] ?? "";
        if (a === "--") {
            i++;
            break;
        }
        if (!a.startsWith("-") || a === "-") break;
        for (let j = 1; j < a.length; j++) {
            const c = a[j] ?? "";
            const at = c === ":" ? -1 : u.optstring.indexOf(c);
            if (at < 0) usageError(u, `${u.tool}: illegal option -- ${c}`);
            if (u.optstring[at + 1] === ":") {
                let value = a.slice(j + 1);
                if (value === "") {
                    i++;
                    if (i >= argv.length) usageError(u, `${u.tool}: option requires an argument -- ${c}`);
                    value = argv[i] ?? "";
                }
                opts.push([c, value]);
                break;
            }
            opts.push([c, ""]);
        }
    }
    return { opts, operands: argv.slice(i) };
}

export function has(p: Parsed, c: string): boolean {
    return p.opts.some(([o]) => o === c);
}

/** The last value of option c (BSD tools keep the last one), or undefined. */
export function last(p: Parsed, c: string): string | undefined {
    let v: string | undefined;
    for (const [o, a] of p.opts) if (o === c) v = a;
    return v;
}
