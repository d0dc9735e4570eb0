/*
 * Composition root: reads the validated fleet once and builds the graph from it. The order
 * of construction below is the order of the graph; components own their own wiring.
 */
import { createHash } from "node:crypto";
import { K3sNode } from "./components/k3sNode";
import { NebulaNode } from "./components/nebulaNode";
import { NebulaPki } from "./components/nebulaPki";
import { sshConnectionFor } from "./components/remote/connection";
import { renderK3sConfigYaml } from "./components/render/k3sConfig";
import { nebulaMembers, renderNebulaConfigYaml } from "./components/render/nebulaConfig";
import { rolloutOrder } from "./components/render/rollout";
import { genesisNode, nodeByName } from "./stacks/fleet";
import { loadStack } from "./stacks/load";

const { fleet, secrets, environment } = loadStack();
const order = rolloutOrder(fleet);

// --- Nebula: the PKI, then every SSH-reachable member's files -----------------------------
const members = nebulaMembers(fleet);
const nebulaPki = new NebulaPki("nebula", { fleet, members });
const nebulaNodes = members.flatMap((member) => {
    // The droplet receives its files through cloud-init; admin workstations through render.
    const host = nodeByName(fleet, member.name);
    if (!host) {
        return [];
    }
    const identity = nebulaPki.identities[member.name];
    return [
        new NebulaNode(`nebula-${member.name}`, {
            connection: sshConnectionFor(fleet, host, secrets, environment),
            macos: host.os === "macos",
            configYaml: renderNebulaConfigYaml(fleet, members, member),
            caCertPem: nebulaPki.caCertPem,
            certPem: identity.certPem,
            keyPem: identity.keyPem,
        }),
    ];
});

// --- K3s: one node at a time, in rollout order; each waits for the one before --------------
const genesisConnection = sshConnectionFor(fleet, genesisNode(fleet), secrets, environment);
const k3sNodes: K3sNode[] = [];
for (const node of order) {
    k3sNodes.push(
        new K3sNode(`k3s-${node.name}`, {
            fleet,
            node,
            connection: sshConnectionFor(fleet, node, secrets, environment),
            genesisConnection,
            k3sToken: secrets.k3sToken,
            after: k3sNodes.at(-1)?.done,
        }),
    );
}

/** The order nodes are changed in, one at a time. */
export const rollout = order.map((node) => node.name);

/** sha256 of each node's config.yaml, to compare with `sha256sum /etc/rancher/k3s/config.yaml` on the host. */
export const k3sConfigSha256: Record<string, string> = Object.fromEntries(
    order.map((node) => [node.name, createHash("sha256").update(renderK3sConfigYaml(fleet, node)).digest("hex")]),
);

export const nebulaCaFingerprint = nebulaPki.caFingerprint;
export const nebulaCaExpiry = nebulaPki.caNotAfter;
/** Member → ISO expiry of its Nebula certificate. */
export const nebulaCertExpiry = nebulaPki.certExpiry;
export const nebulaHostsDelivered = nebulaNodes.length;
