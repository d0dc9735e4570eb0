import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { nebulaHostPublicKeyPem, parseNebulaCert } from "../../stacks/nebulaCert";
import { nebulaCaLabel, nebulaCaPlan, nebulaCaRefEquals, type NebulaCaPlan, type NebulaCaRef } from "../../stacks/fleet";
import {
    caFromSeed,
    caValidity,
    certExpiryStatus,
    certValidityAt,
    ed25519SeedFromPkcs8,
    generatedCaPolicy,
    issueMemberCert,
    nebulaTrustBundle,
    x25519KeyPemFromBytes,
    type ValidityPolicy,
} from "./issuance";
import type { NebulaCaMaterial } from "../../stacks/existingNebulaCa";
import type { NebulaMember } from "../../stacks/nebulaMembers";
import type { Fleet } from "../../stacks/schema";

/*
 * The Nebula PKI in Pulumi state. Only the randomness is a resource: the CA's Ed25519 key
 * (protected: losing it takes every host off the mesh) and one key per member, both
 * `tls.PrivateKey`s whose private halves Pulumi keeps as secrets. Certificates are derived
 * from those keys on every run (issuance.ts): the CA's validity comes from config
 * and host certificates follow fixed renewal cycles, and Ed25519 signatures are
 * deterministic, so a no-op run reproduces every certificate byte for byte.
 */

export interface NebulaPkiArgs {
    /** The validated fleet: which CAs, their names and dates and the validity policy come from `overlays.nebula.pki`. */
    fleet: Fleet;
    /** Every member that gets a certificate (from nebulaMembers()). */
    members: readonly NebulaMember[];
    /** The clock certificates are issued against; the real time unless a test pins it. */
    now?: Date;
    /** The operator's CA (stack secrets nebulaCaCert/nebulaCaKey); required when the fleet uses the existing CA. */
    existingCa?: pulumi.Input<NebulaCaMaterial>;
}

/** A member's identity as delivered. `keyPem` is secret. */
export interface NebulaIdentity {
    certPem: pulumi.Output<string>;
    keyPem: pulumi.Output<string>;
    notAfter: pulumi.Output<string>;
}

/** One CA every host trusts, as the stack outputs show it. */
export interface TrustedNebulaCa {
    /** "existing" or "generation <n>". */
    ca: string;
    fingerprint: string;
    notAfter: string;
}

/** Which CAs the fleet trusts and which one signs; `stage` is the rotation's ("none" outside one). */
export interface NebulaCaTrust {
    stage: NebulaCaPlan["stage"];
    signer: string;
    trusted: TrustedNebulaCa[];
}

/** The state name of generation n's CA key: `<name>-ca-key` for the first (as it always was), `<name>-ca-key-g<n>` after. */
export function caKeyResourceName(name: string, generation: number): string {
    return generation === 1 ? `${name}-ca-key` : `${name}-ca-key-g${generation}`;
}

export class NebulaPki extends pulumi.ComponentResource {
    /** The signing CA's certificate (never the bundle: validity, fingerprint and expiry are its). */
    public readonly caCertPem: pulumi.Output<string>;
    /** What every host's ca.crt holds: the signing CA, or both CAs during a rotation. */
    public readonly trustBundlePem: pulumi.Output<string>;
    public readonly caFingerprint: pulumi.Output<string>;
    public readonly caNotAfter: pulumi.Output<string>;
    public readonly caTrust: pulumi.Output<NebulaCaTrust>;
    public readonly identities: Record<string, NebulaIdentity>;
    /** Member name → ISO expiry of the certificate this run issues. */
    public readonly certExpiry: pulumi.Output<Record<string, string>>;

    constructor(name: string, args: NebulaPkiArgs, opts?: pulumi.ComponentResourceOptions) {
        super("shortcircuit:nebula:NebulaPki", name, {}, opts);
        const pki = args.fleet.overlays.nebula.pki;
        const now = args.now ?? new Date();
        const policy: ValidityPolicy = { certValidityDays: pki.certValidityDays, renewBeforeDays: pki.renewBeforeDays };
        const plan = nebulaCaPlan(pki);

        const material = (ref: NebulaCaRef): pulumi.Output<NebulaCaMaterial> => {
            if (ref.kind === "existing") {
                if (args.existingCa === undefined) {
                    throw new Error("the fleet uses the existing Nebula CA but none was given (stack secrets nebulaCaCert and nebulaCaKey)");
                }
                return pulumi.output(args.existingCa);
            }
            const key = new tls.PrivateKey(caKeyResourceName(name, ref.generation), { algorithm: "ED25519" }, { parent: this, protect: true });
            return key.privateKeyPemPkcs8.apply((pem) => caFromSeed(ed25519SeedFromPkcs8(pem), generatedCaPolicy(pki, ref.generation)));
        };
        const trusted = plan.trusted.map((ref) => ({ ref, material: material(ref) }));
        const signer = trusted.find((each) => nebulaCaRefEquals(each.ref, plan.signer));
        if (!signer) {
            throw new Error("the signing Nebula CA is not among the trusted ones");
        }
        const ca = signer.material;
        // CA certificates are public; only their keys are secret.
        this.caCertPem = pulumi.unsecret(ca.apply((each) => each.certPem));
        const trustedCerts = pulumi.unsecret(pulumi.all(trusted.map((each) => each.material.apply((m) => m.certPem))));
        this.trustBundlePem = trustedCerts.apply(nebulaTrustBundle);
        const parsedCa = this.caCertPem.apply(parseNebulaCert);
        this.caFingerprint = parsedCa.apply((parsed) => parsed.fingerprint);
        this.caNotAfter = parsedCa.apply((parsed) => parsed.notAfter.toISOString());
        this.caTrust = trustedCerts.apply((pems) => ({
            stage: plan.stage,
            signer: nebulaCaLabel(plan.signer),
            trusted: pems.map((pem, index) => {
                const parsed = parseNebulaCert(pem);
                return { ca: nebulaCaLabel(plan.trusted[index]), fingerprint: parsed.fingerprint, notAfter: parsed.notAfter.toISOString() };
            }),
        }));

        this.identities = {};
        const expiries: Record<string, pulumi.Output<string>> = {};
        for (const member of args.members) {
            const hostKey = new tls.PrivateKey(`${name}-key-${member.name}`, { algorithm: "ED25519" }, { parent: this });
            const keyPem = hostKey.privateKeyPemPkcs8.apply((pem) => x25519KeyPemFromBytes(ed25519SeedFromPkcs8(pem)));
            const certPem = pulumi.unsecret(
                pulumi.all([ca, keyPem]).apply(([signing, key]) => issueMemberCert(signing, member, nebulaHostPublicKeyPem(key), policy, now)),
            );
            const notAfter = certPem.apply((pem) => parseNebulaCert(pem).notAfter.toISOString());
            this.identities[member.name] = { certPem, keyPem: pulumi.secret(keyPem), notAfter };
            expiries[member.name] = notAfter;
        }
        this.certExpiry = pulumi.output(expiries);

        this.caCertPem.apply((caCertPem) => reportExpiry(caCertPem, args.members, policy, now));
        this.registerOutputs({
            caCertPem: this.caCertPem,
            trustBundlePem: this.trustBundlePem,
            caFingerprint: this.caFingerprint,
            caNotAfter: this.caNotAfter,
            caTrust: this.caTrust,
            certExpiry: this.certExpiry,
        });
    }
}

/** What the operator must hear about certificate expiry; an expired CA fails the run. */
export function expiryMessages(
    caCertPem: string,
    members: readonly NebulaMember[],
    policy: ValidityPolicy,
    now: Date,
): { warnings: string[]; errors: string[] } {
    const ca = caValidity(caCertPem);
    const warnings: string[] = [];
    const errors: string[] = [];
    const status = certExpiryStatus(ca, policy, now);
    const names = members.map((member) => member.name).join(", ");
    switch (status.state) {
        case "expired":
            errors.push(
                `Nebula CA expired at ${status.notAfter.toISOString()}: no certificate it signs is valid (${names}). Rotate to a new CA through fleet.overlays.nebula.pki.rotation (docs/runbooks/rotating-the-nebula-ca.md); re-signing this one would change its fingerprint and split the mesh.`,
            );
            break;
        case "expiring":
            warnings.push(
                `Nebula CA expires at ${status.notAfter.toISOString()}, inside the ${policy.renewBeforeDays}-day renewal window; host certificates are clamped to it. Rotate to a new CA through fleet.overlays.nebula.pki.rotation (docs/runbooks/rotating-the-nebula-ca.md); re-signing this one would change its fingerprint and split the mesh.`,
            );
            break;
        case "renewing": {
            // Whether a host still holds the previous cycle's certificate is not known to the
            // program; the delivery diff in this preview shows which ones are replaced.
            const next = certValidityAt(ca, policy, now);
            warnings.push(
                `Nebula host certificates entered their renewal window: the previous cycle's certificates expire ${status.previousNotAfter.toISOString()}; hosts still holding them (${names}) get new ones, valid from ${next.notBefore.toISOString()} until ${next.notAfter.toISOString()}, from the next update.`,
            );
            break;
        }
        case "ok":
            break;
    }
    return { warnings, errors };
}

function reportExpiry(caCertPem: string, members: readonly NebulaMember[], policy: ValidityPolicy, now: Date): void {
    const { warnings, errors } = expiryMessages(caCertPem, members, policy, now);
    for (const warning of warnings) {
        void pulumi.log.warn(warning);
    }
    // Validation refuses an expired signer before any resource (stacks/guards.ts, and the operator's
    // CA in stacks/load.ts); reaching this is a bug, and the run must not go on with it.
    if (errors.length > 0) {
        throw new Error(errors.join("\n"));
    }
}
