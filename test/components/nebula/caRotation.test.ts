import { parsePayload } from "../../../components/remote/payload";
import { createNebulaCa, parseNebulaCert, parseNebulaCertBundle, verifyNebulaCert, type NebulaCa } from "../../../stacks/nebulaCert";
import { NEBULA_FILES } from "../../../components/nebula/config";
import { hostFilePath, renderFleetFiles } from "../../../scripts/render/files";
import { formatProblem, validateFleet } from "../../../stacks/validate";
import { runProgramUnderMocks, runUnderMocks, TEST_SECRETS, valueOf, type MockRecorder, stepPayload } from "../../support/pulumiMocks";
import { rawFleet, type Raw } from "../../support/fixtures";

/*
 * Bringing the operator's Nebula CA (made outside the program) and rotating between two CAs
 * without a gap: which CA signs, what every host's ca.crt holds, and which keys are in state.
 */

const TLS_KEY = "tls:index/privateKey:PrivateKey";
const DAY = 86_400_000;
const NOW = new Date();

/** Like `nebula-cert ca -name "home CA"`: a CA made outside the program, valid a year back and ten ahead. */
function operatorCa(options: { notAfter?: Date; groups?: string[]; seed?: number } = {}): NebulaCa {
    return createNebulaCa({
        name: "home CA",
        notBefore: new Date(NOW.getTime() - 365 * DAY),
        notAfter: options.notAfter ?? new Date(NOW.getTime() + 3650 * DAY),
        groups: options.groups,
        privateKeySeed: Buffer.alloc(32, options.seed ?? 5),
    });
}

const EXISTING = operatorCa();

function withPki(pki: Record<string, unknown>, base: Raw = rawFleet("lab")): Raw {
    base.overlays.nebula.pki = { ...base.overlays.nebula.pki, ...pki };
    return base;
}

function caSecrets(ca: { certPem: string; keyPem: string } = EXISTING): Record<string, string> {
    return { ...TEST_SECRETS, nebulaCaCert: ca.certPem, nebulaCaKey: ca.keyPem };
}

interface ProgramView {
    recorder: MockRecorder;
    caKeys: string[];
    /** Host → the ca.crt and host.crt its delivery carries. */
    delivered: Record<string, { ca: string; cert: string }>;
    fingerprint: string;
    trust: { stage: string; signer: string; trusted: { ca: string; fingerprint: string }[] };
    error?: unknown;
}

async function runProgram(fleet: Raw, secrets: Record<string, string> = TEST_SECRETS): Promise<ProgramView> {
    const { recorder, program, error } = await runProgramUnderMocks({ stack: "lab" }, fleet, secrets);
    const delivered: ProgramView["delivered"] = {};
    for (const resource of recorder.ofType("command:remote:Command").filter((each) => /^nebula-.*-files$/.test(each.name))) {
        const files = parsePayload(stepPayload(resource.inputs)).files;
        const content = (target: string): string => files.find((file) => file.target === target)?.content ?? "";
        delivered[resource.name.replace(/^nebula-/, "").replace(/-files$/, "")] = { ca: content(NEBULA_FILES.ca), cert: content(NEBULA_FILES.cert) };
    }
    return {
        recorder,
        error,
        caKeys: recorder
            .ofType(TLS_KEY)
            .filter((each) => each.name.startsWith("nebula-ca-key"))
            .map((each) => `${each.name}${each.protect ? " (protected)" : ""}`)
            .sort(),
        delivered,
        fingerprint: program ? await valueOf(program.nebulaCaFingerprint) : "",
        trust: program ? await valueOf(program.nebulaCaTrust) : { stage: "", signer: "", trusted: [] },
    };
}

const fingerprints = (bundle: string): string[] => parseNebulaCertBundle(bundle).map((cert) => cert.fingerprint);
const issuer = (certPem: string): string => parseNebulaCert(certPem).issuer;

describe("a fleet without the new settings", () => {
    it("keeps one protected CA key named as always, ca.crt its single CA, and reports stage none", async () => {
        const view = await runProgram(rawFleet("lab"));
        expect(view.error).toBeUndefined();
        expect(view.caKeys).toEqual(["nebula-ca-key (protected)"]);
        expect(view.trust).toMatchObject({ stage: "none", signer: "generation 1", trusted: [{ ca: "generation 1", fingerprint: view.fingerprint }] });
        for (const { ca, cert } of Object.values(view.delivered)) {
            expect(fingerprints(ca)).toEqual([view.fingerprint]);
            expect(issuer(cert)).toBe(view.fingerprint);
        }
    });
});

describe("the existing CA (overlays.nebula.pki.ca: existing)", () => {
    it("creates no CA key and signs every host certificate with the operator's CA", async () => {
        const view = await runProgram(withPki({ ca: "existing" }), caSecrets());
        expect(view.error).toBeUndefined();
        expect(view.caKeys).toEqual([]);
        expect(view.fingerprint).toBe(EXISTING.fingerprint);
        expect(view.trust).toMatchObject({ stage: "none", signer: "existing", trusted: [{ ca: "existing", fingerprint: EXISTING.fingerprint }] });
        expect(Object.keys(view.delivered).sort()).toEqual(["lab-agent-01", "lab-agent-02", "lab-relay-01", "lab-server-01"]);
        for (const { ca, cert } of Object.values(view.delivered)) {
            expect(ca).toBe(EXISTING.certPem);
            expect(verifyNebulaCert(EXISTING.certPem, cert, NOW)).toEqual({ ok: true });
        }
        // Host validity follows the operator's CA (cycles anchored at its notBefore), not caIssuedOn.
        const cert = parseNebulaCert(view.delivered["lab-agent-01"].cert);
        expect(cert.notBefore.getTime()).toBeGreaterThanOrEqual(parseNebulaCert(EXISTING.certPem).notBefore.getTime());
        expect(cert.notAfter.getTime()).toBeGreaterThan(NOW.getTime());
    });

    it("needs no caIssuedOn", async () => {
        const raw = withPki({ ca: "existing" });
        delete raw.overlays.nebula.pki.caIssuedOn;
        const view = await runProgram(raw, caSecrets());
        expect(view.error).toBeUndefined();
        expect(view.fingerprint).toBe(EXISTING.fingerprint);
    });
});

describe("rotating from the existing CA to a generated one", () => {
    const rotation = (stage: "trust" | "sign"): Raw => withPki({ ca: "generated", rotation: { from: "existing", stage } });

    it("stage trust: every ca.crt holds both CAs, the existing one still signs", async () => {
        const view = await runProgram(rotation("trust"), caSecrets());
        expect(view.error).toBeUndefined();
        expect(view.caKeys).toEqual(["nebula-ca-key (protected)"]);
        expect(view.fingerprint).toBe(EXISTING.fingerprint);
        expect(view.trust.stage).toBe("trust");
        expect(view.trust.signer).toBe("existing");
        expect(view.trust.trusted.map((each) => each.ca)).toEqual(["existing", "generation 1"]);
        const bundle = view.trust.trusted.map((each) => each.fingerprint);
        expect(bundle[0]).toBe(EXISTING.fingerprint);
        for (const { ca, cert } of Object.values(view.delivered)) {
            expect(fingerprints(ca)).toEqual(bundle);
            expect(issuer(cert)).toBe(EXISTING.fingerprint);
            expect(verifyNebulaCert(ca, cert, NOW)).toEqual({ ok: true });
        }
    });

    it("stage sign: the same bundle, certificates signed by the generated CA; then the rotation's end trusts it alone", async () => {
        const trust = await runProgram(rotation("trust"), caSecrets());
        const sign = await runProgram(rotation("sign"), caSecrets());
        expect(sign.error).toBeUndefined();
        const generated = sign.trust.trusted[1].fingerprint;
        expect(sign.fingerprint).toBe(generated);
        expect(sign.trust.signer).toBe("generation 1");
        for (const [host, { ca, cert }] of Object.entries(sign.delivered)) {
            // ca.crt does not change between the stages: only host.crt does.
            expect(ca).toBe(trust.delivered[host].ca);
            expect(issuer(cert)).toBe(generated);
            expect(verifyNebulaCert(ca, cert, NOW)).toEqual({ ok: true });
            // A host still on the trust stage's certificate is accepted by one on the sign stage, and the reverse.
            expect(verifyNebulaCert(ca, trust.delivered[host].cert, NOW)).toEqual({ ok: true });
        }
        const done = await runProgram(withPki({ ca: "generated" }), TEST_SECRETS);
        expect(done.error).toBeUndefined();
        expect(done.caKeys).toEqual(["nebula-ca-key (protected)"]);
        expect(done.trust).toMatchObject({ stage: "none", signer: "generation 1" });
        for (const { ca } of Object.values(done.delivered)) {
            expect(fingerprints(ca)).toEqual([done.fingerprint]);
        }
    });
});

describe("rotating from generation 1 to generation 2", () => {
    it("adds the protected key nebula-ca-key-g2, keeps generation 1's certificate with its own dates, and signs as the stage says", async () => {
        const before = await runProgram(rawFleet("lab"));
        const fleet = (stage: "trust" | "sign"): Raw =>
            withPki({ caGeneration: 2, caIssuedOn: "2026-11-20", rotation: { from: 1, stage, fromCaIssuedOn: "2026-11-01" } });
        const trust = await runProgram(fleet("trust"));
        expect(trust.error).toBeUndefined();
        expect(trust.caKeys).toEqual(["nebula-ca-key (protected)", "nebula-ca-key-g2 (protected)"]);
        expect(trust.trust.trusted.map((each) => each.ca)).toEqual(["generation 1", "generation 2"]);
        expect(trust.trust.signer).toBe("generation 1");
        for (const { ca } of Object.values(trust.delivered)) {
            const [g1, g2] = parseNebulaCertBundle(ca);
            expect(g1.notBefore.toISOString()).toBe("2026-11-01T00:00:00.000Z");
            expect(g2.notBefore.toISOString()).toBe("2026-11-20T00:00:00.000Z");
        }
        const sign = await runProgram(fleet("sign"));
        expect(sign.trust.signer).toBe("generation 2");
        expect(sign.fingerprint).toBe(sign.trust.trusted[1].fingerprint);
        expect(before.fingerprint).not.toBe("");
    });
});

describe("render follows the same CA plan with throwaway CAs", () => {
    const render = (raw: Raw): string => {
        const fleet = validateFleet(raw).fleet!;
        return renderFleetFiles(fleet, { now: NOW, pkiSeedHex: "ab".repeat(32) }).files.get(hostFilePath("lab-agent-01", NEBULA_FILES.ca))!.content;
    };

    it("writes one CA without a rotation, both during one, and the same generation-1 CA as before", () => {
        const plain = render(rawFleet("lab"));
        expect(parseNebulaCertBundle(plain)).toHaveLength(1);
        const rotating = parseNebulaCertBundle(render(withPki({ rotation: { from: "existing", stage: "trust" } })));
        expect(rotating.map((cert) => cert.name)).toEqual(["existing CA (throwaway render CA)", "shortcircuit-lab (throwaway render CA)"]);
        expect(rotating[1].fingerprint).toBe(parseNebulaCert(plain).fingerprint);
        expect(parseNebulaCertBundle(render(withPki({ ca: "existing" }))).map((cert) => cert.name)).toEqual(["existing CA (throwaway render CA)"]);
    });
});

describe("config refusals", () => {
    const errors = (pki: Record<string, unknown>, mutate?: (raw: Raw) => void): string[] => {
        const raw = withPki(pki);
        mutate?.(raw);
        return validateFleet(raw)
            .problems.map(formatProblem)
            .filter((line) => !line.startsWith("warning: "));
    };

    it("refuses a rotation from the CA it goes to", () => {
        expect(errors({ rotation: { from: 1, stage: "trust" } })).toEqual([
            "fleet.overlays.nebula.pki.rotation.from: is the CA the rotation goes to (caGeneration 1): name the CA being retired, and the new one in ca/caGeneration",
        ]);
        expect(errors({ ca: "existing", rotation: { from: "existing", stage: "sign" } })).toEqual([
            'fleet.overlays.nebula.pki.rotation.from: is the CA the rotation goes to (ca "existing"): name the CA being retired, and the new one in ca/caGeneration',
        ]);
    });

    it("refuses unknown CA sources, stages and generations", () => {
        expect(errors({ ca: "imported" })).toEqual(['fleet.overlays.nebula.pki.ca: Invalid option: expected one of "generated"|"existing"']);
        expect(errors({ rotation: { from: "generated", stage: "trust" } })).toEqual([
            'fleet.overlays.nebula.pki.rotation.from: must be "existing" or the generation number (1, 2, …) of a CA the program made',
        ]);
        expect(errors({ caGeneration: 2, rotation: { from: 1, stage: "done" } })).toEqual([
            'fleet.overlays.nebula.pki.rotation.stage: Invalid option: expected one of "trust"|"sign"',
        ]);
        expect(errors({ caGeneration: 0 })).toEqual(["fleet.overlays.nebula.pki.caGeneration: Too small: expected number to be >=1"]);
    });

    it("requires caIssuedOn only while the program makes a CA", () => {
        const drop = (raw: Raw): void => {
            delete raw.overlays.nebula.pki.caIssuedOn;
        };
        expect(errors({}, drop)).toEqual([
            'fleet.overlays.nebula.pki.caIssuedOn: required while the program makes a CA (ca "generated", or rotation.from a generation number): it is that CA certificate\'s notBefore',
        ]);
        expect(errors({ ca: "existing" }, drop)).toEqual([]);
        expect(errors({ ca: "existing", rotation: { from: 1, stage: "trust" } }, drop)).toHaveLength(1);
    });

    it("refuses the retiring generation's dates on a rotation from the existing CA", () => {
        expect(errors({ rotation: { from: "existing", stage: "trust", fromCaIssuedOn: "2026-01-01", fromCaValidityDays: 365 } })).toEqual([
            "fleet.overlays.nebula.pki.rotation.fromCaIssuedOn: applies only when rotation.from is a generation: the existing CA's dates come from its certificate",
            "fleet.overlays.nebula.pki.rotation.fromCaValidityDays: applies only when rotation.from is a generation: the existing CA's dates come from its certificate",
        ]);
    });
});

describe("the existing CA's secrets", () => {
    const refusal = async (secrets: Record<string, string>, pki: Record<string, unknown> = { ca: "existing" }): Promise<string> => {
        const { recorder, error } = await runProgramUnderMocks({ stack: "lab" }, withPki(pki), secrets);
        expect(recorder.resources).toEqual([]);
        expect((error as { __pulumiRunError?: boolean }).__pulumiRunError).toBe(true);
        return (error as Error).message;
    };
    const withoutCa = { ...TEST_SECRETS };

    it("are required, named with how to set them", async () => {
        expect(await refusal(withoutCa)).toBe(
            [
                "shortcircuit:nebulaCaCert: required secret is missing (overlays.nebula.pki uses the existing CA); set it with: pulumi config set --secret shortcircuit:nebulaCaCert < ca.crt",
                "shortcircuit:nebulaCaKey: required secret is missing (overlays.nebula.pki uses the existing CA); set it with: pulumi config set --secret shortcircuit:nebulaCaKey < ca.key",
            ].join("\n"),
        );
        // A rotation from the existing CA needs it too.
        expect(await refusal(withoutCa, { rotation: { from: "existing", stage: "trust" } })).toContain("shortcircuit:nebulaCaCert: required secret is missing");
    });

    it("must be secrets", async () => {
        const { error } = await runUnderMocks({ stack: "lab" }, rawFleet("lab"), async () => {
            const pulumi = await import("@pulumi/pulumi");
            const config: Record<string, string> = { "shortcircuit:fleet": JSON.stringify(withPki({ ca: "existing" })) };
            for (const [key, value] of Object.entries(caSecrets())) {
                config[`shortcircuit:${key}`] = value;
            }
            // nebulaCaKey set without --secret.
            pulumi.runtime.setAllConfig(
                config,
                Object.keys(caSecrets())
                    .filter((key) => key !== "nebulaCaKey")
                    .map((key) => `shortcircuit:${key}`),
            );
            return (await import("../../../index")).default({ exitOnRefusal: false });
        });
        expect((error as Error).message).toBe(
            "shortcircuit:nebulaCaKey: must be set with --secret (it is stored in plaintext): pulumi config set --secret shortcircuit:nebulaCaKey <value>",
        );
    });

    it("refuses a host certificate, a bundle, an expired CA, a foreign key, a non-key and a CA whose groups exclude a member", async () => {
        const other = operatorCa({ seed: 6 });
        const hostCert = (await runProgram(withPki({ ca: "existing" }), caSecrets())).delivered["lab-agent-01"].cert;
        expect(await refusal(caSecrets({ certPem: hostCert, keyPem: EXISTING.keyPem }))).toBe(
            "shortcircuit:nebulaCaCert: is a host certificate (lab-agent-01), not a CA: give the CA's ca.crt",
        );
        expect(await refusal(caSecrets({ certPem: EXISTING.certPem + other.certPem, keyPem: EXISTING.keyPem }))).toBe(
            "shortcircuit:nebulaCaCert: holds 2 certificates: give the one CA that signs the fleet's certificates (nebula-cert ca's ca.crt)",
        );
        const expired = operatorCa({ notAfter: new Date("2026-06-01T00:00:00Z") });
        expect(await refusal(caSecrets(expired))).toBe(
            'shortcircuit:nebulaCaCert: the CA expired at 2026-06-01T00:00:00.000Z: no certificate it signs is valid; let the program make a new CA (overlays.nebula.pki.ca "generated")',
        );
        expect(await refusal(caSecrets({ certPem: EXISTING.certPem, keyPem: other.keyPem }))).toBe(
            "shortcircuit:nebulaCaKey: is not the key of the CA in shortcircuit:nebulaCaCert (its public key differs, or the key file is corrupt)",
        );
        expect(await refusal(caSecrets({ certPem: EXISTING.certPem, keyPem: "not a key" }))).toBe(
            "shortcircuit:nebulaCaKey: is not a NEBULA ED25519 PRIVATE KEY PEM: expected a NEBULA ED25519 PRIVATE KEY PEM block, found no PEM block",
        );
        expect(await refusal(caSecrets({ certPem: "garbage", keyPem: EXISTING.keyPem }))).toBe(
            "shortcircuit:nebulaCaCert: is not a NEBULA CERTIFICATE PEM: expected NEBULA CERTIFICATE PEM blocks, found none",
        );
        const constrained = operatorCa({ groups: ["k3s", "lab", "server", "agent"], seed: 7 });
        const message = await refusal(caSecrets(constrained));
        expect(message.split("\n")[0]).toBe(
            "shortcircuit:nebulaCaCert: the CA cannot sign shortcircuit-lab-sfo3's certificate: refusing to sign, root certificate constraints violated: certificate contained a group not present on the signing ca: control-server (CA allows k3s, lab, server, agent)",
        );
    });

    it("set while unused are only a warning", async () => {
        const view = await runProgram(rawFleet("lab"), caSecrets());
        expect(view.error).toBeUndefined();
        expect(view.caKeys).toEqual(["nebula-ca-key (protected)"]);
    });
});
