/**
 * What a start checks (config, addresses, interfaces, joining a cluster) and what it records
 * (node registration, annotations, SANs, history); a refusal is a StartError.
 */
import * as fs from "node:fs";
import * as crypto from "node:crypto";
import { StartError, bool, criticalOf, list, normalise, str, urlHost } from "./config";
import type { LoadedConfig } from "./config";
import { CRITICAL_DEFAULTS, DYNAMIC_CERT_REGENERATE, FLANNEL_BACKENDS } from "./constants";
import { interfaces, logLine } from "./host";
import { allNodes, nodeFile, saveNode } from "./nodes";
import { flannelLink, nodeArgs, writeServerFiles } from "./serverFiles";
import type { DoubleHostConfig, DoubleState, K3sBehaviourCue, NodeRecord, Taint } from "./types";
import { isCidr, isIP, readJson, withLock } from "./util";

export function doStart(host: DoubleHostConfig, state: DoubleState, cue: K3sBehaviourCue, loaded: LoadedConfig): { nodeName: string } {
    if (cue.failOnStart !== null) throw new StartError(cue.failOnStart, loaded);
    const { cfg, errors } = normalise(host.role, loaded.merged);
    const ifaces = interfaces(host);
    const localIps = new Set(ifaces.flatMap((i) => [...i.ipv4, ...i.ipv6]));

    for (const ip of list(cfg, "node-ip")) {
        if (!isIP(ip)) errors.push(`invalid node-ip "${ip}": not an IP address`);
        else if (!localIps.has(ip)) errors.push(`failed to validate nodeIP: node IP: "${ip}" not found in the host's network interfaces`);
    }
    for (const ip of list(cfg, "node-external-ip")) {
        if (!isIP(ip)) errors.push(`invalid node-external-ip "${ip}": not an IP address`);
    }
    for (const key of ["cluster-cidr", "service-cidr"]) {
        for (const c of list(cfg, key)) if (!isCidr(c)) errors.push(`invalid ${key} "${c}": not a CIDR`);
    }
    const flannelIface = str(cfg, "flannel-iface");
    if (flannelIface !== undefined && !ifaces.some((i) => i.name === flannelIface)) {
        errors.push(`flannel exited: failed to find interface: error looking up interface ${flannelIface}: route ip+net: no such network interface`);
    }
    const backend = str(cfg, "flannel-backend");
    if (backend !== undefined && !FLANNEL_BACKENDS.includes(backend)) {
        errors.push(`invalid flannel backend "${backend}" (known: ${FLANNEL_BACKENDS.join(", ")})`);
    }
    const server = str(cfg, "server");
    if (host.role === "agent" && (server === undefined || server === "")) errors.push("--server is required");
    if (server !== undefined && server !== "") {
        if (urlHost(server) === null) errors.push(`invalid server URL "${server}": expected https://host[:port]`);
        if (str(cfg, "token") === undefined && str(cfg, "token-file") === undefined) errors.push("--token is required");
    }
    const tokenFile = str(cfg, "token-file");
    if (tokenFile !== undefined && !fs.existsSync(tokenFile)) errors.push(`failed to read token file ${tokenFile}: no such file or directory`);
    const mode = str(cfg, "write-kubeconfig-mode");
    if (mode !== undefined && !/^[0-7]{3,4}$/.test(mode)) errors.push(`invalid write-kubeconfig-mode "${mode}"`);
    if (errors.length > 0) throw new StartError(errors.join("; "), loaded);

    const baseName = str(cfg, "node-name") ?? host.hostName;
    const nodeName = bool(cfg, "with-node-id") ? `${baseName}-${state.nodeId}` : baseName;
    const lan = ifaces.find((i) => i.name === "eth0");
    const internalIPs = list(cfg, "node-ip").length > 0 ? list(cfg, "node-ip") : lan && lan.ipv4[0] ? [lan.ipv4[0]] : [];
    const externalIPs = list(cfg, "node-external-ip");
    const isServer = host.role === "server";
    const joining = server !== undefined && server !== "";
    const critical = isServer ? criticalOf(cfg) : {};

    return withLock(host.clusterDir, () => {
        const nodes = allNodes(host);
        // Joining server: critical values must match the server it joins.
        let clusterBackend = isServer ? (critical["flannel-backend"] ?? "vxlan") : "vxlan";
        if (joining && server !== undefined) {
            const target = urlHost(server) ?? "";
            const peer = nodes.find((n) => n.name !== nodeName && n.role === "server" && n.addresses.includes(target));
            if (!peer) {
                logLine(host, "warn", `server URL ${server} matches no registered server (the double does not block on it)`);
            } else {
                if (!isServer) clusterBackend = peer.critical["flannel-backend"] ?? "vxlan";
                if (isServer) {
                    const mismatched = Object.keys(CRITICAL_DEFAULTS).filter((k) => peer.critical[k] !== critical[k]);
                    if (mismatched.length > 0) {
                        throw new StartError(
                            `starting kubernetes: preparing server: failed to validate server configuration: critical configuration value mismatch between servers: ${mismatched
                                .map((k) => `${k} (this server ${JSON.stringify(critical[k])}, ${peer.name} ${JSON.stringify(peer.critical[k])})`)
                                .join(", ")}`,
                            loaded,
                        );
                    }
                }
            }
        }

        // Certificates (servers): added SANs apply on restart, removed ones need the regenerate file.
        let certSans = state.certSans;
        if (isServer) {
            const wanted = [
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "localhost",
                "127.0.0.1",
                "::1",
                host.hostName,
                nodeName,
                ...internalIPs,
                ...externalIPs,
                ...list(cfg, "tls-san"),
            ];
            const coveredBefore = certSans;
            const movedTo = internalIPs.find((ip) => coveredBefore.length > 0 && !coveredBefore.includes(ip));
            state.peerTlsMismatch =
                movedTo !== undefined
                    ? `tls: ${movedTo} does not match any of the certificate's IP SANs (${coveredBefore.filter((san) => /^\d/.test(san)).join(", ")})`
                    : null;
            if (state.peerTlsMismatch) logLine(host, "error", `etcd peer handshake failed: ${state.peerTlsMismatch}`);
            if (fs.existsSync(DYNAMIC_CERT_REGENERATE)) {
                certSans = [];
                fs.rmSync(DYNAMIC_CERT_REGENERATE, { force: true });
                logLine(host, "info", "dynamic-cert-regenerate found: regenerating serving certificates from scratch");
            }
            certSans = [...new Set([...certSans, ...wanted])];
            state.certSans = certSans;
            writeServerFiles(cfg, nodeName);
        }

        // flannel
        const existing = readJson<NodeRecord | null>(nodeFile(host, nodeName), null);
        const overwrite = existing?.annotations["flannel.alpha.coreos.com/public-ip-overwrite"] ?? "";
        const flannelIfaceInfo = flannelIface !== undefined ? ifaces.find((i) => i.name === flannelIface) : undefined;
        const publicIp = overwrite !== "" ? overwrite : (flannelIfaceInfo?.ipv4[0] ?? internalIPs[0] ?? null);
        state.flannel = flannelLink(host, cue, clusterBackend, flannelIface, internalIPs, ifaces, publicIp);

        const hostAddresses = ifaces.flatMap((i) => i.ipv4).filter((a) => !a.startsWith("127."));
        const labels: Record<string, string> = existing?.labels ?? {
            "kubernetes.io/hostname": nodeName,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": "k3s",
            ...Object.fromEntries(
                list(cfg, "node-label").map((l) => {
                    const i = l.indexOf("=");
                    return i < 0 ? [l, ""] : [l.slice(0, i), l.slice(i + 1)];
                }),
            ),
        };
        const etcd = isServer && (bool(cfg, "cluster-init") || joining || (existing?.etcd ?? false));
        if (isServer) {
            labels["node-role.kubernetes.io/control-plane"] = "true";
            labels["node-role.kubernetes.io/master"] = "true";
            if (etcd) labels["node-role.kubernetes.io/etcd"] = "true";
        }
        const taints: Taint[] =
            existing?.taints ??
            list(cfg, "node-taint").map((t) => {
                const [kv = "", effect = "NoSchedule"] = t.split(":");
                const [key = "", value] = kv.split("=");
                return value === undefined ? { key, effect } : { key, value, effect };
            });
        const annotations: Record<string, string> = { ...(existing?.annotations ?? {}) };
        annotations["k3s.io/hostname"] = host.hostName;
        annotations["k3s.io/internal-ip"] = internalIPs.join(",");
        if (externalIPs.length > 0) annotations["k3s.io/external-ip"] = externalIPs.join(",");
        else delete annotations["k3s.io/external-ip"];
        annotations["k3s.io/node-config-hash"] = loaded.sha.slice(0, 52).toUpperCase();
        annotations["k3s.io/node-args"] = JSON.stringify(nodeArgs(host.role, cfg));
        annotations["node.alpha.kubernetes.io/ttl"] = "0";
        if (clusterBackend !== "none" && publicIp !== null) {
            annotations["flannel.alpha.coreos.com/public-ip"] = publicIp;
            annotations["flannel.alpha.coreos.com/backend-type"] = clusterBackend === "wireguard-native" ? "extension" : clusterBackend;
            annotations["flannel.alpha.coreos.com/kube-subnet-manager"] = "true";
        }
        const rec: NodeRecord = {
            name: nodeName,
            uid: existing?.uid ?? crypto.randomUUID(),
            hostName: host.hostName,
            role: host.role,
            etcd,
            hostSideStateDir: host.hostSideStateDir,
            registeredAt: existing?.registeredAt ?? new Date().toISOString(),
            labels,
            annotations,
            taints,
            unschedulable: existing?.unschedulable ?? false,
            internalIPs,
            externalIPs,
            addresses: [...new Set([...hostAddresses, ...internalIPs, ...externalIPs, host.hostName, nodeName, ...list(cfg, "tls-san")])],
            kubeletVersion: host.k3sVersion,
            critical,
        };
        saveNode(host, rec);
        return { nodeName };
    });
}
