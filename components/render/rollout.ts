import { k3sNodes, type K3sNode } from "../../stacks/fleet";
import type { Fleet } from "../../stacks/schema";

/*
 * The order nodes change in: one at a time, agents first, then the joining servers, the
 * genesis last, so etcd keeps quorum and no restart storm hits one server (the thundering
 * herd that crashed the API server every three minutes).
 */

function rank(node: K3sNode): number {
    if (node.role === "agent") {
        return 0;
    }
    return node.genesis ? 2 : 1;
}

/** Code-unit comparison: the order must not depend on the operator's locale. */
function byName(a: K3sNode, b: K3sNode): number {
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export function rolloutOrder(fleet: Fleet): K3sNode[] {
    return [...k3sNodes(fleet)].sort((a, b) => rank(a) - rank(b) || byName(a, b));
}
