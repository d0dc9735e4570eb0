/**
 * Where a lab the lab command brought up lives, and the record that finds it again: one
 * directory per stack, `/run/sc-lab/lab-<stack>/` (root only, on tmpfs like the namespaces, so a
 * reboot loses both together). It holds the stack's project, file backend and PULUMI_HOME, the
 * keeper's log, the SSH files an operator uses, and `session.json`. The fleet itself has its own
 * run directory (`/run/sc-lab/sc-lab-<run>`), which `teardownLabRun` removes.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DEFAULT_BASE_DIR } from "../constants";
import { procStartTime } from "../processes";

/** The stack shapes the lab command brings up: the committed stack files it derives from. */
export const LAB_SHAPES = ["lab", "prod"] as const;
export type LabShapeName = (typeof LAB_SHAPES)[number];

const SESSION_PREFIX = "lab-";

export interface SessionHost {
    name: string;
    lanAddress: string;
    role: string;
}

export interface SessionRecord {
    stack: LabShapeName;
    /** The fleet's run id (teardownLabRun). */
    runId: string;
    /** The process that owns the fleet and the API server (scripts/lab/session/keeper.ts). */
    keeperPid: number;
    keeperStart: string | null;
    /** kube-apiserver and etcd, with their start times (they live outside the namespaces). */
    apiServerPids: { pid: number; start: string | null }[];
    apiServerUrl: string | null;
    startedAt: string;
    projectDir: string;
    backendDir: string;
    pulumiHome: string;
    passphrase: string;
    /** `export …` lines for a shell (also written to env.sh). */
    env: Record<string, string>;
    pulumiBin: string;
    hosts: SessionHost[];
    control: string;
    /** What the derived stack file changed from the committed one. */
    changes: string[];
    /** How each provider plugin was chosen (the first line `lab up` printed). */
    plugins: string;
}

export function sessionDir(stack: LabShapeName, baseDir: string = DEFAULT_BASE_DIR): string {
    return path.join(baseDir, `${SESSION_PREFIX}${stack}`);
}

export const sessionFiles = (dir: string) => ({
    record: path.join(dir, "session.json"),
    started: path.join(dir, "started.json"),
    log: path.join(dir, "keeper.log"),
    env: path.join(dir, "env.sh"),
    sshConfig: path.join(dir, "ssh_config"),
    knownHosts: path.join(dir, "known_hosts"),
    identity: path.join(dir, "id_lab"),
});

export function readSession(dir: string): SessionRecord | null {
    try {
        return JSON.parse(fs.readFileSync(sessionFiles(dir).record, "utf8")) as SessionRecord;
    } catch {
        return null;
    }
}

/** Written once the lab is up; temp file + rename, so a reader never sees half of it. */
export function writeSession(dir: string, record: SessionRecord): void {
    const file = sessionFiles(dir).record;
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(record, null, 2), { mode: 0o600 });
    fs.renameSync(`${file}.tmp`, file);
}

/** Every session directory under baseDir, by stack. */
export function listSessionDirs(baseDir: string = DEFAULT_BASE_DIR): { stack: LabShapeName; dir: string }[] {
    let names: string[] = [];
    try {
        names = fs.readdirSync(baseDir);
    } catch {
        return [];
    }
    return LAB_SHAPES.filter((stack) => names.includes(`${SESSION_PREFIX}${stack}`)).map((stack) => ({ stack, dir: sessionDir(stack, baseDir) }));
}

/** The pid is the same process that was recorded (not a reused pid). */
export function sameProcess(pid: number, start: string | null): boolean {
    return pid > 0 && start !== null && procStartTime(pid) === start;
}

/** What exists before the record does (the keeper writes it as each part starts), so `down` finds it after a crash. */
export interface StartedParts {
    runId?: string;
    apiServerPids?: number[];
}

export function writeStarted(dir: string, parts: StartedParts): void {
    const file = sessionFiles(dir).started;
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(parts), { mode: 0o600 });
    fs.renameSync(`${file}.tmp`, file);
}

export function readStarted(dir: string): StartedParts {
    try {
        return JSON.parse(fs.readFileSync(sessionFiles(dir).started, "utf8")) as StartedParts;
    } catch {
        return {};
    }
}
