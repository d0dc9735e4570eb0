import { rolloutOrder } from "../../../components/k3s/order";
import {
    CONFIG_ANNOTATION,
    FLANNEL_PUBLIC_IP_OVERWRITE_ANNOTATION,
    ROLLOUT_CORDON_ANNOTATION,
    ROLLOUT_RECORD_PATH,
    nodeRolloutPayloads,
    SAN_DROPIN_PATH,
} from "../../../components/k3s/rollout";
import { k3sNodes } from "../../../stacks/fleet";
import { remoteScript } from "../../../components/remote/scripts";
import { parsePayload } from "../../../components/remote/payload";
import { runProgramUnderMocks, stepPayload, stepScript, type MockRecorder } from "../../support/pulumiMocks";
import { rawFleet, validFleet } from "../../support/fixtures";

const STEPS = ["prepare", "apply"] as const;

let recorder: MockRecorder;
beforeAll(async () => {
    const run = await runProgramUnderMocks({ stack: "prod" }, rawFleet("prod"));
    expect(run.error).toBeUndefined();
    recorder = run.recorder;
});

describe("K3sNode chain under strict mocks", () => {
    const prod = validFleet("prod");
    const order = rolloutOrder(prod).map((node) => node.name);

    it("gives every K3s node its two steps, parented to its component, and nothing else", () => {
        for (const name of order) {
            expect(recorder.named(`k3s-${name}`).type).toBe("shortcircuit:k3s:K3sNode");
            for (const step of STEPS) {
                expect(recorder.named(`k3s-${name}-${step}`)).toMatchObject({ type: "command:remote:Command", parent: `k3s-${name}` });
            }
        }
        expect(recorder.resources.filter((resource) => resource.name.startsWith("k3s-aero"))).toEqual([]);
        const k3sSteps = recorder.resources.filter((resource) => resource.type === "command:remote:Command" && resource.name.startsWith("k3s-"));
        expect(k3sSteps).toHaveLength(order.length * STEPS.length);
    });

    it("chains the steps inside a node and the nodes in rollout order, one at a time; pre-flight waits for no other node", () => {
        const dependsOn = (name: string): string[] => recorder.named(name).dependsOn;
        order.forEach((name, index) => {
            // Every node's pre-flight waits for Headscale to answer, the tailnet's relay to serve
            // and its own Nebula delivery (components/order.ts), and for no other node.
            expect(dependsOn(`k3s-${name}-prepare`).sort()).toEqual(["control-health", "derp-aero-derper-files", `nebula-${name}-files`].sort());
            // Its apply (drain, write, restart, uncordon) waits for its own pre-flight and the node before it.
            expect(dependsOn(`k3s-${name}-apply`).sort()).toEqual(
                index === 0 ? [`k3s-${name}-prepare`] : [`k3s-${name}-prepare`, `k3s-${order[index - 1]}-apply`].sort(),
            );
        });
        expect(order.at(-1)).toBe("toa-fwd-gpu-01");
    });

    it("runs both steps through the node itself: it drains and uncordons itself, no session reaches the genesis for it", () => {
        const agent = "lax-node-01";
        for (const step of STEPS) {
            expect(recorder.named(`k3s-${agent}-${step}`).inputs.connection).toMatchObject({ host: "10.67.3.1", perDialTimeout: 20, dialErrorLimit: 3 });
        }
    });

    it("keeps the token secret and the config readable in the apply step's stdin", () => {
        const token = recorder.named("k3s-lax-node-01-prepare");
        expect(token.secretInputs).toContain("stdin");
        expect(token.additionalSecretOutputs).toContain("stdin");
        const apply = recorder.named("k3s-lax-node-01-apply");
        expect(apply.secretInputs).not.toContain("stdin");
        const stdin = stepPayload(apply.inputs);
        expect(stdin.startsWith("NODE_NAME=lax-node-01\n")).toBe(true);
        expect(stdin).toContain(["NODE_NAME=lax-node-01", "ROLE=agent", "UNIT=k3s-agent", "READY_TIMEOUT=300", "DRAIN_TIMEOUT=300", ""].join("\n"));
        expect(stdin).toContain(
            [
                "CONFIG_PATH=/etc/rancher/k3s/config.yaml",
                `RECORD_PATH=${ROLLOUT_RECORD_PATH}`,
                `SAN_DROPIN_PATH=${SAN_DROPIN_PATH}`,
                "PENDING_PATH=/etc/rancher/k3s/shortcircuit-apply-pending",
                "LOCK_PATH=/var/lib/shortcircuit/lock.k3s",
                "KUBECONFIG=/var/lib/rancher/k3s/agent/kubelet.kubeconfig",
                "",
                "@file 0600 ",
            ].join("\n"),
        );
        expect(stdin).toMatch(/@file 0600 \d+ \/etc\/rancher\/k3s\/config.yaml\n/);
        expect(stdin).toContain("node-ip:\n  - 100.67.0.16\n");
        expect(stdin).not.toContain("K10-test-token");
        expect(apply.inputs.create).toBe(apply.inputs.update);
        // A failure message repeats `create`: one line, the script itself rides at the head of stdin.
        expect(String(apply.inputs.create)).not.toContain("\n");
        expect(String(apply.inputs.create).length).toBeLessThan(240);
        expect(stepScript(apply.inputs)).toBe(remoteScript("k3s/apply.sh"));
    });

    it("gives the scripts their paths, the node's jsonpath and its patches as parameters", () => {
        // The paths are plan facts (test/components/k3s/plan.test.ts); the annotations live in rollout.ts only.
        expect(remoteScript("k3s/apply.sh")).toContain(`dropin="$(param SAN_DROPIN_PATH)"`);
        expect(remoteScript("k3s/apply.sh")).toContain(`rec="$(param RECORD_PATH)"`);
        const script = remoteScript("k3s/apply.sh");
        for (const annotation of [CONFIG_ANNOTATION, FLANNEL_PUBLIC_IP_OVERWRITE_ANNOTATION, ROLLOUT_CORDON_ANNOTATION]) {
            expect(script).not.toContain(annotation.replace(/\./g, "\\."));
            expect(script).not.toContain(annotation);
        }
        const params = parsePayload(stepPayload(recorder.named("k3s-lax-node-01-apply").inputs)).params;
        expect(params.NODE_STATE_JSONPATH).toBe(
            '{.metadata.name}{"|"}{.spec.unschedulable}{"|"}{.metadata.annotations.shortcircuit\\.kub0\\.io/cordoned-by-rollout}{"|"}{.metadata.annotations.flannel\\.alpha\\.coreos\\.com/public-ip-overwrite}',
        );
    });

    it("cordons with the rollout's mark, and lifts only that cordon in one merge patch with flannel's public-ip, the config's hash and no stale overwrite", () => {
        const params = parsePayload(stepPayload(recorder.named("k3s-lax-node-01-apply").inputs)).params;
        const patch = (param: string): unknown => JSON.parse(params[param]);
        expect(patch("CORDON_PATCH")).toEqual({ spec: { unschedulable: true }, metadata: { annotations: { [ROLLOUT_CORDON_ANNOTATION]: "true" } } });
        const annotations = {
            "flannel.alpha.coreos.com/public-ip": "100.67.0.16",
            [CONFIG_ANNOTATION]: nodeRolloutPayloads(
                prod,
                k3sNodes(prod).find((node) => node.name === "lax-node-01")!,
            ).configSha256,
            [FLANNEL_PUBLIC_IP_OVERWRITE_ANNOTATION]: null,
        };
        expect(patch("UNCORDON_PATCH")).toEqual({
            spec: { unschedulable: null },
            metadata: { annotations: { ...annotations, [ROLLOUT_CORDON_ANNOTATION]: null } },
        });
        // For a node cordoned before its rollout, not by it: the same annotations, the cordon kept.
        expect(patch("KEEP_CORDON_PATCH")).toEqual({ metadata: { annotations } });
    });

    it("sends the same script text to every node: only the payload differs", () => {
        const launchers = new Set(order.map((name) => recorder.named(`k3s-${name}-apply`).inputs.create));
        expect(launchers.size).toBe(1);
        const scripts = new Set(order.map((name) => stepScript(recorder.named(`k3s-${name}-apply`).inputs)));
        expect(scripts.size).toBe(1);
    });
});
