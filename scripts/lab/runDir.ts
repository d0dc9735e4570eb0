/**
 * A run's directory and its owner file. owner.json names the owning process (pid + start time)
 * and everything the run created outside its directory, so a later run or `teardownLabRun` can
 * remove a killed run's leftovers without touching a live one.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { BRIDGE_PREFIX, DEFAULT_BASE_DIR, LAB_PRIVATE_DIRS, MACHINE_PRIVATE_DIRS, MACOS_PRIVATE_DIRS, RUN_PREFIX } from "./constants";
import { procStartTime } from "./processes";

export interface OwnerFile {
    runId: string;
    pid: number;
    pidStart: string | null;
    createdAt: string;
    bridge: string;
    netns: string[];
    links: string[];
    createdDirs: string[];
}

export function ownerLive(o: OwnerFile): boolean {
    return o.pid > 0 && procStartTime(o.pid) === o.pidStart && o.pidStart !== null;
}

export function readOwner(runDir: string): OwnerFile | null {
    try {
        return JSON.parse(fs.readFileSync(path.join(runDir, "owner.json"), "utf8")) as OwnerFile;
    } catch {
        return null;
    }
}

/** Atomic (temp file + rename): teardown may read it from the exit hook at any moment. */
export function writeOwner(runDir: string, o: OwnerFile): void {
    const tmp = path.join(runDir, `owner.json.tmp-${process.pid}`);
    fs.writeFileSync(tmp, JSON.stringify(o, null, 2));
    fs.renameSync(tmp, path.join(runDir, "owner.json"));
}

/** Run directories of all lab runs in the known base dirs. */
export function allRunDirs(extraBase?: string): string[] {
    const bases = [...new Set([DEFAULT_BASE_DIR, os.tmpdir(), ...(extraBase !== undefined ? [extraBase] : [])])];
    return bases.flatMap((b) => {
        try {
            return fs
                .readdirSync(b)
                .filter((d) => d.startsWith(RUN_PREFIX))
                .map((d) => path.join(b, d));
        } catch {
            return [];
        }
    });
}

/**
 * rmdir the empty mount points a run created (or inherited from the run that created them),
 * unless another lab run may still use them.
 */
export function removeCreatedMountPoints(dirs: string[], baseDir: string): void {
    if (dirs.length === 0) return;
    if (allRunDirs(baseDir).length > 0) return;
    for (const d of [...dirs].reverse()) {
        try {
            fs.rmdirSync(d);
        } catch {
            // not empty or in use: leave it
        }
    }
}

/** A fresh run directory `<baseDir>/sc-lab-<6 hex>` with its owner file (random ids; retried on a clash). */
export function createRunDir(baseDir: string): { runId: string; runDir: string; owner: OwnerFile } {
    fs.mkdirSync(baseDir, { recursive: true, mode: 0o700 });
    let runId = "";
    let runDir = "";
    for (let i = 0; i < 20; i++) {
        runId = crypto.randomBytes(3).toString("hex");
        runDir = path.join(baseDir, `${RUN_PREFIX}${runId}`);
        try {
            fs.mkdirSync(runDir, { mode: 0o700 });
            break;
        } catch {
            runDir = "";
        }
    }
    if (runDir === "") throw new Error("lab fleet: could not create a run directory");
    const owner: OwnerFile = {
        runId,
        pid: process.pid,
        pidStart: procStartTime(process.pid),
        createdAt: new Date().toISOString(),
        bridge: `${BRIDGE_PREFIX}${runId}`,
        netns: [],
        links: [],
        createdDirs: [],
    };
    writeOwner(runDir, owner);
    return { runId, runDir, owner };
}

/**
 * Creates the empty mount points the hosts bind over (the binds exist only in the hosts' mount
 * namespaces) and records in the owner file which ones this run created, or shares with the run
 * that created them: whichever run stops last removes them.
 */
export function claimMountPoints(owner: OwnerFile, runDir: string, baseDir: string, machine: boolean, macos = false): void {
    const createdByOthers = new Set(
        allRunDirs(baseDir)
            .filter((d) => d !== runDir)
            .flatMap((d) => readOwner(d)?.createdDirs ?? []),
    );
    const machineDirs = [...(machine ? MACHINE_PRIVATE_DIRS : []), ...(macos ? MACOS_PRIVATE_DIRS : [])];
    for (const d of ["/etc/rancher", "/var/lib/rancher", ...LAB_PRIVATE_DIRS, ...machineDirs, "/run/sshd"]) {
        if (!fs.existsSync(d)) {
            const first = fs.mkdirSync(d, { recursive: true, mode: 0o755 });
            if (d === "/run/sshd") continue;
            // Every directory this created, parents first (removal goes in reverse).
            const created: string[] = [];
            for (let p = d; first !== undefined && p.length >= first.length && p !== "/"; p = path.dirname(p)) created.unshift(p);
            for (const c of created) if (!owner.createdDirs.includes(c)) owner.createdDirs.push(c);
        } else if (createdByOthers.has(d)) {
            owner.createdDirs.push(d); // whichever run stops last removes it
        }
    }
    for (const d of createdByOthers) {
        if (!owner.createdDirs.includes(d) && fs.existsSync(d)) owner.createdDirs.push(d); // parents created by another run
    }
    writeOwner(runDir, owner);
}
