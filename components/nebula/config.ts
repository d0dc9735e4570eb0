import { Document } from "yaml";
import { K3S_GROUP, type NebulaMember } from "../../stacks/nebulaMembers";
import type { Fleet } from "../../stacks/schema";

/*
 * Each Nebula member's /etc/nebula/config.yml (membership: stacks/nebulaMembers.ts). The same functions serve the
 * SSH delivery to nodes, the control server's cloud-init and the offline render.
 */

export const NEBULA_DIR = "/etc/nebula";
export const NEBULA_FILES = {
    config: `${NEBULA_DIR}/config.yml`,
    ca: `${NEBULA_DIR}/ca.crt`,
    cert: `${NEBULA_DIR}/host.crt`,
    key: `${NEBULA_DIR}/host.key`,
} as const;

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
