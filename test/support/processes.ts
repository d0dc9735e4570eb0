import { spawnSync, type ChildProcess } from "node:child_process";

/*
 * Stopping the daemons a real-tool test started (nebula, headscale, tailscaled, derper),
 * bounded in time: SIGTERM, up to 5 s, then SIGKILL, up to 2 s more.
 */

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function exited(child: ChildProcess): boolean {
    return child.exitCode !== null || child.signalCode !== null;
}

export async function stopChildren(children: readonly ChildProcess[]): Promise<void> {
    const live = children.filter((child) => !exited(child));
    for (const child of live) {
        child.kill("SIGTERM");
    }
    for (let i = 0; i < 50 && live.some((child) => !exited(child)); i++) {
        await sleep(100);
    }
    for (const child of live.filter((each) => !exited(each))) {
        child.kill("SIGKILL");
    }
    for (let i = 0; i < 20 && live.some((child) => !exited(child)); i++) {
        await sleep(100);
    }
}

/** True while a process with this pid exists (EPERM: it exists but is not ours to signal). */
export function isAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (error) {
        return (error as NodeJS.ErrnoException).code === "EPERM";
    }
}

export interface ToolResult {
    status: number;
    output: string;
}

/**
 * Runs a tool synchronously, bounded by `timeoutMs`; a missing binary fails with
 * `<command> <missingHint>` so the message says how to install it.
 */
export function runTool(command: string, args: string[], missingHint: string, timeoutMs = 20_000): ToolResult {
    const r = spawnSync(command, args, { encoding: "utf8", timeout: timeoutMs });
    if (r.error) {
        if ((r.error as NodeJS.ErrnoException).code === "ENOENT") {
            throw new Error(`${command} ${missingHint}`);
        }
        throw r.error;
    }
    return { status: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}
