import { createPrivateKey, hkdfSync, randomBytes } from "node:crypto";
import { NEBULA_PEM_TYPES, createNebulaCa, encodeNebulaPem, nebulaHostPublicKeyPem, parseNebulaCert, signNebulaHostCert } from "../../stacks/nebulaCert";
import type { NebulaCaMaterial } from "../../stacks/existingNebulaCa";
import type { NebulaMember } from "../../stacks/nebulaMembers";
import {
    generatedCaPolicy as generatedCaPolicyOf,
    generatedCaValidity,
    nebulaCaPlan,
    nebulaCaRefEquals,
    type GeneratedCaPolicy,
    type NebulaCaRef,
} from "../../stacks/fleet";
import type { Fleet } from "../../stacks/schema";

/*
 * When host certificates are valid, and issuing them. Validity is not "now + lifetime" but
 * a fixed cycle anchored at the CA's notBefore: cycle k starts at caNotBefore + k × (lifetime
 * − renewal window). A certificate is therefore a pure function of the CA, the member and the
 * clock's cycle, so a no-op run re-derives it byte for byte (Ed25519 signatures are
 * deterministic), and it changes exactly when the deployed one enters its renewal window.
 */

const DAY_SECONDS = 86400;

/** render's throwaway CA is named `<caName> (throwaway render CA)`; the schema leaves caName room for it (CA_NAME_SUFFIX_ROOM). */
export const THROWAWAY_CA_SUFFIX = " (throwaway render CA)";

export interface Validity {
    notBefore: Date;
    notAfter: Date;
}

export interface ValidityPolicy {
    certValidityDays: number;
    renewBeforeDays: number;
}

export interface CaValidity {
    notBefore: Date;
    notAfter: Date;
}

function seconds(date: Date): number {
    return Math.floor(date.getTime() / 1000);
}

/** The cycle `now` falls in, and the validity of that cycle's certificate (clamped to the CA's). */
export function certValidityAt(ca: CaValidity, policy: ValidityPolicy, now: Date, cycleOffset = 0): Validity & { cycle: number } {
    const step = (policy.certValidityDays - policy.renewBeforeDays) * DAY_SECONDS;
    const cycle = Math.max(0, Math.floor((seconds(now) - seconds(ca.notBefore)) / step) + cycleOffset);
    const notBefore = seconds(ca.notBefore) + cycle * step;
    const notAfter = Math.min(notBefore + policy.certValidityDays * DAY_SECONDS, seconds(ca.notAfter));
    return { cycle, notBefore: new Date(notBefore * 1000), notAfter: new Date(notAfter * 1000) };
}

export type ExpiryStatus = { state: "ok" } | { state: "renewing"; previousNotAfter: Date } | { state: "expired" | "expiring"; notAfter: Date };

/**
 * What an operator must hear about a member's certificate at `now`: the previous cycle's
 * certificate (the one a host still holds until this update delivers the new one) inside its
 * window means this run reissues; a certificate whose validity is clamped by the CA and
 * inside the window, or past it, means the CA itself needs rotating.
 */
export function certExpiryStatus(ca: CaValidity, policy: ValidityPolicy, now: Date): ExpiryStatus {
    const current = certValidityAt(ca, policy, now);
    const windowMs = policy.renewBeforeDays * DAY_SECONDS * 1000;
    if (current.notAfter.getTime() <= now.getTime()) {
        return { state: "expired", notAfter: current.notAfter };
    }
    if (current.notAfter.getTime() - now.getTime() <= windowMs) {
        return { state: "expiring", notAfter: current.notAfter };
    }
    if (current.cycle > 0) {
        const previous = certValidityAt(ca, policy, now, -1);
        if (previous.notAfter.getTime() > now.getTime()) {
            return { state: "renewing", previousNotAfter: previous.notAfter };
        }
    }
    return { state: "ok" };
}

export type CaPolicy = GeneratedCaPolicy;

type PkiConfig = Fleet["overlays"]["nebula"]["pki"];

/** The policy of generation `generation`'s CA; throws where validation should have refused (no caIssuedOn). */
export function generatedCaPolicy(pki: PkiConfig, generation: number): CaPolicy {
    const policy = generatedCaPolicyOf(pki, generation);
    if (policy === undefined) {
        throw new Error("overlays.nebula.pki.caIssuedOn is required for a CA the program makes (validation should have rejected it)");
    }
    return policy;
}

/** A trust bundle (ca.crt with several CAs, which nebula accepts): the PEMs concatenated, each ending in a newline. */
export function nebulaTrustBundle(certPems: readonly string[]): string {
    return certPems.map((pem) => (pem.endsWith("\n") ? pem : `${pem}\n`)).join("");
}

/**
 * The CA certificate for a 32-byte Ed25519 seed. Its validity comes from config
 * (`caIssuedOn` + `caValidityDays`), so the same key always yields the same certificate.
 */
export function caFromSeed(seed: Uint8Array, policy: CaPolicy): NebulaCaMaterial {
    const { notBefore, notAfter } = generatedCaValidity(policy);
    const ca = createNebulaCa({ name: policy.caName, notBefore, notAfter, privateKeySeed: seed });
    return { certPem: ca.certPem, keyPem: ca.keyPem };
}

/** The 32-byte seed inside an Ed25519 PKCS#8 PEM (what tls.PrivateKey stores). */
export function ed25519SeedFromPkcs8(pem: string): Buffer {
    const jwk = createPrivateKey(pem).export({ format: "jwk" });
    if (jwk.crv !== "Ed25519" || typeof jwk.d !== "string") {
        throw new Error("expected an Ed25519 private key in PKCS#8 PEM");
    }
    return Buffer.from(jwk.d, "base64url");
}

/**
 * A Nebula X25519 private key from 32 random bytes. X25519 accepts any 32 bytes (it clamps
 * them), so the uniformly random seed of a freshly generated Ed25519 key serves as one.
 */
export function x25519KeyPemFromBytes(bytes: Uint8Array): string {
    if (bytes.length !== 32) {
        throw new Error(`an X25519 private key is 32 bytes, got ${bytes.length}`);
    }
    return encodeNebulaPem(NEBULA_PEM_TYPES.x25519PrivateKey, bytes);
}

export function caValidity(caCertPem: string): CaValidity {
    const parsed = parseNebulaCert(caCertPem);
    return { notBefore: parsed.notBefore, notAfter: parsed.notAfter };
}

/** The member's host certificate for the cycle `now` falls in. */
export function issueMemberCert(ca: NebulaCaMaterial, member: NebulaMember, publicKeyPem: string, policy: ValidityPolicy, now: Date): string {
    const validity = certValidityAt(caValidity(ca.certPem), policy, now);
    return signNebulaHostCert({
        caCertPem: ca.certPem,
        caKeyPem: ca.keyPem,
        name: member.name,
        address: member.addressWithPrefix,
        groups: member.groups,
        notBefore: validity.notBefore,
        notAfter: validity.notAfter,
        publicKeyPem,
    });
}

export interface MemberIdentity {
    certPem: string;
    keyPem: string;
}

export interface ThrowawayPki {
    seedHex: string;
    /** The signing CA. */
    ca: NebulaCaMaterial;
    /** What every host's ca.crt holds: the signing CA, or both CAs of a rotation. */
    trustBundlePem: string;
    members: Map<string, MemberIdentity>;
}

function derive(seed: Buffer, label: string): Buffer {
    return Buffer.from(hkdfSync("sha256", seed, Buffer.alloc(0), `shortcircuit-render:${label}`, 32));
}

/** A throwaway stand-in for one CA of the plan; generation 1 keeps the label render always used. */
function throwawayCa(seed: Buffer, pki: PkiConfig, ref: NebulaCaRef, now: Date): NebulaCaMaterial {
    if (ref.kind === "generated") {
        const policy = generatedCaPolicy(pki, ref.generation);
        return caFromSeed(derive(seed, ref.generation === 1 ? "ca" : `ca-g${ref.generation}`), { ...policy, caName: `${pki.caName}${THROWAWAY_CA_SUFFIX}` });
    }
    // The operator's CA is a stack secret render never reads: a stand-in valid from today's UTC day.
    const today = new Date(Math.floor(now.getTime() / (DAY_SECONDS * 1000)) * DAY_SECONDS * 1000).toISOString().slice(0, 10);
    return caFromSeed(derive(seed, "ca-existing"), { caName: `existing CA${THROWAWAY_CA_SUFFIX}`, caIssuedOn: today, caValidityDays: pki.caValidityDays });
}

/**
 * A CA and keys for offline review only: derived from a seed so the same seed and inputs
 * reproduce every byte. The real CA and keys live in Pulumi state and never leave it. A plan
 * with an existing CA or a rotation gets a throwaway stand-in for every CA it names.
 */
export function throwawayPki(fleet: Fleet, members: readonly NebulaMember[], now: Date, seedHex?: string): ThrowawayPki {
    const seed = seedHex ? Buffer.from(seedHex, "hex") : randomBytes(32);
    if (seed.length !== 32) {
        throw new Error("the PKI seed must be 64 hex characters");
    }
    const pki = fleet.overlays.nebula.pki;
    const plan = nebulaCaPlan(pki);
    const trusted = plan.trusted.map((ref) => ({ ref, material: throwawayCa(seed, pki, ref, now) }));
    const ca = trusted.find((each) => nebulaCaRefEquals(each.ref, plan.signer))?.material;
    if (!ca) {
        throw new Error("the signing CA is not among the trusted ones");
    }
    const identities = new Map<string, MemberIdentity>();
    for (const member of members) {
        const keyPem = x25519KeyPemFromBytes(derive(seed, `host:${member.name}`));
        const certPem = issueMemberCert(ca, member, nebulaHostPublicKeyPem(keyPem), pki, now);
        identities.set(member.name, { certPem, keyPem });
    }
    return { seedHex: seed.toString("hex"), ca, trustBundlePem: nebulaTrustBundle(trusted.map((each) => each.material.certPem)), members: identities };
}
