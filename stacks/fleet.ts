import type { Fleet, FleetNode, NetworkPath } from "./schema";

/*
 * Derived facts about a validated fleet. Render functions and guards share these so a
 * rule such as "which address is this node's node-ip" is written once.
 */

export type K3sRole = "server" | "agent";
export type K3sNodeConfig = FleetNode & { role: K3sRole };

export function isK3sNode(node: FleetNode): node is K3sNodeConfig {
    return node.role === "server" || node.role === "agent";
}

export function k3sNodes(fleet: Fleet): K3sNodeConfig[] {
    return fleet.nodes.filter(isK3sNode);
}

export function servers(fleet: Fleet): K3sNodeConfig[] {
    return k3sNodes(fleet).filter((node) => node.role === "server");
}

/** The genesis server; validation guarantees exactly one. */
export function genesisNode(fleet: Fleet): K3sNodeConfig {
    const genesis = k3sNodes(fleet).find((node) => node.genesis);
    if (!genesis) {
        throw new Error("fleet has no genesis server (validation should have rejected it)");
    }
    return genesis;
}

export function nodeIpPath(fleet: Pick<Fleet, "cluster">, node: FleetNode): NetworkPath {
    return node.nodeIpFrom ?? fleet.cluster.nodeIpFrom;
}

export function flannelPath(fleet: Pick<Fleet, "cluster">, node: FleetNode): NetworkPath {
    return node.flannelIfaceFrom ?? fleet.cluster.flannelIfaceFrom;
}

/** The node's address on a path, or undefined when it is not a member of that overlay. */
export function addressOn(node: FleetNode, path: NetworkPath): string | undefined {
    switch (path) {
        case "tailnet":
            return node.tailnet?.address;
        case "nebula":
            return node.nebula?.address;
        case "lan":
            return node.lan.address;
    }
}

export function interfaceOn(fleet: Fleet, node: FleetNode, path: NetworkPath): string {
    switch (path) {
        case "tailnet":
            return fleet.overlays.tailnet.interface;
        case "nebula":
            return fleet.overlays.nebula.interface;
        case "lan":
            return node.lan.interface;
    }
}

export function requireAddressOn(node: FleetNode, path: NetworkPath): string {
    const address = addressOn(node, path);
    if (address === undefined) {
        throw new Error(`${node.name} has no ${path} address (validation should have rejected it)`);
    }
    return address;
}

export function nodeIp(fleet: Fleet, node: FleetNode): string {
    return requireAddressOn(node, nodeIpPath(fleet, node));
}

export const K3S_SUPERVISOR_PORT = 6443;

/** Joining nodes register against the genesis server unless the cluster names a stable URL. */
export function serverUrl(fleet: Fleet): string {
    return fleet.cluster.serverUrl ?? `https://${nodeIp(fleet, genesisNode(fleet))}:${K3S_SUPERVISOR_PORT}`;
}

export function sshPath(fleet: Pick<Fleet, "access">, node: FleetNode): NetworkPath {
    return node.ssh.via ?? fleet.access.sshVia;
}

/** The address the program's SSH connections use for a node. */
export function sshHost(fleet: Fleet, node: FleetNode): string {
    return node.ssh.host ?? requireAddressOn(node, sshPath(fleet, node));
}

export function nodeByName(fleet: Fleet, name: string): FleetNode | undefined {
    return fleet.nodes.find((node) => node.name === name);
}

/** A Nebula CA: the operator's (stack secrets) or one the program made, by generation. */
export type NebulaCaRef = { kind: "existing" } | { kind: "generated"; generation: number };

/** Which CA signs host certificates, which CAs every host trusts (ca.crt, in this order), and how far a rotation is. */
export interface NebulaCaPlan {
    signer: NebulaCaRef;
    /** The retiring CA first, then the new one; one entry outside a rotation. */
    trusted: NebulaCaRef[];
    stage: "none" | "trust" | "sign";
}

type NebulaPkiConfig = Fleet["overlays"]["nebula"]["pki"];

export function nebulaCaRefEquals(a: NebulaCaRef, b: NebulaCaRef): boolean {
    return a.kind === b.kind && (a.kind === "existing" || (b.kind === "generated" && a.generation === b.generation));
}

/** `existing`, or `generation <n>`: how messages and stack outputs name a CA. */
export function nebulaCaLabel(ref: NebulaCaRef): string {
    return ref.kind === "existing" ? "existing" : `generation ${ref.generation}`;
}

export function nebulaCaPlan(pki: NebulaPkiConfig): NebulaCaPlan {
    const target: NebulaCaRef = pki.ca === "existing" ? { kind: "existing" } : { kind: "generated", generation: pki.caGeneration };
    if (!pki.rotation) {
        return { signer: target, trusted: [target], stage: "none" };
    }
    const from: NebulaCaRef = pki.rotation.from === "existing" ? { kind: "existing" } : { kind: "generated", generation: pki.rotation.from };
    return { signer: pki.rotation.stage === "trust" ? from : target, trusted: [from, target], stage: pki.rotation.stage };
}

/** Whether the run needs the operator's CA from shortcircuit:nebulaCaCert and shortcircuit:nebulaCaKey. */
export function usesExistingNebulaCa(pki: NebulaPkiConfig): boolean {
    return nebulaCaPlan(pki).trusted.some((ref) => ref.kind === "existing");
}

/** The generations of program-made CAs the run needs (each a protected key in state). */
export function generatedNebulaCaGenerations(pki: NebulaPkiConfig): number[] {
    return nebulaCaPlan(pki).trusted.flatMap((ref) => (ref.kind === "generated" ? [ref.generation] : []));
}

/** The name and dates of a CA the program makes. */
export interface GeneratedCaPolicy {
    caName: string;
    /** notBefore, a UTC calendar date. */
    caIssuedOn: string;
    caValidityDays: number;
}

/**
 * The name and dates of the CA the program makes for `generation`: the config's, except for the
 * generation a rotation retires, which keeps its own (rotation.fromCaIssuedOn/fromCaValidityDays)
 * so its certificate, and the fingerprint hosts' certificates name as issuer, stay what they were.
 * Undefined without caIssuedOn (validation refuses that while a generated CA is in use).
 */
export function generatedCaPolicy(pki: NebulaPkiConfig, generation: number): GeneratedCaPolicy | undefined {
    const retiring = pki.rotation !== undefined && pki.rotation.from === generation;
    const caIssuedOn = (retiring ? pki.rotation?.fromCaIssuedOn : undefined) ?? pki.caIssuedOn;
    if (caIssuedOn === undefined) {
        return undefined;
    }
    return { caName: pki.caName, caIssuedOn, caValidityDays: (retiring ? pki.rotation?.fromCaValidityDays : undefined) ?? pki.caValidityDays };
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** A generated CA certificate's validity, as caFromSeed writes it (the certificate is a function of key and config). */
export function generatedCaValidity(policy: GeneratedCaPolicy): { notBefore: Date; notAfter: Date } {
    const notBefore = new Date(`${policy.caIssuedOn}T00:00:00Z`);
    return { notBefore, notAfter: new Date(notBefore.getTime() + policy.caValidityDays * DAY_MS) };
}
