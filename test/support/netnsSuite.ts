import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Fleet } from "../../stacks/schema";
import { parseFleet } from "../../stacks/validate";
import { rawFleet, validFleet, type Raw } from "./fixtures";
import { isAlive, runTool, type ToolResult } from "./processes";

/*
 * What the real-Nebula suites (mesh.test.ts, caRollout.test.ts) share: running the tools they
 * need, and owning their network namespaces (`<prefix><name>-<pid>`) and temp dirs
 * (`<tempPrefix><pid>-…`), including a crashed earlier run's leftovers.
 */

export interface SuiteTools {
    tool: (command: string, args: string[], timeoutMs?: number) => ToolResult;
    /** Like tool(), but a non-zero exit throws with the tool's output. */
    must: (command: string, args: string[]) => string;
    /** Like tool(), without blocking the event loop; killed after timeoutMs. */
    toolAsync: (command: string, args: string[], timeoutMs: number) => Promise<ToolResult>;
}

export function suiteTools(setupHint: string): SuiteTools {
    const tool = (command: string, args: string[], timeoutMs = 10_000): ToolResult => runTool(command, args, setupHint, timeoutMs);
    return {
        tool,
        must: (command, args) => {
            const r = tool(command, args);
            if (r.status !== 0) {
                throw new Error(`${command} ${args.join(" ")} exited ${r.status}:\n${r.output}`);
            }
            return r.output;
        },
        toolAsync: (command, args, timeoutMs) => {
            return new Promise((resolve, reject) => {
                const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs, killSignal: "SIGKILL" });
                let output = "";
                child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
                child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
                child.on("error", reject);
                child.on("close", (code) => resolve({ status: code ?? -1, output }));
            });
        },
    };
}

export interface NamespaceJanitor {
    /** This suite's namespaces that exist now. */
    namespaces: () => string[];
    /** Kills what still runs in one of them (only what the suite started), then deletes it. */
    deleteNamespace: (ns: string) => void;
    /** Removes the namespaces and temp dirs of this process and of owners that are gone. */
    removeLeftovers: () => void;
}

export function namespaceJanitor(tools: SuiteTools, nsPrefix: string, tempPrefix: string): NamespaceJanitor {
    const namespaces = (): string[] =>
        tools
            .must("ip", ["netns", "list"])
            .split("\n")
            .map((line) => line.split(" ")[0])
            .filter((name) => name.startsWith(nsPrefix));
    const deleteNamespace = (ns: string): void => {
        const pids = tools
            .tool("ip", ["netns", "pids", ns])
            .output.split(/\s+/)
            .filter((pid) => /^\d+$/.test(pid));
        for (const pid of pids) {
            try {
                process.kill(Number(pid), "SIGKILL");
            } catch {
                // already gone
            }
        }
        tools.tool("ip", ["netns", "del", ns]);
    };
    return {
        namespaces,
        deleteNamespace,
        removeLeftovers: () => {
            for (const ns of namespaces()) {
                const owner = Number(/-(\d+)$/.exec(ns)?.[1]);
                if (owner === process.pid || (Number.isInteger(owner) && owner > 0 && !isAlive(owner))) {
                    deleteNamespace(ns);
                }
            }
            for (const entry of fs.readdirSync(os.tmpdir())) {
                const owner = Number(new RegExp(`^${tempPrefix}(\\d+)-`).exec(entry)?.[1]);
                if (owner > 0 && owner !== process.pid && !isAlive(owner)) {
                    fs.rmSync(path.join(os.tmpdir(), entry), { recursive: true, force: true });
                }
            }
        },
    };
}

/** The lab stack with `admins` in the admin group: the rendered firewall admits ICMP only from it. */
export function labFleetWithAdmins(admins: readonly string[]): Fleet {
    const adminGroup = validFleet("lab").overlays.nebula.adminGroup;
    const raw: Raw = rawFleet("lab");
    for (const name of admins) {
        const node = raw.nodes.find((n: Raw) => n.name === name);
        node.nebula.groups = [...(node.nebula.groups ?? []), adminGroup];
    }
    return parseFleet(raw).fleet;
}
