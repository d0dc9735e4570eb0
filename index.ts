/*
 * Composition root: reads the validated fleet once and builds the graph from it. The order
 * of construction below is the order of the graph; components own their own wiring.
 */
import { createHash } from "node:crypto";
import { renderK3sConfigYaml } from "./components/render/k3sConfig";
import { rolloutOrder } from "./components/render/rollout";
import { loadStack } from "./stacks/load";

const { fleet } = loadStack();
const order = rolloutOrder(fleet);

/** The order nodes are changed in, one at a time. */
export const rollout = order.map((node) => node.name);

/** sha256 of each node's config.yaml, to compare with `sha256sum /etc/rancher/k3s/config.yaml` on the host. */
export const k3sConfigSha256: Record<string, string> = Object.fromEntries(
    order.map((node) => [node.name, createHash("sha256").update(renderK3sConfigYaml(fleet, node)).digest("hex")]),
);
