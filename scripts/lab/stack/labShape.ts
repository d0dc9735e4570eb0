/**
 * A committed stack's fleet, reshaped to run on a lab fleet: every host becomes a lab host on
 * one bridge, so `pulumi up` on the derived stack never reaches a committed address.
 *
 * What changes (and is listed in `LabShape.changes`, which the lab command writes at the top of
 * the derived stack file):
 *   - LAN: each site's CIDR becomes a block of the bridge's /24 (the whole /24 for one site, else
 *     equal blocks), and each host keeps its last octet inside its site's block where that is
 *     free; `access.sshVia` becomes `lan`, because only the LAN is reachable from the machine's
 *     own namespace (the overlay addresses live on stand-in devices inside the hosts).
 *   - A droplet control server becomes an existing fleet host `<cluster>-control-01`
 *     (DigitalOcean is not part of a lab fleet; test/e2e/adoption.test.ts covers the droplet).
 *   - A macOS host becomes a Debian one, its relay run by systemd: the macOS-shaped lab host
 *     (scripts/lab/macos) runs no real nebula or derper under its launchctl stand-in, so the
 *     Mac's launchd path is tested by test/components/remote/launchd.lab.test.ts. A host the
 *     stack reaches as a non-root user (prod's `aero`, `admin`) keeps that user: its lab host
 *     accepts it, and the real sudo gives it root as the runbook's NOPASSWD rule does
 *     (`loginUser` makes every host such a host).
 *   - Headscale's replica is dropped: its bucket is not in the lab (the restore has a lab suite).
 *   - The cluster bootstraps (`cluster.bootstrap`) on the first up; `afterFirstUp` puts the
 *     committed value back, so a rehearsed change rolls the nodes in the committed order. Its
 *     API is the lab's API server (`cluster.serverUrl`, set once that server runs).
 * What stays: names, roles, overlay addresses, certificates' validity, the cluster, the edge:
 * the plan's order, restarts and files are the committed stack's.
 */
import { parseDocument } from "yaml";
import type { z } from "zod";
import type { LabRole } from "../k3s-double/types";
import type { LabHostSpec } from "../types";
import { rawFleetFromStackFile, readStackFile, stackFilePath } from "../../../stacks/stackFile";
import type { FleetSchema } from "../../../stacks/schema";
import { parseFleet } from "../../../stacks/validate";
import { ipToInt, intToIp, parseCidr } from "../ipv4";

/** A stack file's fleet as written (before defaults): what the derived stack file holds. */
export type FleetInput = z.input<typeof FleetSchema>;
type NodeInput = FleetInput["nodes"][number];

/** A lab host of the shape: what startLabFleet starts for it. */
export interface LabShapeHost {
    name: string;
    /** What the k3s double plays on it. */
    role: LabRole;
    lanAddress: string;
    tailnetAddress?: string;
    nebulaAddress?: string;
    /** It runs the control server (Headscale). */
    control: boolean;
    /** derper's port, when it serves a DERP relay. */
    derpPort?: number;
    /** The stack's non-root SSH user there: the lab host accepts it, with sudo as the runbook sets it up. */
    loginUser?: string;
}

export interface LabShape {
    /** The derived fleet: valid, and every address a lab one. */
    fleet: FleetInput;
    hosts: LabShapeHost[];
    /** The host that runs the control server. */
    control: string;
    genesis: string;
    k3sNodes: string[];
    /** What differs from the committed stack, one line each. */
    changes: string[];
}

export interface LabShapeOptions {
    /** First three octets of the bridge's /24, e.g. "198.19.7". */
    bridgePrefix: string;
    /**
     * "existing" (default): a droplet control server becomes a fleet host. "droplet": the droplet
     * stays, and its host is a lab host outside the fleet that plays it (test/e2e/dropletLab.ts).
     */
    controlServer?: "existing" | "droplet";
    readyTimeoutSeconds?: number;
    /** Reach every fleet host as this non-root user (become: sudo) instead of as the stack file says. */
    loginUser?: string;
}

/** A committed stack file's raw fleet object, freshly parsed so the caller may change it. */
export function committedFleet(stack: string): FleetInput {
    const raw = rawFleetFromStackFile(readStackFile(stackFilePath(stack)));
    parseFleet(raw);
    return raw as FleetInput;
}

/** The lab stack with its control server on a fleet host (`lab-control-01`), at its committed addresses. */
export function labWithExistingControlHost(): FleetInput {
    const raw = committedFleet("lab");
    const tailnet = parseCidr(raw.overlays.tailnet.prefix);
    raw.nodes.push(controlNode(raw, "192.168.50.3", firstFree(tailnet.network + 3, tailnet, usedTailnet(raw))));
    raw.controlServer.host = { kind: "existing", host: controlHostName(raw) };
    return raw;
}

function controlHostName(fleet: FleetInput): string {
    return `${fleet.cluster.name}-control-01`;
}

function controlNode(fleet: FleetInput, lanAddress: string, tailnetAddress: string): NodeInput {
    return {
        name: controlHostName(fleet),
        site: fleet.sites[0].name,
        role: "standalone",
        arch: "amd64",
        os: "debian",
        lan: { interface: "eth0", address: lanAddress },
        tailnet: { address: tailnetAddress },
    };
}

function usedTailnet(fleet: FleetInput): Set<number> {
    return new Set(fleet.nodes.flatMap((node) => (node.tailnet?.address ? [ipToInt(node.tailnet.address)] : [])));
}

/** The first address from `start` upward inside `range` that `used` does not hold. */
function firstFree(start: number, range: { network: number; prefix: number }, used: Set<number>): string {
    const size = 2 ** (32 - range.prefix);
    for (let offset = 0; offset < size; offset += 1) {
        const candidate = range.network + ((start - range.network + offset) % size);
        if (!used.has(candidate) && candidate !== range.network && candidate !== range.network + size - 1) return intToIp(candidate);
    }
    throw new Error(`no free address in ${intToIp(range.network)}/${range.prefix}`);
}

export function deriveLabShape(source: FleetInput, options: LabShapeOptions): LabShape {
    const fleet = structuredClone(source);
    const changes: string[] = [];
    const droplet = options.controlServer === "droplet";
    if (!/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(options.bridgePrefix)) throw new Error(`bridge prefix ${options.bridgePrefix} is not three octets`);

    // The control server's host: a fleet host, or (droplet) a lab host outside the fleet.
    let control: string;
    let controlOutsideFleet: NodeInput | undefined;
    const tailnet = parseCidr(fleet.overlays.tailnet.prefix);
    if (fleet.controlServer.host.kind === "droplet") {
        const played = controlNode(fleet, "", firstFree(tailnet.network + 3, tailnet, usedTailnet(fleet)));
        control = played.name;
        if (droplet) {
            controlOutsideFleet = played;
        } else {
            changes.push(`controlServer.host: droplet ${fleet.controlServer.host.name} → existing host ${control} (DigitalOcean is not in the lab)`);
            fleet.nodes.push(played);
            fleet.controlServer.host = { kind: "existing", host: control };
        }
    } else {
        control = fleet.controlServer.host.host;
    }

    // LAN: one block of the bridge's /24 per site; each host keeps its last octet where it can.
    const bits = Math.ceil(Math.log2(fleet.sites.length));
    const blockSize = 256 >> bits;
    if (blockSize < 8) throw new Error(`${fleet.sites.length} sites do not fit in blocks of one /24`);
    const bridge = parseCidr(`${options.bridgePrefix}.0/24`);
    const reserved = new Set([bridge.network, bridge.network + 1, bridge.network + 255]);
    const used = new Set<number>(reserved);
    const blockOf = new Map(fleet.sites.map((site, index) => [site.name, bridge.network + index * blockSize]));
    fleet.sites.forEach((site, index) => {
        const block = `${intToIp(bridge.network + index * blockSize)}/${24 + bits}`;
        changes.push(`sites[${site.name}].lan: ${site.lan} → ${block}`);
        site.lan = block;
    });
    const hostsOnLan = [...fleet.nodes, ...(controlOutsideFleet ? [controlOutsideFleet] : [])];
    const wanted = (node: NodeInput): number | undefined => {
        const base = blockOf.get(node.site);
        if (base === undefined || !node.lan.address) return undefined;
        return base + ((ipToInt(node.lan.address) % 256) % blockSize);
    };
    // Hosts whose own octet is free first, so a later host cannot take it.
    const assigned = new Map<string, number>();
    for (const node of hostsOnLan) {
        const address = wanted(node);
        if (address !== undefined && !used.has(address)) {
            assigned.set(node.name, address);
            used.add(address);
        }
    }
    for (const node of hostsOnLan) {
        if (assigned.has(node.name)) continue;
        const base = blockOf.get(node.site) ?? bridge.network;
        // The host that plays the control server takes .3 of its block where free, as the lab
        // suites have always had it (the lab stack's relay is .2).
        const address = ipToInt(firstFree(base + (node.name === control ? 3 : 2), { network: base, prefix: 24 + bits }, used));
        assigned.set(node.name, address);
        used.add(address);
    }
    for (const node of hostsOnLan) {
        node.lan = { ...node.lan, interface: "eth0", address: intToIp(assigned.get(node.name) ?? 0) };
    }
    if (fleet.access?.sshVia !== "lan") changes.push(`access.sshVia: ${fleet.access?.sshVia ?? "nebula"} → lan (the overlays exist only inside the lab hosts)`);
    fleet.access = { ...(fleet.access ?? {}), sshVia: "lan" };

    if (options.loginUser !== undefined) {
        for (const node of fleet.nodes) node.ssh = { ...(node.ssh ?? {}), user: options.loginUser };
        changes.push(`nodes[*].ssh.user: ${options.loginUser} (the lab hosts accept it, with sudo's NOPASSWD rule for /bin/bash)`);
    }
    // macOS hosts: played as Debian hosts, reached as their own SSH user. The macOS-shaped lab host
    // (scripts/lab/macos) runs its jobs under a launchctl stand-in where the real nebula and derper
    // do not stay up; test/components/remote/launchd.lab.test.ts covers their LaunchDaemons there.
    for (const node of fleet.nodes) {
        if (node.os !== "macos") continue;
        changes.push(`nodes[${node.name}]: os macos → debian (the macOS-shaped lab host runs no real nebula or derper)`);
        node.os = "debian";
    }
    for (const relay of fleet.derpRelays ?? []) {
        if (relay.serviceManager === "launchd") {
            changes.push(`derpRelays[${relay.host}].serviceManager: launchd → systemd (its host is played as Debian)`);
            relay.serviceManager = "systemd";
        }
    }

    if (fleet.controlServer.replica !== undefined) {
        changes.push(
            `controlServer.replica: dropped (its bucket ${fleet.controlServer.replica.bucket} is not in the lab; test/components/control/litestream.lab.test.ts runs the restore)`,
        );
        delete fleet.controlServer.replica;
    }

    fleet.cluster.bootstrap = true;
    if (options.readyTimeoutSeconds !== undefined) fleet.cluster.readyTimeoutSeconds = options.readyTimeoutSeconds;
    changes.push(
        `cluster.bootstrap: true for the first up only (a fresh lab fleet has no cluster yet), then ${String(source.cluster.bootstrap ?? false)} as committed, so a change rolls in the committed order`,
    );

    const nodes = fleet.nodes;
    const genesis = nodes.find((node) => node.genesis === true)?.name;
    if (genesis === undefined) throw new Error("the stack has no genesis server");
    const relayPorts = new Map((fleet.derpRelays ?? []).map((relay) => [relay.host, relay.derpPort ?? 443]));
    const hosts: LabShapeHost[] = hostsOnLan.map((node) => ({
        name: node.name,
        role: node.role === "server" ? "server" : "agent",
        lanAddress: node.lan.address,
        ...(node.tailnet?.address ? { tailnetAddress: node.tailnet.address } : {}),
        ...(node.name === control ? { nebulaAddress: fleet.controlServer.nebula.address } : node.nebula ? { nebulaAddress: node.nebula.address } : {}),
        control: node.name === control,
        ...(relayPorts.has(node.name) ? { derpPort: relayPorts.get(node.name) } : {}),
        ...(node.ssh?.user !== undefined && node.ssh.user !== "root" ? { loginUser: node.ssh.user } : {}),
    }));
    parseFleet(fleet);
    return {
        fleet,
        hosts,
        control,
        genesis,
        k3sNodes: nodes.filter((node) => node.role === "server" || node.role === "agent").map((node) => node.name),
        changes,
    };
}

/**
 * The derived stack file's text once the first up has bootstrapped the cluster: `cluster.bootstrap`
 * as the committed stack has it (only the nodes' order depends on it, so the next preview is a no-op).
 */
export function afterFirstUp(stackFileText: string, committed: FleetInput): string {
    const document = parseDocument(stackFileText);
    const key = ["config", "shortcircuit:fleet", "cluster", "bootstrap"];
    if (committed.cluster.bootstrap === undefined) document.deleteIn(key);
    else document.setIn(key, committed.cluster.bootstrap);
    return document.toString({ lineWidth: 0 });
}

/** What startLabFleet starts for a host of the shape: its addresses and the stack's Nebula interface. */
export function labHostSpec(shape: LabShape, host: LabShapeHost): LabHostSpec {
    return {
        name: host.name,
        role: host.role,
        lanAddress: host.lanAddress,
        tailnetAddress: host.tailnetAddress,
        nebulaAddress: host.nebulaAddress,
        nebulaIface: shape.fleet.overlays.nebula.interface,
        ...(host.loginUser !== undefined ? { login: { user: host.loginUser, sudo: "nopasswd" } } : {}),
    };
}
