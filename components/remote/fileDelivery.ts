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

export interface DeliveryOptions {
    connection: StepConnection;
    delivery: Delivery<pulumi.Output<string>>;
    /** What the delivery waits for. */
    after: pulumi.Input<pulumi.Resource>[];
    /** Values whose change re-runs both steps (a rebuilt machine). */
    triggers?: pulumi.Input<unknown>[];
}

/** Creates `${name}-secrets` and `${name}-files` under `parent`, the second after the first. */
export function deliverFiles(name: string, parent: pulumi.Resource, options: DeliveryOptions): DeliveredSteps {
    const secrets = stageSecretFiles(name, parent, options);
    return { secrets, files: installFiles(name, parent, secrets, { ...options, after: [] }) };
}

/**
 * `${name}-secrets`: the secret files. Where a service runs on them it only stages each changed
 * key beside the live one and marks a restart pending (deliver-files.sh), so it may run before the
 * host's turn to restart.
 */
export function stageSecretFiles(name: string, parent: pulumi.Resource, options: DeliveryOptions): command.remote.Command {
    return remoteStep(`${name}-secrets`, parent, {
        connection: options.connection,
        script: "remote/deliver-files.sh",
        stdin: options.delivery.payloads.secret,
        secret: true,
        triggers: options.triggers ?? [],
        after: options.after,
    });
}

/** `${name}-files`: the public files, switching in what `secrets` staged, and the restart. */
export function installFiles(name: string, parent: pulumi.Resource, secrets: command.remote.Command, options: DeliveryOptions): command.remote.Command {
    return remoteStep(`${name}-files`, parent, {
        connection: options.connection,
        script: "remote/deliver-files.sh",
        stdin: options.delivery.payloads.public,
        // The keys' hash, in the clear: it reveals nothing of a 256-bit key, and the CLI refuses a
        // secret trigger whose value is unknown ("malformed secret: missing value"), which it is
        // in a fresh stack's first preview (found by the real-engine suite).
        triggers: [...(options.triggers ?? []), pulumi.unsecret(options.delivery.payloads.secretSha256)],
        after: [secrets, ...options.after.filter((each) => each !== secrets)],
    });
}
