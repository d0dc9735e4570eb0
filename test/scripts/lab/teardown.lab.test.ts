/**
 * teardownLabRun (scripts/lab/teardown.ts): what `npm run lab -- down` will call. A small fleet
 * with a process left running inside a host, and one started from its run directory outside its
 * namespaces (as the lab's API server is), is torn down by run id alone, and nothing of the run
 * is left: no namespace, process, mount, link, bridge or file; a second teardown finds nothing.
 * Needs root and Debian's openssh-server/openssh-client/iproute2 (scripts/setup.sh).
 */
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { checkLabPrerequisites, startLabFleet, teardownLabRun, type LabFleet } from "../../../scripts/lab";

jest.setTimeout(60_000);

function netnsNames(): string[] {
    return execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
        .split("\n")
        .map((l) => l.split(" ")[0] ?? "")
        .filter((n) => n !== "");
}

function linkNames(): string[] {
    return (JSON.parse(execFileSync("ip", ["-j", "link", "show"], { encoding: "utf8" })) as { ifname: string }[]).map((l) => l.ifname);
}

function pidAlive(pid: number): boolean {
    try {
        return !/^\S+ \(.*\) [ZX] /.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
    } catch {
        return false;
    }
}

/** Processes whose mount table mentions `needle` (a host's mounts live only in its own mount namespace). */
function processesMounting(needle: string): number[] {
    return fs
        .readdirSync("/proc")
        .filter((d) => /^\d+$/.test(d))
        .filter((d) => {
            try {
                return fs.readFileSync(`/proc/${d}/mountinfo`, "utf8").includes(needle);
            } catch {
                return false; // gone meanwhile
            }
        })
        .map(Number);
}

describe("teardownLabRun", () => {
    let fleet: LabFleet | undefined;

    afterAll(async () => {
        await fleet?.stop();
    });

    test("removes every namespace, process, mount, link and file of a run, and a second call is a no-op", async () => {
        const problems = checkLabPrerequisites();
        if (problems.length > 0) throw new Error(`lab fleet prerequisites missing: ${problems.join("; ")}; run scripts/setup.sh`);
        fleet = await startLabFleet({
            hosts: [
                { name: "down-cp-01", role: "server", initialConfig: YAML.stringify({ "cluster-init": true }), k3sBehaviour: { readyDelayMs: 0 } },
                { name: "down-wk-01", role: "agent", tailnetAddress: "100.67.0.2", nebulaAddress: "10.67.0.2" },
            ],
        });
        const f = fleet;
        const owner = JSON.parse(fs.readFileSync(path.join(f.runDir, "owner.json"), "utf8")) as { createdDirs: string[] };
        // A process the run did not start itself: teardown finds it by its network namespace.
        const started = await f.exec("down-wk-01", "setsid sleep 300 >/dev/null 2>&1 < /dev/null & echo $!", { check: true, timeoutMs: 10_000 });
        const stray = Number(started.stdout.trim());
        // A daemon in the machine's own namespace started from the run directory, as the lab's API
        // server and etcd are (--data-dir=<run>/apiserver/etcd): no namespace leads to it.
        const daemon = spawn(process.execPath, ["-e", "setTimeout(() => undefined, 300_000)", "--", `--data-dir=${path.join(f.runDir, "apiserver", "etcd")}`], {
            stdio: "ignore",
            detached: true,
        });
        daemon.unref();
        const pids = [...f.hosts.map((h) => h.pid), stray, daemon.pid ?? -1];
        for (const pid of pids) expect(pidAlive(pid)).toBe(true);
        expect(processesMounting(f.runDir).length).toBeGreaterThan(0);
        expect(netnsNames()).toEqual(expect.arrayContaining(f.hosts.map((h) => h.netns)));
        expect(linkNames()).toContain(f.bridge);

        const report = teardownLabRun(f.runId);
        expect(report.runs).toEqual([f.runId]);
        expect([...report.namespaces].sort()).toEqual(f.hosts.map((h) => h.netns).sort());
        expect(report.links).toContain(f.bridge);
        expect(report.dirs).toEqual([f.runDir]);
        expect(report.killedPids).toEqual(expect.arrayContaining(pids));

        const namespaces = netnsNames();
        for (const h of f.hosts) expect(namespaces).not.toContain(h.netns);
        expect(linkNames().filter((l) => l.includes(f.runId))).toEqual([]);
        for (const pid of pids) expect(pidAlive(pid)).toBe(false);
        expect(processesMounting(f.runDir)).toEqual([]);
        expect(fs.existsSync(f.runDir)).toBe(false);
        const otherRuns = fs.existsSync("/run/sc-lab") ? fs.readdirSync("/run/sc-lab").filter((d) => d.startsWith("sc-lab-")) : [];
        // The mount points only this run created are gone (a concurrent run keeps the shared ones).
        if (otherRuns.length === 0) for (const d of owner.createdDirs) expect(fs.existsSync(d)).toBe(false);

        expect(teardownLabRun(f.runId)).toEqual({ runs: [], namespaces: [], links: [], dirs: [], killedPids: [] });
        await expect(f.stop()).resolves.toBeUndefined();
        expect(() => teardownLabRun("../etc")).toThrow("not a run id");
    });
});
