import type * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { remoteStep } from "../remote/remoteCommand";
import type { K3sNodePlan } from "./plan";
import type { StepConnection } from "../remote/connection";
import { stepId } from "../order";
import type { StepGate } from "../stepWaits";

/*
 * One K3s node's pre-flight and rollout (k3s/plan.ts), two steps on the node: prepare (pre-flight
 * and token), then apply (the node drains itself, writes, restarts, gates on health or rolls
 * back, and uncordons itself: one SSH session; k3s/self-drain.sh says why the node can). Each
 * step's payload carries the config or its hash, so it runs only when that node's config
 * changed; a no-op `up` runs nothing. The plan's order (components/order.ts) says what each
 * waits for: pre-flight restarts nothing, so it waits only for what it checks and runs while
 * earlier nodes roll; apply waits for this node's pre-flight and the previous node, so exactly
 * one node changes at a time and a failed node stops every node behind it. Destroying it leaves
 * the node's files.
 */

export interface K3sNodeArgs {
    plan: K3sNodePlan<pulumi.Output<string>>;
    /** How the program reaches this node. */
    connection: StepConnection;
    /** The plan's order: what this node's pre-flight and rollout wait for (k3s-preflight:<node>, k3s:<node>). */
    order: StepGate;
}

export class K3sNode extends pulumi.ComponentResource {
    /** The node's apply step; the next node in the rollout waits for it. */
    public readonly done: command.remote.Command;

    constructor(name: string, args: K3sNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        super("shortcircuit:k3s:K3sNode", name, {}, opts);
        const { plan, order } = args;
        const preflightStep = stepId.k3sPreflight(plan.name);
        const rolloutStep = stepId.k3s(plan.name);
        const prepare = remoteStep(`${name}-prepare`, this, {
            connection: args.connection,
            script: "k3s/prepare.sh",
            stdin: plan.payloads.prepare,
            secret: true,
            after: order.before(preflightStep),
        });
        order.finish(preflightStep, prepare);
        this.done = remoteStep(`${name}-apply`, this, {
            connection: args.connection,
            script: "k3s/apply.sh",
            stdin: plan.payloads.apply,
            after: order.before(rolloutStep),
        });
        order.finish(rolloutStep, this.done);
        this.registerOutputs({});
    }
}
