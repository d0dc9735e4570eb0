import { framedPayload } from "../remote/payload";
import { plannedSsh, type PlannedSsh } from "../hostPlan";
import { genesisNode, serverUrl } from "../../stacks/fleet";
import type { Fleet } from "../../stacks/schema";
import { edgeNamespaces, renderClusterEdge, type EdgeObject, type HelmChartConfigObject } from "./objects";

/** The cluster-side objects and how the program reaches the API server. */
export interface EdgePlan {
    /** The genesis server, whose kubeconfig the provider uses. */
    genesisSsh: PlannedSsh;
    /** The API server URL written into that kubeconfig (an address in the genesis's tls-san). */
    serverUrl: string;
    readKubeconfigPayload: string;
    namespaces: string[];
    /** Traefik's HelmChartConfig: applied first, every other object depends on it. */
    traefik: HelmChartConfigObject;
    /** Every other object, in apply order (never a HelmChartConfig: the type excludes it). */
    objects: EdgeObject[];
    /** Nodes labelled for ServiceLB's allow-list mode. */
    serviceLbNodes: string[];
}

export function planEdge(fleet: Fleet): EdgePlan | undefined {
    if (!fleet.edge.enabled) {
        return undefined;
    }
    return {
        genesisSsh: plannedSsh(fleet, genesisNode(fleet)),
        serverUrl: serverUrl(fleet),
        readKubeconfigPayload: framedPayload({}),
        namespaces: edgeNamespaces(fleet),
        ...renderClusterEdge(fleet),
        serviceLbNodes: fleet.edge.serviceLbNodes,
    };
}
