import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { assertNever } from "../hostPlan";
import { remoteStep } from "../remote/remoteCommand";
import type { EdgePlan } from "./plan";
import { SERVICELB_ENABLE_LABEL, type K8sObject } from "./objects";
import type { StepConnection } from "../remote/connection";

/*
 * The cluster edge, applied through one explicit Kubernetes provider. Its kubeconfig is read
 * from the genesis server by its own command, with the server URL rewritten to an address in
 * the genesis's tls-san; the command depends only on the genesis's identity, so a config
 * change on a node never replaces the provider. Middlewares depend on the Traefik config, and
 * Pulumi.yaml refreshes before every run, so a Middleware a chart upgrade wiped is recreated.
 */

export interface ClusterEdgeArgs {
    plan: EdgePlan;
    /** How the program reaches the genesis server. */
    genesisConnection: StepConnection;
    /** What the plan's order puts first: the cluster's rollout finishes before its edge changes. */
    after: pulumi.Resource[];
}

const KUBECONFIG_PATH = "/etc/rancher/k3s/k3s.yaml";

/** k3s writes its kubeconfig for 127.0.0.1; point it at an address the certificate covers. */
export function rewriteKubeconfigServer(kubeconfig: string, server: string): string {
    const document = parseYaml(kubeconfig) as { clusters?: { cluster?: { server?: string } }[] } | null;
    if (!document || !Array.isArray(document.clusters) || document.clusters.length === 0) {
        throw new Error(`${KUBECONFIG_PATH} on the genesis is not a kubeconfig with a cluster`);
    }
    for (const entry of document.clusters) {
        if (entry.cluster) {
            entry.cluster.server = server;
        }
    }
    return stringifyYaml(document);
}

function resourceName(object: K8sObject): string {
    return [object.kind, object.metadata.namespace, object.metadata.name].filter(Boolean).join("-").toLowerCase();
}

export class ClusterEdge extends pulumi.ComponentResource {
    public readonly provider: k8s.Provider;
    /** Names of the objects applied, `<kind>-<namespace>-<name>`. */
    public readonly objectNames: string[];

    constructor(name: string, args: ClusterEdgeArgs, opts?: pulumi.ComponentResourceOptions) {
        super("shortcircuit:edge:ClusterEdge", name, {}, opts);
        const { plan } = args;
        const kubeconfig = remoteStep(`${name}-kubeconfig`, this, {
            connection: args.genesisConnection,
            script: "edge/read-kubeconfig.sh",
            stdin: plan.readKubeconfigPayload,
            // Only the genesis's identity: a config change on a node never replaces the provider.
            triggers: [args.genesisConnection.ssh.host, plan.serverUrl],
            secretOutput: true,
            after: args.after,
        });
        this.provider = new k8s.Provider(
            `${name}-provider`,
            { kubeconfig: pulumi.secret(kubeconfig.stdout.apply((text) => rewriteKubeconfigServer(text, plan.serverUrl))), enableServerSideApply: true },
            { parent: this },
        );
        const withProvider = (extra: pulumi.CustomResourceOptions = {}): pulumi.CustomResourceOptions => ({ parent: this, provider: this.provider, ...extra });

        // Namespaces are shared with other tooling: created when missing, never deleted.
        const namespaces = plan.namespaces.map(
            (namespace) => new k8s.core.v1.Namespace(`${name}-ns-${namespace}`, { metadata: { name: namespace } }, withProvider({ retainOnDelete: true })),
        );

        const traefik = new k8s.apiextensions.CustomResource(`${name}-${resourceName(plan.traefik)}`, plan.traefik, withProvider());
        this.objectNames = [resourceName(plan.traefik)];
        for (const object of plan.objects) {
            const resource = `${name}-${resourceName(object)}`;
            this.objectNames.push(resourceName(object));
            // Middlewares (and the rest) follow the Traefik config, so a chart change that wipes
            // them is followed by their re-creation in the same run.
            const after = withProvider({ dependsOn: [traefik, ...namespaces] });
            switch (object.kind) {
                case "Middleware":
                    new k8s.apiextensions.CustomResource(resource, object, after);
                    break;
                case "Service":
                    new k8s.core.v1.Service(resource, object, after);
                    break;
                case "EndpointSlice":
                    new k8s.discovery.v1.EndpointSlice(resource, object, after);
                    break;
                case "Deployment":
                    new k8s.apps.v1.Deployment(resource, object, after);
                    break;
                case "DaemonSet":
                    new k8s.apps.v1.DaemonSet(resource, object, after);
                    break;
                case "StatefulSet":
                    new k8s.apps.v1.StatefulSet(resource, object, after);
                    break;
                default:
                    assertNever(object);
            }
        }
        // ServiceLB allow-list mode: only labelled nodes run klipper-lb pods.
        for (const node of plan.serviceLbNodes) {
            new k8s.core.v1.NodePatch(`${name}-enablelb-${node}`, { metadata: { name: node, labels: { [SERVICELB_ENABLE_LABEL]: "true" } } }, withProvider());
        }
        this.registerOutputs({ objectNames: this.objectNames });
    }
}
