/**
 * The service-manager stand-in's systemctl verbs, one unit at a time, with systemd's words
 * and exit codes.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { STATE_DIR } from "./constants";
import {
    SERVICE_EVENT_LIMIT,
    UNIT_DIR,
    applyDeath,
    loadServices,
    monoUs,
    newUnitState,
    reloadUnitFiles,
    serviceCue,
    serviceLog,
    servicesPath,
    systemdTime,
    unitDescription,
    unitFileText,
} from "./serviceManager";
import type { SystemctlFlags } from "./serviceManager";
import type { DoubleHostConfig, ServiceEvent } from "./types";
import { complain, say, sha256, unsupported, writeJsonAtomic } from "./util";

export function serviceOne(host: DoubleHostConfig, cmd: string, unit: string, flags: SystemctlFlags): number {
    const st = loadServices();
    const nowUs = monoUs();
    const text = unitFileText(unit);
    const exists = text !== null;
    const u = st.units[unit] ?? newUnitState(unit);
    applyDeath(host, u, nowUs);
    const event: ServiceEvent = { unit, verb: cmd, atMs: Date.now(), monoUs: nowUs, exitCode: 0, result: u.status };
    const known = exists || st.units[unit] !== undefined;

    const load = (): void => {
        // systemd loads a unit on first use; later edits need daemon-reload.
        const current = sha256(text ?? "");
        if (u.loadedSha256 === null) u.loadedSha256 = current;
        else if (u.loadedSha256 !== current) {
            complain(
                `Warning: The unit file, source configuration file or drop-ins of ${unit} changed on disk. Run 'systemctl daemon-reload' to reload units.`,
            );
            event.staleUnitFile = true;
        }
        event.unitFileSha256 = u.loadedSha256;
    };
    const startAttempt = (action: "start" | "restart"): number => {
        load();
        const cue = serviceCue(unit);
        if (cue.gen !== u.cueGen) {
            u.cueGen = cue.gen;
            u.cueFailuresUsed = 0;
        }
        const t = monoUs();
        const tMs = Date.now();
        // The event's time is when the (re)start took effect: equals ActiveEnterTimestampMonotonic.
        event.monoUs = t;
        event.atMs = tMs;
        if (u.status === "active") {
            u.inactiveEnterMonoUs = t;
            u.inactiveEnterMs = tMs;
            serviceLog(host, unit, "Stopping (restart).");
        }
        if (action === "restart") u.restartCount += 1;
        u.startCount += 1;
        u.diesAtMonoUs = null;
        if (u.cueFailuresUsed < cue.failRestarts) {
            u.cueFailuresUsed += 1;
            u.status = "failed";
            u.result = "exit-code";
            u.failureCount += 1;
            u.inactiveEnterMonoUs = t;
            u.inactiveEnterMs = tMs;
            serviceLog(host, unit, `Control process exited, code=exited, status=1/FAILURE (failRestarts cue, ${u.cueFailuresUsed}/${cue.failRestarts})`);
            complain(`Job for ${unit} failed because the control process exited with error code.`);
            complain(`See "systemctl status ${unit}" and "journalctl -xeu ${unit}" for details.`);
            return 1;
        }
        u.status = "active";
        u.result = "success";
        u.activeEnterMonoUs = t;
        u.activeEnterMs = tMs;
        if (cue.exitAtStart) u.diesAtMonoUs = t + Math.max(0, cue.exitAfterMs) * 1000;
        serviceLog(host, unit, `Started ${unitDescription(unit)} (test double: nothing runs${cue.exitAtStart ? `; exits after ${cue.exitAfterMs} ms` : ""}).`);
        return 0;
    };
    const notFound = (verb: string): number => {
        complain(`Failed to ${verb} ${unit}: Unit ${unit} not found.`);
        return 5;
    };

    let code = 0;
    switch (cmd) {
        case "start":
        case "restart":
        case "try-restart":
        case "reload-or-restart":
        case "force-reload":
            if (!exists) code = notFound(cmd === "start" ? "start" : "restart");
            else if (cmd === "start" && u.status === "active") {
                load();
                event.noop = true;
            } else if (cmd === "try-restart" && u.status !== "active") event.noop = true;
            else code = startAttempt(cmd === "start" ? "start" : "restart");
            break;
        case "reload":
            if (!exists) code = notFound("reload");
            else if (u.status !== "active") {
                complain(`Failed to reload ${unit}: Job type reload is not applicable for unit ${unit}.`);
                code = 1;
            } else {
                load();
                serviceLog(host, unit, "Reloaded (test double: nothing runs).");
            }
            break;
        case "stop":
            if (!known) code = notFound("stop");
            else {
                if (u.status === "active") {
                    u.inactiveEnterMonoUs = monoUs();
                    u.inactiveEnterMs = Date.now();
                    serviceLog(host, unit, "Stopped.");
                }
                u.stopCount += 1;
                u.status = "inactive";
                u.diesAtMonoUs = null;
            }
            break;
        case "enable":
        case "disable":
            if (!exists) {
                complain(`Failed to ${cmd} unit: Unit file ${unit} does not exist.`);
                code = 1;
                break;
            }
            if (cmd === "enable" && !u.enabled && !flags.quiet)
                complain(`Created symlink /etc/systemd/system/multi-user.target.wants/${unit} → /etc/systemd/system/${unit}. (test double: no symlink)`);
            if (cmd === "disable" && u.enabled && !flags.quiet)
                complain(`Removed "/etc/systemd/system/multi-user.target.wants/${unit}". (test double: no symlink)`);
            u.enabled = cmd === "enable";
            // systemctl enable and disable reload the manager afterwards unless --no-reload.
            if (!flags.noReload) {
                st.units[unit] = u;
                reloadUnitFiles(st);
            }
            if (flags.now) {
                if (cmd === "enable") code = u.status === "active" ? 0 : startAttempt("start");
                else if (u.status === "active") {
                    u.inactiveEnterMonoUs = monoUs();
                    u.inactiveEnterMs = Date.now();
                    u.stopCount += 1;
                    u.status = "inactive";
                    u.diesAtMonoUs = null;
                    serviceLog(host, unit, "Stopped.");
                }
            }
            break;
        case "is-active":
            if (!flags.quiet) say(u.status);
            code = u.status === "active" ? 0 : 3;
            break;
        case "is-failed":
            if (!flags.quiet) say(u.status);
            code = u.status === "failed" ? 0 : 1;
            break;
        case "is-enabled":
            if (!exists) {
                if (!flags.quiet) complain(`Failed to get unit file state for ${unit}: No such file or directory`);
                code = 1;
            } else {
                if (!flags.quiet) say(u.enabled ? "enabled" : "disabled");
                code = u.enabled ? 0 : 1;
            }
            break;
        case "reset-failed":
            if (u.status === "failed") u.status = "inactive";
            u.result = "success";
            break;
        case "status": {
            if (!known) {
                complain(`Unit ${unit} could not be found.`);
                code = 4;
                break;
            }
            const since = u.status === "active" ? u.activeEnterMs : u.inactiveEnterMs;
            const sub = u.status === "active" ? "active (running)" : u.status === "failed" ? "failed (Result: exit-code)" : "inactive (dead)";
            say(`● ${unit} - ${unitDescription(unit)} (systemd TEST DOUBLE: nothing runs)`);
            say(
                `     Loaded: ${exists ? `loaded (${UNIT_DIR}/${unit}; ${u.enabled ? "enabled" : "disabled"}; preset: enabled)` : "not-found (Reason: Unit " + unit + " not found.)"}`,
            );
            say(`     Active: ${sub}${since !== null ? ` since ${systemdTime(since)}` : ""}`);
            say("");
            for (const line of serviceJournal(unit, 10)) say(line);
            code = u.status === "active" ? 0 : 3;
            break;
        }
        case "show": {
            const all: Record<string, string> = {
                Id: unit,
                Names: unit,
                Description: exists ? unitDescription(unit) : unit,
                LoadState: exists ? "loaded" : "not-found",
                ActiveState: u.status,
                SubState: u.status === "active" ? "running" : u.status === "failed" ? "failed" : "dead",
                Result: u.result,
                UnitFileState: exists ? (u.enabled ? "enabled" : "disabled") : "",
                FragmentPath: exists ? `${UNIT_DIR}/${unit}` : "",
                NeedDaemonReload: exists && u.loadedSha256 !== null && u.loadedSha256 !== sha256(text ?? "") ? "yes" : "no",
                MainPID: "0",
                NRestarts: "0",
                ActiveEnterTimestamp: systemdTime(u.activeEnterMs),
                ActiveEnterTimestampMonotonic: String(u.activeEnterMonoUs ?? 0),
                ExecMainStartTimestamp: systemdTime(u.activeEnterMs),
                ExecMainStartTimestampMonotonic: String(u.activeEnterMonoUs ?? 0),
                InactiveEnterTimestamp: systemdTime(u.inactiveEnterMs),
                InactiveEnterTimestampMonotonic: String(u.inactiveEnterMonoUs ?? 0),
            };
            for (const [k, v] of Object.entries(all)) {
                if (flags.props.length > 0 && !flags.props.includes(k)) continue;
                say(flags.value ? v : `${k}=${v}`);
            }
            break;
        }
        default:
            return unsupported(`systemctl command ${JSON.stringify(cmd)} for ${unit}`);
    }
    event.exitCode = code;
    event.result = known || exists ? u.status : "not-found";
    if (exists || st.units[unit] !== undefined) st.units[unit] = u;
    st.events.push(event);
    st.events = st.events.slice(-SERVICE_EVENT_LIMIT);
    writeJsonAtomic(servicesPath(), st);
    return code;
}

export function serviceJournal(unit: string, n: number | null): string[] {
    let text = "";
    try {
        text = fs.readFileSync(path.join(STATE_DIR, "services.log"), "utf8");
    } catch {
        return [];
    }
    const lines = text.split("\n").filter((l) => l.includes(` ${unit}: `));
    return n === null ? lines : lines.slice(-n);
}
