import { K3S_CONFIG_PATH, renderK3sConfigYaml } from "./k3sConfig";
import { NEBULA_FILES, nebulaMembers, renderNebulaConfigYaml } from "./nebulaConfig";
import { rolloutOrder } from "./rollout";
import { SSH_PATHS, renderSshConfig } from "./sshConfig";
import { throwawayPki } from "../pki/nebulaIssuance";
import type { Fleet } from "../../stacks/schema";

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
    return {
        files,
        notes: [
            `nebula: certificates are signed by a throwaway CA (seed ${pki.seedHex}); the real CA and host keys live in Pulumi state. Pass --pki-seed to reproduce this output.`,
        ],
    };
}
