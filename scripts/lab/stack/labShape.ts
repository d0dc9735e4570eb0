/**
 * The lab stack's shape on a lab fleet: a committed stack file's fleet, rewritten so that every
 * host is a lab host (generalised in the next commit).
 */
import { rawFleetFromStackFile, readStackFile, stackFilePath } from "../../../stacks/stackFile";

/** Loosely typed access to a raw stack-file fleet object (it is validated by parseFleet afterwards). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type RawFleet = any;

/** A committed stack file's raw fleet object, freshly parsed so the caller may change it. */
export function committedFleet(stack: "prod" | "lab"): RawFleet {
    return rawFleetFromStackFile(readStackFile(stackFilePath(stack))) as RawFleet;
}

/** The lab stack with its control server on a fleet host (`lab-control-01`) instead of a droplet. */
export function labWithExistingControlHost(): RawFleet {
    const raw: RawFleet = committedFleet("lab");
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
