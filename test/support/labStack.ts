import type { LabHostSpec } from "../../scripts/lab";
import { committedFleet, deriveLabShape, labHostSpec } from "../../scripts/lab/stack/labShape";
import type { Raw } from "./fixtures";

/*
 * The committed lab stack, moved onto a lab-fleet bridge by the lab command's derivation
 * (scripts/lab/stack/labShape.ts), its droplet kept: the same nodes, overlays and cluster, with
 * LAN addresses on the test bridge and SSH over the LAN. Shared by the rollout tests and the
 * rollout benchmark, which start only its K3s nodes.
 */

export interface LabStackOnBridge {
    config: Raw;
    hosts: LabHostSpec[];
}

/** `bridgePrefix` is the first three octets of a /24 in 198.18.0.0/15, e.g. "198.18.91". */
export function labStackOnBridge(bridgePrefix: string, readyTimeoutSeconds: number, bootstrap = false): LabStackOnBridge {
    const shape = deriveLabShape(committedFleet("lab"), { bridgePrefix, readyTimeoutSeconds, controlServer: "droplet" });
    const config: Raw = shape.fleet;
    config.cluster.bootstrap = bootstrap;
    const hosts: LabHostSpec[] = shape.hosts.filter((host) => shape.k3sNodes.includes(host.name)).map((host) => labHostSpec(shape, host));
    return { config, hosts };
}
