import { parsePayload } from "../../components/remote/payload";
import * as pulumi from "@pulumi/pulumi";
import { runProgramUnderMocks, TEST_SECRETS, valueOf, type MockRecorder, stepPayload, stepScript } from "../support/pulumiMocks";

const timeout = (what: string): Promise<never> => new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} never resolved`)), 5000));
import { labWithExistingControlHost, rawFleet } from "../support/fixtures";
import { secretProblems } from "../../stacks/secrets";
import { formatProblem } from "../../stacks/validate";

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
        expect(recorder.named("control-health").dependsOn).toContain("control-nebula-files");
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
        expect(parsePayload(stepPayload(recorder.named("derp-aero-install").inputs)).params).toEqual({ VERSION: "v1.102.5" });
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

describe("stack secrets", () => {
    it("accepts well-formed, distinct keys", () => {
        expect(secretProblems(TEST_SECRETS)).toEqual([]);
    });

    it("reports every missing or malformed secret at once, never echoing a value", () => {
        const problems = secretProblems({ k3sToken: "", headscaleNoiseKey: "privkey:XYZ-not-hex", derpKey: undefined }).map(formatProblem);
        expect(problems).toEqual([
            "shortcircuit:k3sToken: required secret is missing; set it with: pulumi config set --secret shortcircuit:k3sToken <value>",
            "shortcircuit:headscaleNoiseKey: must be privkey: followed by 64 lowercase hex characters (a Curve25519 private key)",
            'shortcircuit:derpKey: required secret is missing; generate one with: echo "privkey:$(openssl rand -hex 32)" and set it with: pulumi config set --secret shortcircuit:derpKey <value>',
        ]);
        expect(problems.join("\n")).not.toContain("XYZ");
    });

    it("rejects a DERP key equal to the noise key", () => {
        const same = `privkey:${"3c".repeat(32)}`;
        expect(secretProblems({ ...TEST_SECRETS, headscaleNoiseKey: same, derpKey: same }).map(formatProblem)).toEqual([
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
            START: "no",
        });
        // Nothing starts before its unit and config are delivered: the bootstrap starts nothing
        // over SSH, and each delivery restarts its own service after writing its files.
        expect(run.recorder.named("control-headscale-secrets").dependsOn).toEqual(["control-bootstrap"]);
        expect(run.recorder.named("control-nebula-secrets").dependsOn).toContain("control-headscale-files");
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
    let adopted: MockRecorder;
    beforeAll(async () => {
        const raw = rawFleet("prod") as { controlServer: { host: Record<string, unknown> } };
        raw.controlServer.host.adopt = adopt;
        const run = await runProgramUnderMocks({ stack: "prod" }, raw);
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

    it("lets nothing the running objects were built with differently replace them", () => {
        expect(adopted.named("control-droplet").ignoreChanges).toEqual(["userData", "sshKeys", "monitoring", "ipv6", "image"]);
        expect(adopted.named("control-data").ignoreChanges).toEqual(["initialFilesystemType", "description"]);
        // The running droplet knows the operator's key (agent or shortcircuit:sshPrivateKey), not the one made here.
        expect(adopted.named("control-bootstrap").inputs.connection).not.toHaveProperty("privateKey");
    });

    it("changes nothing for a stack that adopts nothing", () => {
        expect(recorder.resources.filter((resource) => resource.importId !== "")).toEqual([]);
        expect(recorder.named("control-droplet").ignoreChanges).toEqual(["userData"]);
        expect(recorder.named("control-bootstrap").inputs.connection).toHaveProperty("privateKey");
    });
});
