/**
 * The k3s unit's start, restart and stop, serialised by the host's state lock.
 */
import { StartError, readConfigFiles } from "./config";
import type { LoadedConfig } from "./config";
import { HISTORY_LIMIT, STATE_DIR } from "./constants";
import { loadCue, loadState, logLine, statePath } from "./host";
import { doStart } from "./start";
import type { DoubleHostConfig } from "./types";
import { ToolExit, withLock, writeJsonAtomic } from "./util";

export function startUnit(host: DoubleHostConfig, action: "start" | "restart"): { ok: boolean; message: string } {
    return withLock(STATE_DIR, () => {
        const state = loadState(host);
        const cue = loadCue(STATE_DIR);
        // systemd: `start` of an active unit is a no-op; `restart` stops it first.
        if (action === "start" && state.status === "active") {
            return { ok: true, message: "" };
        }
        if (state.status === "active") logLine(host, "info", "Stopping Lightweight Kubernetes (k3s-test-double)...");
        if (action === "restart") state.restartCount += 1;
        state.startCount += 1;
        logLine(host, "info", `Starting k3s ${host.k3sVersion} (k3s-test-double) as ${host.role}`);
        let loaded: LoadedConfig | null = null;
        try {
            loaded = readConfigFiles();
            state.configFiles = loaded.files;
            const started = doStart(host, state, cue, loaded);
            state.status = "active";
            state.startedAt = Date.now();
            state.lastError = null;
            state.config = loaded.merged;
            state.configSha256 = loaded.sha;
            state.nodeName = started.nodeName;
            state.history.push({ at: new Date().toISOString(), atMs: Date.now(), action, result: "active", configSha256: loaded.sha });
            logLine(host, "info", `k3s-test-double started: node ${started.nodeName}, config sha256 ${loaded.sha.slice(0, 12)}`);
            return { ok: true, message: "" };
        } catch (e) {
            const message = e instanceof StartError || e instanceof ToolExit ? e.message : `internal error: ${String(e)}`;
            if (e instanceof StartError && e.loaded) state.configFiles = e.loaded.files;
            else if (loaded) state.configFiles = loaded.files;
            state.status = "failed";
            state.stoppedAt = Date.now();
            state.failureCount += 1;
            state.lastError = message;
            state.history.push({ at: new Date().toISOString(), atMs: Date.now(), action, result: "failed", error: message });
            logLine(host, "fatal", message);
            return { ok: false, message };
        } finally {
            state.history = state.history.slice(-HISTORY_LIMIT);
            writeJsonAtomic(statePath(STATE_DIR), state);
        }
    });
}

export function stopUnit(host: DoubleHostConfig): void {
    withLock(STATE_DIR, () => {
        const state = loadState(host);
        if (state.status === "active") logLine(host, "info", "Stopped Lightweight Kubernetes (k3s-test-double).");
        if (state.status !== "inactive") state.stoppedAt = Date.now();
        state.status = "inactive";
        state.history.push({ at: new Date().toISOString(), atMs: Date.now(), action: "stop", result: "inactive" });
        state.history = state.history.slice(-HISTORY_LIMIT);
        writeJsonAtomic(statePath(STATE_DIR), state);
    });
}
