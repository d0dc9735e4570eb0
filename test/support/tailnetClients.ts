import * as path from "node:path";
import { tailnetTool } from "./tools";
import { exited, Fatal, httpsIn, must, nsName, run, startIn, waitFor, type Daemon, type Result } from "./tailnetLab";

/*
 * The real headscale and tailscaled as the tailnet suites drive them: headscale's CLI on its
 * config, a tailscaled per node namespace with `tailscale` talking to its socket, and the bounded
 * waits on them (a node Running, headscale answering /health, a ping over the tailnet). Every
 * client trusts only the run's test CA. Shared by tailnet.lab.test.ts and litestream.lab.test.ts.
 */

/** A tailscaled test node: its namespace (`short`), LAN address, state dir and socket. */
export interface TailnetNode {
    name: string;
    short: string;
    lan: string;
    dir: string;
    socket: string;
    daemon?: Daemon;
}

export interface PeerStatus {
    ID: string;
    PublicKey: string;
    HostName: string;
    TailscaleIPs?: string[];
    Relay: string;
    CurAddr: string;
    Online: boolean;
    PrimaryRoutes?: string[];
}

export interface Status {
    BackendState: string;
    Self: PeerStatus;
    Peer?: Record<string, PeerStatus>;
}

/** Headscale's node list (JSON field names of headscale v0.29's API). */
export interface HsNode {
    id: string | number;
    name: string;
    given_name?: string;
    ip_addresses: string[];
    node_key: string;
    machine_key: string;
    online?: boolean;
    approved_routes?: string[];
    available_routes?: string[];
}

export interface TailnetClientsOptions {
    /** The test CA every client trusts (known once the suite's setup made it). */
    caFile: () => string;
    /** headscale's config file. */
    hsConfig: () => string;
    /** The daemons' log tails, for a failed wait's message. */
    logs: () => string;
    /** The tailnet interface the nodes create. */
    iface: string;
}

export class TailnetClients {
    constructor(private readonly options: TailnetClientsOptions) {}

    async hs(args: readonly string[]): Promise<string> {
        return must(tailnetTool("headscale"), ["-c", this.options.hsConfig(), "--force", ...args], { timeoutMs: 15_000 });
    }

    async hsJson<T>(args: readonly string[]): Promise<T> {
        return JSON.parse(await this.hs([...args, "-o", "json"])) as T;
    }

    hsNodes(): Promise<HsNode[]> {
        return this.hsJson<HsNode[]>(["nodes", "list"]);
    }

    /** Starts `headscale serve` in namespace `ns` and waits (bounded) for /health over TLS, asked from `probeNs`. */
    async startHeadscale(ns: string, log: string, probeNs: string, url: string): Promise<Daemon> {
        const daemon = startIn(ns, "headscale", tailnetTool("headscale"), ["-c", this.options.hsConfig(), "serve"], log);
        await waitFor(
            "headscale to answer /health over TLS",
            async () => {
                if (exited(daemon.child)) {
                    throw new Fatal(`headscale exited (${daemon.child.exitCode ?? daemon.child.signalCode})`);
                }
                const reply = await httpsIn(probeNs, this.options.caFile(), `${url}/health`);
                return reply.status === 200 ? reply : undefined;
            },
            { timeoutMs: 30_000, intervalMs: 300, context: this.options.logs },
        );
        return daemon;
    }

    startTailscaled(node: TailnetNode): void {
        node.daemon = startIn(
            nsName(node.short),
            `tailscaled ${node.name}`,
            tailnetTool("tailscaled"),
            [`--tun=${this.options.iface}`, `--statedir=${path.join(node.dir, "state")}`, `--socket=${node.socket}`, "--port=41641", "--no-logs-no-support"],
            path.join(node.dir, "tailscaled.log"),
            { SSL_CERT_FILE: this.options.caFile(), XDG_CACHE_HOME: path.join(node.dir, "cache"), HOME: node.dir, TS_NO_LOGS_NO_SUPPORT: "true" },
        );
    }

    ts(node: TailnetNode, args: readonly string[], timeoutMs = 20_000): Promise<Result> {
        return run("ip", ["netns", "exec", nsName(node.short), tailnetTool("tailscale"), `--socket=${node.socket}`, ...args], {
            timeoutMs,
            env: { ...process.env, SSL_CERT_FILE: this.options.caFile() },
        });
    }

    async tsMust(node: TailnetNode, args: readonly string[], timeoutMs = 20_000): Promise<string> {
        const r = await this.ts(node, args, timeoutMs);
        if (r.status !== 0) {
            throw new Error(`tailscale ${args.join(" ")} on ${node.name} exited ${r.status}:\n${r.stdout}${r.stderr}`);
        }
        return r.stdout;
    }

    async status(node: TailnetNode): Promise<Status> {
        return JSON.parse(await this.tsMust(node, ["status", "--json"])) as Status;
    }

    async waitRunning(node: TailnetNode, timeoutMs: number): Promise<Status> {
        return waitFor(
            `${node.name} to be Running with a tailnet address`,
            async () => {
                if (node.daemon && exited(node.daemon.child)) {
                    throw new Fatal(`tailscaled on ${node.name} exited`);
                }
                const s = await this.status(node);
                return s.BackendState === "Running" && (s.Self.TailscaleIPs ?? []).length > 0 ? s : undefined;
            },
            { timeoutMs, intervalMs: 500, context: this.options.logs },
        );
    }

    ping(from: TailnetNode, to: string): Promise<Result> {
        return run("ip", ["netns", "exec", nsName(from.short), "ping", "-n", "-c", "2", "-W", "2", "-I", this.options.iface, to], { timeoutMs: 15_000 });
    }

    /** ICMP over the tailnet interface until one run of two pings succeeds (at most 10 runs, 45 s). */
    async pingUntilReply(from: TailnetNode, to: string): Promise<string> {
        let last = "";
        return waitFor(
            `ping ${from.name} → ${to} over ${this.options.iface}`,
            async () => {
                const r = await this.ping(from, to);
                last = r.stdout + r.stderr;
                return r.status === 0 ? r.stdout : undefined;
            },
            { timeoutMs: 45_000, intervalMs: 300, attempts: 10, context: () => `last ping:\n${last}\n${this.options.logs()}` },
        );
    }
}
