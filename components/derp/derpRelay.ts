import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { connectionArgs, type SshConnection } from "../remote/connection";
import { deliverFiles } from "../remote/delivery";
import type { DeliveredFile, ServiceRestart } from "../remote/fileSync";
import {
    DERPER_CERT_DIR,
    DERPER_LAUNCHD_LABEL,
    DERPER_PLIST_PATH,
    DERPER_UNIT,
    DERPER_UNIT_PATH,
    derpCertName,
    renderDerperPlist,
    renderDerperUnit,
} from "./derper";
import { versions } from "../versions";
import type { DerpRelay as DerpRelayConfig, Fleet } from "../../stacks/schema";

/*
 * A standalone DERP relay on an existing fleet host, over SSH: the pinned derper, its unit
 * (systemd) or job (launchd), and for a self-signed relay a certificate from @pulumi/tls that
 * the DERP map pins by hash. The relay only serves clients Headscale's /verify accepts.
 */

export interface DerpRelayArgs {
    fleet: Fleet;
    relay: DerpRelayConfig;
    /** How the program reaches the relay host. */
    connection: SshConnection;
    /** The host runs macOS. */
    macos: boolean;
}

/**
 * Installs derper at the pinned version with `go install` (Tailscale's documented way to get
 * derper), once per version; needs Go on the host.
 */
export const DERPER_INSTALL_SCRIPT = `set -euo pipefail
version="$(cat)"
target="/usr/local/lib/derper/$version/derper"
if [ ! -x "$target" ]; then
  command -v go >/dev/null 2>&1 || { echo "derper install: Go is not installed on $(hostname); install Go, then re-run" >&2; exit 1; }
  mkdir -p "$(dirname "$target")"
  GOBIN="$(dirname "$target")" go install "tailscale.com/cmd/derper@$version"
fi
ln -sfn "$target" /usr/local/bin/derper
# derper keeps its key here (-c) and, self-signed or ACME, its certificates below it.
mkdir -p /var/lib/derper/certs
echo "derper $version at $target"
`;

export class DerpRelay extends pulumi.ComponentResource {
    /** `sha256-raw:<hex>` for a self-signed relay, for the DERP map; undefined with Let's Encrypt. */
    public readonly certName: pulumi.Output<string | undefined>;

    constructor(name: string, args: DerpRelayArgs, opts?: pulumi.ComponentResourceOptions) {
        super("shortcircuit:derp:DerpRelay", name, {}, opts);
        const { fleet, relay } = args;
        const connection = connectionArgs(args.connection);

        const install = new command.remote.Command(
            `${name}-install`,
            { connection, create: DERPER_INSTALL_SCRIPT, update: DERPER_INSTALL_SCRIPT, stdin: versions.tailscale, logging: "stdoutAndStderr" },
            { parent: this },
        );

        const secretFiles: pulumi.Output<DeliveredFile[]>[] = [];
        const publicFiles: pulumi.Output<DeliveredFile[]>[] = [
            pulumi.output(
                args.macos
                    ? [{ path: DERPER_PLIST_PATH, content: renderDerperPlist(fleet, relay), mode: 0o644 }]
                    : [{ path: DERPER_UNIT_PATH, content: renderDerperUnit(fleet, relay), mode: 0o644 }],
            ),
        ];
        if (relay.certMode === "self-signed") {
            const key = new tls.PrivateKey(`${name}-tls-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this });
            const cert = new tls.SelfSignedCert(
                `${name}-tls-cert`,
                {
                    privateKeyPem: key.privateKeyPem,
                    subject: { commonName: relay.hostname },
                    dnsNames: [relay.hostname],
                    validityPeriodHours: 3 * 365 * 24,
                    // Reissued a month before expiry; the DERP map's pin follows the new certificate.
                    earlyRenewalHours: 30 * 24,
                    allowedUses: ["digital_signature", "key_encipherment", "server_auth"],
                },
                { parent: this },
            );
            secretFiles.push(key.privateKeyPem.apply((content) => [{ path: `${DERPER_CERT_DIR}/${relay.hostname}.key`, content, mode: 0o600 }]));
            publicFiles.push(cert.certPem.apply((content) => [{ path: `${DERPER_CERT_DIR}/${relay.hostname}.crt`, content, mode: 0o644 }]));
            this.certName = cert.certPem.apply(derpCertName);
        } else {
            this.certName = pulumi.output(undefined);
        }

        const restart: ServiceRestart = args.macos ? { manager: "launchd", label: DERPER_LAUNCHD_LABEL, plist: DERPER_PLIST_PATH } : { manager: "systemd", unit: DERPER_UNIT };
        deliverFiles(name, this, {
            connection,
            secretFiles: pulumi.all(secretFiles).apply((lists) => lists.flat()),
            publicFiles: pulumi.all(publicFiles).apply((lists) => lists.flat()),
            restart,
            dependsOn: [install],
        });
        this.registerOutputs({ certName: this.certName });
    }
}
