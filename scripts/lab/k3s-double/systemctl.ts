/**
 * The systemctl and journalctl shims: k3s units go to the k3s double, every other unit to
 * the service-manager stand-in.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { STATE_DIR } from "./constants";
import { loadState, statePath } from "./host";
import { SERVICE_VERBS, fullUnit, isK3sUnit, serviceDaemonReload, serviceManagerReload, unitName } from "./serviceManager";
import type { SystemctlFlags } from "./serviceManager";
import { serviceJournal, serviceOne } from "./serviceVerbs";
import type { DoubleHostConfig } from "./types";
import { startUnit, stopUnit } from "./unit";
import { ToolExit, complain, fail, say, unsupported, withLock, writeJsonAtomic } from "./util";

/** One verb for units of which at least one is not k3s: each unit in turn, first error's exit code. */
export function serviceSystemctl(host: DoubleHostConfig, cmd: string, units: string[], flags: SystemctlFlags): number {
    if (units.length === 0) fail(1, "Too few arguments.");
    // `systemctl enable a b` reloads the manager once, after every unit (systemctl-enable.c).
    const reloadAfter = (cmd === "enable" || cmd === "disable") && !flags.noReload && units.some((raw) => !isK3sUnit(raw));
    const unitFlags = reloadAfter ? { ...flags, noReload: true } : flags;
    let rc = 0;
    let first = true;
    for (const raw of units) {
        let code: number;
        if (isK3sUnit(raw)) {
            try {
                code = systemctl(host, [
                    cmd,
                    raw,
                    ...(flags.quiet ? ["--quiet"] : []),
                    ...(flags.now ? ["--now"] : []),
                    ...(flags.noReload ? ["--no-reload"] : []),
                    ...flags.props.flatMap((p) => ["-p", p]),
                ]);
            } catch (e) {
                if (!(e instanceof ToolExit)) throw e;
                complain(e.message);
                code = e.code;
            }
        } else {
            if (cmd === "show" && !first) say("");
            code = withLock(STATE_DIR, () => serviceOne(host, cmd, fullUnit(raw), unitFlags));
        }
        first = false;
        if (rc === 0 && code !== 0) rc = code;
    }
    if (reloadAfter && rc === 0) serviceManagerReload();
    return rc;
}

export function systemctl(host: DoubleHostConfig, argv: string[]): number {
    let quiet = false;
    let value = false;
    const props: string[] = [];
    const positional: string[] = [];
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i] ?? "";
        if (a === "-q" || a === "--quiet") quiet = true;
        else if (a === "--value") value = true;
        else if (a === "-p" || a === "--property") props.push(...(argv[++i] ?? "").split(","));
        else if (a.startsWith("--property=")) props.push(...a.slice(11).split(","));
        else if (["--no-pager", "--no-block", "--now", "-l", "--full", "--system", "--no-ask-password", "--no-legend", "--plain", "--no-reload"].includes(a))
            continue;
        else if (a.startsWith("--lines=") || a === "-n") {
            if (a === "-n") i++;
        } else if (a.startsWith("-")) fail(1, `systemctl (k3s-test-double shim): unrecognized option '${a}'`);
        else positional.push(a);
    }
    const [cmd, ...units] = positional;
    if (cmd !== undefined && SERVICE_VERBS.includes(cmd) && units.some((u) => !isK3sUnit(u))) {
        return serviceSystemctl(host, cmd, units, { quiet, value, props, now: argv.includes("--now"), noReload: argv.includes("--no-reload") });
    }
    const known = (u: string): boolean => unitName(u) === host.unit;
    const notFound = (verb: string, u: string): never => fail(5, `Failed to ${verb} ${unitName(u)}.service: Unit ${unitName(u)}.service not found.`);
    switch (cmd) {
        case "daemon-reload":
        case "daemon-reexec":
            serviceDaemonReload();
            return 0;
        case "start":
        case "restart":
        case "try-restart":
        case "reload-or-restart":
        case "force-reload": {
            if (units.length === 0) fail(1, `Too few arguments.`);
            for (const u of units) {
                if (!known(u)) notFound(cmd === "start" ? "start" : "restart", u);
                if (cmd === "try-restart" && loadState(host).status !== "active") continue;
                const r = startUnit(host, cmd === "start" ? "start" : "restart");
                if (!r.ok) {
                    complain(`Job for ${host.unit}.service failed because the control process exited with error code.`);
                    complain(`See "systemctl status ${host.unit}.service" and "journalctl -xeu ${host.unit}.service" for details.`);
                    return 1;
                }
            }
            return 0;
        }
        case "stop":
            for (const u of units) {
                if (!known(u)) notFound("stop", u);
                stopUnit(host);
            }
            return 0;
        case "enable":
        case "disable":
            for (const u of units) {
                if (!known(u)) notFound(cmd, u);
                withLock(STATE_DIR, () => {
                    const st = loadState(host);
                    st.enabled = cmd === "enable";
                    writeJsonAtomic(statePath(STATE_DIR), st);
                });
                if (argv.includes("--now")) {
                    if (cmd === "enable") {
                        if (!startUnit(host, "start").ok) return 1;
                    } else stopUnit(host);
                }
            }
            return 0;
        case "is-enabled": {
            let rc = 0;
            for (const u of units) {
                const s = known(u) ? (loadState(host).enabled ? "enabled" : "disabled") : "not-found";
                if (s !== "enabled") rc = 1;
                if (!quiet) say(s);
            }
            return rc;
        }
        case "is-active":
        case "is-failed": {
            let rc = cmd === "is-active" ? 0 : 1;
            for (const u of units) {
                const s = known(u) ? loadState(host).status : "inactive";
                if (cmd === "is-active" && s !== "active") rc = 3;
                if (cmd === "is-failed" && s === "failed") rc = 0;
                if (!quiet) say(s);
            }
            return rc;
        }
        case "reset-failed":
            withLock(STATE_DIR, () => {
                const st = loadState(host);
                if (st.status === "failed") st.status = "inactive";
                writeJsonAtomic(statePath(STATE_DIR), st);
            });
            return 0;
        case "show": {
            const u = units[0] ?? "";
            const st = known(u) ? loadState(host) : null;
            const all: Record<string, string> = {
                Id: `${unitName(u)}.service`,
                LoadState: st ? "loaded" : "not-found",
                ActiveState: st?.status ?? "inactive",
                SubState: st?.status === "active" ? "running" : st?.status === "failed" ? "failed" : "dead",
                NRestarts: String(st?.restartCount ?? 0),
                UnitFileState: st ? (st.enabled ? "enabled" : "disabled") : "",
                Result: st?.status === "failed" ? "exit-code" : "success",
            };
            for (const [k, v] of Object.entries(all)) {
                if (props.length > 0 && !props.includes(k)) continue;
                say(value ? v : `${k}=${v}`);
            }
            return 0;
        }
        case "status": {
            const u = units[0] ?? host.unit;
            if (!known(u)) fail(4, `Unit ${unitName(u)}.service could not be found.`);
            const st = loadState(host);
            const since = st.status === "active" ? st.startedAt : st.stoppedAt;
            const when = since !== null ? ` since ${new Date(since).toUTCString()}` : "";
            const sub = st.status === "active" ? "active (running)" : st.status === "failed" ? "failed (Result: exit-code)" : "inactive (dead)";
            say(`● ${host.unit}.service - Lightweight Kubernetes (k3s-test-double, not k3s)`);
            say(`     Loaded: loaded (/etc/systemd/system/${host.unit}.service; ${st.enabled ? "enabled" : "disabled"}; preset: enabled)`);
            say(`     Active: ${sub}${when}`);
            say("");
            for (const line of journalLines(10)) say(line);
            return st.status === "active" ? 0 : 3;
        }
        default:
            return unsupported(`systemctl command ${JSON.stringify(argv.join(" "))}`);
    }
}

export function journalLines(n: number | null): string[] {
    let text = "";
    try {
        text = fs.readFileSync(path.join(STATE_DIR, "k3s.log"), "utf8");
    } catch {
        return [];
    }
    const lines = text.split("\n").filter((l) => l !== "");
    return n === null ? lines : lines.slice(-n);
}

export function journalctl(host: DoubleHostConfig, argv: string[]): number {
    const units: string[] = [];
    let n: number | null = null;
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i] ?? "";
        if (a === "-u" || a === "--unit") units.push(argv[++i] ?? "");
        else if (a.startsWith("--unit=")) units.push(a.slice(7));
        else if (a.startsWith("-u") && a.length > 2) units.push(a.slice(2));
        else if (a === "-n" || a === "--lines") n = Number(argv[++i] ?? "10");
        else if (a.startsWith("--lines=")) n = Number(a.slice(8));
        else if (a === "-e" && n === null) n = 1000;
        else if (["-x", "-e", "--no-pager", "-q", "--quiet", "-xe", "-xeu", "-b", "--boot", "-o", "cat"].includes(a)) continue;
        else if (a.startsWith("--since") || a.startsWith("--output")) continue;
        else unsupported(`journalctl argument ${JSON.stringify(a)}`);
    }
    if (units.length > 0 && !units.some((u) => unitName(u) === host.unit)) {
        const lines = units.filter((u) => !isK3sUnit(u)).flatMap((u) => serviceJournal(fullUnit(u), n));
        if (lines.length === 0) say("-- No entries --");
        for (const line of lines) say(line);
        return 0;
    }
    for (const line of journalLines(n)) say(line);
    return 0;
}
