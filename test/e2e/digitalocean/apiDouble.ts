import * as crypto from "node:crypto";
import * as http from "node:http";
import type { AddressInfo } from "node:net";

/*
 * A loopback TEST DOUBLE of the DigitalOcean API v2 (https://docs.digitalocean.com/reference/api/),
 * serving exactly the endpoints the provider double (scripts/lab/provider-doubles/digitalocean)
 * calls: droplets and droplet actions, reserved IPs and their actions, volumes and volume
 * actions, firewalls, account SSH keys, and GET /v2/actions/<id>. It is not DigitalOcean.
 *
 * JSON shapes follow the API reference (the fields godo and the Terraform provider read);
 * errors are DigitalOcean's body {"id": ..., "message": ...}: 401 "Unauthorized", 404
 * "not_found" ("The resource you were accessing could not be found."), 422
 * "unprocessable_entity", 409 "conflict" (deleting an attached volume: "attached volume cannot be
 * deleted", doctl#358). 422 messages taken from public reports: "Attachment not found" (detach of a
 * volume that is not on that droplet, doctl#207), "Droplet already has a pending event." (the
 * provider retries on it), "SSH Key is already in use on your account"; the other 422 messages are
 * this double's wording.
 *
 * Rules: a reserved IP is on at most one droplet and a droplet holds at most one reserved IP
 * (assigning an assigned IP moves it); a volume is attached to at most one droplet, in its
 * region; a droplet runs one action at a time; resize needs a powered-off droplet; deleting a
 * droplet unassigns its reserved IP, detaches its volumes and removes it from firewalls.
 *
 * Timing: a new droplet is "new" until bootDelayMs has passed AND onDropletCreated has resolved,
 * then "active" (a rejected hook makes it "errored"; see hookErrors). Actions complete after
 * actionDelayMs (0: at once, in the same request). A deleted droplet stays readable (status
 * "off") until onDropletDeleted resolves, then answers 404.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface ApiCall {
    method: string;
    /** Path without the query string. */
    path: string;
    query: string;
    body: Json | undefined;
    status: number;
}

export interface RuleTargets {
    addresses?: string[];
    droplet_ids?: number[];
    tags?: string[];
    load_balancer_uids?: string[];
    kubernetes_ids?: string[];
}
export interface InboundRule {
    protocol: string;
    ports?: string;
    sources?: RuleTargets;
}
export interface OutboundRule {
    protocol: string;
    ports?: string;
    destinations?: RuleTargets;
}

export interface DoSshKey {
    id: number;
    name: string;
    publicKey: string;
    fingerprint: string;
}

export interface DoDroplet {
    id: number;
    name: string;
    region: string;
    size: string;
    /** Slug, or the numeric image id as a string. */
    image: string;
    status: "new" | "active" | "off" | "errored";
    locked: boolean;
    monitoring: boolean;
    ipv6: boolean;
    backups: boolean;
    /** ssh_keys as sent (ids or fingerprints). */
    sshKeys: (number | string)[];
    /** The public keys those resolve to. */
    publicKeys: string[];
    userData?: string;
    tags: string[];
    volumeIds: string[];
    publicIpv4: string;
    privateIpv4: string;
    ipv6Address?: string;
    createdAt: string;
    deleted: boolean;
}

export interface DoReservedIp {
    ip: string;
    region: string;
    dropletId: number | null;
}

export interface DoVolume {
    id: string;
    name: string;
    region: string;
    sizeGb: number;
    description: string;
    filesystemType: string;
    filesystemLabel: string;
    dropletIds: number[];
    tags: string[];
    createdAt: string;
}

export interface DoFirewall {
    id: string;
    name: string;
    status: "waiting" | "succeeded";
    dropletIds: number[];
    inboundRules: InboundRule[];
    outboundRules: OutboundRule[];
    tags: string[];
    createdAt: string;
}

export interface DoAction {
    id: number;
    status: "in-progress" | "completed" | "errored";
    type: string;
    startedAt: string;
    completedAt: string | null;
    resourceId: number;
    resourceType: "droplet" | "reserved_ip" | "volume";
    regionSlug: string;
}

export interface ApiState {
    sshKeys: DoSshKey[];
    droplets: DoDroplet[];
    reservedIps: DoReservedIp[];
    volumes: DoVolume[];
    firewalls: DoFirewall[];
    actions: DoAction[];
}

export type DropletHook = (droplet: DoDroplet, publicKeys: string[]) => void | Promise<void>;

export interface ApiDoubleOptions {
    /** Addresses handed out to new reserved IPs, in order. */
    reservedIpPool: string[];
    /** Droplets' public IPv4 addresses, in order (default 203.0.113.10, .11, …). */
    dropletAddressPool?: string[];
    /** new → active delay of a created droplet (default 200 ms). */
    bootDelayMs?: number;
    /** Delay before an action completes (default 0: at once). */
    actionDelayMs?: number;
    /** Bearer token the double accepts (default: random). */
    token?: string;
    onDropletCreated?: DropletHook;
    onDropletDeleted?: DropletHook;
}

export type ObjectKind = "droplet" | "reservedIp" | "volume" | "firewall" | "sshKey";

export interface ApiDouble {
    url: string;
    token: string;
    calls: ApiCall[];
    /** Errors thrown by the droplet hooks. */
    hookErrors: Error[];
    /** The calls that are not GETs. */
    mutations(): ApiCall[];
    seedSshKey(key: { name: string; publicKey: string }): DoSshKey;
    seedDroplet(droplet: {
        name: string;
        region: string;
        size: string;
        image: string;
        monitoring?: boolean;
        ipv6?: boolean;
        sshKeys?: (number | string)[];
        tags?: string[];
        userData?: string;
    }): DoDroplet;
    seedReservedIp(ip: { region: string; dropletId?: number; ip?: string }): DoReservedIp;
    seedVolume(volume: { name: string; region: string; sizeGb: number; description?: string; filesystemType?: string; dropletId?: number }): DoVolume;
    seedFirewall(firewall: { name: string; dropletIds?: number[]; inboundRules?: InboundRule[]; outboundRules?: OutboundRule[] }): DoFirewall;
    state(): ApiState;
    /** Removes an object as if someone deleted it elsewhere (side effects of a droplet deletion included; no hook, no call logged). */
    deleteOutOfBand(kind: ObjectKind, id: string | number): void;
    /** Resolves when every pending timer and hook has run. */
    settled(): Promise<void>;
    stop(): Promise<void>;
}

const NOT_FOUND = { id: "not_found", message: "The resource you were accessing could not be found." };

class ApiError extends Error {
    constructor(
        readonly status: number,
        readonly errorId: string,
        message: string,
    ) {
        super(message);
    }
}
const unprocessable = (message: string): ApiError => new ApiError(422, "unprocessable_entity", message);
const notFound = (): ApiError => new ApiError(404, NOT_FOUND.id, NOT_FOUND.message);

/** MD5 fingerprint (aa:bb:…) of an OpenSSH public key line, as DigitalOcean shows it; undefined if malformed. */
export function md5Fingerprint(publicKey: string): string | undefined {
    const parts = publicKey.trim().split(/\s+/);
    if (parts.length < 2 || !/^(ssh-|ecdsa-|sk-)/.test(parts[0])) return undefined;
    const blob = Buffer.from(parts[1], "base64");
    if (blob.length < 8 || blob.toString("base64").replace(/=+$/, "") !== parts[1].replace(/=+$/, "")) return undefined;
    const hex = crypto.createHash("md5").update(blob).digest("hex");
    return hex.match(/../g)!.join(":");
}

/** A fresh ed25519 public key in OpenSSH form (for seeds and test programs). */
export function opensshPublicKey(comment = "shortcircuit-test"): string {
    const { publicKey } = crypto.generateKeyPairSync("ed25519");
    const raw = Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url");
    const field = (b: Buffer): Buffer => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
    const blob = Buffer.concat([field(Buffer.from("ssh-ed25519")), field(raw)]);
    return `ssh-ed25519 ${blob.toString("base64")} ${comment}`;
}

/** vCPUs, memory (MiB), disk (GB), monthly price of a size slug like s-1vcpu-1gb or s-2vcpu-4gb-120gb-intel. */
export function sizeOf(slug: string): { vcpus: number; memory: number; disk: number; priceMonthly: number } {
    const vcpus = Number(/(\d+)vcpu/.exec(slug)?.[1] ?? "1");
    const mem = /-(\d+(?:\.\d+)?)(gb|mb)/.exec(slug);
    const memory = mem ? Math.round(Number(mem[1]) * (mem[2] === "gb" ? 1024 : 1)) : 1024;
    const explicitDisk = /-\d+(?:\.\d+)?(?:gb|mb)-(\d+)gb/.exec(slug);
    const disk = explicitDisk ? Number(explicitDisk[1]) : Math.max(10, Math.round((memory / 1024) * 25));
    return { vcpus, memory, disk, priceMonthly: Math.max(4, Math.round((memory / 1024) * 6)) };
}

const REGION_NAMES: Record<string, string> = {
    nyc1: "New York 1",
    nyc3: "New York 3",
    sfo3: "San Francisco 3",
    ams3: "Amsterdam 3",
    fra1: "Frankfurt 1",
    lon1: "London 1",
    sgp1: "Singapore 1",
    tor1: "Toronto 1",
    blr1: "Bangalore 1",
    syd1: "Sydney 1",
};
const region = (slug: string): Json => ({ name: REGION_NAMES[slug] ?? slug, slug, features: [], available: true, sizes: [] });

export async function startApiDouble(options: ApiDoubleOptions): Promise<ApiDouble> {
    const token = options.token ?? crypto.randomBytes(24).toString("hex");
    const bootDelayMs = options.bootDelayMs ?? 200;
    const actionDelayMs = options.actionDelayMs ?? 0;
    const dropletPool = options.dropletAddressPool ?? Array.from({ length: 200 }, (_, i) => `203.0.113.${i + 10}`);
    const calls: ApiCall[] = [];
    const hookErrors: Error[] = [];
    const keys = new Map<number, DoSshKey>();
    const droplets = new Map<number, DoDroplet>();
    const reservedIps = new Map<string, DoReservedIp>();
    const volumes = new Map<string, DoVolume>();
    const firewalls = new Map<string, DoFirewall>();
    const actions = new Map<number, DoAction>();
    const usedReservedIps = new Set<string>();
    const usedDropletAddresses = new Set<string>();
    const timers = new Set<NodeJS.Timeout>();
    const pending = new Set<Promise<void>>();
    let nextKeyId = 41_000_001;
    let nextDropletId = 500_000_001;
    let nextActionId = 2_000_000_001;
    let stopped = false;
    const now = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, "Z");

    const later = (ms: number, fn: () => void): void => {
        if (ms <= 0) {
            fn();
            return;
        }
        const timer = setTimeout(() => {
            timers.delete(timer);
            if (!stopped) fn();
        }, ms);
        timers.add(timer);
    };
    const track = (promise: Promise<void>): void => {
        pending.add(promise);
        void promise.finally(() => pending.delete(promise));
    };

    // ------------------------------------------------------------ helpers
    const takeReservedIp = (): string => {
        const ip = options.reservedIpPool.find((candidate) => !usedReservedIps.has(candidate) && !reservedIps.has(candidate));
        if (!ip) throw unprocessable("TEST DOUBLE: the reserved IP pool is exhausted");
        usedReservedIps.add(ip);
        return ip;
    };
    const takeDropletAddress = (): string => {
        const ip = dropletPool.find((candidate) => !usedDropletAddresses.has(candidate));
        if (!ip) throw unprocessable("TEST DOUBLE: the droplet address pool is exhausted");
        usedDropletAddresses.add(ip);
        return ip;
    };
    const liveDroplet = (id: number): DoDroplet => {
        const d = droplets.get(id);
        if (!d || d.deleted) throw notFound();
        return d;
    };
    const resolveKeys = (sshKeys: (number | string)[]): string[] =>
        sshKeys.map((ref) => {
            const key = [...keys.values()].find((k) => k.id === Number(ref) || k.fingerprint === ref);
            if (!key) throw unprocessable(`TEST DOUBLE: ssh key ${String(ref)} is not on the account`);
            return key.publicKey;
        });
    const newAction = (type: string, resourceType: DoAction["resourceType"], resourceId: number, regionSlug: string, apply: () => void): DoAction => {
        const action: DoAction = {
            id: nextActionId++,
            status: "in-progress",
            type,
            startedAt: now(),
            completedAt: null,
            resourceId,
            resourceType,
            regionSlug,
        };
        actions.set(action.id, action);
        later(actionDelayMs, () => {
            apply();
            action.status = "completed";
            action.completedAt = now();
        });
        return action;
    };
    const dropletBusy = (id: number): boolean =>
        [...actions.values()].some((a) => a.resourceType === "droplet" && a.resourceId === id && a.status === "in-progress" && a.type !== "create");
    const dropletActions = (id: number): DoAction[] => [...actions.values()].filter((a) => a.resourceType === "droplet" && a.resourceId === id);

    const makeDroplet = (input: {
        name: string;
        region: string;
        size: string;
        image: string;
        monitoring?: boolean;
        ipv6?: boolean;
        backups?: boolean;
        sshKeys?: (number | string)[];
        tags?: string[];
        userData?: string;
        status: DoDroplet["status"];
    }): DoDroplet => {
        const publicKeys = resolveKeys(input.sshKeys ?? []);
        const id = nextDropletId++;
        const droplet: DoDroplet = {
            id,
            name: input.name,
            region: input.region.toLowerCase(),
            size: input.size.toLowerCase(),
            image: input.image,
            status: input.status,
            locked: false,
            monitoring: input.monitoring ?? false,
            ipv6: input.ipv6 ?? false,
            backups: input.backups ?? false,
            sshKeys: input.sshKeys ?? [],
            publicKeys,
            ...(input.userData !== undefined ? { userData: input.userData } : {}),
            tags: input.tags ?? [],
            volumeIds: [],
            publicIpv4: takeDropletAddress(),
            privateIpv4: `10.116.0.${(id % 250) + 2}`,
            ...(input.ipv6 ? { ipv6Address: `2001:db8::${id.toString(16)}` } : {}),
            createdAt: now(),
            deleted: false,
        };
        droplets.set(id, droplet);
        return droplet;
    };

    /** DigitalOcean's side effects of a droplet going away. */
    const detachEverything = (droplet: DoDroplet): void => {
        for (const r of reservedIps.values()) if (r.dropletId === droplet.id) r.dropletId = null;
        for (const v of volumes.values()) v.dropletIds = v.dropletIds.filter((id) => id !== droplet.id);
        for (const f of firewalls.values()) f.dropletIds = f.dropletIds.filter((id) => id !== droplet.id);
        droplet.volumeIds = [];
    };

    const normalizePorts = (protocol: string, ports: string | undefined): string => {
        if (protocol === "icmp") return "0";
        if (!ports) throw unprocessable(`TEST DOUBLE: ports is required for ${protocol} rules`);
        return ports === "all" ? "0" : ports;
    };
    const cleanTargets = (t: RuleTargets | undefined): RuleTargets => {
        const out: RuleTargets = {};
        if (t?.addresses?.length) out.addresses = [...t.addresses];
        if (t?.droplet_ids?.length) out.droplet_ids = [...t.droplet_ids];
        if (t?.tags?.length) out.tags = [...t.tags];
        if (t?.load_balancer_uids?.length) out.load_balancer_uids = [...t.load_balancer_uids];
        if (t?.kubernetes_ids?.length) out.kubernetes_ids = [...t.kubernetes_ids];
        return out;
    };
    const firewallFrom = (body: Record<string, any>, existing?: DoFirewall): DoFirewall => {
        if (typeof body.name !== "string" || body.name === "") throw unprocessable("name is required");
        const dropletIds: number[] = Array.isArray(body.droplet_ids) ? body.droplet_ids.map(Number) : [];
        for (const id of dropletIds) {
            const d = droplets.get(id);
            if (!d || d.deleted) throw unprocessable(`TEST DOUBLE: droplet ${id} does not exist`);
        }
        const inbound: InboundRule[] = (Array.isArray(body.inbound_rules) ? body.inbound_rules : []).map((r: InboundRule) => ({
            protocol: r.protocol,
            ports: normalizePorts(r.protocol, r.ports),
            sources: cleanTargets(r.sources),
        }));
        const outbound: OutboundRule[] = (Array.isArray(body.outbound_rules) ? body.outbound_rules : []).map((r: OutboundRule) => ({
            protocol: r.protocol,
            ports: normalizePorts(r.protocol, r.ports),
            destinations: cleanTargets(r.destinations),
        }));
        const firewall: DoFirewall = {
            id: existing?.id ?? crypto.randomUUID(),
            name: body.name,
            status: actionDelayMs > 0 ? "waiting" : "succeeded",
            dropletIds: [...new Set(dropletIds)],
            inboundRules: inbound,
            outboundRules: outbound,
            tags: Array.isArray(body.tags) ? body.tags.map(String) : [],
            createdAt: existing?.createdAt ?? now(),
        };
        if (firewall.status === "waiting") later(actionDelayMs, () => (firewall.status = "succeeded"));
        return firewall;
    };

    // ------------------------------------------------------------ JSON
    const keyJson = (k: DoSshKey): Json => ({ id: k.id, fingerprint: k.fingerprint, public_key: k.publicKey, name: k.name });
    const dropletJson = (d: DoDroplet): Json => {
        const size = sizeOf(d.size);
        const features = ["private_networking"];
        if (d.monitoring) features.push("monitoring");
        if (d.ipv6) features.push("ipv6");
        if (d.backups) features.push("backups");
        const imageId = /^\d+$/.test(d.image)
            ? Number(d.image)
            : 100_000_000 + (parseInt(crypto.createHash("md5").update(d.image).digest("hex").slice(0, 6), 16) % 1_000_000);
        return {
            id: d.id,
            name: d.name,
            memory: size.memory,
            vcpus: size.vcpus,
            disk: size.disk,
            locked: d.locked,
            status: d.status,
            kernel: null,
            created_at: d.createdAt,
            features,
            backup_ids: [],
            next_backup_window: null,
            snapshot_ids: [],
            image: {
                id: imageId,
                name: d.image,
                distribution: d.image.split("-")[0] ?? "",
                slug: /^\d+$/.test(d.image) ? null : d.image,
                public: true,
                regions: [d.region],
                created_at: "2025-01-01T00:00:00Z",
                min_disk_size: 7,
                type: "base",
                size_gigabytes: 2.5,
                description: "",
                tags: [],
                status: "available",
            },
            volume_ids: [...d.volumeIds],
            size: {
                slug: d.size,
                memory: size.memory,
                vcpus: size.vcpus,
                disk: size.disk,
                transfer: 1,
                price_monthly: size.priceMonthly,
                price_hourly: Math.round((size.priceMonthly / 672) * 100000) / 100000,
                regions: [d.region],
                available: true,
                description: "Basic",
            },
            size_slug: d.size,
            networks: {
                v4:
                    d.status === "new"
                        ? []
                        : [
                              { ip_address: d.publicIpv4, netmask: "255.255.255.0", gateway: d.publicIpv4.replace(/\.\d+$/, ".1"), type: "public" },
                              { ip_address: d.privateIpv4, netmask: "255.255.240.0", gateway: "10.116.0.1", type: "private" },
                          ],
                v6: d.ipv6Address && d.status !== "new" ? [{ ip_address: d.ipv6Address, netmask: 64, gateway: "2001:db8::1", type: "public" }] : [],
            },
            region: region(d.region),
            tags: [...d.tags],
            vpc_uuid: "5a4981aa-9653-4bd1-bef5-d6bff52042e4",
        };
    };
    const reservedIpJson = (r: DoReservedIp): Json => ({
        ip: r.ip,
        region: region(r.region),
        droplet: r.dropletId !== null && droplets.has(r.dropletId) ? dropletJson(droplets.get(r.dropletId)!) : null,
        locked: false,
        project_id: "746c6152-2fa2-11ed-92d3-27aaa54e4988",
    });
    const volumeJson = (v: DoVolume): Json => ({
        id: v.id,
        region: region(v.region),
        droplet_ids: [...v.dropletIds],
        name: v.name,
        description: v.description,
        size_gigabytes: v.sizeGb,
        created_at: v.createdAt,
        filesystem_type: v.filesystemType,
        filesystem_label: v.filesystemLabel,
        tags: [...v.tags],
    });
    const firewallJson = (f: DoFirewall): Json => ({
        id: f.id,
        name: f.name,
        status: f.status,
        created_at: f.createdAt,
        pending_changes: [],
        inbound_rules: f.inboundRules as unknown as Json,
        outbound_rules: f.outboundRules as unknown as Json,
        droplet_ids: [...f.dropletIds],
        tags: [...f.tags],
    });
    const actionJson = (a: DoAction): Json => ({
        id: a.id,
        status: a.status,
        type: a.type,
        started_at: a.startedAt,
        completed_at: a.completedAt,
        resource_id: a.resourceId,
        resource_type: a.resourceType,
        region: region(a.regionSlug),
        region_slug: a.regionSlug,
    });
    const list = (name: string, items: Json[]): Json => ({ [name]: items, links: {}, meta: { total: items.length } });

    // ------------------------------------------------------------ droplet lifecycle
    const createDroplet = (body: Record<string, any>): DoDroplet => {
        for (const k of ["name", "region", "size", "image"]) {
            if (body[k] === undefined || body[k] === "") throw unprocessable(`TEST DOUBLE: ${k} is required`);
        }
        const droplet = makeDroplet({
            name: String(body.name),
            region: String(body.region),
            size: String(body.size),
            image: String(body.image),
            monitoring: Boolean(body.monitoring),
            ipv6: Boolean(body.ipv6),
            backups: Boolean(body.backups),
            sshKeys: Array.isArray(body.ssh_keys) ? body.ssh_keys : [],
            tags: Array.isArray(body.tags) ? body.tags.map(String) : [],
            ...(typeof body.user_data === "string" ? { userData: body.user_data } : {}),
            status: "new",
        });
        const create: DoAction = {
            id: nextActionId++,
            status: "in-progress",
            type: "create",
            startedAt: now(),
            completedAt: null,
            resourceId: droplet.id,
            resourceType: "droplet",
            regionSlug: droplet.region,
        };
        actions.set(create.id, create);
        let booted = false;
        let hooked = !options.onDropletCreated;
        const finish = (): void => {
            if (!booted || !hooked || droplet.deleted || droplet.status !== "new") return;
            droplet.status = "active";
            create.status = "completed";
            create.completedAt = now();
        };
        later(bootDelayMs, () => {
            booted = true;
            finish();
        });
        if (options.onDropletCreated) {
            const hook = options.onDropletCreated;
            track(
                Promise.resolve()
                    .then(() => hook(snapshotDroplet(droplet), [...droplet.publicKeys]))
                    .then(
                        () => {
                            hooked = true;
                            finish();
                        },
                        (error: unknown) => {
                            hookErrors.push(error instanceof Error ? error : new Error(String(error)));
                            droplet.status = "errored";
                            create.status = "errored";
                        },
                    ),
            );
        }
        return droplet;
    };
    const deleteDroplet = (droplet: DoDroplet, runHook: boolean): void => {
        detachEverything(droplet);
        droplet.status = "off";
        droplet.deleted = true;
        const remove = (): void => {
            droplets.delete(droplet.id);
        };
        if (runHook && options.onDropletDeleted) {
            const hook = options.onDropletDeleted;
            track(
                Promise.resolve()
                    .then(() => hook(snapshotDroplet(droplet), [...droplet.publicKeys]))
                    .catch((error: unknown) => {
                        hookErrors.push(error instanceof Error ? error : new Error(String(error)));
                    })
                    .finally(remove),
            );
        } else {
            remove();
        }
    };
    const snapshotDroplet = (d: DoDroplet): DoDroplet => structuredClone(d);

    const dropletAction = (droplet: DoDroplet, body: Record<string, any>): DoAction => {
        if (dropletBusy(droplet.id)) throw unprocessable("Droplet already has a pending event.");
        const type = String(body.type ?? "");
        const act = (apply: () => void): DoAction => newAction(type, "droplet", droplet.id, droplet.region, apply);
        switch (type) {
            case "power_off":
            case "shutdown":
                if (droplet.status === "off") throw unprocessable("Droplet is already powered off.");
                return act(() => (droplet.status = "off"));
            case "power_on":
                if (droplet.status === "active") throw unprocessable("TEST DOUBLE: Droplet is already powered on.");
                return act(() => (droplet.status = "active"));
            case "resize": {
                if (droplet.status !== "off") throw unprocessable("TEST DOUBLE: the Droplet must be powered off to be resized.");
                const size = String(body.size ?? "");
                if (!size) throw unprocessable("TEST DOUBLE: size is required");
                return act(() => (droplet.size = size.toLowerCase()));
            }
            case "rename": {
                const name = String(body.name ?? "");
                if (!name) throw unprocessable("TEST DOUBLE: name is required");
                return act(() => (droplet.name = name));
            }
            case "enable_ipv6":
                return act(() => {
                    droplet.ipv6 = true;
                    droplet.ipv6Address = `2001:db8::${droplet.id.toString(16)}`;
                });
            default:
                throw unprocessable(`TEST DOUBLE: droplet action type ${JSON.stringify(type)} is not served`);
        }
    };

    // ------------------------------------------------------------ reserved IPs
    const reservedIpAction = (r: DoReservedIp, body: Record<string, any>): DoAction => {
        const type = String(body.type ?? "");
        if (type === "assign") {
            const dropletId = Number(body.droplet_id);
            const droplet = droplets.get(dropletId);
            if (!droplet || droplet.deleted) throw unprocessable(`TEST DOUBLE: Droplet ${String(body.droplet_id)} not found`);
            if (droplet.region !== r.region) throw unprocessable("TEST DOUBLE: the reserved IP and the Droplet must be in the same region");
            const other = [...reservedIps.values()].find((x) => x.dropletId === dropletId && x.ip !== r.ip);
            if (other) throw unprocessable(`TEST DOUBLE: Droplet ${dropletId} already has reserved IP ${other.ip}`);
            return newAction("assign_ip", "reserved_ip", ipNumber(r.ip), r.region, () => (r.dropletId = dropletId));
        }
        if (type === "unassign") {
            if (r.dropletId === null) throw unprocessable("TEST DOUBLE: the reserved IP is not assigned to a Droplet");
            return newAction("unassign_ip", "reserved_ip", ipNumber(r.ip), r.region, () => (r.dropletId = null));
        }
        throw unprocessable(`TEST DOUBLE: reserved IP action type ${JSON.stringify(type)} is not served`);
    };
    const ipNumber = (ip: string): number => ip.split(".").reduce((n, part) => n * 256 + Number(part), 0);

    // ------------------------------------------------------------ volumes
    const createVolume = (input: {
        name: string;
        region: string;
        sizeGb: number;
        description: string;
        filesystemType: string;
        filesystemLabel: string;
        tags: string[];
    }): DoVolume => {
        if (!input.name) throw unprocessable("TEST DOUBLE: name is required");
        if (!(input.sizeGb > 0)) throw unprocessable("TEST DOUBLE: size_gigabytes must be positive");
        if ([...volumes.values()].some((v) => v.name === input.name && v.region === input.region)) {
            throw unprocessable(`TEST DOUBLE: a volume named ${input.name} already exists in ${input.region}`);
        }
        const volume: DoVolume = { id: crypto.randomUUID(), dropletIds: [], createdAt: now(), ...input };
        volumes.set(volume.id, volume);
        return volume;
    };
    const attach = (volume: DoVolume, droplet: DoDroplet): void => {
        volume.dropletIds = [droplet.id];
        if (!droplet.volumeIds.includes(volume.id)) droplet.volumeIds.push(volume.id);
    };
    const volumeAction = (volume: DoVolume, body: Record<string, any>): DoAction => {
        const type = String(body.type ?? "");
        const vAct = (apply: () => void): DoAction => newAction(type === "resize" ? "resize" : `${type}_volume`, "volume", 0, volume.region, apply);
        if (type === "attach" || type === "detach") {
            const dropletId = Number(body.droplet_id);
            const droplet = droplets.get(dropletId);
            if (!droplet || droplet.deleted) throw new ApiError(404, NOT_FOUND.id, NOT_FOUND.message);
            if (type === "attach") {
                if (volume.dropletIds.length > 0) {
                    throw unprocessable(
                        volume.dropletIds[0] === dropletId
                            ? "TEST DOUBLE: Volume is already attached to this droplet"
                            : "Volume is already attached to another droplet",
                    );
                }
                if (droplet.region !== volume.region) throw unprocessable("TEST DOUBLE: the volume and the Droplet must be in the same region");
                if (dropletBusy(dropletId)) throw unprocessable("Droplet already has a pending event.");
                return vAct(() => attach(volume, droplet));
            }
            if (!volume.dropletIds.includes(dropletId)) throw unprocessable("Attachment not found");
            return vAct(() => {
                volume.dropletIds = volume.dropletIds.filter((id) => id !== dropletId);
                droplet.volumeIds = droplet.volumeIds.filter((id) => id !== volume.id);
            });
        }
        if (type === "resize") {
            const size = Number(body.size_gigabytes);
            if (!(size > volume.sizeGb)) throw unprocessable("TEST DOUBLE: a volume can only grow");
            return vAct(() => (volume.sizeGb = size));
        }
        throw unprocessable(`TEST DOUBLE: volume action type ${JSON.stringify(type)} is not served`);
    };

    // ------------------------------------------------------------ routing
    type Reply = { status: number; body?: Json };
    const route = (method: string, path: string, query: URLSearchParams, body: Record<string, any>): Reply => {
        const seg = path.split("/").filter(Boolean);
        if (seg[0] !== "v2") throw notFound();
        const [, collection, id, sub, subId] = seg;
        switch (collection) {
            case "account": {
                if (id !== "keys") break;
                const keyRef = sub;
                if (keyRef === undefined) {
                    if (method === "GET") return { status: 200, body: list("ssh_keys", [...keys.values()].map(keyJson)) };
                    if (method === "POST") {
                        const publicKey = String(body.public_key ?? "");
                        const fingerprint = md5Fingerprint(publicKey);
                        if (!body.name) throw unprocessable("TEST DOUBLE: name is required");
                        if (!fingerprint) throw unprocessable("TEST DOUBLE: Key invalid, key should be of the format `type key [comment]`");
                        if ([...keys.values()].some((k) => k.fingerprint === fingerprint)) throw unprocessable("SSH Key is already in use on your account");
                        const key: DoSshKey = { id: nextKeyId++, name: String(body.name), publicKey, fingerprint };
                        keys.set(key.id, key);
                        return { status: 201, body: { ssh_key: keyJson(key) } };
                    }
                    break;
                }
                if (subId !== undefined) break;
                const key = [...keys.values()].find((k) => String(k.id) === keyRef || k.fingerprint === keyRef);
                if (!key) throw notFound();
                if (method === "GET") return { status: 200, body: { ssh_key: keyJson(key) } };
                if (method === "PUT") {
                    if (typeof body.name === "string" && body.name) key.name = body.name;
                    return { status: 200, body: { ssh_key: keyJson(key) } };
                }
                if (method === "DELETE") {
                    keys.delete(key.id);
                    return { status: 204 };
                }
                break;
            }
            case "droplets": {
                if (id === undefined) {
                    if (method === "POST") {
                        const droplet = createDroplet(body);
                        const create = dropletActions(droplet.id).find((a) => a.type === "create")!;
                        return {
                            status: 202,
                            body: { droplet: dropletJson(droplet), links: { actions: [{ id: create.id, rel: "create", href: `/v2/actions/${create.id}` }] } },
                        };
                    }
                    if (method === "GET") {
                        const all = [...droplets.values()].filter((d) => !d.deleted && (!query.get("name") || d.name === query.get("name")));
                        return { status: 200, body: list("droplets", all.map(dropletJson)) };
                    }
                    break;
                }
                const droplet = droplets.get(Number(id));
                if (!droplet || (droplet.deleted && method !== "GET")) throw notFound();
                if (sub === undefined) {
                    if (method === "GET") return { status: 200, body: { droplet: dropletJson(droplet) } };
                    if (method === "DELETE") {
                        deleteDroplet(droplet, true);
                        return { status: 204 };
                    }
                    break;
                }
                if (sub === "actions") {
                    if (droplet.deleted) throw notFound();
                    if (subId === undefined && method === "GET") return { status: 200, body: list("actions", dropletActions(droplet.id).map(actionJson)) };
                    if (subId === undefined && method === "POST") return { status: 201, body: { action: actionJson(dropletAction(droplet, body)) } };
                    if (subId !== undefined && method === "GET") {
                        const a = actions.get(Number(subId));
                        if (!a || a.resourceType !== "droplet" || a.resourceId !== droplet.id) throw notFound();
                        return { status: 200, body: { action: actionJson(a) } };
                    }
                }
                break;
            }
            case "actions": {
                if (method !== "GET" || id === undefined || sub !== undefined) break;
                const a = actions.get(Number(id));
                if (!a) throw notFound();
                return { status: 200, body: { action: actionJson(a) } };
            }
            case "reserved_ips": {
                if (id === undefined) {
                    if (method === "POST") {
                        if (!body.region) throw unprocessable("TEST DOUBLE: region is required");
                        const r: DoReservedIp = { ip: takeReservedIp(), region: String(body.region).toLowerCase(), dropletId: null };
                        reservedIps.set(r.ip, r);
                        return { status: 202, body: { reserved_ip: reservedIpJson(r), links: {} } };
                    }
                    if (method === "GET") return { status: 200, body: list("reserved_ips", [...reservedIps.values()].map(reservedIpJson)) };
                    break;
                }
                const r = reservedIps.get(id);
                if (!r) throw notFound();
                if (sub === undefined) {
                    if (method === "GET") return { status: 200, body: { reserved_ip: reservedIpJson(r) } };
                    if (method === "DELETE") {
                        reservedIps.delete(r.ip);
                        return { status: 204 };
                    }
                    break;
                }
                if (sub === "actions") {
                    if (subId === undefined && method === "POST") return { status: 201, body: { action: actionJson(reservedIpAction(r, body)) } };
                    if (subId === undefined && method === "GET") {
                        const mine = [...actions.values()].filter((a) => a.resourceType === "reserved_ip" && a.resourceId === ipNumber(r.ip));
                        return { status: 200, body: list("actions", mine.map(actionJson)) };
                    }
                    if (subId !== undefined && method === "GET") {
                        const a = actions.get(Number(subId));
                        if (!a || a.resourceType !== "reserved_ip" || a.resourceId !== ipNumber(r.ip)) throw notFound();
                        return { status: 200, body: { action: actionJson(a) } };
                    }
                }
                break;
            }
            case "volumes": {
                if (id === undefined) {
                    if (method === "POST") {
                        const v = createVolume({
                            name: String(body.name ?? ""),
                            region: String(body.region ?? "").toLowerCase(),
                            sizeGb: Number(body.size_gigabytes),
                            description: typeof body.description === "string" ? body.description : "",
                            filesystemType: typeof body.filesystem_type === "string" ? body.filesystem_type : "",
                            filesystemLabel: typeof body.filesystem_label === "string" ? body.filesystem_label : "",
                            tags: Array.isArray(body.tags) ? body.tags.map(String) : [],
                        });
                        return { status: 201, body: { volume: volumeJson(v) } };
                    }
                    if (method === "GET") {
                        const name = query.get("name");
                        const reg = query.get("region");
                        const all = [...volumes.values()].filter((v) => (!name || v.name === name) && (!reg || v.region === reg));
                        return { status: 200, body: list("volumes", all.map(volumeJson)) };
                    }
                    break;
                }
                const v = volumes.get(id);
                if (!v) throw notFound();
                if (sub === undefined) {
                    if (method === "GET") return { status: 200, body: { volume: volumeJson(v) } };
                    if (method === "DELETE") {
                        if (v.dropletIds.length > 0) throw new ApiError(409, "conflict", "attached volume cannot be deleted");
                        volumes.delete(v.id);
                        return { status: 204 };
                    }
                    break;
                }
                if (sub === "actions" && subId === undefined && method === "POST") return { status: 202, body: { action: actionJson(volumeAction(v, body)) } };
                break;
            }
            case "firewalls": {
                if (id === undefined) {
                    if (method === "POST") {
                        const f = firewallFrom(body);
                        firewalls.set(f.id, f);
                        return { status: 202, body: { firewall: firewallJson(f) } };
                    }
                    if (method === "GET") return { status: 200, body: list("firewalls", [...firewalls.values()].map(firewallJson)) };
                    break;
                }
                const f = firewalls.get(id);
                if (!f) throw notFound();
                if (sub !== undefined) break;
                if (method === "GET") return { status: 200, body: { firewall: firewallJson(f) } };
                if (method === "PUT") {
                    const updated = firewallFrom(body, f);
                    firewalls.set(f.id, updated);
                    return { status: 200, body: { firewall: firewallJson(updated) } };
                }
                if (method === "DELETE") {
                    firewalls.delete(f.id);
                    return { status: 204 };
                }
                break;
            }
            default:
                // An endpoint the double does not serve: answered as not found, below.
                break;
        }
        throw notFound();
    };

    const server = http.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on("data", (chunk: Buffer) => chunks.push(chunk));
        req.on("end", () => {
            const url = new URL(req.url ?? "/", "http://127.0.0.1");
            const method = req.method ?? "GET";
            const text = Buffer.concat(chunks).toString("utf8");
            let body: Json | undefined;
            let reply: Reply;
            try {
                if (text) {
                    try {
                        body = JSON.parse(text) as Json;
                    } catch {
                        body = text;
                        throw new ApiError(400, "bad_request", "TEST DOUBLE: the request body is not JSON");
                    }
                }
                if (req.headers.authorization !== `Bearer ${token}`) throw new ApiError(401, "Unauthorized", "Unable to authenticate you");
                const input = body !== null && typeof body === "object" && !Array.isArray(body) ? (body as Record<string, any>) : {};
                reply = route(method, url.pathname, url.searchParams, input);
            } catch (error) {
                if (error instanceof ApiError) {
                    reply = { status: error.status, body: { id: error.errorId, message: error.message } };
                } else {
                    reply = { status: 500, body: { id: "server_error", message: `TEST DOUBLE: ${String(error)}` } };
                }
            }
            calls.push({ method, path: url.pathname, query: url.search.replace(/^\?/, ""), body, status: reply.status });
            const payload = reply.body === undefined ? "" : JSON.stringify(reply.body);
            res.writeHead(reply.status, {
                "Content-Type": "application/json; charset=utf-8",
                "Content-Length": Buffer.byteLength(payload),
                "X-Request-Id": crypto.randomUUID(),
            });
            res.end(payload);
        });
    });
    await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve());
    });
    const port = (server.address() as AddressInfo).port;

    const seedKeyRefs = (refs: (number | string)[] | undefined): (number | string)[] => refs ?? [];
    return {
        url: `http://127.0.0.1:${port}`,
        token,
        calls,
        hookErrors,
        mutations: () => calls.filter((c) => c.method !== "GET"),
        seedSshKey(key) {
            const fingerprint = md5Fingerprint(key.publicKey);
            if (!fingerprint) throw new Error(`seedSshKey: not an OpenSSH public key: ${key.publicKey}`);
            const k: DoSshKey = { id: nextKeyId++, name: key.name, publicKey: key.publicKey, fingerprint };
            keys.set(k.id, k);
            return structuredClone(k);
        },
        seedDroplet(d) {
            const droplet = makeDroplet({ ...d, sshKeys: seedKeyRefs(d.sshKeys), status: "active" });
            return structuredClone(droplet);
        },
        seedReservedIp(r) {
            let ip = r.ip;
            if (ip) usedReservedIps.add(ip);
            else ip = takeReservedIp();
            const reserved: DoReservedIp = { ip, region: r.region.toLowerCase(), dropletId: null };
            if (r.dropletId !== undefined) {
                const droplet = liveDroplet(r.dropletId);
                if (droplet.region !== reserved.region) throw new Error("seedReservedIp: the droplet is in another region");
                reserved.dropletId = r.dropletId;
            }
            reservedIps.set(ip, reserved);
            return structuredClone(reserved);
        },
        seedVolume(v) {
            const volume = createVolume({
                name: v.name,
                region: v.region.toLowerCase(),
                sizeGb: v.sizeGb,
                description: v.description ?? "",
                filesystemType: v.filesystemType ?? "",
                filesystemLabel: "",
                tags: [],
            });
            if (v.dropletId !== undefined) attach(volume, liveDroplet(v.dropletId));
            return structuredClone(volume);
        },
        seedFirewall(f) {
            const firewall = firewallFrom({
                name: f.name,
                droplet_ids: f.dropletIds ?? [],
                inbound_rules: f.inboundRules ?? [],
                outbound_rules: f.outboundRules ?? [],
            });
            firewall.status = "succeeded";
            firewalls.set(firewall.id, firewall);
            return structuredClone(firewall);
        },
        state() {
            return structuredClone({
                sshKeys: [...keys.values()],
                droplets: [...droplets.values()],
                reservedIps: [...reservedIps.values()],
                volumes: [...volumes.values()],
                firewalls: [...firewalls.values()],
                actions: [...actions.values()],
            });
        },
        deleteOutOfBand(kind, id) {
            switch (kind) {
                case "droplet": {
                    const droplet = liveDroplet(Number(id));
                    deleteDroplet(droplet, false);
                    return;
                }
                case "reservedIp":
                    if (!reservedIps.delete(String(id))) throw new Error(`no reserved IP ${id}`);
                    return;
                case "volume": {
                    const v = volumes.get(String(id));
                    if (!v) throw new Error(`no volume ${id}`);
                    for (const d of droplets.values()) d.volumeIds = d.volumeIds.filter((x) => x !== v.id);
                    volumes.delete(v.id);
                    return;
                }
                case "firewall":
                    if (!firewalls.delete(String(id))) throw new Error(`no firewall ${id}`);
                    return;
                case "sshKey":
                    if (!keys.delete(Number(id))) throw new Error(`no ssh key ${id}`);
                    return;
            }
        },
        async settled() {
            for (let i = 0; i < 1000 && (pending.size > 0 || timers.size > 0); i++) {
                await Promise.all([...pending]);
                if (timers.size > 0) await new Promise((resolve) => setTimeout(resolve, 10));
            }
        },
        stop() {
            stopped = true;
            for (const timer of timers) clearTimeout(timer);
            timers.clear();
            return new Promise<void>((resolve) => {
                server.closeAllConnections();
                server.close(() => resolve());
            });
        },
    };
}
