import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";
import { promisify } from "node:util";

/*
 * A REAL S3 server on loopback for the state-backend suite (stateBackend.test.ts): versitygw
 * (pinned and built by scripts/tools/build-versitygw.sh, which says why versitygw) serving a
 * directory with `posix` (a bucket is a subdirectory). The suite reads and writes it through
 * the S3 API with the machine's aws CLI (never through the directory), as an operator would
 * inspect a Spaces bucket.
 */

const REPO_ROOT = path.resolve(__dirname, "..", "..");
const run = promisify(execFile);

export interface S3Object {
    key: string;
    size: number;
}

export interface S3Server {
    binary: string;
    version: string;
    /** host:port on 127.0.0.1 */
    endpoint: string;
    /** What the Pulumi CLI and the aws CLI need: the credentials and the region. */
    env: Record<string, string>;
    /** The DIY backend's login URL for a bucket (path-style, plain HTTP, region set). */
    loginUrl(bucket: string): string;
    createBucket(bucket: string): Promise<void>;
    list(bucket: string, prefix?: string): Promise<S3Object[]>;
    get(bucket: string, key: string): Promise<Buffer>;
    /** Every object of the bucket, read back through the S3 API into `dir` (`aws s3 cp --recursive`): key -> content. */
    getAll(bucket: string, dir: string): Promise<Record<string, Buffer>>;
    /** Uploads every file under `dir` to `<prefix>/<relative path>`. */
    uploadTree(dir: string, bucket: string, prefix: string): Promise<void>;
    stop(): Promise<void>;
}

/** The versitygw binary from build-versitygw.sh's cache; throws with what to run when it is not built. */
export function versitygwBinary(): string {
    let out: string;
    try {
        out = execFileSync("bash", [path.join(REPO_ROOT, "scripts/tools/build-versitygw.sh"), "--check"], {
            encoding: "utf8",
            stdio: ["ignore", "pipe", "pipe"],
            timeout: 60_000,
        });
    } catch (error) {
        const stderr = String((error as { stderr?: string }).stderr ?? "");
        throw new Error(`versitygw is not built: run bash scripts/setup.sh (it runs scripts/tools/build-versitygw.sh)\n${stderr}`);
    }
    const match = /^export SHORTCIRCUIT_VERSITYGW="(.*)"$/m.exec(out);
    if (!match) throw new Error(`build-versitygw.sh printed no binary:\n${out}`);
    return match[1];
}

async function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => {
            const address = server.address() as net.AddressInfo;
            server.close(() => resolve(address.port));
        });
    });
}

function healthy(port: number): Promise<boolean> {
    return new Promise((resolve) => {
        const request = http.get({ host: "127.0.0.1", port, path: "/health", timeout: 2_000 }, (response) => {
            response.resume();
            resolve(response.statusCode === 200);
        });
        request.on("timeout", () => request.destroy());
        request.on("error", () => resolve(false));
    });
}

function exited(child: ChildProcess, ms: number): Promise<boolean> {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
    return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), ms);
        child.once("exit", () => {
            clearTimeout(timer);
            resolve(true);
        });
    });
}

/** Starts versitygw on 127.0.0.1 (a free port) over `dir`; resolves once it answers /health. */
export async function startS3Server(dir: string): Promise<S3Server> {
    const binary = versitygwBinary();
    const version = `versitygw ${/Version\s*:\s*(\S+)/.exec(execFileSync(binary, ["--version"], { encoding: "utf8", timeout: 30_000 }))?.[1] ?? "?"}`;
    const access = "shortcircuit-e2e";
    const secret = `e2e-secret-${process.pid}-${Date.now()}`;
    const dataDir = path.join(dir, "data");
    const awsDir = path.join(dir, "aws");
    fs.mkdirSync(dataDir, { recursive: true });
    fs.mkdirSync(awsDir, { recursive: true });
    let child: ChildProcess | undefined;
    let port = 0;
    let log = "";
    for (let attempt = 0; attempt < 3 && !child; attempt += 1) {
        port = await freePort();
        const candidate = spawn(binary, ["--access", access, "--secret", secret, "--port", `127.0.0.1:${port}`, "--health", "/health", "posix", dataDir], {
            stdio: ["ignore", "pipe", "pipe"],
        });
        candidate.stdout?.on("data", (chunk: Buffer) => (log += chunk.toString()));
        candidate.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()));
        // Up to 30 s for the first answer (a loaded machine); a port taken meanwhile makes it exit: try another.
        for (let waited = 0; waited < 30_000; waited += 200) {
            if (await healthy(port)) {
                child = candidate;
                break;
            }
            if (candidate.exitCode !== null) break;
            await new Promise((resolve) => setTimeout(resolve, 200));
        }
        if (!child) {
            candidate.kill("SIGKILL");
            await exited(candidate, 5_000);
        }
    }
    if (!child) throw new Error(`versitygw did not answer on 127.0.0.1:${port}/health:\n${log}`);
    const server = child;
    const endpoint = `127.0.0.1:${port}`;
    const env: Record<string, string> = {
        AWS_ACCESS_KEY_ID: access,
        AWS_SECRET_ACCESS_KEY: secret,
        AWS_REGION: "us-east-1",
        // Nothing from the machine's or the operator's AWS setup (profiles, the CA bundle the
        // machine sets for its proxy): plain HTTP to loopback only.
        AWS_CONFIG_FILE: path.join(awsDir, "config"),
        AWS_SHARED_CREDENTIALS_FILE: path.join(awsDir, "credentials"),
        AWS_CA_BUNDLE: "",
    };
    const aws = async (args: string[], encoding: "utf8" | "buffer" = "utf8"): Promise<string | Buffer> => {
        const childEnv: Record<string, string> = { ...(process.env as Record<string, string>), ...env };
        delete childEnv.AWS_CA_BUNDLE;
        delete childEnv.AWS_PROFILE;
        const result = await run("aws", ["--endpoint-url", `http://${endpoint}`, "--region", env.AWS_REGION, ...args], {
            env: childEnv,
            encoding,
            timeout: 120_000,
            maxBuffer: 256 * 1024 * 1024,
        });
        return result.stdout;
    };
    return {
        binary,
        version,
        endpoint,
        env,
        loginUrl: (bucket) => `s3://${bucket}?endpoint=${endpoint}&s3ForcePathStyle=true&disableSSL=true&region=${env.AWS_REGION}`,
        createBucket: async (bucket) => {
            await aws(["s3api", "create-bucket", "--bucket", bucket]);
        },
        list: async (bucket, prefix) => {
            const out = String(await aws(["s3api", "list-objects-v2", "--bucket", bucket, "--output", "json", ...(prefix ? ["--prefix", prefix] : [])]));
            if (out.trim() === "") return [];
            const parsed = JSON.parse(out) as { Contents?: { Key: string; Size: number }[] };
            return (parsed.Contents ?? []).map((object) => ({ key: object.Key, size: object.Size }));
        },
        get: async (bucket, key) => {
            const file = path.join(awsDir, `get-${Date.now()}-${Math.random().toString(16).slice(2)}`);
            try {
                await aws(["s3api", "get-object", "--bucket", bucket, "--key", key, file]);
                return fs.readFileSync(file);
            } finally {
                fs.rmSync(file, { force: true });
            }
        },
        getAll: async (bucket, dir) => {
            fs.mkdirSync(dir, { recursive: true });
            await aws(["s3", "cp", "--recursive", "--only-show-errors", `s3://${bucket}/`, dir]);
            const out: Record<string, Buffer> = {};
            for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
                if (!entry.isFile()) continue;
                const full = path.join(entry.parentPath, entry.name);
                out[path.relative(dir, full).split(path.sep).join("/")] = fs.readFileSync(full);
            }
            return out;
        },
        uploadTree: async (dir, bucket, prefix) => {
            await aws(["s3", "cp", "--recursive", "--only-show-errors", dir, `s3://${bucket}/${prefix}`]);
        },
        stop: async () => {
            server.kill("SIGTERM");
            if (!(await exited(server, 10_000))) {
                server.kill("SIGKILL");
                await exited(server, 5_000);
            }
        },
    };
}
