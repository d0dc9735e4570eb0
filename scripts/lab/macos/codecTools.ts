/**
 * base64 and gzip as macOS has them, for the launcher's `base64 --decode | gzip -dc` (every step's
 * script arrives packed: components/remote/packedScript.ts). Options parsed and checked here, the
 * work done by the real (GNU) tool; docs/macos-userland.md has the facts and their sources.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { Exit } from "../service-doubles/common";
import { bsdGetopt } from "./getopt";
import type { BsdUsage } from "./getopt";
import { forward, realTool } from "./userland";

/*
 * Apple's base64 (the 2022 script; older builds print the same options): each argument on its
 * own, no clustering (`-Dd` is "invalid argument -Dd"), `-d`, `-D` or `--decode`, `-b N` or
 * `--break=N`, `-i FILE` or `--input=FILE`, `-o FILE` or `--output=FILE`, `-h`/`--help`; anything
 * else is refused with exit 64. Encoding prints one line unless -b says otherwise.
 */
const BASE64_USAGE = [
    "Usage:\tbase64 [-hDd] [-b num] [-i in_file] [-o out_file]",
    "  -h, --help     display this message",
    "  -Dd, --decode   decodes input",
    "  -b, --break    break encoded string into num character lines",
    '  -i, --input    input file (default: "-" for stdin)',
    '  -o, --output   output file (default: "-" for stdout)',
].join("\n");

export function base64(argv: string[]): number {
    let decode = false;
    let breakAt = "0";
    let input = "-";
    let output = "-";
    const needs = (i: number): string => {
        const value = argv[i + 1];
        if (value === undefined) throw new Exit(64, `base64: invalid argument ${argv[i] ?? ""}\n${BASE64_USAGE}`);
        return value;
    };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i] ?? "";
        if (a === "-d" || a === "-D" || a === "--decode") decode = true;
        else if (a === "-h" || a === "--help") {
            process.stdout.write(`${BASE64_USAGE}\n`);
            return 0;
        } else if (a === "-b") breakAt = needs(i++);
        else if (/^--breaks?=/.test(a)) breakAt = a.slice(a.indexOf("=") + 1);
        else if (a === "-i") input = needs(i++);
        else if (a.startsWith("--input=")) input = a.slice("--input=".length);
        else if (a === "-o") output = needs(i++);
        else if (a.startsWith("--output=")) output = a.slice("--output=".length);
        else throw new Exit(64, `base64: invalid argument ${a}\n${BASE64_USAGE}`);
    }
    if (!/^\d+$/.test(breakAt)) throw new Exit(64, `base64: invalid argument ${breakAt}\n${BASE64_USAGE}`);
    const inputFd = input === "-" ? "inherit" : fs.openSync(input, "r");
    const r = spawnSync(realTool("base64"), decode ? ["-d"] : ["-w", breakAt], {
        stdio: [inputFd, "pipe", "inherit"],
        argv0: "base64",
        maxBuffer: 1 << 30,
    });
    if (r.error) throw new Exit(126, `base64: ${r.error.message}`);
    // Apple's encoder ends its one line with a newline (paste -s); GNU's -w 0 does not.
    const text = !decode && breakAt === "0" && r.stdout.length > 0 ? Buffer.concat([r.stdout, Buffer.from("\n")]) : r.stdout;
    if (output === "-") {
        for (let written = 0; written < text.length;) written += fs.writeSync(1, text, written);
    } else fs.writeFileSync(output, text);
    return r.status ?? 128 + 15;
}

/*
 * macOS gzip (BSD, NetBSD's): single-letter options `-123456789acdfhkLlNnqrS:tVv`, clustered,
 * and the long forms below; forwarded to GNU gzip, which takes the same letters.
 */
export const GZIP_USAGE: BsdUsage = {
    tool: "gzip",
    optstring: "123456789acdfhkLlNnqrS:tVv",
    usage: "usage: gzip [-123456789acdfhklLNnqrtVv] [-S .suffix] [<file> [<file> ...]]",
    usageExit: 1,
};

const GZIP_LONG: Readonly<Record<string, string>> = {
    "--fast": "-1",
    "--best": "-9",
    "--ascii": "-a",
    "--stdout": "-c",
    "--to-stdout": "-c",
    "--decompress": "-d",
    "--uncompress": "-d",
    "--force": "-f",
    "--help": "-h",
    "--keep": "-k",
    "--list": "-l",
    "--license": "-L",
    "--no-name": "-n",
    "--name": "-N",
    "--quiet": "-q",
    "--recursive": "-r",
    "--test": "-t",
    "--verbose": "-v",
    "--version": "-V",
};

export function gzip(argv: string[]): number {
    const args: string[] = [];
    let i = 0;
    for (; i < argv.length; i++) {
        const a = argv[i] ?? "";
        if (a === "--" || !a.startsWith("-") || a === "-") break;
        if (!a.startsWith("--")) {
            args.push(a);
            if (/^-[^S]*S$/.test(a) && i + 1 < argv.length) args.push(argv[++i] ?? "");
            continue;
        }
        if (a.startsWith("--suffix=")) {
            args.push("-S", a.slice("--suffix=".length));
            continue;
        }
        const short = GZIP_LONG[a];
        if (short === undefined) throw new Exit(1, `gzip: unrecognized option \`${a}'\n${GZIP_USAGE.usage}`);
        args.push(short);
    }
    const parsed = bsdGetopt(GZIP_USAGE, [...args, ...argv.slice(i)]);
    const gnu = parsed.opts.flatMap(([letter, value]) => (letter === "S" ? ["-S", value] : [`-${letter}`]));
    return forward("gzip", [...gnu, "--", ...parsed.operands]);
}
