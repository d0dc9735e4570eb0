import { adoptionProblems, readOrMissing } from "../../../components/control/adoption";
import { controlHost } from "../../../components/control/plan";
import { parsePayload } from "../../../components/remote/payload";
import * as pulumi from "@pulumi/pulumi";
import { runProgramUnderMocks, TEST_SECRETS, valueOf, type MockRecorder, stepPayload, stepScript } from "../../support/pulumiMocks";

const timeout = (what: string): Promise<never> => new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} never resolved`)), 5000));
import { labWithExistingControlHost, rawFleet, type Raw } from "../../support/fixtures";
import { secretProblems, type SecretReader } from "../../../stacks/secrets";
import { formatProblem, parseFleet } from "../../../stacks/validate";

let recorder: MockRecorder;
let outputs: Record<string, unknown>;
beforeAll(async () => {
    const run = await runProgramUnderMocks({ stack: "prod" }, rawFleet("prod"));
    expect(run.error).toBeUndefined();
    recorder = run.recorder;
    const program = run.program as unknown as Record<string, unknown>;
    outputs = {};
    for (const key of ["controlServerIp", "headscaleUrl", "derpMap", "controlDropletId", "nebulaCertExpiry", "rollout"]) {
        const value = program[key];
        outputs[key] = pulumi.Output.isInstance(value) ? await Promise.race([valueOf(value), timeout(key)]) : value;
    }
});

describe("ControlServer under strict mocks (prod: a droplet in SFO3)", () => {
    it("keeps the identity protected and apart from the droplet", () => {
        expect(recorder.named("control-ip")).toMatchObject({
            type: "digitalocean:index/reservedIp:ReservedIp",
            protect: true,
            dependsOn: [],
            inputs: { region: "sfo3" },
        });
        expect(recorder.named("control-data")).toMatchObject({
            type: "digitalocean:index/volume:Volume",
            protect: true,
            dependsOn: [],
            inputs: { name: "shortcircuit-lighthouse-sfo3-headscale", region: "sfo3", size: 5, initialFilesystemType: "ext4" },
        });
        expect(recorder.named("nebula-ca-key").protect).toBe(true);
    });

    it("declares the DigitalOcean objects in a ControlDroplet under the ControlServer, each aliased to its old place under the ControlServer", () => {
        const server = "urn:pulumi:prod::shortcircuit::shortcircuit:control:ControlServer::control";
        const droplet = "urn:pulumi:prod::shortcircuit::shortcircuit:control:ControlServer$shortcircuit:control:ControlDroplet::control";
        expect(recorder.resources.filter((resource) => resource.type === "shortcircuit:control:ControlDroplet")).toMatchObject([
            { name: "control", parentUrn: server, aliasParentUrns: [] },
        ]);
        const moved = recorder.resources.filter((resource) => resource.parentUrn === droplet);
        expect(moved.map((resource) => `${resource.type} ${resource.name}`).sort()).toEqual(
            [
                "digitalocean:index/firewall:Firewall control-firewall",
                "digitalocean:index/reservedIp:ReservedIp control-ip",
                "digitalocean:index/reservedIpAssignment:ReservedIpAssignment control-ip-assignment",
                "digitalocean:index/sshKey:SshKey control-ssh-key",
                "digitalocean:index/droplet:Droplet control-droplet",
                "digitalocean:index/volume:Volume control-data",
                "digitalocean:index/volumeAttachment:VolumeAttachment control-data-attachment",
                "tls:index/privateKey:PrivateKey control-ssh-key",
            ].sort(),
        );
        for (const resource of moved) {
            expect({ name: resource.name, aliases: resource.aliasParentUrns }).toEqual({ name: resource.name, aliases: [server] });
        }
        // What reaches the host over SSH stays in the ControlServer, where it always was.
        for (const step of ["control-bootstrap", "control-headscale-files", "control-health"]) {
            expect(recorder.named(step).parentUrn).toBe(server);
        }
        expect(recorder.resources.filter((resource) => resource.type.startsWith("digitalocean:") && resource.parentUrn !== droplet)).toEqual([]);
    });

    it("makes the droplet, its SSH key and attachments replaceable, and nothing identity depends on them", () => {
        const droplet = recorder.named("control-droplet");
        expect(droplet).toMatchObject({
            protect: false,
            inputs: { name: "shortcircuit-lighthouse-sfo3", region: "sfo3", size: "s-1vcpu-1gb", image: "debian-12-x64" },
        });
        expect(droplet.dependsOn).toEqual(expect.arrayContaining(["control-ssh-key"]));
        expect(droplet.secretInputs).toContain("userData");
        expect(String(droplet.inputs.userData)).toMatch(/^#cloud-config\n/);
        for (const attachment of ["control-data-attachment", "control-ip-assignment", "control-firewall"]) {
            expect(recorder.named(attachment).dependsOn).toContain("control-droplet");
            expect(recorder.named(attachment).protect).toBe(false);
        }
        // Replacing the droplet reaches only what depends on it: never the identity.
        const dependents = recorder.resources.filter((resource) => resource.dependsOn.includes("control-droplet")).map((resource) => resource.name);
        expect(dependents).not.toEqual(expect.arrayContaining(["control-ip"]));
        expect(dependents).not.toContain("control-data");
        expect(dependents).not.toContain("nebula-ca-key");
    });

    it("opens only 443, 80, STUN and Nebula to the world, SSH from admin CIDRs and the overlays", () => {
        const rules = recorder.named("control-firewall").inputs.inboundRules as { protocol: string; portRange?: string; sourceAddresses: string[] }[];
        const world = ["0.0.0.0/0", "::/0"];
        expect(rules).toEqual([
            { protocol: "tcp", portRange: "443", sourceAddresses: world },
            { protocol: "tcp", portRange: "80", sourceAddresses: world },
            { protocol: "udp", portRange: "3478", sourceAddresses: world },
            { protocol: "udp", portRange: "4242", sourceAddresses: world },
            { protocol: "tcp", portRange: "22", sourceAddresses: ["198.51.100.10/32", "100.67.0.0/16", "10.67.0.0/16"] },
            { protocol: "icmp", sourceAddresses: world },
        ]);
    });

    it("gates dependents on /health and sends the keys only as secret stdin", () => {
        // Headscale answers once its own files are delivered; the control host's Nebula delivery is
        // in the fleet's Nebula wave instead (components/order.ts).
        expect(recorder.named("control-health").dependsOn).toContain("control-headscale-files");
        expect(recorder.named("control-health").dependsOn).not.toContain("control-nebula-files");
        expect(stepScript(recorder.named("control-health").inputs)).toContain('"https://${hostname}/health"');
        expect(parsePayload(stepPayload(recorder.named("control-health").inputs)).params.HOSTNAME).toBe("hs.kub0.io");
        expect(recorder.named("control-headscale-secrets").secretInputs).toContain("stdin");
        expect(parsePayload(stepPayload(recorder.named("control-headscale-secrets").inputs)).params.OWNER).toBe("headscale:headscale");
        for (const step of ["control-headscale-files", "control-nebula-files", "control-bootstrap"]) {
            expect(recorder.named(step).secretInputs).not.toContain("stdin");
            expect(String(recorder.named(step).inputs.stdin)).not.toContain(TEST_SECRETS.headscaleNoiseKey);
        }
    });

    it("replaces the droplet delete-first: its volume attaches to one droplet at a time", () => {
        // A create-before-delete replacement would attach the Headscale volume to the new droplet
        // while the old one still holds it (422) and leave two droplets behind.
        for (const name of ["control-droplet", "control-data-attachment", "control-ip-assignment"]) {
            expect(recorder.named(name).deleteBeforeReplace).toBe(true);
        }
        // A rebuilt droplet re-runs the SSH steps, which find cloud-init's files in place.
        for (const step of [
            "control-bootstrap",
            "control-headscale-secrets",
            "control-headscale-files",
            "control-nebula-secrets",
            "control-nebula-files",
            "control-health",
        ]) {
            expect(recorder.named(step).inputs.triggers).toEqual(expect.arrayContaining([outputs.controlDropletId]));
        }
    });

    it("exports the reserved IP, Headscale URL, DERP map and droplet id, and no secret", () => {
        expect(outputs.controlServerIp).toBe("203.0.113.50");
        expect(outputs.headscaleUrl).toBe("https://hs.kub0.io");
        expect(String(outputs.derpMap)).toContain("regioncode: aus");
        expect(outputs.controlDropletId).toMatch(/^\d+$/);
        const serialized = JSON.stringify(outputs);
        for (const secret of Object.values(TEST_SECRETS)) {
            expect(serialized).not.toContain(secret);
        }
        expect(serialized).not.toContain("PRIVATE KEY");
    });
});

describe("DerpRelay under strict mocks", () => {
    it("installs the pinned derper on the Austin Mac and runs it under launchd", () => {
        expect(parsePayload(stepPayload(recorder.named("derp-aero-install").inputs)).params).toEqual({
            VERSION: "v1.102.5",
            TARGET: "/usr/local/lib/derper/v1.102.5/derper",
            SERVICE_FILE: "/Library/LaunchDaemons/com.tailscale.derper.plist",
            SYSTEMD_UNIT: "",
        });
        const files = parsePayload(stepPayload(recorder.named("derp-aero-derper-files").inputs));
        expect(files.params).toMatchObject({
            SERVICE_MANAGER: "launchd",
            SERVICE: "com.tailscale.derper",
            PLIST: "/Library/LaunchDaemons/com.tailscale.derper.plist",
        });
        expect(recorder.resources.some((resource) => resource.name.startsWith("derp-aero-tls"))).toBe(false);
    });

    it("pins a self-signed relay's certificate in the DERP map", async () => {
        const run = await runProgramUnderMocks({ stack: "lab" }, rawFleet("lab"));
        expect(run.error).toBeUndefined();
        expect(run.recorder.named("derp-lab-relay-01-tls-cert").inputs).toMatchObject({ dnsNames: ["derp-lab.kub0.io"] });
        expect(run.recorder.named("derp-lab-relay-01-derper-secrets").secretInputs).toContain("stdin");
        const derpMap = await new Promise<string>((resolve) =>
            run.program!.derpMap.apply((value) => {
                resolve(value);
                return value;
            }),
        );
        expect(derpMap).toMatch(/certname: sha256-raw:[0-9a-f]{64}/);
    });
});

/** A reader that knows every secret's value, as the program's does; a key given as undefined is unset. */
function known(values: Readonly<Record<string, string | undefined>>): SecretReader {
    return (key) => {
        const value = values[key];
        return value === undefined ? { state: "unset" } : { state: "set", secret: true, value };
    };
}

describe("stack secrets", () => {
    it("accepts well-formed, distinct keys", () => {
        expect(secretProblems(known(TEST_SECRETS))).toEqual([]);
    });

    it("reports every missing or malformed secret at once, never echoing a value", () => {
        const problems = secretProblems(known({ k3sToken: "", headscaleNoiseKey: "privkey:XYZ-not-hex", derpKey: undefined })).map(formatProblem);
        expect(problems).toEqual([
            "shortcircuit:k3sToken: required secret is missing; set it with: pulumi config set --secret shortcircuit:k3sToken <value>",
            "shortcircuit:headscaleNoiseKey: must be privkey: followed by 64 lowercase hex characters (a Curve25519 private key)",
            'shortcircuit:derpKey: required secret is missing; generate one with: echo "privkey:$(openssl rand -hex 32)" and set it with: pulumi config set --secret shortcircuit:derpKey <value>',
        ]);
        expect(problems.join("\n")).not.toContain("XYZ");
    });

    it("checks only what a reader can know: an encrypted or absent secret of a stack file is not judged", () => {
        const encrypted: SecretReader = (key) => (key === "k3sToken" ? { state: "unknown" } : { state: "set", secret: true });
        expect(secretProblems(encrypted)).toEqual([]);
    });

    it("rejects a DERP key equal to the noise key", () => {
        const same = `privkey:${"3c".repeat(32)}`;
        expect(secretProblems(known({ ...TEST_SECRETS, headscaleNoiseKey: same, derpKey: same })).map(formatProblem)).toEqual([
            "shortcircuit:derpKey: must differ from shortcircuit:headscaleNoiseKey: the noise and DERP keys are separate identities",
        ]);
    });
});

describe("ControlServer on an existing host", () => {
    it("delivers the same files and bootstrap over SSH, with no droplet, volume or reserved IP", async () => {
        const run = await runProgramUnderMocks({ stack: "lab" }, labWithExistingControlHost());
        expect(run.error).toBeUndefined();
        expect(run.recorder.resources.filter((resource) => resource.type.startsWith("digitalocean:"))).toEqual([]);
        for (const step of ["control-headscale-secrets", "control-bootstrap", "control-headscale-files", "control-nebula-files", "control-health"]) {
            expect(run.recorder.named(step).inputs.connection).toMatchObject({ host: "192.168.50.3", user: "root" });
        }
        expect(parsePayload(stepPayload(run.recorder.named("control-bootstrap").inputs)).params).toEqual({
            VOLUME_DEVICE: "none",
            HEADSCALE_VERSION: "v0.29.1",
            NEBULA_VERSION: "v1.9.7",
            LITESTREAM_VERSION: "v0.5.18",
            START: "no",
        });
        // Nothing starts before its unit and config are delivered: the bootstrap starts nothing
        // over SSH, and each delivery restarts its own service after writing its files.
        // Headscale's drop-in requires the restore unit: Litestream's files come first.
        expect(run.recorder.named("control-headscale-secrets").dependsOn).toEqual(["control-bootstrap", "control-litestream-files"]);
        expect(run.recorder.named("control-nebula-secrets").dependsOn).toContain("control-bootstrap");
        expect(run.recorder.named("control-nebula-secrets").dependsOn).not.toContain("control-headscale-files");
        expect(parsePayload(stepPayload(run.recorder.named("control-nebula-files").inputs)).params).toMatchObject({
            SERVICE: "nebula.service",
            RESTART: "yes",
        });
        expect(String(run.recorder.named("control-nebula-files").inputs.stdin)).toContain("@file 0644");
        // The lighthouse is this host: its Nebula files come with the control server's, not twice.
        expect(run.recorder.resources.some((resource) => resource.name.startsWith("nebula-lab-control-01"))).toBe(false);
        expect(run.program!.controlDropletId).toBe("existing host");
    });
});

describe("adopting a running control server (controlServer.host.adopt)", () => {
    const adopt = {
        dropletId: "371122334",
        reservedIp: "203.0.113.77",
        volumeId: "4f1c2d3e-0a1b-4c2d-8e9f-0123456789ab",
        firewallId: "9a8b7c6d-1e2f-4a3b-9c8d-abcdefabcdef",
    };
    const prodHost = (): Record<string, unknown> => (rawFleet("prod") as { controlServer: { host: Record<string, unknown> } }).controlServer.host;
    const world = ["0.0.0.0/0", "::/0"];
    /** What DigitalOcean reports for the running objects, as the provider's reads return them. */
    function runningObjects(
        change: (objects: Record<string, Record<string, unknown>>) => void = () => {},
    ): (args: { token: string }) => Record<string, unknown> | undefined {
        const host = prodHost();
        const prod: Raw = rawFleet("prod");
        const objects: Record<string, Record<string, unknown>> = {
            "digitalocean:index/getDroplet:getDroplet": {
                id: Number(adopt.dropletId),
                name: host.name,
                region: host.region,
                size: host.size,
                image: host.image,
                volumeIds: [adopt.volumeId],
            },
            // As the 4.80.1 provider answers: its getReservedIp never returns the droplet.
            "digitalocean:index/getReservedIp:getReservedIp": { ipAddress: adopt.reservedIp, region: host.region },
            "digitalocean:index/getVolume:getVolume": {
                id: adopt.volumeId,
                name: `${String(host.name)}-headscale`,
                region: host.region,
                size: host.volumeSizeGb ?? 1,
                dropletIds: [Number(adopt.dropletId)],
            },
            "digitalocean:index/getFirewall:getFirewall": {
                id: adopt.firewallId,
                firewallId: adopt.firewallId,
                name: `${String(host.name)}-fw`,
                dropletIds: [Number(adopt.dropletId)],
                inboundRules: [
                    { protocol: "tcp", portRange: "443", sourceAddresses: world },
                    { protocol: "tcp", portRange: "80", sourceAddresses: world },
                    { protocol: "udp", portRange: "3478", sourceAddresses: world },
                    { protocol: "udp", portRange: "4242", sourceAddresses: world },
                    {
                        protocol: "tcp",
                        portRange: "22",
                        sourceAddresses: [...(host.adminCidrs as string[]), prod.overlays.tailnet.prefix, prod.overlays.nebula.network],
                    },
                    { protocol: "icmp", sourceAddresses: world },
                ],
                outboundRules: [
                    { protocol: "tcp", portRange: "1-65535", destinationAddresses: world },
                    { protocol: "udp", portRange: "all", destinationAddresses: world },
                    { protocol: "icmp", destinationAddresses: world },
                ],
            },
        };
        change(objects);
        return (args) => objects[args.token];
    }
    const adoptedRaw = (): Raw => {
        const raw: Raw = rawFleet("prod");
        raw.controlServer.host.adopt = adopt;
        return raw;
    };
    let adopted: MockRecorder;
    beforeAll(async () => {
        const run = await runProgramUnderMocks({ stack: "prod", calls: runningObjects() }, adoptedRaw());
        expect(run.error).toBeUndefined();
        adopted = run.recorder;
    });

    it("imports the reserved IP, volume, droplet, IP assignment and firewall instead of creating them", () => {
        expect(adopted.named("control-ip")).toMatchObject({ importId: adopt.reservedIp, protect: true });
        expect(adopted.named("control-data")).toMatchObject({ importId: adopt.volumeId, protect: true });
        expect(adopted.named("control-droplet").importId).toBe(adopt.dropletId);
        expect(adopted.named("control-ip-assignment").importId).toBe(`${adopt.reservedIp},${adopt.dropletId}`);
        expect(adopted.named("control-firewall").importId).toBe(adopt.firewallId);
        // Not importable; the provider attaches only a volume that is not already on the droplet.
        expect(adopted.named("control-data-attachment").importId).toBe("");
    });

    it("lets nothing the running objects were built with differently replace them, and never unassigns the address", () => {
        expect(adopted.named("control-droplet").ignoreChanges).toEqual(["userData", "sshKeys", "monitoring", "ipv6"]);
        expect(adopted.named("control-data").ignoreChanges).toEqual(["initialFilesystemType", "description"]);
        expect(adopted.named("control-ip").ignoreChanges).toEqual(["dropletId"]);
    });

    it("teaches the adopted droplet the program's key over the operator's, then reaches it with the program's key like a built one", () => {
        const authorize = adopted.named("control-authorize");
        expect(authorize.inputs.connection).not.toHaveProperty("privateKey");
        expect(parsePayload(stepPayload(authorize.inputs)).params.PUBLIC_KEY).toMatch(/^ssh-ed25519 /);
        expect(adopted.named("control-bootstrap").dependsOn).toContain("control-authorize");
        expect(adopted.named("control-bootstrap").inputs.connection).toHaveProperty("privateKey");
        expect(adopted.named("control-bootstrap").inputs.connection).toEqual(recorder.named("control-bootstrap").inputs.connection);
    });

    it("is the same stack as one that adopts nothing once `adopt` is gone: the same options, no authorize step", () => {
        expect(recorder.resources.filter((resource) => resource.importId !== "")).toEqual([]);
        expect(recorder.named("control-droplet").ignoreChanges).toEqual(adopted.named("control-droplet").ignoreChanges);
        expect(recorder.named("control-ip").ignoreChanges).toEqual(["dropletId"]);
        expect(recorder.resources.map((resource) => resource.name)).not.toContain("control-authorize");
    });

    it("refuses every difference from the running objects, naming the field and both values, and declares nothing", async () => {
        const calls = runningObjects((objects) => {
            objects["digitalocean:index/getDroplet:getDroplet"].size = "s-2vcpu-4gb";
            objects["digitalocean:index/getVolume:getVolume"].size = 10;
            // A provider that does return the IP's droplet.
            objects["digitalocean:index/getReservedIp:getReservedIp"].dropletId = 999;
        });
        const run = await runProgramUnderMocks({ stack: "prod", calls }, adoptedRaw());
        expect((run.error as { __pulumiRunError?: boolean }).__pulumiRunError).toBe(true);
        const host = prodHost();
        expect((run.error as Error).message.split("\n")).toEqual([
            `fleet.controlServer.host.size: droplet ${adopt.dropletId} has size "s-2vcpu-4gb", the stack file says "${String(host.size)}"; adoption changes nothing: set the stack file to the running value (change it after adoption, as a normal update)`,
            `fleet.controlServer.host.adopt.reservedIp: reserved IP ${adopt.reservedIp} has droplet "999", the stack file says "${adopt.dropletId}"; adopt the droplet the address is assigned to (hs.kub0.io points at it); the program never moves the address during adoption`,
            `fleet.controlServer.host.volumeSizeGb: volume ${adopt.volumeId} has size (GB) 10, the stack file says ${Number(host.volumeSizeGb ?? 1)}; adoption changes nothing: set the stack file to the running value (change it after adoption, as a normal update)`,
        ]);
        expect(run.recorder.resources).toEqual([]);
    });

    it("says what to do when the adopted droplet is gone, instead of importing it again", async () => {
        const host = controlHost(parseFleet(adoptedRaw()).fleet);
        if (host.kind !== "droplet" || !host.adopt) throw new Error("the prod stack's control server is a droplet");
        const problems = adoptionProblems(host, host.adopt, {
            reservedIp: { ipAddress: adopt.reservedIp, region: host.region },
            volume: { id: adopt.volumeId, name: host.volumeName, size: host.volumeSizeGb, dropletIds: [] },
        });
        expect(problems[0]).toMatch(
            /^fleet\.controlServer\.host\.adopt\.dropletId: no droplet 371122334 exists\. If it was adopted before and has been lost, .*delete adopt and run up/,
        );
        // A read that finds nothing (the provider's 404 or "no ... found") is "missing"; any other
        // failure (no token, API down) fails the run rather than passing as missing.
        const failing = (message: string) => () => Promise.reject(new Error(message));
        await expect(
            readOrMissing(
                failing(
                    "Invoke of 'digitalocean:index/getDroplet:getDroplet' failed: Error retrieving droplet: GET https://api.digitalocean.com/v2/droplets/371122334: 404 The resource you were accessing could not be found.",
                ),
            ),
        ).resolves.toBeUndefined();
        await expect(readOrMissing(failing("no volume found with name shortcircuit-lighthouse-sfo3-headscale"))).resolves.toBeUndefined();
        await expect(readOrMissing(failing("GET https://api.digitalocean.com/v2/droplets/1: 401 Unable to authenticate you"))).rejects.toThrow("401");
    });
});
