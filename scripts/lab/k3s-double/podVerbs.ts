/**
 * kubectl on pods, as the rollout's own drain (components/k3s/self-drain.sh) uses it: `get pods`
 * (all, or one node's by `--field-selector spec.nodeName=`) and an eviction through
 * `create --raw /api/v1/namespaces/NS/pods/NAME/eviction -f -`. `self` is the node whose kubelet
 * credentials make the call (an agent's), or null for the admin; what a node may not do is
 * refused as the real API server refuses it (test/scripts/lab/stack/apiServer.lab.test.ts).
 */
import * as fs from "node:fs";
import * as YAML from "yaml";
import { jsonpath } from "./jsonpath";
import { allNodes, getNode, saveNode } from "./nodes";
import { podObject, podsOn, type LabPod } from "./pods";
import type { DoubleHostConfig } from "./types";
import { fail, out, say, unsupported, withLock } from "./util";

function allPods(host: DoubleHostConfig): LabPod[] {
    return allNodes(host).flatMap(podsOn);
}

/** `--field-selector spec.nodeName=NAME`, the one selector simulated; undefined without one. */
function nodeSelector(flags: Map<string, string>): string | undefined {
    const selector = flags.get("--field-selector");
    if (selector === undefined) return undefined;
    const match = /^spec\.nodeName=([^,]*)$/.exec(selector);
    if (!match) unsupported(`kubectl --field-selector ${JSON.stringify(selector)} (only spec.nodeName=NAME is simulated)`);
    return match[1] ?? "";
}

export function kubectlGetPods(host: DoubleHostConfig, flags: Map<string, string>, self: string | null): number {
    const allNamespaces = flags.get("--all-namespaces") === "true" || flags.get("-A") === "true";
    const namespace = flags.get("-n");
    if (!allNamespaces && namespace === undefined) unsupported("kubectl get pods in the kubeconfig's default namespace (pass -A or -n)");
    const onNode = nodeSelector(flags);
    if (self !== null && onNode !== self) {
        // The Node authorizer lets a node list only the pods bound to it, by this very selector.
        fail(
            1,
            `Error from server (Forbidden): pods is forbidden: User "system:node:${self}" cannot list resource "pods" in API group "" ${
                allNamespaces ? "at the cluster scope" : `in the namespace "${namespace ?? ""}"`
            }: can only list/watch pods with spec.nodeName field selector`,
        );
    }
    const pods = allPods(host).filter((pod) => (onNode === undefined || pod.nodeName === onNode) && (allNamespaces || pod.namespace === namespace));
    const list = { apiVersion: "v1", kind: "List", items: pods.map(podObject), metadata: { resourceVersion: "" } };
    const output = flags.get("-o") ?? "";
    if (output === "json") say(JSON.stringify(list, null, 4));
    else if (output === "yaml") say(YAML.stringify(list).trimEnd());
    else if (output === "name") for (const pod of pods) say(`pod/${pod.name}`);
    else if (output.startsWith("jsonpath=")) {
        const text = jsonpath(output.slice("jsonpath=".length), list);
        if (text !== "") out.push(text);
    } else unsupported(`kubectl get pods -o ${JSON.stringify(output)}`);
    return 0;
}

const EVICTION_PATH = /^\/api\/v1\/namespaces\/([a-z0-9-]+)\/pods\/([a-z0-9.-]+)\/eviction$/;

/** Whether `create --raw PATH` is an eviction (the only raw create simulated). */
export function isEviction(rawPath: string): boolean {
    return EVICTION_PATH.test(rawPath);
}

/**
 * An eviction, as the API answers it: 201 with a Success status, NotFound for a pod that is not
 * there, 429 while a disruption budget allows none, Forbidden for a node evicting a pod bound to
 * another node. The Eviction object comes on stdin (`-f -`) and must name the pod.
 */
export function kubectlEviction(host: DoubleHostConfig, rawPath: string, flags: Map<string, string>, self: string | null): number {
    const match = EVICTION_PATH.exec(rawPath);
    if (!match) return unsupported(`kubectl create --raw ${JSON.stringify(rawPath)} (only pod evictions are simulated)`);
    const [, namespace = "", name = ""] = match;
    if (flags.get("-f") !== "-") unsupported("kubectl create --raw without -f - (the Eviction on stdin)");
    let body: { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
    try {
        body = JSON.parse(fs.readFileSync(0, "utf8")) as typeof body;
    } catch (error) {
        return fail(1, `error: the Eviction on stdin is not JSON (k3s-test-double): ${(error as Error).message}`);
    }
    if (body.kind !== "Eviction" || body.metadata?.name !== name || body.metadata.namespace !== namespace) {
        fail(1, `Error from server (BadRequest): name in URL does not match name in Eviction object`);
    }
    withLock(host.clusterDir, () => {
        const pod = allPods(host).find((each) => each.namespace === namespace && each.name === name);
        if (!pod) fail(1, `Error from server (NotFound): pods "${name}" not found`);
        if (self !== null && pod.nodeName !== self) {
            fail(1, `Error from server (Forbidden): pods "${name}" is forbidden: node ${self} can only evict pods with spec.nodeName set to itself`);
        }
        if (pod.budgetBlocked) fail(1, "Error from server (TooManyRequests): Cannot evict pod as it would violate the pod's disruption budget.");
        // A DaemonSet's pod is recreated on the spot; a ReplicaSet's stays away while the node is cordoned.
        if (pod.controllerKind !== "DaemonSet") {
            const rec = getNode(host, pod.nodeName);
            rec.evictedPods = [...(rec.evictedPods ?? []), `${namespace}/${name}`];
            saveNode(host, rec);
        }
    });
    out.push(JSON.stringify({ kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", code: 201 }));
    return 0;
}
