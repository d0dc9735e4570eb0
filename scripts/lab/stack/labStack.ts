import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { HEADSCALE_METRICS_PORT } from "../../../components/control/headscale";
import { versions } from "../../../components/versions";
import { parseFleet } from "../../../stacks/validate";
import { committedFleet, deriveLabShape, labHostSpec, type FleetInput, type LabShape } from "./labShape";
import { checkLabPrerequisites, startLabFleet, type LabFleet, type LabHostSpec } from "..";
import { startApiServer, type ApiServer } from "./apiServer";
import { loadEngine, PulumiStack, type Engine } from "./engine";

/*
 * A committed stack's shape (labShape.ts) on a lab-fleet bridge, with the real engine: the lab
 * command (scripts/labCommand.ts), test/e2e/realUp.test.ts and the engine benchmark run this. It
 * starts a lab host per host of the shape (plus `extraAgents` more agents), the real API server
 * on the bridge's root side (cluster.serverUrl), listeners standing in for derper's and
 * Headscale's ports, and one stack of the real engine with the provider doubles (or real
 * plugins, SHORTCIRCUIT_PULUMI_PLUGINS).
 */

/** The lab shape's host names (the lab stack's). */
export const CONTROL = "lab-control-01";
export const RELAY = "lab-relay-01";
export const GENESIS = "lab-server-01";

/** What the headscale .deb installs on an existing control host (the bootstrap finds it installed). */
export const HEADSCALE_UNIT =
    "[Unit]\nDescription=headscale (lab: stands in for the .deb's unit)\n[Service]\nExecStart=/usr/bin/headscale serve\n[Install]\nWantedBy=multi-user.target\n";

export const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

export interface LabStackOptions {
    /** The Pulumi stack's name. */
    stack: string;
    /** The committed stack file whose shape the lab takes (default "lab"). */
    shape?: "lab" | "prod";
    /** First three octets of the bridge's /24 ("198.18.77"); default: a free one in 198.19.0.0/16. */
    bridgePrefix?: string;
    readyTimeoutSeconds: number;
    /** Internal: how many times a clashing bridge was chosen again. */
    attempt?: number;
    /** More K3s agents beyond the shape's (the benchmark's prod-sized fleet). */
    extraAgents?: number;
    /**
     * "droplet": the control server is the stack's droplet, and CONTROL is not a fleet node but
     * the lab host that plays that droplet (started with `machine: true`; test/e2e/dropletLab.ts
     * emulates DigitalOcean on it). Default "existing": the control server runs on the fleet host
     * CONTROL.
     */
    controlHost?: "existing" | "droplet";
    /** Reach every fleet host as this non-root user through sudo (labShape.ts's loginUser). */
    loginUser?: string;
    /** Only the genesis and the control host: no agents, no relay, no cluster edge and no API server. */
    minimal?: boolean;
    /** More stack config beside the fleet (full keys, e.g. "digitalocean:apiEndpoint"); passed to PulumiStack. */
    stackConfig?: Record<string, string>;
    /** More stack secrets (full keys, e.g. "digitalocean:token"); passed to PulumiStack. */
    stackSecrets?: Record<string, string>;
    /** The stack's project links the working tree's program instead of copying it (the lab command: edits show up). */
    linkProgram?: boolean;
    /** Where the stack's project, backend and PULUMI_HOME go (default <run dir>/e2e). */
    scratchDir?: string;
    /** Real provider plugins by name (scripts/lab/session/plugins.ts); the rest run as doubles. */
    pluginFiles?: Partial<Record<"command" | "tls" | "digitalocean", string>>;
    /** Called as soon as a part that outlives a crash exists: the fleet's run id, the API server's pids (lab down finds them by these). */
    onStarted?: (part: { runId: string } | { apiServerPids: number[] }) => void;
    /** Called as each part starts ("fleet", "api server", "stack"), for progress output. */
    onStep?: (step: string) => void;
}

export interface LabStack {
    engine: Engine;
    fleet: LabFleet;
    api: ApiServer;
    stack: PulumiStack;
    /** The derived fleet the stack file holds (tests change it and call stack.setFleet). */
    config: FleetInput;
    shape: LabShape;
    runDir: string;
    hosts: string[];
    k3sNodes: string[];
    nebulaMembers: string[];
    secrets: Record<string, string>;
    /** sshd's accepted sessions per host (its VERBOSE log). */
    sessions(): Record<string, number>;
    sessionDelta(before: Record<string, number>): Record<string, number>;
    /** ino:mtime of every file under each host's private directories, by host then in-host path. */
    fileStamps(): Record<string, Record<string, string>>;
    changedFiles(before: Record<string, Record<string, string>>): Record<string, string[]>;
    read(host: string, file: string): string;
    stop(): Promise<void>;
}

export async function startLabStack(options: LabStackOptions): Promise<LabStack> {
    const missing = checkLabPrerequisites();
    if (missing.length > 0) throw new Error(`the lab fleet needs: ${missing.join("; ")} (scripts/setup.sh installs them; CI runs as root)`);
    const engine = loadEngine();
    const prefix = options.bridgePrefix ?? freeBridgePrefix();
    const source = committedFleet(options.shape ?? "lab");
    for (let index = 0; index < (options.extraAgents ?? 0); index += 1) {
        source.nodes.push({
            name: `${source.cluster.name}-agent-x${String(index + 1).padStart(2, "0")}`,
            site: source.sites[0].name,
            role: "agent",
            arch: "amd64",
            os: "debian",
            lan: { interface: "eth0", address: "" },
            tailnet: { address: `${source.overlays.tailnet.prefix.split(".").slice(0, 2).join(".")}.200.${index + 1}` },
            nebula: { address: `${source.overlays.nebula.network.split(".").slice(0, 2).join(".")}.200.${index + 1}` },
        });
    }
    if (options.minimal) {
        source.nodes = source.nodes.filter((node) => node.genesis === true);
        source.derpRelays = [];
        source.edge = { enabled: false };
    }
    const shape = deriveLabShape(source, {
        bridgePrefix: prefix,
        controlServer: options.controlHost ?? "existing",
        readyTimeoutSeconds: options.readyTimeoutSeconds,
        ...(options.loginUser !== undefined ? { loginUser: options.loginUser } : {}),
    });
    const raw = shape.fleet;
    const droplet = options.controlHost === "droplet";
    const k3sNodes = shape.k3sNodes;
    const nebulaMembers: string[] = shape.fleet.nodes
        .filter((node) => node.nebula !== undefined)
        .map((node) => node.name)
        .concat(shape.fleet.nodes.some((node) => node.name === shape.control && node.nebula !== undefined) ? [] : [shape.control]);
    const hosts = shape.hosts.map((host) => host.name);
    // Each host carries the stack's overlay addresses and Nebula interface (a delivery checks that
    // nebula's link is up; the stand-in service manager runs nothing, so the tun device stands in).
    const specs: LabHostSpec[] = shape.hosts.map((host) => ({
        ...labHostSpec(shape, host),
        ...(host.control ? { tools: { headscaleVersion: versions.headscale, nebulaVersion: versions.nebula } } : {}),
        ...(host.control && droplet ? { machine: true } : {}),
    }));
    let fleet: LabFleet;
    options.onStep?.(`lab fleet: ${specs.length} hosts on ${prefix}.0/24 (network namespaces, sshd, the k3s and service stand-ins)`);
    try {
        fleet = await startLabFleet({ bridgeCidr: `${prefix}.0/24`, hosts: specs });
    } catch (error) {
        // Another run took the same /24 between the choice and the start: choose again.
        if (options.bridgePrefix === undefined && /overlaps an existing route/.test(String(error)) && (options.attempt ?? 0) < 5) {
            return startLabStack({ ...options, attempt: (options.attempt ?? 0) + 1 });
        }
        throw error;
    }
    options.onStarted?.({ runId: fleet.runId });
    let api: ApiServer | undefined;
    const listeners: ChildProcess[] = [];
    try {
        // derper's and Headscale's deliveries check that they answer on their ports: listeners
        // stand in for the daemons (derper's derp port, Headscale's loopback metrics port).
        for (const host of shape.hosts) {
            if (host.derpPort !== undefined) listeners.push(await listenOn(fleet.host(host.name).netns, host.derpPort));
        }
        listeners.push(await listenOn(fleet.host(shape.control).netns, HEADSCALE_METRICS_PORT));
        const runDir = options.scratchDir ?? path.join(fleet.runDir, "e2e");
        fs.mkdirSync(runDir, { recursive: true, mode: 0o700 });
        if (!options.minimal) {
            options.onStep?.(`API server: kube-apiserver ${path.basename(path.dirname(engine.kubeBin))} + etcd on ${fleet.gatewayAddress}`);
            api = await startApiServer({
                dir: path.join(runDir, "apiserver"),
                address: fleet.gatewayAddress,
                kubeBin: engine.kubeBin,
                serviceCidr: parseFleet(raw).fleet.cluster.serviceCidr,
            });
            options.onStarted?.({ apiServerPids: api.pids });
            raw.cluster.serverUrl = api.url;
            // The genesis's k3s double hands out the real API server's admin kubeconfig as k3s.yaml.
            await fleet.setK3sBehaviour(shape.genesis, { kubeconfig: api.kubeconfig });
        }
        fs.writeFileSync(fleet.hostPath(shape.control, "/etc/systemd/system/headscale.service"), HEADSCALE_UNIT, { mode: 0o644 });
        await fleet.setToolBehaviour(shape.control, { curlResponses: { [`https://${raw.controlServer.hostname}/health`]: { body: '{"status":"pass"}' } } });
        const seed = `${process.pid}-${Date.now()}`;
        const secrets = {
            k3sToken: `e2e-k3s-token-${sha256(`token-${seed}`).slice(0, 24)}`,
            headscaleNoiseKey: `privkey:${sha256(`noise-${seed}`)}`,
            derpKey: `privkey:${sha256(`derp-${seed}`)}`,
            sshPrivateKey: fleet.host(shape.genesis).privateKeyPem,
        };
        const header = [
            `# Derived for a lab fleet from the committed Pulumi.${options.shape ?? "lab"}.yaml (scripts/lab/stack/labShape.ts), which is never written.`,
            "# What differs from it:",
            ...shape.changes.map((change) => `#   ${change}`),
            "",
        ].join("\n");
        const stack = new PulumiStack({
            runDir,
            engine,
            stack: options.stack,
            fleet: raw,
            secrets: { ...secrets, ...(options.stackSecrets ?? {}) },
            // Unquoted, as an operator writes it: the engine passes a YAML date as "2026-11-01 00:00:00 +0000 UTC".
            editStackFile: (text) => `${header}${text.replace(/caIssuedOn: "?(\d{4}-\d{2}-\d{2})"?/, "caIssuedOn: $1")}`,
            ...(options.stackConfig ? { config: options.stackConfig } : {}),
            ...(options.linkProgram ? { linkProgram: true } : {}),
            ...(options.pluginFiles ? { pluginFiles: options.pluginFiles } : {}),
        });
        options.onStep?.(`stack ${options.stack}: project ${stack.projectDir}, backend file://${stack.backendDir}`);
        await stack.init();
        const apiServer = api;
        const sessions = (): Record<string, number> =>
            Object.fromEntries(
                hosts.map((name) => {
                    const log = path.join(path.dirname(fleet.host(name).rootDir), "sshd.log");
                    const text = fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "";
                    return [name, (text.match(/Accepted publickey for /g) ?? []).length];
                }),
            );
        const fileStamps = (): Record<string, Record<string, string>> => {
            const out: Record<string, Record<string, string>> = {};
            for (const name of hosts) {
                const root = fleet.host(name).rootDir;
                const files: Record<string, string> = {};
                const walk = (dir: string): void => {
                    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
                        const full = path.join(dir, entry.name);
                        if (entry.isDirectory()) walk(full);
                        else if (entry.isFile()) {
                            const stat = fs.statSync(full);
                            files[full.slice(root.length)] = `${stat.ino}:${stat.mtimeMs}`;
                        }
                    }
                };
                if (fs.existsSync(root)) walk(root);
                out[name] = files;
            }
            return out;
        };
        return {
            engine,
            fleet,
            get api(): ApiServer {
                if (!apiServer) throw new Error("this e2e lab was started with minimal: true: it has no API server");
                return apiServer;
            },
            stack,
            config: raw,
            shape,
            runDir,
            hosts,
            k3sNodes,
            nebulaMembers,
            secrets,
            sessions,
            sessionDelta: (before) => {
                const now = sessions();
                return Object.fromEntries(hosts.map((name) => [name, now[name] - before[name]]));
            },
            fileStamps,
            changedFiles: (before) => {
                const after = fileStamps();
                return Object.fromEntries(
                    hosts.map((name) => {
                        const keys = new Set([...Object.keys(before[name]), ...Object.keys(after[name])]);
                        return [name, [...keys].filter((key) => before[name][key] !== after[name][key]).sort()];
                    }),
                );
            },
            read: (host, file) => fs.readFileSync(fleet.hostPath(host, file), "utf8"),
            stop: async () => {
                await apiServer?.stop();
                listeners.forEach((child) => child.kill("SIGKILL"));
                await fleet.stop();
            },
        };
    } catch (error) {
        await api?.stop();
        listeners.forEach((child) => child.kill("SIGKILL"));
        await fleet.stop();
        throw error;
    }
}

/**
 * A /24 of 198.19.0.0/16 that no route of this machine overlaps, so concurrent runs (a CI clone
 * beside a working tree) do not clash; the other lab suites keep to fixed /24s of 198.18.0.0/16.
 */
export function freeBridgePrefix(): string {
    const routes = execFileSync("ip", ["-4", "route", "show", "table", "all"], { encoding: "utf8" });
    const taken = new Set([...routes.matchAll(/\b198\.19\.(\d+)\.\d+/g)].map((match) => Number(match[1])));
    const start = Math.floor(Math.random() * 250);
    for (let index = 0; index < 250; index += 1) {
        const third = ((start + index) % 250) + 2;
        if (!taken.has(third)) return `198.19.${third}`;
    }
    throw new Error("no free /24 in 198.19.0.0/16 for the lab bridge");
}

/** A TCP listener on 127.0.0.1:port inside a network namespace (our child, killed by stop()). */
async function listenOn(netns: string, port: number): Promise<ChildProcess> {
    const code = `require("net").createServer((socket) => socket.destroy()).listen(${port}, "127.0.0.1", () => process.stdout.write("listening\\n"));`;
    const child = spawn("ip", ["netns", "exec", netns, process.execPath, "-e", code], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    for (let waited = 0; !output.includes("listening"); waited += 100) {
        if (child.exitCode !== null || waited > 10_000) {
            child.kill("SIGKILL");
            throw new Error(`no listener on ${netns} 127.0.0.1:${port}: ${output}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return child;
}
