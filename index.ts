/*
 * Composition root: load the validated fleet → create the identities → plan every host
 * (components/plan.ts, the same plan `render` writes) → one component per planned host, in
 * the graph's order → outputs. No logic of its own.
 */
import * as pulumi from "@pulumi/pulumi";
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
import { loadStack } from "./stacks/load";

const { fleet, secrets } = loadStack();
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
    },
    outputValues,
);

// --- Nebula members, one at a time; DERP relays; the control server ------------------------
let nebulaAfter: pulumi.Resource | undefined;
for (const host of plan.nebulaHosts) {
    nebulaAfter = new NebulaNode(`nebula-${host.name}`, { connection: connectionArgs(host.ssh, credentials), delivery: host.delivery, after: nebulaAfter })
        .done;
}
for (const relay of plan.relays) {
    new DerpRelay(`derp-${relay.name}`, { connection: connectionArgs(relay.ssh, credentials), plan: relay });
}
const controlServer = new ControlServer("control", { plan: plan.control, credentials });

// --- K3s: one node at a time, in rollout order, once the control server answers -------------
let k3sAfter: pulumi.Resource = controlServer.ready;
for (const node of plan.k3sNodes) {
    k3sAfter = new K3sNode(`k3s-${node.name}`, {
        plan: node,
        connection: connectionArgs(node.ssh, credentials),
        genesisConnection: connectionArgs(node.genesisSsh, credentials),
        after: k3sAfter,
    }).done;
}

// --- The cluster edge, once the cluster is rolled ------------------------------------------
const clusterEdge = plan.edge
    ? new ClusterEdge("edge", { plan: plan.edge, genesisConnection: connectionArgs(plan.edge.genesisSsh, credentials), after: k3sAfter })
    : undefined;

/** The order nodes are changed in, one at a time. */
export const rollout = plan.k3sNodes.map((node) => node.name);

/**
 * sha256 of each node's wanted config.yaml. A node whose rollout failed and was rolled back
 * still runs its previous file: compare with `sha256sum /etc/rancher/k3s/config.yaml` there.
 */
export const k3sConfigSha256: Record<string, string> = Object.fromEntries(plan.k3sNodes.map((node) => [node.name, node.configSha256]));

/** The CA that signs the hosts' certificates. */
export const nebulaCaFingerprint = nebulaPki.caFingerprint;
/** Every CA the hosts' ca.crt holds (with fingerprints), the signer and the rotation stage ("none", "trust", "sign"). */
export const nebulaCaTrust = nebulaPki.caTrust;
export const nebulaCaExpiry = nebulaPki.caNotAfter;
/** Member → ISO expiry of its Nebula certificate. */
export const nebulaCertExpiry = nebulaPki.certExpiry;
export const nebulaHostsDelivered = plan.nebulaHosts.length;

export const controlServerIp = controlServer.publicIp;
export const headscaleUrl = controlServer.headscaleUrl;
export const derpMap = controlServer.derpMapYaml;
/** The droplet's id, or "existing host" when Headscale runs on a fleet host. */
export const controlDropletId = controlServer.dropletId ?? "existing host";
/** Kubernetes objects the edge applies, `<kind>-<namespace>-<name>`. */
export const edgeObjects = clusterEdge?.objectNames ?? [];
