import { createHash } from "node:crypto";
import { addressOn, interfaceOn, nodeByName } from "../../stacks/fleet";
import type { Fleet, FleetNode } from "../../stacks/schema";
import { assertNever, type Delivery, type PlannedSsh, type ServiceManager, type Values } from "../../components/hostPlan";
import { NEBULA_FILES } from "../../components/nebula/config";
import { nebulaMembers, type NebulaMember } from "../../stacks/nebulaMembers";
import { identityRequirements, planFleet, type FleetIdentities } from "../../components/plan";
import { HEADSCALE_FILES } from "../../components/control/headscale";

/*
 * What drift expects on every host, from the one host plan (plan.ts) the program delivers.
 * The plan is made with identity *markers* instead of identities: content computed from a
 * key, a certificate or a secret (plan.ts's `values.derive` over an identity) comes out as
 * "identity", everything else as its exact text. So which files can be compared by content
 * offline is decided by the plan itself, not by a list kept here.
 */

/** A plan value: known text, or content derived from identities that live in Pulumi state. */
export type DriftValue = { kind: "text"; text: string } | { kind: "identity"; secret: boolean };

const IDENTITY: DriftValue = { kind: "identity", secret: false };
const SECRET_IDENTITY: DriftValue = { kind: "identity", secret: true };

export const driftValues: Values<DriftValue> = {
    text: (text) => ({ kind: "text", text }),
    derive: (inputs, compute) => {
        if (inputs.every((input) => input.kind === "text")) {
            return { kind: "text", text: compute(inputs.map((input) => (input.kind === "text" ? input.text : ""))) };
        }
        return inputs.some((input) => input.kind === "identity" && input.secret) ? SECRET_IDENTITY : IDENTITY;
    },
};

/** Values drift can take from `pulumi stack output --json` instead of Pulumi state. */
export interface StackOutputs {
    controlServerIp?: string;
    nebulaCaFingerprint?: string;
    /** Member → ISO expiry of the certificate the program last issued. */
    nebulaCertExpiry?: Record<string, string>;
    /** The DERP map Headscale was given (carries self-signed relays' pins). */
    derpMap?: string;
}

/**
 * How a planned file is compared: `content` by its text (sha256 and, with --diff, a diff);
 * `identity` (public but derived from state: CA, certificates, a pinned DERP map) and `secret`
 * (keys, token) by presence, mode and owner only; a secret's content never leaves the host
 * except as its sha256.
 */
export type FileCheck = "content" | "identity" | "secret";

export interface ExpectedFile {
    path: string;
    mode: number;
    /** `user:group`; undefined where the plan does not fix it. */
    owner?: string;
    check: FileCheck;
    /** For `content` files. */
    text?: string;
    sha256?: string;
}

export interface ExpectedService {
    manager: "systemd" | "launchd";
    name: string;
    /** A change to any of these after the service started means it runs an older config. */
    files: string[];
    /** launchd: the job file the job must have been loaded from. */
    jobFile?: string;
}

export interface ExpectedNebula {
    member: string;
    addressWithPrefix: string;
    groups: string[];
    certPath: string;
    caPath: string;
    /** ISO expiry of the certificate the program issued (stack outputs), if known. */
    plannedExpiry?: string;
    renewBeforeDays: number;
}

export interface ExpectedK3s {
    unit: string;
    configSha256: string;
    configPath: string;
}

export interface ExpectedHost {
    name: string;
    /** Undefined when the host's address is not known offline (a droplet without an address). */
    ssh?: PlannedSsh;
    files: ExpectedFile[];
    services: ExpectedService[];
    addresses: { iface: string; address: string }[];
    /** Table 52 must route nothing into these (K3s nodes). */
    clusterCidrs: string[];
    k3s?: ExpectedK3s;
    nebula?: ExpectedNebula;
    /** This host lists every K3s node's annotation and cordon (the genesis). */
    kubectl: boolean;
}

export interface DriftExpectation {
    hosts: ExpectedHost[];
    /** Lower-case hex fingerprint of the Nebula CA, when given. */
    caFingerprint?: string;
    /** Things the report must say about what could not be compared. */
    notes: string[];
}

export interface ExpectationOptions {
    outputs?: StackOutputs;
    caFingerprint?: string;
    /** The droplet's address (else stack outputs' controlServerIp, else controlServer.publicIp). */
    controlHost?: string;
}

function sha256(text: string): string {
    return createHash("sha256").update(text, "utf8").digest("hex");
}

function serviceOf(service: ServiceManager): { manager: "systemd" | "launchd"; name: string; jobFile?: string } {
    switch (service.kind) {
        case "systemd":
            return { manager: "systemd", name: service.unit };
        case "launchd":
            return { manager: "launchd", name: service.label, jobFile: service.plist };
        default:
            return assertNever(service);
    }
}

/**
 * Addresses pre-flight expects, for any fleet host (k3s/rollout.ts expectedAddresses' rule). macOS
 * names its tailnet and Nebula interfaces itself (utun<n>): only its LAN link has a known name.
 */
function hostAddresses(fleet: Fleet, node: FleetNode): { iface: string; address: string }[] {
    const pairs: { iface: string; address: string }[] = [];
    for (const path of node.os === "macos" ? (["lan"] as const) : (["tailnet", "nebula", "lan"] as const)) {
        const address = addressOn(node, path);
        if (address !== undefined) {
            pairs.push({ iface: interfaceOn(fleet, node, path), address });
        }
    }
    return pairs;
}

export function driftExpectation(fleet: Fleet, options: ExpectationOptions = {}): DriftExpectation {
    const needs = identityRequirements(fleet);
    const identities: FleetIdentities<DriftValue> = {
        nebulaCaCertPem: IDENTITY,
        nebula: Object.fromEntries(needs.nebulaMembers.map((member) => [member.name, { certPem: IDENTITY, keyPem: SECRET_IDENTITY }])),
        headscaleNoiseKey: SECRET_IDENTITY,
        derpKey: SECRET_IDENTITY,
        k3sToken: SECRET_IDENTITY,
        relayCerts: Object.fromEntries(needs.selfSignedRelays.map((relay) => [relay.host, { certPem: IDENTITY, keyPem: SECRET_IDENTITY }])),
        ...(fleet.controlServer.replica ? { replica: { accessKeyId: SECRET_IDENTITY, secretAccessKey: SECRET_IDENTITY } } : {}),
    };
    const plan = planFleet(fleet, identities, driftValues);
    const outputs = options.outputs ?? {};
    const notes: string[] = [];
    const members = new Map<string, NebulaMember>(nebulaMembers(fleet).map((member) => [member.name, member]));
    const hosts = new Map<string, ExpectedHost>();
    for (const node of fleet.nodes) {
        if (node.os === "macos" && (node.tailnet || node.nebula)) {
            notes.push(`${node.name}: macOS names its tailnet and Nebula interfaces itself (utun<n>); only its LAN address is compared`);
        }
    }
    const hostFor = (name: string, ssh: PlannedSsh | undefined): ExpectedHost => {
        let host = hosts.get(name);
        if (!host) {
            const node = nodeByName(fleet, name);
            host = { name, ssh, files: [], services: [], addresses: node ? hostAddresses(fleet, node) : [], clusterCidrs: [], kubectl: false };
            hosts.set(name, host);
        }
        host.ssh ??= ssh;
        return host;
    };
    const addFile = (host: ExpectedHost, file: { path: string; mode: number; content: DriftValue }, owner: string | undefined): void => {
        let value = file.content;
        if (file.path === HEADSCALE_FILES.derpMap && value.kind === "identity" && outputs.derpMap !== undefined) {
            value = { kind: "text", text: outputs.derpMap };
        }
        const expected: ExpectedFile =
            value.kind === "text"
                ? { path: file.path, mode: file.mode, owner, check: "content", text: value.text, sha256: sha256(value.text) }
                : { path: file.path, mode: file.mode, owner, check: value.secret ? "secret" : "identity" };
        host.files = [...host.files.filter((each) => each.path !== file.path), expected];
    };
    const addDelivery = (host: ExpectedHost, delivery: Delivery<DriftValue>): void => {
        // The plan's owners: root:wheel on macOS (fileOwner), root's own root:root elsewhere.
        const owner = delivery.fileOwner ?? "root:root";
        for (const file of delivery.publicFiles) {
            addFile(host, file, owner);
        }
        for (const file of delivery.secretFiles) {
            addFile(host, file, delivery.secretOwner ?? owner);
        }
        host.services.push({ ...serviceOf(delivery.service), files: [...delivery.publicFiles, ...delivery.secretFiles].map((file) => file.path) });
    };

    for (const nebulaHost of plan.nebulaHosts) {
        addDelivery(hostFor(nebulaHost.name, nebulaHost.ssh), nebulaHost.delivery);
    }
    for (const relay of plan.relays) {
        const host = hostFor(relay.name, relay.ssh);
        for (const delivery of relay.deliveries) {
            addDelivery(host, delivery);
        }
    }
    const control = plan.control;
    let controlSsh: PlannedSsh | undefined;
    if (control.host.kind === "existing") {
        controlSsh = control.host.ssh;
    } else {
        const address = options.controlHost ?? outputs.controlServerIp ?? fleet.controlServer.publicIp;
        controlSsh = address !== undefined ? { ...control.host.ssh, host: address } : undefined;
        if (address === undefined) {
            notes.push(`${control.name}: the droplet's address is not in the config; pass --control-host <address> or --from-stack-outputs <file>`);
        }
    }
    const controlHost = hostFor(control.name, controlSsh);
    for (const delivery of control.deliveries) {
        addDelivery(controlHost, delivery);
    }
    if (control.host.kind === "droplet") {
        const nebula = fleet.overlays.nebula;
        controlHost.addresses = [{ iface: nebula.interface, address: fleet.controlServer.nebula.address }];
    }

    const clusterCidrs = [fleet.cluster.clusterCidr, fleet.cluster.serviceCidr];
    for (const k3s of plan.k3sNodes) {
        const host = hostFor(k3s.name, k3s.ssh);
        for (const file of k3s.files) {
            addFile(host, file, "root:root");
        }
        const node = nodeByName(fleet, k3s.name);
        host.services.push({ manager: "systemd", name: k3s.unit, files: [k3s.paths.config, k3s.paths.token] });
        host.k3s = { unit: k3s.unit, configSha256: k3s.configSha256, configPath: k3s.paths.config };
        host.clusterCidrs = clusterCidrs;
        host.kubectl ||= node?.genesis === true;
    }

    for (const host of hosts.values()) {
        const member = members.get(host.name);
        if (member && host.files.some((file) => file.path === NEBULA_FILES.cert)) {
            host.nebula = {
                member: member.name,
                addressWithPrefix: member.addressWithPrefix,
                groups: [...member.groups].sort(),
                certPath: NEBULA_FILES.cert,
                caPath: NEBULA_FILES.ca,
                plannedExpiry: outputs.nebulaCertExpiry?.[member.name],
                renewBeforeDays: fleet.overlays.nebula.pki.renewBeforeDays,
            };
        }
    }
    const caFingerprint = (options.caFingerprint ?? outputs.nebulaCaFingerprint)?.toLowerCase();
    if (caFingerprint === undefined) {
        notes.push(
            "the Nebula CA fingerprint was not given (--nebula-ca-fingerprint or --from-stack-outputs): each host's certificate is checked against its own ca.crt only",
        );
    }
    return { hosts: [...hosts.values()], caFingerprint, notes };
}
