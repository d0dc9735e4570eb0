/**
 * The process that owns a lab the lab command brought up: `lab up` forks it detached, and it
 * starts the fleet, the API server and the stack (scripts/lab/stack/labStack.ts), writes the
 * session's files, reports "ready" over the IPC channel and then only waits. Because the fleet's
 * owner is alive, no other lab run's stale-run cleanup touches it; `lab down` sends SIGTERM and
 * the fleet's own stop() removes everything. If `lab up` goes away before "ready" (Ctrl-C, a
 * crash), the keeper tears the half-made lab down and exits.
 */
import * as fs from "node:fs";
import SSHConfig from "ssh-config";
import { renderSshConfig } from "../../../components/access/sshConfig";
import { parseFleet } from "../../../stacks/validate";
import { procStartTime } from "../processes";
import { startLabStack, type LabStack } from "../stack/labStack";
import { sessionFiles, writeSession, writeStarted, type LabShapeName, type SessionRecord, type StartedParts } from "./record";

export interface KeeperRequest {
    stack: LabShapeName;
    dir: string;
    pluginFiles: Partial<Record<"command" | "tls" | "digitalocean", string>>;
    pluginSummary: string;
    readyTimeoutSeconds: number;
}

export type KeeperMessage = { kind: "step"; text: string } | { kind: "ready"; record: SessionRecord } | { kind: "failed"; message: string };

function send(message: KeeperMessage): void {
    if (process.connected) process.send?.(message);
}

/** The operator's SSH files: every host by name over the LAN, with the run's key and host keys. */
function writeSshFiles(lab: LabStack, dir: string): void {
    const files = sessionFiles(dir);
    fs.writeFileSync(files.identity, lab.fleet.host(lab.shape.genesis).privateKeyPem, { mode: 0o600 });
    fs.writeFileSync(
        files.knownHosts,
        lab.hosts.map((name) => `${lab.fleet.host(name).lanAddress} ${lab.fleet.host(name).hostPublicKey.split(" ").slice(0, 2).join(" ")}\n`).join(""),
        { mode: 0o600 },
    );
    const config = SSHConfig.parse(renderSshConfig(parseFleet(lab.config).fleet, "lan"));
    config.append({
        Host: "*",
        IdentityFile: files.identity,
        IdentitiesOnly: "yes",
        UserKnownHostsFile: files.knownHosts,
        StrictHostKeyChecking: "yes",
    });
    fs.writeFileSync(files.sshConfig, config.toString(), { mode: 0o600 });
}

function shellQuote(value: string): string {
    return `'${value.replace(/'/g, `'\\''`)}'`;
}

async function keep(request: KeeperRequest): Promise<void> {
    let lab: LabStack | undefined;
    const started: StartedParts = {};
    let ready = false;
    let stopping: Promise<void> | undefined;
    const stopAndExit = (code: number): void => {
        stopping ??= (async () => {
            await lab?.stop();
            process.exit(code);
        })();
    };
    process.on("SIGTERM", () => stopAndExit(0));
    process.on("SIGINT", () => stopAndExit(0));
    process.on("SIGHUP", () => undefined);
    process.on("disconnect", () => {
        if (!ready) stopAndExit(1);
    });
    try {
        lab = await startLabStack({
            stack: request.stack,
            shape: request.stack,
            readyTimeoutSeconds: request.readyTimeoutSeconds,
            linkProgram: true,
            scratchDir: request.dir,
            pluginFiles: request.pluginFiles,
            onStep: (text) => send({ kind: "step", text }),
            onStarted: (part) => {
                Object.assign(started, part);
                writeStarted(request.dir, started);
            },
        });
        if (stopping) return;
        writeSshFiles(lab, request.dir);
        const stack = lab.stack;
        const env = {
            PATH: `${stack.options.engine.pulumiBin}:${process.env.PATH ?? ""}`,
            PULUMI_HOME: stack.home,
            PULUMI_BACKEND_URL: `file://${stack.backendDir}`,
            PULUMI_CONFIG_PASSPHRASE: stack.passphrase,
            PULUMI_SKIP_UPDATE_CHECK: "true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
            PULUMI_IGNORE_AMBIENT_PLUGINS: "true",
        };
        fs.writeFileSync(
            sessionFiles(request.dir).env,
            `# source this to run pulumi on the lab stack: cd ${stack.projectDir}\n${Object.entries(env)
                .map(([key, value]) => `export ${key}=${shellQuote(value)}\n`)
                .join("")}`,
            { mode: 0o600 },
        );
        const record: SessionRecord = {
            stack: request.stack,
            runId: lab.fleet.runId,
            keeperPid: process.pid,
            keeperStart: procStartTime(process.pid),
            apiServerPids: lab.api.pids.map((pid) => ({ pid, start: procStartTime(pid) })),
            apiServerUrl: lab.api.url,
            startedAt: new Date().toISOString(),
            projectDir: stack.projectDir,
            backendDir: stack.backendDir,
            pulumiHome: stack.home,
            passphrase: stack.passphrase,
            env,
            pulumiBin: stack.options.engine.pulumiBin,
            hosts: lab.shape.hosts.map((host) => ({ name: host.name, lanAddress: host.lanAddress, role: host.control ? "control" : host.role })),
            control: lab.shape.control,
            changes: lab.shape.changes,
            plugins: request.pluginSummary,
        };
        writeSession(request.dir, record);
        ready = true;
        send({ kind: "ready", record });
        // Only waits from here: SIGTERM (lab down) stops it.
        setInterval(() => undefined, 1 << 30);
    } catch (error) {
        send({ kind: "failed", message: error instanceof Error ? error.message : String(error) });
        stopAndExit(1);
    }
}

process.once("message", (request: KeeperRequest) => void keep(request));
