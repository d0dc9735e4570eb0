/*
 * The real engine's figures (`npm run bench`, or alone: `npm run bench -- --engine-only`):
 * first up, no-op up, one-node up, an up that restarts every host's Nebula, and no-op preview
 * of the lab stack, and of a 22-host prod-sized stack (the lab stack plus 17 K3s agents), on
 * the lab fleet with the real Pulumi CLI, language host, kubernetes plugin and API server and
 * the command/tls TEST DOUBLES (test/e2e). Plus where a no-op preview's time goes: the CLI alone (`pulumi version`), the
 * engine with an empty program, and the program. Numbers only; nothing here asserts a timing.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { startLabStack, type LabStack } from "../../scripts/lab/stack/labStack";
import { PulumiStack, runProcess, type RunResult } from "../../scripts/lab/stack/engine";

export function median(values: number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
}

/** A pulumi run's duration; throws with its output's tail when it failed. */
export function ok(what: string, result: RunResult): number {
    if (result.code !== 0) throw new Error(`${what}: pulumi exited ${result.code}:\n${result.output.slice(-4000)}`);
    return result.durationMs;
}

/** The median duration of `runs` runs of one pulumi command, one after another (a run must succeed). */
async function medianOf(runs: number, what: string, run: () => Promise<RunResult>): Promise<number> {
    const durations: number[] = [];
    for (let each = 0; each < runs; each++) durations.push(ok(what, await run()));
    return median(durations);
}

const seconds = (ms: number): string => (ms / 1000).toFixed(1).padStart(8);
const ratioText = (ratio: number): string => `×${ratio.toFixed(2)}`;

/** Previews with and without Node's compile cache, taken in turn. */
const COMPILE_CACHE_PAIRS = 5;

/** Issue #25's goals for one stack's figures, printed beside them (seconds). */
interface Goals {
    noopPreview: number;
    programShare: number;
    firstUp?: number;
}

const goal = (measuredMs: number, goalS: number | undefined): string =>
    goalS === undefined ? "" : ` (goal ≤ ${goalS.toFixed(1)} s, ×${(measuredMs / 1000 / goalS).toFixed(2)})`;

/**
 * An `up` after a change to every host's Nebula config (its listen port): the wave restarts
 * every member in turn, as a CA rotation or a firewall change does. The wave is serial, so the
 * gaps between successive restarts (the service doubles' records) are its turns: one SSH
 * session, `nebula -test`, the service manager's calls and the health check each.
 */
async function nebulaWaveFigure(lab: LabStack): Promise<{ upMs: number; restarts: number; medianTurnS: number; minTurnS: number; maxTurnS: number }> {
    const nebula = lab.config.overlays.nebula;
    nebula.listenPort = (nebula.listenPort ?? 4242) + 1;
    lab.stack.setFleet(lab.config);
    const changedAt = Date.now();
    const upMs = ok("fleet-wide Nebula up", await lab.stack.up());
    const restarts = lab.nebulaMembers
        .flatMap((host) => lab.fleet.serviceEvents(host, "nebula.service").filter((event) => event.verb === "restart" && event.atMs >= changedAt))
        .map((event) => event.atMs)
        .sort((a, b) => a - b);
    if (restarts.length < 2) throw new Error(`fleet-wide Nebula up: ${restarts.length} Nebula restarts on ${lab.nebulaMembers.join(", ")}`);
    const turns = restarts.slice(1).map((at, index) => (at - restarts[index]) / 1000);
    return { upMs, restarts: restarts.length, medianTurnS: median(turns), minTurnS: Math.min(...turns), maxTurnS: Math.max(...turns) };
}

async function figuresFor(label: string, extraAgents: number, goals: Goals): Promise<void> {
    const lab = await startLabStack({ stack: "bench", readyTimeoutSeconds: 30, extraAgents });
    try {
        const first = ok("first up", await lab.stack.up(30 * 60_000));
        const noop = ok("no-op up", await lab.stack.up());
        const node = lab.k3sNodes.find((name) => name !== "lab-server-01") ?? lab.k3sNodes[0];
        const changed = lab.config.nodes.find((each) => each.name === node);
        if (!changed) throw new Error(`bench: no node ${node}`);
        changed.labels = { "shortcircuit.bench/changed": "yes" };
        lab.stack.setFleet(lab.config);
        const oneNode = ok("one-node up", await lab.stack.up());
        const wave = await nebulaWaveFigure(lab);
        const preview = await medianOf(3, "no-op preview", () => lab.stack.preview());
        const resources = (JSON.parse(fs.readFileSync(lab.stack.stateFile, "utf8")) as { checkpoint: { latest: { resources: unknown[] } } }).checkpoint.latest
            .resources.length;

        // Where a no-op preview's time goes.
        const env = lab.stack.env();
        const pulumi = path.join(lab.engine.pulumiBin, "pulumi");
        const cli = median(await Promise.all([0, 1, 2].map(() => runProcess(pulumi, ["version"], { env, timeoutMs: 60_000 }).then((r) => r.durationMs))));
        const empty = new PulumiStack({ runDir: lab.runDir, engine: lab.engine, stack: "bench-empty", fleet: lab.config, secrets: lab.secrets });
        await empty.init();
        fs.writeFileSync(path.join(empty.projectDir, "index.ts"), "export const empty = true;\n");
        const emptyPreview = await medianOf(3, "empty preview", () => empty.preview());
        const noRefresh = await medianOf(2, "preview --refresh=false", () => lab.stack.preview(["--refresh=false"]));
        const programShare = Math.max(0, noRefresh - emptyPreview);
        // tsconfig.json's "ts-node": { "swc": true } makes the language host's ts-node transpile with
        // swc; for comparison, the TypeScript compiler in transpile-only mode (the setup before).
        const withoutSwc = path.join(lab.stack.projectDir, "tsconfig.no-swc.json");
        fs.writeFileSync(withoutSwc, JSON.stringify({ extends: "./tsconfig.json", "ts-node": { swc: false, transpileOnly: true } }));
        const typescriptCompiler = { PULUMI_NODEJS_TSCONFIG_PATH: withoutSwc, PULUMI_NODEJS_TRANSPILE_ONLY: "true" };
        const slow = await medianOf(3, "TypeScript-compiler preview", () => lab.stack.preview([], undefined, typescriptCompiler));
        // Node's on-disk compile cache (NODE_COMPILE_CACHE, Node 22.1+) for the language host's node:
        // one preview fills it, then previews without and with it in turn, so a drift in the
        // machine's speed falls on both alike and each pair's ratio is read within that pair.
        const compileCache = { NODE_COMPILE_CACHE: path.join(lab.runDir, "node-compile-cache") };
        ok("compile-cache preview (filling)", await lab.stack.preview([], undefined, compileCache));
        const cachePairs: { without: number; cached: number }[] = [];
        for (let pair = 0; pair < COMPILE_CACHE_PAIRS; pair++) {
            const without = ok("preview (compile-cache pair)", await lab.stack.preview());
            cachePairs.push({ without, cached: ok("compile-cache preview", await lab.stack.preview([], undefined, compileCache)) });
        }
        const ratios = cachePairs.map((each) => each.cached / each.without);
        console.log(
            [
                `${label} (${lab.hosts.length} hosts, ${lab.k3sNodes.length} K3s nodes, ${resources} resources in state):`,
                `  first up ${seconds(first)} s${goal(first, goals.firstUp)}   no-op up ${seconds(noop)} s   one-node up ${seconds(oneNode)} s`,
                `  every host's Nebula config changed (the wave restarts each host in turn): up ${seconds(wave.upMs)} s; ${wave.restarts} restarts, ` +
                    `a host's turn (from one restart to the next) median ${wave.medianTurnS.toFixed(2)} s, min ${wave.minTurnS.toFixed(2)}, max ${wave.maxTurnS.toFixed(2)}`,
                `  no-op preview ${seconds(preview)} s (median of 3)${goal(preview, goals.noopPreview)}`,
                `  no-op preview split: CLI start ${seconds(cli)} s; engine + language host + empty TypeScript program ${seconds(emptyPreview)} s;`,
                `    the program's own graph and diffs ${seconds(programShare)} s${goal(programShare, goals.programShare)}; refresh (Pulumi.yaml refresh: always) ${seconds(Math.max(0, preview - noRefresh))} s`,
                `  for comparison, ts-node with the TypeScript compiler (transpile only) instead of swc: no-op preview ${seconds(slow)} s`,
                `  Node's compile cache warm (NODE_COMPILE_CACHE), ${COMPILE_CACHE_PAIRS} pairs taken in turn: no-op preview ${seconds(median(cachePairs.map((each) => each.cached)))} s`,
                `    against ${seconds(median(cachePairs.map((each) => each.without)))} s without it; with/without per pair: median ${ratioText(median(ratios))}, min ${ratioText(Math.min(...ratios))}, max ${ratioText(Math.max(...ratios))}`,
            ].join("\n"),
        );
    } finally {
        await lab.stop();
    }
}

export async function engineFigures(): Promise<void> {
    // A SIGTERM/SIGINT (a time limit, Ctrl-C) still runs the lab's and the API server's exit hooks.
    for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => process.exit(130));
    console.log("real engine (CLI v3.274.0, pulumi-language-nodejs v3.68.0, kubernetes plugin, kube-apiserver v1.33.4; command/tls TEST DOUBLES):");
    await figuresFor("lab stack", 0, { noopPreview: 3.0, programShare: 1.0 });
    await figuresFor("prod-sized", 17, { noopPreview: 4.0, programShare: 1.5, firstUp: 45 });
}

if (require.main === module) {
    engineFigures().catch((error: unknown) => {
        console.error(error);
        process.exitCode = 1;
    });
}
