import { Document } from "yaml";
import {
    HEADSCALE_FILES,
    HEADSCALE_STATE_DIR,
    renderHeadscaleConfigYaml,
    renderHeadscalePolicy,
} from "./headscale";
import { NEBULA_FILES } from "../nebula/config";
import { NEBULA_UNIT_PATH, renderNebulaUnit } from "../nebula/service";
import { versions } from "../versions";
import type { DeliveredFile } from "../remote/fileSync";
import type { Fleet } from "../../stacks/schema";

/*
 * Everything the control server holds, as files, and the droplet's cloud-init that lays
 * them down on first boot. The same file list is delivered over SSH afterwards (and to an
 * existing host instead of a droplet), so a config change updates the server in place and a
 * rebuilt droplet comes up with the same files.
 */

export interface ControlServerSecrets {
    /** `privkey:<64 hex>`: Headscale's noise key; clients pin the server by it. */
    noiseKey: string;
    /** `privkey:<64 hex>`: the embedded DERP server's key. */
    derpKey: string;
}

export interface LighthouseFiles {
    configYaml: string;
    caCertPem: string;
    certPem: string;
    keyPem: string;
}

/** Public files: config, policy, DERP map, Nebula config/CA/cert and units. */
export function controlServerPublicFiles(fleet: Fleet, derpMapYaml: string, nebula: Omit<LighthouseFiles, "keyPem">): DeliveredFile[] {
    return [
        { path: HEADSCALE_FILES.config, content: renderHeadscaleConfigYaml(fleet), mode: 0o644 },
        { path: HEADSCALE_FILES.policy, content: renderHeadscalePolicy(), mode: 0o644 },
        { path: HEADSCALE_FILES.derpMap, content: derpMapYaml, mode: 0o644 },
        { path: NEBULA_FILES.ca, content: nebula.caCertPem, mode: 0o644 },
        { path: NEBULA_FILES.cert, content: nebula.certPem, mode: 0o644 },
        { path: NEBULA_FILES.config, content: nebula.configYaml, mode: 0o644 },
        { path: NEBULA_UNIT_PATH, content: renderNebulaUnit(), mode: 0o644 },
    ];
}

/** Secret files: the two Headscale keys and the lighthouse's Nebula key. */
export function controlServerSecretFiles(secrets: ControlServerSecrets, nebulaKeyPem: string): DeliveredFile[] {
    return [
        { path: HEADSCALE_FILES.noiseKey, content: `${secrets.noiseKey}\n`, mode: 0o600 },
        { path: HEADSCALE_FILES.derpKey, content: `${secrets.derpKey}\n`, mode: 0o600 },
        { path: NEBULA_FILES.key, content: nebulaKeyPem, mode: 0o600 },
    ];
}

export const BOOTSTRAP_PATH = "/usr/local/sbin/shortcircuit-bootstrap";

/**
 * Installs the pinned Headscale and Nebula, mounts the Headscale volume (waiting, bounded, for
 * DigitalOcean to attach it), hands the state to the headscale user and starts both services.
 * Idempotent: a rerun on a built host changes nothing. Arguments: <volume device or "none">
 * <headscale version> <nebula version>.
 */
export const CONTROL_BOOTSTRAP_SCRIPT = `#!/usr/bin/env bash
set -euo pipefail
device="$1"; headscale_version="\${2#v}"; nebula_version="$3"
state=${HEADSCALE_STATE_DIR}
arch="$(dpkg --print-architecture)"
if [ "$device" != none ]; then
  for _ in $(seq 1 120); do [ -e "$device" ] && break; sleep 5; done
  [ -e "$device" ] || { echo "bootstrap: volume $device was never attached" >&2; exit 1; }
  mkdir -p "$state"
  grep -qs " $state " /etc/fstab || echo "$device $state ext4 defaults,nofail,discard 0 2" >> /etc/fstab
  mountpoint -q "$state" || mount "$state"
fi
if ! headscale version 2>/dev/null | grep -qF "$headscale_version"; then
  curl -fsSL --retry 5 -o /tmp/headscale.deb "https://github.com/juanfont/headscale/releases/download/v\${headscale_version}/headscale_\${headscale_version}_linux_\${arch}.deb"
  DEBIAN_FRONTEND=noninteractive apt-get install -y /tmp/headscale.deb
  rm -f /tmp/headscale.deb
fi
if ! nebula -version 2>/dev/null | grep -qF "\${nebula_version#v}"; then
  curl -fsSL --retry 5 -o /tmp/nebula.tar.gz "https://github.com/slackhq/nebula/releases/download/\${nebula_version}/nebula-linux-\${arch}.tar.gz"
  tar -xzf /tmp/nebula.tar.gz -C /usr/local/bin nebula nebula-cert
  rm -f /tmp/nebula.tar.gz
fi
mkdir -p "$state/cache" /var/run/headscale
chown -R headscale:headscale "$state" ${HEADSCALE_FILES.noiseKey} ${HEADSCALE_FILES.derpKey} /var/run/headscale
systemctl daemon-reload
systemctl enable --now nebula.service headscale.service
systemctl restart nebula.service headscale.service
`;

/** The droplet's user data: every file, the bootstrap script, and one runcmd to run it. */
export function renderCloudInit(files: readonly DeliveredFile[], volumeDevice: string): string {
    const document = new Document({
        package_update: true,
        packages: ["curl", "ca-certificates"],
        write_files: [
            ...files.map((file) => ({
                path: file.path,
                content: file.content,
                permissions: `0${file.mode.toString(8)}`,
                owner: "root:root",
            })),
            { path: BOOTSTRAP_PATH, content: CONTROL_BOOTSTRAP_SCRIPT, permissions: "0755", owner: "root:root" },
        ],
        runcmd: [[BOOTSTRAP_PATH, volumeDevice, versions.headscale, versions.nebula]],
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
