import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { HEADSCALE_METRICS_PORT } from "../../../components/control/headscale";
import { versions } from "../../../components/versions";
import { committedFleet, labWithExistingControlHost, type RawFleet as Raw } from "./labShape";
import { checkLabPrerequisites, startLabFleet, type LabFleet, type LabHostSpec } from "..";
import { startApiServer, type ApiServer } from "./apiServer";
import { loadEngine, PulumiStack, type Engine } from "./engine";

/*
 * The lab stack on a lab-fleet bridge for a real `pulumi up` (test/e2e/realUp.test.ts and
 * the engine benchmark): the lab stack's K3s nodes (plus `extraAgents` more agents), its relay,
 * an existing host running the control server, the real API server on the bridge's root side
 * (cluster.serverUrl), and one stack of the real engine with the provider doubles (or real
 * plugins, SHORTCIRCUIT_PULUMI_PLUGINS).
 */

export const CONTROL = "lab-control-01";
export const RELAY = "lab-relay-01";
export const GENESIS = "lab-server-01";

/** What the headscale .deb installs on an existing control host (the bootstrap finds it installed). */
export const HEADSCALE_UNIT =
    "[Unit]\nDescription=headscale (e2e: stands in for the .deb's unit)\n[Service]\nExecStart=/usr/bin/headscale serve\n[Install]\nWantedBy=multi-user.target\n";

export const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

export interface E2eLabOptions {
    /** First three octets of the bridge's /24 ("198.18.77"); default: a free one in 198.18.0.0/15. */
    bridgePrefix?: string;
    stack: string;
    readyTimeoutSeconds: number;
    /** Internal: how many times a clashing bridge was chosen again. */
    attempt?: number;
    /** More K3s agents beyond the lab stack's two (the benchmark's prod-sized fleet). */
    extraAgents?: number;
    /**
     * "droplet": the control server is the lab stack's droplet (`controlServer.host.kind:
     * droplet`), and CONTROL is not a fleet node but the lab host that plays that droplet
     * (started with `machine: true`; test/e2e/dropletLab.ts emulates DigitalOcean on it).
     * Default "existing": the control server runs on the fleet host CONTROL.
     */
    controlHost?: "existing" | "droplet";
    /** Only the genesis and the control host: no agents, no relay, no cluster edge and no API server. */
    minimal?: boolean;
    /** More stack config beside the fleet (full keys, e.g. "digitalocean:apiEndpoint"); passed to PulumiStack. */
    stackConfig?: Record<string, string>;
    /** More stack secrets (full keys, e.g. "digitalocean:token"); passed to PulumiStack. */
    stackSecrets?: Record<string, string>;
}

export interface E2eLab {
    engine: Engine;
    fleet: LabFleet;
    api: ApiServer;
    stack: PulumiStack;
    config: Raw;
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

export async function startE2eLab(options: E2eLabOptions): Promise<E2eLab> {
    const missing = checkLabPrerequisites();
    if (missing.length > 0) throw new Error(`the lab fleet needs: ${missing.join("; ")} (scripts/setup.sh installs them; CI runs as root)`);
    const engine = loadEngine();
    const prefix = options.bridgePrefix ?? freeBridgePrefix();
    // The control server on a fleet host; its LAN address follows the bridge below.
    const raw: Raw = labWithExistingControlHost();
    if (raw.controlServer.host.host !== CONTROL) throw new Error(`the fixture's control host is not ${CONTROL}`);
    const droplet = options.controlHost === "droplet";
    if (droplet) {
        raw.controlServer.host = (committedFleet("lab") as Raw).controlServer.host;
        raw.nodes = raw.nodes.filter((node: Raw) => node.name !== CONTROL);
    }
    const lastOctet: Record<string, number> = options.minimal
        ? { [GENESIS]: 11, [CONTROL]: 3 }
        : { "lab-server-01": 11, "lab-agent-01": 21, "lab-agent-02": 22, [RELAY]: 2, [CONTROL]: 3 };
    if (options.minimal) {
        raw.nodes = raw.nodes.filter((node: Raw) => node.name in lastOctet);
        raw.derpRelays = [];
        raw.edge = { enabled: false };
    }
    for (let index = 0; index < (options.extraAgents ?? 0); index += 1) {
        const name = `lab-agent-${String(index + 3).padStart(2, "0")}`;
        lastOctet[name] = 30 + index;
        raw.nodes.push({
            name,
            site: "lab",
            role: "agent",
            arch: "amd64",
            os: "debian",
            lan: { interface: "eth0", address: "" },
            tailnet: { address: `100.68.0.${30 + index}` },
            nebula: { address: `10.68.1.${30 + index}` },
        });
    }
    raw.sites[0].lan = `${prefix}.0/24`;
    for (const node of raw.nodes) node.lan.address = `${prefix}.${lastOctet[node.name]}`;
    raw.access.sshVia = "lan";
    raw.cluster.readyTimeoutSeconds = options.readyTimeoutSeconds;
    raw.cluster.bootstrap = true;
    const k3sNodes: string[] = raw.nodes.filter((node: Raw) => node.role === "server" || node.role === "agent").map((node: Raw): string => String(node.name));
    const nebulaMembers: string[] = raw.nodes
        .filter((node: Raw) => node.nebula !== undefined)
        .map((node: Raw): string => String(node.name))
        .concat([CONTROL]);
    const hosts = Object.keys(lastOctet);
    // Each host carries the stack's overlay addresses and Nebula interface (a delivery checks that
    // nebula's link is up; the stand-in service manager runs nothing, so the tun device stands in).
    const nodeOf = (name: string): Raw => raw.nodes.find((node: Raw) => node.name === name) ?? {};
    const specs: LabHostSpec[] = hosts.map((name) => ({
        name,
        role: name === GENESIS ? "server" : "agent",
        lanAddress: `${prefix}.${lastOctet[name]}`,
        tailnetAddress: nodeOf(name).tailnet?.address,
        nebulaAddress: name === CONTROL ? raw.controlServer.nebula.address : nodeOf(name).nebula?.address,
        nebulaIface: raw.overlays.nebula.interface,
        ...(name === CONTROL ? { tools: { headscaleVersion: versions.headscale, nebulaVersion: versions.nebula } } : {}),
        ...(name === CONTROL && droplet ? { machine: true } : {}),
    }));
    let fleet: LabFleet;
    try {
        fleet = await startLabFleet({ bridgeCidr: `${prefix}.0/24`, hosts: specs });
    } catch (error) {
        // Another run took the same /24 between the choice and the start: choose again.
        if (options.bridgePrefix === undefined && /overlaps an existing route/.test(String(error)) && (options.attempt ?? 0) < 5) {
            return startE2eLab({ ...options, attempt: (options.attempt ?? 0) + 1 });
        }
        throw error;
    }
    let api: ApiServer | undefined;
    const listeners: ChildProcess[] = [];
    try {
        // derper's and Headscale's deliveries check that they answer on their ports: listeners
        // stand in for the daemons (derper's derp port, Headscale's loopback metrics port).
        for (const relay of raw.derpRelays as Raw[]) {
            listeners.push(await listenOn(fleet.host(relay.host).netns, relay.derpPort ?? 443));
        }
        listeners.push(await listenOn(fleet.host(CONTROL).netns, HEADSCALE_METRICS_PORT));
        const runDir = path.join(fleet.runDir, "e2e");
        fs.mkdirSync(runDir, { recursive: true });
        if (!options.minimal) {
            api = await startApiServer({
                dir: path.join(runDir, "apiserver"),
                address: fleet.gatewayAddress,
                kubeBin: engine.kubeBin,
                serviceCidr: raw.cluster.serviceCidr,
            });
            raw.cluster.serverUrl = api.url;
            // The genesis's k3s double hands out the real API server's admin kubeconfig as k3s.yaml.
            await fleet.setK3sBehaviour(GENESIS, { kubeconfig: api.kubeconfig });
        }
        fs.writeFileSync(fleet.hostPath(CONTROL, "/etc/systemd/system/headscale.service"), HEADSCALE_UNIT, { mode: 0o644 });
        await fleet.setToolBehaviour(CONTROL, { curlResponses: { [`https://${raw.controlServer.hostname}/health`]: { body: '{"status":"pass"}' } } });
        const seed = `${process.pid}-${Date.now()}`;
        const secrets = {
            k3sToken: `e2e-k3s-token-${sha256(`token-${seed}`).slice(0, 24)}`,
            headscaleNoiseKey: `privkey:${sha256(`noise-${seed}`)}`,
            derpKey: `privkey:${sha256(`derp-${seed}`)}`,
            sshPrivateKey: fleet.host(GENESIS).privateKeyPem,
        };
        const stack = new PulumiStack({
            runDir,
            engine,
            stack: options.stack,
            fleet: raw,
            secrets: { ...secrets, ...(options.stackSecrets ?? {}) },
            // Unquoted, as an operator writes it: the engine passes a YAML date as "2026-11-01 00:00:00 +0000 UTC".
            editStackFile: (text) => text.replace(/caIssuedOn: "?(\d{4}-\d{2}-\d{2})"?/, "caIssuedOn: $1"),
            ...(options.stackConfig ? { config: options.stackConfig } : {}),
        });
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
