import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { versions } from "../../components/versions";

/*
 * Where scripts/tools/build-tailnet-tools.sh leaves the pinned Go-built tools. On a machine
 * with Go, a missing tool is a failure (setup builds them, and CI runs setup); without Go the
 * suites that need them say so and skip.
 */

export const CACHE_ROOT = process.env.SHORTCIRCUIT_CACHE ?? join(homedir(), ".cache", "shortcircuit");
export const TAILNET_BIN = join(CACHE_ROOT, `tailnet-${versions.headscale}-${versions.tailscale}`, "bin");

export function machineHasGo(): boolean {
    return spawnSync("go", ["version"], { encoding: "utf8" }).status === 0;
}

/** The tool's path; throws with the command that builds it when it is missing. */
export function tailnetTool(name: "headscale" | "tailscale" | "tailscaled" | "derper"): string {
    const path = join(TAILNET_BIN, name);
    if (!existsSync(path)) {
        throw new Error(`${path} is missing: run bash scripts/tools/build-tailnet-tools.sh (scripts/setup.sh does, and CI runs it)`);
    }
    return path;
}
