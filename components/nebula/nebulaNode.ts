import * as pulumi from "@pulumi/pulumi";
import { installFiles, stageSecretFiles } from "../remote/fileDelivery";
import type { Delivery } from "../hostPlan";
import type { StepConnection } from "../remote/connection";
import { stepId } from "../order";
import type { StepGate } from "../stepWaits";

/*
 * One host's Nebula files over SSH (nebula/plan.ts decides them): its keys staged beside the live
 * ones (nebula-stage:<host>, which waits for no other host), then its turn in the wave
 * (nebula:<host>), which switches keys, certificate and config in together and restarts Nebula.
 * Destroying the component leaves the files in place: Nebula is the backup path and must not
 * vanish with a stack.
 */

export interface NebulaNodeArgs {
    /** The host's name in the fleet (its steps' ids in the plan's order). */
    host: string;
    /** How the program reaches this host. */
    connection: StepConnection;
    /** The host's planned Nebula delivery. */
    delivery: Delivery<pulumi.Output<string>>;
    /** The plan's order: what the staging and the restart wait for (nebula-stage:<host>, nebula:<host>). */
    order: StepGate;
}

export class NebulaNode extends pulumi.ComponentResource {
    /** What the last delivery did on the host ("wrote …", "restarted …" or "no change"). */
    public readonly deliveryLog: pulumi.Output<string>;
    /** The last step: Nebula runs the wanted files. */
    public readonly done: pulumi.Resource;

    constructor(name: string, args: NebulaNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        super("shortcircuit:nebula:NebulaNode", name, {}, opts);
        const { order } = args;
        const stage = stepId.nebulaStage(args.host);
        const turn = stepId.nebula(args.host);
        const delivery = { connection: args.connection, delivery: args.delivery };
        const secrets = stageSecretFiles(name, this, { ...delivery, after: order.before(stage) });
        order.finish(stage, secrets);
        const files = installFiles(name, this, secrets, { ...delivery, after: order.before(turn) });
        order.finish(turn, files);
        this.done = files;
        this.deliveryLog = files.stdout;
        this.registerOutputs({ deliveryLog: this.deliveryLog });
    }
}
