import { k3sNodes, type K3sNodeConfig } from "../../stacks/fleet";
import type { Fleet } from "../../stacks/schema";

/*
 * The order nodes change in: one at a time, agents first, then the joining servers, the
 * genesis last, so etcd keeps quorum and no restart storm hits one server (the thundering
 * herd that crashed the API server every three minutes). A cluster being bootstrapped runs
 * the other way round: nothing can join before the genesis is up.
 */

function rank(node: K3sNodeConfig, bootstrap: boolean): number {
    const changeOrder = node.role === "agent" ? 0 : node.genesis ? 2 : 1;
    return bootstrap ? 2 - changeOrder : changeOrder;
}

/** Code-unit comparison: the order must not depend on the operator's locale. */
function byName(a: K3sNodeConfig, b: K3sNodeConfig): number {
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export function rolloutOrder(fleet: Fleet): K3sNodeConfig[] {
    const bootstrap = fleet.cluster.bootstrap;
    return [...k3sNodes(fleet)].sort((a, b) => rank(a, bootstrap) - rank(b, bootstrap) || byName(a, b));
}
