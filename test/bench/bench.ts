/*
 * `npm run bench`: prints how long validation, rendering and graph construction take for
 * the prod fleet and synthetic fleets of 200 and 1000 nodes, and the cost per node, so a
 * change that makes the program grow worse than linearly shows up as a rising per-node
 * figure. Numbers only; nothing here asserts a timing.
 */
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { renderFleetFiles } from "../../scripts/render/files";
import { rawFleetFromStackFile, readStackFile, stackFilePath } from "../../stacks/stackFile";
import { validateFleet } from "../../stacks/validate";
import { syntheticRawFleet } from "../../scripts/syntheticFleet";
import { checkLabPrerequisites, startLabFleet, type LabFleet } from "../../scripts/lab";
import { labStackOnBridge } from "../support/labStack";
import { EngineEmulator, orderedCommands } from "../support/rolloutDriver";
import { installStrictMocks, setStackConfig, settleRegistrations, type MockRecorder } from "../support/pulumiMocks";

interface Case {
    label: string;
    raw: () => unknown;
    repeats: number;
}

/** Fixed clock and PKI seed so every repeat signs the same certificates. */
const BENCH_CLOCK = new Date("2026-11-22T00:00:00Z");
const BENCH_SEED = "5c".repeat(32);

function median(values: number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
}

function timeMs(action: () => void): number {
    const start = performance.now();
    action();
    return performance.now() - start;
}

function validateAndRender(raw: unknown): { nodes: number; files: number } {
    const { fleet, problems } = validateFleet(raw);
    if (!fleet) {
        throw new Error(`benchmark fleet is invalid: ${problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`);
    }
    return { nodes: fleet.nodes.length, files: renderFleetFiles(fleet, { now: BENCH_CLOCK, pkiSeedHex: BENCH_SEED }).files.size };
}

const projectRoot = path.resolve(__dirname, "../..");

/** Drops the program's own modules so each run constructs the graph from scratch. */
function forgetProgramModules(): void {
    for (const key of Object.keys(require.cache)) {
        if (key.startsWith(projectRoot) && !key.includes(`${path.sep}node_modules${path.sep}`) && !key.startsWith(path.join(projectRoot, "test"))) {
            delete require.cache[key];
        }
    }
}

async function constructGraph(raw: unknown): Promise<{ ms: number; recorder: MockRecorder }> {
    // The same strict, provider-faithful mocks the tests use (real keys for tls.PrivateKey).
    const recorder = await installStrictMocks({ stack: "bench" });
    setStackConfig(raw);
    forgetProgramModules();
    const start = performance.now();
    // index.ts exports main() for the language host to call: loading the module builds nothing.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const main = require("../../index") as typeof import("../../index");
    await main({ exitOnRefusal: false });
    await settleRegistrations();
    return { ms: performance.now() - start, recorder };
}

/** Issue #25's goal for graph construction under mocks, per host. */
const GRAPH_GOAL_US_PER_HOST = 5000;
/** Bare commands the SDK floor is measured with: enough for a stable per-resource figure. */
const FLOOR_COMMANDS = 2000;

/**
 * The floor under the graph figure, measured in the same run: what the Pulumi SDK and these
 * mocks cost per resource when the program does nothing else (bare `command:remote:Command`s
 * with one-line inputs, built in a loop under one component), times each fleet's resources per
 * host. The program's own share of a graph figure is what lies above it. Measured after the
 * graphs, so the stack-trace formatter is the one the program leaves installed
 * (components/stackTraceCache.ts).
 */
async function sdkFloorFigure(rows: { label: string; hosts: number; resources: number }[]): Promise<void> {
    const recorder = await installStrictMocks({ stack: "bench" });
    const pulumi = await import("@pulumi/pulumi");
    const command = await import("@pulumi/command");
    const start = performance.now();
    const parent = new pulumi.ComponentResource("shortcircuit:bench:Floor", "floor", {});
    for (let index = 0; index < FLOOR_COMMANDS; index++) {
        new command.remote.Command(`floor-${index}`, { connection: { host: "192.0.2.1", user: "root" }, create: "true", stdin: "" }, { parent });
    }
    await settleRegistrations();
    const usPerResource = ((performance.now() - start) * 1000) / recorder.resources.length;
    const perHost = rows
        .map(
            (row) =>
                `${row.label} ${((usPerResource * row.resources) / row.hosts).toFixed(0)} µs per host (${(row.resources / row.hosts).toFixed(1)} resources per host)`,
        )
        .join("; ");
    console.log(
        `SDK floor: ${FLOOR_COMMANDS} bare commands and their component under the same mocks, ${usPerResource.toFixed(0)} µs per resource; ` +
            `× resources per host: ${perHost}; goal ≤${GRAPH_GOAL_US_PER_HOST} µs per host`,
    );
}

/** The k3s test double's ready delays the rollout is measured at. */
const READY_DELAYS_MS = [2000, 15000];
const FIXED_SOAK_SECONDS = 30;

/**
 * The lab fleet bootstrapped over real SSH with the k3s test double's ready delay set: the
 * health-gated serial rollout against its floor (the sum of the ready delays) and against
 * the fixed 30 s soak per node the playbooks used.
 */
async function rolloutFigure(readyDelayMs: number): Promise<void> {
    const missing = checkLabPrerequisites();
    if (missing.length > 0) {
        console.log(`rollout: not measured, the lab fleet needs ${missing.join("; ")}`);
        return;
    }
    const lab = labStackOnBridge("198.18.93", 60, true);
    const fleet = await startLabFleet({ bridgeCidr: "198.18.93.0/24", hosts: lab.hosts });
    try {
        for (const host of lab.hosts) {
            await fleet.setK3sBehaviour(host.name, { readyDelayMs });
        }
        const { recorder } = await constructGraph(lab.config);
        const engine = new EngineEmulator(fleet);
        const start = performance.now();
        const result = await engine.up(orderedCommands(recorder, "k3s-"));
        const totalS = (performance.now() - start) / 1000;
        if (result.failed) {
            throw new Error(`rollout failed at ${result.failed.name}: ${result.failed.result.stderr}`);
        }
        const nodes = lab.hosts.length;
        const floorS = (nodes * readyDelayMs) / 1000;
        const soakS = nodes * FIXED_SOAK_SECONDS;
        console.log(
            `rollout: ${nodes} lab nodes, ready delay ${readyDelayMs / 1000} s each: ${totalS.toFixed(1)} s total, overhead ${((totalS - floorS) / nodes).toFixed(2)} s per node; ` +
                `floor (sum of ready delays) ${floorS.toFixed(1)} s, ratio ${(totalS / floorS).toFixed(2)}; ` +
                `fixed ${FIXED_SOAK_SECONDS} s soak ${soakS} s, ratio ${(totalS / soakS).toFixed(2)}; ` +
                // Issue #25: at most 0.5 s of overhead per node, and at most 1.05× the floor at 15 s ready.
                `goal ≤ 0.50 s per node${readyDelayMs >= 15_000 ? " and ratio ≤ 1.05" : ""}`,
        );
        await rolloutCostsPerCall(fleet, lab.hosts[0].name);
    } finally {
        await fleet.stop();
    }
}

/** SSH sessions on a node's critical path: its apply, which drains and uncordons it too (pre-flight runs beside earlier nodes). */
const SESSIONS_PER_NODE = 1;

/**
 * What the rollout's overhead is made of, measured on the same lab fleet right after it: one
 * SSH session that runs nothing, and one call of the k3s double's kubectl (a node process; the
 * real kubectl is a Go binary) on top of a session.
 */
async function rolloutCostsPerCall(fleet: LabFleet, host: string): Promise<void> {
    const sessionS: number[] = [];
    const kubectlS: number[] = [];
    for (let sample = 0; sample < 5; sample++) {
        let start = performance.now();
        await fleet.ssh(host, "true", "", { timeoutMs: 30_000 });
        sessionS.push((performance.now() - start) / 1000);
        start = performance.now();
        await fleet.ssh(host, `k3s kubectl --request-timeout=10s get node ${host} -o name`, "", { timeoutMs: 30_000 });
        kubectlS.push((performance.now() - start) / 1000);
    }
    const session = median(sessionS);
    const kubectl = median(kubectlS) - session;
    console.log(
        `  of which: an SSH session that runs nothing ${session.toFixed(2)} s (median of 5), × ${SESSIONS_PER_NODE} per node = ${(SESSIONS_PER_NODE * session).toFixed(2)} s; ` +
            `one call of the k3s double's kubectl ${kubectl.toFixed(2)} s (a node process); a bootstrapped node makes 3 (wait, get, patch; ` +
            `a server also /healthz/etcd), a systemctl is-active and a restart`,
    );
}

async function main(): Promise<void> {
    // `npm run bench -- --rollout-only`: just the lab rollout figures (the slow, load-sensitive part).
    if (process.argv.includes("--engine-only")) {
        await (await import("./engineBench")).engineFigures();
        return;
    }
    // `npm run bench -- --paired-preview REV [--agents N] [--rounds N]`: no-op previews of this
    // tree's program and REV's, taken in turn (test/bench/pairedPreview.ts).
    const paired = process.argv.indexOf("--paired-preview");
    if (paired !== -1) {
        const option = (name: string, fallback: number): number => {
            const at = process.argv.indexOf(name);
            const value = at === -1 ? fallback : Number(process.argv[at + 1]);
            if (!Number.isInteger(value) || value < 0) throw new Error(`bench: ${name} takes a whole number`);
            return value;
        };
        const rev = process.argv[paired + 1];
        if (rev === undefined || rev.startsWith("--")) throw new Error("bench: --paired-preview takes a commit (e.g. HEAD~1)");
        await (await import("./pairedPreview")).pairedPreviewFigures(rev, option("--agents", 17), Math.max(1, option("--rounds", 9)));
        return;
    }
    // `npm run bench -- --lag-only`: just Headscale's replica lag (test/bench/replicationLag.ts).
    if (process.argv.includes("--lag-only")) {
        await (await import("./replicationLag")).replicationLagFigure();
        return;
    }
    if (process.argv.includes("--rollout-only")) {
        for (const readyDelayMs of READY_DELAYS_MS) {
            await rolloutFigure(readyDelayMs);
        }
        return;
    }
    const cases: Case[] = [
        { label: "prod", raw: () => rawFleetFromStackFile(readStackFile(stackFilePath("prod"))), repeats: 21 },
        { label: "synthetic-200", raw: () => syntheticRawFleet(200), repeats: 11 },
        { label: "synthetic-1000", raw: () => syntheticRawFleet(1000), repeats: 5 },
    ];
    console.log("fleet            hosts  files  validate+render ms  per host µs  graph ms  per host µs  goal µs  ×goal  resources");
    const graphRows: { label: string; hosts: number; resources: number }[] = [];
    for (const benchCase of cases) {
        const raw = benchCase.raw();
        let shape = validateAndRender(raw); // warm-up
        const renderTimes = Array.from({ length: benchCase.repeats }, () => timeMs(() => (shape = validateAndRender(raw))));
        const graphRuns: { ms: number; resources: number }[] = [];
        for (let run = 0; run < Math.min(benchCase.repeats, 3); run++) {
            const graph = await constructGraph(raw);
            graphRuns.push({ ms: graph.ms, resources: graph.recorder.resources.length });
        }
        const renderMs = median(renderTimes);
        const graphMs = median(graphRuns.map((run) => run.ms));
        console.log(
            [
                benchCase.label.padEnd(15),
                String(shape.nodes).padStart(6),
                String(shape.files).padStart(6),
                renderMs.toFixed(2).padStart(19),
                ((renderMs * 1000) / shape.nodes).toFixed(1).padStart(12),
                graphMs.toFixed(2).padStart(9),
                ((graphMs * 1000) / shape.nodes).toFixed(1).padStart(12),
                `≤${GRAPH_GOAL_US_PER_HOST}`.padStart(8),
                ((graphMs * 1000) / shape.nodes / GRAPH_GOAL_US_PER_HOST).toFixed(2).padStart(6),
                String(graphRuns[0].resources).padStart(10),
            ].join(" "),
        );
        graphRows.push({ label: benchCase.label, hosts: shape.nodes, resources: graphRuns[0].resources });
    }
    console.log("(medians; per-host cost should stay roughly flat as the fleet grows)");
    await sdkFloorFigure(graphRows);
    // `npm run bench -- --graph-only`: just the table above (validation, rendering, the graph).
    if (process.argv.includes("--graph-only")) return;
    for (const readyDelayMs of READY_DELAYS_MS) {
        await rolloutFigure(readyDelayMs);
    }
    await driftFigures();
    // How old the newest change a restore of Headscale's replica brings back is.
    await (await import("./replicationLag")).replicationLagFigure();
    // The real Pulumi engine on the lab fleet (test/bench/engineBench.ts).
    await (await import("./engineBench")).engineFigures();
}

main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
});

/**
 * `drift` (scripts/drift.ts): the lab stack on a lab fleet over real SSH, and 50 synthetic
 * hosts whose sessions all go to one loopback sshd, as total and per-host time.
 */
async function driftFigures(): Promise<void> {
    const { startDriftLab } = await import("../support/driftLab");
    const { startLoopbackSshd } = await import("../support/loopbackSshd");
    const { runDriftCommand } = await import("../../scripts/drift");
    const { runDrift } = await import("../../scripts/drift/run");
    const { driftExpectation } = await import("../../scripts/drift/expect");
    const { Writable } = await import("node:stream");
    const missing = checkLabPrerequisites();
    if (missing.length > 0) {
        console.log(`drift: not measured, the lab fleet needs ${missing.join("; ")}`);
        return;
    }
    const discard = (): NodeJS.WritableStream => new Writable({ write: (_chunk, _encoding, callback) => callback() });
    const lab = await startDriftLab("198.18.98");
    try {
        const args = ["--config-file", lab.configFile, "--control-host", lab.controlHost, ...lab.sshArgs, "--json"];
        const times: number[] = [];
        for (let run = 0; run < 3; run++) {
            const start = performance.now();
            const code = await runDriftCommand(args, discard(), discard(), {});
            times.push(performance.now() - start);
            if (code !== 0) throw new Error(`drift on the clean lab fleet exited ${code}`);
        }
        console.log(`drift: lab fleet, ${lab.fleet.hosts.length} hosts over SSH: ${(median(times) / 1000).toFixed(2)} s (median of 3, concurrency 8)`);
    } finally {
        await lab.cleanup();
    }
    const sshd = await startLoopbackSshd();
    try {
        const { fleet } = validateFleet(syntheticRawFleet(50));
        if (!fleet) throw new Error("synthetic fleet is invalid");
        const expectation = driftExpectation(fleet, { controlHost: "127.0.0.1" });
        for (const concurrency of [1, 8, 16]) {
            const start = performance.now();
            const report = await runDrift(expectation, {
                stack: "synthetic-50",
                concurrency,
                diff: false,
                now: new Date(),
                ssh: {
                    identity: sshd.keyPath,
                    configFile: "/dev/null",
                    knownHostsFile: "/dev/null",
                    strictHostKeyChecking: "no",
                    connectTimeoutSeconds: 5,
                    hostTimeoutSeconds: 60,
                    target: () => ({ host: "127.0.0.1", port: sshd.port, user: "root", timeoutSeconds: 5, dialAttempts: 1, become: "none" }),
                },
            });
            const seconds = (performance.now() - start) / 1000;
            const unread = report.hosts.filter((host) => host.status === "unreachable");
            if (unread.length > 0) throw new Error(`loopback drift: ${unread.length} hosts unread: ${unread[0].reason}`);
            console.log(
                `drift: ${report.hosts.length} hosts via one loopback sshd, concurrency ${concurrency}: ${seconds.toFixed(2)} s, ${((seconds * 1000) / report.hosts.length).toFixed(0)} ms per host`,
            );
        }
    } finally {
        sshd.stop();
    }
}
