import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { connectionArgs, type SshConnection } from "./remote/connection";
import { fileSyncPayload, fileSyncScript, type ServiceRestart } from "./remote/fileSync";
import { NEBULA_FILES } from "./render/nebulaConfig";
import { NEBULA_LAUNCHD_LABEL, NEBULA_UNIT, NEBULA_UNIT_PATH, renderNebulaUnit } from "./render/nebulaService";

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
}

export class NebulaNode extends pulumi.ComponentResource {
    /** What the last delivery did on the host ("wrote …", "restarted …" or "no change"). */
    public readonly deliveryLog: pulumi.Output<string>;

    constructor(name: string, args: NebulaNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        super("shortcircuit:nebula:NebulaNode", name, {}, opts);
        const connection = connectionArgs(args.connection);

        const keyScript = fileSyncScript({ manager: "none" });
        const key = new command.remote.Command(
            `${name}-key`,
            {
                connection,
                create: keyScript,
                update: keyScript,
                stdin: pulumi.secret(pulumi.output(args.keyPem).apply((content) => fileSyncPayload([{ path: NEBULA_FILES.key, content, mode: 0o600 }]))),
                logging: "stdoutAndStderr",
            },
            { parent: this, additionalSecretOutputs: ["stdin"] },
        );

        const restart: ServiceRestart = args.macos ? { manager: "launchd", label: NEBULA_LAUNCHD_LABEL } : { manager: "systemd", unit: NEBULA_UNIT };
        const filesScript = fileSyncScript(restart);
        const files = new command.remote.Command(
            `${name}-files`,
            {
                connection,
                create: filesScript,
                update: filesScript,
                stdin: pulumi.all([args.configYaml, args.caCertPem, args.certPem]).apply(([configYaml, caCertPem, certPem]) =>
                    fileSyncPayload([
                        { path: NEBULA_FILES.ca, content: caCertPem, mode: 0o644 },
                        { path: NEBULA_FILES.cert, content: certPem, mode: 0o644 },
                        { path: NEBULA_FILES.config, content: configYaml, mode: 0o644 },
                        ...(args.macos ? [] : [{ path: NEBULA_UNIT_PATH, content: renderNebulaUnit(), mode: 0o644 }]),
                    ]),
                ),
                logging: "stdoutAndStderr",
            },
            { parent: this, dependsOn: [key] },
        );
        this.deliveryLog = files.stdout;
        this.registerOutputs({ deliveryLog: this.deliveryLog });
    }
}
