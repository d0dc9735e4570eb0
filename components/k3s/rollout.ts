import { Document } from "yaml";
import { addressOn, flannelPath, interfaceOn, nodeIp, type K3sNodeConfig } from "../../stacks/fleet";
import type { Fleet } from "../../stacks/schema";
import { framedPayload } from "../remote/payload";
import { K3S_CONFIG_PATH, K3S_TOKEN_FILE, renderK3sConfigYaml, renderedConfigSha256, serverTlsSans } from "./config";

/*
 * What a K3s node's rollout steps read on stdin (the scripts are prepare.sh and apply.sh beside
 * this file; apply.sh drains and uncordons the node itself with self-drain.sh's functions). Every
 * path the scripts touch and the unit they restart are plan facts (K3sNodePaths, unitFor) that
 * reach them as parameters; no script spells one (test/components/k3s/plan.test.ts). Every step
 * carries the config's hash or the config itself, so each re-runs exactly when the node's config
 * changed; apply's payload shows the new config.yaml as text in a preview diff.
 */

export const K3S_DIR = "/etc/rancher/k3s";
/** What the last successful rollout applied: lets the next one see what moved. */
export const ROLLOUT_RECORD_PATH = `${K3S_DIR}/shortcircuit-rollout.env`;
/** The first pass of a node-ip move adds the new SANs here, with the old node-ip still in place. */
export const SAN_DROPIN_PATH = `${K3S_DIR}/config.yaml.d/50-shortcircuit-tls-san.yaml`;
/** Present from an apply's first write until the node is healthy on it (or rolled back). */
export const APPLY_PENDING_PATH = `${K3S_DIR}/shortcircuit-apply-pending`;
/** One apply at a time on a node. */
export const APPLY_LOCK_PATH = "/var/lib/shortcircuit/lock.k3s";
export const AGENT_KUBELET_KUBECONFIG = "/var/lib/rancher/k3s/agent/kubelet.kubeconfig";
/** Set on a node once its config is applied and healthy: sha256 of that config.yaml. */
export const CONFIG_ANNOTATION = "shortcircuit.kub0.io/config-sha256";
/**
 * Set on a node in the same patch that cordons it for its rollout, removed in the one that lifts
 * it: only a cordon the rollout made is lifted; a node someone cordoned before its rollout stays
 * cordoned. On the node itself, so the node's own step reads it (it may read no other node) and
 * drift tells the rollout's cordon from an operator's.
 */
export const ROLLOUT_CORDON_ANNOTATION = "shortcircuit.kub0.io/cordoned-by-rollout";

export function unitFor(node: Pick<K3sNodeConfig, "role">): "k3s" | "k3s-agent" {
    return node.role === "server" ? "k3s" : "k3s-agent";
}

/** Every path a node's rollout steps read or write on it. */
export interface K3sNodePaths {
    config: string;
    token: string;
    rolloutRecord: string;
    sanDropIn: string;
    applyPending: string;
    applyLock: string;
    /** The kubeconfig its own `k3s kubectl` calls use: empty on a server (k3s's admin one). */
    kubeconfig: string;
}

export function k3sNodePaths(node: Pick<K3sNodeConfig, "role">): K3sNodePaths {
    return {
        config: K3S_CONFIG_PATH,
        token: K3S_TOKEN_FILE,
        rolloutRecord: ROLLOUT_RECORD_PATH,
        sanDropIn: SAN_DROPIN_PATH,
        applyPending: APPLY_PENDING_PATH,
        applyLock: APPLY_LOCK_PATH,
        kubeconfig: node.role === "server" ? "" : AGENT_KUBELET_KUBECONFIG,
    };
}

/** `KEY=value` record of what a rollout applied; read back by the next one. */
export function renderRolloutRecord(fleet: Fleet, node: K3sNodeConfig): string {
    const sans = node.role === "server" ? serverTlsSans(fleet, node).join(" ") : "";
    return [
        "# Managed by shortcircuit: what the last rollout applied.",
        `NODE_IP=${nodeIp(fleet, node)}`,
        `FLANNEL_IFACE=${interfaceOn(fleet, node, flannelPath(fleet, node))}`,
        `TLS_SANS=${sans}`,
        "",
    ].join("\n");
}

/** Pass 1 of a node-ip move: append the new SANs, leaving every other key as it is. */
export function renderSanDropIn(fleet: Fleet, node: K3sNodeConfig): string {
    const document = new Document({ "tls-san+": node.role === "server" ? serverTlsSans(fleet, node) : [] });
    document.commentBefore = " Managed by shortcircuit: first pass of a node-ip move; removed by the second.";
    return document.toString({ lineWidth: 0 });
}

/** Addresses pre-flight expects on the node's interfaces, as `iface=address` pairs. */
export function expectedAddresses(fleet: Fleet, node: K3sNodeConfig): string {
    const pairs: string[] = [];
    for (const path of ["tailnet", "nebula", "lan"] as const) {
        const address = addressOn(node, path);
        if (address !== undefined) {
            pairs.push(`${interfaceOn(fleet, node, path)}=${address}`);
        }
    }
    return pairs.join(" ");
}

/** flannel's address annotations; an overwrite left from a manual fix would pin the old address. */
export const FLANNEL_PUBLIC_IP_ANNOTATION = "flannel.alpha.coreos.com/public-ip";
export const FLANNEL_PUBLIC_IP_OVERWRITE_ANNOTATION = "flannel.alpha.coreos.com/public-ip-overwrite";

/**
 * The JSON merge patch (RFC 7386) a node's apply step ends with, in one API call: flannel's
 * public-ip on the node's flannel address, the applied config's hash recorded, a stale overwrite
 * removed, and, when the rollout cordoned the node, schedulable again (`unschedulable: null`
 * drops the field, as `kubectl uncordon` does) with the rollout's cordon annotation gone.
 */
export function uncordonPatch(flannelIp: string, configSha256: string, options: { uncordon: boolean }): { spec?: object; metadata: object } {
    return {
        ...(options.uncordon ? { spec: { unschedulable: null } } : {}),
        metadata: {
            annotations: {
                [FLANNEL_PUBLIC_IP_ANNOTATION]: flannelIp,
                [CONFIG_ANNOTATION]: configSha256,
                [FLANNEL_PUBLIC_IP_OVERWRITE_ANNOTATION]: null,
                ...(options.uncordon ? { [ROLLOUT_CORDON_ANNOTATION]: null } : {}),
            },
        },
    };
}

/** The merge patch that cordons a node for its rollout, marking the cordon as the rollout's. */
export const CORDON_PATCH = { spec: { unschedulable: true }, metadata: { annotations: { [ROLLOUT_CORDON_ANNOTATION]: "true" } } };

/** A jsonpath field for an annotation key: kubectl's jsonpath reads a dot as a step unless escaped. */
function annotationField(key: string): string {
    return `{.metadata.annotations.${key.replace(/\./g, "\\.")}}`;
}

/**
 * What self-drain.sh reads of its node, `|`-separated: its name (first, so a registered node is
 * told from an empty answer), whether it is cordoned, the rollout's cordon annotation, and a
 * public-ip-overwrite the final patch removes.
 */
export const NODE_STATE_JSONPATH = [
    "{.metadata.name}",
    "{.spec.unschedulable}",
    annotationField(ROLLOUT_CORDON_ANNOTATION),
    annotationField(FLANNEL_PUBLIC_IP_OVERWRITE_ANNOTATION),
].join('{"|"}');

export interface NodeRolloutPayloads {
    unit: "k3s" | "k3s-agent";
    paths: K3sNodePaths;
    /** The node's config.yaml, its sha256 and the rollout record, as the payloads carry them. */
    configYaml: string;
    configSha256: string;
    rolloutRecord: string;
    /** Pre-flight and the token file; the token makes this payload secret. */
    prepare: (token: string) => string;
    /** Drain, write, restart, health gate, uncordon: all on the node. */
    apply: string;
}

/** Everything one node's rollout sends, as plain text: the component feeds it to its steps. */
export function nodeRolloutPayloads(fleet: Fleet, node: K3sNodeConfig): NodeRolloutPayloads {
    const cluster = fleet.cluster;
    const configYaml = renderK3sConfigYaml(fleet, node);
    const configSha256 = renderedConfigSha256(configYaml);
    const rolloutRecord = renderRolloutRecord(fleet, node);
    const unit = unitFor(node);
    const paths = k3sNodePaths(node);
    const flannelIp = addressOn(node, flannelPath(fleet, node)) ?? nodeIp(fleet, node);
    const prepareParams = {
        NODE_NAME: node.name,
        EXPECT_ADDRESSES: expectedAddresses(fleet, node),
        CLUSTER_CIDRS: `${cluster.clusterCidr} ${cluster.serviceCidr}`,
        TOKEN_PATH: paths.token,
        CONFIG_SHA256: configSha256,
    };
    return {
        unit,
        paths,
        configYaml,
        configSha256,
        rolloutRecord,
        prepare: (token) => framedPayload(prepareParams, [{ target: paths.token, mode: 0o600, content: `${token}\n` }]),
        apply: framedPayload(
            {
                NODE_NAME: node.name,
                ROLE: node.role,
                UNIT: unit,
                READY_TIMEOUT: String(cluster.readyTimeoutSeconds),
                DRAIN_TIMEOUT: String(cluster.readyTimeoutSeconds),
                NODE_STATE_JSONPATH,
                CORDON_PATCH: JSON.stringify(CORDON_PATCH),
                UNCORDON_PATCH: JSON.stringify(uncordonPatch(flannelIp, configSha256, { uncordon: true })),
                KEEP_CORDON_PATCH: JSON.stringify(uncordonPatch(flannelIp, configSha256, { uncordon: false })),
                CONFIG_PATH: paths.config,
                RECORD_PATH: paths.rolloutRecord,
                SAN_DROPIN_PATH: paths.sanDropIn,
                PENDING_PATH: paths.applyPending,
                LOCK_PATH: paths.applyLock,
                KUBECONFIG: paths.kubeconfig,
            },
            [
                { target: paths.config, mode: 0o600, content: configYaml },
                { target: paths.rolloutRecord, mode: 0o600, content: rolloutRecord },
                { target: "tls-san.yaml", mode: 0o600, content: renderSanDropIn(fleet, node) },
            ],
        ),
    };
}
