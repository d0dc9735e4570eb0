/*
 * Composition root: reads the validated fleet once and builds the graph from it. The order
 * of construction below is the order of the graph; components own their own wiring.
 */
import * as pulumi from "@pulumi/pulumi";
import { ClusterEdge } from "./components/edge/clusterEdge";
import { ControlServer } from "./components/control/controlServer";
import { DerpRelay } from "./components/derp/derpRelay";
import { K3sNode } from "./components/k3s/k3sNode";
import { NebulaNode } from "./components/nebula/nebulaNode";
import { NebulaPki } from "./components/nebula/nebulaPki";
import { sshConnectionFor } from "./components/remote/connection";
import { renderK3sConfigYaml, renderedConfigSha256 } from "./components/k3s/config";
import { controlServerMember, nebulaMembers, renderNebulaConfigYaml } from "./components/nebula/config";
import { rolloutOrder } from "./components/k3s/order";
import { genesisNode, nodeByName } from "./stacks/fleet";
import { loadStack } from "./stacks/load";

const { fleet, secrets } = loadStack();
const order = rolloutOrder(fleet);

// --- Nebula: the PKI, then every SSH-reachable member's files -----------------------------
const members = nebulaMembers(fleet);
const nebulaPki = new NebulaPki("nebula", { fleet, members });
const nebulaNodes: NebulaNode[] = [];
for (const member of members) {
    // The control server gets its files with the rest of its own; admin workstations through render.
    const host = nodeByName(fleet, member.name);
    if (!host || member.kind !== "node") {
        continue;
    }
    const identity = nebulaPki.identities[member.name];
    nebulaNodes.push(
        new NebulaNode(`nebula-${member.name}`, {
            connection: sshConnectionFor(fleet, host, secrets),
            macos: host.os === "macos",
            configYaml: renderNebulaConfigYaml(fleet, members, member),
            caCertPem: nebulaPki.caCertPem,
            certPem: identity.certPem,
            keyPem: identity.keyPem,
            after: nebulaNodes.at(-1)?.done,
        }),
    );
}

// --- DERP relays, then the control server whose DERP map pins them ------------------------
const derpRelays = fleet.derpRelays.map((relay) => {
    const host = nodeByName(fleet, relay.host);
    if (!host) {
        throw new Error(`DERP relay host ${relay.host} is not in the fleet (validation should have rejected it)`);
    }
    return new DerpRelay(`derp-${relay.host}`, { fleet, relay, connection: sshConnectionFor(fleet, host, secrets), macos: host.os === "macos" });
});
const controlMember = controlServerMember(members);
const controlIdentity = nebulaPki.identities[controlMember.name];
const existingControlHost = fleet.controlServer.host.kind === "existing" ? nodeByName(fleet, fleet.controlServer.host.host) : undefined;
const controlServer = new ControlServer("control", {
    fleet,
    noiseKey: secrets.headscaleNoiseKey,
    derpKey: secrets.derpKey,
    nebula: {
        configYaml: renderNebulaConfigYaml(fleet, members, controlMember),
        caCertPem: nebulaPki.caCertPem,
        certPem: controlIdentity.certPem,
        keyPem: controlIdentity.keyPem,
    },
    derpCertNames: pulumi.all(Object.fromEntries(fleet.derpRelays.map((relay, index) => [relay.host, derpRelays[index].certName]))),
    existingHost: existingControlHost ? sshConnectionFor(fleet, existingControlHost, secrets) : undefined,
});

// --- K3s: one node at a time, in rollout order; each waits for the one before --------------
const genesisConnection = sshConnectionFor(fleet, genesisNode(fleet), secrets);
const k3sNodes: K3sNode[] = [];
for (const node of order) {
    k3sNodes.push(
        new K3sNode(`k3s-${node.name}`, {
            fleet,
            node,
            connection: sshConnectionFor(fleet, node, secrets),
            genesisConnection,
            k3sToken: secrets.k3sToken,
            // Nodes move only once the control server answers: the tailnet must be up.
            after: k3sNodes.at(-1)?.done ?? controlServer.ready,
        }),
    );
}

// --- The cluster edge, once the cluster is rolled ------------------------------------------
const clusterEdge = fleet.edge.enabled ? new ClusterEdge("edge", { fleet, genesisConnection, after: k3sNodes.at(-1)?.done }) : undefined;

/** The order nodes are changed in, one at a time. */
export const rollout = order.map((node) => node.name);

/** sha256 of each node's config.yaml, to compare with `sha256sum /etc/rancher/k3s/config.yaml` on the host. */
export const k3sConfigSha256: Record<string, string> = Object.fromEntries(
    order.map((node) => [node.name, renderedConfigSha256(renderK3sConfigYaml(fleet, node))]),
);

export const nebulaCaFingerprint = nebulaPki.caFingerprint;
export const nebulaCaExpiry = nebulaPki.caNotAfter;
/** Member → ISO expiry of its Nebula certificate. */
export const nebulaCertExpiry = nebulaPki.certExpiry;
export const nebulaHostsDelivered = nebulaNodes.length;

export const controlServerIp = controlServer.publicIp;
export const headscaleUrl = controlServer.headscaleUrl;
export const derpMap = controlServer.derpMapYaml;
export const controlDropletId = controlServer.dropletId;
/** Kubernetes objects the edge applies, `<kind>-<namespace>-<name>`. */
export const edgeObjects = clusterEdge?.objectNames ?? [];
