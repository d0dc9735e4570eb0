/*
 * `npm run drift -- --stack <name> | --config-file <path> [options]`
 *
 * Reads every host of the fleet over SSH (one read-only session per host, in parallel with a
 * bound) and compares it with the same host plan the program delivers: planned files (content,
 * mode, owner; identity files by presence, mode and owner, secrets never printed), live
 * addresses and table 52, managed services (active, running an older config, restart
 * pending), K3s config annotation and cordon, Nebula certificate and expiry. Changes nothing.
 * Exit 0: everything matches; 3: drift; 4: a host could not be read; 1: invalid config; 2: usage.
 */
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { driftExpectation, type StackOutputs } from "./drift/expect";
import { exitCode, formatJson, formatText } from "./drift/report";
import { SSH_VIA_ENV, type StackCheck } from "../stacks/check";
import { checkStackFile, readStackFile, stackFilePath } from "../stacks/stackFile";
import { formatProblem } from "../stacks/validate";
import { runDrift, type SshClientOptions } from "./drift/run";

const USAGE =
    "usage: npm run drift -- --stack <name> | --config-file <path> [--json] [--diff] [--identity <key file>] [--ssh-config <file>]\n" +
    "         [--known-hosts <file>] [--strict-host-key-checking yes|accept-new|no] [--concurrency <n>] [--timeout <s>]\n" +
    "         [--connect-timeout <s>] [--nebula-ca-fingerprint <hex>] [--from-stack-outputs <json>] [--control-host <address>]\n" +
    "         [--host <name>]... [--progress]\n";

class UsageError extends Error {}

interface DriftOptions {
    stack: string;
    configFile: string;
    json: boolean;
    diff: boolean;
    progress: boolean;
    concurrency: number;
    hosts: string[];
    caFingerprint?: string;
    outputsFile?: string;
    controlHost?: string;
    ssh: SshClientOptions;
}

function positiveInt(name: string, value: string | undefined, fallback: number): number {
    if (value === undefined) {
        return fallback;
    }
    if (!/^[1-9][0-9]{0,4}$/.test(value)) {
        throw new UsageError(`--${name} must be a positive whole number`);
    }
    return Number(value);
}

function parseOptions(argv: string[], stderrIsTty: boolean): DriftOptions {
    const { values } = parseArgs({
        args: argv,
        options: {
            stack: { type: "string" },
            "config-file": { type: "string" },
            json: { type: "boolean" },
            diff: { type: "boolean" },
            progress: { type: "boolean" },
            identity: { type: "string" },
            "ssh-config": { type: "string" },
            "known-hosts": { type: "string" },
            "strict-host-key-checking": { type: "string" },
            concurrency: { type: "string" },
            timeout: { type: "string" },
            "connect-timeout": { type: "string" },
            "nebula-ca-fingerprint": { type: "string" },
            "from-stack-outputs": { type: "string" },
            "control-host": { type: "string" },
            host: { type: "string", multiple: true },
        },
        strict: true,
    });
    if (!values.stack && !values["config-file"]) {
        throw new UsageError("--stack <name> or --config-file <path> is required");
    }
    const strict = values["strict-host-key-checking"] ?? "accept-new";
    if (strict !== "yes" && strict !== "accept-new" && strict !== "no") {
        throw new UsageError("--strict-host-key-checking must be yes, accept-new or no");
    }
    const fingerprint = values["nebula-ca-fingerprint"];
    if (fingerprint !== undefined && !/^[0-9a-fA-F]{64}$/.test(fingerprint)) {
        throw new UsageError("--nebula-ca-fingerprint must be 64 hex characters (nebula-cert print's fingerprint)");
    }
    const configFile = values["config-file"] ? path.resolve(values["config-file"]) : stackFilePath(values.stack as string);
    const connectTimeout = values["connect-timeout"] !== undefined ? positiveInt("connect-timeout", values["connect-timeout"], 0) : undefined;
    return {
        stack: values.stack ?? path.basename(configFile),
        configFile,
        json: values.json === true,
        diff: values.diff === true,
        progress: values.progress === true || (stderrIsTty && values.json !== true),
        concurrency: positiveInt("concurrency", values.concurrency, 8),
        hosts: values.host ?? [],
        caFingerprint: fingerprint,
        outputsFile: values["from-stack-outputs"],
        controlHost: values["control-host"],
        ssh: {
            identity: values.identity,
            configFile: values["ssh-config"],
            knownHostsFile: values["known-hosts"],
            strictHostKeyChecking: strict,
            connectTimeoutSeconds: connectTimeout,
            hostTimeoutSeconds: positiveInt("timeout", values.timeout, 90),
        },
    };
}

/** `pulumi stack output --json [--show-secrets]`: the keys drift uses, type-checked. */
export function readStackOutputs(file: string): StackOutputs {
    const raw: unknown = JSON.parse(readFileSync(file, "utf8"));
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        throw new Error(`${file}: not a JSON object (pulumi stack output --json)`);
    }
    const record = raw as Record<string, unknown>;
    const text = (key: string): string | undefined => (typeof record[key] === "string" ? record[key] : undefined);
    const expiry = record.nebulaCertExpiry;
    return {
        controlServerIp: text("controlServerIp"),
        nebulaCaFingerprint: text("nebulaCaFingerprint"),
        derpMap: text("derpMap"),
        nebulaCertExpiry:
            typeof expiry === "object" && expiry !== null
                ? Object.fromEntries(
                      Object.entries(expiry as Record<string, unknown>).filter((entry): entry is [string, string] => typeof entry[1] === "string"),
                  )
                : undefined,
    };
}

export async function runDriftCommand(
    argv: string[],
    stdout: NodeJS.WritableStream,
    stderr: NodeJS.WritableStream & { isTTY?: boolean },
    env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
    let options: DriftOptions;
    try {
        options = parseOptions(argv, stderr.isTTY === true);
    } catch (error) {
        stderr.write(`drift: ${(error as Error).message}\n${USAGE}`);
        return 2;
    }
    let check: StackCheck;
    let outputs: StackOutputs | undefined;
    try {
        check = checkStackFile(readStackFile(options.configFile), { sshVia: env[SSH_VIA_ENV] });
        outputs = options.outputsFile !== undefined ? readStackOutputs(options.outputsFile) : undefined;
    } catch (error) {
        stderr.write(`drift: ${(error as Error).message}\n`);
        return 1;
    }
    for (const problem of check.problems) {
        stderr.write(`${formatProblem(problem)}\n`);
    }
    if (!check.fleet) {
        stderr.write(`drift: ${options.configFile} is invalid; nothing read\n`);
        return 1;
    }
    const expectation = driftExpectation(check.fleet, { outputs, caFingerprint: options.caFingerprint, controlHost: options.controlHost });
    if (options.hosts.length > 0) {
        const unknown = options.hosts.filter((name) => !expectation.hosts.some((host) => host.name === name));
        if (unknown.length > 0) {
            stderr.write(`drift: --host ${unknown.join(", ")}: not a host of the plan (${expectation.hosts.map((host) => host.name).join(", ")})\n`);
            return 2;
        }
        // The genesis stays in: every K3s node's annotation is read there.
        expectation.hosts = expectation.hosts.filter(
            (host) => options.hosts.includes(host.name) || (host.kubectl && expectation.hosts.some((each) => each.k3s && options.hosts.includes(each.name))),
        );
    }
    const report = await runDrift(expectation, {
        stack: options.stack,
        concurrency: options.concurrency,
        diff: options.diff,
        now: new Date(),
        ssh: options.ssh,
        onProgress: options.progress
            ? (done, total) => {
                  stderr.write(`\rdrift: read ${done}/${total} hosts${done === total ? "\n" : ""}`);
              }
            : undefined,
    });
    stdout.write(options.json ? formatJson(report) : formatText(report));
    return exitCode(report);
}

if (require.main === module) {
    runDriftCommand(process.argv.slice(2), process.stdout, process.stderr).then(
        (code) => {
            process.exitCode = code;
        },
        (error: unknown) => {
            process.stderr.write(`drift: ${error instanceof Error ? error.message : String(error)}\n`);
            process.exitCode = 1;
        },
    );
}
