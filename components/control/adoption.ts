import * as digitalocean from "@pulumi/digitalocean";
import { configRunError } from "../../stacks/load";
import type { ControlHostPlan, FirewallRule } from "./plan";

/*
 * Adopting a running control server changes nothing on DigitalOcean. Before any resource is
 * declared, the program reads the objects named under `adopt` and compares them with what the
 * stack file says; a difference is refused with `<config path>: <reason>` lines (object, field,
 * both values, what to do), because an import that differs would otherwise go on to update,
 * resize or replace the running server (Pulumi carries such an import out: = import, ~ update).
 */

type DropletHost = Extract<ControlHostPlan, { kind: "droplet" }>;
type Adopt = NonNullable<DropletHost["adopt"]>;

/** What the reads found; undefined where the object does not exist. */
export interface AdoptedObjects {
    droplet?: { id: string; name: string; region: string; size: string; image: string; volumeIds: string[] };
    reservedIp?: { ipAddress: string; region: string; dropletId?: string };
    volume?: { id: string; name: string; region?: string; size: number; dropletIds: string[] };
    firewall?: { id: string; name: string; dropletIds: string[]; inbound: FirewallRule[]; outbound: FirewallRule[] };
}

const PATH = "fleet.controlServer.host";

/** A rule as a comparable line: protocol, ports, addresses as a sorted set. */
function ruleKey(rule: FirewallRule): string {
    const ports = rule.protocol === "icmp" ? "" : ` ${rule.portRange === "all" || rule.portRange === undefined ? "1-65535" : rule.portRange}`;
    return `${rule.protocol}${ports} ${[...new Set(rule.addresses)].sort().join(",")}`;
}

function rulesText(rules: readonly FirewallRule[]): string {
    return rules.map(ruleKey).sort().join("; ");
}

/** Every difference between the stack file and the running objects, as `<path>: <reason>` lines. */
export function adoptionProblems(host: DropletHost, adopt: Adopt, found: AdoptedObjects): string[] {
    const problems: string[] = [];
    const differ = (path: string, object: string, field: string, running: string | number, wanted: string | number, fix: string): void => {
        if (String(running) !== String(wanted)) {
            problems.push(`${path}: ${object} has ${field} ${JSON.stringify(running)}, the stack file says ${JSON.stringify(wanted)}; ${fix}`);
        }
    };
    const keep = "adoption changes nothing: set the stack file to the running value (change it after adoption, as a normal update)";
    const { droplet, reservedIp, volume, firewall } = found;
    if (!droplet) {
        problems.push(
            `${PATH}.adopt.dropletId: no droplet ${adopt.dropletId} exists. If it was adopted before and has been lost, the stack already holds the reserved IP and the volume: delete adopt and run up to build a new droplet (docs/runbooks/rebuilding-a-lighthouse.md)`,
        );
    } else {
        differ(`${PATH}.name`, `droplet ${adopt.dropletId}`, "name", droplet.name, host.name, keep);
        differ(`${PATH}.region`, `droplet ${adopt.dropletId}`, "region", droplet.region, host.region, keep);
        differ(`${PATH}.size`, `droplet ${adopt.dropletId}`, "size", droplet.size, host.size, keep);
        differ(`${PATH}.image`, `droplet ${adopt.dropletId}`, "image", droplet.image, host.image, `${keep} (a different image would replace the droplet)`);
    }
    if (!reservedIp) {
        problems.push(`${PATH}.adopt.reservedIp: no reserved IP ${adopt.reservedIp} exists in this account`);
    } else {
        differ(`${PATH}.region`, `reserved IP ${adopt.reservedIp}`, "region", reservedIp.region, host.region, keep);
        // The provider's getReservedIp (4.80.1, Terraform provider v2.99.1) does not return the
        // droplet; where it does, a wrong one is refused here. Either way the IP assignment's
        // import (`<ip>,<droplet>`) reads it and fails on a mismatch before any step that writes:
        // every SSH step waits for that assignment.
        if (reservedIp.dropletId !== undefined) {
            differ(
                `${PATH}.adopt.reservedIp`,
                `reserved IP ${adopt.reservedIp}`,
                "droplet",
                reservedIp.dropletId,
                adopt.dropletId,
                "adopt the droplet the address is assigned to (hs.kub0.io points at it); the program never moves the address during adoption",
            );
        }
    }
    if (!volume) {
        problems.push(
            `${PATH}.volumeName: no volume named ${JSON.stringify(host.volumeName)} in ${host.region}; set volumeName to the name of the volume holding Headscale's database (doctl compute volume list)`,
        );
    } else {
        differ(
            `${PATH}.adopt.volumeId`,
            `volume ${JSON.stringify(host.volumeName)}`,
            "id",
            volume.id,
            adopt.volumeId,
            "name the volume the droplet mounts at /var/lib/headscale",
        );
        differ(`${PATH}.volumeSizeGb`, `volume ${adopt.volumeId}`, "size (GB)", volume.size, host.volumeSizeGb, keep);
        if (!volume.dropletIds.includes(adopt.dropletId)) {
            problems.push(
                `${PATH}.adopt.volumeId: volume ${adopt.volumeId} is attached to ${volume.dropletIds.length > 0 ? `droplet ${volume.dropletIds.join(", ")}` : "no droplet"}, not ${adopt.dropletId}: Headscale's database must be on it and mounted at /var/lib/headscale before adoption (docs/runbooks/adopting.md, step 2)`,
            );
        }
    }
    if (adopt.firewallId !== undefined) {
        if (!firewall) {
            problems.push(`${PATH}.adopt.firewallId: no firewall ${adopt.firewallId} exists; remove firewallId to let the program make its own`);
        } else {
            differ(
                `${PATH}.adopt.firewallId`,
                `firewall ${adopt.firewallId}`,
                "name",
                firewall.name,
                `${host.name}-fw`,
                "rename it (doctl compute firewall update) or remove firewallId",
            );
            const fix = "the firewall's rules are the program's: make them these, or remove firewallId and the program makes its own beside it";
            differ(`${PATH}.adopt.firewallId`, `firewall ${adopt.firewallId}`, "inbound rules", rulesText(firewall.inbound), rulesText(host.inbound), fix);
            differ(`${PATH}.adopt.firewallId`, `firewall ${adopt.firewallId}`, "outbound rules", rulesText(firewall.outbound), rulesText(host.outbound), fix);
            if (!firewall.dropletIds.includes(adopt.dropletId)) {
                problems.push(
                    `${PATH}.adopt.firewallId: firewall ${adopt.firewallId} does not cover droplet ${adopt.dropletId}; add the droplet to it or remove firewallId`,
                );
            }
        }
    }
    return problems;
}

/** A read that finds nothing is undefined; any other failure (no token, API down) fails the run. */
export async function readOrMissing<T>(read: () => Promise<T>): Promise<T | undefined> {
    try {
        return await read();
    } catch (error) {
        const text = String((error as Error).message ?? error);
        if (/\b404\b|not found|could not be found|no [a-z ]*found|does not exist/i.test(text)) {
            return undefined;
        }
        throw error;
    }
}

/** Reads the running objects `adopt` names through the DigitalOcean provider (reads only). */
export async function readAdoptedObjects(host: DropletHost, adopt: Adopt): Promise<AdoptedObjects> {
    const [droplet, reservedIp, volume, firewall] = await Promise.all([
        readOrMissing(() => digitalocean.getDroplet({ id: Number(adopt.dropletId) })),
        readOrMissing(() => digitalocean.getReservedIp({ ipAddress: adopt.reservedIp })),
        readOrMissing(() => digitalocean.getVolume({ name: host.volumeName, region: host.region })),
        adopt.firewallId === undefined ? Promise.resolve(undefined) : readOrMissing(() => digitalocean.getFirewall({ firewallId: adopt.firewallId as string })),
    ]);
    const ids = (values: readonly (number | string)[] | undefined): string[] => (values ?? []).map(String);
    return {
        droplet: droplet && {
            id: String(droplet.id),
            name: droplet.name,
            region: droplet.region,
            size: droplet.size,
            image: droplet.image,
            volumeIds: ids(droplet.volumeIds),
        },
        reservedIp: reservedIp && {
            ipAddress: reservedIp.ipAddress,
            region: reservedIp.region,
            dropletId: reservedIp.dropletId ? String(reservedIp.dropletId) : undefined,
        },
        volume: volume && { id: volume.id, name: volume.name, region: volume.region, size: volume.size, dropletIds: ids(volume.dropletIds) },
        firewall: firewall && {
            id: firewall.id,
            name: firewall.name,
            dropletIds: ids(firewall.dropletIds),
            inbound: firewall.inboundRules.map((rule) => ({
                protocol: protocolOf(rule.protocol),
                portRange: rule.portRange,
                addresses: rule.sourceAddresses ?? [],
            })),
            outbound: firewall.outboundRules.map((rule) => ({
                protocol: protocolOf(rule.protocol),
                portRange: rule.portRange,
                addresses: rule.destinationAddresses ?? [],
            })),
        },
    };
}

/**
 * For a droplet with `adopt`: reads the running objects and fails the run with every difference
 * (a RunError, so only the `<config path>: <reason>` lines print). Nothing else has been declared
 * yet, so a refusal leaves DigitalOcean and every host untouched.
 */
export async function refuseAdoptionDifferences(host: ControlHostPlan): Promise<void> {
    if (host.kind !== "droplet" || !host.adopt) {
        return;
    }
    const problems = adoptionProblems(host, host.adopt, await readAdoptedObjects(host, host.adopt));
    if (problems.length > 0) {
        throw configRunError(problems);
    }
}

function protocolOf(protocol: string): FirewallRule["protocol"] {
    if (protocol !== "tcp" && protocol !== "udp" && protocol !== "icmp") {
        throw new Error(`the adopted firewall has a rule of protocol ${JSON.stringify(protocol)}, which the program does not make`);
    }
    return protocol;
}
