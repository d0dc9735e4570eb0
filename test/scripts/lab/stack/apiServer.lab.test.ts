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
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
    CONFIG_ANNOTATION,
    CORDON_PATCH,
    FLANNEL_PUBLIC_IP_ANNOTATION,
    FLANNEL_PUBLIC_IP_OVERWRITE_ANNOTATION,
    NODE_STATE_JSONPATH,
    ROLLOUT_CORDON_ANNOTATION,
    uncordonPatch,
} from "../../../../components/k3s/rollout";
import { scriptFile } from "../../../../components/remote/scripts";
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
const pod = (name: string, nodeName: string, owner: object | null, labels?: Record<string, string>): object => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NS, ...(owner ? { ownerReferences: [owner] } : {}), ...(labels ? { labels } : {}) },
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
        // Only by its own spec.nodeName (the k3s double refuses the others in these words).
        for (const selector of [[], ["--field-selector", `spec.nodeName=${OTHER}`]]) {
            expect(failure(asNode(["get", "pods", "-A", ...selector, "-o", "name"]))).toEqual({
                code: 1,
                stderr: `Error from server (Forbidden): pods is forbidden: User "system:node:${OWN}" cannot list resource "pods" in API group "" at the cluster scope: can only list/watch pods with spec.nodeName field selector\n`,
            });
        }

        expect(evict("web-own")).toMatchObject({ code: 0 });
        // No kubelet confirms the deletion here, so the evicted pod stays, terminating.
        expect(admin(["get", "pod", "-n", NS, "web-own", "-o", "jsonpath={.metadata.deletionTimestamp}"]).stdout).not.toBe("");
        // Evicting it again while it terminates (a drain run again) is not an error.
        expect(evict("web-own")).toMatchObject({ code: 0 });

        expect(failure(evict("web-other"))).toEqual({
            code: 1,
            stderr: `Error from server (Forbidden): pods "web-other" is forbidden: node ${OWN} can only evict pods with spec.nodeName set to itself\n`,
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

/*
 * The rollout's own drain (components/k3s/self-drain.sh), run alone against the real API server
 * under a node's kubelet credentials, as a K3s agent's apply step runs it: `k3s kubectl` is the
 * real kubectl, and k3s counts as running (systemctl is-active answers yes).
 */
describe("self-drain.sh's functions under a node's own credentials on the real API server", () => {
    const SELF = "lab-agent-03";
    let selfKubeconfig: string;

    beforeAll(() => {
        create({ apiVersion: "v1", kind: "Node", metadata: { name: SELF } });
        selfKubeconfig = api.nodeKubeconfig(SELF);
    });

    /** Runs `body` after the library, as the apply step would, and waits for it (bounded). */
    const run = (body: string, drainTimeout: number): Promise<{ code: number | null; stdout: string; stderr: string }> => {
        const script = [
            "set -euo pipefail",
            'log() { echo "rollout $node: $*"; }',
            "systemctl() { return 0; }",
            // `k3s kubectl …` is the real kubectl here.
            'k3s() { shift; "$KUBECTL" "$@"; }',
            scriptFile("k3s/self-drain.sh"),
            body,
        ].join("\n");
        const env = {
            PATH: process.env.PATH ?? "/usr/bin:/bin",
            // kubectl keeps its discovery cache under $HOME/.kube: the test's own directory, not the checkout.
            HOME: dir,
            KUBECTL: path.join(loadEngine().kubeBin, "kubectl"),
            node: SELF,
            unit: "k3s-agent",
            kubeconfig: selfKubeconfig,
            drain_timeout: String(drainTimeout),
            node_state_jsonpath: NODE_STATE_JSONPATH,
            cordon_patch: JSON.stringify(CORDON_PATCH),
            uncordon_patch: JSON.stringify(uncordonPatch("10.67.2.13", "b".repeat(64), { uncordon: true })),
            keep_cordon_patch: JSON.stringify(uncordonPatch("10.67.2.13", "b".repeat(64), { uncordon: false })),
        };
        return new Promise((resolve, reject) => {
            const child = spawn("bash", ["-c", script], { env, stdio: ["ignore", "pipe", "pipe"] });
            let stdout = "";
            let stderr = "";
            child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
            child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
            const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
            child.on("error", reject);
            child.on("close", (code) => {
                clearTimeout(timer);
                resolve({ code, stdout, stderr });
            });
        });
    };
    const selfNode = (): { unschedulable?: boolean; annotation?: string } => {
        const node = JSON.parse(admin(["get", "node", SELF, "-o", "json"]).stdout) as {
            spec: { unschedulable?: boolean };
            metadata: { annotations?: Record<string, string> };
        };
        return { unschedulable: node.spec.unschedulable, annotation: node.metadata.annotations?.[ROLLOUT_CORDON_ANNOTATION] };
    };
    const terminating = (name: string): boolean =>
        admin(["get", "pod", name, "-n", NS, "--ignore-not-found", "-o", "jsonpath={.metadata.deletionTimestamp}"]).stdout !== "";

    it("refuses a pod no controller owns, after its cordon (as drain does without --force), and evicts nothing", async () => {
        const svclbUid = admin(["get", "daemonset", "svclb", "-n", NS, "-o", "jsonpath={.metadata.uid}"]).stdout;
        create(pod("svclb-self", SELF, { apiVersion: "apps/v1", kind: "DaemonSet", name: "svclb", uid: svclbUid, controller: true }));
        create(pod("web-self", SELF, replicaSet));
        create(pod("bare-self", SELF, null));
        for (const name of ["svclb-self", "web-self", "bare-self"]) markRunning(name);
        const refused = await run("drain_self", 20);
        expect({ code: refused.code, stdout: refused.stdout }).toEqual({ code: 1, stdout: `rollout ${SELF}: cordoned\n` });
        expect(refused.stderr).toBe(
            `rollout ${SELF} failed: pods no controller would recreate run on it: ${NS}/bare-self; move or delete them (kubectl drain would need --force). This run wrote and restarted nothing; the node stays cordoned, and the rollout stops here.\n`,
        );
        expect(selfNode()).toEqual({ unschedulable: true, annotation: "true" });
        expect(terminating("web-self")).toBe(false);
        admin(["delete", "pod", "bare-self", "-n", NS, "--grace-period=0", "--force"]);
    });

    it("retries an eviction a disruption budget refuses (429) every 5 s and fails at the drain timeout", async () => {
        create(pod("guarded-self", SELF, replicaSet, { app: "guarded" }));
        markRunning("guarded-self");
        const blocked = await run("drain_self", 6);
        expect(blocked.code).toBe(1);
        const budget = "Cannot evict pod as it would violate the pod's disruption budget.";
        // Resumed: the cordon is the rollout's own (its annotation), so nothing is said of it. The
        // guarded pod comes first in the list (by name), so nothing else was evicted.
        const retry = `rollout ${SELF}: pod ${NS}/guarded-self may not be evicted now (${budget}); retrying in 5s\n`;
        // How many attempts fit in the timeout depends on the clock (one every 5 s): at least one retry.
        expect(blocked.stdout.replaceAll(retry, "")).toBe("");
        expect(blocked.stdout.length).toBeGreaterThanOrEqual(retry.length);
        expect(blocked.stderr).toBe(
            `rollout ${SELF} failed: the drain timed out after 6s: pod ${NS}/guarded-self may not be evicted now (${budget}). This run wrote and restarted nothing; the node stays cordoned, and the rollout stops here.\n`,
        );
        expect(terminating("guarded-self")).toBe(false);
        admin(["delete", "pod", "guarded-self", "-n", NS, "--grace-period=0", "--force"]);
    });

    it("leaves the DaemonSet's pod, waits until the evicted pods are gone, and lifts only its own cordon", async () => {
        // No kubelet confirms a deletion here: an evicted pod stays terminating until the admin
        // removes it, as a kubelet would once its containers stopped. The drain waits for that.
        create(pod("web2-self", SELF, replicaSet));
        markRunning("web2-self");
        const drained = run("drain_self", 60);
        const evicted = (): boolean => terminating("web-self") && terminating("web2-self");
        for (let poll = 0; poll < 600 && !evicted(); poll++) await new Promise((resolve) => setTimeout(resolve, 100));
        expect(evicted()).toBe(true);
        for (const name of ["web-self", "web2-self"]) admin(["delete", "pod", name, "-n", NS, "--grace-period=0", "--force"]);
        const result = await drained;
        expect(result).toEqual({
            code: 0,
            stdout: [`rollout ${SELF}: evicted pod ${NS}/web-self`, `rollout ${SELF}: evicted pod ${NS}/web2-self`, `rollout ${SELF}: drained`, ""].join("\n"),
            stderr: "",
        });
        expect(terminating("svclb-self")).toBe(false);
        expect(selfNode()).toEqual({ unschedulable: true, annotation: "true" });

        const finished = await run("finish_node", 60);
        expect(finished).toEqual({ code: 0, stdout: `rollout ${SELF}: uncordoned\n`, stderr: "" });
        expect(selfNode()).toEqual({ unschedulable: undefined, annotation: undefined });
        expect(admin(["get", "node", SELF, "-o", `jsonpath={.metadata.annotations.${CONFIG_ANNOTATION.replace(/\./g, "\\.")}}`]).stdout).toBe("b".repeat(64));

        // Cordoned by an operator: drained, and the cordon stays.
        admin(["cordon", SELF]);
        const operator = await run("drain_self && finish_node", 60);
        expect(operator).toEqual({
            code: 0,
            stdout: [
                `rollout ${SELF}: already cordoned, not by a rollout: it stays cordoned after this one`,
                `rollout ${SELF}: drained`,
                `rollout ${SELF}: left cordoned: it was cordoned before its rollout, not by it (kubectl uncordon ${SELF} to schedule on it again)`,
                "",
            ].join("\n"),
            stderr: "",
        });
        expect(selfNode()).toEqual({ unschedulable: true, annotation: undefined });
    });
});
