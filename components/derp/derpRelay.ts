import * as pulumi from "@pulumi/pulumi";
import { deliverFiles } from "../remote/fileDelivery";
import { remoteStep } from "../remote/remoteCommand";
import type { RelayPlan } from "./plan";
import type { StepConnection } from "../remote/connection";

/*
 * A standalone DERP relay on an existing fleet host, over SSH: the pinned derper (install.sh),
 * then its unit or job and, for a self-signed relay, its certificate (derp/plan.ts). The relay
 * only serves clients Headscale's /verify accepts.
 */

export interface DerpRelayArgs {
    /** How the program reaches the relay host. */
    connection: StepConnection;
    plan: RelayPlan<pulumi.Output<string>>;
    /** What the plan's order puts first (the control server answering). */
    after: pulumi.Resource[];
}

export class DerpRelay extends pulumi.ComponentResource {
    /** The last step: the relay runs its wanted files. */
    public readonly done: pulumi.Resource;

    constructor(name: string, args: DerpRelayArgs, opts?: pulumi.ComponentResourceOptions) {
        super("shortcircuit:derp:DerpRelay", name, {}, opts);
        const install = remoteStep(`${name}-install`, this, {
            connection: args.connection,
            script: "derp/install.sh",
            stdin: args.plan.installPayload,
            after: args.after,
        });
        let last: pulumi.Resource = install;
        for (const delivery of args.plan.deliveries) {
            last = deliverFiles(`${name}-${delivery.role}`, this, { connection: args.connection, delivery, after: [last] }).files;
        }
        this.done = last;
        this.registerOutputs({});
    }
}
