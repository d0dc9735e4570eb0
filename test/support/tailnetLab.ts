import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { isAlive, sleep, stopChildren } from "./processes";

/*
 * Plumbing for the tailnet suite: network namespaces joined by veth pairs to a bridge, the
 * processes started in them, a test certificate authority, and bounded waits. Everything this
 * module creates carries the `sctn-` prefix and the test process's pid, so a later run can tell
 * a crashed run's leftovers (owner pid gone) from a live one's.
 *
 * Name resolution for the test host names goes through `ip netns exec`'s per-namespace files:
 * /etc/netns/<ns>/hosts and resolv.conf are bind-mounted over /etc/ for every process started
 * with `ip netns exec`, so nothing on the host changes and no real resolver is asked.
 */

export const NS_PREFIX = "sctn-";
export const TEMP_PREFIX = "sctn-tailnet-";
const NETNS_ETC = "/etc/netns";

export interface Result {
    status: number;
    stdout: string;
    stderr: string;
}

export interface RunOptions {
    timeoutMs?: number;
    input?: string;
    env?: NodeJS.ProcessEnv;
}

/** Runs a command to completion without blocking the event loop; SIGKILLed after timeoutMs. */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<Result> {
    return new Promise((resolve, reject) => {
        const child = spawn(command, args, {
            stdio: ["pipe", "pipe", "pipe"],
            timeout: options.timeoutMs ?? 20_000,
            killSignal: "SIGKILL",
            env: options.env ?? process.env,
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
        child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
        child.on("error", reject);
        child.on("close", (code, signal) => resolve({ status: code ?? (signal ? 128 : -1), stdout, stderr }));
        child.stdin.on("error", () => undefined);
        child.stdin.end(options.input ?? "");
    });
}

export async function must(command: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
    const r = await run(command, args, options);
    if (r.status !== 0) {
        throw new Error(`${command} ${args.join(" ")} exited ${r.status}:\n${r.stdout}${r.stderr}`);
    }
    return r.stdout;
}

/** Synchronous, for teardown and leftover cleanup (short, bounded commands only). */
export function runSync(command: string, args: readonly string[]): Result {
    const r = spawnSync(command, args, { encoding: "utf8", timeout: 10_000 });
    return { status: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/**
 * Polls `probe` every `intervalMs` until it returns a value other than undefined, at most
 * `attempts` times and never past `timeoutMs`; throws with `what` and the last note otherwise.
 */
/** Thrown by a waitFor probe to stop waiting at once (e.g. the daemon it waits on exited). */
export class Fatal extends Error {}

export async function waitFor<T>(
    what: string,
    probe: () => Promise<T | undefined>,
    opts: { timeoutMs: number; intervalMs?: number; attempts?: number; context?: () => string },
): Promise<T> {
    const deadline = Date.now() + opts.timeoutMs;
    const interval = opts.intervalMs ?? 500;
    const attempts = opts.attempts ?? Math.ceil(opts.timeoutMs / interval) + 1;
    let lastError = "";
    for (let attempt = 1; attempt <= attempts && Date.now() <= deadline; attempt++) {
        try {
            const value = await probe();
            if (value !== undefined) {
                return value;
            }
        } catch (error) {
            if (error instanceof Fatal) {
                throw new Error(`gave up waiting for ${what}: ${error.message}${opts.context ? `\n${opts.context()}` : ""}`);
            }
            lastError = error instanceof Error ? error.message : String(error);
        }
        await sleep(interval);
    }
    throw new Error(
        `timed out after ${opts.timeoutMs} ms waiting for ${what}${lastError ? `; last error: ${lastError}` : ""}${opts.context ? `\n${opts.context()}` : ""}`,
    );
}

// ---------------------------------------------------------------------------------------------
// Namespaces
// ---------------------------------------------------------------------------------------------

export const nsName = (short: string): string => `${NS_PREFIX}${short}-${process.pid}`;

export function sctnNamespaces(): string[] {
    return runSync("ip", ["netns", "list"])
        .stdout.split("\n")
        .map((line) => line.split(" ")[0])
        .filter((name) => name.startsWith(NS_PREFIX));
}

/** Kills what still runs in the namespace (only processes this suite started live there), then deletes it. */
export function deleteNamespace(ns: string): void {
    const pids = runSync("ip", ["netns", "pids", ns])
        .stdout.split(/\s+/)
        .filter((pid) => /^\d+$/.test(pid));
    for (const pid of pids) {
        try {
            process.kill(Number(pid), "SIGKILL");
        } catch {
            // already gone
        }
    }
    runSync("ip", ["netns", "del", ns]);
    fs.rmSync(path.join(NETNS_ETC, ns), { recursive: true, force: true });
}

/** Deletes every namespace this test process made (its pid ends their names). */
export function deleteOwnNamespaces(): void {
    for (const name of sctnNamespaces()) {
        if (name.endsWith(`-${process.pid}`)) {
            deleteNamespace(name);
        }
    }
}

const ownerOf = (name: string): number => Number(/-(\d+)$/.exec(name)?.[1]);

/** Removes `sctn-` namespaces, /etc/netns entries and temp dirs whose owning test process is gone. */
export function removeLeftovers(): void {
    const stale = (owner: number): boolean => Number.isInteger(owner) && owner > 0 && (owner === process.pid || !isAlive(owner));
    for (const ns of sctnNamespaces()) {
        if (stale(ownerOf(ns))) {
            deleteNamespace(ns);
        }
    }
    if (fs.existsSync(NETNS_ETC)) {
        for (const entry of fs.readdirSync(NETNS_ETC)) {
            if (entry.startsWith(NS_PREFIX) && stale(ownerOf(entry))) {
                fs.rmSync(path.join(NETNS_ETC, entry), { recursive: true, force: true });
            }
        }
    }
    for (const entry of fs.readdirSync(os.tmpdir())) {
        const owner = Number(new RegExp(`^${TEMP_PREFIX}(\\d+)-`).exec(entry)?.[1]);
        if (owner > 0 && owner !== process.pid && !isAlive(owner)) {
            fs.rmSync(path.join(os.tmpdir(), entry), { recursive: true, force: true });
        }
    }
}

export interface LanHost {
    short: string;
    address: string;
}

/**
 * A bridge in a switch namespace and one namespace per host, each with `eth0` on the bridge.
 * `hosts` lines become the namespace's /etc/hosts; resolv.conf names no server at all.
 */
export async function buildLan(switchShort: string, hosts: readonly LanHost[], prefixLength: number, hostsFile: string): Promise<void> {
    const sw = nsName(switchShort);
    await must("ip", ["netns", "add", sw]);
    await must("ip", ["-n", sw, "link", "add", "br0", "type", "bridge"]);
    await must("ip", ["-n", sw, "link", "set", "br0", "up"]);
    for (const host of hosts) {
        const ns = nsName(host.short);
        const etc = path.join(NETNS_ETC, ns);
        fs.mkdirSync(etc, { recursive: true });
        fs.writeFileSync(path.join(etc, "hosts"), `127.0.0.1 localhost\n${hostsFile}`);
        fs.writeFileSync(path.join(etc, "resolv.conf"), "# sctn test namespace: no resolver\noptions timeout:1 attempts:1\n");
        await must("ip", ["netns", "add", ns]);
        const port = `p-${host.short}`;
        await must("ip", ["-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns]);
        await must("ip", ["-n", sw, "link", "set", port, "master", "br0", "up"]);
        await must("ip", ["-n", ns, "link", "set", "lo", "up"]);
        await must("ip", ["-n", ns, "addr", "add", `${host.address}/${prefixLength}`, "dev", "eth0"]);
        await must("ip", ["-n", ns, "link", "set", "eth0", "up"]);
    }
}

// ---------------------------------------------------------------------------------------------
// Long-running processes
// ---------------------------------------------------------------------------------------------

export interface Daemon {
    name: string;
    child: ChildProcess;
    log: string;
}

export { exited, sleep } from "./processes";

/** Starts `command` inside namespace `ns` (through `ip netns exec`, which execs it: same pid), output to `log`. */
export function startIn(ns: string, name: string, command: string, args: readonly string[], log: string, env: NodeJS.ProcessEnv = {}): Daemon {
    const fd = fs.openSync(log, "a");
    try {
        const child = spawn("ip", ["netns", "exec", ns, command, ...args], { stdio: ["ignore", fd, fd], env: { ...process.env, ...env } });
        child.on("error", () => undefined);
        return { name, child, log };
    } finally {
        fs.closeSync(fd);
    }
}

export function tail(daemon: Daemon, lines = 30): string {
    const text = fs.existsSync(daemon.log) ? fs.readFileSync(daemon.log, "utf8") : "";
    return `--- ${daemon.name} (${daemon.log}), last lines:\n${text.split("\n").slice(-lines).join("\n")}`;
}

/** SIGTERM, up to 5 s, then SIGKILL, up to 2 s more. */
export async function stop(daemons: readonly Daemon[]): Promise<void> {
    await stopChildren(daemons.map(({ child }) => child));
}

// ---------------------------------------------------------------------------------------------
// Test certificate authority (openssl)
// ---------------------------------------------------------------------------------------------

export interface Pem {
    cert: string;
    key: string;
}

/** A CA and a server certificate for `serverName` signed by it, both EC P-256, in `dir`. */
export async function makeCa(dir: string, serverName: string): Promise<{ ca: Pem; server: Pem }> {
    const ca = { cert: path.join(dir, "ca.crt"), key: path.join(dir, "ca.key") };
    const server = { cert: path.join(dir, `${serverName}.crt`), key: path.join(dir, `${serverName}.key`) };
    await must("openssl", [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=shortcircuit sctn test CA",
        "-keyout",
        ca.key,
        "-out",
        ca.cert,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    const csr = path.join(dir, `${serverName}.csr`);
    await must("openssl", [
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        `/CN=${serverName}`,
        "-keyout",
        server.key,
        "-out",
        csr,
    ]);
    const ext = path.join(dir, `${serverName}.ext`);
    fs.writeFileSync(ext, `subjectAltName=DNS:${serverName}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
    await must("openssl", [
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca.cert,
        "-CAkey",
        ca.key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        ext,
        "-out",
        server.cert,
    ]);
    return { ca, server };
}

/** A self-signed certificate for `hostname` (how the program's self-signed relay is run), EC P-256. */
export async function makeSelfSigned(certPath: string, keyPath: string, hostname: string): Promise<void> {
    await must("openssl", [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        `/CN=${hostname}`,
        "-keyout",
        keyPath,
        "-out",
        certPath,
        "-addext",
        `subjectAltName=DNS:${hostname}`,
    ]);
}

// ---------------------------------------------------------------------------------------------
// HTTPS from inside a namespace (node itself, trusting the test CA)
// ---------------------------------------------------------------------------------------------

const HTTPS_SCRIPT = `
const https = require("node:https");
const [url, method, body] = process.argv.slice(1);
const req = https.request(url, { method, headers: body ? { "content-type": "application/json" } : {}, timeout: 5000 }, (res) => {
  let data = "";
  res.on("data", (c) => (data += c));
  res.on("end", () => { process.stdout.write(JSON.stringify({ status: res.statusCode, body: data })); });
});
req.on("timeout", () => req.destroy(new Error("timeout")));
req.on("error", (e) => { process.stdout.write(JSON.stringify({ status: 0, body: String(e.message) })); });
req.end(body || undefined);
`;

export interface HttpsReply {
    status: number;
    body: string;
}

export async function httpsIn(ns: string, caFile: string, url: string, method = "GET", body = ""): Promise<HttpsReply> {
    const out = await must("ip", ["netns", "exec", ns, process.execPath, "-e", HTTPS_SCRIPT, url, method, body], {
        timeoutMs: 10_000,
        env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile },
    });
    return JSON.parse(out) as HttpsReply;
}
