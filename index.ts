/*
 * Composition root: load the validated fleet → create the identities → plan every host
 * (components/plan.ts, the same plan `render` writes) → one component per planned host, in
 * the graph's order → outputs. No logic of its own.
 */
// First: it turns Node's compile cache on as it loads, for every module imported after it.
import "./components/compileCache";
import { ControlServer } from "./components/control/controlServer";
import { DerpRelay } from "./components/derp/derpRelay";
import { RelayCertificate } from "./components/derp/relayCertificate";
import { ClusterEdge } from "./components/edge/clusterEdge";
import { K3sNode } from "./components/k3s/k3sNode";
import { NebulaNode } from "./components/nebula/nebulaNode";
import { NebulaPki } from "./components/nebula/nebulaPki";
import { outputValues } from "./components/outputValues";
import { identityRequirements, planFleet } from "./components/plan";
import { connectionArgs } from "./components/remote/connection";
import { StepWaits } from "./components/stepWaits";
import { refuseAdoptionDifferences } from "./components/control/adoption";
import { controlHost } from "./components/control/plan";
import { endRefusedRun, loadStack } from "./stacks/load";
import { cacheBareStackTraces } from "./components/stackTraceCache";

// Before any resource: the SDK formats a stack trace ~45 times per resource (components/stackTraceCache.ts).
cacheBareStackTraces();

// Invalid config fails here, while the module loads: the engine ends such a run at once.
const { fleet, secrets } = loadStack();

interface MainOptions {
    /** End the process once a refusal is printed (as the engine runs the program); tests take the error instead. */
    exitOnRefusal?: boolean;
}

async function main(options: MainOptions = {}) {
    // Reads the running objects `adopt` names and refuses any difference, before anything is declared.
    try {
        await refuseAdoptionDifferences(controlHost(fleet));
    } catch (error) {
        if (options.exitOnRefusal ?? true) {
            await endRefusedRun(error);
        }
        throw error;
    }
    const credentials = { privateKey: secrets.sshPrivateKey };

    // --- Identities: the Nebula PKI and self-signed relay certificates, kept in state -----------
    const needs = identityRequirements(fleet);
    const nebulaPki = new NebulaPki("nebula", { fleet, members: needs.nebulaMembers, existingCa: secrets.nebulaCa });
    const relayCerts = Object.fromEntries(
        needs.selfSignedRelays.map((relay) => [relay.host, new RelayCertificate(`derp-${relay.host}-tls`, { hostname: relay.hostname })]),
    );

    const plan = planFleet(
        fleet,
        {
            nebulaCaCertPem: nebulaPki.trustBundlePem,
            nebula: nebulaPki.identities,
            headscaleNoiseKey: secrets.headscaleNoiseKey,
            derpKey: secrets.derpKey,
            k3sToken: secrets.k3sToken,
            relayCerts,
            ...(secrets.replica ? { replica: secrets.replica } : {}),
        },
        outputValues,
    );

    // --- Every step in the plan's order (components/order.ts): each waits for what the plan says --
    const waits = new StepWaits(plan.order);
    let controlServer: ControlServer | undefined;
    let clusterEdge: ClusterEdge | undefined;
    const nebulaHosts = new Map(plan.nebulaHosts.map((host) => [host.name, host]));
    const relays = new Map(plan.relays.map((relay) => [relay.name, relay]));
    const k3sNodes = new Map(plan.k3sNodes.map((node) => [node.name, node]));
    for (const step of plan.order.steps) {
        switch (step.kind) {
            case "control":
                // One component holds all of the control server's steps; it chains them by `waits`.
                controlServer ??= new ControlServer("control", { plan: plan.control, credentials, order: waits });
                break;
            case "nebulaStage":
                // Built with its host's delivery at the "nebula" step, which the order puts after it.
                break;
            case "nebula": {
                const host = planned(nebulaHosts, step.host);
                // One component holds the host's staging and its turn; it finishes both steps in `waits`.
                new NebulaNode(`nebula-${host.name}`, {
                    host: host.name,
                    connection: connectionArgs(host.ssh, credentials),
                    delivery: host.delivery,
                    order: waits,
                });
                break;
            }
            case "relay": {
                const relay = planned(relays, step.host);
                const derp = new DerpRelay(`derp-${relay.name}`, {
                    connection: connectionArgs(relay.ssh, credentials),
                    plan: relay,
                    after: waits.before(step.id),
                });
                waits.finish(step.id, derp.done);
                break;
            }
            case "k3sPreflight":
                // Built with its node's rollout at the "k3s" step, which the order puts after it.
                break;
            case "k3s": {
                const node = planned(k3sNodes, step.node);
                // One component holds the node's pre-flight and rollout; it finishes both steps in `waits`.
                new K3sNode(`k3s-${node.name}`, {
                    plan: node,
                    connection: connectionArgs(node.ssh, credentials),
                    order: waits,
                });
                break;
            }
            case "edge": {
                const edge = plan.edge;
                if (!edge) {
                    throw new Error("the plan orders an edge step but plans no edge");
                }
                clusterEdge = new ClusterEdge("edge", {
                    plan: edge,
                    genesisConnection: connectionArgs(edge.genesisSsh, credentials),
                    after: waits.before(step.id),
                });
                break;
            }
            default:
                throw new Error(`unhandled step ${JSON.stringify(step satisfies never)}`);
        }
    }
    if (!controlServer) {
        throw new Error("the plan's order has no control server step");
    }

    /** The order nodes are changed in, one at a time. */
    const rollout = plan.k3sNodes.map((node) => node.name);

    /**
     * sha256 of each node's wanted config.yaml. A node whose rollout failed and was rolled back
     * still runs its previous file: compare with `sha256sum /etc/rancher/k3s/config.yaml` there.
     */
    const k3sConfigSha256: Record<string, string> = Object.fromEntries(plan.k3sNodes.map((node) => [node.name, node.configSha256]));

    /** The CA that signs the hosts' certificates. */
    const nebulaCaFingerprint = nebulaPki.caFingerprint;
    /** Every CA the hosts' ca.crt holds (with fingerprints), the signer and the rotation stage ("none", "trust", "sign"). */
    const nebulaCaTrust = nebulaPki.caTrust;
    const nebulaCaExpiry = nebulaPki.caNotAfter;
    /** Member → ISO expiry of its Nebula certificate. */
    const nebulaCertExpiry = nebulaPki.certExpiry;
    const nebulaHostsDelivered = plan.nebulaHosts.length;

    const controlServerIp = controlServer.publicIp;
    const headscaleUrl = controlServer.headscaleUrl;
    const derpMap = controlServer.derpMapYaml;
    /** The droplet's id, or "existing host" when Headscale runs on a fleet host. */
    const controlDropletId = controlServer.dropletId ?? "existing host";
    /** Kubernetes objects the edge applies, `<kind>-<namespace>-<name>`. */
    const edgeObjects = clusterEdge?.objectNames ?? [];

    return {
        rollout,
        k3sConfigSha256,
        nebulaCaFingerprint,
        nebulaCaTrust,
        nebulaCaExpiry,
        nebulaCertExpiry,
        nebulaHostsDelivered,
        controlServerIp,
        headscaleUrl,
        derpMap,
        controlDropletId,
        edgeObjects,
    };
}

export = main;

function planned<T>(byName: ReadonlyMap<string, T>, name: string): T {
    const found = byName.get(name);
    if (!found) {
        throw new Error(`the plan's order names ${name}, which the plan does not hold`);
    }
    return found;
}
