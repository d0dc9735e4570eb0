import * as fs from "node:fs";
import * as path from "node:path";
import type { Raw } from "../support/fixtures";
import { describeCall, expectRun, startDropletLab, writesOf, type DoApiCall, type DropletLab } from "./dropletLab";
import type { DoFirewall } from "./digitalocean/apiDouble";
import type { PulumiStack, RunResult } from "../../scripts/lab/stack/engine";

/*
 * Issue 21 on the real engine: adopting a running control server and rebuilding it.
 *
 * REAL: the Pulumi CLI/engine v3.274.0, the Node.js language host, the program, sshd on the
 * lab hosts and the program's scripts over real SSH. TEST DOUBLES: the DigitalOcean provider
 * (scripts/lab/provider-doubles/digitalocean; SHORTCIRCUIT_PULUMI_PLUGINS=<dir> installs a real
 * pulumi-resource-digitalocean instead), the loopback DigitalOcean API
 * (test/e2e/digitalocean/apiDouble.ts; it logs every call), the command/tls providers, k3s and
 * the service stand-ins. The lab host lab-control-01 PLAYS THE DROPLET: the API double's only
 * reserved IP is its address, and test/e2e/dropletLab.ts emulates DigitalOcean's droplet life
 * cycle on it (the droplet's SSH keys become root's authorized_keys there, a deleted droplet's
 * files are wiped, the volume's device appears while attached; user data is recorded, not run).
 *
 * Which scenario would have caught which item of issue 21 (the program before the fix):
 *   item 1 (first up unassigns the reserved IP)             -> 2 (API log: no unassign; IP on the droplet throughout)
 *   item 2 (a differing import is carried out: resize)      -> 8 (refused, nothing but GETs)
 *   item 3 (deleting `adopt` plans a replacement)           -> 4 (no replace, no DO write)
 *   item 4 (an adopted stack keeping `adopt` can't replace) -> 5 (`up --replace` of the adopted droplet once `adopt` is
 *                                                              deleted, as the runbook says; 3 shows the engine's refusal while it stays)
 *   item 5 (adopted stack can't recover a lost droplet)      -> 6 (out-of-band delete, refresh, up on the adopted stack)
 *
 * Issue 23 (the ControlDroplet split: the DigitalOcean objects moved from ControlServer into a
 * ControlDroplet child, aliased to their old parent) -> 9 (a stack adopted by the pre-split
 * program, test/e2e/fixtures/controlServer.pre-split.ts.txt, then up with the current one: no
 * create/replace/delete of any DigitalOcean object, no DigitalOcean write, same ids, protect kept).
 *
 * Tests build on each other in order, like successive runs of the operator's stacks.
 */

const PER_TEST_MS = 6 * 60_000;
jest.setTimeout(PER_TEST_MS);
const UP_TIMEOUT_MS = 5 * 60_000;
const DROPLET_TYPE = "digitalocean:index/droplet:Droplet";
/** The five running objects adoption takes over (docs/runbooks/adopting.md). */
const ADOPTED = ["control-ip", "control-data", "control-droplet", "control-ip-assignment", "control-firewall"];

let dl: DropletLab;
let reservedIp = "";

/** Calls the current account's API double logged since `mark`. */
const since = (mark: number): DoApiCall[] => dl.account.api.calls.slice(mark);
const mark = (): number => dl.account.api.calls.length;
const describeAll = (calls: readonly DoApiCall[]): string[] => calls.map(describeCall);

function urnOf(stack: PulumiStack, type: string, name: string): string {
    const found = stateResources(stack).filter((resource) => resource.type === type && resource.urn.endsWith(`::${name}`) && !resource.delete);
    if (found.length !== 1) throw new Error(`${found.length} resources ${type} ${name} in ${stack.options.stack}'s state`);
    return found[0].urn;
}

interface StateResource {
    urn: string;
    type: string;
    id?: string;
    /** A resource the engine still has to delete (pending replacement). */
    delete?: boolean;
    protect?: boolean;
    parent?: string;
    /** The outputs read here: the tls key's public half, the DigitalOcean key's fingerprint. */
    outputs?: { publicKeyOpenssh?: string; fingerprint?: string };
}

/** The program's own SSH key (tls PrivateKey control-ssh-key; its public half is a plain output) and its DigitalOcean fingerprint. */
function programKeyOf(stack: PulumiStack): { publicKey: string; fingerprint: string } {
    const resources = stateResources(stack).filter((resource) => !resource.delete && resource.urn.endsWith("::control-ssh-key"));
    const tlsKey = resources.find((resource) => resource.type === "tls:index/privateKey:PrivateKey");
    const doKey = resources.find((resource) => resource.type === "digitalocean:index/sshKey:SshKey");
    return { publicKey: (tlsKey?.outputs?.publicKeyOpenssh ?? "").trim(), fingerprint: doKey?.outputs?.fingerprint ?? "" };
}

function stateResources(stack: PulumiStack): StateResource[] {
    if (!fs.existsSync(stack.stateFile)) return [];
    const state = JSON.parse(fs.readFileSync(stack.stateFile, "utf8")) as { checkpoint: { latest?: { resources?: StateResource[] } } };
    return state.checkpoint.latest?.resources ?? [];
}

const idOf = (stack: PulumiStack, name: string): string | undefined =>
    stateResources(stack).find((resource) => resource.urn.endsWith(`::${name}`) && !resource.delete)?.id;

/** The request body of a droplet create, with the ids/fingerprints of its SSH keys. */
function dropletCreates(calls: readonly DoApiCall[]): Record<string, unknown>[] {
    return calls.filter((call) => call.method === "POST" && call.path === "/v2/droplets").map((call) => call.body as Record<string, unknown>);
}

interface PlanLine {
    /** "+", "-", "~", "=", "+-", "++", "--". */
    op: string;
    type: string;
    name: string;
    /** What the step does and any note: "import", "replace [diff: ...]", "delete original". */
    rest: string;
}

/**
 * The steps of a non-interactive preview or up: `<op> <type> <name> <what>` lines, without the
 * refresh that Pulumi.yaml asks for ("refreshing"/"refresh") and without the stack's own line.
 */
function planLines(output: string): PlanLine[] {
    return output
        .split("\n")
        .map((line) => /^ ([+\-~=]{1,2})\s+(\S+:\S+)\s+(\S+)\s*(.*)$/.exec(line))
        .filter((match): match is RegExpExecArray => match !== null)
        .map((match) => ({ op: match[1], type: match[2], name: match[3], rest: match[4].trim() }))
        .filter((line) => !/^refresh(ing)?\b/.test(line.rest) && line.type !== "pulumi:pulumi:Stack");
}

const hostFileExists = (file: string): boolean => fs.existsSync(dl.fleet.hostPath(dl.control, file));

beforeAll(async () => {
    dl = await startDropletLab({ readyTimeoutSeconds: 10 });
    reservedIp = dl.control.lanAddress;
    const stack = dl.lab.stack;
    const doPlugin = stack.plugins.digitalocean;
    if (doPlugin === "not installed") {
        throw new Error("the digitalocean provider double is not built: run bash scripts/setup.sh (scripts/tools/build-engine.sh builds it)");
    }
    console.log(
        [
            "e2e adoption engine:",
            `  pulumi CLI ${dl.lab.engine.cliVersion} (real), language host pulumi-language-nodejs (real)`,
            `  digitalocean provider: ${doPlugin === "double" ? "TEST DOUBLE (scripts/lab/provider-doubles/digitalocean)" : `real, from ${doPlugin}`}`,
            `  DigitalOcean API: TEST DOUBLE (test/e2e/digitalocean/apiDouble.ts) at ${dl.account.api.url}, reserved-IP pool [${reservedIp}]`,
            `  the droplet: PLAYED by lab host ${dl.control.name} (${reservedIp}); DigitalOcean's droplet life cycle EMULATED by test/e2e/dropletLab.ts`,
            `  command/tls providers: ${stack.plugins.command === "double" ? "TEST DOUBLES" : "real"}`,
        ].join("\n"),
    );
}, PER_TEST_MS);

afterAll(async () => {
    await dl?.stop();
}, 120_000);

describe("issue 21: a droplet control server on the real engine", () => {
    let adopt: PulumiStack;
    let programKey = "";
    const seeded = { dropletId: 0, volumeId: "", firewallId: "" };
    let firewallRules: Pick<DoFirewall, "inboundRules" | "outboundRules"> = { inboundRules: [], outboundRules: [] };

    it("1. fresh create: the program builds key, IP, volume, droplet, attachment, firewall, assignment; the steps run on the droplet over SSH", async () => {
        const stack = dl.lab.stack;
        const result = await stack.up(UP_TIMEOUT_MS);
        expectRun(result);
        const calls = dl.account.api.calls;
        const writes = describeAll(writesOf(calls));
        console.log(`e2e adoption 1: DigitalOcean writes of a fresh up:\n  ${writes.join("\n  ")}`);
        const key = calls.find((call) => call.method === "POST" && call.path === "/v2/account/keys");
        expect(key).toBeDefined();
        programKey = String((key?.body as Raw).public_key).trim();
        const [create, ...more] = dropletCreates(calls);
        expect(more).toEqual([]);
        expect(create).toMatchObject({
            name: "shortcircuit-lab-sfo3",
            region: "sfo3",
            size: "s-1vcpu-512mb-10gb",
            image: "debian-12-x64",
            monitoring: true,
            ipv6: true,
        });
        expect(String(create.user_data)).toMatch(/^#cloud-config/);
        expect(create.ssh_keys).toEqual([programKeyOf(stack).fingerprint]);
        const dropletId = idOf(stack, "control-droplet");
        const volumeId = idOf(stack, "control-data");
        for (const wanted of [
            "POST /v2/account/keys",
            "POST /v2/reserved_ips",
            "POST /v2/volumes",
            "POST /v2/droplets",
            `POST /v2/volumes/${volumeId}/actions attach`,
            "POST /v2/firewalls",
            `POST /v2/reserved_ips/${reservedIp}/actions assign`,
        ]) {
            expect(writes).toContain(wanted);
        }
        const outputs = await stack.outputs();
        expect(outputs.controlServerIp).toBe(reservedIp);
        expect(String(outputs.controlDropletId)).toBe(dropletId);
        // The emulated droplet knows only the program's key; the steps reached it with that key.
        expect(dl.machine.authorizedKeys()).toEqual([programKey]);
        expect(programKey).toBe(programKeyOf(stack).publicKey);
        expect(programKey).not.toBe(dl.operatorPublicKey);
        for (const file of ["/etc/headscale/config.yaml", "/etc/headscale/noise_private.key", "/etc/nebula/host.crt"]) {
            expect({ file, exists: hostFileExists(file) }).toEqual({ file, exists: true });
        }
        // The firewall the program made: the operator's firewall seeded in 2 has the same rules.
        const made = dl.account.api.state().firewalls;
        expect(made).toHaveLength(1);
        firewallRules = { inboundRules: made[0].inboundRules, outboundRules: made[0].outboundRules };
    });

    it("2. adopt the running objects: preview shows = import for the five, up changes nothing on DigitalOcean and the IP never leaves the droplet", async () => {
        // A second account whose droplet the operator built by hand, with the operator's key, no
        // monitoring, no IPv6 and no user data, the volume made without a filesystem or
        // description; CONTROL, as it runs, is that server (seeded: no API calls, no wipe).
        await dl.newAccount();
        const api = dl.account.api;
        const key = api.seedSshKey({ name: "operator", publicKey: dl.operatorPublicKey });
        const droplet = api.seedDroplet({
            name: "shortcircuit-lab-sfo3",
            region: "sfo3",
            size: "s-1vcpu-512mb-10gb",
            image: "debian-12-x64",
            monitoring: false,
            ipv6: false,
            sshKeys: [key.id],
        });
        seeded.dropletId = Number(droplet.id);
        dl.machine.seeded(seeded.dropletId, [dl.operatorPublicKey]);
        const volume = api.seedVolume({ name: "shortcircuit-lab-sfo3-headscale", region: "sfo3", sizeGb: 1, dropletId: seeded.dropletId });
        seeded.volumeId = String(volume.id);
        const ip = api.seedReservedIp({ region: "sfo3", dropletId: seeded.dropletId });
        expect(ip.ip).toBe(reservedIp);
        const firewall = api.seedFirewall({
            name: "shortcircuit-lab-sfo3-fw",
            dropletIds: [seeded.dropletId],
            ...firewallRules,
        });
        seeded.firewallId = String(firewall.id);
        expect(api.calls).toEqual([]);
        expect(dl.machine.authorizedKeys()).toEqual([dl.operatorPublicKey]);

        const fleet = structuredClone<Raw>(dl.lab.config);
        fleet.controlServer.host.adopt = { dropletId: String(seeded.dropletId), reservedIp, volumeId: seeded.volumeId, firewallId: seeded.firewallId };
        adopt = await dl.newStack("adopt", fleet);

        const beforePreview = mark();
        const preview = await adopt.preview([], UP_TIMEOUT_MS);
        expectRun(preview);
        const lines = planLines(preview.output);
        console.log(`e2e adoption 2: the adopting preview's steps:\n  ${lines.map((line) => `${line.op} ${line.name} ${line.rest}`).join("\n  ")}`);
        for (const name of ADOPTED) {
            expect({
                name,
                steps: lines.filter((line) => line.name === name && line.type.startsWith("digitalocean:")).map((line) => `${line.op} ${line.rest}`),
            }).toEqual({
                name,
                steps: ["= import"],
            });
        }
        // No replace anywhere; no update or delete of a DigitalOcean object.
        expect(lines.filter((line) => line.op.length > 1 || /replace/.test(line.rest))).toEqual([]);
        expect(lines.filter((line) => line.type.startsWith("digitalocean:") && (line.op === "~" || line.op === "-"))).toEqual([]);
        expect(writesOf(since(beforePreview))).toEqual([]);

        const beforeUp = mark();
        const result = await adopt.up(UP_TIMEOUT_MS);
        expectRun(result);
        const calls = since(beforeUp);
        const writes = describeAll(writesOf(calls));
        console.log(`e2e adoption 2: DigitalOcean calls of the adopting up (writes: ${writes.join(", ")}):\n  ${describeAll(calls).join("\n  ")}`);
        // Item 1: no unassign, resize, create or delete of droplet, volume or IP.
        expect(
            writes.filter((call) => /unassign|resize| \/v2\/droplets|DELETE |POST \/v2\/volumes$|POST \/v2\/reserved_ips$|detach|power|rebuild/.test(call)),
        ).toEqual([]);
        // What is written: only the program's own SSH key for rebuilds.
        expect(writes).toEqual(["POST /v2/account/keys"]);
        // The reserved IP stayed on the running droplet at every call: it was there before, and no
        // call that moves an IP (an IP action, a droplet or IP delete) was made.
        expect(writes.filter((call) => call.startsWith(`POST /v2/reserved_ips/${reservedIp}/actions`) || call.startsWith("DELETE "))).toEqual([]);
        const now = await dl.doctl<Raw>("GET", `/v2/reserved_ips/${reservedIp}`);
        expect(now.body.reserved_ip.droplet.id).toBe(seeded.dropletId);
        expect(idOf(adopt, "control-droplet")).toBe(String(seeded.dropletId));
        expect(idOf(adopt, "control-data")).toBe(seeded.volumeId);
        // control-authorize gave root the program's key beside the operator's (the steps ran with it).
        expect(dl.machine.authorizedKeys()).toEqual([dl.operatorPublicKey, programKeyOf(adopt).publicKey]);
    });

    it("3. no-op up after adoption: no DigitalOcean write; while `adopt` stays, the engine refuses to replace the imported droplet (why docs/runbooks/adopting.md says to delete it)", async () => {
        const before = mark();
        const result = await adopt.up(UP_TIMEOUT_MS);
        expectRun(result);
        expect(result.output).toMatch(/\d+ unchanged/);
        expect(result.output).not.toMatch(/\b\d+ (created|updated|replaced|deleted)\b/);
        expect(describeAll(writesOf(since(before)))).toEqual([]);
        // Issue item 4, as the engine states it: a resource that still carries `import` cannot be
        // replaced. Scenario 5 replaces the same droplet once `adopt` is gone.
        // (The preview only warns, on the droplet's replace step; the issue saw `up` fail on it.)
        const replace = await adopt.preview(["--replace", urnOf(adopt, DROPLET_TYPE, "control-droplet")], UP_TIMEOUT_MS);
        expect(planLines(replace.output).find((line) => line.op === "+-" && line.name === "control-droplet")?.rest).toMatch(
            /previously-imported resources that still specify an ID may not be replaced/,
        );
        expect(describeAll(writesOf(since(before)))).toEqual([]);
    });

    it("4. the stack file without `adopt`: preview plans no replace, up writes nothing to DigitalOcean", async () => {
        const fleet = structuredClone<Raw>(dl.lab.config);
        adopt.setFleet(fleet);
        const before = mark();
        const preview = await adopt.preview([], UP_TIMEOUT_MS);
        expectRun(preview);
        const lines = planLines(preview.output);
        console.log(`e2e adoption 4: the steps without adopt:\n  ${lines.map((line) => `${line.op} ${line.name} ${line.rest}`).join("\n  ")}`);
        expect(preview.output).not.toMatch(/to replace/);
        // Only control-authorize (it exists while adopting) leaves the plan; a Command has no delete command.
        expect(lines.map((line) => `${line.op} ${line.type} ${line.name} ${line.rest}`)).toEqual(["- command:remote:Command control-authorize delete"]);
        const result = await adopt.up(UP_TIMEOUT_MS);
        expectRun(result);
        expect(result.output).not.toMatch(/\b\d+ (created|replaced|updated)\b/);
        expect(describeAll(writesOf(since(before)))).toEqual([]);
    });

    it("5. up --replace of the adopted droplet: unassign, detach, delete, create, attach, firewall, assign; IP and volume kept; the steps re-run", async () => {
        const oldDroplet = idOf(adopt, "control-droplet");
        const volumeId = idOf(adopt, "control-data");
        const before = mark();
        const result = await adopt.up(UP_TIMEOUT_MS, ["--replace", urnOf(adopt, DROPLET_TYPE, "control-droplet")]);
        expectRun(result);
        const calls = since(before);
        const writes = describeAll(writesOf(calls));
        console.log(`e2e adoption 5: DigitalOcean writes of up --replace:\n  ${writes.join("\n  ")}`);
        expectReplacementOrder(writes, { oldDroplet: String(oldDroplet), volumeId: String(volumeId), unassign: true });
        const newDroplet = idOf(adopt, "control-droplet");
        expect(newDroplet).not.toBe(oldDroplet);
        expect(idOf(adopt, "control-data")).toBe(volumeId);
        expect((await adopt.outputs()).controlServerIp).toBe(reservedIp);
        expectProgramDroplet(calls, adopt);
        expectStepsRan(newDroplet, adopt);
    });

    it("6. out-of-band delete of the droplet, refresh, up: recreated the same way", async () => {
        const gone = idOf(adopt, "control-droplet");
        const volumeId = idOf(adopt, "control-data");
        expect((await dl.doctl("DELETE", `/v2/droplets/${gone}`)).status).toBe(204);
        const before = mark();
        expectRun(
            await adopt.run(["refresh", "--stack", "adopt", "--yes", "--skip-preview", "--color", "never", "--suppress-progress"], {
                timeoutMs: UP_TIMEOUT_MS,
            }),
        );
        expect(describeAll(writesOf(since(before)))).toEqual([]);
        const result = await adopt.up(UP_TIMEOUT_MS);
        expectRun(result);
        const calls = since(before);
        const writes = describeAll(writesOf(calls));
        console.log(`e2e adoption 6: DigitalOcean writes of refresh + up after the droplet was deleted:\n  ${writes.join("\n  ")}`);
        expect(writes.filter((call) => /unassign|detach|DELETE/.test(call))).toEqual([]);
        expectReplacementOrder(writes, { volumeId: String(volumeId), unassign: false });
        const recreated = idOf(adopt, "control-droplet");
        expect(recreated).not.toBe(gone);
        expect(idOf(adopt, "control-data")).toBe(volumeId);
        expectProgramDroplet(calls, adopt);
        expectStepsRan(recreated, adopt);
    });

    it("7. the stuck two-droplet state (an older program without deleteBeforeReplace) and the runbook's way out", async () => {
        const oldDroplet = idOf(adopt, "control-droplet");
        const volumeId = idOf(adopt, "control-data");
        const source = path.join(adopt.projectDir, "components", "control", "controlDroplet.ts");
        const current = fs.readFileSync(source, "utf8");
        const older = current.replace(/deleteBeforeReplace: true/g, "deleteBeforeReplace: false");
        expect(older).not.toBe(current);
        fs.writeFileSync(source, older);
        const before = mark();
        let stuck: RunResult;
        try {
            stuck = await adopt.up(UP_TIMEOUT_MS, ["--replace", urnOf(adopt, DROPLET_TYPE, "control-droplet")]);
        } finally {
            fs.writeFileSync(source, current);
        }
        expect(stuck.code).not.toBe(0);
        expect(stuck.output).toMatch(/422/);
        expect(stuck.output).toMatch(/already attached to another droplet/i);
        console.log(`e2e adoption 7: writes of the stuck up:\n  ${describeAll(writesOf(since(before))).join("\n  ")}`);
        const droplets = (await dl.doctl<Raw>("GET", "/v2/droplets")).body.droplets as Raw[];
        expect(droplets.map((droplet) => String(droplet.id)).sort()).toEqual(expect.arrayContaining([String(oldDroplet)]));
        expect(droplets).toHaveLength(2);
        const volume = (await dl.doctl<Raw>("GET", `/v2/volumes/${volumeId}`)).body.volume;
        expect(volume.droplet_ids.map(String)).toEqual([String(oldDroplet)]);
        expect(stateResources(adopt).some((resource) => resource.type === DROPLET_TYPE && resource.delete === true)).toBe(true);

        // The way out (docs/runbooks/rebuilding-a-lighthouse.md): detach the volume from the old
        // droplet (doctl compute volume-action detach <volume-id> <old-droplet-id>), then up.
        const detach = await dl.doctl("POST", `/v2/volumes/${volumeId}/actions`, { type: "detach", droplet_id: Number(oldDroplet), region: "sfo3" });
        expect(detach.status).toBeLessThan(300);
        const beforeOut = mark();
        const out = await adopt.up(UP_TIMEOUT_MS);
        console.log(`e2e adoption 7: writes of the way-out up (exit ${out.code}):\n  ${describeAll(writesOf(since(beforeOut))).join("\n  ")}`);
        expectRun(out);
        const left = (await dl.doctl<Raw>("GET", "/v2/droplets")).body.droplets as Raw[];
        const newDroplet = idOf(adopt, "control-droplet");
        expect(left.map((droplet) => String(droplet.id))).toEqual([newDroplet]);
        expect((await dl.doctl<Raw>("GET", `/v2/volumes/${volumeId}`)).body.volume.droplet_ids.map(String)).toEqual([newDroplet]);
        expect(String((await dl.doctl<Raw>("GET", `/v2/reserved_ips/${reservedIp}`)).body.reserved_ip.droplet.id)).toBe(newDroplet);
        expect(stateResources(adopt).some((resource) => resource.delete === true)).toBe(false);
        expectStepsRan(newDroplet, adopt);
    });

    it("8. an import that differs (droplet size, volume size) is refused before anything changes: only GETs", async () => {
        const fleet = structuredClone<Raw>(dl.lab.config);
        fleet.controlServer.host.size = "s-2vcpu-4gb";
        fleet.controlServer.host.volumeSizeGb = 5;
        fleet.controlServer.host.adopt = {
            dropletId: idOf(adopt, "control-droplet"),
            reservedIp,
            volumeId: idOf(adopt, "control-data"),
            firewallId: idOf(adopt, "control-firewall"),
        };
        const differ = await dl.newStack("differ", fleet);
        const before = mark();
        for (const result of [await differ.preview([], UP_TIMEOUT_MS), await differ.up(UP_TIMEOUT_MS)]) {
            expect(result.code).not.toBe(0);
            expect(result.output).toContain("s-2vcpu-4gb");
            expect(result.output).toContain("s-1vcpu-512mb-10gb");
            expect(result.output).toMatch(/controlServer\.host\.size/);
            expect(result.output).toMatch(/controlServer\.host\.volumeSizeGb/);
        }
        expect(since(before).length).toBeGreaterThan(0);
        expect(describeAll(writesOf(since(before)))).toEqual([]);
        expect(stateResources(differ).filter((resource) => resource.type.startsWith("digitalocean:"))).toEqual([]);
    });
});

describe("issue 23: the ControlDroplet split migrates an existing stack in place", () => {
    it("9. a stack adopted with the pre-split ControlServer, then up with ControlDroplet: only aliases, no DigitalOcean write, same ids, protect kept", async () => {
        // A running server as in 2 (the operator's droplet, volume and IP), in a fresh account; the
        // program makes its own SSH key and firewall beside them, so both kinds (imported and
        // program-made) are migrated.
        await dl.newAccount();
        const api = dl.account.api;
        const key = api.seedSshKey({ name: "operator", publicKey: dl.operatorPublicKey });
        const droplet = api.seedDroplet({
            name: "shortcircuit-lab-sfo3",
            region: "sfo3",
            size: "s-1vcpu-512mb-10gb",
            image: "debian-12-x64",
            monitoring: false,
            ipv6: false,
            sshKeys: [key.id],
        });
        const dropletId = Number(droplet.id);
        dl.machine.seeded(dropletId, [dl.operatorPublicKey]);
        const volume = api.seedVolume({ name: "shortcircuit-lab-sfo3-headscale", region: "sfo3", sizeGb: 1, dropletId });
        expect(api.seedReservedIp({ region: "sfo3", dropletId }).ip).toBe(reservedIp);
        const fleet = structuredClone<Raw>(dl.lab.config);
        fleet.controlServer.host.adopt = { dropletId: String(dropletId), reservedIp, volumeId: String(volume.id) };
        const split = await dl.newStack("split", fleet);

        // The stack as the pre-split program made it: its own copy of the program, with the old
        // component file in place of the current one (it compiles against today's helpers:
        // test/components/control/controlServer.preSplit.test.ts).
        const source = path.join(split.projectDir, "components", "control", "controlServer.ts");
        const current = fs.readFileSync(source, "utf8");
        const preSplit = fs.readFileSync(path.join(__dirname, "fixtures", "controlServer.pre-split.ts.txt"), "utf8");
        expect(preSplit).not.toContain("ControlDroplet(");
        fs.writeFileSync(source, preSplit);
        let old: RunResult;
        try {
            old = await split.up(UP_TIMEOUT_MS);
        } finally {
            fs.writeFileSync(source, current);
        }
        expectRun(old);
        const doObjects = (): StateResource[] =>
            stateResources(split).filter(
                (resource) => resource.type.startsWith("digitalocean:") || resource.urn.endsWith("$tls:index/privateKey:PrivateKey::control-ssh-key"),
            );
        const before = doObjects();
        const oldParent = (resource: StateResource): boolean => /::shortcircuit:control:ControlServer::control$/.test(resource.parent ?? "");
        expect(before.map((resource) => `${resource.type} ${resource.urn.slice(resource.urn.lastIndexOf("::") + 2)} ${oldParent(resource)}`).sort()).toEqual(
            [
                "digitalocean:index/droplet:Droplet control-droplet true",
                "digitalocean:index/firewall:Firewall control-firewall true",
                "digitalocean:index/reservedIp:ReservedIp control-ip true",
                "digitalocean:index/reservedIpAssignment:ReservedIpAssignment control-ip-assignment true",
                "digitalocean:index/sshKey:SshKey control-ssh-key true",
                "digitalocean:index/volume:Volume control-data true",
                "digitalocean:index/volumeAttachment:VolumeAttachment control-data-attachment true",
                "tls:index/privateKey:PrivateKey control-ssh-key true",
            ].sort(),
        );
        expect(stateResources(split).some((resource) => resource.type === "shortcircuit:control:ControlDroplet")).toBe(false);

        // The current program on that state.
        const beforePreview = mark();
        const preview = await split.preview([], UP_TIMEOUT_MS);
        expectRun(preview);
        const lines = planLines(preview.output);
        console.log(
            `e2e adoption 9: the current program's preview on the pre-split stack:\n  ${lines.map((line) => `${line.op} ${line.type} ${line.name} ${line.rest}`).join("\n  ")}`,
        );
        // The new component is the only step: every moved object is found under its alias.
        expect(lines.map((line) => `${line.op} ${line.type} ${line.name} ${line.rest}`)).toEqual(["+ shortcircuit:control:ControlDroplet control create"]);
        expect(preview.output).not.toMatch(/to (create|replace|delete)\b.*digitalocean/);
        expect(writesOf(since(beforePreview))).toEqual([]);

        const beforeUp = mark();
        const result = await split.up(UP_TIMEOUT_MS);
        expectRun(result);
        console.log(`e2e adoption 9: DigitalOcean calls of the migrating up:\n  ${describeAll(since(beforeUp)).join("\n  ")}`);
        expect(describeAll(writesOf(since(beforeUp)))).toEqual([]);
        expect(result.output).toMatch(/\b1 created\b/);
        expect(result.output).not.toMatch(/\b\d+ (updated|replaced|deleted)\b/);
        const after = doObjects();
        // Same objects, same ids, same protection; now under the ControlDroplet; nothing pending delete.
        const byName = (resources: StateResource[]): Record<string, { id?: string; protect: boolean }> =>
            Object.fromEntries(
                resources.map((resource) => [
                    `${resource.type} ${resource.urn.slice(resource.urn.lastIndexOf("::") + 2)}`,
                    { id: resource.id, protect: resource.protect === true },
                ]),
            );
        expect(byName(after)).toEqual(byName(before));
        expect(byName(after)["digitalocean:index/reservedIp:ReservedIp control-ip"].protect).toBe(true);
        expect(byName(after)["digitalocean:index/volume:Volume control-data"].protect).toBe(true);
        for (const resource of after) {
            expect({ urn: resource.urn, parent: resource.parent }).toEqual({
                urn: expect.stringContaining("::shortcircuit:control:ControlServer$shortcircuit:control:ControlDroplet$"),
                parent: expect.stringMatching(/::shortcircuit:control:ControlServer\$shortcircuit:control:ControlDroplet::control$/),
            });
        }
        expect(stateResources(split).some((resource) => resource.delete === true)).toBe(false);
        expect(idOf(split, "control-droplet")).toBe(String(dropletId));
        expect(String((await dl.doctl<Raw>("GET", `/v2/reserved_ips/${reservedIp}`)).body.reserved_ip.droplet.id)).toBe(String(dropletId));

        // And it stays put: the next up changes nothing.
        const beforeNoop = mark();
        const noop = await split.up(UP_TIMEOUT_MS);
        expectRun(noop);
        expect(noop.output).not.toMatch(/\b\d+ (created|updated|replaced|deleted)\b/);
        expect(describeAll(writesOf(since(beforeNoop)))).toEqual([]);
    });
});

/** unassign and detach (in either order) → delete → create → attach, firewall and assign (in any order) after the create. */
function expectReplacementOrder(writes: string[], ids: { oldDroplet?: string; volumeId: string; unassign: boolean }): void {
    const at = (pattern: string): number => writes.findIndex((call) => call === pattern || call.startsWith(pattern));
    const create = at("POST /v2/droplets");
    const attach = at(`POST /v2/volumes/${ids.volumeId}/actions attach`);
    const assign = at(`POST /v2/reserved_ips/${reservedIp}/actions assign`);
    const firewall = writes.findIndex((call) => /^(PUT \/v2\/firewalls\/|POST \/v2\/firewalls\/[^/]+\/droplets)/.test(call));
    expect({ create, attach, assign, firewall }).toEqual({
        create: expect.any(Number),
        attach: expect.any(Number),
        assign: expect.any(Number),
        firewall: expect.any(Number),
    });
    expect([create, attach, assign, firewall].every((index) => index >= 0)).toBe(true);
    expect(attach).toBeGreaterThan(create);
    expect(assign).toBeGreaterThan(create);
    expect(firewall).toBeGreaterThan(create);
    if (ids.unassign && ids.oldDroplet !== undefined) {
        const unassign = at(`POST /v2/reserved_ips/${reservedIp}/actions unassign`);
        const detach = at(`POST /v2/volumes/${ids.volumeId}/actions detach`);
        const remove = at(`DELETE /v2/droplets/${ids.oldDroplet}`);
        expect([unassign, detach, remove].every((index) => index >= 0)).toBe(true);
        // The assignment and the attachment are both deleted before the droplet; between the two
        // the engine fixes no order (runs have shown unassign first and detach first).
        expect(unassign).toBeLessThan(remove);
        expect(detach).toBeLessThan(remove);
        expect(remove).toBeLessThan(create);
    }
    expect(writes.filter((call) => /422/.test(call))).toEqual([]);
}

/** The new droplet was created as the program creates one: its own SSH key, cloud-init, monitoring. */
function expectProgramDroplet(calls: readonly DoApiCall[], stack: PulumiStack): void {
    const creates = dropletCreates(calls);
    expect(creates).toHaveLength(1);
    expect(creates[0]).toMatchObject({ name: "shortcircuit-lab-sfo3", monitoring: true, ipv6: true });
    expect(String(creates[0].user_data)).toMatch(/^#cloud-config/);
    // The program's SshKey (by fingerprint, as the program passes it), never the operator's key.
    expect(creates[0].ssh_keys).toEqual([programKeyOf(stack).fingerprint]);
}

/** CONTROL, wiped when it became the new droplet, holds the control server's files again, and root knows only the program's key. */
function expectStepsRan(dropletId: string | undefined, stack: PulumiStack): void {
    const last = dl.machine.history[dl.machine.history.length - 1];
    expect(String(last.dropletId)).toBe(String(dropletId));
    expect(last.wiped).toBe(true);
    expect(last.keys).toEqual([programKeyOf(stack).publicKey]);
    expect(dl.machine.authorizedKeys()).toEqual(last.keys);
    for (const file of ["/etc/headscale/config.yaml", "/etc/headscale/noise_private.key", "/etc/nebula/host.crt", "/etc/systemd/system/nebula.service"]) {
        expect({ file, exists: hostFileExists(file) }).toEqual({ file, exists: true });
    }
}
