/*
 * drift's I/O: one OpenSSH session per host (the system `ssh` client, BatchMode), at most
 * `concurrency` at a time, each bounded by a per-host timeout; the collector
 * (components/remote/prelude.sh + scripts/drift/collect.sh) is the remote command and its
 * payload is stdin, as for every remote step of the program. The comparison itself is pure
 * (expect.ts, compare.ts and report.ts beside this file).
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { clusterViewFrom, compareHost, type ClusterView } from "./compare";
import type { DriftExpectation, ExpectedHost } from "./expect";
import { CollectorOutputError, collectorPayload, parseCollectorOutput, type Observation } from "./observe";
import { hostStatus, type DriftReport, type HostResult } from "./report";
import type { PlannedSsh } from "../../components/hostPlan";
import { stepLauncher, stepStdin } from "../../components/remote/remoteCommand";

const ROOT = path.resolve(__dirname, "../..");

/** The collector as it runs on a host: the payload reader, then the read-only script. */
export function collectorScript(): string {
    return `${readFileSync(path.join(ROOT, "components/remote/prelude.sh"), "utf8")}${readFileSync(path.join(__dirname, "collect.sh"), "utf8")}`;
}

export interface SshClientOptions {
    /** OpenSSH private key file; without it ssh uses the agent (SSH_AUTH_SOCK) and its defaults. */
    identity?: string;
    /** `ssh -F`; default: the user's ~/.ssh/config (where scripts/ssh-switch.sh's configs are included). */
    configFile?: string;
    /** `UserKnownHostsFile`; default ssh's. */
    knownHostsFile?: string;
    strictHostKeyChecking: "yes" | "accept-new" | "no";
    /** Overrides the plan's access.sshTimeoutSeconds. */
    connectTimeoutSeconds?: number;
    /** The whole session, connect included. */
    hostTimeoutSeconds: number;
    /** For tests and the bench: replaces the planned address/port/user (loopback stand-ins). */
    target?: (host: ExpectedHost) => PlannedSsh | undefined;
}

export function sshArgv(ssh: PlannedSsh, options: SshClientOptions): string[] {
    const argv = [
        ...(options.configFile !== undefined ? ["-F", options.configFile] : []),
        ...(options.identity !== undefined ? ["-i", options.identity, "-o", "IdentitiesOnly=yes"] : []),
        "-o",
        "BatchMode=yes",
        "-o",
        `ConnectTimeout=${options.connectTimeoutSeconds ?? ssh.timeoutSeconds}`,
        "-o",
        "ConnectionAttempts=1",
        "-o",
        `StrictHostKeyChecking=${options.strictHostKeyChecking}`,
        ...(options.knownHostsFile !== undefined ? ["-o", `UserKnownHostsFile=${options.knownHostsFile}`] : []),
        "-o",
        "ServerAliveInterval=5",
        "-o",
        "ServerAliveCountMax=3",
        "-o",
        "LogLevel=ERROR",
        "-T",
        "-p",
        String(ssh.port),
        "-l",
        ssh.user,
        ssh.host,
    ];
    return argv;
}

/** Why ssh could not open the session, from its own words. */
export function unreachableReason(stderr: string): string {
    const text = stderr.trim();
    const rules: [RegExp, string][] = [
        [/timed out|Connection timed out/i, "timeout"],
        [/Permission denied|Too many authentication failures|no mutual signature/i, "auth"],
        [/No route to host|Network is unreachable/i, "no route"],
        [/Connection refused/i, "connection refused"],
        [/Could not resolve hostname|Name or service not known|Temporary failure in name resolution/i, "name not resolved"],
        [/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|host key .* not known/i, "host key"],
        [/Connection closed|Connection reset|kex_exchange_identification/i, "connection closed"],
    ];
    const last =
        text
            .split("\n")
            .filter((line) => line.trim() !== "")
            .at(-1) ?? "";
    for (const [pattern, reason] of rules) {
        if (pattern.test(text)) {
            return `${reason}: ${last}`;
        }
    }
    return last === "" ? "ssh failed" : last;
}

type Read = { ok: true; observation: Observation } | { ok: false; reason: string };

function readHost(ssh: PlannedSsh, script: string, payload: string, options: SshClientOptions): Promise<Read> {
    return new Promise((resolve) => {
        // The program's own launcher: bash whatever the login shell is (zsh on a Mac), the script
        // on stdin ahead of its payload, and root through sudo -n where the host says so.
        const launcher = stepLauncher("drift/collect.sh", script, "none", ssh.become);
        const child = spawn("ssh", [...sshArgv(ssh, options), launcher], { stdio: ["pipe", "pipe", "pipe"] });
        const stdout: Buffer[] = [];
        const stderr: Buffer[] = [];
        let timedOut = false;
        const timer = setTimeout(() => {
            timedOut = true;
            child.kill("SIGKILL");
        }, options.hostTimeoutSeconds * 1000);
        child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
        child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
        child.stdin.on("error", () => undefined);
        child.on("error", (error) => {
            clearTimeout(timer);
            resolve({ ok: false, reason: `ssh could not run: ${error.message}` });
        });
        child.on("close", (code) => {
            clearTimeout(timer);
            const errText = Buffer.concat(stderr).toString("utf8");
            if (timedOut) {
                resolve({ ok: false, reason: `timeout: no report within ${options.hostTimeoutSeconds}s` });
            } else if (code === 255) {
                resolve({ ok: false, reason: unreachableReason(errText) });
            } else if (code !== 0) {
                const last = errText.trim().split("\n").at(-1) ?? "";
                resolve({ ok: false, reason: `the collector failed (exit ${String(code)})${last ? `: ${last}` : ""}` });
            } else {
                try {
                    resolve({ ok: true, observation: parseCollectorOutput(Buffer.concat(stdout)) });
                } catch (error) {
                    resolve({ ok: false, reason: error instanceof CollectorOutputError ? error.message : String(error) });
                }
            }
        });
        child.stdin.end(stepStdin(script, payload));
    });
}

/** Runs `work` over `items` with at most `limit` in flight; results in the items' order. */
export async function pool<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
    const results = new Array<R>(items.length);
    let next = 0;
    const worker = async (): Promise<void> => {
        while (next < items.length) {
            const index = next++;
            results[index] = await work(items[index]);
        }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
    return results;
}

export interface DriftRunOptions {
    stack: string;
    concurrency: number;
    diff: boolean;
    now: Date;
    ssh: SshClientOptions;
    onProgress?: (done: number, total: number) => void;
}

export async function runDrift(expectation: DriftExpectation, options: DriftRunOptions): Promise<DriftReport> {
    const script = collectorScript();
    let done = 0;
    const total = expectation.hosts.length;
    options.onProgress?.(0, total);
    const reads = await pool(expectation.hosts, options.concurrency, async (host) => {
        const started = performance.now();
        const ssh = options.ssh.target ? options.ssh.target(host) : host.ssh;
        const read: Read =
            ssh === undefined
                ? { ok: false, reason: "address unknown (pass --control-host or --from-stack-outputs)" }
                : await readHost(ssh, script, collectorPayload(host, { diff: options.diff }), options.ssh);
        done++;
        options.onProgress?.(done, total);
        return { host, ssh, read, seconds: Math.round(performance.now() - started) / 1000 };
    });
    const genesis = reads.find((each) => each.host.kubectl);
    let cluster: ClusterView | undefined;
    if (genesis) {
        cluster = clusterViewFrom(genesis.read.ok ? genesis.read.observation : undefined, genesis.read.ok ? undefined : genesis.read.reason);
    }
    const hosts: HostResult[] = reads.map(({ host, ssh, read, seconds }) => {
        const address = ssh ? `${ssh.user}@${ssh.host}:${ssh.port}` : undefined;
        if (!read.ok) {
            return { name: host.name, address, status: "unreachable", reason: read.reason, findings: [], seconds };
        }
        const findings = compareHost(expectation, host, read.observation, { now: options.now, diff: options.diff, cluster });
        return { name: host.name, address, status: hostStatus(findings), findings, seconds };
    });
    return { stack: options.stack, hosts, notes: expectation.notes };
}
