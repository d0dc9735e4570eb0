import * as pulumi from "@pulumi/pulumi";
import { deliverFiles } from "../remote/fileDelivery";
import type { Delivery } from "../hostPlan";
import type { StepConnection } from "../remote/connection";

/*
 * One host's Nebula files over SSH (nebula/plan.ts decides them). Destroying the component
 * leaves the files in place: Nebula is the backup path and must not vanish with a stack.
 */

export interface NebulaNodeArgs {
    /** How the program reaches this host. */
    connection: StepConnection;
    /** The host's planned Nebula delivery. */
    delivery: Delivery<pulumi.Output<string>>;
    /** What the plan's order puts first (the previous member's delivery: one Nebula restart at a time). */
    after: pulumi.Resource[];
}

export class NebulaNode extends pulumi.ComponentResource {
    /** What the last delivery did on the host ("wrote …", "restarted …" or "no change"). */
    public readonly deliveryLog: pulumi.Output<string>;
    /** The last step; the next host's delivery waits for it. */
    public readonly done: pulumi.Resource;

    constructor(name: string, args: NebulaNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        super("shortcircuit:nebula:NebulaNode", name, {}, opts);
        const { files } = deliverFiles(name, this, args.connection, args.delivery, args.after);
        this.done = files;
        this.deliveryLog = files.stdout;
        this.registerOutputs({ deliveryLog: this.deliveryLog });
    }
}
