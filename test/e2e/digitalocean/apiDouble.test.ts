/* eslint-disable @typescript-eslint/no-unsafe-return -- the probes hand back parsed API JSON */
import { md5Fingerprint, opensshPublicKey, sizeOf, startApiDouble, type ApiDouble, type ApiDoubleOptions } from "./apiDouble";

/*
 * The rules of the loopback DigitalOcean API TEST DOUBLE (apiDouble.ts): status codes and
 * DigitalOcean's error bodies, one droplet per reserved IP, one attachment per volume, one
 * droplet action at a time, the side effects of deleting a droplet, the hooks, the call log.
 * Loopback only.
 */

const NOT_FOUND = { id: "not_found", message: "The resource you were accessing could not be found." };

let api: ApiDouble | undefined;
afterEach(async () => {
    await api?.stop();
    api = undefined;
});

async function start(options: Partial<ApiDoubleOptions> = {}): Promise<ApiDouble> {
    api = await startApiDouble({ reservedIpPool: ["10.99.0.2", "10.99.0.3"], bootDelayMs: 0, ...options });
    return api;
}

async function call(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any }> {
    const response = await fetch(`${api!.url}${path}`, {
        method,
        headers: { Authorization: `Bearer ${token ?? api!.token}`, "Content-Type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
    for (let i = 0; i < 200; i++) {
        const value = await probe();
        if (value !== undefined) return value;
        await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(`timed out waiting for ${what}`);
}

async function activeDroplet(name = "control", region = "sfo3"): Promise<number> {
    const created = await call("POST", "/v2/droplets", { name, region, size: "s-1vcpu-1gb", image: "debian-12-x64", monitoring: true, ipv6: true, tags: [] });
    expect(created.status).toBe(202);
    const id = created.body.droplet.id as number;
    await until("active", async () => ((await call("GET", `/v2/droplets/${id}`)).body.droplet.status === "active" ? true : undefined));
    return id;
}

describe("DigitalOcean API TEST DOUBLE", () => {
    it("refuses a wrong token with 401 and answers unknown objects with DigitalOcean's 404 body", async () => {
        await start();
        expect(await call("GET", "/v2/droplets/1", undefined, "wrong")).toEqual({
            status: 401,
            body: { id: "Unauthorized", message: "Unable to authenticate you" },
        });
        expect(await call("GET", "/v2/droplets/1")).toEqual({ status: 404, body: NOT_FOUND });
        expect(await call("GET", "/v2/volumes/0b1c")).toEqual({ status: 404, body: NOT_FOUND });
        expect(await call("GET", "/v2/reserved_ips/10.99.0.2")).toEqual({ status: 404, body: NOT_FOUND });
        expect(api!.calls.map((c) => c.status)).toEqual([401, 404, 404, 404]);
    });

    it("ssh keys: MD5 fingerprint, the same key twice is refused, fetch by id or fingerprint", async () => {
        await start();
        const publicKey = opensshPublicKey("a");
        const created = await call("POST", "/v2/account/keys", { name: "k", public_key: publicKey });
        expect(created.status).toBe(201);
        expect(created.body.ssh_key.fingerprint).toBe(md5Fingerprint(publicKey));
        expect(created.body.ssh_key.fingerprint).toMatch(/^([0-9a-f]{2}:){15}[0-9a-f]{2}$/);
        expect((await call("POST", "/v2/account/keys", { name: "again", public_key: publicKey })).body).toEqual({
            id: "unprocessable_entity",
            message: "SSH Key is already in use on your account",
        });
        expect((await call("POST", "/v2/account/keys", { name: "bad", public_key: "not a key" })).status).toBe(422);
        expect((await call("GET", `/v2/account/keys/${created.body.ssh_key.fingerprint}`)).body.ssh_key.id).toBe(created.body.ssh_key.id);
        expect((await call("PUT", `/v2/account/keys/${created.body.ssh_key.id}`, { name: "renamed" })).body.ssh_key.name).toBe("renamed");
        expect((await call("DELETE", `/v2/account/keys/${created.body.ssh_key.id}`)).status).toBe(204);
        expect((await call("GET", `/v2/account/keys/${created.body.ssh_key.id}`)).status).toBe(404);
    });

    it("a droplet is new until booted and its hook has run, with the public keys of its ssh_keys", async () => {
        let release: () => void = () => undefined;
        const seen: string[][] = [];
        await start({
            onDropletCreated: (_droplet, keys) => {
                seen.push(keys);
                return new Promise<void>((resolve) => (release = resolve));
            },
        });
        const publicKey = opensshPublicKey("hook");
        const key = (await call("POST", "/v2/account/keys", { name: "k", public_key: publicKey })).body.ssh_key;
        const created = await call("POST", "/v2/droplets", {
            name: "d",
            region: "sfo3",
            size: "s-1vcpu-1gb",
            image: "debian-12-x64",
            ssh_keys: [key.fingerprint],
        });
        expect(created.status).toBe(202);
        expect(created.body.droplet.status).toBe("new");
        expect(created.body.droplet.networks.v4).toEqual([]);
        expect(created.body.links.actions[0].rel).toBe("create");
        await until("hook", () => Promise.resolve(seen.length > 0 ? true : undefined));
        expect(seen).toEqual([[publicKey]]);
        expect((await call("GET", `/v2/droplets/${created.body.droplet.id}`)).body.droplet.status).toBe("new");
        release();
        const droplet = await until("active", async () => {
            const d = (await call("GET", `/v2/droplets/${created.body.droplet.id}`)).body.droplet;
            return d.status === "active" ? d : undefined;
        });
        expect(droplet.networks.v4.find((n: any) => n.type === "public").ip_address).toBe("203.0.113.10");
        expect(droplet.size.slug).toBe("s-1vcpu-1gb");
        expect((await call("POST", "/v2/droplets", { name: "e", region: "sfo3", size: "s-1vcpu-1gb", image: "x", ssh_keys: [12345] })).status).toBe(422);
    });

    it("a rejected hook makes the droplet errored and is recorded", async () => {
        await start({ onDropletCreated: () => Promise.reject(new Error("lab host missing")) });
        const created = await call("POST", "/v2/droplets", { name: "d", region: "sfo3", size: "s-1vcpu-1gb", image: "debian-12-x64" });
        await until("errored", async () =>
            (await call("GET", `/v2/droplets/${created.body.droplet.id}`)).body.droplet.status === "errored" ? true : undefined,
        );
        expect(api!.hookErrors.map((e) => e.message)).toEqual(["lab host missing"]);
    });

    it("reserved IPs come from the pool; an IP is on one droplet and a droplet holds one IP", async () => {
        await start();
        const a = await activeDroplet("a");
        const b = await activeDroplet("b");
        const ip = (await call("POST", "/v2/reserved_ips", { region: "sfo3" })).body.reserved_ip;
        expect(ip.ip).toBe("10.99.0.2");
        expect(ip.droplet).toBeNull();
        const assign = await call("POST", "/v2/reserved_ips/10.99.0.2/actions", { type: "assign", droplet_id: a });
        expect(assign.status).toBe(201);
        expect(assign.body.action).toMatchObject({ type: "assign_ip", status: "completed", resource_type: "reserved_ip" });
        expect((await call("GET", `/v2/reserved_ips/10.99.0.2/actions/${assign.body.action.id}`)).body.action.status).toBe("completed");
        expect((await call("GET", "/v2/reserved_ips/10.99.0.2")).body.reserved_ip.droplet.id).toBe(a);
        // A second IP cannot go on a droplet that holds one.
        await call("POST", "/v2/reserved_ips", { region: "sfo3" });
        const second = await call("POST", "/v2/reserved_ips/10.99.0.3/actions", { type: "assign", droplet_id: a });
        expect(second.status).toBe(422);
        expect(second.body.id).toBe("unprocessable_entity");
        // Assigning an assigned IP elsewhere moves it.
        await call("POST", "/v2/reserved_ips/10.99.0.2/actions", { type: "assign", droplet_id: b });
        expect((await call("GET", "/v2/reserved_ips/10.99.0.2")).body.reserved_ip.droplet.id).toBe(b);
        expect((await call("POST", "/v2/reserved_ips/10.99.0.2/actions", { type: "unassign" })).status).toBe(201);
        expect((await call("POST", "/v2/reserved_ips/10.99.0.2/actions", { type: "unassign" })).status).toBe(422);
        expect((await call("POST", "/v2/reserved_ips", { region: "sfo3" })).body.id).toBe("unprocessable_entity");
        expect((await call("DELETE", "/v2/reserved_ips/10.99.0.2")).status).toBe(204);
        expect((await call("GET", "/v2/reserved_ips/10.99.0.2")).body).toEqual(NOT_FOUND);
    });

    it("a volume is attached to one droplet in its region; attached volumes cannot be deleted", async () => {
        await start();
        const a = await activeDroplet("a");
        const b = await activeDroplet("b");
        const other = await activeDroplet("c", "nyc3");
        const created = await call("POST", "/v2/volumes", {
            name: "data",
            region: "sfo3",
            size_gigabytes: 10,
            filesystem_type: "ext4",
            description: "db",
            tags: [],
        });
        expect(created.status).toBe(201);
        const id = created.body.volume.id as string;
        expect(created.body.volume).toMatchObject({ name: "data", size_gigabytes: 10, filesystem_type: "ext4", droplet_ids: [], region: { slug: "sfo3" } });
        expect((await call("POST", `/v2/volumes/${id}/actions`, { type: "attach", droplet_id: other })).status).toBe(422);
        const attach = await call("POST", `/v2/volumes/${id}/actions`, { type: "attach", droplet_id: a });
        expect(attach.status).toBe(202);
        expect((await call("GET", `/v2/actions/${attach.body.action.id}`)).body.action.completed_at).not.toBeNull();
        expect((await call("GET", `/v2/volumes/${id}`)).body.volume.droplet_ids).toEqual([a]);
        expect((await call("GET", `/v2/droplets/${a}`)).body.droplet.volume_ids).toEqual([id]);
        expect(await call("POST", `/v2/volumes/${id}/actions`, { type: "attach", droplet_id: b })).toEqual({
            status: 422,
            body: { id: "unprocessable_entity", message: "Volume is already attached to another droplet" },
        });
        expect((await call("POST", `/v2/volumes/${id}/actions`, { type: "detach", droplet_id: b })).body.message).toBe("Attachment not found");
        expect(await call("DELETE", `/v2/volumes/${id}`)).toEqual({ status: 409, body: { id: "conflict", message: "attached volume cannot be deleted" } });
        expect((await call("POST", `/v2/volumes/${id}/actions`, { type: "detach", droplet_id: a })).status).toBe(202);
        expect((await call("GET", `/v2/volumes?name=data&region=sfo3`)).body.volumes.map((v: any) => v.id)).toEqual([id]);
        expect((await call("GET", `/v2/volumes?name=data&region=nyc3`)).body.volumes).toEqual([]);
        expect((await call("POST", `/v2/volumes/${id}/actions`, { type: "resize", size_gigabytes: 5, region: "sfo3" })).status).toBe(422);
        expect((await call("POST", `/v2/volumes/${id}/actions`, { type: "resize", size_gigabytes: 20, region: "sfo3" })).status).toBe(202);
        expect((await call("DELETE", `/v2/volumes/${id}`)).status).toBe(204);
    });

    it("one droplet action at a time; resize needs a powered-off droplet; actions complete after the delay", async () => {
        await start({ actionDelayMs: 50 });
        const id = await activeDroplet();
        expect((await call("POST", `/v2/droplets/${id}/actions`, { type: "resize", size: "s-2vcpu-4gb", disk: true })).status).toBe(422);
        const off = await call("POST", `/v2/droplets/${id}/actions`, { type: "power_off" });
        expect(off.body.action.status).toBe("in-progress");
        expect(await call("POST", `/v2/droplets/${id}/actions`, { type: "rename", name: "x" })).toEqual({
            status: 422,
            body: { id: "unprocessable_entity", message: "Droplet already has a pending event." },
        });
        await until("power off", async () => ((await call("GET", `/v2/actions/${off.body.action.id}`)).body.action.status === "completed" ? true : undefined));
        expect((await call("GET", `/v2/droplets/${id}`)).body.droplet.status).toBe("off");
        const resize = await call("POST", `/v2/droplets/${id}/actions`, { type: "resize", size: "s-2vcpu-4gb", disk: true });
        expect(resize.status).toBe(201);
        await api!.settled();
        const droplet = (await call("GET", `/v2/droplets/${id}`)).body.droplet;
        expect(droplet.size_slug).toBe("s-2vcpu-4gb");
        expect(droplet.vcpus).toBe(2);
        expect(droplet.memory).toBe(4096);
        const listed = await call("GET", `/v2/droplets/${id}/actions?page=1&per_page=50`);
        expect(listed.body.actions.map((a: any) => [a.type, a.status])).toEqual([
            ["create", "completed"],
            ["power_off", "completed"],
            ["resize", "completed"],
        ]);
    });

    it("deleting a droplet unassigns its IP, detaches its volume, leaves its firewall; 404 once the hook ran", async () => {
        let release: () => void = () => undefined;
        const deleted: number[] = [];
        await start({
            onDropletDeleted: (droplet) => {
                deleted.push(droplet.id);
                return new Promise<void>((resolve) => (release = resolve));
            },
        });
        const id = await activeDroplet();
        const ip = api!.seedReservedIp({ region: "sfo3", dropletId: id });
        const volume = api!.seedVolume({ name: "data", region: "sfo3", sizeGb: 10, dropletId: id });
        const fw = await call("POST", "/v2/firewalls", {
            name: "fw",
            droplet_ids: [id],
            inbound_rules: [
                { protocol: "tcp", ports: "22", sources: { addresses: ["0.0.0.0/0"] } },
                { protocol: "icmp", sources: { addresses: ["0.0.0.0/0"] } },
            ],
            outbound_rules: [{ protocol: "tcp", ports: "all", destinations: { addresses: ["0.0.0.0/0", "::/0"] } }],
        });
        expect(fw.status).toBe(202);
        expect(fw.body.firewall.inbound_rules.map((r: any) => r.ports)).toEqual(["22", "0"]);
        expect(fw.body.firewall.outbound_rules[0].ports).toBe("0");
        expect((await call("DELETE", `/v2/droplets/${id}`)).status).toBe(204);
        expect((await call("GET", `/v2/droplets/${id}`)).body.droplet.status).toBe("off");
        expect((await call("GET", `/v2/reserved_ips/${ip.ip}`)).body.reserved_ip.droplet).toBeNull();
        expect((await call("GET", `/v2/volumes/${volume.id}`)).body.volume.droplet_ids).toEqual([]);
        expect((await call("GET", `/v2/firewalls/${fw.body.firewall.id}`)).body.firewall.droplet_ids).toEqual([]);
        expect(deleted).toEqual([id]);
        release();
        await api!.settled();
        expect(await call("GET", `/v2/droplets/${id}`)).toEqual({ status: 404, body: NOT_FOUND });
        expect((await call("POST", "/v2/firewalls", { name: "fw2", droplet_ids: [id], inbound_rules: [{ protocol: "icmp" }] })).status).toBe(422);
    });

    it("seeds running objects, snapshots state, deletes out of band, logs every call", async () => {
        await start();
        const publicKey = opensshPublicKey();
        const key = api!.seedSshKey({ name: "operator", publicKey });
        const droplet = api!.seedDroplet({ name: "control", region: "sfo3", size: "s-1vcpu-2gb", image: "debian-12-x64", monitoring: true, sshKeys: [key.id] });
        expect(droplet.status).toBe("active");
        expect(droplet.publicKeys).toEqual([publicKey]);
        const ip = api!.seedReservedIp({ region: "sfo3", dropletId: droplet.id });
        const volume = api!.seedVolume({ name: "data", region: "sfo3", sizeGb: 10, filesystemType: "ext4", dropletId: droplet.id });
        const fw = api!.seedFirewall({
            name: "fw",
            dropletIds: [droplet.id],
            inboundRules: [{ protocol: "tcp", ports: "22", sources: { addresses: ["0.0.0.0/0"] } }],
        });
        expect(api!.calls).toEqual([]);
        const got = (await call("GET", `/v2/droplets/${droplet.id}`)).body.droplet;
        expect(got.features).toEqual(expect.arrayContaining(["monitoring", "private_networking"]));
        expect(got.image.slug).toBe("debian-12-x64");
        expect(got.volume_ids).toEqual([volume.id]);
        const state = api!.state();
        expect(state.reservedIps).toEqual([{ ip: ip.ip, region: "sfo3", dropletId: droplet.id }]);
        expect(state.firewalls[0].id).toBe(fw.id);
        state.droplets[0].name = "changed";
        expect(api!.state().droplets[0].name).toBe("control");
        api!.deleteOutOfBand("droplet", droplet.id);
        expect(api!.state().reservedIps[0].dropletId).toBeNull();
        expect(api!.state().volumes[0].dropletIds).toEqual([]);
        api!.deleteOutOfBand("volume", volume.id);
        expect((await call("GET", `/v2/volumes/${volume.id}`)).status).toBe(404);
        await call("POST", "/v2/reserved_ips", { region: "sfo3" });
        expect(api!.calls.map((c) => [c.method, c.path, c.status])).toEqual([
            ["GET", `/v2/droplets/${droplet.id}`, 200],
            ["GET", `/v2/volumes/${volume.id}`, 404],
            ["POST", "/v2/reserved_ips", 202],
        ]);
        expect(api!.mutations()).toEqual([{ method: "POST", path: "/v2/reserved_ips", query: "", body: { region: "sfo3" }, status: 202 }]);
    });

    it("size slugs give vCPUs, memory and disk", () => {
        expect(sizeOf("s-1vcpu-1gb")).toMatchObject({ vcpus: 1, memory: 1024, disk: 25 });
        expect(sizeOf("s-2vcpu-4gb-120gb-intel")).toMatchObject({ vcpus: 2, memory: 4096, disk: 120 });
        expect(sizeOf("s-1vcpu-512mb-10gb")).toMatchObject({ vcpus: 1, memory: 512, disk: 10 });
    });
});
