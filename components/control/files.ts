import { Document } from "yaml";
import { remoteScript } from "../remote/scripts";
import type { PlannedFile } from "../hostPlan";

/*
 * The droplet's cloud-init: every file the SSH deliveries write, the bootstrap script and its
 * parameters, and one runcmd to run it. A rebuilt droplet comes up from this alone; the SSH
 * steps after it find every file in place.
 */

export const BOOTSTRAP_PATH = "/usr/local/sbin/shortcircuit-bootstrap";
export const BOOTSTRAP_PARAMS_PATH = "/etc/shortcircuit/bootstrap.params";

/** The bootstrap exactly as the SSH step runs it: the payload reader, then control/bootstrap.sh. */
export function bootstrapExecutable(): string {
    return `#!/usr/bin/env bash\n${remoteScript("control/bootstrap.sh")}`;
}

export function renderCloudInit(files: readonly PlannedFile<string>[], bootstrapParams: string): string {
    const document = new Document({
        package_update: true,
        packages: ["curl", "ca-certificates"],
        write_files: [
            ...files.map((file) => ({ path: file.path, content: file.content, permissions: `0${file.mode.toString(8)}`, owner: "root:root" })),
            { path: BOOTSTRAP_PARAMS_PATH, content: bootstrapParams, permissions: "0600", owner: "root:root" },
            { path: BOOTSTRAP_PATH, content: bootstrapExecutable(), permissions: "0755", owner: "root:root" },
        ],
        // A fixed command line: every value the bootstrap needs is in its parameters file.
        runcmd: [["sh", "-c", `exec ${BOOTSTRAP_PATH} < ${BOOTSTRAP_PARAMS_PATH}`]],
    });
    // cloud-init recognises user data by this first line.
    return `#cloud-config\n${document.toString({ lineWidth: 0 })}`;
}

/** The droplet's Headscale volume; the name is also how the droplet finds its device. */
export function headscaleVolumeName(dropletName: string): string {
    return `${dropletName}-headscale`;
}

/** DigitalOcean exposes an attached volume under this stable device path. */
export function digitalOceanVolumeDevice(volumeName: string): string {
    return `/dev/disk/by-id/scsi-0DO_Volume_${volumeName}`;
}
