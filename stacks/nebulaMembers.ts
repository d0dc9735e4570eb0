import { flannelPath, isK3sNode, nodeIpPath } from "./fleet";
import { addressWithPrefix, parseIpv4Network } from "./net";
import type { Fleet } from "./schema";

/*
 * Who is on the Nebula mesh, and what each member's certificate says (name, address, groups):
 * derived from the fleet, for the config check of the operator's CA (existingNebulaCa.ts), the
 * certificates the program issues and every host's config.yml (components/nebula/).
 */

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
