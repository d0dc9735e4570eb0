/**
 * The cluster registry (TEST DOUBLE SHORTCUT: one directory shared by every host stands in
 * for the API server) and node readiness, computed when asked from the owner's state and cue.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { loadCue, statePath } from "./host";
import type { DoubleHostConfig, DoubleState, NodeRecord, UnitStatus } from "./types";
import { fail, readJson, writeJsonAtomic } from "./util";

export function nodesDir(host: DoubleHostConfig): string {
    return path.join(host.clusterDir, "nodes");
}

export function nodeFile(host: DoubleHostConfig, name: string): string {
    return path.join(nodesDir(host), `${name}.json`);
}

export function allNodes(host: DoubleHostConfig): NodeRecord[] {
    let names: string[] = [];
    try {
        names = fs.readdirSync(nodesDir(host)).filter((f) => f.endsWith(".json"));
    } catch {
        return [];
    }
    return names
        .map((f) => readJson<NodeRecord | null>(path.join(nodesDir(host), f), null))
        .filter((n): n is NodeRecord => n !== null)
        .sort((a, b) => a.name.localeCompare(b.name));
}

export function getNode(host: DoubleHostConfig, name: string): NodeRecord {
    const rec = readJson<NodeRecord | null>(nodeFile(host, name), null);
    if (!rec) fail(1, `Error from server (NotFound): nodes "${name}" not found`);
    return rec;
}

export function saveNode(host: DoubleHostConfig, rec: NodeRecord): void {
    writeJsonAtomic(nodeFile(host, rec.name), rec);
}

export interface Liveness {
    status: UnitStatus;
    ready: "True" | "False" | "Unknown";
    reason: string;
    message: string;
    since: number | null;
    up: boolean;
    etcdUp: boolean;
}

export function liveness(rec: NodeRecord): Liveness {
    const st = readJson<Partial<DoubleState>>(statePath(rec.hostSideStateDir), {});
    const cue = loadCue(rec.hostSideStateDir);
    const status = st.status ?? "inactive";
    const startedAt = st.startedAt ?? null;
    if (status !== "active" || st.nodeName !== rec.name || startedAt === null) {
        return {
            status,
            ready: "Unknown",
            reason: "NodeStatusUnknown",
            message: "Kubelet stopped posting node status.",
            since: st.stoppedAt ?? null,
            up: false,
            etcdUp: false,
        };
    }
    const readyAt = startedAt + cue.readyDelayMs;
    if (cue.neverReady || Date.now() < readyAt) {
        const why = cue.neverReady ? "neverReady cue" : `ready delay ${cue.readyDelayMs}ms not over`;
        return {
            status,
            ready: "False",
            reason: "KubeletNotReady",
            message: `container runtime network not ready: NetworkReady=false (k3s-test-double: ${why})`,
            since: startedAt,
            up: false,
            etcdUp: false,
        };
    }
    return {
        status,
        ready: "True",
        reason: "KubeletReady",
        message: "kubelet is posting ready status",
        since: readyAt,
        up: true,
        etcdUp: !cue.etcdUnhealthy && !st.peerTlsMismatch,
    };
}
