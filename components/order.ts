/*
 * The order the fleet changes in, as plan data: which step waits for which, and why. The
 * program only walks it (index.ts, StepWaits); a graph test compares the engine's dependency
 * edges with these. A step is one unit of remote work: one host's Nebula delivery, one part of
 * the control server, one relay, one K3s node's rollout, the cluster edge.
 */

/** The control server's steps, in the order the host needs them. */
export const CONTROL_PARTS = ["bootstrap", "litestream", "headscale", "nebula", "health"] as const;
export type ControlPart = (typeof CONTROL_PARTS)[number];

export type PlannedStep =
    | { kind: "nebulaStage"; id: StepId; host: string }
    | { kind: "nebula"; id: StepId; host: string }
    | { kind: "control"; id: StepId; part: ControlPart }
    | { kind: "relay"; id: StepId; host: string }
    | { kind: "k3sPreflight"; id: StepId; node: string }
    | { kind: "k3s"; id: StepId; node: string }
    | { kind: "edge"; id: StepId };

/** `nebula-stage:<host>`, `nebula:<host>`, `control:<part>`, `relay:<host>`, `k3s-preflight:<node>`, `k3s:<node>` or `edge`. */
export type StepId = string & { readonly __step: unique symbol };

export interface OrderEdge {
    step: StepId;
    /** The step that must have finished first. */
    after: StepId;
    why: string;
}

export interface FleetOrder {
    /** Every step, each after every step it waits for. */
    steps: PlannedStep[];
    /** Direct waits only; what follows from two edges is not repeated. */
    edges: OrderEdge[];
}

export const stepId = {
    nebulaStage: (host: string): StepId => `nebula-stage:${host}` as StepId,
    nebula: (host: string): StepId => `nebula:${host}` as StepId,
    control: (part: ControlPart): StepId => `control:${part}` as StepId,
    relay: (host: string): StepId => `relay:${host}` as StepId,
    k3sPreflight: (node: string): StepId => `k3s-preflight:${node}` as StepId,
    k3s: (node: string): StepId => `k3s:${node}` as StepId,
    edge: "edge" as StepId,
};

export interface OrderInputs {
    /** Nebula members the program delivers to, in the order they restart: "control" is the control server. */
    nebulaWave: readonly ({ kind: "control" } | { kind: "node"; host: string })[];
    /** The control server's file deliveries, by role ("litestream" when replicated, "headscale", "nebula"). */
    controlDeliveries: readonly ControlDeliveryRole[];
    relays: readonly string[];
    /** K3s nodes in rollout order. */
    k3sNodes: readonly string[];
    edge: boolean;
}

/**
 * The fleet's order. Nebula restarts one member at a time across the whole mesh, the control
 * server included, in nebulaMembers' order: the control server (the main lighthouse) first, so a
 * restarted member finds it up, then the fleet's nodes in file order. A node's keys are staged
 * beside the live ones (its stage step) before its turn, outside the wave; derper and the K3s rollout
 * start once Headscale answers; a K3s node's pre-flight waits for its own Nebula delivery, its
 * rollout for its pre-flight and the previous node; the edge waits for the last node.
 */
export function planOrder(inputs: OrderInputs): FleetOrder {
    const steps: PlannedStep[] = [];
    const edges: OrderEdge[] = [];
    const wait = (step: StepId, after: StepId, why: string): void => {
        edges.push({ step, after, why });
    };

    const bootstrap = stepId.control("bootstrap");
    const health = stepId.control("health");
    steps.push({ kind: "control", id: bootstrap, part: "bootstrap" });
    for (const role of inputs.controlDeliveries) {
        const id = stepId.control(role);
        steps.push({ kind: "control", id, part: role });
        wait(id, bootstrap, `the bootstrap ${BOOTSTRAP_INSTALLS[role]} on the control host`);
    }
    if (inputs.controlDeliveries.includes("litestream") && inputs.controlDeliveries.includes("headscale")) {
        wait(
            stepId.control("headscale"),
            stepId.control("litestream"),
            "Headscale starts only after a restore attempt: its drop-in requires the restore unit Litestream's delivery brings",
        );
    }
    steps.push({ kind: "control", id: health, part: "health" });
    if (inputs.controlDeliveries.includes("headscale")) {
        wait(health, stepId.control("headscale"), "Headscale answers /health only once its config and keys are delivered");
    } else {
        wait(health, bootstrap, "Headscale answers /health once the bootstrap started it");
    }

    let previous: { id: StepId; label: string } | undefined;
    for (const member of inputs.nebulaWave) {
        const id = member.kind === "control" ? stepId.control("nebula") : stepId.nebula(member.host);
        const label = member.kind === "control" ? "the control server" : member.host;
        if (member.kind === "node") {
            // Staging writes only <key>.shortcircuit-staged and restarts nothing (deliver-files.sh),
            // so it waits for no other host; the delivery's turn in the wave switches it in.
            const stage = stepId.nebulaStage(member.host);
            steps.push({ kind: "nebulaStage", id: stage, host: member.host });
            steps.push({ kind: "nebula", id, host: member.host });
            wait(id, stage, `${member.host}'s delivery switches in, with its certificate and config, the keys its stage step staged`);
        }
        if (previous) {
            wait(id, previous.id, `Nebula restarts one host at a time: ${previous.label} before ${label}`);
        }
        previous = { id, label };
    }

    for (const host of inputs.relays) {
        const id = stepId.relay(host);
        steps.push({ kind: "relay", id, host });
        wait(id, health, "derper admits only clients Headscale's /verify accepts (fail-open off): it starts once Headscale answers");
    }

    const nebulaHosts = new Set(inputs.nebulaWave.flatMap((member) => (member.kind === "node" ? [member.host] : [])));
    let previousNode: string | undefined;
    for (const node of inputs.k3sNodes) {
        // Pre-flight (checks and the token file, no restart) waits only for what it reads, so every
        // node's runs while earlier nodes roll; the node's rollout waits for its own pre-flight.
        const preflight = stepId.k3sPreflight(node);
        steps.push({ kind: "k3sPreflight", id: preflight, node });
        wait(preflight, health, "nodes reach each other over the tailnet Headscale runs: pre-flight checks a node once it answers");
        for (const host of inputs.relays) {
            wait(preflight, stepId.relay(host), `the tailnet's DERP relay on ${host} serves before any node is checked and restarted onto the tailnet`);
        }
        if (nebulaHosts.has(node)) {
            wait(
                preflight,
                stepId.nebula(node),
                `${node}'s config.yaml may name its Nebula address and interface, which its Nebula delivery brings up and pre-flight checks`,
            );
        }
        const id = stepId.k3s(node);
        steps.push({ kind: "k3s", id, node });
        wait(id, preflight, `${node} drains and restarts only once its own pre-flight passed`);
        if (previousNode !== undefined) {
            wait(id, stepId.k3s(previousNode), `one K3s node at a time, in rollout order: ${previousNode} before ${node}`);
        }
        previousNode = node;
    }

    if (inputs.edge) {
        steps.push({ kind: "edge", id: stepId.edge });
        if (previousNode !== undefined) {
            wait(stepId.edge, stepId.k3s(previousNode), "the cluster edge changes once every node is rolled");
        } else {
            wait(stepId.edge, health, "the cluster edge changes once the control server answers");
        }
    }
    return { steps: topologicalOrder(steps, edges), edges };
}

/** The steps, each after everything it waits for, otherwise in the order given; throws on a cycle. */
function topologicalOrder(steps: readonly PlannedStep[], edges: readonly OrderEdge[]): PlannedStep[] {
    const placed = new Set<StepId>();
    const ordered: PlannedStep[] = [];
    const ready = (step: PlannedStep): boolean => edges.every((edge) => edge.step !== step.id || placed.has(edge.after));
    while (ordered.length < steps.length) {
        const next = steps.find((step) => !placed.has(step.id) && ready(step));
        if (!next) {
            const stuck = steps.filter((step) => !placed.has(step.id)).map((step) => step.id);
            throw new Error(`the fleet's order has a cycle among ${stuck.join(", ")}`);
        }
        placed.add(next.id);
        ordered.push(next);
    }
    return ordered;
}

export type ControlDeliveryRole = "litestream" | "headscale" | "nebula";

const BOOTSTRAP_INSTALLS: Record<ControlDeliveryRole, string> = {
    litestream: "installs Litestream",
    headscale: "installs Headscale and mounts its database volume",
    nebula: "installs Nebula",
};

/** The control server's step that delivers the files of `role`. */
export function controlDeliveryPart(role: string): ControlDeliveryRole {
    if (role !== "headscale" && role !== "nebula" && role !== "litestream") {
        throw new Error(`the control server has no step for a ${role} delivery`);
    }
    return role;
}

/** The steps `step` waits for directly. */
export function waitsOf(order: FleetOrder, step: StepId): OrderEdge[] {
    return order.edges.filter((edge) => edge.step === step);
}
