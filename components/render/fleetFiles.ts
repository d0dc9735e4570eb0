import { K3S_CONFIG_PATH, renderK3sConfigYaml } from "./k3sConfig";
import { rolloutOrder } from "./rollout";
import type { Fleet } from "../../stacks/schema";

/*
 * Everything the fleet's hosts would receive, as a map from a path relative to the render
 * root to file content. The `render` command writes this tree; tests assert on it.
 */

export type RenderedFiles = Map<string, string>;

/** `<root>/hosts/<host>/<absolute path on the host>` */
export function hostFilePath(host: string, absolutePath: string): string {
    return `hosts/${host}${absolutePath}`;
}

export function renderFleetFiles(fleet: Fleet): RenderedFiles {
    const files: RenderedFiles = new Map();
    const order = rolloutOrder(fleet);
    for (const node of order) {
        files.set(hostFilePath(node.name, K3S_CONFIG_PATH), renderK3sConfigYaml(fleet, node));
    }
    files.set("rollout.json", `${JSON.stringify({ order: order.map((node) => node.name) }, null, 2)}\n`);
    return files;
}
