import { stepId, type StepId } from "../../components/order";

/*
 * Which step of the plan's order (components/order.ts) a resource belongs to, from its type,
 * name and parent component: the mocks' recorder and the real engine's state name them alike.
 */

/** The step a recorded resource belongs to; undefined for what is not a step (cloud objects, keys, certificates). */
export function stepOfResource(resource: { type: string; name: string; parent?: string }): StepId | undefined {
    const isCommand = resource.type === "command:remote:Command";
    const parent = resource.parent ?? "";
    if (parent === "edge") {
        return stepId.edge;
    }
    if (!isCommand) {
        return undefined;
    }
    if (parent === "control") {
        const part = /^control-(bootstrap|litestream|headscale|nebula|health)(?:-|$)/.exec(resource.name);
        if (!part) {
            throw new Error(`control step ${resource.name} belongs to no part`);
        }
        return stepId.control(part[1] as "bootstrap" | "litestream" | "headscale" | "nebula" | "health");
    }
    const host = /^(nebula|derp|k3s)-(.+)$/.exec(parent);
    if (!host) {
        throw new Error(`command ${resource.name} under ${parent} belongs to no step`);
    }
    if (host[1] === "k3s") {
        // A K3s node's prepare step is its pre-flight; the rest is its rollout.
        return resource.name === `${parent}-prepare` ? stepId.k3sPreflight(host[2]) : stepId.k3s(host[2]);
    }
    if (host[1] === "nebula") {
        // A Nebula host's secrets step is its staging; its files step is its turn in the wave.
        return resource.name === `${parent}-secrets` ? stepId.nebulaStage(host[2]) : stepId.nebula(host[2]);
    }
    return stepId.relay(host[2]);
}
