import { createHash } from "node:crypto";
import { Document } from "yaml";
import { addressOn, flannelPath, interfaceOn, nodeIp, serverUrl, type K3sNodeConfig } from "../../stacks/fleet";
import type { Fleet } from "../../stacks/schema";

/*
 * /etc/rancher/k3s/config.yaml for one node. Keys are k3s CLI flags without dashes.
 * Never `vpn-auth`: it switches flannel to the tailscale backend, which accepts routes into
 * table 52 and shadows the pod and service CIDRs.
 */

export const K3S_CONFIG_PATH = "/etc/rancher/k3s/config.yaml";
/** The join token travels as its own secret file so config.yaml holds no secret. */
export const K3S_TOKEN_FILE = "/etc/rancher/k3s/cluster-token";

/** The config as a plain object, in the key order it is written. */
export type K3sConfig = Record<string, string | boolean | string[]>;

/**
 * Every address a server answers on, on every overlay, plus the cluster's DNS names and the
 * server URL's host: etcd peer and server certificates are cut from this list, and a peer
 * address missing from it is what broke etcd when node-ip moved.
 */
export function serverTlsSans(fleet: Fleet, node: K3sNodeConfig): string[] {
    const sans = [
        addressOn(node, "tailnet"),
        addressOn(node, "nebula"),
        addressOn(node, "lan"),
        node.externalIp,
        ...fleet.cluster.apiDnsNames,
        new URL(serverUrl(fleet)).hostname,
    ].filter((value): value is string => value !== undefined);
    return [...new Set(sans)];
}

export function renderK3sConfig(fleet: Fleet, node: K3sNodeConfig): K3sConfig {
    const cluster = fleet.cluster;
    const config: K3sConfig = {
        "node-name": node.name,
        "node-ip": [nodeIp(fleet, node)],
    };
    if (node.externalIp) {
        config["node-external-ip"] = [node.externalIp];
    }
    config["flannel-iface"] = interfaceOn(fleet, node, flannelPath(fleet, node));
    config["token-file"] = K3S_TOKEN_FILE;
    if (node.genesis) {
        config["cluster-init"] = true;
    } else {
        config.server = serverUrl(fleet);
    }
    if (node.role === "server") {
        // Every server must agree on these; they come from the one cluster section.
        config["cluster-cidr"] = [cluster.clusterCidr];
        config["service-cidr"] = [cluster.serviceCidr];
        config["flannel-backend"] = cluster.flannelBackend;
        config["tls-san"] = serverTlsSans(fleet, node);
        config["etcd-arg"] = [`heartbeat-interval=${cluster.etcd.heartbeatIntervalMs}`, `election-timeout=${cluster.etcd.electionTimeoutMs}`];
        if (cluster.disable.length > 0) {
            config.disable = [...cluster.disable];
        }
    }
    if (node.taints.length > 0) {
        config["node-taint"] = [...node.taints];
    }
    const labels = Object.entries(node.labels);
    if (labels.length > 0) {
        config["node-label"] = labels.map(([key, value]) => `${key}=${value}`);
    }
    return config;
}

const HEADER = " Managed by shortcircuit (Pulumi). Local edits are overwritten on the next rollout.";

/** sha256 of the rendered file: the rollout records it on the node, the stack exports it. */
export function renderedConfigSha256(configYaml: string): string {
    return createHash("sha256").update(configYaml).digest("hex");
}

export function renderK3sConfigYaml(fleet: Fleet, node: K3sNodeConfig): string {
    const document = new Document(renderK3sConfig(fleet, node));
    document.commentBefore = HEADER;
    return document.toString({ lineWidth: 0 });
}
