import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Raw } from "../support/fixtures";
import { CONTROL, GENESIS, startLabStack, type LabStack } from "../../scripts/lab/stack/labStack";
import { PulumiStack, type RunResult } from "../../scripts/lab/stack/engine";
import { killTree, processTree } from "../../scripts/lab/processes";
import { startS3Server, type S3Server } from "../support/s3Server";

/*
 * Issue 24, part 1: the stack's state on an S3-compatible store with Pulumi's lock
 * (README "Team state on S3"; docs/runbooks/state-on-s3.md).
 *
 * REAL: the Pulumi CLI/engine v3.274.0 and its DIY backend's S3 driver, the Node.js language
 * host, the program, an S3 server on loopback (versitygw, scripts/tools/build-versitygw.sh),
 * the aws CLI reading the bucket back, sshd on the lab hosts and the program's scripts over SSH.
 * TEST DOUBLES: the command/tls providers (scripts/lab/provider-doubles), k3s
 * (scripts/lab/k3s-double: its neverReady cue holds a run inside the genesis's rollout step
 * until the test releases it) and the lab's service stand-ins.
 *
 * The lab is the minimal one (the genesis and the control host). Tests build on each other in
 * order, like successive runs of one team's stack; every wait is on an event (the lock object
 * in the bucket, the k3s double's restart), bounded in time and in polls.
 */

const PER_TEST_MS = 10 * 60_000;
jest.setTimeout(PER_TEST_MS);
const UP_TIMEOUT_MS = 6 * 60_000;
/** How long the rollout step waits for the held genesis before it gives up (the hold is released long before). */
const READY_TIMEOUT_SECONDS = 240;
const STACK = "s3";
const BUCKET = "shortcircuit-state";
const MIGRATED_BUCKET = "shortcircuit-migrated";
const LOCK_KEY = new RegExp(`^\\.pulumi/locks/[^/]+/shortcircuit/${STACK}/[0-9a-f-]{36}\\.json$`);
const LOCKED = "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.";
const CHANGES = /\b\d+ (created|updated|replaced|deleted)\b/;

let lab: LabStack;
let s3: S3Server;
let stack: PulumiStack;
let fleet: Raw;
let tmpDir = "";
/** The CLI pids of the held runs, killed (with all below them) in afterAll should a failed test leave one running. */
const heldRuns = new Set<number>();

function expectOk(result: RunResult): void {
    if (result.code !== 0) throw new Error(`pulumi exited ${result.code}${result.timedOut ? " (timed out)" : ""}:\n${result.output.slice(-6000)}`);
}

/** Polls `check` every intervalMs until it answers true: at most timeoutMs and timeoutMs / intervalMs polls. */
async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 180_000, intervalMs = 250): Promise<void> {
    const started = Date.now();
    for (let poll = 0; poll < Math.ceil(timeoutMs / intervalMs); poll += 1) {
        if (await check()) return;
        if (Date.now() - started > timeoutMs) break;
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
    throw new Error(`timed out after ${Date.now() - started} ms waiting for ${what}`);
}

const locks = async (bucket = BUCKET): Promise<string[]> => (await s3.list(bucket, ".pulumi/locks/")).map((object) => object.key);

/** The stack's updates, newest first (`pulumi stack history` takes no lock). */
async function history(
    target: PulumiStack,
    env?: Record<string, string>,
): Promise<{ version: number; kind: string; result: string; resourceChanges?: Record<string, number> }[]> {
    const result = await target.run(["stack", "history", "--json", "--stack", target.options.stack], { env });
    if (result.code !== 0) throw new Error(`pulumi stack history exited ${result.code}:\n${result.output}`);
    return JSON.parse(result.stdout) as { version: number; kind: string; result: string; resourceChanges?: Record<string, number> }[];
}

/** The resources of the stack's checkpoint as the bucket holds it: urn -> outputs. */
async function bucketResources(): Promise<Record<string, unknown>> {
    const checkpoint = JSON.parse((await s3.get(BUCKET, `.pulumi/stacks/shortcircuit/${STACK}.json`)).toString("utf8")) as {
        checkpoint: { latest?: { resources?: { urn: string; outputs?: unknown }[]; pending_operations?: unknown[] } };
    };
    return Object.fromEntries((checkpoint.checkpoint.latest?.resources ?? []).map((resource) => [resource.urn, resource.outputs ?? null]));
}

/** Running (not gone, not a zombie). */
function alive(pid: number): boolean {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
    } catch {
        return false;
    }
}

/** Kills `pid` and every process below it, each by its pid (SIGKILL). */
/** A label on the genesis: a config change whose rollout restarts its k3s (held there while neverReady is cued). */
function labelGenesis(value: string): void {
    const genesis = fleet.nodes.find((node: Raw) => node.name === GENESIS);
    genesis.labels = { ...(genesis.labels ?? {}), "shortcircuit.e2e/state-backend": value };
    stack.setFleet(fleet);
}

/** Starts an `up` that is held inside the genesis's rollout step; resolves once the k3s double restarted on the new config and the run's lock object is in the bucket. */
async function startHeldUp(label: string): Promise<{ done: Promise<RunResult>; pid: number; lockKey: string; finished: () => boolean }> {
    labelGenesis(label);
    await lab.fleet.setK3sBehaviour(GENESIS, { neverReady: true });
    const startsBefore = lab.fleet.k3sState(GENESIS)?.history.length ?? 0;
    let pid = 0;
    let finished = false;
    const done = stack
        .up(UP_TIMEOUT_MS, [], (spawned) => {
            pid = spawned;
            heldRuns.add(spawned);
        })
        .then((result) => {
            finished = true;
            heldRuns.delete(pid);
            return result;
        });
    const early = async (): Promise<void> => {
        if (finished) throw new Error(`the held up ended before it was held:\n${(await done).output.slice(-4000)}`);
    };
    await waitFor(`the genesis's k3s to restart with shortcircuit.e2e/state-backend=${label}`, async () => {
        await early();
        return (
            (lab.fleet.k3sState(GENESIS)?.history.length ?? 0) > startsBefore &&
            lab.read(GENESIS, "/etc/rancher/k3s/config.yaml").includes(`shortcircuit.e2e/state-backend=${label}`)
        );
    });
    let held: string[] = [];
    await waitFor(
        "the held up's lock object in the bucket",
        async () => {
            await early();
            held = await locks();
            return held.length > 0;
        },
        60_000,
        500,
    );
    expect(held).toHaveLength(1);
    expect(held[0]).toMatch(LOCK_KEY);
    return { done, pid, lockKey: held[0], finished: () => finished };
}

beforeAll(async () => {
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "shortcircuit-s3-"));
    s3 = await startS3Server(tmpDir);
    await s3.createBucket(BUCKET);
    await s3.createBucket(MIGRATED_BUCKET);
    lab = await startLabStack({ stack: "e2e", readyTimeoutSeconds: READY_TIMEOUT_SECONDS, minimal: true });
    fleet = structuredClone(lab.config);
    stack = new PulumiStack({
        ...lab.stack.options,
        runDir: path.join(lab.runDir, "s3"),
        stack: STACK,
        fleet,
        backend: { url: s3.loginUrl(BUCKET), env: s3.env },
    });
    await stack.init();
    console.log(
        [
            "state-backend e2e:",
            `  pulumi CLI ${lab.engine.cliVersion} (real), its DIY backend on ${s3.loginUrl(BUCKET)}`,
            `  S3 server: real ${s3.version} (${s3.binary}) on ${s3.endpoint}, posix backend in ${tmpDir}; read back with the aws CLI`,
            `  command provider: ${stack.plugins.command === "double" ? "TEST DOUBLE (scripts/lab/provider-doubles/command)" : `real, from ${stack.plugins.command}`}; k3s: TEST DOUBLE (scripts/lab/k3s-double)`,
        ].join("\n"),
    );
}, PER_TEST_MS);

afterAll(async () => {
    // Each step on its own: one that fails must not leave the lab, versitygw or the directory behind.
    const steps: [string, () => unknown][] = [
        ["kill a held run a failed test left", () => [...heldRuns].forEach((pid) => killTree(processTree(pid)))],
        ["release the genesis (its SSH session ends)", () => lab?.fleet.setK3sBehaviour(GENESIS, { neverReady: false })],
        ["stop the lab", () => lab?.stop()],
        ["stop versitygw", () => s3?.stop()],
        ["remove the S3 directory", () => tmpDir && fs.rmSync(tmpDir, { recursive: true, force: true })],
    ];
    const failed: string[] = [];
    for (const [what, step] of steps) {
        try {
            await step();
        } catch (error) {
            failed.push(`${what}: ${String(error)}`);
        }
    }
    if (failed.length > 0) throw new Error(`cleanup:\n${failed.join("\n")}`);
}, 120_000);

describe("the lab stack's state on a real S3 server (versitygw) with Pulumi's lock", () => {
    it("1. up with the S3 backend: the checkpoint and its history are objects in the bucket, no lock is left", async () => {
        expectOk(await stack.up(UP_TIMEOUT_MS));
        const keys = (await s3.list(BUCKET)).map((object) => object.key);
        expect(keys).toContain(".pulumi/meta.yaml");
        expect(keys).toContain(`.pulumi/stacks/shortcircuit/${STACK}.json`);
        expect(keys.filter((key) => key.startsWith(`.pulumi/history/shortcircuit/${STACK}/`) && key.endsWith(".history.json"))).toHaveLength(1);
        expect(await locks()).toEqual([]);
        const exported = await stack.exportState();
        const inBucket = await bucketResources();
        expect(Object.keys(inBucket).length).toBeGreaterThan(10);
        expect(Object.keys(inBucket).sort()).toEqual((exported.deployment.resources ?? []).map((resource) => resource.urn).sort());
        expect((await stack.outputs()).rollout).toEqual([GENESIS]);
        console.log(`bucket after the first up (${keys.length} objects):\n  ${keys.join("\n  ")}`);
    });

    it("2. two concurrent ups: the second is refused by the first's lock, named in the message; the state is the first run's result", async () => {
        const before = await history(stack);
        const resourcesBefore = Object.keys(await bucketResources()).sort();
        const first = await startHeldUp("two");
        const second = await stack.up(UP_TIMEOUT_MS);
        // Refused at once, while the first still runs: the lock is checked before the program runs.
        expect(first.finished()).toBe(false);
        expect(second.code).not.toBe(0);
        expect(second.output).toContain(LOCKED);
        expect(second.output).toContain(`${s3.loginUrl(BUCKET).split("?")[0]}/${first.lockKey}`);
        expect(second.output).toMatch(new RegExp(`${first.lockKey.replace(/[.]/g, "\\.")}[^\\n]*: created by [^ ]+@[^ ]+ \\(pid ${first.pid}\\) at `));
        expect(second.output).not.toMatch(/Updating|Previewing/);
        expect(await locks()).toEqual([first.lockKey]);
        console.log(`the second up, refused (exit ${second.code}, ${second.durationMs} ms):\n${second.output.trim()}`);
        // What the lock does not cover: a preview and an export run beside the held up.
        const preview = await stack.preview();
        expectOk(preview);
        expect(preview.output).not.toContain("currently locked");
        expect((await stack.exportState()).deployment.resources?.length).toBe(resourcesBefore.length);
        expect(first.finished()).toBe(false);
        console.log(`beside the held up: pulumi preview exited ${preview.code}, pulumi stack export succeeded (neither takes the lock)`);

        await lab.fleet.setK3sBehaviour(GENESIS, { neverReady: false });
        const firstResult = await first.done;
        expectOk(firstResult);
        expect(firstResult.output).toMatch(/\b\d+ updated\b/);
        expect(await locks()).toEqual([]);
        // Exactly one more update in the history (the first's); the refused run left none.
        const after = await history(stack);
        expect(after.length).toBe(before.length + 1);
        expect(after[0]).toMatchObject({ kind: "update", result: "succeeded" });
        // The state is one run's result: the same resources, the new config on the genesis,
        // and a serial rerun of the same program has nothing to do.
        expect(Object.keys(await bucketResources()).sort()).toEqual(resourcesBefore);
        const outputs = await stack.outputs();
        expect(lab.read(GENESIS, "/etc/rancher/k3s/config.yaml")).toContain("shortcircuit.e2e/state-backend=two");
        expect(crypto.createHash("sha256").update(lab.read(GENESIS, "/etc/rancher/k3s/config.yaml")).digest("hex")).toBe(
            (outputs.k3sConfigSha256 as Record<string, string>)[GENESIS],
        );
        const serial = await stack.up(UP_TIMEOUT_MS);
        expectOk(serial);
        expect(serial.output).not.toMatch(CHANGES);
    });

    it("3. an up killed mid-run: its lock stays and the next up is refused; `pulumi cancel` removes it; then up converges", async () => {
        const killed = await startHeldUp("three");
        // As a crash would: the CLI and everything it started at once. The language host and each
        // provider plugin run in their own process group (a SIGKILL of the CLI's group alone left
        // them running, orphaned, for good), so every process of the tree is killed by pid.
        const tree = processTree(killed.pid);
        const ownGroups = tree.filter((each) => each.pgid !== killed.pid).map((each) => each.command);
        console.log(`killing the held up's ${tree.length} processes; in their own process group: ${ownGroups.join(", ") || "none"}`);
        killTree(tree);
        const killedResult = await killed.done;
        expect(killedResult.code).toBeNull();
        await waitFor("every process of the killed up to be gone", () => tree.every((each) => !alive(each.pid)), 30_000);
        // The held remote step may go on without its client: let it end.
        await lab.fleet.setK3sBehaviour(GENESIS, { neverReady: false });
        expect(await locks()).toEqual([killed.lockKey]);
        const lock = JSON.parse((await s3.get(BUCKET, killed.lockKey)).toString("utf8")) as {
            pid: number;
            username: string;
            hostname: string;
            timestamp: string;
        };
        expect(lock.pid).toBe(killed.pid);
        console.log(`lock object left by the killed up: ${killed.lockKey} = ${JSON.stringify(lock)}`);

        const refused = await stack.up(UP_TIMEOUT_MS);
        expect(refused.code).not.toBe(0);
        expect(refused.output).toContain(LOCKED);
        expect(refused.output).toContain(`(pid ${killed.pid})`);
        console.log(`the next up after the kill (exit ${refused.code}):\n${refused.output.trim()}`);

        const cancel = await stack.run(["cancel", "--stack", STACK, "--yes"]);
        expect(cancel.code).toBe(0);
        expect(cancel.output).toContain(`The currently running update for '${STACK}' has been canceled!`);
        expect(await locks()).toEqual([]);
        console.log(`pulumi cancel --yes: ${cancel.output.trim()}`);

        const pending =
            (
                JSON.parse((await s3.get(BUCKET, `.pulumi/stacks/shortcircuit/${STACK}.json`)).toString("utf8")) as {
                    checkpoint: { latest?: { pending_operations?: { type: string; resource: { urn: string } }[] } };
                }
            ).checkpoint.latest?.pending_operations ?? [];
        console.log(`pending operations in the checkpoint the killed up left: ${JSON.stringify(pending.map((op) => `${op.type} ${op.resource.urn}`))}`);

        expect(pending.map((op) => op.type)).toEqual(["updating"]);

        const rerun = await stack.up(UP_TIMEOUT_MS);
        expectOk(rerun);
        const warning = rerun.output.split("\n").filter((line) => /pending operation|interrupted while/.test(line));
        console.log(
            `the up after pulumi cancel: ${rerun.output.match(CHANGES)?.[0] ?? "no changes"}; its lines about the interrupted run:\n${warning.join("\n") || "(none)"}`,
        );
        // The refresh before it (Pulumi.yaml: refresh: always) dropped the pending operation.
        const after = JSON.parse((await s3.get(BUCKET, `.pulumi/stacks/shortcircuit/${STACK}.json`)).toString("utf8")) as {
            checkpoint: { latest?: { pending_operations?: unknown[] } };
        };
        expect(after.checkpoint.latest?.pending_operations ?? []).toEqual([]);
        expect(lab.read(GENESIS, "/etc/rancher/k3s/config.yaml")).toContain("shortcircuit.e2e/state-backend=three");
        const converged = await stack.up(UP_TIMEOUT_MS);
        expectOk(converged);
        expect(converged.output).not.toMatch(CHANGES);
        expect(await locks()).toEqual([]);
    });

    it("4. a file:// stack moved into a bucket by copying its .pulumi tree: same history, secrets still decrypt, up is a no-op", async () => {
        // The lab's own stack ("e2e", file:// backend, same passphrase and stack file throughout).
        const local = lab.stack;
        expectOk(await local.up(UP_TIMEOUT_MS));
        const localHistory = await history(local);
        const token = await local.check(["config", "get", "k3sToken", "--stack", local.options.stack]);
        await s3.uploadTree(path.join(local.backendDir, ".pulumi"), MIGRATED_BUCKET, ".pulumi");
        const onS3 = { PULUMI_BACKEND_URL: s3.loginUrl(MIGRATED_BUCKET), ...s3.env };

        const movedHistory = await history(local, onS3);
        expect(movedHistory).toEqual(localHistory);
        expect(movedHistory.length).toBeGreaterThan(0);
        const secret = await local.run(["config", "get", "k3sToken", "--stack", local.options.stack], { env: onS3 });
        expect(secret.stdout).toBe(token.stdout);
        const up = await local.run(["up", "--stack", local.options.stack, "--yes", "--skip-preview", "--color", "never", "--suppress-progress"], {
            env: onS3,
            timeoutMs: UP_TIMEOUT_MS,
        });
        expectOk(up);
        expect(up.output).not.toMatch(CHANGES);
        expect((await history(local, onS3)).length).toBe(localHistory.length + 1);
        expect(await locks(MIGRATED_BUCKET)).toEqual([]);
        console.log(`moved ${localHistory.length} update(s) of history from file:// to ${s3.loginUrl(MIGRATED_BUCKET)}; the up there changed nothing`);
    });

    it("5. every object in both buckets, read back: no plaintext secret, key or PEM block", async () => {
        const needles: Record<string, string> = {
            k3sToken: lab.secrets.k3sToken,
            "k3sToken (base64)": Buffer.from(lab.secrets.k3sToken).toString("base64"),
            headscaleNoiseKey: lab.secrets.headscaleNoiseKey.slice("privkey:".length),
            derpKey: lab.secrets.derpKey.slice("privkey:".length),
            passphrase: stack.passphrase,
            "file:// passphrase": lab.stack.passphrase,
        };
        lab.secrets.sshPrivateKey
            .split("\n")
            .filter((line) => line.length > 40)
            .forEach((line, index) => (needles[`ssh key line ${index}`] = line));
        for (const host of [GENESIS, CONTROL]) {
            lab.read(host, "/etc/nebula/host.key")
                .split("\n")
                .filter((line) => line.length > 20 && !line.startsWith("-----"))
                .forEach((line, index) => (needles[`${host} nebula host.key line ${index}`] = line));
        }
        let read = 0;
        for (const bucket of [BUCKET, MIGRATED_BUCKET]) {
            const objects = await s3.getAll(bucket, path.join(tmpDir, "read-back", bucket));
            // Every object the listing names was read back, and nothing else.
            expect(Object.keys(objects).sort()).toEqual((await s3.list(bucket)).map((object) => object.key).sort());
            for (const [key, content] of Object.entries(objects)) {
                const object = `${bucket}/${key}`;
                const text = content.toString("utf8");
                read += 1;
                for (const [name, needle] of Object.entries(needles)) {
                    expect({ object, name, leaks: text.includes(needle) }).toEqual({ object, name, leaks: false });
                }
                expect({ object, pem: /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text) }).toEqual({ object, pem: false });
            }
        }
        expect(read).toBeGreaterThan(5);
        console.log(`read back ${read} objects from ${BUCKET} and ${MIGRATED_BUCKET}: no secret in any`);
    });
});
