import { stringify as stringifyYaml } from "yaml";
import { SSH_PATHS, renderSshConfig } from "../../components/access/sshConfig";
import { clusterObjectFile, edgeObjects } from "../../components/edge/objects";
import type { FleetPlan } from "../../components/plan";
import { throwawayPlan, type ThrowawayPlanOptions } from "./throwawayPlan";
import type { Fleet } from "../../stacks/schema";

/*
 * `render`'s output: the plan with throwaway identities, as a map from a path relative to the
 * render root to a file. Hosts' files sit under hosts/<host>/<path on the host> with the mode
 * the host gets; the operator's files (SSH configs, rollout order) and the cluster's objects
 * beside them.
 */

export interface RenderedFile {
    content: string;
    mode: number;
}

export type RenderedFiles = Map<string, RenderedFile>;

export interface RenderResult {
    files: RenderedFiles;
    /** Things the operator must know about this output, printed by the render command. */
    notes: string[];
}

/** `<root>/hosts/<host>/<absolute path on the host>` */
export function hostFilePath(host: string, absolutePath: string): string {
    return `hosts/${host}${absolutePath}`;
}

/** Every (host, path) → file the plan delivers to a host, the control server's cloud-init aside. */
export function plannedHostFiles(plan: FleetPlan<string>): Map<string, RenderedFile> {
    const files = new Map<string, RenderedFile>();
    const add = (host: string, list: readonly { path: string; mode: number; content: string }[]): void => {
        for (const file of list) {
            files.set(hostFilePath(host, file.path), { content: file.content, mode: file.mode });
        }
    };
    for (const node of plan.k3sNodes) {
        add(node.name, node.files);
    }
    for (const host of [...plan.nebulaHosts.map((each) => ({ name: each.name, deliveries: [each.delivery] })), ...plan.relays, plan.control]) {
        for (const delivery of host.deliveries) {
            add(host.name, [...delivery.publicFiles, ...delivery.secretFiles]);
        }
    }
    for (const workstation of plan.nebulaWorkstations) {
        add(workstation.name, workstation.files);
    }
    return files;
}

export function renderFleetFiles(fleet: Fleet, options: ThrowawayPlanOptions): RenderResult {
    const { plan, seedHex } = throwawayPlan(fleet, options);
    const files: RenderedFiles = plannedHostFiles(plan);
    if (plan.control.cloudInit !== undefined) {
        files.set(`hosts/${plan.control.name}/cloud-init.yaml`, { content: plan.control.cloudInit, mode: 0o600 });
    }
    files.set("rollout.json", { content: `${JSON.stringify({ order: plan.k3sNodes.map((node) => node.name) }, null, 2)}\n`, mode: 0o644 });
    for (const path of SSH_PATHS) {
        files.set(`ssh/${path}.conf`, { content: renderSshConfig(fleet, path), mode: 0o644 });
    }
    for (const object of plan.edge ? edgeObjects(plan.edge) : []) {
        files.set(clusterObjectFile(object), { content: stringifyYaml(object), mode: 0o644 });
    }
    return {
        files,
        notes: [
            `identities are throwaway (seed ${seedHex}): the Nebula CA and host keys, the Headscale noise and DERP keys and the K3s token here are derived from it; the real ones live in Pulumi state and stack secrets. Pass --pki-seed to reproduce this output.`,
            "a self-signed relay's certificate and its pin (certname) come from Pulumi state: the rendered relay certificate is a placeholder and derp.yaml has no certname.",
        ],
    };
}
