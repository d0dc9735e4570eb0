import { planOrder, stepId, type FleetOrder, type StepId } from "../../components/order";
import { throwawayPlan } from "../../scripts/render/throwawayPlan";
import { parseFleet } from "../../stacks/validate";
import { rawFleet, type Raw } from "../support/fixtures";
import { runProgramUnderMocks, type MockRecorder } from "../support/pulumiMocks";
import { stepOfResource } from "../support/steps";

/*
 * The order is plan data (components/order.ts): which step waits for which, and why. These
 * tests state the order for the committed stacks and check that the program's dependency
 * edges between steps are exactly the plan's, no more and no fewer.
 */

const NOW = new Date("2026-12-04T00:00:00Z");

function orderOf(raw: Raw): FleetOrder {
    return throwawayPlan(parseFleet(raw).fleet, { now: NOW, pkiSeedHex: "00".repeat(32) }).plan.order;
}

const pairs = (order: FleetOrder): string[] => order.edges.map((edge) => `${edge.step} <- ${edge.after}`).sort();

/** Every dependency the program declared from a resource of one step to a resource of another. */
function programEdges(recorder: MockRecorder): string[] {
    const stepByName = new Map<string, StepId | undefined>(recorder.resources.map((resource) => [resource.name, stepOfResource(resource)]));
    const edges = new Set<string>();
    for (const resource of recorder.resources) {
        const step = stepByName.get(resource.name);
        for (const dependency of resource.dependsOn) {
            const after = stepByName.get(dependency);
            if (step && after && after !== step) {
                edges.add(`${step} <- ${after}`);
            }
        }
    }
    return [...edges].sort();
}

describe("the fleet's order is plan data", () => {
    it("states the lab stack's order: one Nebula wave with the control server first, each host's keys staged outside it, relays and K3s after Headscale answers", () => {
        const order = orderOf(rawFleet("lab"));
        expect(order.steps.map((step) => step.id)).toEqual([
            "control:bootstrap",
            "control:litestream",
            "control:headscale",
            "control:nebula",
            "control:health",
            "nebula-stage:lab-server-01",
            "nebula:lab-server-01",
            "nebula-stage:lab-agent-01",
            "nebula:lab-agent-01",
            "nebula-stage:lab-agent-02",
            "nebula:lab-agent-02",
            "nebula-stage:lab-relay-01",
            "nebula:lab-relay-01",
            "relay:lab-relay-01",
            "k3s-preflight:lab-agent-01",
            "k3s:lab-agent-01",
            "k3s-preflight:lab-agent-02",
            "k3s:lab-agent-02",
            "k3s-preflight:lab-server-01",
            "k3s:lab-server-01",
            "edge",
        ]);
        expect(pairs(order)).toEqual(
            [
                "control:litestream <- control:bootstrap",
                "control:headscale <- control:bootstrap",
                "control:nebula <- control:bootstrap",
                "control:headscale <- control:litestream",
                "control:health <- control:headscale",
                "nebula:lab-server-01 <- control:nebula",
                "nebula:lab-agent-01 <- nebula:lab-server-01",
                "nebula:lab-agent-02 <- nebula:lab-agent-01",
                "nebula:lab-relay-01 <- nebula:lab-agent-02",
                // Staging a host's keys restarts nothing: it waits for no other host, only its turn does.
                ...["lab-server-01", "lab-agent-01", "lab-agent-02", "lab-relay-01"].map((host) => `nebula:${host} <- nebula-stage:${host}`),
                "relay:lab-relay-01 <- control:health",
                // Every node's pre-flight waits only for what it checks, not for the node before it.
                ...["lab-agent-01", "lab-agent-02", "lab-server-01"].flatMap((node) => [
                    `k3s-preflight:${node} <- control:health`,
                    `k3s-preflight:${node} <- relay:lab-relay-01`,
                    `k3s-preflight:${node} <- nebula:${node}`,
                    `k3s:${node} <- k3s-preflight:${node}`,
                ]),
                "k3s:lab-agent-02 <- k3s:lab-agent-01",
                "k3s:lab-server-01 <- k3s:lab-agent-02",
                "edge <- k3s:lab-server-01",
            ].sort(),
        );
        for (const edge of order.edges) {
            expect(edge.why.length).toBeGreaterThan(20);
        }
    });

    it("chains every Nebula member of prod, the control server included, into one wave, and lists each step after what it waits for", () => {
        const order = orderOf(rawFleet("prod"));
        const nebulaWave = order.edges.filter((edge) => edge.why.startsWith("Nebula restarts one host at a time"));
        const nebulaSteps = order.steps.filter((step) => step.kind === "nebula").map((step) => step.id);
        // A chain: n members, n - 1 links, starting at the control server, each step waiting for one.
        expect(nebulaWave).toHaveLength(nebulaSteps.length);
        expect(nebulaWave[0].after).toBe("control:nebula");
        expect(new Set(nebulaWave.map((edge) => edge.step)).size).toBe(nebulaWave.length);
        const position = new Map(order.steps.map((step, index) => [step.id, index]));
        for (const edge of order.edges) {
            expect(position.get(edge.after)).toBeLessThan(position.get(edge.step)!);
        }
        for (const step of order.steps.filter((each) => each.kind === "nebulaStage")) {
            expect(order.edges.filter((edge) => edge.step === step.id)).toEqual([]);
            expect(order.edges).toContainEqual(expect.objectContaining({ step: stepId.nebula(step.host), after: step.id }));
        }
        for (const step of order.steps.filter((each) => each.kind === "k3sPreflight")) {
            const waits = order.edges.filter((edge) => edge.step === step.id).map((edge) => edge.after);
            if (nebulaSteps.includes(stepId.nebula(step.node))) {
                expect(waits).toContain(stepId.nebula(step.node));
            }
        }
    });

    it("places each step after what it waits for, whatever order the wave lists, and refuses a cycle", () => {
        const order = planOrder({
            nebulaWave: [{ kind: "node", host: "a" }, { kind: "control" }],
            controlDeliveries: ["headscale", "nebula"],
            relays: [],
            k3sNodes: [],
            edge: false,
        });
        const ids = order.steps.map((step) => step.id);
        expect(ids.indexOf(stepId.nebula("a"))).toBeLessThan(ids.indexOf(stepId.control("nebula")));
        expect(() => planOrder({ nebulaWave: [], controlDeliveries: ["headscale"], relays: [], k3sNodes: ["a", "a"], edge: false })).toThrow(
            "the fleet's order has a cycle among k3s:a, k3s:a",
        );
    });
});

describe("the program's dependency edges between steps are the plan's", () => {
    it.each(["lab", "prod"] as const)("%s: every edge the plan states, and no other", async (stack) => {
        const raw = rawFleet(stack);
        const { recorder, error } = await runProgramUnderMocks({ stack }, raw);
        expect(error).toBeUndefined();
        expect(programEdges(recorder)).toEqual(pairs(orderOf(raw)));
    });
});
