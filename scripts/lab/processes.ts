/**
 * Child processes of the harness: bounded runs (every call has a timeout, so a hung tool fails
 * a test instead of hanging it) and killing what a run left, identified by pid and start time.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { ExecOptions, ExecResult } from "./types";

export function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Teardown also runs from the process `exit` hook, where nothing asynchronous runs any more. */
export function sleepSync(ms: number): void {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function shQuote(s: string): string {
    return `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface RunOptions extends ExecOptions {
    cwd?: string;
    envAll?: NodeJS.ProcessEnv;
    /** Children are added while they run (so stop() can kill them). */
    track?: Set<ChildProcess>;
}

/** Runs a command and collects its output; SIGKILL after timeoutMs (default 60 s). */
export function run(file: string, args: string[], opts: RunOptions = {}): Promise<ExecResult> {
    const started = Date.now();
    const timeoutMs = opts.timeoutMs ?? 60_000;
    return new Promise((resolve, reject) => {
        const child = spawn(file, args, { cwd: opts.cwd ?? "/", env: opts.envAll ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
        opts.track?.add(child);
        const stdout: Buffer[] = [];
        const stderr: Buffer[] = [];
        let timedOut = false;
        const timer = setTimeout(() => {
            timedOut = true;
            child.kill("SIGKILL");
        }, timeoutMs);
        child.stdout.on("data", (d: Buffer) => stdout.push(d));
        child.stderr.on("data", (d: Buffer) => stderr.push(d));
        child.stdin.on("error", () => undefined); // the remote side may close early
        child.on("error", (e) => {
            clearTimeout(timer);
            opts.track?.delete(child);
            reject(e);
        });
        child.on("close", (code, signal) => {
            clearTimeout(timer);
            opts.track?.delete(child);
            const result: ExecResult = {
                code,
                signal,
                stdout: Buffer.concat(stdout).toString("utf8"),
                stderr: Buffer.concat(stderr).toString("utf8"),
                timedOut,
                durationMs: Date.now() - started,
            };
            if (opts.check === true && code !== 0) {
                reject(
                    new Error(
                        `${path.basename(file)} ${args.join(" ")} failed (exit ${String(code)}${timedOut ? ", timed out" : ""}):\n${result.stderr}${result.stdout}`,
                    ),
                );
            } else resolve(result);
        });
        if (opts.stdin !== undefined) child.stdin.end(opts.stdin);
        else child.stdin.end();
    });
}

/** Runs a command that must succeed (20 s at most) and returns its stdout. */
export async function runOk(file: string, args: string[], input?: string): Promise<string> {
    const r = await run(file, args, { check: true, timeoutMs: 20_000, ...(input !== undefined ? { stdin: input } : {}) });
    return r.stdout;
}

/** A process's start time (/proc/<pid>/stat field 22): tells a live owner from a reused pid. */
export function procStartTime(pid: number): string | null {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        if (rest[0] === "Z" || rest[0] === "X") return null;
        return rest[19] ?? null;
    } catch {
        return null;
    }
}

export function alive(pid: number): boolean {
    return procStartTime(pid) !== null;
}

/** SIGTERM, then SIGKILL to what is left, each followed by a bounded wait (2 s). */
export function killAll(pids: number[]): void {
    const live = pids.filter(alive);
    for (const sig of ["SIGTERM", "SIGKILL"] as const) {
        for (const pid of live) {
            try {
                process.kill(pid, sig);
            } catch {
                // already gone
            }
        }
        const deadline = Date.now() + 2000;
        for (let i = 0; i < 400 && Date.now() < deadline && live.some(alive); i++) sleepSync(5);
        if (!live.some(alive)) return;
    }
}

export function killTree(tree: { pid: number }[]): void {
    for (const each of tree) {
        try {
            process.kill(each.pid, "SIGKILL");
        } catch {
            // already gone
        }
    }
}

/** `pid` and every process below it, with its process group (from /proc). */
export function processTree(pid: number): { pid: number; pgid: number; command: string }[] {
    const all: { pid: number; ppid: number; pgid: number; command: string }[] = [];
    for (const entry of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        try {
            const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
            // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
            const [, ppid, pgid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
            all.push({ pid: Number(entry), ppid: Number(ppid), pgid: Number(pgid), command: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")) });
        } catch {
            // gone meanwhile
        }
    }
    const tree = all.filter((each) => each.pid === pid);
    const seen = new Set(tree.map((each) => each.pid));
    for (let index = 0; index < tree.length; index += 1) {
        for (const child of all.filter((each) => each.ppid === tree[index].pid && !seen.has(each.pid))) {
            seen.add(child.pid);
            tree.push(child);
        }
    }
    return tree.map(({ pid: id, pgid, command }) => ({ pid: id, pgid, command }));
}

/**
 * Processes of this machine with an argument inside `dir` (a run's own daemons outside its
 * namespaces, such as the API server and etcd started from its run directory), this one excepted.
 */
export function processesUsing(dir: string): number[] {
    const inside = `${path.resolve(dir)}/`;
    const found: number[] = [];
    for (const entry of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
        try {
            const args = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
            if (args.some((arg) => arg.startsWith(inside) || arg.includes(`=${inside}`))) found.push(Number(entry));
        } catch {
            // gone meanwhile
        }
    }
    return found;
}
