/**
 * Removing what lab runs made: one run by id (`teardownLabRun`, what `stop()` and the exit hook
 * do), or every run whose owner is gone (`cleanupStaleLab`). All of it is synchronous and safe
 * to repeat, because it also runs from the process `exit` hook and after a crash.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { BRIDGE_PREFIX, DEFAULT_BASE_DIR, RUN_PREFIX, VETH_PREFIX } from "./constants";
import { listLinks, listNetns, netnsPids, quiet } from "./network";
import { alive, killAll, processesUsing } from "./processes";
import { allRunDirs, ownerLive, readOwner, removeCreatedMountPoints } from "./runDir";

export interface CleanupReport {
    runs: string[];
    namespaces: string[];
    links: string[];
    dirs: string[];
    killedPids: number[];
}

/**
 * Synchronous teardown of one run: kills every process in its namespaces (the hosts' sshd and
 * whatever entered them; the mounts go with the last process of each mount namespace) and every
 * process started from its run directory (the API server and etcd), deletes
 * veths, namespaces and the bridge, removes the run directory and the mount points only it still
 * uses. Returns what it removed; safe to repeat.
 */
export function teardownSync(runId: string, runDir: string | null, extraPids: number[] = []): CleanupReport {
    const report: CleanupReport = { runs: [runId], namespaces: [], links: [], dirs: [], killedPids: [] };
    const namespaces = listNetns().filter((n) => n.startsWith(`${RUN_PREFIX}${runId}-`));
    // The API server and etcd run in the machine's own namespace, from the run directory.
    const daemons = runDir !== null && fs.existsSync(runDir) ? processesUsing(runDir) : [];
    const pids = [...new Set([...extraPids, ...daemons, ...namespaces.flatMap(netnsPids)])];
    report.killedPids = pids.filter(alive);
    killAll(pids);
    // Processes that entered the namespaces after the first sweep (exec/ssh children).
    killAll(namespaces.flatMap(netnsPids));
    const links = listLinks().filter((l) => l.startsWith(`${VETH_PREFIX}${runId}-`) || l === `${BRIDGE_PREFIX}${runId}`);
    for (const l of links.filter((x) => !x.startsWith(BRIDGE_PREFIX))) quiet(["link", "del", l]);
    for (const n of namespaces) quiet(["netns", "del", n]);
    for (const l of links.filter((x) => x.startsWith(BRIDGE_PREFIX))) quiet(["link", "del", l]);
    report.namespaces = namespaces;
    report.links = links;
    if (runDir !== null && fs.existsSync(runDir)) {
        const owner = readOwner(runDir);
        fs.rmSync(runDir, { recursive: true, force: true });
        report.dirs.push(runDir);
        removeCreatedMountPoints(owner?.createdDirs ?? [], path.dirname(runDir));
        if (path.dirname(runDir) === DEFAULT_BASE_DIR) {
            try {
                fs.rmdirSync(DEFAULT_BASE_DIR); // when no other run is left
            } catch {
                // other runs still there
            }
        }
    }
    return report;
}

/**
 * Removes everything lab run `runId` made (processes, namespaces and with them its mounts, links,
 * the bridge, the run directory, mount points no other run uses), whether its owner is alive or
 * not: `npm run lab -- down`. The run directory is looked for in the default base directory, the
 * temp directory and `baseDir`. A second call finds nothing and reports nothing.
 */
export function teardownLabRun(runId: string, opts: { baseDir?: string } = {}): CleanupReport {
    if (!/^[0-9a-f]{6}$/.test(runId)) throw new Error(`lab fleet: not a run id: ${JSON.stringify(runId)} (6 hex digits)`);
    const runDir = allRunDirs(opts.baseDir).find((d) => path.basename(d) === `${RUN_PREFIX}${runId}`) ?? null;
    const report = teardownSync(runId, runDir);
    if (runDir === null) report.dirs = [];
    if (report.namespaces.length === 0 && report.links.length === 0 && report.dirs.length === 0 && report.killedPids.length === 0) report.runs = [];
    return report;
}

/**
 * Removes what crashed lab runs left behind: namespaces `sc-lab-<run>-*`, links
 * `sc-br-<run>`/`sc-v<run>-*` and run directories, for every run whose owner process is gone.
 * Runs of live processes (parallel test runs) are left alone.
 */
export function cleanupStaleLab(opts: { baseDir?: string } = {}): Promise<CleanupReport> {
    const baseDirs = [...new Set([opts.baseDir ?? DEFAULT_BASE_DIR, DEFAULT_BASE_DIR, os.tmpdir()])];
    const total: CleanupReport = { runs: [], namespaces: [], links: [], dirs: [], killedPids: [] };
    const liveRuns = new Set<string>();
    const staleRuns = new Map<string, string | null>();
    for (const base of baseDirs) {
        let entries: string[] = [];
        try {
            entries = fs.readdirSync(base).filter((d) => d.startsWith(RUN_PREFIX));
        } catch {
            continue;
        }
        for (const d of entries) {
            const runId = d.slice(RUN_PREFIX.length);
            const dir = path.join(base, d);
            const owner = readOwner(dir);
            let young = false;
            try {
                young = owner === null && Date.now() - fs.statSync(dir).mtimeMs < 60_000;
            } catch {
                young = false;
            }
            if ((owner !== null && ownerLive(owner)) || young) liveRuns.add(runId);
            else staleRuns.set(runId, dir);
        }
    }
    const idOf = (name: string, prefix: string): string | null => {
        if (!name.startsWith(prefix)) return null;
        const m = /^([0-9a-f]{6})/.exec(name.slice(prefix.length));
        return m ? (m[1] ?? null) : null;
    };
    for (const n of listNetns()) {
        const id = idOf(n, RUN_PREFIX);
        if (id !== null && !liveRuns.has(id) && !staleRuns.has(id)) staleRuns.set(id, null);
    }
    for (const l of listLinks()) {
        const id = idOf(l, BRIDGE_PREFIX) ?? idOf(l, VETH_PREFIX);
        if (id !== null && !liveRuns.has(id) && !staleRuns.has(id)) staleRuns.set(id, null);
    }
    for (const [runId, dir] of staleRuns) {
        const r = teardownSync(runId, dir);
        total.runs.push(runId);
        total.namespaces.push(...r.namespaces);
        total.links.push(...r.links);
        total.dirs.push(...r.dirs);
        total.killedPids.push(...r.killedPids);
    }
    return Promise.resolve(total);
}
