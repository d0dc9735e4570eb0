import { rawFleetFromStackFile, readStackFile, stackFilePath } from "../../stacks/stackFile";
import { parseFleet } from "../../stacks/validate";
import type { Fleet } from "../../stacks/schema";

/** A stack file's raw fleet object, freshly parsed so tests may mutate it. */
export function rawFleet(stack: "prod" | "lab"): Record<string, unknown> {
    return rawFleetFromStackFile(readStackFile(stackFilePath(stack))) as Record<string, unknown>;
}

export function validFleet(stack: "prod" | "lab"): Fleet {
    return parseFleet(rawFleet(stack)).fleet;
}

/** Loosely typed access for mutating raw config in guard tests. */
export type Raw = any;

/** The lab stack with its control server on a fleet host (`lab-control-01`) instead of a droplet. */
export function labWithExistingControlHost(): Raw {
    const raw: Raw = rawFleet("lab");
    raw.nodes.push({
        name: "lab-control-01",
        site: "lab",
        role: "standalone",
        arch: "amd64",
        os: "debian",
        lan: { interface: "eth0", address: "192.168.50.3" },
        tailnet: { address: "100.68.0.3" },
    });
    raw.controlServer.host = { kind: "existing", host: "lab-control-01" };
    return raw;
}
