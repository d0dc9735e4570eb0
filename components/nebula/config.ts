import { Document } from "yaml";
import { flannelPath, isK3sNode, nodeIpPath } from "../../stacks/fleet";
import { addressWithPrefix, parseIpv4Network } from "../../stacks/net";
import type { Fleet } from "../../stacks/schema";

/*
 * Nebula membership and each member's /etc/nebula/config.yml. The same functions serve the
 * SSH delivery to nodes, the control server's cloud-init and the offline render.
 */

export const NEBULA_DIR = "/etc/nebula";
export const NEBULA_FILES = {
    config: `${NEBULA_DIR}/config.yml`,
    ca: `${NEBULA_DIR}/ca.crt`,
    cert: `${NEBULA_DIR}/host.crt`,
    key: `${NEBULA_DIR}/host.key`,
} as const;

export type NebulaMemberKind = "node" | "control-server" | "admin";

/** One host on the mesh: what its certificate says and how its config is shaped. */
export interface NebulaMember {
    name: string;
    kind: NebulaMemberKind;
    /** Overlay address with the network's prefix, as signed into the certificate. */
    addressWithPrefix: string;
    address: string;
    groups: string[];
    lighthouse: boolean;
    /** `host:port` others dial, for lighthouses. */
    publicEndpoint?: string;
    /** Nebula carries this host's K3s traffic (node-ip or flannel on nebula0). */
    carriesK3s: boolean;
    os: string;
}

/** Group every K3s node carries, so firewall rules can admit cluster traffic with one name. */
export const K3S_GROUP = "k3s";
export const LIGHTHOUSE_GROUP = "lighthouse";

function uniqueSorted(values: string[]): string[] {
    return [...new Set(values)].sort();
}

/** Where the control server's lighthouse is dialled: its reserved IP when configured, else its DNS name. */
export function controlServerEndpoint(fleet: Fleet): string {
    const host = fleet.controlServer.publicIp ?? fleet.controlServer.hostname;
    return `${host}:${fleet.overlays.nebula.listenPort}`;
}

export function controlServerNebulaName(fleet: Fleet): string {
    const host = fleet.controlServer.host;
    return host.kind === "droplet" ? host.name : host.host;
}

/** Every Nebula member in a stable order: the control server, fleet nodes, then admin workstations. */
export function nebulaMembers(fleet: Fleet): NebulaMember[] {
    const network = parseIpv4Network(fleet.overlays.nebula.network);
    const withPrefix = (address: string): string => addressWithPrefix(address, network);
    const control = fleet.controlServer;
    const controlNode = control.host.kind === "existing" ? fleet.nodes.find((node) => node.name === controlServerNebulaName(fleet)) : undefined;
    const members: NebulaMember[] = [
        {
            name: controlServerNebulaName(fleet),
            kind: "control-server",
            address: control.nebula.address,
            addressWithPrefix: withPrefix(control.nebula.address),
            groups: uniqueSorted(["control-server", LIGHTHOUSE_GROUP]),
            lighthouse: true,
            publicEndpoint: controlServerEndpoint(fleet),
            carriesK3s: false,
            os: controlNode?.os ?? "debian",
        },
    ];
    for (const node of fleet.nodes) {
        if (!node.nebula || node === controlNode) {
            continue;
        }
        const k3s = isK3sNode(node);
        members.push({
            name: node.name,
            kind: "node",
            address: node.nebula.address,
            addressWithPrefix: withPrefix(node.nebula.address),
            groups: uniqueSorted([
                node.role,
                node.site,
                ...(k3s ? [K3S_GROUP] : []),
                ...(node.nebula.lighthouse ? [LIGHTHOUSE_GROUP] : []),
                ...node.nebula.groups,
            ]),
            lighthouse: node.nebula.lighthouse,
            publicEndpoint: node.nebula.publicEndpoint,
            carriesK3s: k3s && (nodeIpPath(fleet, node) === "nebula" || flannelPath(fleet, node) === "nebula"),
            os: node.os,
        });
    }
    for (const admin of fleet.overlays.nebula.admins) {
        members.push({
            name: admin.name,
            kind: "admin",
            address: admin.address,
            addressWithPrefix: withPrefix(admin.address),
            groups: uniqueSorted([fleet.overlays.nebula.adminGroup, ...admin.groups]),
            lighthouse: false,
            carriesK3s: false,
            os: "workstation",
        });
    }
    return members;
}

/** The control server's member entry; nebulaMembers() always has one. */
export function controlServerMember(members: readonly NebulaMember[]): NebulaMember {
    const member = members.find((each) => each.kind === "control-server");
    if (!member) {
        throw new Error("the Nebula members lack the control server");
    }
    return member;
}

export function lighthouses(members: readonly NebulaMember[]): NebulaMember[] {
    return members.filter((member) => member.lighthouse);
}

interface FirewallRule {
    port: string | number;
    proto: "any" | "tcp" | "udp" | "icmp";
    host?: string;
    group?: string;
}

/**
 * K3s traffic Nebula must admit when it carries the cluster: supervisor/API, kubelet, flannel
 * VXLAN and wireguard-native, and etcd client/peer on servers.
 */
const K3S_PORTS: readonly { port: string | number; proto: "tcp" | "udp" }[] = [
    { port: 6443, proto: "tcp" },
    { port: 10250, proto: "tcp" },
    { port: 8472, proto: "udp" },
    { port: "51820-51821", proto: "udp" },
    { port: "2379-2380", proto: "tcp" },
];

function inboundRules(fleet: Fleet, member: NebulaMember): FirewallRule[] {
    const admin = fleet.overlays.nebula.adminGroup;
    const rules: FirewallRule[] = [
        { port: "any", proto: "icmp", group: admin },
        { port: 22, proto: "tcp", group: admin },
    ];
    if (member.carriesK3s) {
        rules.push(...K3S_PORTS.map(({ port, proto }) => ({ port, proto, group: K3S_GROUP })));
    }
    return rules;
}

export interface NebulaConfigOptions {
    /** Replaces the endpoints in static_host_map (the offline `nebula -test` resolves names). */
    endpointOverride?: (member: NebulaMember) => string;
    /** Directory holding ca.crt, host.crt and host.key, when not /etc/nebula (tests). */
    pkiDir?: string;
}

export function renderNebulaConfig(
    fleet: Fleet,
    members: readonly NebulaMember[],
    member: NebulaMember,
    options: NebulaConfigOptions = {},
): Record<string, unknown> {
    const overlay = fleet.overlays.nebula;
    const lights = lighthouses(members);
    const others = lights.filter((light) => light.name !== member.name);
    return {
        pki: options.pkiDir
            ? { ca: `${options.pkiDir}/ca.crt`, cert: `${options.pkiDir}/host.crt`, key: `${options.pkiDir}/host.key` }
            : { ca: NEBULA_FILES.ca, cert: NEBULA_FILES.cert, key: NEBULA_FILES.key },
        static_host_map: Object.fromEntries(lights.map((light) => [light.address, [options.endpointOverride?.(light) ?? (light.publicEndpoint as string)]])),
        lighthouse: {
            am_lighthouse: member.lighthouse,
            interval: 60,
            hosts: member.lighthouse ? [] : lights.map((light) => light.address),
        },
        listen: { host: "0.0.0.0", port: member.lighthouse ? overlay.listenPort : 0 },
        punchy: { punch: true, respond: true },
        relay: {
            am_relay: member.lighthouse,
            use_relays: true,
            relays: member.lighthouse ? [] : others.map((light) => light.address),
        },
        tun: { disabled: false, dev: overlay.interface, mtu: overlay.mtu },
        logging: { level: "info", format: "text" },
        firewall: {
            outbound: [{ port: "any", proto: "any", host: "any" }],
            inbound: inboundRules(fleet, member),
        },
    };
}

const HEADER = " Managed by shortcircuit (Pulumi). Nebula is the fleet's backup SSH path: keep it running.";

/**
 * The same config for `nebula -test` before install: lighthouse endpoints on the loopback, so
 * the test checks the config and certificates without resolving names (nebula -test fails on a
 * name it cannot resolve, which would block the backup path exactly when DNS is down).
 */
export function renderNebulaPrecheckConfigYaml(fleet: Fleet, members: readonly NebulaMember[], member: NebulaMember): string {
    return renderNebulaConfigYaml(fleet, members, member, {
        endpointOverride: (light) => `127.0.0.1:${(light.publicEndpoint ?? "").split(":").pop() ?? ""}`,
    });
}

export function renderNebulaConfigYaml(fleet: Fleet, members: readonly NebulaMember[], member: NebulaMember, options: NebulaConfigOptions = {}): string {
    const document = new Document(renderNebulaConfig(fleet, members, member, options));
    document.commentBefore = HEADER;
    return document.toString({ lineWidth: 0 });
}
