import * as fs from "node:fs";
import { CONFIG_ANNOTATION, ROLLOUT_CORDON_ANNOTATION, SAN_DROPIN_PATH, nodeRolloutPayloads, type NodeRolloutPayloads } from "../../../components/k3s/rollout";
import type { K3sNodeConfig } from "../../../stacks/fleet";
import { parseFleet } from "../../../stacks/validate";
import { checkLabPrerequisites, startLabFleet, type K3sBehaviour, type LabFleet } from "../../../scripts/lab";
import { EngineEmulator, orderedCommands, type UpResult } from "../../support/rolloutDriver";
import { runProgramUnderMocks } from "../../support/pulumiMocks";
import { labStackOnBridge } from "../../support/labStack";
import type { Raw } from "../../support/fixtures";

/*
 * The K3s rollout on a lab fleet of test hosts: network namespaces running sshd, each with
 * its own /etc/rancher and the k3s TEST DOUBLE (scripts/lab/k3s-double). The program runs
 * under mocks to produce its commands; their exact scripts and stdin then run over real SSH,
 * in the engine's order and with its skip-if-unchanged and stop-at-first-failure semantics.
 * Each node drains and uncordons itself inside its apply step (components/k3s/self-drain.sh),
 * an agent with its kubelet's credentials, which the double restricts as the real API server does.
 */

jest.setTimeout(180000);

const BRIDGE_PREFIX = "198.18.91";
const READY_TIMEOUT_SECONDS = 6;
const SERVER = "lab-server-01";
const AGENT_1 = "lab-agent-01";
const AGENT_2 = "lab-agent-02";

let fleet: LabFleet;
let engine: EngineEmulator;
let config: Raw;

async function up(): Promise<UpResult> {
    const run = await runProgramUnderMocks({ stack: "lab" }, config);
    if (run.error) {
        throw run.error instanceof Error ? run.error : new Error(JSON.stringify(run.error));
    }
    return engine.up(orderedCommands(run.recorder, "k3s-"));
}

const ranNames = (result: UpResult): string[] => result.ran.map((step) => step.name);
const restarts = (host: string): number => fleet.k3sState(host)?.history.filter((entry) => entry.action !== "stop").length ?? 0;
const onDisk = (host: string, file = "/etc/rancher/k3s/config.yaml"): string => fs.readFileSync(fleet.hostPath(host, file), "utf8");
/** What the plan sends the node now: its config.yaml and that file's hash among it. */
const wanted = (name: string): NodeRolloutPayloads => {
    const parsed = parseFleet(config).fleet;
    return nodeRolloutPayloads(parsed, parsed.nodes.find((node) => node.name === name) as K3sNodeConfig);
};
const rendered = (name: string): string => wanted(name).configYaml;
const clusterNode = (name: string) => fleet.clusterNodes().find((node) => node.name === name);
const stepStdout = (result: UpResult, node: string, step: string): string =>
    result.ran.find((each) => each.name === `k3s-${node}-${step}`)?.result.stdout ?? "";
const steps = (node: string): string[] => ["prepare", "apply"].map((step) => `k3s-${node}-${step}`);
/** The rollout's own cordon: the node unschedulable with the rollout's annotation. */
const cordonedByRollout = (name: string): { unschedulable: boolean | undefined; annotation: string | undefined } => ({
    unschedulable: clusterNode(name)?.unschedulable,
    annotation: clusterNode(name)?.annotations[ROLLOUT_CORDON_ANNOTATION],
});
/** kubectl calls the double saw on a host, as argument lists. */
const kubectlCalls = (host: string): string[][] =>
    fleet
        .k3sInvocations(host)
        .filter((call) => call.argv[0] === "kubectl")
        .map((call) => call.argv);
/** The pods the API lists on a node (as the admin, on the server). */
const podsOn = async (node: string): Promise<string[]> => {
    const listed = await fleet.ssh(SERVER, `k3s kubectl get pods -A --field-selector spec.nodeName=${node} -o name`);
    expect(listed.code).toBe(0);
    return listed.stdout.trim().split("\n").sort();
};
/**
 * A rollout stopped at AGENT_1: left cordoned by the rollout, and AGENT_2 untouched (its
 * pre-flight may have run beside AGENT_1's rollout; nothing after it did).
 */
function expectRolloutStoppedAtAgent1(result: UpResult, agent2: { config: string; restarts: number }): void {
    expect(cordonedByRollout(AGENT_1)).toEqual({ unschedulable: true, annotation: "true" });
    expect(ranNames(result).filter((name) => name.startsWith(`k3s-${AGENT_2}`) && name !== `k3s-${AGENT_2}-prepare`)).toEqual([]);
    expect(onDisk(AGENT_2)).toBe(agent2.config);
    expect(restarts(AGENT_2)).toBe(agent2.restarts);
}

/**
 * A drain AGENT_1 cannot finish while `cue` holds: with both agents' configs changed, the run fails
 * at AGENT_1's apply (`expectFailure` checks its words) with nothing written or restarted there and
 * the rollout stopped; once the cue is lifted, the next up rolls both and lifts the rollout's cordon.
 */
async function expectDrainStopsAtAgent1(cue: K3sBehaviour, zone: string, expectFailure: (result: UpResult) => void | Promise<void>): Promise<void> {
    await fleet.setK3sBehaviour(AGENT_1, cue);
    const previous = onDisk(AGENT_1);
    const agent1Restarts = restarts(AGENT_1);
    const agent2 = { config: onDisk(AGENT_2), restarts: restarts(AGENT_2) };
    config.nodes[1].labels = { ...config.nodes[1].labels, "example.com/zone": zone };
    config.nodes[2].labels = { "example.com/role": `after-zone-${zone}` };
    try {
        const result = await up();
        expect(result.failed?.name).toBe(`k3s-${AGENT_1}-apply`);
        await expectFailure(result);
        expect(onDisk(AGENT_1)).toBe(previous);
        expect(restarts(AGENT_1)).toBe(agent1Restarts);
        expectRolloutStoppedAtAgent1(result, agent2);
    } finally {
        await fleet.setK3sBehaviour(AGENT_1, Object.fromEntries(Object.keys(cue).map((key) => [key, false])));
    }
    const retry = await up();
    expect(retry.failed?.result.stderr).toBeUndefined();
    expect(onDisk(AGENT_1)).toContain(`example.com/zone=${zone}`);
    expect(restarts(AGENT_1)).toBe(agent1Restarts + 1);
    expect(onDisk(AGENT_2)).toContain(`example.com/role=after-zone-${zone}`);
    // The cordon the failed drain made is the rollout's (its annotation), so it is lifted now.
    expect(cordonedByRollout(AGENT_1)).toEqual({ unschedulable: false, annotation: undefined });
}

beforeAll(async () => {
    const missing = checkLabPrerequisites();
    if (missing.length > 0) {
        throw new Error(`the lab fleet needs: ${missing.join("; ")} (scripts/setup.sh installs them; CI runs as root)`);
    }
    const lab = labStackOnBridge(BRIDGE_PREFIX, READY_TIMEOUT_SECONDS);
    config = lab.config;
    fleet = await startLabFleet({ bridgeCidr: `${BRIDGE_PREFIX}.0/24`, hosts: lab.hosts });
    engine = new EngineEmulator(fleet);
});

afterAll(async () => {
    await fleet?.stop();
});

describe("K3s rollout on the lab fleet", () => {
    it("bootstraps the fleet: genesis first, every node configured, Ready, and holding the token", async () => {
        config.cluster.bootstrap = true;
        const result = await up();
        expect(result.failed?.result.stderr).toBeUndefined();
        // Every node's pre-flight first (they wait for no other node), then one node at a time.
        const preflights = [SERVER, AGENT_1, AGENT_2].map((node) => `k3s-${node}-prepare`);
        expect(ranNames(result).slice(0, 3).sort()).toEqual([...preflights].sort());
        expect(ranNames(result).slice(3)).toEqual([SERVER, AGENT_1, AGENT_2].map((node) => `k3s-${node}-apply`));
        // Nothing ran yet to drain: no node had k3s running.
        expect(stepStdout(result, SERVER, "apply")).toContain(`rollout ${SERVER}: k3s is not running: nothing runs on the node to drain`);
        for (const host of [SERVER, AGENT_1, AGENT_2]) {
            expect(onDisk(host)).toBe(rendered(host));
            expect(onDisk(host, "/etc/rancher/k3s/cluster-token")).toBe("K10-test-token\n");
            expect(fs.statSync(fleet.hostPath(host, "/etc/rancher/k3s/cluster-token")).mode & 0o777).toBe(0o600);
            expect(fleet.k3sState(host)?.status).toBe("active");
        }
        expect(
            fleet
                .clusterNodes()
                .map((node) => node.name)
                .sort(),
        ).toEqual([AGENT_1, AGENT_2, SERVER]);
        expect(stepStdout(result, AGENT_1, "apply")).toContain(`rollout ${AGENT_1}: restarted k3s-agent and healthy`);
    });

    it("runs nothing on a no-op rerun, and the apply script itself writes and restarts nothing", async () => {
        config.cluster.bootstrap = false;
        const before = [SERVER, AGENT_1, AGENT_2].map(restarts);
        const result = await up();
        expect(result.ran).toEqual([]);
        expect(result.skipped).toHaveLength(6);

        // Even if the engine did run it (state lost), an unchanged config is left alone.
        engine.forget(`k3s-${AGENT_1}-apply`);
        const forced = await up();
        expect(ranNames(forced)).toEqual([`k3s-${AGENT_1}-apply`]);
        expect(forced.ran[0].result.stdout).toContain("config.yaml unchanged; nothing written, nothing restarted");
        expect([SERVER, AGENT_1, AGENT_2].map(restarts)).toEqual(before);
    });

    it("cordons, drains and restarts nothing when every step re-runs with unchanged configs (a new SSH path)", async () => {
        const before = [SERVER, AGENT_1, AGENT_2].map(restarts);
        const callsBefore = [SERVER, AGENT_1, AGENT_2].map((node) => kubectlCalls(node).length);
        engine.forgetAll();
        const result = await up();
        expect(result.failed?.result.stderr).toBeUndefined();
        expect(result.ran).toHaveLength(6);
        [SERVER, AGENT_1, AGENT_2].forEach((node, index) => {
            expect(stepStdout(result, node, "apply")).toContain(`rollout ${node}: config.yaml unchanged; nothing written, nothing restarted`);
            const calls = kubectlCalls(node).slice(callsBefore[index]);
            // Gated on health and its annotations made current; nothing cordoned, nothing listed or evicted.
            expect(calls.filter((argv) => argv.includes("wait"))).not.toEqual([]);
            expect(calls.filter((argv) => argv.join(" ").includes('"unschedulable":true') || argv.includes("pods") || argv.includes("create"))).toEqual([]);
        });
        expect([SERVER, AGENT_1, AGENT_2].map(restarts)).toEqual(before);
    });

    it("changes only the node whose config changed: it drains itself, restarts once, and uncordons itself", async () => {
        const before = [SERVER, AGENT_1].map(restarts);
        const agent2Before = restarts(AGENT_2);
        await fleet.setK3sBehaviour(AGENT_2, { workloadPod: true });
        try {
            const web = `pod/web-${AGENT_2}`;
            expect(await podsOn(AGENT_2)).toEqual([`pod/svclb-traefik-${AGENT_2}`, web].sort());
            const serverCalls = kubectlCalls(SERVER).length;
            const agentCalls = kubectlCalls(AGENT_2).length;
            config.nodes[2].labels = { "example.com/role": "edge" };
            const result = await up();
            expect(result.failed).toBeUndefined();
            // Every step of that node runs, pre-flight included; no other node opens a session.
            expect(ranNames(result)).toEqual(steps(AGENT_2));
            expect([SERVER, AGENT_1].map(restarts)).toEqual(before);
            expect(restarts(AGENT_2)).toBe(agent2Before + 1);
            expect(onDisk(AGENT_2)).toContain("example.com/role=edge");
            const apply = stepStdout(result, AGENT_2, "apply");
            // The ReplicaSet's pod is evicted; ServiceLB's DaemonSet pod is left, as drain leaves it.
            expect(apply).toContain(`rollout ${AGENT_2}: cordoned\nrollout ${AGENT_2}: evicted pod lab-apps/web-${AGENT_2}\nrollout ${AGENT_2}: drained\n`);
            expect(apply).not.toContain("svclb");
            expect(apply).toContain(`rollout ${AGENT_2}: uncordoned\nrollout ${AGENT_2}: restarted k3s-agent and healthy\n`);
            // With its kubelet's credentials, on the node; no call reached the genesis.
            const calls = kubectlCalls(AGENT_2).slice(agentCalls);
            expect(calls.filter((argv) => argv.includes("create")).map((argv) => argv.find((word) => word.startsWith("/api/")))).toEqual([
                `/api/v1/namespaces/lab-apps/pods/web-${AGENT_2}/eviction`,
            ]);
            expect(calls.every((argv) => argv.includes("/var/lib/rancher/k3s/agent/kubelet.kubeconfig"))).toBe(true);
            expect(kubectlCalls(SERVER)).toHaveLength(serverCalls);
            expect(cordonedByRollout(AGENT_2)).toEqual({ unschedulable: false, annotation: undefined });
            // Schedulable again, the node gets its pod back.
            expect(await podsOn(AGENT_2)).toEqual([`pod/svclb-traefik-${AGENT_2}`, web].sort());
        } finally {
            await fleet.setK3sBehaviour(AGENT_2, { workloadPod: false });
        }
    });

    it("keeps a node an operator cordoned cordoned through its rollout and any rerun; uncordons only what the rollout cordoned", async () => {
        const kubectl = async (words: string): Promise<void> => {
            const result = await fleet.ssh(SERVER, `k3s kubectl ${words}`);
            expect({ words, code: result.code, stderr: result.stderr }).toEqual({ words, code: 0, stderr: "" });
        };
        // Cordoned by hand before a config change: drained, restarted onto the new config and
        // annotated, and still cordoned at the end.
        await kubectl(`cordon ${AGENT_2}`);
        const restartsBefore = restarts(AGENT_2);
        config.nodes[2].labels = { "example.com/role": "maintenance" };
        const changed = await up();
        expect(changed.failed).toBeUndefined();
        expect(ranNames(changed)).toEqual(steps(AGENT_2));
        expect(stepStdout(changed, AGENT_2, "apply")).toContain(`rollout ${AGENT_2}: already cordoned, not by a rollout: it stays cordoned after this one`);
        expect(stepStdout(changed, AGENT_2, "apply")).toContain(`rollout ${AGENT_2}: left cordoned: it was cordoned before its rollout, not by it`);
        expect(restarts(AGENT_2)).toBe(restartsBefore + 1);
        expect(onDisk(AGENT_2)).toContain("example.com/role=maintenance");
        expect(cordonedByRollout(AGENT_2)).toEqual({ unschedulable: true, annotation: undefined });
        expect(clusterNode(AGENT_2)?.annotations[CONFIG_ANNOTATION]).toBe(wanted(AGENT_2).configSha256);

        // Every step again with the same configs (a new SSH path): nothing restarted, and the
        // operator's cordon left alone.
        engine.forgetAll();
        const rerun = await up();
        expect(rerun.failed).toBeUndefined();
        expect(stepStdout(rerun, AGENT_2, "apply")).toContain("config.yaml unchanged; nothing written, nothing restarted");
        expect(stepStdout(rerun, AGENT_2, "apply")).toContain("left cordoned");
        expect(cordonedByRollout(AGENT_2)).toEqual({ unschedulable: true, annotation: undefined });

        // A drain this rollout began and that was cut short after its cordon (cordoned, with the
        // rollout's annotation): the cordon is the rollout's, so the rerun drains and lifts it.
        await kubectl(`annotate node ${AGENT_2} ${ROLLOUT_CORDON_ANNOTATION}=true`);
        config.nodes[2].labels = { "example.com/role": "edge" };
        const resumed = await up();
        expect(resumed.failed).toBeUndefined();
        expect(stepStdout(resumed, AGENT_2, "apply")).not.toContain("not by a rollout");
        expect(stepStdout(resumed, AGENT_2, "apply")).toContain(`rollout ${AGENT_2}: uncordoned`);
        expect(cordonedByRollout(AGENT_2)).toEqual({ unschedulable: false, annotation: undefined });
    });

    it("moves flannel to a new interface: deletes flannel.1 first, sets public-ip, clears a stale overwrite", async () => {
        // lab-agent-02 runs flannel on the LAN (MTU 1450); move it onto the tailnet (MTU 1230).
        expect(fleet.k3sState(AGENT_2)?.flannel).toMatchObject({ parent: "eth0", mtu: 1450 });
        const stale = await fleet.ssh(SERVER, `k3s kubectl annotate node ${AGENT_2} flannel.alpha.coreos.com/public-ip-overwrite=192.0.2.99 --overwrite`);
        expect(stale.code).toBe(0);
        delete config.nodes[2].flannelIfaceFrom;
        const result = await up();
        expect(result.failed?.result.stderr).toBeUndefined();
        expect(stepStdout(result, AGENT_2, "apply")).toContain(`rollout ${AGENT_2}: deleted flannel.1: flannel-iface or node-ip moved`);
        expect(fleet.k3sState(AGENT_2)?.flannel).toMatchObject({ parent: "tailscale0", mtu: 1230 });
        expect(stepStdout(result, AGENT_2, "apply")).toContain(`rollout ${AGENT_2}: removed stale public-ip-overwrite 192.0.2.99`);
        const annotations = clusterNode(AGENT_2)?.annotations ?? {};
        expect(annotations["flannel.alpha.coreos.com/public-ip"]).toBe("100.68.0.22");
        expect(annotations["flannel.alpha.coreos.com/public-ip-overwrite"]).toBeUndefined();
    });

    it("moves a server's node-ip in two passes when its certificates lack the new address", async () => {
        // The server was set up by hand before the program managed it: its tls-san covers only
        // the tailnet, and it has no rollout record.
        const legacy =
            "node-name: lab-server-01\nnode-ip: [100.68.0.11]\nflannel-iface: tailscale0\ntoken-file: /etc/rancher/k3s/cluster-token\ncluster-init: true\ntls-san: [100.68.0.11]\n";
        const setup = await fleet.ssh(
            SERVER,
            "set -e; cat > /etc/rancher/k3s/config.yaml; rm -f /etc/rancher/k3s/shortcircuit-rollout.env; mkdir -p /var/lib/rancher/k3s/server/tls; touch /var/lib/rancher/k3s/server/tls/dynamic-cert-regenerate; systemctl restart k3s",
            legacy,
        );
        expect(setup.code).toBe(0);
        engine.forget(`k3s-${SERVER}-apply`);
        const before = restarts(SERVER);

        config.nodes[0].nodeIpFrom = "nebula";
        const result = await up();
        expect(result.failed?.result.stderr).toBeUndefined();
        const apply = stepStdout(result, SERVER, "apply");
        expect(apply).toContain("pass 1 of 2: tls-san lacks 10.68.1.11; adding the new SANs with the old node-ip");
        expect(apply).toContain("pass 1 of 2 done");
        expect(restarts(SERVER)).toBe(before + 2);
        const state = fleet.k3sState(SERVER)!;
        expect(state.config?.["node-ip"]).toEqual(["10.68.1.11"]);
        expect(state.peerTlsMismatch ?? null).toBeNull();
        expect(fs.existsSync(fleet.hostPath(SERVER, SAN_DROPIN_PATH))).toBe(false);
    });

    it("would have broken etcd in one pass: the double rejects a node-ip its certificates do not cover", async () => {
        // Control experiment for the guard above: certificates regenerated without the tailnet
        // address, and a record that wrongly claims they cover it, so the move back to the
        // tailnet skips pass 1.
        const narrow =
            "node-name: lab-server-01\nnode-ip: [10.68.1.11]\nflannel-iface: tailscale0\ntoken-file: /etc/rancher/k3s/cluster-token\ncluster-init: true\ntls-san: [10.68.1.11]\n";
        const setup = await fleet.ssh(
            SERVER,
            "set -e; cat > /etc/rancher/k3s/config.yaml; sed -i 's/^TLS_SANS=.*/TLS_SANS=100.68.0.11/' /etc/rancher/k3s/shortcircuit-rollout.env; mkdir -p /var/lib/rancher/k3s/server/tls; touch /var/lib/rancher/k3s/server/tls/dynamic-cert-regenerate; systemctl restart k3s",
            narrow,
        );
        expect(setup.code).toBe(0);
        engine.forget(`k3s-${SERVER}-apply`);
        const previous = onDisk(SERVER);
        delete config.nodes[0].nodeIpFrom;
        const result = await up();
        expect(result.failed?.name).toBe(`k3s-${SERVER}-apply`);
        expect(result.failed?.result.stderr).toContain(`rollout ${SERVER} failed: not healthy within ${READY_TIMEOUT_SECONDS}s`);
        expect(onDisk(SERVER)).toBe(previous);

        // With the record telling the truth, the rollout takes two passes and succeeds.
        await fleet.ssh(SERVER, "rm -f /etc/rancher/k3s/shortcircuit-rollout.env");
        const retry = await up();
        expect(retry.failed?.result.stderr).toBeUndefined();
        expect(fleet.k3sState(SERVER)?.config?.["node-ip"]).toEqual(["100.68.0.11"]);
    });

    it("restores a node that never becomes Ready to its previous file and stops the chain there", async () => {
        await fleet.setK3sBehaviour(AGENT_1, { neverReady: true });
        const previous = onDisk(AGENT_1);
        const agent2 = onDisk(AGENT_2);
        const agent2Restarts = restarts(AGENT_2);
        config.nodes[1].labels = { ...config.nodes[1].labels, "example.com/tier": "gold" };
        config.nodes[2].labels = { "example.com/role": "core" };
        try {
            const result = await up();
            expect(result.failed?.name).toBe(`k3s-${AGENT_1}-apply`);
            expect(result.failed?.result.stderr).toContain(
                `rollout ${AGENT_1} failed: not healthy within ${READY_TIMEOUT_SECONDS}s. It is on its previous config and stays cordoned; the rollout stops here.`,
            );
            expect(onDisk(AGENT_1)).toBe(previous);
            expect(fleet.k3sState(AGENT_1)?.config?.["node-label"]).not.toContain("example.com/tier=gold");
            expectRolloutStoppedAtAgent1(result, { config: agent2, restarts: agent2Restarts });
        } finally {
            await fleet.setK3sBehaviour(AGENT_1, { neverReady: false });
        }
        const retry = await up();
        expect(retry.failed?.result.stderr).toBeUndefined();
        expect(onDisk(AGENT_1)).toContain("example.com/tier=gold");
        // The rollout's own cordon, kept across the failed run, is lifted once the node is healthy.
        expect(cordonedByRollout(AGENT_1)).toEqual({ unschedulable: false, annotation: undefined });
    });

    it("stops at a node whose drain a disruption budget blocks: nothing written or restarted, the node left cordoned; the next up finishes it", async () => {
        await expectDrainStopsAtAgent1({ evictionBlocked: true }, "b", (result) => {
            // The eviction was retried every 5 s until the drain timeout, then the step gave up.
            const budget = "Cannot evict pod as it would violate the pod's disruption budget.";
            expect(result.failed?.result.stdout).toContain(`rollout ${AGENT_1}: pod lab-apps/guarded may not be evicted now (${budget}); retrying in 5s\n`);
            expect(result.failed?.result.stderr).toContain(
                `rollout ${AGENT_1} failed: the drain timed out after ${READY_TIMEOUT_SECONDS}s: pod lab-apps/guarded may not be evicted now (${budget}). This run wrote and restarted nothing; the node stays cordoned, and the rollout stops here.`,
            );
        });
    });

    it("refuses to drain a node running a pod no controller would recreate: nothing written, left cordoned; the next up finishes once it is gone", async () => {
        await expectDrainStopsAtAgent1({ unmanagedPod: true }, "c", async (result) => {
            expect(result.failed?.result.stderr).toContain(
                `rollout ${AGENT_1} failed: pods no controller would recreate run on it: lab-apps/bare-${AGENT_1}; move or delete them (kubectl drain would need --force).`,
            );
            // Refused before any eviction: the pod is still there.
            expect(await podsOn(AGENT_1)).toContain(`pod/bare-${AGENT_1}`);
        });
    });

    it("rolls an agent whose k3s is stopped without a drain (nothing runs there), and starts a stopped one whose file is unchanged", async () => {
        await fleet.ssh(AGENT_1, "systemctl stop k3s-agent");
        config.nodes[1].labels = { ...config.nodes[1].labels, "example.com/zone": "d" };
        const changed = await up();
        expect(changed.failed?.result.stderr).toBeUndefined();
        const apply = stepStdout(changed, AGENT_1, "apply");
        expect(apply).toContain(`rollout ${AGENT_1}: k3s-agent is not running: nothing runs on the node to drain`);
        expect(apply).toContain(`rollout ${AGENT_1}: restarted k3s-agent and healthy`);
        expect(fleet.k3sState(AGENT_1)?.status).toBe("active");
        expect(clusterNode(AGENT_1)?.annotations[CONFIG_ANNOTATION]).toBe(wanted(AGENT_1).configSha256);

        // The same file, k3s stopped, and the step run again (state lost): it is started and gated.
        await fleet.ssh(AGENT_1, "systemctl stop k3s-agent");
        engine.forget(`k3s-${AGENT_1}-apply`);
        const rerun = await up();
        expect(rerun.failed?.result.stderr).toBeUndefined();
        expect(stepStdout(rerun, AGENT_1, "apply")).toContain(`rollout ${AGENT_1}: config.yaml unchanged, but k3s-agent is not running; starting it`);
        expect(fleet.k3sState(AGENT_1)?.status).toBe("active");
    });

    it("fails a step whose API server never answers instead of waiting on it, and a rerun converges once it answers", async () => {
        // The double holds every kubectl call against a hanging API until the call's own
        // --request-timeout (10 min without one, far past this step's bound): the step can only
        // end in time if each call carries its timeout.
        const agent2 = onDisk(AGENT_2);
        const agent2Restarts = restarts(AGENT_2);
        config.nodes[2].labels = { "example.com/role": "hung-api" };
        await fleet.setK3sBehaviour(SERVER, { apiHangs: true });
        try {
            const result = await up();
            expect(result.failed?.name).toBe(`k3s-${AGENT_2}-apply`);
            // The agent reaches the API through its own k3s; the call fails at its request timeout.
            expect(result.failed?.result.stderr).toContain(`rollout ${AGENT_2}: cannot read its node from the API:`);
            expect(result.failed?.result.stderr).toContain("Client.Timeout exceeded while awaiting headers");
            expect(ranNames(result).filter((name) => name.startsWith(`k3s-${AGENT_2}`))).toEqual(steps(AGENT_2));
            expect(onDisk(AGENT_2)).toBe(agent2);
            expect(restarts(AGENT_2)).toBe(agent2Restarts);
        } finally {
            await fleet.setK3sBehaviour(SERVER, { apiHangs: false });
        }
        const retry = await up();
        expect(retry.failed?.result.stderr).toBeUndefined();
        expect(onDisk(AGENT_2)).toContain("example.com/role=hung-api");
        expect(restarts(AGENT_2)).toBe(agent2Restarts + 1);
    });

    it("finishes an apply a dropped session cut short: the rerun restarts onto the file and gates on health", async () => {
        await fleet.setK3sBehaviour(AGENT_1, { neverReady: true });
        const restartsBefore = restarts(AGENT_1);
        config.nodes[1].labels = { ...config.nodes[1].labels, "example.com/tier": "bronze" };
        const pending = fleet.hostPath(AGENT_1, "/etc/rancher/k3s/shortcircuit-apply-pending");
        try {
            const run = up();
            // Wait (bounded, by event) until the apply has restarted k3s and sits in its health
            // wait, then hang up on it as a dropped SSH session would.
            let cut = false;
            for (let poll = 0; poll < 600 && !cut; poll++) {
                if (restarts(AGENT_1) > restartsBefore && fs.existsSync(pending)) {
                    // The apply step's bash runs as `bash -c <script> k3s/apply.sh …`.
                    const hangup = await fleet.ssh(AGENT_1, "pkill -HUP -f 'k3s/appl[y]\\.sh' || true");
                    cut = hangup.code === 0;
                } else {
                    await new Promise((resolve) => setTimeout(resolve, 100));
                }
            }
            expect(cut).toBe(true);
            const interrupted = await run;
            expect(interrupted.failed?.name).toBe(`k3s-${AGENT_1}-apply`);
            // Cut before its gate: the new file is in place and the apply is still pending.
            expect(onDisk(AGENT_1)).toContain("example.com/tier=bronze");
            expect(fs.existsSync(pending)).toBe(true);
        } finally {
            await fleet.setK3sBehaviour(AGENT_1, { neverReady: false });
        }
        const before = restarts(AGENT_1);
        const rerun = await up();
        expect(rerun.failed?.result.stderr).toBeUndefined();
        const apply = stepStdout(rerun, AGENT_1, "apply");
        expect(apply).toContain("an earlier run wrote this config.yaml but did not see the node healthy on it; restarting onto it");
        expect(apply).toContain("restarted k3s-agent and healthy");
        expect(restarts(AGENT_1)).toBe(before + 1);
        expect(fs.existsSync(pending)).toBe(false);
        expect(onDisk(AGENT_1, "/etc/rancher/k3s/shortcircuit-rollout.env")).toBeDefined();
        expect(fleet.k3sState(AGENT_1)?.status).toBe("active");
    });

    it("fails an unreachable host within its timeout and drains or restarts nothing after it", async () => {
        await fleet.setLanLink(AGENT_1, "down");
        const agent2 = onDisk(AGENT_2);
        config.nodes[1].labels = { ...config.nodes[1].labels, "example.com/tier": "silver" };
        config.nodes[2].labels = { "example.com/role": "spare" };
        try {
            const started = Date.now();
            const result = await up();
            // Pre-flight is the first half of the node's first step.
            expect(result.failed?.name).toBe(`k3s-${AGENT_1}-prepare`);
            expect(result.failed?.result.code).not.toBe(0);
            expect(Date.now() - started).toBeLessThan(60000);
            // The other changed node's pre-flight runs beside it (it waits for no other node);
            // nothing is drained, written or restarted anywhere.
            expect(ranNames(result).sort()).toEqual([`k3s-${AGENT_1}-prepare`, `k3s-${AGENT_2}-prepare`]);
            expect(onDisk(AGENT_2)).toBe(agent2);
        } finally {
            await fleet.setLanLink(AGENT_1, "up");
        }
        expect((await up()).failed?.result.stderr).toBeUndefined();
    });

    it("puts back a config edited by hand, draining the node before its restart", async () => {
        const edited = `${onDisk(AGENT_2)}# edited by hand\n`;
        await fleet.ssh(AGENT_2, "cat > /etc/rancher/k3s/config.yaml", edited);
        const restartsBefore = restarts(AGENT_2);
        engine.forgetAll();
        const result = await up();
        expect(result.failed?.result.stderr).toBeUndefined();
        expect(onDisk(AGENT_2)).toBe(rendered(AGENT_2));
        expect(restarts(AGENT_2)).toBe(restartsBefore + 1);
        const apply = stepStdout(result, AGENT_2, "apply");
        expect(apply).toContain(`rollout ${AGENT_2}: cordoned\nrollout ${AGENT_2}: drained\n`);
        expect(apply.indexOf("drained")).toBeLessThan(apply.indexOf("wrote /etc/rancher/k3s/config.yaml"));
        expect(cordonedByRollout(AGENT_2)).toEqual({ unschedulable: false, annotation: undefined });
    });

    it("fails pre-flight when table 52 routes into the cluster CIDR, before anything is written", async () => {
        await fleet.addTable52Route(AGENT_2, "10.42.0.0/16");
        const before = onDisk(AGENT_2);
        config.nodes[2].labels = { "example.com/role": "table52" };
        try {
            const result = await up();
            expect(result.failed?.name).toBe(`k3s-${AGENT_2}-prepare`);
            expect(result.failed?.result.stderr).toContain(
                `preflight ${AGENT_2}: Tailscale table 52 routes 10.42.0.0/16, which covers cluster range 10.42.0.0/16`,
            );
            expect(onDisk(AGENT_2)).toBe(before);
        } finally {
            await fleet.clearTable52(AGENT_2);
        }
        expect((await up()).failed?.result.stderr).toBeUndefined();
    });

    it("fails pre-flight when a live address differs from the model, naming host, expected and actual", async () => {
        config.nodes[1].tailnet.address = "100.68.0.99";
        try {
            const result = await up();
            expect(result.failed?.name).toBe(`k3s-${AGENT_1}-prepare`);
            expect(result.failed?.result.stderr).toContain(`preflight ${AGENT_1}: tailscale0 has 100.68.0.21, expected 100.68.0.99`);
        } finally {
            config.nodes[1].tailnet.address = "100.68.0.21";
        }
    });
});
