/**
 * launchctl (TEST DOUBLE, not launchd): the system domain of launchd as far as the program's
 * steps use it. Jobs are loaded from XML property lists (parsed with the `plist` package) and
 * their ProgramArguments really run, detached, as the job's process; state, cues and events
 * live in the host's stand-in state directory (launchd.json, launchd-cue.json).
 *
 *   bootstrap system PLIST...     load (RunAtLoad or KeepAlive: start). Already loaded, a plist
 *                                 that is missing, unreadable, not owned by root, group or world
 *                                 writable, without Label or ProgramArguments/Program, or a
 *                                 disabled label: "Bootstrap failed: 5: Input/output error", exit 5
 *   bootout system/LABEL | bootout system PLIST
 *                                 stop (SIGTERM, then SIGKILL after 5 s) and unload; not loaded:
 *                                 "Boot-out failed: 3: No such process", exit 3
 *   kickstart [-k] [-p] system/LABEL
 *                                 start when not running; -k kills a running one first; -p
 *                                 prints the pid
 *   print system/LABEL            the job ("state = running" while its process lives)
 *   kill SIGNAL system/LABEL      signals the running job (HUP, TERM, KILL or their numbers;
 *                                 recorded as verb "signal"); not running: 3: No such process
 *   enable | disable system/LABEL the override database (disabled labels do not bootstrap)
 * A label that is not loaded: `Could not find service "LABEL" in domain for system`, exit 113.
 * Modifying the system domain needs root: as another user bootstrap, bootout, kickstart,
 * enable and disable fail with "...: 1: Operation not permitted", exit 1; print is allowed
 * (launchctl(1): anyone may read or query the system domain). KeepAlive: a loaded KeepAlive job
 * whose process has died is started again by the next launchctl call (launchd does it at once;
 * the stand-in has no daemon of its own). Cues (LaunchdBehaviour, per label): `program` runs
 * another argv than the plist's, `failSpawns` makes the next n starts fail (exit code 78).
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import plist from "plist";
import { Exit, STATE_DIR, out, readJson } from "../service-doubles/common";

/** The host's stand-in state directory (LAB_MACOS_STATE_DIR: another one, for unit tests). */
export function stateDir(): string {
    return process.env.LAB_MACOS_STATE_DIR ?? STATE_DIR;
}
import type { LaunchdBehaviour, LaunchdEvent, LaunchdJob, LaunchdState } from "./types";

export const LAUNCHD_STATE = "launchd.json";
export const LAUNCHD_CUE = "launchd-cue.json";
const EVENT_LIMIT = 5000;
const LAUNCHD_PATH = "/usr/bin:/bin:/usr/sbin:/sbin";

function monoUs(): number {
    return Number(process.hrtime.bigint() / 1000n);
}

function sleepSync(ms: number): void {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.max(0, ms));
}

function statePath(): string {
    return path.join(stateDir(), LAUNCHD_STATE);
}

export function loadLaunchd(): LaunchdState {
    const s = readJson<Partial<LaunchdState>>(statePath(), {});
    return { jobs: s.jobs ?? {}, disabled: s.disabled ?? [], events: s.events ?? [] };
}

function saveLaunchd(s: LaunchdState): void {
    s.events = s.events.slice(-EVENT_LIMIT);
    const tmp = `${statePath()}.tmp-${process.pid}`;
    // Readable by anyone (print is), whatever the caller's umask (deliver-files runs under 077).
    fs.writeFileSync(tmp, JSON.stringify(s, null, 2) + "\n", { mode: 0o644 });
    fs.chmodSync(tmp, 0o644);
    fs.renameSync(tmp, statePath());
}

function cueOf(label: string): { cue: LaunchdBehaviour; all: Record<string, LaunchdBehaviour> } {
    const all = readJson<Record<string, LaunchdBehaviour>>(path.join(stateDir(), LAUNCHD_CUE), {});
    return { cue: all[label] ?? {}, all };
}

/** One launchctl at a time per host (a mkdir lock, bounded: 10 s, then taken over). */
function withLock<T>(fn: () => T): T {
    const lock = path.join(stateDir(), ".launchd.lock");
    fs.mkdirSync(stateDir(), { recursive: true });
    const deadline = Date.now() + 10_000;
    for (let i = 0; i < 2000; i++) {
        try {
            fs.mkdirSync(lock);
            break;
        } catch {
            if (Date.now() > deadline) break;
            sleepSync(5);
        }
    }
    try {
        return fn();
    } finally {
        fs.rmSync(lock, { recursive: true, force: true });
    }
}

/** /proc start time of pid (field 22), or null when it is gone or a zombie. */
export function procStart(pid: number): string | null {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        if (fields[0] === "Z" || fields[0] === "X") return null;
        return fields[19] ?? null;
    } catch {
        return null;
    }
}

export function isRunning(job: LaunchdJob): boolean {
    return job.pid !== null && job.pidStart !== null && procStart(job.pid) === job.pidStart;
}

function resultOf(job: LaunchdJob | undefined): string {
    return job === undefined ? "not loaded" : isRunning(job) ? "running" : "not running";
}

function record(s: LaunchdState, verb: string, label: string, exitCode: number, extra: Partial<LaunchdEvent> = {}): void {
    const job = s.jobs[label];
    s.events.push({
        verb,
        label,
        domain: "system",
        atMs: Date.now(),
        monoUs: monoUs(),
        uid: process.getuid?.() ?? -1,
        exitCode,
        result: resultOf(job),
        pid: job !== undefined && isRunning(job) ? job.pid : null,
        ...extra,
    });
}

export interface ParsedJob {
    label: string;
    /** Program, else ProgramArguments[0]: what is executed (ProgramArguments is its argv). */
    program: string;
    programArguments: string[];
    runAtLoad: boolean;
    keepAlive: boolean;
    standardOutPath: string | null;
    standardErrorPath: string | null;
    environment: Record<string, string>;
    workingDirectory: string | null;
}

/** The job of an XML property list, or the reason launchd would refuse it. */
export function parseJobPlist(text: string): ParsedJob | string {
    let doc: unknown;
    try {
        doc = plist.parse(text);
    } catch (e) {
        return `not a property list: ${e instanceof Error ? e.message : String(e)}`;
    }
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return "the property list is not a dictionary";
    const d = doc as Record<string, unknown>;
    const label = d.Label;
    if (typeof label !== "string" || label === "") return "no Label";
    const args = d.ProgramArguments;
    let programArguments: string[];
    if (Array.isArray(args) && args.length > 0 && args.every((a) => typeof a === "string")) programArguments = args;
    else if (typeof d.Program === "string") programArguments = [d.Program];
    else return "no ProgramArguments or Program";
    const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
    const env: Record<string, string> = {};
    if (typeof d.EnvironmentVariables === "object" && d.EnvironmentVariables !== null) {
        for (const [k, v] of Object.entries(d.EnvironmentVariables as Record<string, unknown>)) if (typeof v === "string") env[k] = v;
    }
    return {
        label,
        program: typeof d.Program === "string" ? d.Program : (programArguments[0] ?? ""),
        programArguments,
        runAtLoad: d.RunAtLoad === true,
        keepAlive: d.KeepAlive === true || (typeof d.KeepAlive === "object" && d.KeepAlive !== null),
        standardOutPath: str(d.StandardOutPath),
        standardErrorPath: str(d.StandardErrorPath),
        environment: env,
        workingDirectory: str(d.WorkingDirectory),
    };
}

function openLog(file: string | null): number | "ignore" {
    if (file === null) return "ignore";
    try {
        return fs.openSync(file, "a", 0o644);
    } catch {
        return "ignore";
    }
}

/** Starts the job's program, detached (its own session, stdio never the caller's). */
function spawnJob(s: LaunchdState, job: LaunchdJob, verb: string): void {
    const { cue, all } = cueOf(job.label);
    job.runs += 1;
    if ((cue.failSpawns ?? 0) > 0) {
        all[job.label] = { ...cue, failSpawns: (cue.failSpawns ?? 0) - 1 };
        fs.writeFileSync(path.join(stateDir(), LAUNCHD_CUE), JSON.stringify(all, null, 2));
        job.pid = null;
        job.pidStart = null;
        job.lastExitCode = 78;
        record(s, verb, job.label, 0, { detail: "failSpawns cue: the program exited at once (78)" });
        return;
    }
    const argv = cue.program ?? job.programArguments;
    const program = cue.program ? (cue.program[0] ?? "") : job.program;
    const parsed = parseJobPlist(fs.existsSync(job.plist) ? fs.readFileSync(job.plist, "utf8") : "");
    const env = typeof parsed === "string" ? {} : parsed.environment;
    const cwd = typeof parsed === "string" || parsed.workingDirectory === null ? "/" : parsed.workingDirectory;
    const stdoutFd = openLog(job.standardOutPath);
    const stderrFd = openLog(job.standardErrorPath);
    let pid: number | undefined;
    // launchd's jobs start with umask 022 (the plist's Umask key is not played), not the caller's.
    const callerUmask = process.umask(0o022);
    try {
        const child = spawn(program, argv.slice(1), {
            argv0: argv[0] ?? program,
            detached: true,
            stdio: ["ignore", stdoutFd, stderrFd],
            cwd,
            env: { PATH: LAUNCHD_PATH, XPC_SERVICE_NAME: job.label, ...env },
        });
        child.on("error", () => undefined);
        child.unref();
        pid = child.pid;
    } catch {
        pid = undefined;
    }
    process.umask(callerUmask);
    for (const fd of [stdoutFd, stderrFd]) if (typeof fd === "number") fs.closeSync(fd);
    if (pid === undefined) {
        job.pid = null;
        job.pidStart = null;
        job.lastExitCode = 78;
        record(s, verb, job.label, 0, { detail: `could not run ${argv[0] ?? ""} (last exit code 78: EX_CONFIG)` });
        return;
    }
    let start: string | null = null;
    for (let i = 0; i < 100 && start === null; i++) {
        start = procStart(pid);
        if (start === null) sleepSync(2);
    }
    job.pid = pid;
    job.pidStart = start;
    record(s, verb, job.label, 0, { pid, detail: argv.join(" ") });
}

function killJob(s: LaunchdState, job: LaunchdJob): void {
    if (!isRunning(job) || job.pid === null) return;
    const pid = job.pid;
    const gone = (): boolean => procStart(pid) !== job.pidStart;
    try {
        process.kill(pid, "SIGTERM");
    } catch {
        // already gone
    }
    for (let i = 0; i < 500 && !gone(); i++) sleepSync(10);
    if (!gone()) {
        try {
            process.kill(pid, "SIGKILL");
        } catch {
            // already gone
        }
        for (let i = 0; i < 200 && !gone(); i++) sleepSync(10);
    }
    job.lastExitCode = 0;
    job.pid = null;
    job.pidStart = null;
    record(s, "kill", job.label, 0, { detail: `pid ${pid}` });
}

/** KeepAlive: loaded jobs found dead are started again (what launchd does on its own). */
function keepAlive(s: LaunchdState): void {
    for (const job of Object.values(s.jobs)) {
        if (job.keepAlive && job.pid !== null && !isRunning(job)) spawnJob(s, job, "keepalive-respawn");
    }
}

function isRoot(): boolean {
    return (process.getuid?.() ?? 0) === 0;
}

const NOT_PERMITTED = "1: Operation not permitted";

/** "system/LABEL" -> LABEL; "system" -> ""; anything else is not the system domain. */
function serviceTarget(verb: string, t: string | undefined): string {
    if (t === undefined) throw new Exit(64, `Usage: launchctl ${verb} <service-target>`);
    if (t === "system" || t === "system/") return "";
    if (t.startsWith("system/")) return t.slice("system/".length);
    throw new Exit(64, `launchctl (lab TEST DOUBLE, scripts/lab/macos): only the system domain is played; ${JSON.stringify(t)} is not supported`);
}

function notFound(label: string): never {
    throw new Exit(113, `Could not find service "${label}" in domain for system`);
}

/**
 * The loaded job a verb acts on, after KeepAlive has had its turn (root's calls only: a caller
 * without rights changes nothing). An unknown label fails as launchd does (113), and root's
 * attempt is recorded with the verb.
 */
function loadedJob(s: LaunchdState, verb: string, label: string, extra: Partial<LaunchdEvent> = {}): LaunchdJob {
    if (isRoot()) keepAlive(s);
    const job = s.jobs[label];
    if (job === undefined) {
        if (isRoot()) {
            record(s, verb, label, 113, extra);
            saveLaunchd(s);
        }
        notFound(label);
    }
    return job;
}

function plistProblem(file: string): string | ParsedJob {
    let st: fs.Stats;
    try {
        st = fs.statSync(file);
    } catch {
        return `${file}: no such file`;
    }
    if (st.uid !== 0) return `${file}: path had bad ownership/permissions (not owned by root)`;
    if ((st.mode & 0o022) !== 0) return `${file}: path had bad ownership/permissions (group or world writable)`;
    let text: string;
    try {
        text = fs.readFileSync(file, "utf8");
    } catch {
        return `${file}: unreadable`;
    }
    return parseJobPlist(text);
}

function bootstrap(argv: string[]): number {
    const [domain, ...plists] = argv;
    if (serviceTarget("bootstrap", domain) !== "" || plists.length === 0)
        throw new Exit(64, "Usage: launchctl bootstrap <domain-target> [service-path, service-path2, ...]");
    if (!isRoot()) throw new Exit(1, `Bootstrap failed: ${NOT_PERMITTED}`);
    return withLock(() => {
        const s = loadLaunchd();
        keepAlive(s);
        let code = 0;
        for (const file of plists) {
            const parsed = plistProblem(file);
            const label = typeof parsed === "string" ? "" : parsed.label;
            let why: string | null = typeof parsed === "string" ? parsed : null;
            if (why === null && s.jobs[label] !== undefined) why = `${label} is already loaded`;
            if (why === null && s.disabled.includes(label)) why = `${label} is disabled`;
            if (why !== null || typeof parsed === "string") {
                record(s, "bootstrap", label, 5, { detail: why ?? "" });
                code = 5;
                continue;
            }
            const job: LaunchdJob = {
                label,
                plist: path.resolve(file),
                program: parsed.program,
                programArguments: parsed.programArguments,
                runAtLoad: parsed.runAtLoad,
                keepAlive: parsed.keepAlive,
                standardOutPath: parsed.standardOutPath,
                standardErrorPath: parsed.standardErrorPath,
                pid: null,
                pidStart: null,
                runs: 0,
                lastExitCode: null,
                loadedAtMs: Date.now(),
            };
            s.jobs[label] = job;
            record(s, "bootstrap", label, 0, { detail: job.plist });
            if (job.runAtLoad || job.keepAlive) spawnJob(s, job, "spawn");
        }
        saveLaunchd(s);
        if (code !== 0) throw new Exit(code, "Bootstrap failed: 5: Input/output error");
        return 0;
    });
}

function bootout(argv: string[]): number {
    const [target, ...plists] = argv;
    let label = serviceTarget("bootout", target);
    if (label === "") {
        const file = plists[0];
        if (file === undefined) throw new Exit(64, "Usage: launchctl bootout <domain-target> [service-path1, service-path2, ...] | <service-target>");
        const parsed = fs.existsSync(file) ? parseJobPlist(fs.readFileSync(file, "utf8")) : "missing";
        if (typeof parsed === "string") {
            if (!isRoot()) throw new Exit(1, `Boot-out failed: ${NOT_PERMITTED}`);
            throw new Exit(5, "Boot-out failed: 5: Input/output error");
        }
        label = parsed.label;
    }
    if (!isRoot()) throw new Exit(1, `Boot-out failed: ${NOT_PERMITTED}`);
    return withLock(() => {
        const s = loadLaunchd();
        const job = s.jobs[label];
        if (job === undefined) {
            record(s, "bootout", label, 3);
            saveLaunchd(s);
            throw new Exit(3, "Boot-out failed: 3: No such process");
        }
        killJob(s, job);
        delete s.jobs[label];
        record(s, "bootout", label, 0);
        saveLaunchd(s);
        return 0;
    });
}

function kickstart(argv: string[]): number {
    const flags = argv.filter((a) => a.startsWith("-"));
    const bad = flags.find((f) => !["-k", "-p", "-s", "-kp", "-pk"].includes(f));
    if (bad !== undefined) throw new Exit(64, "Usage: launchctl kickstart [-k] [-p] <service-target>");
    const label = serviceTarget(
        "kickstart",
        argv.find((a) => !a.startsWith("-")),
    );
    if (label === "") throw new Exit(64, "Usage: launchctl kickstart [-k] [-p] <service-target>");
    const kill = flags.some((f) => f.includes("k"));
    return withLock(() => {
        const s = loadLaunchd();
        const job = loadedJob(s, "kickstart", label);
        if (!isRoot()) throw new Exit(1, `Could not kickstart service "${label}": ${NOT_PERMITTED}`);
        if (isRunning(job) && kill) killJob(s, job);
        if (!isRunning(job)) spawnJob(s, job, "spawn");
        record(s, "kickstart", label, 0, kill ? { detail: "-k" } : {});
        saveLaunchd(s);
        if (flags.some((f) => f.includes("p")) && job.pid !== null) out.push(`${job.pid}\n`);
        return 0;
    });
}

/** launchctl(1) `kill <signal-name | signal-number> <service-target>`: signals the running job. */
const SIGNALS: Readonly<Record<string, NodeJS.Signals>> = { HUP: "SIGHUP", "1": "SIGHUP", TERM: "SIGTERM", "15": "SIGTERM", KILL: "SIGKILL", "9": "SIGKILL" };
function killVerb(argv: string[]): number {
    const [name, target] = argv;
    const signal = name === undefined ? undefined : SIGNALS[name.replace(/^SIG/, "")];
    const label = serviceTarget("kill", target);
    if (signal === undefined || label === "") throw new Exit(64, "Usage: launchctl kill <signal-name | signal-number> <service-target>");
    return withLock(() => {
        const s = loadLaunchd();
        const job = loadedJob(s, "signal", label, { detail: signal });
        if (!isRoot()) throw new Exit(1, `Could not kill service "${label}": ${NOT_PERMITTED}`);
        if (!isRunning(job) || job.pid === null) {
            record(s, "signal", label, 3, { detail: signal });
            saveLaunchd(s);
            throw new Exit(3, `Could not kill service "${label}": 3: No such process`);
        }
        process.kill(job.pid, signal);
        record(s, "signal", label, 0, { pid: job.pid, detail: signal });
        saveLaunchd(s);
        return 0;
    });
}

export function printJob(job: LaunchdJob): string {
    const running = isRunning(job);
    const lines = [
        `system/${job.label} = {`,
        `\tactive count = ${running ? 1 : 0}`,
        `\tpath = ${job.plist}`,
        "\ttype = LaunchDaemon",
        `\tstate = ${running ? "running" : "not running"}`,
        "",
        `\tprogram = ${job.program}`,
        "\targuments = {",
        ...job.programArguments.map((a) => `\t\t${a}`),
        "\t}",
        "",
        `\tdomain = system`,
        `\truns = ${job.runs}`,
        ...(running ? [`\tpid = ${job.pid}`] : []),
        `\tlast exit code = ${job.lastExitCode === null ? "(never exited)" : job.lastExitCode === 78 ? "78: EX_CONFIG" : String(job.lastExitCode)}`,
        "}",
    ];
    return lines.join("\n") + "\n";
}

function print(argv: string[]): number {
    const label = serviceTarget("print", argv[0]);
    if (label === "") throw new Exit(64, "launchctl (lab TEST DOUBLE, scripts/lab/macos): print of the whole system domain is not supported");
    const run = (): number => {
        const s = loadLaunchd();
        if (isRoot()) keepAlive(s);
        const job = s.jobs[label];
        if (isRoot()) {
            record(s, "print", label, job === undefined ? 113 : 0);
            saveLaunchd(s);
        }
        if (job === undefined) notFound(label);
        out.push(printJob(job));
        return 0;
    };
    return isRoot() ? withLock(run) : run();
}

function enableDisable(verb: "enable" | "disable", argv: string[]): number {
    const label = serviceTarget(verb, argv[0]);
    if (label === "") throw new Exit(64, `Usage: launchctl ${verb} <service-target>`);
    if (!isRoot()) throw new Exit(1, `Could not ${verb} service: ${NOT_PERMITTED}`);
    return withLock(() => {
        const s = loadLaunchd();
        s.disabled = s.disabled.filter((l) => l !== label);
        if (verb === "disable") s.disabled.push(label);
        record(s, verb, label, 0);
        saveLaunchd(s);
        return 0;
    });
}

export function launchctl(argv: string[]): number {
    const [sub, ...rest] = argv;
    switch (sub) {
        case "bootstrap":
            return bootstrap(rest);
        case "bootout":
            return bootout(rest);
        case "kickstart":
            return kickstart(rest);
        case "print":
            return print(rest);
        case "kill":
            return killVerb(rest);
        case "enable":
        case "disable":
            return enableDisable(sub, rest);
        case "help":
        case undefined:
            out.push("launchctl (lab TEST DOUBLE, scripts/lab/macos): bootstrap, bootout, kickstart, kill, print, enable, disable of the system domain\n");
            return 0;
        default:
            throw new Exit(64, `Unrecognized subcommand: ${sub}\nUsage: launchctl <subcommand> ... | help [subcommand]`);
    }
}
