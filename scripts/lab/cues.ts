/**
 * The files the harness and the doubles share in a host's /var/lib/rancher/k3s-test-double: cues
 * the harness writes (the double reads them on every call) and state and logs it reads back.
 * Writes are atomic (temp file + rename): a double may read at any moment.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { DoubleState, InvocationRecord, K3sBehaviourCue, NodeRecord, ServiceBehaviourCue, ServiceManagerState } from "./k3s-double/types";
import type { ToolInvocation, ToolState } from "./service-doubles/types";
import type { K3sBehaviour, ServiceBehaviour } from "./types";

export function readJsonFile<T>(file: string, fallback: T): T {
    try {
        return JSON.parse(fs.readFileSync(file, "utf8")) as T;
    } catch {
        return fallback;
    }
}

export function writeJsonFile(file: string, value: unknown): void {
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(value, null, 2));
    fs.renameSync(tmp, file);
}

/** "nebula" -> "nebula.service" (the stand-in's unit naming). */
export function fullUnitName(u: string): string {
    return /\.(service|socket|timer|target|path|mount|slice)$/.test(u) ? u : `${u}.service`;
}

/** Orders failRestarts cues: the double starts a fresh count when the generation changes. */
let serviceCueGen = 0;

/** Merges one unit's cue into service-cue.json. */
export function writeServiceCue(stateDir: string, unit: string, behaviour: ServiceBehaviour): void {
    const file = path.join(stateDir, "service-cue.json");
    const all = readJsonFile<Record<string, Partial<ServiceBehaviourCue>>>(file, {});
    const name = fullUnitName(unit);
    const current: ServiceBehaviourCue = { failRestarts: 0, exitAtStart: false, exitAfterMs: 0, gen: 0, ...(all[name] ?? {}) };
    const next: ServiceBehaviourCue = { ...current, ...behaviour };
    if (behaviour.failRestarts !== undefined) next.gen = Date.now() * 1000 + (serviceCueGen++ % 1000);
    all[name] = next;
    writeJsonFile(file, all);
}

/** services.json with exitAtStart deaths applied as of now (same rule as the double). */
export function readServiceState(stateDir: string): ServiceManagerState | null {
    const st = readJsonFile<ServiceManagerState | null>(path.join(stateDir, "services.json"), null);
    if (st === null) return null;
    const nowUs = Number(process.hrtime.bigint() / 1000n);
    for (const u of Object.values(st.units)) {
        if (u.status === "active" && u.diesAtMonoUs !== null && nowUs >= u.diesAtMonoUs) {
            u.status = "failed";
            u.result = "exit-code";
            u.failureCount += 1;
            u.inactiveEnterMonoUs = u.diesAtMonoUs;
            u.inactiveEnterMs = Date.now() - Math.round((nowUs - u.diesAtMonoUs) / 1000);
            u.diesAtMonoUs = null;
        }
    }
    return st;
}

export function writeCue(stateDir: string, behaviour: K3sBehaviour): void {
    const file = path.join(stateDir, "cue.json");
    let current: Partial<K3sBehaviourCue> = {};
    try {
        current = JSON.parse(fs.readFileSync(file, "utf8")) as Partial<K3sBehaviourCue>;
    } catch {
        current = {};
    }
    const next = { ...current, ...behaviour };
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(next, null, 2));
    fs.renameSync(tmp, file);
}

/** JSON lines of a log the doubles append to ([] when absent). */
function readJsonLines<T>(file: string): T[] {
    try {
        return fs
            .readFileSync(file, "utf8")
            .split("\n")
            .filter((l) => l !== "")
            .map((l) => JSON.parse(l) as T);
    } catch {
        return [];
    }
}

export function readToolInvocations(stateDir: string): ToolInvocation[] {
    return readJsonLines<ToolInvocation>(path.join(stateDir, "tools.log"));
}

export function readToolState(stateDir: string): ToolState {
    return readJsonFile<ToolState>(path.join(stateDir, "tool-state.json"), { owners: {} });
}

export function readK3sState(stateDir: string): DoubleState | null {
    try {
        return JSON.parse(fs.readFileSync(path.join(stateDir, "state.json"), "utf8")) as DoubleState;
    } catch {
        return null;
    }
}

export function readK3sInvocations(stateDir: string): InvocationRecord[] {
    return readJsonLines<InvocationRecord>(path.join(stateDir, "invocations.log"));
}

/** The cluster's node records (the double's API-server shortcut), by name. */
export function readClusterNodes(clusterDir: string): NodeRecord[] {
    const dir = path.join(clusterDir, "nodes");
    return fs
        .readdirSync(dir)
        .filter((f) => f.endsWith(".json"))
        .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as NodeRecord)
        .sort((a, b) => a.name.localeCompare(b.name));
}
