import { stringify as stringifyYaml } from "yaml";
import { addressOn, k3sNodes } from "../../stacks/fleet";
import type { Fleet, Middleware } from "../../stacks/schema";
import { assertNever } from "../hostPlan";

/*
 * The cluster-side objects, as plain Kubernetes manifests: Traefik's HelmChartConfig, the
 * Middlewares, external Services with EndpointSlices generated from the fleet, ServiceLB
 * tolerations and allow-list labels, and declared workloads. The component applies these
 * objects; `render` writes them; tests validate them against the CRDs' schemas.
 */

export interface ObjectMeta {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
}

// Type aliases, not interfaces: a CustomResource's arguments carry an index signature, which
// only an alias satisfies. Each kind's shape is what the program renders; the Kubernetes SDK's
// own argument types accept it as it is (plain values are Inputs), so ClusterEdge needs no cast.
type Manifest<ApiVersion extends string, Kind extends string> = { apiVersion: ApiVersion; kind: Kind; metadata: ObjectMeta };

export type HelmChartConfigObject = Manifest<"helm.cattle.io/v1", "HelmChartConfig"> & { spec: { valuesContent: string } };
export type MiddlewareObject = Manifest<"traefik.io/v1alpha1", "Middleware"> & { spec: Record<string, unknown> };
export type ServicePort = { name: string; port: number; protocol: string; targetPort?: number };
export type ServiceObject = Manifest<"v1", "Service"> & {
    spec: { type?: string; externalName?: string; clusterIP?: string; ports?: ServicePort[] };
};
export type EndpointSliceObject = Manifest<"discovery.k8s.io/v1", "EndpointSlice"> & {
    addressType: "IPv4";
    ports: ServicePort[];
    endpoints: { addresses: string[]; hostname: string; conditions: { ready: boolean } }[];
};
type PodTemplate = {
    metadata: { labels: Record<string, string> };
    spec: { hostNetwork: boolean; containers: { name: string; image: string }[] };
};
type WorkloadSpec = { selector: { matchLabels: Record<string, string> }; template: PodTemplate };
export type DeploymentObject = Manifest<"apps/v1", "Deployment"> & { spec: WorkloadSpec };
export type DaemonSetObject = Manifest<"apps/v1", "DaemonSet"> & { spec: WorkloadSpec };
export type StatefulSetObject = Manifest<"apps/v1", "StatefulSet"> & { spec: WorkloadSpec & { serviceName: string } };
export type WorkloadObject = DeploymentObject | DaemonSetObject | StatefulSetObject;

/** Every object the edge renders, by kind. */
export type K8sObject = HelmChartConfigObject | MiddlewareObject | ServiceObject | EndpointSliceObject | WorkloadObject;

/**
 * Every object the edge applies after Traefik's HelmChartConfig. The edge renders exactly one
 * HelmChartConfig, carried on its own (`RenderedEdge.traefik`), so these never include one and
 * ClusterEdge's switch over their kinds is exhaustive without a "came later" case.
 */
export type EdgeObject = Exclude<K8sObject, HelmChartConfigObject>;

/** The cluster edge as rendered: Traefik's HelmChartConfig, then every other object in apply order. */
export interface RenderedEdge {
    traefik: HelmChartConfigObject;
    objects: EdgeObject[];
}

export const SERVICELB_TOLERATIONS_ANNOTATION = "svccontroller.k3s.cattle.io/tolerations";
export const SERVICELB_ENABLE_LABEL = "svccontroller.k3s.cattle.io/enablelb";
const MANAGED_BY = { "app.kubernetes.io/managed-by": "shortcircuit" };

export interface Toleration {
    key: string;
    operator: "Equal" | "Exists";
    value?: string;
    effect: string;
}

/** One toleration per distinct taint on any K3s node, so klipper-lb pods schedule everywhere. */
export function serviceLbTolerations(fleet: Fleet): Toleration[] {
    const seen = new Map<string, Toleration>();
    for (const node of k3sNodes(fleet)) {
        for (const taint of node.taints) {
            const match = /^([^=:]+)(?:=([^:]*))?:(.+)$/.exec(taint);
            if (!match) {
                continue;
            }
            const [, key, value, effect] = match;
            const toleration: Toleration = value !== undefined ? { key, operator: "Equal", value, effect } : { key, operator: "Exists", effect };
            seen.set(`${key}=${value ?? ""}:${effect}`, toleration);
        }
    }
    return [...seen.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

function isRecord(value: unknown): value is Record<string, unknown> {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Config values first, the program's required settings merged over them (they always win). */
function mergeValues(base: Record<string, unknown>, required: Record<string, unknown>): Record<string, unknown> {
    const merged: Record<string, unknown> = { ...base };
    for (const [key, value] of Object.entries(required)) {
        merged[key] = isRecord(value) && isRecord(merged[key]) ? mergeValues(merged[key], value) : value;
    }
    return merged;
}

/** The Traefik chart values the program sets. */
export function traefikValues(fleet: Fleet): Record<string, unknown> {
    return mergeValues(fleet.edge.traefikValues, {
        providers: {
            kubernetesIngress: { allowExternalNameServices: true },
            kubernetesCRD: { allowExternalNameServices: true },
        },
        service: { annotations: { [SERVICELB_TOLERATIONS_ANNOTATION]: JSON.stringify(serviceLbTolerations(fleet)) } },
    });
}

export function renderTraefikHelmChartConfig(fleet: Fleet): HelmChartConfigObject {
    return {
        apiVersion: "helm.cattle.io/v1",
        kind: "HelmChartConfig",
        metadata: { name: "traefik", namespace: "kube-system", labels: MANAGED_BY },
        spec: { valuesContent: stringifyYaml(traefikValues(fleet)) },
    };
}

type MiddlewareKind = Exclude<keyof Middleware, "name" | "namespace">;

/**
 * One entry per Middleware kind the schema allows: a kind added to the schema without a
 * renderer here is a compile error, never a silently empty spec.
 */
const MIDDLEWARE_SPECS: { [K in MiddlewareKind]: (value: NonNullable<Middleware[K]>) => Record<string, unknown> } = {
    stripPrefix: (value) => ({ stripPrefix: { prefixes: value.prefixes } }),
    forwardAuth: (value) => ({ forwardAuth: value }),
    headers: (value) => ({ headers: value }),
};

function middlewareSpec(middleware: Middleware): Record<string, unknown> {
    const kinds = (Object.keys(MIDDLEWARE_SPECS) as MiddlewareKind[]).filter((kind) => middleware[kind] !== undefined);
    if (kinds.length !== 1) {
        throw new Error(`middleware ${middleware.namespace}/${middleware.name} must set exactly one kind (validation should have refused it)`);
    }
    const kind = kinds[0];
    return (MIDDLEWARE_SPECS[kind] as (value: unknown) => Record<string, unknown>)(middleware[kind]);
}

export function renderMiddlewares(fleet: Fleet): MiddlewareObject[] {
    return fleet.edge.middlewares.map((middleware) => ({
        apiVersion: "traefik.io/v1alpha1",
        kind: "Middleware",
        metadata: { name: middleware.name, namespace: middleware.namespace, labels: MANAGED_BY },
        spec: middlewareSpec(middleware),
    }));
}

/** Any LoadBalancer Service the program declares gets the ServiceLB tolerations too. */
export function withServiceLbTolerations<T extends K8sObject>(fleet: Fleet, service: T): T {
    if (service.kind !== "Service" || service.spec.type !== "LoadBalancer") {
        return service;
    }
    return {
        ...service,
        metadata: {
            ...service.metadata,
            annotations: { ...service.metadata.annotations, [SERVICELB_TOLERATIONS_ANNOTATION]: JSON.stringify(serviceLbTolerations(fleet)) },
        },
    };
}

/**
 * ExternalName Services, and headless Services whose EndpointSlice lists the fleet hosts'
 * addresses on the overlay the cluster uses (its node-ip path): moving the cluster to
 * another overlay moves every endpoint with it. Ports are named identically on both.
 */
export function renderExternalServices(fleet: Fleet): (ServiceObject | EndpointSliceObject)[] {
    const objects: (ServiceObject | EndpointSliceObject)[] = [];
    const overlay = fleet.cluster.nodeIpFrom;
    for (const service of fleet.edge.externalServices) {
        const ports = service.ports.map((port) => ({ name: port.name ?? "", port: port.port, protocol: port.protocol }));
        const metadata = { name: service.name, namespace: service.namespace, labels: MANAGED_BY };
        switch (service.type) {
            case "ExternalName":
                objects.push({
                    apiVersion: "v1",
                    kind: "Service",
                    metadata,
                    spec: { type: "ExternalName", externalName: service.externalName, ports: ports.map((port) => ({ ...port, targetPort: port.port })) },
                });
                continue;
            case "headless":
                break;
            default:
                assertNever(service.type);
        }
        objects.push({
            apiVersion: "v1",
            kind: "Service",
            metadata,
            spec: { clusterIP: "None", ports: ports.map((port) => ({ ...port, targetPort: port.port })) },
        });
        objects.push({
            apiVersion: "discovery.k8s.io/v1",
            kind: "EndpointSlice",
            metadata: {
                name: service.name,
                namespace: service.namespace,
                labels: { ...MANAGED_BY, "kubernetes.io/service-name": service.name, "endpointslice.kubernetes.io/managed-by": "shortcircuit" },
            },
            addressType: "IPv4",
            ports,
            endpoints: service.hosts.map((name) => {
                const host = fleet.nodes.find((node) => node.name === name);
                const address = host ? addressOn(host, overlay) : undefined;
                if (!address) {
                    throw new Error(`${name} has no ${overlay} address (validation should have rejected it)`);
                }
                return { addresses: [address], hostname: name, conditions: { ready: true } };
            }),
        });
    }
    return objects.map((object) => withServiceLbTolerations(fleet, object));
}

export function renderWorkloads(fleet: Fleet): WorkloadObject[] {
    return fleet.edge.workloads.map((workload): WorkloadObject => {
        const labels = { ...MANAGED_BY, "app.kubernetes.io/name": workload.name };
        const template = { metadata: { labels }, spec: { hostNetwork: workload.hostNetwork, containers: [{ name: workload.name, image: workload.image }] } };
        const metadata = { name: workload.name, namespace: workload.namespace, labels };
        const spec = { selector: { matchLabels: { "app.kubernetes.io/name": workload.name } }, template };
        switch (workload.kind) {
            case "Deployment":
                return { apiVersion: "apps/v1", kind: "Deployment", metadata, spec };
            case "DaemonSet":
                return { apiVersion: "apps/v1", kind: "DaemonSet", metadata, spec };
            case "StatefulSet":
                return { apiVersion: "apps/v1", kind: "StatefulSet", metadata, spec: { ...spec, serviceName: workload.name } };
            default:
                return assertNever(workload.kind);
        }
    });
}

/** Namespaces the objects live in (created if missing, never deleted). */
export function edgeNamespaces(fleet: Fleet): string[] {
    const names = [
        ...fleet.edge.middlewares.map((middleware) => middleware.namespace),
        ...fleet.edge.externalServices.map((service) => service.namespace),
        ...fleet.edge.workloads.map((workload) => workload.namespace),
    ];
    return [...new Set(names)].filter((name) => name !== "kube-system").sort();
}

/**
 * The last line of the hostNetwork rule, over what is actually rendered: no workload may run
 * Tailscale with the host's network (it rewrote routes and iptables and took nodes offline).
 */
export function assertNoHostNetworkTailscale(objects: readonly K8sObject[]): void {
    for (const object of objects) {
        const podSpec = object.kind === "Deployment" || object.kind === "DaemonSet" || object.kind === "StatefulSet" ? object.spec.template.spec : undefined;
        if (podSpec?.hostNetwork && podSpec.containers.some((container) => /tailscale/i.test(container.image))) {
            throw new Error(`${object.kind} ${object.metadata.namespace ?? ""}/${object.metadata.name} runs Tailscale with hostNetwork: refused`);
        }
    }
}

/** Every object the edge applies: Traefik's HelmChartConfig, then the rest in apply order. */
export function renderClusterEdge(fleet: Fleet): RenderedEdge {
    const objects: EdgeObject[] = [...renderMiddlewares(fleet), ...renderExternalServices(fleet), ...renderWorkloads(fleet)];
    assertNoHostNetworkTailscale(objects);
    return { traefik: renderTraefikHelmChartConfig(fleet), objects };
}

/** The rendered edge as one list in apply order (HelmChartConfig first), for `render` and tests. */
export function edgeObjects(edge: RenderedEdge): K8sObject[] {
    return [edge.traefik, ...edge.objects];
}

/** `cluster/<kind>-<namespace>-<name>.yaml`, lower-case. */
export function clusterObjectFile(object: K8sObject): string {
    return `cluster/${[object.kind, object.metadata.namespace ?? "cluster", object.metadata.name].join("-").toLowerCase()}.yaml`;
}
