import type * as pulumiTypes from "@pulumi/pulumi";
import { parsePayload } from "../../../components/remote/payload";
import { remoteScript } from "../../../components/remote/scripts";
import { decodeNebulaPem, NEBULA_PEM_TYPES, parseNebulaCert, verifyNebulaCert } from "../../../stacks/nebulaCert";
import { runUnderMocks, runProgramUnderMocks, valueOf, stepPayload, stepScript } from "../../support/pulumiMocks";
import { stepLauncher } from "../../../components/remote/remoteCommand";
import { rawFleet, validFleet, type Raw } from "../../support/fixtures";

const NOW = new Date("2026-11-22T00:00:00Z");
const TLS_KEY = "tls:index/privateKey:PrivateKey";
const REMOTE_COMMAND = "command:remote:Command";

interface PkiSnapshot {
    caCertPem: string;
    certs: Record<string, string>;
    keys: Record<string, string>;
    keySecret: boolean;
    certSecret: boolean;
    expiry: Record<string, string>;
}

/** Builds the PKI for a fleet under mocks and resolves everything a test wants to look at. */
async function buildPki(fleet: unknown): Promise<{ snapshot?: PkiSnapshot; types: string[]; names: string[]; caProtected: boolean; error?: unknown }> {
    const run = await runUnderMocks({ stack: "lab" }, fleet, async () => {
        const pulumi: typeof pulumiTypes = await import("@pulumi/pulumi");
        const { NebulaPki } = await import("../../../components/nebula/nebulaPki");
        const { nebulaMembers } = await import("../../../stacks/nebulaMembers");
        const { parseFleet } = await import("../../../stacks/validate");
        const parsed = parseFleet(fleet).fleet;
        const pki = new NebulaPki("nebula", { fleet: parsed, members: nebulaMembers(parsed), now: NOW });
        const certs: Record<string, string> = {};
        const keys: Record<string, string> = {};
        for (const [name, identity] of Object.entries(pki.identities)) {
            certs[name] = await valueOf(identity.certPem);
            keys[name] = await valueOf(identity.keyPem);
        }
        const first = Object.values(pki.identities)[0];
        return {
            caCertPem: await valueOf(pki.caCertPem),
            certs,
            keys,
            keySecret: await pulumi.isSecret(first.keyPem),
            certSecret: await pulumi.isSecret(first.certPem),
            expiry: await valueOf(pki.certExpiry),
        };
    });
    return {
        snapshot: run.result,
        error: run.error,
        types: run.recorder.resources.map((resource) => resource.type),
        names: run.recorder.resources.map((resource) => resource.name),
        caProtected: run.recorder.resources.some((resource) => resource.type === TLS_KEY && resource.name === "nebula-ca-key" && resource.protect),
    };
}

describe("NebulaPki under mocks", () => {
    it("keeps only keys in state: a protected CA key and one key per member", async () => {
        const { names, types, caProtected, error } = await buildPki(rawFleet("lab"));
        expect(error).toBeUndefined();
        expect(names.filter((_, index) => types[index] === TLS_KEY).sort()).toEqual(
            [
                "nebula-ca-key",
                "nebula-key-lab-agent-01",
                "nebula-key-lab-agent-02",
                "nebula-key-lab-relay-01",
                "nebula-key-lab-server-01",
                "nebula-key-shortcircuit-lab-sfo3",
            ].sort(),
        );
        expect(types).toContain("shortcircuit:nebula:NebulaPki");
        expect(caProtected).toBe(true);
    });

    it("issues certificates the CA verifies, marks keys secret and certificates not", async () => {
        const { snapshot } = await buildPki(rawFleet("lab"));
        const s = snapshot!;
        for (const [name, certPem] of Object.entries(s.certs)) {
            expect(verifyNebulaCert(s.caCertPem, certPem, NOW)).toEqual({ ok: true });
            expect(parseNebulaCert(certPem).name).toBe(name);
            expect(decodeNebulaPem(s.keys[name], NEBULA_PEM_TYPES.x25519PrivateKey)).toHaveLength(32);
            expect(s.expiry[name]).toBe("2027-11-01T00:00:00.000Z");
        }
        expect(s.keySecret).toBe(true);
        expect(s.certSecret).toBe(false);
    });

    it("reproduces every certificate byte for byte on a no-op run", async () => {
        const first = await buildPki(rawFleet("lab"));
        const second = await buildPki(rawFleet("lab"));
        expect(second.snapshot!.caCertPem).toBe(first.snapshot!.caCertPem);
        expect(second.snapshot!.certs).toEqual(first.snapshot!.certs);
    });

    it("changes only the certificate whose groups changed", async () => {
        const before = (await buildPki(rawFleet("lab"))).snapshot!;
        const raw: Raw = rawFleet("lab");
        raw.nodes[1].nebula.groups = ["gpu"];
        const after = (await buildPki(raw)).snapshot!;
        const changed = Object.keys(before.certs).filter((name) => before.certs[name] !== after.certs[name]);
        expect(changed).toEqual(["lab-agent-01"]);
        expect(parseNebulaCert(after.certs["lab-agent-01"]).groups).toEqual(["agent", "gpu", "k3s", "lab"]);
    });
});

describe("Nebula delivery in the program", () => {
    it("sends each SSH-reachable member its key in a secret command and its public files in another", async () => {
        const { recorder, error } = await runProgramUnderMocks({ stack: "lab" }, rawFleet("lab"));
        expect(error).toBeUndefined();
        const commands = recorder
            .ofType(REMOTE_COMMAND)
            .map((resource) => resource.name)
            .filter((name) => name.startsWith("nebula-"))
            .sort();
        expect(commands).toEqual(
            ["lab-agent-01", "lab-agent-02", "lab-relay-01", "lab-server-01"].flatMap((name) => [`nebula-${name}-files`, `nebula-${name}-secrets`]).sort(),
        );
        const files = recorder.named("nebula-lab-agent-01-files").inputs;
        const fleet = validFleet("lab");
        expect(files.connection).toMatchObject({
            host: "192.168.50.21",
            user: "root",
            port: 22,
            perDialTimeout: fleet.access.sshTimeoutSeconds,
            dialErrorLimit: 3,
        });
        expect(files.create).toBe(files.update);
        // `create` is a one-line launcher; the script travels at the head of stdin.
        expect(files.create).toBe(stepLauncher("remote/deliver-files.sh", remoteScript("remote/deliver-files.sh")));
        expect(stepScript(files)).toBe(remoteScript("remote/deliver-files.sh"));
        const payload = parsePayload(stepPayload(files));
        expect(payload.params).toMatchObject({ SERVICE_MANAGER: "systemd", SERVICE: "nebula.service", RESTART: "yes" });
        expect(payload.files.map((file) => `${file.target} ${file.mode.toString(8)}`)).toEqual([
            "/etc/nebula/ca.crt 644",
            "/etc/nebula/host.crt 644",
            "/etc/nebula/config.yml 644",
            "/etc/systemd/system/nebula.service 644",
            // Not installed: the config `nebula -test` checks first, with loopback lighthouses.
            "nebula-precheck.yml 600",
        ]);
        expect(payload.params.PRECHECK_NEBULA_CONFIG).toBe("nebula-precheck.yml");
        expect(payload.files.at(-1)?.content).toContain("127.0.0.1:4242");
        // Public content travels as text: a preview diff shows the changed lines.
        expect(String(files.stdin)).toContain("am_lighthouse: false");
        expect(String(files.stdin)).not.toContain("PRIVATE KEY");

        expect(recorder.named("nebula-lab-agent-01-files").secretInputs).not.toContain("stdin");
        expect(recorder.named("nebula-lab-agent-01-secrets").secretInputs).toContain("stdin");
        const key = parsePayload(stepPayload(recorder.named("nebula-lab-agent-01-secrets").inputs));
        expect(key.params.RESTART).toBe("no");
        expect(key.files.map((file) => [file.target, file.mode])).toEqual([["/etc/nebula/host.key", 0o600]]);
        expect(key.files[0].content).toContain("NEBULA X25519 PRIVATE KEY");
    });

    it("delivers Nebula on a macOS host as the program's own LaunchDaemon, owned root:wheel", async () => {
        const { recorder } = await runProgramUnderMocks({ stack: "prod" }, rawFleet("prod"));
        const aero = recorder.named("nebula-aero-files").inputs;
        const payload = parsePayload(stepPayload(aero));
        expect(payload.params).toMatchObject({
            SERVICE_MANAGER: "launchd",
            SERVICE: "io.kub0.shortcircuit.nebula",
            PLIST: "/Library/LaunchDaemons/io.kub0.shortcircuit.nebula.plist",
            PROGRAM: "/opt/homebrew/bin/nebula",
            PROGRAM_FIELD: "fleet.nodes[11].macos.nebulaBinary",
            CONFLICT_PROGRAM: "nebula",
            ADOPT_LABEL: "",
            ADOPT_FIELD: "fleet.nodes[11].macos.adoptNebulaLabel",
            OWNER: "root:wheel",
            RELOAD_PATHS: "/etc/nebula/ca.crt /etc/nebula/host.crt /etc/nebula/host.key",
            NEBULA_CERT: "/etc/nebula/host.crt",
            NEBULA_CERT_NETWORKS: "10.67.2.1/16",
        });
        expect(payload.files.find((file) => file.target === "/Library/LaunchDaemons/io.kub0.shortcircuit.nebula.plist")?.mode).toBe(0o644);
        expect(String(aero.stdin)).not.toContain("/etc/systemd/system/nebula.service");
        expect(aero.connection).toMatchObject({ host: "10.67.2.1", user: "admin" });
        const secrets = parsePayload(stepPayload(recorder.named("nebula-aero-secrets").inputs));
        expect(secrets.params).toMatchObject({ OWNER: "root:wheel", SERVICE: "io.kub0.shortcircuit.nebula" });
        // A Linux host's payload carries none of launchd's parameters.
        const linux = parsePayload(stepPayload(recorder.named("nebula-toa-fwd-gpu-01-files").inputs)).params;
        expect(Object.keys(linux)).not.toEqual(expect.arrayContaining(["PROGRAM"]));
        expect(linux.OWNER).toBe("");
    });
});

describe("Nebula restarts", () => {
    it("reach one host at a time: each host's turn waits for the previous host's; staging its keys waits for no other host", async () => {
        const { recorder } = await runProgramUnderMocks({ stack: "lab" }, rawFleet("lab"));
        const hosts = ["lab-server-01", "lab-agent-01", "lab-agent-02", "lab-relay-01"];
        const otherSteps = (step: string): string[] => recorder.named(step).dependsOn.filter((name) => name.endsWith("-files") || name.endsWith("-secrets"));
        // The control server's Nebula delivery leads the wave (components/order.ts).
        expect(otherSteps(`nebula-${hosts[0]}-files`).sort()).toEqual(["control-nebula-files", `nebula-${hosts[0]}-secrets`]);
        for (let index = 1; index < hosts.length; index++) {
            expect(otherSteps(`nebula-${hosts[index]}-files`).sort()).toEqual([`nebula-${hosts[index - 1]}-files`, `nebula-${hosts[index]}-secrets`].sort());
        }
        for (const host of hosts) {
            expect(otherSteps(`nebula-${host}-secrets`)).toEqual([]);
        }
    });
});
