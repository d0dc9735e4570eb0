import type { ChildProcess } from "node:child_process";

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
