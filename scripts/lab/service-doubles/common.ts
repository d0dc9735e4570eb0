/**
 * Output buffering and exit codes (the answer is written once, at the end, so the call log
 * holds what the caller saw), the host's cue, and the --help/unsupported answers that say
 * these are test doubles.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { DoubleHostConfig } from "../k3s-double/types";
import type { ToolBehaviour } from "./types";

export const STATE_DIR = "/var/lib/rancher/k3s-test-double";
export const TAG = "lab fleet TEST DOUBLE, see scripts/lab/service-doubles";

export class Exit extends Error {
    code: number;
    constructor(code: number, message: string) {
        super(message);
        this.code = code;
    }
}

export const out: string[] = [];
export const err: string[] = [];
export const say = (line: string): void => {
    out.push(line.endsWith("\n") ? line : line + "\n");
};
export const complain = (line: string): void => {
    err.push(line.endsWith("\n") ? line : line + "\n");
};
export function fail(code: number, message: string): never {
    throw new Exit(code, message);
}

export function readJson<T>(file: string, fallback: T): T {
    try {
        return JSON.parse(fs.readFileSync(file, "utf8")) as T;
    } catch {
        return fallback;
    }
}

/** The host's double-host.json, which its wrapper names; null outside the lab fleet's wrappers. */
export function loadHostConfig(): DoubleHostConfig | null {
    const file = process.env.K3S_TEST_DOUBLE_HOST_CONFIG ?? "";
    return file !== "" ? readJson<DoubleHostConfig | null>(file, null) : null;
}

export function cue(): ToolBehaviour {
    return readJson<ToolBehaviour>(path.join(STATE_DIR, "tool-cue.json"), {});
}

export function help(tool: string, what: string): number {
    say(`${tool} (${TAG}): not the real ${tool}.`);
    say(`supports: ${what}`);
    return 0;
}

export function unsupported(tool: string, argv: string[]): never {
    return fail(64, `${tool} (${TAG}): unsupported: ${JSON.stringify(argv.join(" "))} (extend scripts/lab/service-doubles)`);
}

/** Value of `-x V`, `-x=V`, `--x V`, `--x=V` for any of names. */
export function flagValue(argv: string[], names: string[]): string | undefined {
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i] ?? "";
        for (const n of names) {
            if (a === n) return argv[i + 1];
            if (a.startsWith(`${n}=`)) return a.slice(n.length + 1);
        }
    }
    return undefined;
}
