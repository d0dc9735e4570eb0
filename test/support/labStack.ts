import type { LabHostSpec } from "../../scripts/lab";
import { rawFleet, type Raw } from "./fixtures";

/*
 * The committed lab stack, moved onto a lab-fleet bridge: the same nodes, overlays and
 * cluster, with LAN addresses on the test bridge and SSH over the LAN. Shared by the rollout
 * tests and the rollout benchmark.
 */

export interface LabStackOnBridge {
    config: Raw;
    hosts: LabHostSpec[];
}

/** `bridgePrefix` is the first three octets of a /24 in 198.18.0.0/15, e.g. "198.18.91". */
export function labStackOnBridge(bridgePrefix: string, readyTimeoutSeconds: number, bootstrap = false): LabStackOnBridge {
    const lastOctet: Record<string, number> = { "lab-server-01": 11, "lab-agent-01": 21, "lab-agent-02": 22, "lab-relay-01": 2 };
    const config: Raw = rawFleet("lab");
    config.sites[0].lan = `${bridgePrefix}.0/24`;
    for (const node of config.nodes) {
        node.lan.address = `${bridgePrefix}.${lastOctet[node.name]}`;
    }
    config.access.sshVia = "lan";
    config.cluster.readyTimeoutSeconds = readyTimeoutSeconds;
    config.cluster.bootstrap = bootstrap;
    const hosts: LabHostSpec[] = config.nodes
        .filter((node: Raw) => node.role === "server" || node.role === "agent")
        .map((node: Raw) => ({
            name: node.name,
            role: node.role,
            lanAddress: node.lan.address,
            tailnetAddress: node.tailnet.address,
            nebulaAddress: node.nebula.address,
            nebulaIface: config.overlays.nebula.interface,
        }));
    return { config, hosts };
}
