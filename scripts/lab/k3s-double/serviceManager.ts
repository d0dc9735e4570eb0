/**
 * Service-manager stand-in (TEST DOUBLE, not systemd) for every unit but k3s/k3s-agent:
 * unit state, cues, journal lines and daemon-reload.
 *
 * A unit exists when its file is in the host's (private) /etc/systemd/system. Nothing is
 * executed: ExecStart is never run; the unit's state lives in services.json and follows the
 * cues in service-cue.json (failRestarts, exitAtStart/exitAfterMs). Every call is recorded
 * as a ServiceEvent with the double's wall clock and CLOCK_MONOTONIC (µs, what systemd's
 * *TimestampMonotonic properties use). daemon-reload snapshots the unit files' sha256; a
 * start of a unit whose file changed since then warns like systemd and keeps the old sha.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { STATE_DIR } from "./constants";
import type { DoubleHostConfig, ServiceBehaviourCue, ServiceManagerState, ServiceUnitState } from "./types";
import { readJson, sha256, withLock, writeJsonAtomic } from "./util";

export const UNIT_DIR = "/etc/systemd/system";
export const K3S_UNITS = ["k3s", "k3s-agent"];
export const SERVICE_EVENT_LIMIT = 5000;
export const SERVICE_VERBS = [
    "start",
    "restart",
    "try-restart",
    "reload-or-restart",
    "force-reload",
    "reload",
    "stop",
    "enable",
    "disable",
    "is-active",
    "is-failed",
    "is-enabled",
    "reset-failed",
    "status",
    "show",
];
export const DEFAULT_SERVICE_CUE: ServiceBehaviourCue = { failRestarts: 0, exitAtStart: false, exitAfterMs: 0, gen: 0 };

export function isK3sUnit(u: string): boolean {
    return K3S_UNITS.includes(unitName(u));
}

/** "nebula" -> "nebula.service"; names with a unit suffix are kept. */
export function fullUnit(u: string): string {
    return /\.(service|socket|timer|target|path|mount|slice)$/.test(u) ? u : `${u}.service`;
}

export function monoUs(): number {
    return Number(process.hrtime.bigint() / 1000n);
}

export function systemdTime(ms: number | null): string {
    if (ms === null) return "";
    const d = new Date(ms);
    const day = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][d.getUTCDay()] ?? "";
    return `${day} ${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 19)} UTC`;
}

export function unitFileText(unit: string): string | null {
    try {
        return fs.readFileSync(path.join(UNIT_DIR, unit), "utf8");
    } catch {
        return null;
    }
}

export function unitDescription(unit: string): string {
    const m = /^Description=(.*)$/m.exec(unitFileText(unit) ?? "");
    return m?.[1]?.trim() ?? unit;
}

export function servicesPath(): string {
    return path.join(STATE_DIR, "services.json");
}

export function loadServices(): ServiceManagerState {
    const s = readJson<Partial<ServiceManagerState>>(servicesPath(), {});
    return { units: s.units ?? {}, daemonReloads: s.daemonReloads ?? 0, events: s.events ?? [] };
}

export function serviceCue(unit: string): ServiceBehaviourCue {
    const all = readJson<Record<string, Partial<ServiceBehaviourCue>>>(path.join(STATE_DIR, "service-cue.json"), {});
    return { ...DEFAULT_SERVICE_CUE, ...(all[unit] ?? {}) };
}

export function newUnitState(unit: string): ServiceUnitState {
    return {
        unit,
        status: "inactive",
        result: "success",
        enabled: false,
        activeEnterMs: null,
        activeEnterMonoUs: null,
        inactiveEnterMs: null,
        inactiveEnterMonoUs: null,
        diesAtMonoUs: null,
        startCount: 0,
        restartCount: 0,
        stopCount: 0,
        failureCount: 0,
        loadedSha256: null,
        cueGen: 0,
        cueFailuresUsed: 0,
    };
}

export function serviceLog(host: DoubleHostConfig, unit: string, msg: string, atMs = Date.now()): void {
    fs.mkdirSync(STATE_DIR, { recursive: true });
    fs.appendFileSync(path.join(STATE_DIR, "services.log"), `${new Date(atMs).toISOString()} ${host.hostName} systemd-test-double[1]: ${unit}: ${msg}\n`);
}

/** An exitAtStart unit whose time has come is failed from then on. */
export function applyDeath(host: DoubleHostConfig, u: ServiceUnitState, nowUs: number): void {
    if (u.status !== "active" || u.diesAtMonoUs === null || nowUs < u.diesAtMonoUs) return;
    const diedMs = Date.now() - Math.max(0, Math.round((nowUs - u.diesAtMonoUs) / 1000));
    u.status = "failed";
    u.result = "exit-code";
    u.failureCount += 1;
    u.inactiveEnterMonoUs = u.diesAtMonoUs;
    u.inactiveEnterMs = diedMs;
    u.diesAtMonoUs = null;
    serviceLog(host, u.unit, "Main process exited, code=exited, status=1/FAILURE (exitAtStart cue)", diedMs);
    serviceLog(host, u.unit, "Failed with result 'exit-code'.", diedMs);
}

export interface SystemctlFlags {
    quiet: boolean;
    value: boolean;
    props: string[];
    now: boolean;
    /** --no-reload: enable and disable leave the manager's loaded units as they are. */
    noReload: boolean;
}

/** What a reload of the manager does to the stand-in's state: every unit file is read again. */
export function reloadUnitFiles(st: ServiceManagerState): void {
    st.daemonReloads += 1;
    let files: string[] = [];
    try {
        files = fs.readdirSync(UNIT_DIR).filter((f) => fs.statSync(path.join(UNIT_DIR, f)).isFile());
    } catch {
        files = [];
    }
    for (const f of files) {
        if (isK3sUnit(f)) continue;
        const u = st.units[f] ?? newUnitState(f);
        u.loadedSha256 = sha256(unitFileText(f) ?? "");
        st.units[f] = u;
    }
}

/** The reload `systemctl enable`/`disable` do by themselves: no daemon-reload call in the records. */
export function serviceManagerReload(): void {
    withLock(STATE_DIR, () => {
        const st = loadServices();
        reloadUnitFiles(st);
        writeJsonAtomic(servicesPath(), st);
    });
}

export function serviceDaemonReload(): void {
    withLock(STATE_DIR, () => {
        const st = loadServices();
        reloadUnitFiles(st);
        st.events.push({ unit: "", verb: "daemon-reload", atMs: Date.now(), monoUs: monoUs(), exitCode: 0, result: "active" });
        st.events = st.events.slice(-SERVICE_EVENT_LIMIT);
        writeJsonAtomic(servicesPath(), st);
    });
}

export function unitName(u: string): string {
    return u.replace(/\.service$/, "");
}
