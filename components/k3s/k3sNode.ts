import type * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { remoteStep } from "../remote/remoteCommand";
import type { K3sNodePlan } from "./plan";
import type { StepConnection } from "../remote/connection";

/*
 * One K3s node's rollout (k3s/plan.ts): prepare (pre-flight and token, on the node), drain (on
 * the genesis), apply with health gate and rollback (on the node), uncordon (on the genesis).
 * Each step's payload carries the config or its hash, so it runs only when that node's config
 * changed; a no-op `up` runs nothing. Nodes are chained through `after`, so exactly one changes
 * at a time and a failed node stops every node behind it. Destroying it leaves the node's files.
 */

export interface K3sNodeArgs {
    plan: K3sNodePlan<pulumi.Output<string>>;
    /** How the program reaches this node. */
    connection: StepConnection;
    /** How the program reaches the genesis server, which drains and uncordons. */
    genesisConnection: StepConnection;
    /** What the plan's order puts first (the previous node, this node's Nebula delivery, the control server). */
    after: pulumi.Resource[];
}

export class K3sNode extends pulumi.ComponentResource {
    /** The last step; the next node in the rollout waits for it. */
    public readonly done: command.remote.Command;

    constructor(name: string, args: K3sNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        super("shortcircuit:k3s:K3sNode", name, {}, opts);
        const { plan } = args;
        const prepare = remoteStep(`${name}-prepare`, this, {
            connection: args.connection,
            script: "k3s/prepare.sh",
            stdin: plan.payloads.prepare,
            secret: true,
            after: args.after,
        });
        const drain = remoteStep(`${name}-drain`, this, {
            connection: args.genesisConnection,
            script: "k3s/drain.sh",
            stdin: plan.payloads.drain,
            after: [prepare],
        });
        const apply = remoteStep(`${name}-apply`, this, { connection: args.connection, script: "k3s/apply.sh", stdin: plan.payloads.apply, after: [drain] });
        this.done = remoteStep(`${name}-uncordon`, this, {
            connection: args.genesisConnection,
            script: "k3s/uncordon.sh",
            stdin: plan.payloads.uncordon,
            after: [apply],
        });
        this.registerOutputs({});
    }
}
