import * as pulumi from "@pulumi/pulumi";
import { connectionArgs, type SshConnection } from "../remote/connection";
import { deliverFiles } from "../remote/delivery";
import type { ServiceRestart } from "../remote/fileSync";
import { NEBULA_FILES } from "./config";
import { NEBULA_LAUNCHD_LABEL, NEBULA_UNIT, NEBULA_UNIT_PATH, renderNebulaUnit } from "./service";

/*
 * Delivers one host's Nebula files over SSH. The private key travels in its own command so
 * its stdin is the only secret; the public files (config, CA, certificate, unit) follow and
 * restart Nebula only when one of them changed. Destroying the component leaves the files in
 * place: Nebula is the backup path and must not vanish with a stack.
 */

export interface NebulaNodeArgs {
    /** How the program reaches this host. */
    connection: SshConnection;
    /** The host runs macOS (launchd) rather than systemd. */
    macos: boolean;
    /** Rendered /etc/nebula/config.yml. */
    configYaml: pulumi.Input<string>;
    caCertPem: pulumi.Input<string>;
    certPem: pulumi.Input<string>;
    /** The host's X25519 private key (secret). */
    keyPem: pulumi.Input<string>;
    /** The previous host's delivery: hosts restart Nebula one at a time, never all at once. */
    after?: pulumi.Resource;
}

export class NebulaNode extends pulumi.ComponentResource {
    /** What the last delivery did on the host ("wrote …", "restarted …" or "no change"). */
    public readonly deliveryLog: pulumi.Output<string>;
    /** The last step; the next host's delivery waits for it. */
    public readonly done: pulumi.Resource;

    constructor(name: string, args: NebulaNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        super("shortcircuit:nebula:NebulaNode", name, {}, opts);
        const connection = connectionArgs(args.connection);

        const restart: ServiceRestart = args.macos ? { manager: "launchd", label: NEBULA_LAUNCHD_LABEL } : { manager: "systemd", unit: NEBULA_UNIT };
        const { files } = deliverFiles(name, this, {
            connection,
            secretFiles: pulumi.output(args.keyPem).apply((content) => [{ path: NEBULA_FILES.key, content, mode: 0o600 }]),
            publicFiles: pulumi.all([args.configYaml, args.caCertPem, args.certPem]).apply(([configYaml, caCertPem, certPem]) => [
                { path: NEBULA_FILES.ca, content: caCertPem, mode: 0o644 },
                { path: NEBULA_FILES.cert, content: certPem, mode: 0o644 },
                { path: NEBULA_FILES.config, content: configYaml, mode: 0o644 },
                ...(args.macos ? [] : [{ path: NEBULA_UNIT_PATH, content: renderNebulaUnit(), mode: 0o644 }]),
            ]),
            restart,
            dependsOn: args.after ? [args.after] : [],
        });
        this.done = files;
        this.deliveryLog = files.stdout;
        this.registerOutputs({ deliveryLog: this.deliveryLog });
    }
}
