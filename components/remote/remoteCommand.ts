import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { remoteScript } from "./scripts";

/*
 * The one way the program builds a `command:remote:Command`: the script is fixed text from a
 * `.sh` file, per-host values and files arrive on stdin in the payload format, and a secret
 * payload keeps stdin (and what the script prints) out of state and logs.
 */

export interface RemoteStepArgs {
    connection: command.types.input.remote.ConnectionArgs;
    /** `components/<path>.sh`, run after remote/prelude.sh. */
    script: string;
    /** The step's payload (remote/payload.ts). */
    stdin: pulumi.Input<string>;
    /** The payload holds secrets: stdin is stored as a secret (the scripts never print content). */
    secret?: boolean;
    /** What the script prints is secret (a kubeconfig): stored as a secret and not logged. */
    secretOutput?: boolean;
    /** Extra values whose change re-runs the step although its payload did not change. */
    triggers?: pulumi.Input<unknown>[];
    /** What must succeed first. */
    after?: pulumi.Input<pulumi.Resource>[];
}

export function remoteStep(name: string, parent: pulumi.Resource, args: RemoteStepArgs): command.remote.Command {
    const script = remoteScript(args.script);
    return new command.remote.Command(
        name,
        {
            connection: args.connection,
            create: script,
            update: script,
            stdin: args.secret ? pulumi.secret(args.stdin) : args.stdin,
            triggers: args.triggers,
            logging: args.secretOutput ? "none" : "stdoutAndStderr",
        },
        {
            parent,
            dependsOn: args.after ?? [],
            additionalSecretOutputs: [...(args.secret ? ["stdin"] : []), ...(args.secretOutput ? ["stdout"] : [])],
        },
    );
}
