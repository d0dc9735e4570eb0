import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";

/*
 * A self-signed relay's certificate, kept in state; the DERP map pins it by hash
 * (derp/derper.ts derpCertName). It is made before the plan, which delivers it.
 */

export interface RelayCertificateArgs {
    /** The relay's DNS name (certificate subject and SAN). */
    hostname: string;
}

export class RelayCertificate extends pulumi.ComponentResource {
    public readonly certPem: pulumi.Output<string>;
    /** Secret. */
    public readonly keyPem: pulumi.Output<string>;

    constructor(name: string, args: RelayCertificateArgs, opts?: pulumi.ComponentResourceOptions) {
        super("shortcircuit:derp:RelayCertificate", name, {}, opts);
        const key = new tls.PrivateKey(`${name}-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this });
        const cert = new tls.SelfSignedCert(
            `${name}-cert`,
            {
                privateKeyPem: key.privateKeyPem,
                subject: { commonName: args.hostname },
                dnsNames: [args.hostname],
                validityPeriodHours: 3 * 365 * 24,
                // Reissued a month before expiry; the DERP map's pin follows the new certificate.
                earlyRenewalHours: 30 * 24,
                allowedUses: ["digital_signature", "key_encipherment", "server_auth"],
            },
            { parent: this },
        );
        this.certPem = cert.certPem;
        this.keyPem = pulumi.secret(key.privateKeyPem);
        this.registerOutputs({ certPem: this.certPem });
    }
}
