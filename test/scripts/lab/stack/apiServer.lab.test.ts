/**
 * The lab's real API server (scripts/lab/stack/apiServer.ts: kube-apiserver v1.33 built from the
 * module proxy, Debian's etcd) authorizes and admits as k3s's own does (Node,RBAC and
 * NodeRestriction). These are the facts a rollout would rely on if a K3s node drained and
 * uncordoned itself inside its own step, with only its kubelet's credentials (one SSH session a
 * node instead of three; docs/development.md, "The K3s rollout's overhead per node"):
 * - a node may cordon itself and patch its own Node object (the rollout's uncordon patch as
 *   components/k3s/rollout.ts builds it), but not another node, and not its own taints;
 * - it may list the pods bound to it and evict them, but not a pod bound to another node, and an
 *   eviction a disruption budget forbids is refused with 429 (a drain must retry, not fail);
 * - it may not read DaemonSets, so `kubectl drain` itself fails under its credentials as soon as a
 *   DaemonSet's pod runs on the node (ServiceLB's svclb pods do on every K3s node).
 * Needs the Go-built kube-apiserver and kubectl (scripts/setup.sh) and etcd-server.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CONFIG_ANNOTATION, FLANNEL_PUBLIC_IP_ANNOTATION, FLANNEL_PUBLIC_IP_OVERWRITE_ANNOTATION, uncordonPatch } from "../../../../components/k3s/rollout";
import { startApiServer, type ApiServer } from "../../../../scripts/lab/stack/apiServer";
import { loadEngine } from "../../../../scripts/lab/stack/engine";

jest.setTimeout(180_000);

const OWN = "lab-agent-01";
const OTHER = "lab-agent-02";
const NS = "apps";

let api: ApiServer;
let dir: string;
let ownKubeconfig: string;

type Kubectl = ReturnType<ApiServer["kubectl"]>;
const admin = (args: string[], stdin?: string): Kubectl => api.kubectl(args, { check: true, ...(stdin !== undefined ? { stdin } : {}) });
const asNode = (args: string[], stdin?: string): Kubectl => api.kubectl(args, { kubeconfig: ownKubeconfig, ...(stdin !== undefined ? { stdin } : {}) });
const create = (object: object): string => admin(["create", "-o", "jsonpath={.metadata.uid}", "-f", "-"], JSON.stringify(object)).stdout;
const pod = (name: string, nodeName: string, owner: object, labels?: Record<string, string>): object => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NS, ownerReferences: [owner], ...(labels ? { labels } : {}) },
    spec: { nodeName, automountServiceAccountToken: false, containers: [{ name: "main", image: "registry.invalid/lab:1" }] },
});
// A ReplicaSet's pods as drain sees them: it reads a DaemonSet owner, never a ReplicaSet.
const replicaSet = { apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-5d4f8", uid: "7d6f9c1e-0b1a-4c55-9a57-3f1c2b9e0a11", controller: true };
// No kubelet runs here: the admin reports each pod running and ready, as a kubelet would, so the
// eviction API weighs disruption budgets (it deletes a pending pod without asking them).
const markRunning = (name: string): void => {
    const status = { status: { phase: "Running", conditions: [{ type: "Ready", status: "True" }] } };
    admin(["patch", "pod", name, "-n", NS, "--subresource=status", "--type", "merge", "-p", JSON.stringify(status)]);
};
const evict = (name: string): Kubectl =>
    asNode(
        ["create", "--raw", `/api/v1/namespaces/${NS}/pods/${name}/eviction`, "-f", "-"],
        JSON.stringify({ apiVersion: "policy/v1", kind: "Eviction", metadata: { name, namespace: NS } }),
    );
const failure = (result: Kubectl): { code: number; stderr: string } => ({ code: result.code === 0 ? 0 : 1, stderr: result.stderr });

beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sc-apiserver-"));
    api = await startApiServer({ dir, address: "127.0.0.1", kubeBin: loadEngine().kubeBin, serviceCidr: "10.43.0.0/16" });
    for (const name of [OWN, OTHER]) create({ apiVersion: "v1", kind: "Node", metadata: { name } });
    create({ apiVersion: "v1", kind: "Namespace", metadata: { name: NS } });
    // No controller manager runs here, so the namespace's default service account is made by hand.
    create({ apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "default", namespace: NS } });
    const daemonSetUid = create({
        apiVersion: "apps/v1",
        kind: "DaemonSet",
        metadata: { name: "svclb", namespace: NS },
        spec: {
            selector: { matchLabels: { app: "svclb" } },
            template: { metadata: { labels: { app: "svclb" } }, spec: { containers: [{ name: "lb", image: "registry.invalid/lb:1" }] } },
        },
    });
    create(pod("svclb-own", OWN, { apiVersion: "apps/v1", kind: "DaemonSet", name: "svclb", uid: daemonSetUid, controller: true }));
    create(pod("web-own", OWN, replicaSet));
    create(pod("web-other", OTHER, replicaSet));
    create(pod("guarded-own", OWN, replicaSet, { app: "guarded" }));
    for (const name of ["svclb-own", "web-own", "web-other", "guarded-own"]) markRunning(name);
    create({
        apiVersion: "policy/v1",
        kind: "PodDisruptionBudget",
        metadata: { name: "guarded", namespace: NS },
        spec: { minAvailable: 1, selector: { matchLabels: { app: "guarded" } } },
    });
    // The budget as the disruption controller (not running here) would leave it: processed, its one
    // pod healthy, no disruption allowed. Unprocessed, the API answers 429 with a retry time that
    // kubectl's client spends waiting inside one request instead.
    const processed = { status: { observedGeneration: 1, disruptionsAllowed: 0, currentHealthy: 1, desiredHealthy: 1, expectedPods: 1 } };
    admin(["patch", "pdb", "guarded", "-n", NS, "--subresource=status", "--type", "merge", "-p", JSON.stringify(processed)]);
    ownKubeconfig = api.nodeKubeconfig(OWN);
});

afterAll(async () => {
    await api?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe("a K3s node's own kubelet credentials on the lab's API server", () => {
    it("are the node's identity under the Node authorizer", () => {
        const whoami = JSON.parse(asNode(["auth", "whoami", "-o", "json"]).stdout) as { status: { userInfo: { username: string; groups: string[] } } };
        expect(whoami.status.userInfo.username).toBe(`system:node:${OWN}`);
        expect(whoami.status.userInfo.groups).toContain("system:nodes");
    });

    it("cordon the node itself and patch its own Node object with the rollout's uncordon patch", () => {
        expect(asNode(["annotate", "node", OWN, `${FLANNEL_PUBLIC_IP_OVERWRITE_ANNOTATION}=192.0.2.7`])).toMatchObject({ code: 0 });
        expect(asNode(["cordon", OWN])).toMatchObject({ code: 0 });
        expect(admin(["get", "node", OWN, "-o", "jsonpath={.spec.unschedulable}"]).stdout).toBe("true");
        const patch = JSON.stringify(uncordonPatch("10.67.2.11", "a".repeat(64), { uncordon: true }));
        expect(asNode(["patch", "node", OWN, "--type", "merge", "-p", patch])).toMatchObject({ code: 0 });
        const node = JSON.parse(admin(["get", "node", OWN, "-o", "json"]).stdout) as {
            spec: { unschedulable?: boolean };
            metadata: { annotations: Record<string, string> };
        };
        expect(node.spec.unschedulable).toBeUndefined();
        expect(node.metadata.annotations[FLANNEL_PUBLIC_IP_ANNOTATION]).toBe("10.67.2.11");
        expect(node.metadata.annotations[CONFIG_ANNOTATION]).toBe("a".repeat(64));
        expect(node.metadata.annotations[FLANNEL_PUBLIC_IP_OVERWRITE_ANNOTATION]).toBeUndefined();
    });

    it("read only the node's own Node object (Kubernetes 1.33's Node authorizer)", () => {
        expect(asNode(["get", "node", OWN, "-o", "name"])).toMatchObject({ code: 0, stdout: `node/${OWN}\n` });
        const onlyOwn = `node '${OWN}' cannot read '${OTHER}', only its own Node object`;
        expect(failure(asNode(["get", "node", OTHER]))).toEqual({ code: 1, stderr: expect.stringContaining(onlyOwn) as unknown });
        expect(failure(asNode(["get", "nodes"]))).toEqual({
            code: 1,
            stderr: expect.stringContaining(`node '${OWN}' cannot read all nodes, only its own Node object`) as unknown,
        });
        // A watch of its own node (what `kubectl wait` makes) passes: it lists by name.
        expect(asNode(["wait", "--for=jsonpath={.metadata.name}=" + OWN, `node/${OWN}`, "--timeout=10s"])).toMatchObject({ code: 0 });
    });

    it("may not cordon another node (it may not even read it), nor change the node's own taints", () => {
        expect(failure(asNode(["cordon", OTHER]))).toEqual({
            code: 1,
            stderr: expect.stringContaining(`node '${OWN}' cannot read '${OTHER}', only its own Node object`) as unknown,
        });
        expect(failure(asNode(["taint", "node", OWN, "shortcircuit=rollout:NoSchedule"]))).toEqual({
            code: 1,
            stderr: expect.stringContaining(`node "${OWN}" is not allowed to modify taints`) as unknown,
        });
        expect(admin(["get", "node", OTHER, "-o", "jsonpath={.spec.unschedulable}"]).stdout).toBe("");
    });

    it("list the pods bound to the node, and evict them, but not a pod bound to another node", () => {
        const listed = asNode(["get", "pods", "-A", "--field-selector", `spec.nodeName=${OWN}`, "-o", "name"]);
        expect(listed.code).toBe(0);
        expect(listed.stdout.trim().split("\n").sort()).toEqual(["pod/guarded-own", "pod/svclb-own", "pod/web-own"]);

        expect(evict("web-own")).toMatchObject({ code: 0 });
        // No kubelet confirms the deletion here, so the evicted pod stays, terminating.
        expect(admin(["get", "pod", "-n", NS, "web-own", "-o", "jsonpath={.metadata.deletionTimestamp}"]).stdout).not.toBe("");

        expect(failure(evict("web-other"))).toEqual({
            code: 1,
            stderr: expect.stringContaining(`node ${OWN} can only evict pods with spec.nodeName set to itself`) as unknown,
        });
        expect(admin(["get", "pod", "-n", NS, "web-other", "-o", "jsonpath={.metadata.deletionTimestamp}"]).stdout).toBe("");
    });

    it("are refused with 429 where a disruption budget forbids the eviction", () => {
        const refused = evict("guarded-own");
        expect(failure(refused)).toEqual({
            code: 1,
            stderr: "Error from server (TooManyRequests): Cannot evict pod as it would violate the pod's disruption budget.\n",
        });
        expect(admin(["get", "pod", "-n", NS, "guarded-own", "-o", "jsonpath={.metadata.deletionTimestamp}"]).stdout).toBe("");
    });

    it("cannot run `kubectl drain` on a node with a DaemonSet's pod: drain reads the DaemonSet, which a node may not", () => {
        const drained = asNode(["drain", OWN, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=10s"]);
        expect(drained.code).not.toBe(0);
        expect(drained.stderr).toContain(`daemonsets.apps "svclb" is forbidden: User "system:node:${OWN}" cannot get resource "daemonsets"`);
    });

    it("as the admin instead, drain retries an eviction the budget forbids every 5 s and fails at its timeout (the k3s double's evictionBlocked cue)", () => {
        // Only the guarded pod is left to evict: the one evicted above is gone as a kubelet would confirm it.
        admin(["delete", "pod", "web-own", "-n", NS, "--grace-period=0", "--force"]);
        const drained = api.kubectl(["drain", OWN, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=6s"]);
        const error = `error when evicting pods/"guarded-own" -n "${NS}": global timeout reached: 6s`;
        expect({ code: drained.code, stdout: drained.stdout }).toEqual({
            code: 1,
            stdout: expect.stringContaining(`evicting pod ${NS}/guarded-own\n`) as unknown,
        });
        expect(drained.stderr).toContain(`Warning: ignoring DaemonSet-managed Pods: ${NS}/svclb-own\n`);
        expect(drained.stderr).toContain(
            `error when evicting pods/"guarded-own" -n "${NS}" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.\n`,
        );
        expect(drained.stderr).toContain(`There are pending pods in node "${OWN}" when an error occurred: ${error}\npod/guarded-own\n`);
        expect(drained.stderr).toContain(
            `error: unable to drain node "${OWN}" due to error: ${error}, continuing command...\nThere are pending nodes to be drained:\n ${OWN}\n${error}\n`,
        );
    });
});
