import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { fileSyncPayload, fileSyncScript, type DeliveredFile, type ServiceRestart } from "./fileSync";

/*
 * The two-command file delivery every host component uses: secret files first, in their own
 * command so its stdin is the only secret, then the public files, which restart the service
 * when anything changed. Each command re-runs only when its files changed.
 */

export interface FileDeliveryArgs {
    connection: command.types.input.remote.ConnectionArgs;
    /** Keys and other secret files (may be empty). */
    secretFiles: pulumi.Input<DeliveredFile[]>;
    /** Everything else; their change restarts the service. */
    publicFiles: pulumi.Input<DeliveredFile[]>;
    restart: ServiceRestart;
    /** What must finish before the secret files are written. */
    dependsOn?: pulumi.Resource[];
}

export interface FileDelivery {
    secret: command.remote.Command;
    files: command.remote.Command;
}

/** Creates `${name}-key` and `${name}-files` under `parent`. */
export function deliverFiles(name: string, parent: pulumi.Resource, args: FileDeliveryArgs): FileDelivery {
    const secretScript = fileSyncScript({ manager: "none" });
    const secret = new command.remote.Command(
        `${name}-key`,
        {
            connection: args.connection,
            create: secretScript,
            update: secretScript,
            stdin: pulumi.secret(pulumi.output(args.secretFiles).apply((files) => fileSyncPayload(files))),
            logging: "stdoutAndStderr",
        },
        { parent, dependsOn: args.dependsOn ?? [], additionalSecretOutputs: ["stdin"] },
    );
    const filesScript = fileSyncScript(args.restart);
    const files = new command.remote.Command(
        `${name}-files`,
        {
            connection: args.connection,
            create: filesScript,
            update: filesScript,
            stdin: pulumi.output(args.publicFiles).apply((list) => fileSyncPayload(list)),
            logging: "stdoutAndStderr",
        },
        { parent, dependsOn: [secret] },
    );
    return { secret, files };
}
