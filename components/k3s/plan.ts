import { plannedSsh, type PlannedSsh, type Values } from "../hostPlan";
import type { K3sNodeConfig } from "../../stacks/fleet";
import type { Fleet } from "../../stacks/schema";
import { rolloutOrder } from "./order";
import { nodeRolloutPayloads, type K3sNodePaths } from "./rollout";

/** One node's rollout: where its steps run and what each reads on stdin. */
export interface K3sNodePlan<V> {
    name: string;
    ssh: PlannedSsh;
    /** The systemd unit that runs k3s on the node. */
    unit: "k3s" | "k3s-agent";
    /** Every path its steps touch on the node; the scripts receive them as parameters. */
    paths: K3sNodePaths;
    configYaml: string;
    configSha256: string;
    /** Files the rollout leaves on the node (for render and the program/render comparison). */
    files: { path: string; mode: number; content: V }[];
    payloads: { prepare: V; apply: string };
}

/** Every K3s node in rollout order. */
export function planK3sNodes<V>(fleet: Fleet, values: Values<V>, token: V): K3sNodePlan<V>[] {
    return rolloutOrder(fleet).map((node: K3sNodeConfig) => {
        const payloads = nodeRolloutPayloads(fleet, node);
        return {
            name: node.name,
            ssh: plannedSsh(fleet, node),
            unit: payloads.unit,
            paths: payloads.paths,
            configYaml: payloads.configYaml,
            configSha256: payloads.configSha256,
            files: [
                { path: payloads.paths.token, mode: 0o600, content: values.derive([token], ([text]) => `${text}\n`) },
                { path: payloads.paths.config, mode: 0o600, content: values.text(payloads.configYaml) },
                { path: payloads.paths.rolloutRecord, mode: 0o600, content: values.text(payloads.rolloutRecord) },
            ],
            payloads: {
                prepare: values.derive([token], ([text]) => payloads.prepare(text)),
                apply: payloads.apply,
            },
        };
    });
}
