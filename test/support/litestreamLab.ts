import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { renderLitestreamConfigYaml, ACCESS_KEY_VAR, SECRET_KEY_VAR } from "../../components/control/litestream";
import { versions } from "../../components/versions";
import type { ReplicaConfig } from "../../stacks/schema";
import { exited, sleep, stopChildren } from "./processes";
import { versitygwBinary } from "./s3Server";
import { CACHE_ROOT } from "./tools";

/*
 * Litestream against a real S3 server on loopback, for the lab suites and the benchmark: the
 * pinned litestream (scripts/tools/build-litestream.sh) and versitygw (scripts/tools/build-versitygw.sh,
 * found by ./s3Server.ts), both from the Go module proxy. Every wait
 * is bounded; every process started here is stopped by its handle.
 */

const BUILD_HINT = "run bash scripts/tools/build-litestream.sh (scripts/setup.sh does, and CI runs it)";

export function litestreamBinary(): string {
    return toolAt(path.join(CACHE_ROOT, `litestream-${versions.litestream}`, "bin", "litestream"));
}

function toolAt(file: string): string {
    if (!fs.existsSync(file)) {
        throw new Error(`${file} is missing: ${BUILD_HINT}`);
    }
    return file;
}

/** A free TCP port on loopback (released before the caller binds it; fine for one test at a time). */
export function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.on("error", reject);
        server.listen(0, "127.0.0.1", () => {
            const address = server.address();
            server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
        });
    });
}

export interface S3Server {
    endpoint: string;
    bucket: string;
    accessKeyId: string;
    secretAccessKey: string;
    child: ChildProcess;
    log: string;
    stop(): Promise<void>;
}

/** versitygw's posix backend on 127.0.0.1: a bucket is a directory under `dir`. */
export async function startS3(dir: string, bucket = "headscale-replica"): Promise<S3Server> {
    fs.mkdirSync(path.join(dir, "data", bucket), { recursive: true });
    const port = await freePort();
    const accessKeyId = `AK${randomBytes(8).toString("hex").toUpperCase()}`;
    const secretAccessKey = randomBytes(24).toString("base64url");
    const log = path.join(dir, "versitygw.log");
    const fd = fs.openSync(log, "a");
    let child: ChildProcess;
    try {
        child = spawn(
            versitygwBinary(),
            ["--access", accessKeyId, "--secret", secretAccessKey, "--port", `127.0.0.1:${port}`, "--health", "/health", "posix", path.join(dir, "data")],
            { stdio: ["ignore", fd, fd] },
        );
    } finally {
        fs.closeSync(fd);
    }
    child.on("error", () => undefined);
    const endpoint = `http://127.0.0.1:${port}`;
    const server: S3Server = {
        endpoint,
        bucket,
        accessKeyId,
        secretAccessKey,
        child,
        log,
        // versitygw flushes on SIGTERM; wait for the pid to exit so the directory is released.
        stop: () => stopChildren([child]),
    };
    for (let attempt = 0; attempt < 100; attempt++) {
        if (exited(child)) {
            throw new Error(`versitygw exited (${child.exitCode ?? child.signalCode}):\n${fs.readFileSync(log, "utf8").slice(-2000)}`);
        }
        const healthy = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1_000) }).then(
            (reply) => reply.status === 200,
            () => false,
        );
        if (healthy) {
            return server;
        }
        await sleep(100);
    }
    await server.stop();
    throw new Error(`versitygw did not answer ${endpoint}/health within about 10 s:\n${fs.readFileSync(log, "utf8").slice(-2000)}`);
}

/** The stack's replica settings pointed at the loopback server (what an operator's stack file says, with the endpoint swapped). */
export function replicaOn(s3: S3Server, base: Partial<ReplicaConfig> = {}): ReplicaConfig {
    return {
        path: "headscale/lab",
        region: "us-east-1",
        retention: "72h",
        snapshotInterval: "24h",
        syncInterval: "1s",
        ...base,
        bucket: s3.bucket,
        endpoint: s3.endpoint,
    };
}

/** Writes the program's rendered Litestream config for `database`; returns its path. */
export function writeLitestreamConfig(dir: string, replica: ReplicaConfig, database: string): string {
    const file = path.join(dir, "litestream.yml");
    fs.writeFileSync(file, renderLitestreamConfigYaml(replica, { database }));
    return file;
}

/**
 * Litestream's environment: the credentials as systemd's EnvironmentFile gives them, and without
 * AWS_CA_BUNDLE, which this machine sets and which makes Litestream's S3 client fail ("unable
 * to add custom RootCAs HTTPClient") even for a plain-http endpoint.
 */
export function litestreamEnv(s3: S3Server): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, [ACCESS_KEY_VAR]: s3.accessKeyId, [SECRET_KEY_VAR]: s3.secretAccessKey };
    delete env.AWS_CA_BUNDLE;
    return env;
}

export interface CommandResult {
    status: number;
    output: string;
}

/** Runs a command to completion, bounded; never rejects on a non-zero exit. */
export function runBounded(command: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
        const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs, killSignal: "SIGKILL" });
        let output = "";
        child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
        child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
        child.on("error", reject);
        child.on("close", (code, signal) => resolve({ status: code ?? (signal ? 128 : -1), output }));
    });
}

export interface Replicator {
    child: ChildProcess;
    log: string;
}

export function startReplicate(config: string, env: NodeJS.ProcessEnv, log: string): Replicator {
    const fd = fs.openSync(log, "a");
    try {
        const child = spawn(litestreamBinary(), ["replicate", "-config", config], { env, stdio: ["ignore", fd, fd] });
        child.on("error", () => undefined);
        return { child, log };
    } finally {
        fs.closeSync(fd);
    }
}

/** The replica's newest transaction id for `database` (`litestream ltx`), 0 when it holds none. */
export async function replicaTxid(config: string, database: string, env: NodeJS.ProcessEnv): Promise<number> {
    const result = await runBounded(litestreamBinary(), ["ltx", "-config", config, database], env, 30_000);
    if (result.status !== 0) {
        throw new Error(`litestream ltx exited ${result.status}: ${result.output}`);
    }
    let newest = 0;
    for (const line of result.output.split("\n")) {
        // level  min_txid  max_txid  size  created
        const fields = line.trim().split(/\s+/);
        if (fields.length >= 5 && /^[0-9a-f]{16}$/.test(fields[2])) {
            newest = Math.max(newest, parseInt(fields[2], 16));
        }
    }
    return newest;
}

/** The local database's transaction id as the running Litestream knows it (`litestream status`). */
export async function localTxid(config: string, database: string, env: NodeJS.ProcessEnv): Promise<number | undefined> {
    const result = await runBounded(litestreamBinary(), ["status", "-config", config], env, 30_000);
    if (result.status !== 0) {
        throw new Error(`litestream status exited ${result.status}: ${result.output}`);
    }
    for (const line of result.output.split("\n")) {
        const fields = line.trim().split(/\s+/);
        if (fields[0] === database && /^[0-9a-f]{16}$/.test(fields[2] ?? "")) {
            return parseInt(fields[2], 16);
        }
    }
    return undefined;
}

/**
 * Waits, bounded, until the replica holds every transaction the local database has: the replica's
 * newest LTX (litestream ltx) reaches the local position (litestream status). Returns the txid.
 */
export async function waitReplicated(config: string, database: string, env: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    for (let attempt = 0; attempt < 200 && Date.now() < deadline; attempt++) {
        const local = await localTxid(config, database, env);
        const remote = await replicaTxid(config, database, env);
        if (local !== undefined && local > 0 && remote >= local) {
            return remote;
        }
        last = `local txid ${local ?? "unknown"}, replica txid ${remote}`;
        await sleep(200);
    }
    throw new Error(`the replica did not catch up with ${database} within ${timeoutMs} ms (${last})`);
}
