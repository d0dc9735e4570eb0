import type * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { Delivery } from "../hostPlan";
import { remoteStep } from "./remoteCommand";
import type { StepConnection } from "./connection";

/*
 * A planned delivery as two steps: the secret files first, in their own step so its stdin is
 * the only secret (a changed key marks the restart pending), then the public files, which
 * restart the service when anything changed or a restart is pending, and check it stays up.
 */

export interface DeliveredSteps {
    secrets: command.remote.Command;
    files: command.remote.Command;
}

/** Creates `${name}-secrets` and `${name}-files` under `parent`. */
export function deliverFiles(
    name: string,
    parent: pulumi.Resource,
    connection: StepConnection,
    delivery: Delivery<pulumi.Output<string>>,
    after: pulumi.Input<pulumi.Resource>[],
    /** Values whose change re-runs both steps (a rebuilt machine). */
    triggers: pulumi.Input<unknown>[] = [],
): DeliveredSteps {
    const secrets = remoteStep(`${name}-secrets`, parent, {
        connection,
        script: "remote/deliver-files.sh",
        stdin: delivery.payloads.secret,
        secret: true,
        triggers,
        after,
    });
    const files = remoteStep(`${name}-files`, parent, {
        connection,
        script: "remote/deliver-files.sh",
        stdin: delivery.payloads.public,
        // The keys' hash, in the clear: it reveals nothing of a 256-bit key, and the CLI refuses a
        // secret trigger whose value is unknown ("malformed secret: missing value"), which it is
        // in a fresh stack's first preview (found by the real-engine suite).
        triggers: [...triggers, pulumi.unsecret(delivery.payloads.secretSha256)],
        after: [secrets],
    });
    return { secrets, files };
}
