/**
 * `lab up`: a throwaway fleet shaped like a committed stack, and the real `pulumi preview` and
 * `pulumi up` on it. Steps, each printed as it starts; a failure names its step and removes
 * everything made so far (`lab down`'s takeDown):
 *   1. plugins (printed first: real or TEST DOUBLES), 2. the keeper (a detached process that
 *   owns the lab) starts the fleet, 3. the API server, 4. the stack, 5. preview, 6. up.
 */
import { fork, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { loadEngine } from "../stack/engine";
import { afterFirstUp, committedFleet } from "../stack/labShape";
import { checkLabPrerequisites } from "../prerequisites";
import { takeDown } from "./down";
import type { KeeperMessage, KeeperRequest } from "./keeper";
import { choosePlugins } from "./plugins";
import { readSession, sameProcess, sessionDir, sessionFiles, type LabShapeName, type SessionRecord } from "./record";

export class LabUpError extends Error {
    constructor(
        readonly step: string,
        message: string,
    ) {
        super(message);
    }
}

export interface UpOptions {
    stack: LabShapeName;
    /** Seconds the K3s health gate waits for a node (the k3s double is ready at once). */
    readyTimeoutSeconds: number;
    out: (line: string) => void;
}

/** Runs pulumi in the session's project with its environment, output passed through; resolves to the exit code. */
export function runPulumi(record: SessionRecord, args: string[], stdio: "inherit" | "pipe" = "inherit"): Promise<number> {
    return new Promise((resolve) => {
        const child = spawn(path.join(record.pulumiBin, "pulumi"), args, {
            cwd: record.projectDir,
            env: { ...process.env, ...record.env },
            stdio: ["ignore", stdio, stdio],
        });
        child.on("error", () => resolve(127));
        child.on("close", (code) => resolve(code ?? 1));
    });
}

function startKeeper(request: KeeperRequest, out: (line: string) => void): Promise<SessionRecord> {
    const log = fs.openSync(sessionFiles(request.dir).log, "a", 0o600);
    const keeper = fork(path.join(__dirname, "keeper.ts"), [], {
        detached: true,
        stdio: ["ignore", log, log, "ipc"],
        execArgv: ["--require", "ts-node/register/transpile-only"],
    });
    fs.closeSync(log);
    return new Promise((resolve, reject) => {
        let settled = false;
        let step = "lab fleet";
        keeper.on("message", (message: KeeperMessage) => {
            switch (message.kind) {
                case "step":
                    step = message.text.split(":")[0];
                    out(`      ${message.text}`);
                    return;
                case "ready":
                    settled = true;
                    keeper.disconnect();
                    keeper.unref();
                    resolve(message.record);
                    return;
                case "failed":
                    settled = true;
                    reject(new LabUpError(step, message.message));
                    return;
            }
        });
        keeper.on("exit", (code, signal) => {
            if (!settled)
                reject(
                    new LabUpError(step, `the keeper exited (${signal ?? `code ${code}`}) before the lab was up; its log: ${sessionFiles(request.dir).log}`),
                );
        });
        keeper.send(request);
    });
}

export async function up(options: UpOptions): Promise<SessionRecord> {
    const { stack, out } = options;
    const dir = sessionDir(stack);
    const started = Date.now();
    const existing = readSession(dir);
    if (existing && sameProcess(existing.keeperPid, existing.keeperStart)) {
        throw new LabUpError(
            "check",
            `a lab of stack ${stack} runs already (run ${existing.runId}, since ${existing.startedAt}): npm run lab -- status, or npm run lab -- down --stack ${stack}`,
        );
    }
    let engine: ReturnType<typeof loadEngine>;
    try {
        engine = loadEngine();
    } catch (error) {
        throw new LabUpError("check", (error as Error).message);
    }
    if (fs.existsSync(dir)) takeDown(dir, stack);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    let step = "plugins";
    // Ctrl-C: pulumi (same terminal) stops on its own; the keeper, detached, does not. Either
    // way the step ends, and the lab is removed as after any failure.
    let interrupted = false;
    const onInterrupt = (): void => {
        interrupted = true;
        out("lab up: interrupted: the current step ends, then everything made so far is removed");
    };
    const checkInterrupt = (): void => {
        if (interrupted) throw new LabUpError(step, "interrupted (Ctrl-C)");
    };
    process.on("SIGINT", onInterrupt);
    try {
        const downloads = path.join(dir, "plugin-download");
        const plugins = choosePlugins(engine.pulumiBin, downloads, engine.env);
        if (!Object.values(plugins.files).some((file) => file.startsWith(downloads))) fs.rmSync(downloads, { recursive: true, force: true });
        out(plugins.summary);
        const missing = checkLabPrerequisites();
        if (missing.length > 0)
            throw new LabUpError("check", `the lab fleet needs: ${missing.join("; ")} (run as root on Linux; bash scripts/setup.sh installs the tools)`);
        step = "lab fleet";
        out(`[1/3] lab fleet of stack ${stack}: hosts, API server, stack (log: ${sessionFiles(dir).log})`);
        const record = await startKeeper(
            { stack, dir, pluginFiles: plugins.files, pluginSummary: plugins.summary, readyTimeoutSeconds: options.readyTimeoutSeconds },
            out,
        );
        checkInterrupt();
        for (const change of record.changes) out(`      derived stack file: ${change}`);
        step = "preview";
        out(`[2/3] pulumi preview --stack ${stack}`);
        const previewCode = await runPulumi(record, ["preview", "--stack", stack, "--non-interactive"]);
        if (previewCode !== 0) throw new LabUpError(step, `pulumi preview exited ${previewCode}`);
        checkInterrupt();
        step = "up";
        out(`[3/3] pulumi up --stack ${stack}`);
        const upCode = await runPulumi(record, ["up", "--stack", stack, "--yes", "--skip-preview", "--non-interactive"]);
        if (upCode !== 0) throw new LabUpError(step, `pulumi up exited ${upCode}`);
        checkInterrupt();
        const stackFile = path.join(record.projectDir, `Pulumi.${stack}.yaml`);
        fs.writeFileSync(stackFile, afterFirstUp(fs.readFileSync(stackFile, "utf8"), committedFleet(stack)));
        out(`lab up: stack ${stack} is up on ${record.hosts.length} hosts in ${((Date.now() - started) / 1000).toFixed(1)} s`);
        return record;
    } catch (error) {
        const failure = error instanceof LabUpError ? error : new LabUpError(step, error instanceof Error ? error.message : String(error));
        takeDown(dir, stack);
        throw failure;
    } finally {
        process.removeListener("SIGINT", onInterrupt);
    }
}
