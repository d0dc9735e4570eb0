/*
 * `npm run lab -- <command> [--stack lab|prod]` (as root, on Linux): a throwaway fleet on this
 * machine, shaped like a committed stack, with the real engine.
 *   up       bring it up and run `pulumi preview` and `pulumi up` on it (it keeps running)
 *   status   what runs, and how to reach it
 *   down     remove every namespace, process, mount, bridge and scratch file (idempotent;
 *            without --stack: every lab)
 *   pulumi   run pulumi in the lab stack's project: npm run lab -- pulumi preview --diff
 *   ssh      ssh into a lab host: npm run lab -- ssh lab-server-01 [command]
 * Exit 0: done; 1: a step failed (named on stderr, nothing left behind); 2: usage.
 */
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import { down } from "./lab/session/down";
import { LAB_SHAPES, readSession, sessionDir, sessionFiles, type LabShapeName } from "./lab/session/record";
import { status } from "./lab/session/status";
import { LabUpError, runPulumi, up } from "./lab/session/up";

const USAGE = "usage: npm run lab -- up [--stack lab|prod] | status | down [--stack lab|prod] | pulumi <args…> [--stack …] | ssh <host> [command…]\n";

class UsageError extends Error {}

function stackOf(value: string | undefined): LabShapeName {
    const stack = value ?? "lab";
    if (!(LAB_SHAPES as readonly string[]).includes(stack))
        throw new UsageError(`--stack must be one of ${LAB_SHAPES.join(", ")}, not ${JSON.stringify(stack)}`);
    return stack as LabShapeName;
}

/** `--stack X` anywhere in a passthrough command's words: the lab to use (pulumi keeps it too). */
function passthroughStack(words: string[]): LabShapeName {
    const at = words.findIndex((word) => word === "--stack" || word === "-s");
    const inline = words.find((word) => word.startsWith("--stack="));
    return stackOf(at >= 0 ? words[at + 1] : inline?.slice("--stack=".length));
}

function runningRecord(stack: LabShapeName) {
    const record = readSession(sessionDir(stack));
    if (!record) throw new UsageError(`no lab of stack ${stack} runs: npm run lab -- up --stack ${stack}`);
    return record;
}

async function main(argv: string[]): Promise<number> {
    const [command, ...rest] = argv;
    const out = (line: string): void => void process.stdout.write(`${line}\n`);
    switch (command) {
        case "up": {
            const { values } = parseArgs({ args: rest, options: { stack: { type: "string" }, "ready-timeout": { type: "string" } }, strict: true });
            const readyTimeoutSeconds = Number(values["ready-timeout"] ?? "30");
            if (!Number.isInteger(readyTimeoutSeconds) || readyTimeoutSeconds < 1 || readyTimeoutSeconds > 600)
                throw new UsageError("--ready-timeout must be 1..600 seconds");
            const stack = stackOf(values.stack);
            await up({ stack, readyTimeoutSeconds, out });
            for (const line of status().lines) out(line);
            out(`remove it: npm run lab -- down --stack ${stack}`);
            return 0;
        }
        case "status": {
            parseArgs({ args: rest, options: {}, strict: true });
            for (const line of status().lines) out(line);
            return 0;
        }
        case "down": {
            const { values } = parseArgs({ args: rest, options: { stack: { type: "string" } }, strict: true });
            const reports = await down(values.stack === undefined ? "all" : [stackOf(values.stack)]);
            if (reports.length === 0) out("lab down: nothing to remove");
            for (const report of reports)
                out(`lab down: ${report.stack}: ${report.removed.length > 0 ? `removed ${report.removed.join("; ")}` : "nothing left"}`);
            return 0;
        }
        case "pulumi": {
            const stack = passthroughStack(rest);
            const hasStack = rest.some((word) => word === "--stack" || word === "-s" || word.startsWith("--stack="));
            return runPulumi(runningRecord(stack), hasStack ? rest : [...rest, "--stack", stack]);
        }
        case "ssh": {
            const [host, ...remote] = rest;
            if (!host) throw new UsageError("ssh needs a host name");
            const stack = LAB_SHAPES.find((name) => readSession(sessionDir(name))?.hosts.some((each) => each.name === host));
            if (!stack) throw new UsageError(`no running lab has a host ${JSON.stringify(host)} (npm run lab -- status)`);
            const result = spawnSync("ssh", ["-F", sessionFiles(sessionDir(stack)).sshConfig, host, ...remote], { stdio: "inherit" });
            return result.status ?? 1;
        }
        default:
            throw new UsageError(command === undefined ? "a command is required" : `unknown command ${JSON.stringify(command)}`);
    }
}

// `npm run lab -- status | head`: a closed pipe ends the output, not the command with a trace.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(0);
    throw error;
});

main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
        if (error instanceof UsageError || (error instanceof TypeError && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS"))) {
            process.stderr.write(`lab: ${error.message}\n${USAGE}`);
            process.exit(2);
        }
        if (error instanceof LabUpError) {
            process.stderr.write(`lab up: failed at step "${error.step}": ${error.message}\nlab up: removed everything it had made\n`);
            process.exit(1);
        }
        process.stderr.write(`lab: ${error instanceof Error ? error.message : String(error)}\n`);
        process.exit(1);
    },
);
