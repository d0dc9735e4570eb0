import { K3S_CONFIG_PATH, renderK3sConfigYaml } from "./k3s/config";
import { NEBULA_FILES, controlServerMember, nebulaMembers, renderNebulaConfigYaml } from "./nebula/config";
import { clusterObjectFile, renderClusterEdge } from "./edge/objects";
import { rolloutOrder } from "./k3s/order";
import { SSH_PATHS, renderSshConfig } from "./access/sshConfig";
import { controlServerPublicFiles, controlServerSecretFiles, digitalOceanVolumeDevice, headscaleVolumeName, renderCloudInit } from "./control/files";
import { DERPER_PLIST_PATH, DERPER_UNIT_PATH, renderDerperPlist, renderDerperUnit } from "./derp/derper";
import { renderDerpMapYaml } from "./control/headscale";
import { throwawayPki } from "./nebula/issuance";
import { createHash } from "node:crypto";
import { stringify as stringifyYaml } from "yaml";
import type { Fleet } from "../stacks/schema";

/*
 * Everything the fleet's hosts would receive, as a map from a path relative to the render
 * root to file content. The `render` command writes this tree; tests assert on it.
 */

export type RenderedFiles = Map<string, string>;

export interface RenderOptions {
    /** The clock certificates are issued against. */
    now: Date;
    /** 64 hex chars: reproduces the throwaway Nebula PKI byte for byte. Random when absent. */
    pkiSeedHex?: string;
}

export interface RenderResult {
    files: RenderedFiles;
    /** Things the operator must know about this output, printed by the render command. */
    notes: string[];
}

/** `<root>/hosts/<host>/<absolute path on the host>` */
export function hostFilePath(host: string, absolutePath: string): string {
    return `hosts/${host}${absolutePath}`;
}

export function renderFleetFiles(fleet: Fleet, options: RenderOptions): RenderResult {
    const files: RenderedFiles = new Map();
    const order = rolloutOrder(fleet);
    for (const node of order) {
        files.set(hostFilePath(node.name, K3S_CONFIG_PATH), renderK3sConfigYaml(fleet, node));
    }
    files.set("rollout.json", `${JSON.stringify({ order: order.map((node) => node.name) }, null, 2)}\n`);

    const members = nebulaMembers(fleet);
    const pki = throwawayPki(fleet, members, options.now, options.pkiSeedHex);
    for (const member of members) {
        const identity = pki.members.get(member.name);
        if (!identity) {
            throw new Error(`no Nebula identity was issued for ${member.name}`);
        }
        files.set(hostFilePath(member.name, NEBULA_FILES.config), renderNebulaConfigYaml(fleet, members, member));
        files.set(hostFilePath(member.name, NEBULA_FILES.ca), pki.ca.certPem);
        files.set(hostFilePath(member.name, NEBULA_FILES.cert), identity.certPem);
        files.set(hostFilePath(member.name, NEBULA_FILES.key), identity.keyPem);
    }
    for (const path of SSH_PATHS) {
        files.set(`ssh/${path}.conf`, renderSshConfig(fleet, path));
    }

    // The control server: Headscale's files with throwaway keys, and the droplet's cloud-init.
    const controlMember = controlServerMember(members);
    const controlName = controlMember.name;
    const lighthouse = pki.members.get(controlName);
    if (!lighthouse) {
        throw new Error("the control server has no Nebula identity");
    }
    const throwawayKey = (label: string): string => `privkey:${createHash("sha256").update(`${pki.seedHex}:${label}`).digest("hex")}`;
    const controlFiles = [
        ...controlServerPublicFiles(fleet, renderDerpMapYaml(fleet), {
            configYaml: renderNebulaConfigYaml(fleet, members, controlMember),
            caCertPem: pki.ca.certPem,
            certPem: lighthouse.certPem,
        }),
        ...controlServerSecretFiles({ noiseKey: throwawayKey("noise"), derpKey: throwawayKey("derp") }, lighthouse.keyPem),
    ];
    for (const file of controlFiles) {
        files.set(hostFilePath(controlName, file.path), file.content);
    }
    const controlHost = fleet.controlServer.host;
    if (controlHost.kind === "droplet") {
        files.set(`hosts/${controlName}/cloud-init.yaml`, renderCloudInit(controlFiles, digitalOceanVolumeDevice(headscaleVolumeName(controlHost.name))));
    }
    for (const relay of fleet.derpRelays) {
        const host = fleet.nodes.find((node) => node.name === relay.host);
        if (host?.os === "macos") {
            files.set(hostFilePath(relay.host, DERPER_PLIST_PATH), renderDerperPlist(fleet, relay));
        } else {
            files.set(hostFilePath(relay.host, DERPER_UNIT_PATH), renderDerperUnit(fleet, relay));
        }
    }
    if (fleet.edge.enabled) {
        for (const object of renderClusterEdge(fleet)) {
            files.set(clusterObjectFile(object), stringifyYaml(object));
        }
    }
    return {
        files,
        notes: [
            `nebula: certificates are signed by a throwaway CA (seed ${pki.seedHex}); the real CA and host keys live in Pulumi state. Pass --pki-seed to reproduce this output.`,
            "headscale: the noise and DERP keys here are throwaway too; the real ones are stack secrets. A self-signed relay's certificate pin (certname) is computed from the certificate in Pulumi state, so the rendered derp.yaml has none.",
        ],
    };
}
