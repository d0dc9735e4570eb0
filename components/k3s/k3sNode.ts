import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { connectionArgs, type SshConnection } from "../remote/connection";
import { fileSyncPayload, fileSyncScript } from "../remote/fileSync";
import { APPLY_SCRIPT, DRAIN_SCRIPT, PREFLIGHT_SCRIPT, UNCORDON_SCRIPT, nodeRolloutPayloads } from "./rollout";
import { K3S_TOKEN_FILE } from "./config";
import type { K3sNode as FleetK3sNode } from "../../stacks/fleet";
import type { Fleet } from "../../stacks/schema";

/*
 * One K3s node's rollout: token, pre-flight, drain (on the genesis), apply with health gate
 * and rollback (on the node), uncordon (on the genesis). Each step is a command whose stdin
 * carries the rendered config, so it runs only when that node's config changed; a no-op
 * `up` runs nothing. Nodes are chained through `after`, so exactly one changes at a time and a
 * failed node stops every node behind it. Destroying the component leaves the node's files.
 */

export interface K3sNodeArgs {
    fleet: Fleet;
    node: FleetK3sNode;
    /** How the program reaches this node. */
    connection: SshConnection;
    /** How the program reaches the genesis server, which drains and uncordons. */
    genesisConnection: SshConnection;
    /** The cluster join token (secret), written to the node's token file. */
    k3sToken: pulumi.Input<string>;
    /** The previous node's last step: this node starts only after it succeeded. */
    after?: pulumi.Resource;
}

export class K3sNode extends pulumi.ComponentResource {
    /** The last step; the next node in the rollout waits for it. */
    public readonly done: command.remote.Command;
    /** What the apply step reported ("no change", pass 1/2, restarted and healthy). */
    public readonly applyLog: pulumi.Output<string>;

    constructor(name: string, args: K3sNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        super("shortcircuit:k3s:K3sNode", name, {}, opts);
        const node = connectionArgs(args.connection);
        const genesis = connectionArgs(args.genesisConnection);
        const payloads = nodeRolloutPayloads(args.fleet, args.node);
        const step = (role: string, connection: typeof node, script: string, stdin: pulumi.Input<string>, after: pulumi.Resource | undefined, secret = false): command.remote.Command =>
            new command.remote.Command(
                `${name}-${role}`,
                { connection, create: script, update: script, stdin, logging: "stdoutAndStderr" },
                { parent: this, dependsOn: after ? [after] : [], ...(secret ? { additionalSecretOutputs: ["stdin"] } : {}) },
            );

        const tokenScript = fileSyncScript({ manager: "none" });
        const token = step(
            "token",
            node,
            tokenScript,
            pulumi.secret(pulumi.output(args.k3sToken).apply((value) => fileSyncPayload([{ path: K3S_TOKEN_FILE, content: `${value}\n`, mode: 0o600 }]))),
            args.after,
            true,
        );
        const preflight = step("preflight", node, PREFLIGHT_SCRIPT, payloads.preflight, token);
        const drain = step("drain", genesis, DRAIN_SCRIPT, payloads.drain, preflight);
        const apply = step("apply", node, APPLY_SCRIPT, payloads.apply, drain);
        this.done = step("uncordon", genesis, UNCORDON_SCRIPT, payloads.uncordon, apply);
        this.applyLog = apply.stdout;
        this.registerOutputs({ applyLog: this.applyLog });
    }
}
