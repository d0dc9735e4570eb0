import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { opensshPublicKey, startApiDouble, type ApiCall, type ApiDouble } from "./apiDouble";
import { loadEngine, PulumiStack, writeTinyProgram, type Engine, type RunResult } from "../../../scripts/lab/stack/engine";

/*
 * The DigitalOcean provider TEST DOUBLE (scripts/lab/provider-doubles/digitalocean) on the real
 * Pulumi engine (CLI v3.274.0, Node.js language host, @pulumi/digitalocean 4.80.1 SDK) against
 * the loopback API double (apiDouble.ts), with a tiny program written here (not the
 * shortcircuit program):
 *  1. create SshKey, ReservedIp, Volume, Droplet, VolumeAttachment, ReservedIpAssignment,
 *     Firewall; a second `up` changes nothing (the plan is stable against what was stored);
 *  2. `up --replace` of the droplet (deleteBeforeReplace) runs unassign, detach → delete →
 *     create → attach, firewall update, assign;
 *  3. adopting running objects (`import`) with a ReservedIp that does not declare dropletId plans
 *     `= import` then `~ update` and `up` unassigns the IP (the real provider's behaviour);
 *  4. the same adoption with `ignoreChanges: ["dropletId"]`, the assignment imported as
 *     "<ip>,<droplet id>" and the firewall imported changes nothing on DigitalOcean; getReservedIp
 *     has no dropletId, ReservedIp.get (the import path) has it.
 * SHORTCIRCUIT_PULUMI_PLUGINS=<dir> with a real pulumi-resource-digitalocean runs the same
 * program on it (it then needs DIGITALOCEAN_API_URL support of the real one, which it has).
 */

jest.setTimeout(180_000);

const REGION = "sfo3";
const PROJECT = "do-double-smoke";

let engine: Engine;
let api: ApiDouble;
let runRoot: string;

beforeAll(async () => {
    engine = loadEngine();
    api = await startApiDouble({ reservedIpPool: ["10.99.0.2", "10.99.0.3", "10.99.0.4"], bootDelayMs: 100 });
    runRoot = fs.mkdtempSync(path.join(os.tmpdir(), "do-double-"));
});

afterAll(async () => {
    await api?.stop();
    if (runRoot && !process.env.SHORTCIRCUIT_E2E_KEEP) fs.rmSync(runRoot, { recursive: true, force: true });
});

function expectOk(result: RunResult): void {
    if (result.code !== 0) throw new Error(`pulumi exited ${result.code}${result.timedOut ? " (timed out)" : ""}:\n${result.output.slice(-6000)}`);
}

async function stackFor(name: string, indexTs: string): Promise<PulumiStack> {
    const runDir = path.join(runRoot, name);
    const stack = new PulumiStack({
        runDir,
        engine,
        stack: name,
        fleet: undefined,
        programDir: writeTinyProgram(path.join(runRoot, `${name}-src`), PROJECT, indexTs),
        config: { "digitalocean:apiEndpoint": api.url },
        secrets: { "digitalocean:token": api.token },
    });
    await stack.init();
    return stack;
}

const describeCall = (c: ApiCall): string => {
    const body = c.body as Record<string, unknown> | undefined;
    const type = body && typeof body.type === "string" ? ` ${body.type}` : "";
    return `${c.method} ${c.path.replace(/\/v2\/droplets\/\d+$/, "/v2/droplets/<id>").replace(/[0-9a-f-]{36}/g, "<uuid>")}${type} ${c.status}`;
};

const FIREWALL = `
    const world = ["0.0.0.0/0", "::/0"];
    new digitalocean.Firewall("fw", {
        name: "smoke-fw",
        dropletIds: [dropletId],
        inboundRules: [
            { protocol: "tcp", portRange: "22", sourceAddresses: world },
            { protocol: "udp", portRange: "41641", sourceAddresses: world },
            { protocol: "icmp", sourceAddresses: world },
        ],
        outboundRules: [
            { protocol: "tcp", portRange: "1-65535", destinationAddresses: world },
            { protocol: "icmp", destinationAddresses: world },
        ],
    });`;

describe("the DigitalOcean provider TEST DOUBLE on the real engine", () => {
    let stack: PulumiStack;

    it("1. creates the control server's objects; a second up changes nothing", async () => {
        const publicKey = opensshPublicKey("smoke");
        stack = await stackFor(
            "created",
            `import * as digitalocean from "@pulumi/digitalocean";
const key = new digitalocean.SshKey("key", { name: "smoke-key", publicKey: ${JSON.stringify(publicKey + "\n")} });
const ip = new digitalocean.ReservedIp("ip", { region: "${REGION}" });
const volume = new digitalocean.Volume("data", { name: "smoke-data", region: "${REGION}", size: 10, initialFilesystemType: "ext4", description: "smoke data" });
const droplet = new digitalocean.Droplet("droplet", {
    name: "smoke", region: "${REGION}", size: "s-1vcpu-1gb", image: "debian-12-x64",
    sshKeys: [key.fingerprint], userData: "#cloud-config\\n", monitoring: true, ipv6: true,
}, { deleteBeforeReplace: true });
const dropletId = droplet.id.apply(Number);
new digitalocean.VolumeAttachment("attachment", { dropletId, volumeId: volume.id }, { deleteBeforeReplace: true });
new digitalocean.ReservedIpAssignment("assignment", { ipAddress: ip.ipAddress, dropletId }, { deleteBeforeReplace: true });
${FIREWALL}
export const ipAddress = ip.ipAddress;
export const id = droplet.id;
export const fingerprint = key.fingerprint;
export const volumeId = volume.id;
`,
        );
        console.log(
            `digitalocean provider: ${stack.plugins.digitalocean === "double" ? "TEST DOUBLE (scripts/lab/provider-doubles/digitalocean)" : stack.plugins.digitalocean}`,
        );
        const before = api.calls.length;
        expectOk(await stack.up());
        const created = api.calls.slice(before).filter((c) => c.method !== "GET");
        expect(created.map(describeCall).sort()).toEqual(
            [
                "POST /v2/account/keys 201",
                "POST /v2/reserved_ips 202",
                "POST /v2/volumes 201",
                "POST /v2/droplets 202",
                "POST /v2/volumes/<uuid>/actions attach 202",
                "POST /v2/firewalls 202",
                "POST /v2/reserved_ips/10.99.0.2/actions assign 201",
            ].sort(),
        );
        const outputs = await stack.outputs();
        const state = api.state();
        expect(outputs.ipAddress).toBe("10.99.0.2");
        expect(state.sshKeys[0].fingerprint).toBe(outputs.fingerprint);
        const droplet = state.droplets.find((d) => String(d.id) === outputs.id)!;
        expect(droplet).toMatchObject({
            name: "smoke",
            region: REGION,
            size: "s-1vcpu-1gb",
            image: "debian-12-x64",
            monitoring: true,
            ipv6: true,
            status: "active",
        });
        expect(droplet.sshKeys).toEqual([outputs.fingerprint]);
        expect(droplet.publicKeys).toEqual([publicKey + "\n"]);
        expect(state.reservedIps).toEqual([{ ip: "10.99.0.2", region: REGION, dropletId: droplet.id }]);
        expect(state.volumes[0]).toMatchObject({ id: outputs.volumeId, filesystemType: "ext4", description: "smoke data", dropletIds: [droplet.id] });
        expect(state.firewalls[0].dropletIds).toEqual([droplet.id]);
        const createBody = created.find((c) => c.path === "/v2/droplets")!.body as Record<string, unknown>;
        expect(createBody).toMatchObject({
            ssh_keys: [outputs.fingerprint],
            monitoring: true,
            ipv6: true,
            user_data: "#cloud-config\n",
            image: "debian-12-x64",
        });

        const again = api.calls.length;
        const second = await stack.up();
        expectOk(second);
        expect(api.calls.slice(again).filter((c) => c.method !== "GET")).toEqual([]);
        expect(second.output).toMatch(/Resources:\s+8 unchanged\s/);
    });

    it("2. up --replace of the droplet: unassign, detach, delete, create, attach, firewall, assign", async () => {
        const oldId = Number((await stack.outputs()).id);
        const before = api.calls.length;
        const urn = `urn:pulumi:created::${PROJECT}::digitalocean:index/droplet:Droplet::droplet`;
        expectOk(
            await stack.run(["up", "--stack", "created", "--yes", "--skip-preview", "--color", "never", "--suppress-progress", "--replace", urn], {
                timeoutMs: 170_000,
            }),
        );
        const newId = Number((await stack.outputs()).id);
        expect(newId).not.toBe(oldId);
        const steps = api.calls.slice(before).filter((c) => c.method !== "GET");
        const labels = steps.map((c) => {
            const body = (c.body ?? {}) as Record<string, unknown>;
            if (c.path.startsWith("/v2/reserved_ips/")) return `${String(body.type)}:${body.droplet_id === undefined ? "" : JSON.stringify(body.droplet_id)}`;
            if (c.path.startsWith("/v2/volumes/")) return `${String(body.type)}:${JSON.stringify(body.droplet_id)}`;
            if (c.method === "DELETE") return `delete:${c.path.split("/").pop()}`;
            if (c.path === "/v2/droplets") return "create";
            if (c.method === "PUT" && c.path.startsWith("/v2/firewalls/")) return `firewall:${JSON.stringify(body.droplet_ids)}`;
            return `${c.method} ${c.path}`;
        });
        expect(new Set(labels)).toEqual(
            new Set(["unassign:", `detach:${oldId}`, `delete:${oldId}`, "create", `attach:${newId}`, `firewall:[${newId}]`, `assign:${newId}`]),
        );
        expect(labels).toHaveLength(7);
        const at = (label: string): number => labels.indexOf(label);
        expect(Math.max(at("unassign:"), at(`detach:${oldId}`))).toBeLessThan(at(`delete:${oldId}`));
        expect(at(`delete:${oldId}`)).toBeLessThan(at("create"));
        expect(at("create")).toBeLessThan(Math.min(at(`attach:${newId}`), at(`firewall:[${newId}]`), at(`assign:${newId}`)));
        expect(steps.every((c) => c.status < 300)).toBe(true);
        const state = api.state();
        expect(state.reservedIps.find((r) => r.ip === "10.99.0.2")?.dropletId).toBe(newId);
        expect(state.volumes[0].dropletIds).toEqual([newId]);
    });

    it("3. adopting running objects: = import, then ~ update of a ReservedIp without dropletId unassigns it", async () => {
        const operatorKey = api.seedSshKey({ name: "operator", publicKey: opensshPublicKey("operator") });
        const droplet = api.seedDroplet({
            name: "adopted",
            region: REGION,
            size: "s-1vcpu-2gb",
            image: "debian-12-x64",
            monitoring: true,
            ipv6: false,
            sshKeys: [operatorKey.id],
        });
        const ip = api.seedReservedIp({ region: REGION, dropletId: droplet.id });
        const volume = api.seedVolume({ name: "adopted-data", region: REGION, sizeGb: 10, filesystemType: "ext4", dropletId: droplet.id });
        const adopt = await stackFor(
            "adopted",
            `import * as digitalocean from "@pulumi/digitalocean";
const ip = new digitalocean.ReservedIp("ip", { region: "${REGION}" }, { import: "${ip.ip}" });
new digitalocean.Volume("data", { name: "adopted-data", region: "${REGION}", size: 10, initialFilesystemType: "ext4", description: "Headscale database" },
    { import: "${volume.id}", ignoreChanges: ["initialFilesystemType", "description"] });
new digitalocean.Droplet("droplet", {
    name: "adopted", region: "${REGION}", size: "s-1vcpu-2gb", image: "debian-12-x64",
    sshKeys: ["aa:bb"], userData: "#cloud-config\\n", monitoring: true, ipv6: true,
}, { import: "${droplet.id}", ignoreChanges: ["userData", "sshKeys", "monitoring", "ipv6", "image"] });
export const ipAddress = ip.ipAddress;
`,
        );
        const before = api.calls.length;
        const preview = await adopt.preview(["--diff"]);
        expectOk(preview);
        expect(api.calls.slice(before).filter((c) => c.method !== "GET")).toEqual([]);
        expect(preview.output).toMatch(/= +digitalocean:index(\/reservedIp)?:ReservedIp/);
        expect(preview.output).toMatch(/dropletId/);
        const up = await adopt.up();
        expectOk(up);
        const mutations = api.calls.slice(before).filter((c) => c.method !== "GET");
        expect(mutations.map((c) => ({ method: c.method, path: c.path, body: c.body, status: c.status }))).toEqual([
            { method: "POST", path: `/v2/reserved_ips/${ip.ip}/actions`, body: { type: "unassign" }, status: 201 },
        ]);
        expect(api.state().reservedIps.find((r) => r.ip === ip.ip)?.dropletId).toBeNull();
        expect(api.state().volumes.find((v) => v.id === volume.id)?.dropletIds).toEqual([droplet.id]);
    });
    it("4. adoption with ignoreChanges dropletId, assignment and firewall imported: no API change; only the import path reads the IP's droplet", async () => {
        const operatorKey = api.seedSshKey({ name: "operator-4", publicKey: opensshPublicKey("operator-4") });
        const droplet = api.seedDroplet({
            name: "adopted4",
            region: REGION,
            size: "s-1vcpu-2gb",
            image: "debian-12-x64",
            monitoring: true,
            sshKeys: [operatorKey.id],
        });
        const ip = api.seedReservedIp({ region: REGION, dropletId: droplet.id });
        const volume = api.seedVolume({ name: "adopted4-data", region: REGION, sizeGb: 10, filesystemType: "ext4", dropletId: droplet.id });
        const world = ["0.0.0.0/0", "::/0"];
        const firewall = api.seedFirewall({
            name: "adopted4-fw",
            dropletIds: [droplet.id],
            inboundRules: [
                { protocol: "tcp", ports: "22", sources: { addresses: world } },
                { protocol: "icmp", sources: { addresses: world } },
            ],
            outboundRules: [{ protocol: "tcp", ports: "1-65535", destinations: { addresses: world } }],
        });
        const adopt = await stackFor(
            "adopted4",
            `import * as digitalocean from "@pulumi/digitalocean";
const world = ["0.0.0.0/0", "::/0"];
const ip = new digitalocean.ReservedIp("ip", { region: "${REGION}" }, { import: "${ip.ip}", ignoreChanges: ["dropletId"] });
const volume = new digitalocean.Volume("data", { name: "adopted4-data", region: "${REGION}", size: 10, initialFilesystemType: "ext4", description: "Headscale database" },
    { import: "${volume.id}", ignoreChanges: ["initialFilesystemType", "description"] });
const droplet = new digitalocean.Droplet("droplet", {
    name: "adopted4", region: "${REGION}", size: "s-1vcpu-2gb", image: "debian-12-x64",
    sshKeys: ["aa:bb"], userData: "#cloud-config\\n", monitoring: true, ipv6: true,
}, { import: "${droplet.id}", ignoreChanges: ["userData", "sshKeys", "monitoring", "ipv6"] });
const dropletId = droplet.id.apply(Number);
new digitalocean.VolumeAttachment("attachment", { dropletId, volumeId: volume.id });
new digitalocean.ReservedIpAssignment("assignment", { ipAddress: ip.ipAddress, dropletId }, { import: "${ip.ip},${droplet.id}" });
new digitalocean.Firewall("fw", {
    name: "adopted4-fw",
    dropletIds: [dropletId],
    inboundRules: [{ protocol: "tcp", portRange: "22", sourceAddresses: world }, { protocol: "icmp", sourceAddresses: world }],
    outboundRules: [{ protocol: "tcp", portRange: "1-65535", destinationAddresses: world }],
}, { import: "${firewall.id}" });
export const readDropletId = digitalocean.getReservedIp({ ipAddress: "${ip.ip}" }).then((r) => r.dropletId ?? null);
export const getDropletId = digitalocean.ReservedIp.get("ip-read", "${ip.ip}").dropletId;
`,
        );
        const before = api.calls.length;
        const up = await adopt.up();
        expectOk(up);
        expect(up.output).not.toMatch(/\d+ (updated|replaced|deleted)/);
        expect(up.output).toMatch(/= 5 imported/);
        // The attachment is not importable: its create only reads the volume, already on this droplet.
        expect(api.calls.slice(before).filter((c) => c.method !== "GET")).toEqual([]);
        expect(api.state().reservedIps.find((r) => r.ip === ip.ip)?.dropletId).toBe(droplet.id);
        const outputs = await adopt.outputs();
        expect(outputs.readDropletId ?? null).toBeNull();
        expect(outputs.getDropletId).toBe(droplet.id);
        const again = api.calls.length;
        expectOk(await adopt.up());
        expect(api.calls.slice(again).filter((c) => c.method !== "GET")).toEqual([]);
    });
});
