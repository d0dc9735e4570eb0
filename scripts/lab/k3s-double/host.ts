/**
 * The host the double runs on: its config (written by the harness), state, cue, log, and
 * its real interfaces (node-ip and flannel-iface are checked against them).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as crypto from "node:crypto";
import { execFileSync } from "node:child_process";
import { DEFAULT_CUE, STATE_DIR } from "./constants";
import type { DoubleHostConfig, DoubleState, K3sBehaviourCue } from "./types";
import { fail, isRecord, readJson } from "./util";

export const hostConfigPath = process.env.K3S_TEST_DOUBLE_HOST_CONFIG ?? "";

export function loadHost(): DoubleHostConfig {
    if (!hostConfigPath || !fs.existsSync(hostConfigPath)) {
        fail(2, "k3s-test-double: K3S_TEST_DOUBLE_HOST_CONFIG is not set; run it through the lab fleet wrappers");
    }
    return readJson<DoubleHostConfig>(hostConfigPath, {} as DoubleHostConfig);
}

export function statePath(dir: string): string {
    return path.join(dir, "state.json");
}
export function cuePath(dir: string): string {
    return path.join(dir, "cue.json");
}

export function initialState(host: DoubleHostConfig): DoubleState {
    return {
        unit: host.unit,
        role: host.role,
        status: "inactive",
        enabled: true,
        startedAt: null,
        stoppedAt: null,
        restartCount: 0,
        startCount: 0,
        failureCount: 0,
        lastError: null,
        config: null,
        configFiles: [],
        configSha256: null,
        nodeName: null,
        nodeId: crypto.randomBytes(4).toString("hex"),
        certSans: [],
        flannel: null,
        history: [],
    };
}

export function loadState(host: DoubleHostConfig, dir = STATE_DIR): DoubleState {
    return { ...initialState(host), ...readJson<Partial<DoubleState>>(statePath(dir), {}) };
}

export function loadCue(dir: string): K3sBehaviourCue {
    return { ...DEFAULT_CUE, ...readJson<Partial<K3sBehaviourCue>>(cuePath(dir), {}) };
}

export function logLine(host: DoubleHostConfig, level: string, msg: string): void {
    const line = `${new Date().toISOString()} ${host.hostName} k3s-test-double[${host.unit}]: level=${level} msg=${JSON.stringify(msg)}\n`;
    fs.mkdirSync(STATE_DIR, { recursive: true });
    fs.appendFileSync(path.join(STATE_DIR, "k3s.log"), line);
}

export function ipJson(host: DoubleHostConfig, args: string[]): unknown {
    try {
        return JSON.parse(execFileSync(host.ipPath, ["-j", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })) as unknown;
    } catch {
        return [];
    }
}

export interface IfaceInfo {
    name: string;
    mtu: number;
    ipv4: string[];
    ipv6: string[];
    kind: string | null;
    link: string | null;
}

export function interfaces(host: DoubleHostConfig): IfaceInfo[] {
    const raw = ipJson(host, ["-d", "addr", "show"]);
    if (!Array.isArray(raw)) return [];
    const result: IfaceInfo[] = [];
    for (const item of raw as unknown[]) {
        if (!isRecord(item)) continue;
        const addrs = Array.isArray(item.addr_info) ? (item.addr_info as unknown[]) : [];
        const ipv4: string[] = [];
        const ipv6: string[] = [];
        for (const a of addrs) {
            if (!isRecord(a) || typeof a.local !== "string") continue;
            if (a.family === "inet") ipv4.push(a.local);
            else if (a.family === "inet6") ipv6.push(a.local);
        }
        const linkinfo = isRecord(item.linkinfo) ? item.linkinfo : {};
        const infoData = isRecord(linkinfo.info_data) ? linkinfo.info_data : {};
        result.push({
            name: String(item.ifname),
            mtu: Number(item.mtu),
            ipv4,
            ipv6,
            kind: typeof linkinfo.info_kind === "string" ? linkinfo.info_kind : null,
            link: typeof infoData.link === "string" ? infoData.link : null,
        });
    }
    return result;
}
