import { nodeByName } from "../stacks/fleet";
import type { DerpRelayConfig, Fleet, FleetNode } from "../stacks/schema";
import { planControlServer, type ControlPlan, type ReplicaCredentials } from "./control/plan";
import { derpCertName } from "./derp/derper";
import { planDerpRelay, type RelayCertValues, type RelayPlan } from "./derp/plan";
import { planEdge, type EdgePlan } from "./edge/plan";
import { assertNever, plannedSsh, type Delivery, type PlannedSsh, type Values } from "./hostPlan";
import { planK3sNodes, type K3sNodePlan } from "./k3s/plan";
import { controlServerMember, renderNebulaConfigYaml, renderNebulaPrecheckConfigYaml } from "./nebula/config";
import { nebulaMembers, type NebulaMember } from "../stacks/nebulaMembers";
import { nebulaFiles, planNebulaDelivery, type NebulaIdentityValues, type NebulaService } from "./nebula/plan";
import { macosNebulaBinary } from "./nebula/service";
import { controlDeliveryPart, planOrder, type FleetOrder, type OrderInputs } from "./order";

/*
 * planFleet: the whole fleet as plain data, from the validated config and the identities
 * (keys, certificates, secrets). The program turns it into resources (index.ts) and `render`
 * into files (scripts/render/throwawayPlan.ts, files.ts): both deliver this one plan, so they cannot disagree.
 */

/** What must exist before the plan can be made: the identities to create or read. */
export interface IdentityRequirements {
    nebulaMembers: NebulaMember[];
    /** Relays whose certificate the program issues (certMode self-signed). */
    selfSignedRelays: DerpRelayConfig[];
}

export function identityRequirements(fleet: Fleet): IdentityRequirements {
    return {
        nebulaMembers: nebulaMembers(fleet),
        selfSignedRelays: fleet.derpRelays.filter((relay) => relay.certMode === "self-signed"),
    };
}

export interface FleetIdentities<V> {
    /** Every Nebula host's ca.crt: the trust bundle (the signing CA, or both CAs during a rotation). */
    nebulaCaCertPem: V;
    /** Member name → its certificate and key. */
    nebula: Readonly<Record<string, NebulaIdentityValues<V>>>;
    headscaleNoiseKey: V;
    derpKey: V;
    k3sToken: V;
    /** Relay host → its self-signed certificate and key. */
    relayCerts: Readonly<Record<string, RelayCertValues<V>>>;
    /** Relay host → its certificate pin; render has none (no real certificate to pin). */
    relayCertNames?: Readonly<Record<string, V>>;
    /** The S3 credentials of `controlServer.replica` (only when it is set). */
    replica?: ReplicaCredentials<V>;
}

export interface NebulaHostPlan<V> {
    name: string;
    ssh: PlannedSsh;
    delivery: Delivery<V>;
}

export interface FleetPlan<V> {
    /** Nebula members reached over SSH, in the order they restart (one at a time). */
    nebulaHosts: NebulaHostPlan<V>[];
    relays: RelayPlan<V>[];
    control: ControlPlan<V>;
    /** In rollout order. */
    k3sNodes: K3sNodePlan<V>[];
    edge?: EdgePlan;
    /** Admin workstations on the mesh: their files are handed out by render, not delivered. */
    nebulaWorkstations: { name: string; files: { path: string; mode: number; content: V }[] }[];
    /** Which step waits for which, and why: the program builds and chains the steps by it. */
    order: FleetOrder;
}

/** A member's issued identity, with the networks its certificate was issued for (issuance.ts). */
function identityOf<V>(identities: FleetIdentities<V>, member: NebulaMember): NebulaIdentityValues<V> {
    const identity = identities.nebula[member.name];
    if (!identity) {
        throw new Error(`no Nebula identity was issued for ${member.name}`);
    }
    return { ...identity, networks: [member.addressWithPrefix] };
}

/** How Nebula runs on a fleet host: by its OS, systemd on Linux, the program's LaunchDaemon on macOS. */
function nebulaService(fleet: Fleet, host: FleetNode): NebulaService {
    switch (host.os) {
        case "debian":
        case "ubuntu":
        case "raspios":
        case "fedora":
            return { kind: "systemd", interfaceName: fleet.overlays.nebula.interface };
        case "macos":
            return {
                kind: "launchd",
                nebulaBinary: macosNebulaBinary(host),
                ...(host.macos?.adoptNebulaLabel !== undefined ? { adoptLabel: host.macos.adoptNebulaLabel } : {}),
                fieldPrefix: `fleet.nodes[${fleet.nodes.indexOf(host)}].macos`,
            };
        default:
            return assertNever(host.os);
    }
}

export function planFleet<V>(fleet: Fleet, identities: FleetIdentities<V>, values: Values<V>): FleetPlan<V> {
    const members = nebulaMembers(fleet);
    const nebulaHosts: NebulaHostPlan<V>[] = [];
    const nebulaWorkstations: FleetPlan<V>["nebulaWorkstations"] = [];
    for (const member of members) {
        const identity = identityOf(identities, member);
        const configYaml = renderNebulaConfigYaml(fleet, members, member);
        const precheckConfigYaml = renderNebulaPrecheckConfigYaml(fleet, members, member);
        switch (member.kind) {
            case "node": {
                const host = nodeByName(fleet, member.name);
                if (!host) {
                    throw new Error(`Nebula member ${member.name} is not in the fleet`);
                }
                const nebula = planNebulaDelivery(values, {
                    configYaml,
                    precheckConfigYaml,
                    caCertPem: identities.nebulaCaCertPem,
                    identity,
                    service: nebulaService(fleet, host),
                });
                nebulaHosts.push({ name: member.name, ssh: plannedSsh(fleet, host), delivery: nebula });
                break;
            }
            case "admin": {
                // Workstations run Nebula their own way: no unit, just the files.
                const nebula = nebulaFiles(values, { configYaml, caCertPem: identities.nebulaCaCertPem, identity });
                nebulaWorkstations.push({ name: member.name, files: [...nebula.publicFiles, ...nebula.secretFiles] });
                break;
            }
            case "control-server":
                // The control server gets its Nebula files with the rest of its own (below).
                break;
            default:
                throw new Error(`unhandled Nebula member kind ${JSON.stringify(member.kind satisfies never)}`);
        }
    }
    const controlMember = controlServerMember(members);
    const relayCertNames =
        identities.relayCertNames ??
        Object.fromEntries(Object.entries(identities.relayCerts).map(([host, cert]) => [host, values.derive([cert.certPem], ([pem]) => derpCertName(pem))]));
    const relays = fleet.derpRelays.map((relay) => planDerpRelay(fleet, relay, values, identities.relayCerts[relay.host]));
    const control = planControlServer(
        fleet,
        values,
        controlMember.name,
        {
            configYaml: renderNebulaConfigYaml(fleet, members, controlMember),
            precheckConfigYaml: renderNebulaPrecheckConfigYaml(fleet, members, controlMember),
        },
        {
            noiseKey: identities.headscaleNoiseKey,
            derpKey: identities.derpKey,
            nebula: identityOf(identities, controlMember),
            nebulaCaCertPem: identities.nebulaCaCertPem,
            relayCertNames,
            ...(identities.replica ? { replica: identities.replica } : {}),
        },
    );
    const k3sNodes = planK3sNodes(fleet, values, identities.k3sToken);
    const edge = planEdge(fleet);
    const delivered = new Set(nebulaHosts.map((host) => host.name));
    const order = planOrder({
        nebulaWave: members.flatMap((member): OrderInputs["nebulaWave"][number][] =>
            member.kind === "control-server" ? [{ kind: "control" }] : delivered.has(member.name) ? [{ kind: "node", host: member.name }] : [],
        ),
        controlDeliveries: control.deliveries.map((each) => controlDeliveryPart(each.role)),
        relays: relays.map((relay) => relay.name),
        k3sNodes: k3sNodes.map((node) => node.name),
        edge: edge !== undefined,
    });
    return { nebulaHosts, relays, control, k3sNodes, edge, nebulaWorkstations, order };
}
