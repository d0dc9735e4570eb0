/**
 * `lab down`: removes a lab the lab command made — the keeper (whose stop() removes the fleet and
 * the API server), then, whatever the keeper managed, the fleet run by id, kube-apiserver and
 * etcd by recorded pid, and the session directory. Each part is idempotent, so `down` after a
 * crash, a kill -9 of the keeper or a half-finished `up` still leaves nothing.
 */
import * as fs from "node:fs";
import { killAll, sleepSync } from "../processes";
import { cleanupStaleLab, teardownLabRun } from "../teardown";
import { listSessionDirs, readSession, readStarted, sameProcess, type LabShapeName } from "./record";

export interface DownReport {
    stack: LabShapeName | "runs whose owner is gone";
    removed: string[];
}

const KEEPER_STOP_MS = 90_000;

export function takeDown(dir: string, stack: LabShapeName): DownReport {
    const removed: string[] = [];
    const record = readSession(dir);
    if (record && sameProcess(record.keeperPid, record.keeperStart)) {
        process.kill(record.keeperPid, "SIGTERM");
        const deadline = Date.now() + KEEPER_STOP_MS;
        while (sameProcess(record.keeperPid, record.keeperStart) && Date.now() < deadline) sleepSync(100);
        if (sameProcess(record.keeperPid, record.keeperStart)) killAll([record.keeperPid]);
        removed.push(`keeper pid ${record.keeperPid}`);
    }
    // A keeper that died before its record still left started.json: the run id as soon as the
    // fleet existed, the API server's pids as soon as it ran. Its stop() may have removed them
    // already; each removal below is a no-op then.
    const started = readStarted(dir);
    const runId = record?.runId ?? started.runId;
    if (runId) {
        const report = teardownLabRun(runId);
        if (report.runs.length > 0)
            removed.push(`fleet run ${runId}: ${report.namespaces.length} namespaces, ${report.links.length} links, ${report.killedPids.length} processes`);
    }
    const recorded = record?.apiServerPids ?? [];
    const apiPids = [
        ...recorded.filter((entry) => sameProcess(entry.pid, entry.start)).map((entry) => entry.pid),
        // Unrecorded start times: only a pid still running the API server or etcd binary counts.
        ...(started.apiServerPids ?? []).filter((pid) => !recorded.some((entry) => entry.pid === pid) && runsApiServer(pid)),
    ];
    if (apiPids.length > 0) {
        killAll(apiPids);
        removed.push(`API server pids ${apiPids.join(", ")}`);
    }
    // Whatever still runs on the session's files (an etcd or kube-apiserver a killed keeper had
    // just spawned, before it could say their pids).
    const strays = processesUsing(dir);
    if (strays.length > 0) {
        killAll(strays);
        removed.push(`processes ${strays.join(", ")} using ${dir}`);
    }
    if (fs.existsSync(dir)) {
        fs.rmSync(dir, { recursive: true, force: true });
        removed.push(dir);
    }
    return { stack, removed };
}

function processesUsing(dir: string): number[] {
    return fs
        .readdirSync("/proc")
        .filter((entry) => /^\d+$/.test(entry) && Number(entry) !== process.pid)
        .map(Number)
        .filter((pid) => {
            try {
                return fs
                    .readFileSync(`/proc/${pid}/cmdline`, "utf8")
                    .split("\0")
                    .some((arg) => arg.includes(`${dir}/`));
            } catch {
                return false;
            }
        });
}

function runsApiServer(pid: number): boolean {
    try {
        return /(^|\/)(kube-apiserver|etcd)$/.test(fs.readlinkSync(`/proc/${pid}/exe`));
    } catch {
        return false;
    }
}

/** Takes down the named stacks' labs (or all), then any fleet run whose owner died before it said its run id. */
export async function down(stacks: LabShapeName[] | "all"): Promise<DownReport[]> {
    const reports = listSessionDirs()
        .filter((session) => stacks === "all" || stacks.includes(session.stack))
        .map((session) => takeDown(session.dir, session.stack));
    const stale = await cleanupStaleLab();
    if (stale.runs.length > 0) reports.push({ stack: "runs whose owner is gone", removed: stale.runs.map((run) => `fleet run ${run}`) });
    return reports;
}
