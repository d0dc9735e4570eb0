/**
 * The LabFleet a test holds: runs commands in or over ssh to a host, sets the doubles' cues,
 * changes a host's network, maps in-host paths to harness-side ones and reads the doubles' state.
 * Every mutating call refuses to run after stop().
 */
import type { ChildProcess } from "node:child_process";
import * as path from "node:path";
import { HOST_PATH } from "./constants";
import {
    fullUnitName,
    readClusterNodes,
    readJsonFile,
    readK3sInvocations,
    readK3sState,
    readServiceState,
    readToolInvocations,
    readToolState,
    writeCue,
    writeJsonFile,
    writeServiceCue,
} from "./cues";
import { applyMissingTools } from "./hostTools";
import { MACOS_SESSION_ENV, readLaunchdState, removeAbsentLocalTools } from "./macos/host";
import type { LaunchdBehaviour } from "./macos/types";
import { parseCidr } from "./ipv4";
import { run, runOk } from "./processes";
import type { ToolBehaviour } from "./service-doubles/types";
import { sshArgv } from "./sshd";
import type { HostRef, LabFleet, LabHost } from "./types";

/** The run as startLabFleet made it. */
export interface FleetRun {
    runId: string;
    runDir: string;
    bridge: string;
    bridgeCidr: string;
    gatewayAddress: string;
    clusterDir: string;
    keyPath: string;
    hosts: LabHost[];
    connectTimeoutSec: number;
    serviceDoublesScript: string;
    tools: { ip: string; nsenter: string; ssh: string };
    /** exec/ssh children while they run, so stop() can kill them. */
    pending: Set<ChildProcess>;
    /** Tears the run down (once; later calls get the same promise). */
    stop: () => Promise<void>;
    stopped: () => boolean;
}

export function fleetHandle(r: FleetRun): LabFleet {
    const { ip, nsenter } = r.tools;
    const byName = new Map(r.hosts.map((h) => [h.name, h]));
    const resolve = (ref: HostRef): LabHost => {
        const name = typeof ref === "string" ? ref : ref.name;
        const h = byName.get(name);
        if (!h) throw new Error(`lab fleet: no host ${name} (hosts: ${[...byName.keys()].join(", ")})`);
        return h;
    };
    const ensureRunning = (): void => {
        if (r.stopped()) throw new Error("lab fleet: already stopped");
    };
    const argv = (ref: HostRef, timeout = r.connectTimeoutSec): string[] => sshArgv(r.keyPath, resolve(ref), timeout);
    const stateDir = (ref: HostRef): string => resolve(ref).doubleStateDir;

    return {
        runId: r.runId,
        runDir: r.runDir,
        bridge: r.bridge,
        bridgeCidr: r.bridgeCidr,
        gatewayAddress: r.gatewayAddress,
        clusterDir: r.clusterDir,
        privateKeyPath: r.keyPath,
        hosts: r.hosts,
        host: (name) => resolve(name),
        exec: async (ref, cmd, o = {}) => {
            ensureRunning();
            const h = resolve(ref);
            return await run(nsenter, ["-t", String(h.pid), "-m", "-u", "-n", "--", "/bin/bash", "-c", cmd], {
                ...o,
                track: r.pending,
                envAll: {
                    PATH: HOST_PATH,
                    HOME: "/root",
                    LANG: "C.UTF-8",
                    USER: "root",
                    LOGNAME: "root",
                    ...(h.os === "macos" ? MACOS_SESSION_ENV : {}),
                    ...(o.env ?? {}),
                },
            });
        },
        ssh: async (ref, script, stdin, o = {}) => {
            ensureRunning();
            // sshd accepts every variable (AcceptEnv *): the environment travels with SetEnv.
            const env = Object.entries(o.env ?? {}).flatMap(([k, v]) => ["-o", `SetEnv=${k}=${v}`]);
            const args = [...argv(ref), ...env, "--", script];
            return await run(r.tools.ssh, args, {
                ...o,
                ...(stdin !== undefined ? { stdin } : {}),
                track: r.pending,
                envAll: { PATH: process.env.PATH ?? HOST_PATH, HOME: process.env.HOME ?? "/root", LANG: "C.UTF-8" },
            });
        },
        sshArgv: (ref, timeout) => argv(ref, timeout),
        setK3sBehaviour: async (ref, behaviour) => {
            ensureRunning();
            writeCue(stateDir(ref), behaviour);
            await Promise.resolve();
        },
        addTable52Route: async (ref, cidrText) => {
            ensureRunning();
            const h = resolve(ref);
            if (h.tailnetAddress === null) throw new Error(`lab fleet: ${h.name} has no tailscale0 (no tailnetAddress)`);
            parseCidr(cidrText);
            await runOk(ip, ["-n", h.netns, "route", "replace", cidrText, "dev", "tailscale0", "table", "52"]);
            const rules = JSON.parse(await runOk(ip, ["-n", h.netns, "-j", "rule", "show"])) as { priority?: number }[];
            if (!rules.some((x) => x.priority === 5270)) await runOk(ip, ["-n", h.netns, "rule", "add", "pref", "5270", "lookup", "52"]);
        },
        clearTable52: async (ref) => {
            ensureRunning();
            const h = resolve(ref);
            await run(ip, ["-n", h.netns, "route", "flush", "table", "52"], { timeoutMs: 10_000 });
            await run(ip, ["-n", h.netns, "rule", "del", "pref", "5270"], { timeoutMs: 10_000 });
        },
        setLanLink: async (ref, state) => {
            ensureRunning();
            await runOk(ip, ["-n", resolve(ref).netns, "link", "set", "eth0", state]);
        },
        hostPath: (ref, p) => {
            const h = resolve(ref);
            let norm = path.posix.normalize(p);
            if (norm === "/run/headscale" || norm.startsWith("/run/headscale/")) norm = `/var${norm}`;
            // Longest prefix first: /var/lib/rancher/x must not map through a shorter entry.
            const mapped = Object.entries({ ...h.privateDirs, "/usr/local/bin": h.binDir }).sort((a, b) => b[0].length - a[0].length);
            for (const [inside, outside] of mapped) {
                if (norm === inside || norm.startsWith(inside + "/")) return outside + norm.slice(inside.length);
            }
            throw new Error(
                `lab fleet: ${p} is not under a host's private directory (${mapped
                    .map(([inside]) => inside)
                    .sort()
                    .join(", ")})`,
            );
        },
        setServiceBehaviour: async (ref, unit, behaviour) => {
            ensureRunning();
            writeServiceCue(stateDir(ref), unit, behaviour);
            await Promise.resolve();
        },
        setToolBehaviour: async (ref, behaviour) => {
            ensureRunning();
            const h = resolve(ref);
            const file = path.join(h.doubleStateDir, "tool-cue.json");
            const next: ToolBehaviour = { ...readJsonFile<ToolBehaviour>(file, {}), ...behaviour };
            writeJsonFile(file, next);
            if (behaviour.missing !== undefined)
                applyMissingTools(h.binDir, path.join(path.dirname(h.rootDir), "double-host.json"), r.serviceDoublesScript, behaviour.missing);
            if (behaviour.missing !== undefined && h.os === "macos") removeAbsentLocalTools(h.binDir);
            await Promise.resolve();
        },
        serviceState: (ref) => readServiceState(stateDir(ref)),
        serviceEvents: (ref, unit) => {
            const events = readServiceState(stateDir(ref))?.events ?? [];
            return unit === undefined ? events : events.filter((e) => e.unit === fullUnitName(unit));
        },
        unitStatus: (ref, unit) => readServiceState(stateDir(ref))?.units[fullUnitName(unit)]?.status ?? "inactive",
        toolInvocations: (ref, toolName) => readToolInvocations(stateDir(ref)).filter((x) => toolName === undefined || x.tool === toolName),
        toolState: (ref) => readToolState(stateDir(ref)),
        launchdState: (ref) => readLaunchdState(stateDir(ref)),
        launchdEvents: (ref, label) => readLaunchdState(stateDir(ref)).events.filter((e) => label === undefined || e.label === label),
        setLaunchdBehaviour: async (ref, label, behaviour) => {
            ensureRunning();
            const file = path.join(stateDir(ref), "launchd-cue.json");
            const all = readJsonFile<Record<string, LaunchdBehaviour>>(file, {});
            all[label] = { ...(all[label] ?? {}), ...behaviour };
            writeJsonFile(file, all);
            await Promise.resolve();
        },
        k3sState: (ref) => readK3sState(stateDir(ref)),
        k3sInvocations: (ref) => readK3sInvocations(stateDir(ref)),
        clusterNodes: () => readClusterNodes(r.clusterDir),
        stop: () => r.stop(),
    };
}
