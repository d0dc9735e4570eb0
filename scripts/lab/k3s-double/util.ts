/**
 * Output buffering and exit codes (a tool's answer is written once, at the end, so the
 * invocation log records exactly what the caller saw), JSON files, locks, addresses, durations.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as crypto from "node:crypto";
import { WAIT_MAX_MS } from "./constants";

export class ToolExit extends Error {
    code: number;
    constructor(code: number, message: string) {
        super(message);
        this.code = code;
    }
}

export const out: string[] = [];
export const err: string[] = [];
export function say(line: string): void {
    out.push(line.endsWith("\n") ? line : line + "\n");
}
export function complain(line: string): void {
    err.push(line.endsWith("\n") ? line : line + "\n");
}
export function fail(code: number, message: string): never {
    throw new ToolExit(code, message);
}
export function unsupported(what: string): never {
    fail(64, `k3s-test-double: unsupported ${what} (extend scripts/lab/k3s-double)`);
}

export function sleepSync(ms: number): void {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.max(0, ms));
}

export function isRecord(v: unknown): v is Record<string, unknown> {
    return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function readJson<T>(file: string, fallback: T): T {
    try {
        return JSON.parse(fs.readFileSync(file, "utf8")) as T;
    } catch {
        return fallback;
    }
}

export function writeJsonAtomic(file: string, value: unknown): void {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
    fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + "\n");
    fs.renameSync(tmp, file);
}

export function withLock<T>(dir: string, fn: () => T): T {
    const lock = path.join(dir, ".lock");
    fs.mkdirSync(dir, { recursive: true });
    const deadline = Date.now() + 10_000;
    for (let i = 0; ; i++) {
        try {
            fs.mkdirSync(lock);
            break;
        } catch {
            try {
                if (Date.now() - fs.statSync(lock).mtimeMs > 15_000) fs.rmSync(lock, { recursive: true, force: true });
            } catch {
                // the holder released it meanwhile
            }
            if (Date.now() > deadline || i > 2000) fail(1, `k3s-test-double: could not take lock ${lock}`);
            sleepSync(5);
        }
    }
    try {
        return fn();
    } finally {
        fs.rmSync(lock, { recursive: true, force: true });
    }
}

export function sha256(text: string): string {
    return crypto.createHash("sha256").update(text).digest("hex");
}

export function isIPv4(s: string): boolean {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
    return m !== null && m.slice(1).every((p) => Number(p) <= 255 && String(Number(p)) === p);
}
export function isIPv6(s: string): boolean {
    return /^[0-9a-fA-F:]+$/.test(s) && s.includes(":") && s.split("::").length <= 2;
}
export function isIP(s: string): boolean {
    return isIPv4(s) || isIPv6(s);
}
export function isCidr(s: string): boolean {
    const [addr, len, extra] = s.split("/");
    if (extra !== undefined || addr === undefined || len === undefined || !/^\d+$/.test(len)) return false;
    return (isIPv4(addr) && Number(len) <= 32) || (isIPv6(addr) && Number(len) <= 128);
}

export function parseDuration(s: string): number {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s);
    if (!m) fail(1, `error: invalid duration "${s}"`);
    const n = Number(m[1]);
    const unit = m[2] ?? "s";
    const factor = unit === "ms" ? 1 : unit === "s" ? 1000 : unit === "m" ? 60_000 : 3_600_000;
    return Math.min(n * factor, WAIT_MAX_MS);
}

export function age(fromIso: string): string {
    const s = Math.max(0, Math.floor((Date.now() - Date.parse(fromIso)) / 1000));
    if (s < 120) return `${s}s`;
    if (s < 7200) return `${Math.floor(s / 60)}m`;
    return `${Math.floor(s / 3600)}h`;
}
