import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { stepLauncher, stepStdin } from "../../components/remote/remoteCommand";
import { scriptFile } from "../../components/remote/scripts";
import { CONTROL, GENESIS, startLabStack, type LabStack } from "../../scripts/lab/stack/labStack";
import { PulumiStack, writeTinyProgram, type RunResult } from "../../scripts/lab/stack/engine";

/*
 * Issue 26 item 4 on the real engine (CLI v3.274.0, Node.js language host) with the command
 * provider TEST DOUBLE (or the real plugin, SHORTCIRCUIT_PULUMI_PLUGINS), on a minimal lab fleet:
 *  1. the provider, like the real 1.2.1, stops reading a logged stream at a line of 64 KiB and
 *     the step never ends (the wait is bounded), while with `logging: "none"` the same line is
 *     captured whole;
 *  2. a shortcircuit step (the launcher and remote/prelude.sh as remoteStep sends them) that
 *     prints 70 KiB lines on both streams with logging on completes, its lines folded;
 *  3. `pulumi up` of the lab stack completes while the control host's health check prints a
 *     70 KiB line (the curl stand-in answers /health with it): without the prelude's fold this
 *     up hangs at that step until the bound below.
 */

const PER_TEST_MS = 15 * 60_000;
jest.setTimeout(PER_TEST_MS);

/** Far beyond what the tiny program needs (seconds): reaching it means the step hung. */
const SMALL_UP_MS = 120_000;
const UP_TIMEOUT_MS = 10 * 60_000;
const BOUND = 16 * 1024;
const MARK = " [shortcircuit: line folded here, it goes on in the next line]\n";
const PROJECT = "long-lines";

let lab: LabStack;

beforeAll(async () => {
    lab = await startLabStack({ stack: "longlines", readyTimeoutSeconds: 10, minimal: true });
    console.log(
        `command provider: ${lab.stack.plugins.command === "double" ? "TEST DOUBLE (scripts/lab/provider-doubles/command)" : `real, from ${lab.stack.plugins.command}`}`,
    );
}, PER_TEST_MS);

afterAll(async () => {
    await lab?.stop();
}, 120_000);

function expectOk(result: RunResult): void {
    if (result.code !== 0) throw new Error(`pulumi exited ${result.code}${result.timedOut ? " (timed out)" : ""}:\n${result.output.slice(-6000)}`);
}

const lineLengths = (text: string): number[] => text.split("\n").map((line) => Buffer.byteLength(line, "utf8"));

/** "same", or where `actual` first differs from `expected` (the texts are too long to print whole). */
function compare(actual: string, expected: string): string {
    if (actual === expected) return "same";
    let at = 0;
    while (at < actual.length && actual[at] === expected[at]) at++;
    return `differs at character ${at} of ${actual.length} (expected ${expected.length}): ${JSON.stringify(actual.slice(at, at + 40))} vs ${JSON.stringify(expected.slice(at, at + 40))}`;
}

/**
 * The stack's state, through a file: the harness decodes a command's stdout chunk by chunk,
 * which turns a UTF-8 character cut at a chunk's end into U+FFFD.
 */
async function stateOf(stack: PulumiStack, name: string): Promise<{ urn: string; type: string; outputs?: Record<string, unknown> }[]> {
    const file = path.join(lab.runDir, `${name}-state.json`);
    await stack.check(["stack", "export", "--stack", name, "--file", file]);
    return (JSON.parse(fs.readFileSync(file, "utf8")) as { deployment: { resources: { urn: string; type: string; outputs?: Record<string, unknown> }[] } })
        .deployment.resources;
}

/** stdout and stderr of the tiny program's one Command, from the state. */
async function stepOutputs(stack: PulumiStack, name: string): Promise<{ stdout: string; stderr: string }> {
    const step = (await stateOf(stack, name)).filter((resource) => resource.type === "command:remote:Command");
    expect(step).toHaveLength(1);
    return { stdout: String(step[0].outputs?.stdout), stderr: String(step[0].outputs?.stderr) };
}

/** A stack of a tiny program with one command:remote:Command on the genesis host. */
async function commandStack(name: string, args: { create: string; stdin?: string; logging: string }): Promise<PulumiStack> {
    const host = lab.fleet.host(GENESIS);
    const dir = writeTinyProgram(
        path.join(lab.runDir, `${name}-src`),
        PROJECT,
        `import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
const connection = { host: ${JSON.stringify(host.sshHost)}, port: ${host.sshPort}, user: "root", privateKey: new pulumi.Config().requireSecret("key") };
const step = new command.remote.Command("step", {
    connection,
    create: ${JSON.stringify(args.create)},
    ${args.stdin !== undefined ? `stdin: ${JSON.stringify(args.stdin)},` : ""}
    logging: ${JSON.stringify(args.logging)},
});
export const stdout = step.stdout;
export const stderr = step.stderr;
`,
    );
    const stack = new PulumiStack({
        runDir: path.join(lab.runDir, name),
        engine: lab.engine,
        stack: name,
        fleet: undefined,
        programDir: dir,
        secrets: { [`${PROJECT}:key`]: host.privateKeyPem },
    });
    await stack.init();
    return stack;
}

// 70 KiB of two-byte characters after an odd-length prefix: a cut at a byte count would split one.
const LONG_TEXT = `odd${"é".repeat(35 * 1024)}`;
const PRINT_LONG = `printf 'odd'; i=0; while [ $i -lt ${35 * 1024} ]; do printf '\\303\\251'; i=$((i + 1)); done`;

describe("a step that prints a 70 KiB line, on the real engine", () => {
    it("1. the command provider hangs on a logged 64 KiB line, and captures it whole with logging none", async () => {
        const create = `${PRINT_LONG}; echo; echo after`;
        const none = await commandStack("logging-none", { create, logging: "none" });
        const captured = await none.up(SMALL_UP_MS);
        expectOk(captured);
        expect(compare((await stepOutputs(none, "logging-none")).stdout, `${LONG_TEXT}\nafter`)).toBe("same");

        const logged = await commandStack("logging-on", { create, logging: "stdoutAndStderr" });
        const hung = await logged.up(SMALL_UP_MS);
        // Killed at the bound: the provider stopped reading the session's output at the long line.
        expect({ timedOut: hung.timedOut, tail: hung.timedOut ? "" : hung.output.slice(-3000) }).toEqual({ timedOut: true, tail: "" });
        // The hung plugin is not in the CLI's process group, so it outlives the CLI killed at the
        // bound, blocked for good on its log pipe: end it, or it stays behind after the suite.
        spawnSync("pkill", ["-KILL", "-f", path.join(lab.runDir, "logging-on", "pulumi-home", "plugins")], { stdio: "ignore" });
    });

    it("2. a shortcircuit step with logging on prints the same line folded and completes", async () => {
        const body = `${PRINT_LONG}; echo; { ${PRINT_LONG}; echo; } >&2; echo after\n`;
        const script = `${scriptFile("remote/prelude.sh")}${body}`;
        const stack = await commandStack("step-folded", {
            create: stepLauncher("test/long-line.sh", script, "stdoutAndStderr"),
            stdin: stepStdin(script, "STEP=long-line\n\n"),
            logging: "stdoutAndStderr",
        });
        const result = await stack.up(SMALL_UP_MS);
        expectOk(result);
        const outputs = await stepOutputs(stack, "step-folded");
        for (const [stream, expected] of [
            ["stdout", `${LONG_TEXT}\nafter`],
            ["stderr", LONG_TEXT],
        ] as const) {
            const text = outputs[stream];
            expect({ stream, longest: Math.max(...lineLengths(text)) <= BOUND, folded: text.includes(MARK) }).toEqual({ stream, longest: true, folded: true });
            expect(compare(text.split(MARK).join(""), expected)).toBe("same");
        }
    });

    it("3. pulumi up of the lab stack completes while the control host's health check prints a 70 KiB line", async () => {
        const body = `{"status":"pass","note":"${LONG_TEXT}"}`;
        await lab.fleet.setToolBehaviour(CONTROL, { curlResponses: { [`https://${lab.config.controlServer.hostname}/health`]: { body } } });
        const result = await lab.stack.up(UP_TIMEOUT_MS);
        expectOk(result);
        // The health step's stored stdout: the body, folded, every line within the bound.
        const health = (await stateOf(lab.stack, "longlines")).filter(
            (resource) => resource.type === "command:remote:Command" && resource.urn.endsWith("-health"),
        );
        expect(health).toHaveLength(1);
        const stdout = String(health[0].outputs?.stdout);
        expect({ longest: Math.max(...lineLengths(stdout)) <= BOUND, folded: stdout.includes(MARK) }).toEqual({ longest: true, folded: true });
        expect(compare(stdout.split(MARK).join(""), body)).toBe("same");
    });
});
