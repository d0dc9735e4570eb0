/*
 * `npm run bench -- --paired-preview REV [--agents N] [--rounds N]`: this tree's program against
 * another commit's, each on its own lab stack (the lab shape plus N more K3s agents, default 17:
 * prod-sized) with the real engine, first `up` by its own code, then no-op previews taken in turn
 * (A B, B A, …), so a drift in the machine's speed falls on both alike and each pair's ratio is
 * read within that pair. For a change whose saving is smaller than the spread of single runs on
 * this machine. REV is checked out with `git worktree` into a scratch directory (with ../shared
 * beside it, as in a clone) and uses this tree's node_modules. Numbers only; nothing asserts a timing.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { startLabStack, type LabStack } from "../../scripts/lab/stack/labStack";
import { median, ok } from "./engineBench";

const REPO_ROOT = path.resolve(__dirname, "..", "..");

const seconds = (ms: number): string => (ms / 1000).toFixed(2);

const kilobytes = (bytes: number): string => (bytes / 1000).toFixed(0);

/** The remote steps in a stack's state and the bytes of their plain stdin (a secret one is ciphertext there, and only counted). */
async function stdinBytes(lab: LabStack): Promise<{ steps: number; secret: number; bytes: number }> {
    const state = await lab.stack.exportState();
    const resources = (state.deployment.resources ?? []) as { type: string; inputs?: Record<string, unknown> }[];
    let steps = 0;
    let secret = 0;
    let bytes = 0;
    for (const resource of resources) {
        if (resource.type !== "command:remote:Command") continue;
        steps++;
        const stdin = resource.inputs?.stdin;
        if (typeof stdin === "string") bytes += Buffer.byteLength(stdin, "utf8");
        else if (stdin !== undefined) secret++;
    }
    return { steps, secret, bytes };
}

/** REV's tree in a scratch directory, laid out like a clone (../shared beside it, node_modules linked). */
function checkOut(rev: string, scratch: string): string {
    const tree = path.join(scratch, "main");
    execFileSync("git", ["-C", REPO_ROOT, "worktree", "add", "--detach", tree, rev], { stdio: "pipe" });
    fs.symlinkSync(path.resolve(REPO_ROOT, "..", "shared"), path.join(scratch, "shared"));
    fs.symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(tree, "node_modules"));
    return tree;
}

export async function pairedPreviewFigures(rev: string, extraAgents: number, rounds: number): Promise<void> {
    const head = execFileSync("git", ["-C", REPO_ROOT, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
    const other = execFileSync("git", ["-C", REPO_ROOT, "rev-parse", "--short", rev], { encoding: "utf8" }).trim();
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "shortcircuit-paired-"));
    const stacks: LabStack[] = [];
    try {
        const tree = checkOut(rev, scratch);
        // The other commit's harness copies the other commit's program into its stack.
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- a module of another checkout, found at run time
        const otherHarness = require(path.join(tree, "scripts/lab/stack/labStack")) as { startLabStack: typeof startLabStack };
        const ours = await startLabStack({ stack: "paired-a", readyTimeoutSeconds: 30, extraAgents });
        stacks.push(ours);
        const theirs = await otherHarness.startLabStack({ stack: "paired-b", readyTimeoutSeconds: 30, extraAgents });
        stacks.push(theirs);
        const firstOurs = ok(`first up (${head})`, await ours.stack.up(30 * 60_000));
        const firstTheirs = ok(`first up (${other})`, await theirs.stack.up(30 * 60_000));
        const hosts = ours.hosts.length;
        console.log(`paired no-op previews, ${hosts} hosts (${ours.k3sNodes.length} K3s nodes): A = this tree (${head}), B = ${other}`);
        console.log(`  first up (one each, not paired): A ${seconds(firstOurs)} s, B ${seconds(firstTheirs)} s`);
        const [stdinOurs, stdinTheirs] = [await stdinBytes(ours), await stdinBytes(theirs)];
        console.log(
            `  steps' plain stdin in the state (every step's registration carries its stdin): A ${kilobytes(stdinOurs.bytes)} KB, B ${kilobytes(stdinTheirs.bytes)} KB ` +
                `(${stdinOurs.steps} steps, ${stdinOurs.secret} of them secret and not counted)`,
        );
        const a: number[] = [];
        const b: number[] = [];
        for (let round = 0; round < rounds; round++) {
            const aFirst = round % 2 === 0;
            const first = ok("preview", await (aFirst ? ours : theirs).stack.preview());
            const second = ok("preview", await (aFirst ? theirs : ours).stack.preview());
            a.push(aFirst ? first : second);
            b.push(aFirst ? second : first);
            console.log(
                `  pair ${round + 1} (${aFirst ? "A first" : "B first"}): A ${seconds(a[round])} s, B ${seconds(b[round])} s, A/B ×${(a[round] / b[round]).toFixed(2)}`,
            );
        }
        const ratios = a.map((each, round) => each / b[round]);
        console.log(
            `  medians: A ${seconds(median(a))} s, B ${seconds(median(b))} s; A/B per pair: median ×${median(ratios).toFixed(2)}, min ×${Math.min(...ratios).toFixed(2)}, max ×${Math.max(...ratios).toFixed(2)}; A faster in ${ratios.filter((ratio) => ratio < 1).length} of ${rounds}`,
        );
    } finally {
        for (const stack of stacks.reverse()) await stack.stop();
        try {
            execFileSync("git", ["-C", REPO_ROOT, "worktree", "remove", "--force", path.join(scratch, "main")], { stdio: "pipe" });
        } catch {
            // never checked out: nothing to remove
        }
        fs.rmSync(scratch, { recursive: true, force: true });
    }
}
