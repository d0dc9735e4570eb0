import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { nebulaHostPublicKeyPem, parseNebulaCert } from "./cert";
import {
    caFromSeed,
    caValidity,
    certExpiryStatus,
    certValidityAt,
    ed25519SeedFromPkcs8,
    issueMemberCert,
    x25519KeyPemFromBytes,
    type ValidityPolicy,
} from "./issuance";
import type { NebulaMember } from "./config";
import type { Fleet } from "../../stacks/schema";

/*
 * The Nebula PKI in Pulumi state. Only the randomness is a resource: the CA's Ed25519 key
 * (protected: losing it takes every host off the mesh) and one key per member, both
 * `tls.PrivateKey`s whose private halves Pulumi keeps as secrets. Certificates are derived
 * from those keys on every run (pki/nebulaIssuance.ts): the CA's validity comes from config
 * and host certificates follow fixed renewal cycles, and Ed25519 signatures are
 * deterministic, so a no-op run reproduces every certificate byte for byte.
 */

export interface NebulaPkiArgs {
    /** The validated fleet: CA name, issue date and validity policy come from `overlays.nebula.pki`. */
    fleet: Fleet;
    /** Every member that gets a certificate (from nebulaMembers()). */
    members: readonly NebulaMember[];
    /** The clock certificates are issued against; the real time unless a test pins it. */
    now?: Date;
}

/** A member's identity as delivered. `keyPem` is secret. */
export interface NebulaIdentity {
    certPem: pulumi.Output<string>;
    keyPem: pulumi.Output<string>;
    notAfter: pulumi.Output<string>;
}

export class NebulaPki extends pulumi.ComponentResource {
    /** The CA key (protected); exposed so tests and the composition root can see its options. */
    public readonly caKey: tls.PrivateKey;
    public readonly caCertPem: pulumi.Output<string>;
    public readonly caFingerprint: pulumi.Output<string>;
    public readonly caNotAfter: pulumi.Output<string>;
    public readonly identities: Record<string, NebulaIdentity>;
    /** Member name → ISO expiry of the certificate this run issues. */
    public readonly certExpiry: pulumi.Output<Record<string, string>>;

    constructor(name: string, args: NebulaPkiArgs, opts?: pulumi.ComponentResourceOptions) {
        super("shortcircuit:nebula:NebulaPki", name, {}, opts);
        const pki = args.fleet.overlays.nebula.pki;
        const now = args.now ?? new Date();
        const policy: ValidityPolicy = { certValidityDays: pki.certValidityDays, renewBeforeDays: pki.renewBeforeDays };

        this.caKey = new tls.PrivateKey(`${name}-ca-key`, { algorithm: "ED25519" }, { parent: this, protect: true });
        const ca = this.caKey.privateKeyPemPkcs8.apply((pem) => caFromSeed(ed25519SeedFromPkcs8(pem), pki));
        // The CA certificate is public; only its key is secret.
        this.caCertPem = pulumi.unsecret(ca.apply((material) => material.certPem));
        const parsedCa = this.caCertPem.apply(parseNebulaCert);
        this.caFingerprint = parsedCa.apply((parsed) => parsed.fingerprint);
        this.caNotAfter = parsedCa.apply((parsed) => parsed.notAfter.toISOString());

        this.identities = {};
        const expiries: Record<string, pulumi.Output<string>> = {};
        for (const member of args.members) {
            const hostKey = new tls.PrivateKey(`${name}-key-${member.name}`, { algorithm: "ED25519" }, { parent: this });
            const keyPem = hostKey.privateKeyPemPkcs8.apply((pem) => x25519KeyPemFromBytes(ed25519SeedFromPkcs8(pem)));
            const certPem = pulumi.unsecret(
                pulumi.all([ca, keyPem]).apply(([material, key]) => issueMemberCert(material, member, nebulaHostPublicKeyPem(key), policy, now)),
            );
            const notAfter = certPem.apply((pem) => parseNebulaCert(pem).notAfter.toISOString());
            this.identities[member.name] = { certPem, keyPem: pulumi.secret(keyPem), notAfter };
            expiries[member.name] = notAfter;
        }
        this.certExpiry = pulumi.output(expiries);

        this.caCertPem.apply((caCertPem) => reportExpiry(caCertPem, args.members, policy, now));
        this.registerOutputs({ caCertPem: this.caCertPem, caFingerprint: this.caFingerprint, caNotAfter: this.caNotAfter, certExpiry: this.certExpiry });
    }
}

/** What the operator must hear about certificate expiry; an expired CA fails the run. */
export function expiryMessages(caCertPem: string, members: readonly NebulaMember[], policy: ValidityPolicy, now: Date): { warnings: string[]; errors: string[] } {
    const ca = caValidity(caCertPem);
    const warnings: string[] = [];
    const errors: string[] = [];
    const status = certExpiryStatus(ca, policy, now);
    const names = members.map((member) => member.name).join(", ");
    switch (status.state) {
        case "expired":
            errors.push(
                `Nebula CA expired at ${status.notAfter.toISOString()}: no certificate it signs is valid (${names}). Move fleet.overlays.nebula.pki.caIssuedOn forward to re-sign the CA.`,
            );
            break;
        case "expiring":
            warnings.push(
                `Nebula CA expires at ${status.notAfter.toISOString()}, inside the ${policy.renewBeforeDays}-day renewal window; host certificates are clamped to it. Move fleet.overlays.nebula.pki.caIssuedOn forward to re-sign it.`,
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
    for (const error of errors) {
        void pulumi.log.error(error);
    }
}
