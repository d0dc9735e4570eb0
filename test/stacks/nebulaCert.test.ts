import { createPrivateKey, sign } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import {
    createNebulaCa,
    decodeNebulaCert,
    decodeNebulaPem,
    encodeNebulaCert,
    encodeNebulaCertDetails,
    encodeNebulaPem,
    generateNebulaHostKeyPair,
    NEBULA_PEM_TYPES,
    NebulaCertError,
    nebulaCertFingerprint,
    nebulaCertMatchesKey,
    nebulaHostPublicKeyPem,
    parseNebulaCert,
    RawNebulaCertDetails,
    signNebulaHostCert,
    verifyNebulaCert,
    x25519PublicFromPrivate,
} from "../../stacks/nebulaCert";
import { mustNebulaCert, NEBULA_CERT_SETUP_HINT as SETUP_HINT, nebulaCert, printNebulaCert as printJson } from "../support/nebulaCertCli";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const nowS = Math.floor(Date.now() / 1000);
const DAY = 86400;
const at = (unixSeconds: number): Date => new Date(unixSeconds * 1000);

let dir = "";
beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "nebula-cert-test-"));
});
afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
});

function write(name: string, content: string): string {
    fs.writeFileSync(path.join(dir, name), content, { mode: 0o600 });
    return name;
}
function read(name: string): string {
    return fs.readFileSync(path.join(dir, name), "utf8");
}

/** A CA valid from a day ago for a year, constrained like the fleet's real CA. */
function fleetCa(seedByte = 1) {
    return createNebulaCa({
        name: "shortcircuit test CA",
        notBefore: at(nowS - DAY),
        notAfter: at(nowS + 365 * DAY),
        groups: ["servers", "k3s", "lighthouse", "laptops"],
        ips: ["10.67.0.0/16"],
        subnets: ["192.168.0.0/16"],
        privateKeySeed: Buffer.alloc(32, seedByte),
    });
}

function hostRequest(ca: { certPem: string; keyPem: string }, overrides: Partial<Parameters<typeof signNebulaHostCert>[0]> = {}) {
    return {
        caCertPem: ca.certPem,
        caKeyPem: ca.keyPem,
        name: "node-a",
        address: "10.67.1.5/16",
        groups: ["servers", "k3s"],
        notBefore: at(nowS - 3600),
        notAfter: at(nowS + 30 * DAY),
        publicKeyPem: generateNebulaHostKeyPair().publicKeyPem,
        ...overrides,
    };
}

/** Signs arbitrary details with a CA key, bypassing the library's checks, to probe verifiers. */
function forge(caKeyPem: string, details: RawNebulaCertDetails): string {
    const seed = decodeNebulaPem(caKeyPem, NEBULA_PEM_TYPES.ed25519PrivateKey).subarray(0, 32);
    const key = createPrivateKey({
        key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]),
        format: "der",
        type: "pkcs8",
    });
    const signature = sign(null, encodeNebulaCertDetails(details), key);
    return encodeNebulaPem(NEBULA_PEM_TYPES.certificate, encodeNebulaCert({ details, signature }));
}

function rawDetails(pem: string): RawNebulaCertDetails {
    return decodeNebulaCert(decodeNebulaPem(pem, NEBULA_PEM_TYPES.certificate)).details;
}

function thrown(fn: () => unknown): NebulaCertError {
    try {
        fn();
    } catch (e) {
        if (e instanceof NebulaCertError) return e;
        throw e;
    }
    throw new Error("expected a NebulaCertError");
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

describe("protobuf encoding", () => {
    const sample: RawNebulaCertDetails = {
        name: "h",
        ips: [0x0a430105, 0xffff0000],
        subnets: [],
        groups: ["g1", "g2"],
        notBefore: 1,
        notAfter: 300,
        publicKey: Buffer.alloc(32, 7),
        isCA: false,
        issuer: Buffer.from([0xab, 0xcd]),
    };

    it("matches a hand-derived encoding: ascending fields, packed ips, defaults omitted", () => {
        expect(encodeNebulaCertDetails(sample).toString("hex")).toBe(
            "0a0168" + // 1 name
                "1209" +
                "85828c52" +
                "8080fcff0f" + // 2 ips packed: 10.67.1.5, 255.255.0.0
                "22026731" +
                "22026732" + // 4 groups
                "2801" + // 5 notBefore
                "30ac02" + // 6 notAfter = 300
                "3a20" +
                "07".repeat(32) + // 7 publicKey
                "4a02abcd", // 9 issuer (8 isCA false: omitted)
        );
    });

    it("omits every default and always writes the details message", () => {
        const empty: RawNebulaCertDetails = {
            name: "",
            ips: [],
            subnets: [],
            groups: [],
            notBefore: 0,
            notAfter: 0,
            publicKey: Buffer.alloc(0),
            isCA: false,
            issuer: Buffer.alloc(0),
        };
        expect(encodeNebulaCertDetails(empty).length).toBe(0);
        expect(encodeNebulaCert({ details: empty, signature: Buffer.alloc(0) }).toString("hex")).toBe("0a00");
        expect(encodeNebulaCertDetails({ ...empty, isCA: true }).toString("hex")).toBe("4001");
        // int64 -1 is a ten-byte varint, as Go writes negative int64s.
        expect(encodeNebulaCertDetails({ ...empty, notBefore: -1 }).toString("hex")).toBe("28ffffffffffffffffff01");
        expect(encodeNebulaCertDetails({ ...empty, subnets: [0xffffffff, 0] }).toString("hex")).toBe("1a06ffffffff0f00");
    });

    it("decodes what it encodes", () => {
        const bytes = encodeNebulaCert({ details: sample, signature: Buffer.alloc(64, 9) });
        const back = decodeNebulaCert(bytes);
        expect(back.details).toEqual({ ...sample, publicKey: Buffer.from(sample.publicKey), issuer: Buffer.from(sample.issuer) });
        expect(encodeNebulaCert(back).equals(bytes)).toBe(true);
    });

    it("accepts non-canonical input like Go does, and re-encodes it canonically", () => {
        // issuer before name, ips unpacked, an unknown field 15, details split in two chunks.
        const part1 = Buffer.from("4a02abcd" + "1085828c52" + "108080fcff0f" + "7801", "hex");
        const part2 = Buffer.from("0a0168" + "3a20" + "07".repeat(32), "hex");
        const bytes = Buffer.concat([Buffer.from([0x0a, part1.length]), part1, Buffer.from([0x0a, part2.length]), part2]);
        const cert = decodeNebulaCert(bytes);
        expect(cert.details.name).toBe("h");
        expect(cert.details.ips).toEqual([0x0a430105, 0xffff0000]);
        expect(encodeNebulaCertDetails(cert.details).toString("hex")).toBe("0a0168" + "120985828c528080fcff0f" + "3a20" + "07".repeat(32) + "4a02abcd");
    });

    it("rejects what nebula rejects", () => {
        const key = "3a20" + "07".repeat(32);
        const wrap = (detailsHex: string) => {
            const d = Buffer.from(detailsHex, "hex");
            return Buffer.concat([Buffer.from([0x0a, d.length]), d]);
        };
        expect(() => decodeNebulaCert(Buffer.alloc(0))).toThrow(/nil byte array/);
        expect(() => decodeNebulaCert(Buffer.from("1200", "hex"))).toThrow(/Details was nil/);
        expect(() => decodeNebulaCert(wrap("120185" + key))).toThrow(/malformed/);
        expect(() => decodeNebulaCert(wrap("120101" + key))).toThrow(/IPs should be in pairs/);
        expect(() => decodeNebulaCert(wrap("1a0101" + key))).toThrow(/Subnets should be in pairs/);
        expect(() => decodeNebulaCert(wrap("3a0401020304"))).toThrow(/fewer than 32 bytes/);
        expect(() => decodeNebulaCert(wrap("0a01ff" + key))).toThrow(/UTF-8/);
        expect(() => decodeNebulaCert(wrap(key + "a00601"))).toThrow(/P-256/);
        expect(() => decodeNebulaCert(Buffer.from("0a05", "hex"))).toThrow(/malformed/);
    });
});

describe("PEM", () => {
    it("wraps base64 at 64 columns like Go's pem.EncodeToMemory", () => {
        const pem = encodeNebulaPem(NEBULA_PEM_TYPES.ed25519PrivateKey, Buffer.alloc(64, 0xff));
        const lines = pem.split("\n");
        expect(lines[0]).toBe("-----BEGIN NEBULA ED25519 PRIVATE KEY-----");
        expect(lines[1]).toHaveLength(64);
        expect(lines[2]).toBe("/".repeat(21) + "w=="); // 64 bytes = 88 base64 characters
        expect(lines[3]).toBe("-----END NEBULA ED25519 PRIVATE KEY-----");
        expect(pem.endsWith("-----\n")).toBe(true);
        expect(decodeNebulaPem(pem, NEBULA_PEM_TYPES.ed25519PrivateKey).equals(Buffer.alloc(64, 0xff))).toBe(true);
    });

    it("checks the banner, the key length and the base64", () => {
        const pub = encodeNebulaPem(NEBULA_PEM_TYPES.x25519PublicKey, Buffer.alloc(32, 1));
        expect(() => decodeNebulaPem(pub, NEBULA_PEM_TYPES.x25519PrivateKey)).toThrow(
            /expected a NEBULA X25519 PRIVATE KEY PEM block, found NEBULA X25519 PUBLIC KEY/,
        );
        expect(() => decodeNebulaPem("nothing here", NEBULA_PEM_TYPES.certificate)).toThrow(/no PEM block/);
        const short = encodeNebulaPem(NEBULA_PEM_TYPES.x25519PublicKey, Buffer.alloc(31, 1));
        expect(() => decodeNebulaPem(short, NEBULA_PEM_TYPES.x25519PublicKey)).toThrow(/must hold 32 bytes, found 31/);
        const corrupt = pub.replace(/\n[A-Za-z0-9]/, "\n*");
        expect(() => decodeNebulaPem(corrupt, NEBULA_PEM_TYPES.x25519PublicKey)).toThrow(/invalid base64/);
    });
});

describe("keys", () => {
    it("generates X25519 host key pairs whose halves belong together", () => {
        const a = generateNebulaHostKeyPair();
        const b = generateNebulaHostKeyPair();
        expect(a.privateKeyPem).toMatch(/^-----BEGIN NEBULA X25519 PRIVATE KEY-----\n/);
        expect(a.publicKeyPem).toMatch(/^-----BEGIN NEBULA X25519 PUBLIC KEY-----\n/);
        expect(decodeNebulaPem(a.privateKeyPem, NEBULA_PEM_TYPES.x25519PrivateKey)).toHaveLength(32);
        expect(nebulaHostPublicKeyPem(a.privateKeyPem)).toBe(a.publicKeyPem);
        expect(a.privateKeyPem).not.toBe(b.privateKeyPem);
    });

    it("derives the RFC 7748 X25519 public key", () => {
        // RFC 7748 section 6.1, Alice's key pair.
        const priv = Buffer.from("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", "hex");
        expect(x25519PublicFromPrivate(priv).toString("hex")).toBe("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    });
});

// ---------------------------------------------------------------------------------------------
// Signing refusals (the fleet's name and group rules: test/stacks/nebulaNames.test.ts)
// ---------------------------------------------------------------------------------------------

describe("signNebulaHostCert refuses", () => {
    const ca = fleetCa();
    const cases: [string, Partial<Parameters<typeof signNebulaHostCert>[0]>, string, RegExp][] = [
        ["validity ending after the CA's", { notAfter: at(nowS + 400 * DAY) }, "notAfter", /expires after signing certificate/],
        ["validity starting before the CA's", { notBefore: at(nowS - 2 * DAY) }, "notBefore", /valid before the signing certificate/],
        ["notAfter not after notBefore", { notBefore: at(nowS), notAfter: at(nowS) }, "notAfter", /must be later than notBefore/],
        ["an invalid date", { notBefore: new Date("nope") }, "notBefore", /not a valid date/],
        ["a group with a control character", { groups: ["servers", "a\u0007b"] }, "groups[1]", /control characters/],
        ["an empty group", { groups: [""] }, "groups[0]", /must not be empty/],
        ["a duplicate group", { groups: ["k3s", "servers", "k3s"] }, "groups[2]", /duplicates groups\[0\]/],
        ["a group the CA does not allow", { groups: ["servers", "admins"] }, "groups[1]", /group not present on the signing ca: admins/],
        ["a name with a newline", { name: "node\n" }, "name", /control characters/],
        ["an empty name", { name: "" }, "name", /must not be empty/],
        ["an address outside the CA's ips", { address: "10.68.1.5/16" }, "address", /ip assignment outside the limitations of the signing ca: 10.68.1.5\/16/],
        ["a mask wider than the CA's", { address: "10.67.1.5/8" }, "address", /outside the limitations/],
        ["an IPv6 address", { address: "fd00::5/64" }, "address", /only hold IPv4/],
        ["an address without a prefix", { address: "10.67.1.5" }, "address", /expected an IPv4 CIDR/],
        ["an address with leading zeros", { address: "10.067.1.5/16" }, "address", /expected an IPv4 CIDR/],
        ["the zero address", { address: "0.0.0.0/16" }, "address", /cannot be a host address/],
        ["a subnet outside the CA's subnets", { subnets: ["172.16.0.0/24"] }, "subnets[0]", /subnet assignment outside/],
        ["a subnet with host bits", { subnets: ["192.168.1.7/24"] }, "subnets[0]", /host bits set; use 192.168.1.0\/24/],
        [
            "a public key PEM of the wrong type",
            { publicKeyPem: encodeNebulaPem(NEBULA_PEM_TYPES.x25519PrivateKey, Buffer.alloc(32, 1)) },
            "publicKeyPem",
            /expected a NEBULA X25519 PUBLIC KEY/,
        ],
        ["a CA key that does not match the CA", { caKeyPem: fleetCa(2).keyPem }, "caKeyPem", /root certificate does not match private key/],
    ];

    it.each(cases)("%s", (_what, overrides, field, reason) => {
        const err = thrown(() => signNebulaHostCert(hostRequest(ca, overrides)));
        expect(err.field).toBe(field);
        expect(err.message).toMatch(reason);
        expect(err.message).toContain(field);
    });

    it("a host certificate used as the CA", () => {
        const host = signNebulaHostCert(hostRequest(ca));
        const err = thrown(() => signNebulaHostCert(hostRequest(ca, { caCertPem: host })));
        expect(err.field).toBe("caCertPem");
        expect(err.message).toMatch(/certificate is not a CA/);
    });

    it("a corrupt CA key file", () => {
        const raw = decodeNebulaPem(ca.keyPem, NEBULA_PEM_TYPES.ed25519PrivateKey);
        raw[40] ^= 1;
        const err = thrown(() => signNebulaHostCert(hostRequest(ca, { caKeyPem: encodeNebulaPem(NEBULA_PEM_TYPES.ed25519PrivateKey, raw) })));
        expect(err.message).toMatch(/public half does not match the seed/);
    });

    it("bad CA inputs", () => {
        expect(thrown(() => createNebulaCa({ name: "ca", notBefore: at(nowS), notAfter: at(nowS + DAY), groups: ["a\u0007b"] })).field).toBe("groups[0]");
        const shortSeed = { name: "ca", notBefore: at(nowS), notAfter: at(nowS + DAY), privateKeySeed: Buffer.alloc(16) };
        expect(thrown(() => createNebulaCa(shortSeed)).field).toBe("privateKeySeed");
        expect(thrown(() => createNebulaCa({ name: "ca", notBefore: at(nowS), notAfter: at(nowS - 1) })).field).toBe("notAfter");
    });

    it("nothing when the CA has no constraints", () => {
        const open = createNebulaCa({ name: "open", notBefore: at(nowS - DAY), notAfter: at(nowS + DAY) });
        const pem = signNebulaHostCert(
            hostRequest(open, { groups: ["anything"], address: "172.20.3.4/12", subnets: ["10.0.0.0/8"], notAfter: at(nowS + 3600) }),
        );
        expect(parseNebulaCert(pem)).toMatchObject({ ips: ["172.20.3.4/12"], subnets: ["10.0.0.0/8"], groups: ["anything"] });
        expect(verifyNebulaCert(open.certPem, pem, new Date())).toEqual({ ok: true });
    });
});

// ---------------------------------------------------------------------------------------------
// Determinism, parsing, verification (no external tool)
// ---------------------------------------------------------------------------------------------

describe("determinism", () => {
    it("signing twice with the same inputs gives byte-identical PEM", () => {
        const ca1 = fleetCa(7);
        const ca2 = fleetCa(7);
        expect(ca2).toEqual(ca1);
        const pub = generateNebulaHostKeyPair().publicKeyPem;
        const req = hostRequest(ca1, { publicKeyPem: pub, subnets: ["192.168.10.0/24"] });
        expect(signNebulaHostCert({ ...req })).toBe(signNebulaHostCert({ ...req }));
        // Sub-second parts are dropped like nebula's time.Unix(), so they cannot leak into the bytes.
        const fractional = { ...req, notBefore: new Date(req.notBefore.getTime() + 999) };
        expect(signNebulaHostCert(fractional)).toBe(signNebulaHostCert(req));
    });

    it("different seeds give different CAs", () => {
        expect(fleetCa(8).fingerprint).not.toBe(fleetCa(9).fingerprint);
        const random1 = createNebulaCa({ name: "r", notBefore: at(nowS), notAfter: at(nowS + DAY) });
        const random2 = createNebulaCa({ name: "r", notBefore: at(nowS), notAfter: at(nowS + DAY) });
        expect(random1.keyPem).not.toBe(random2.keyPem);
    });
});

describe("parseNebulaCert and verifyNebulaCert", () => {
    const ca = fleetCa();
    const keys = generateNebulaHostKeyPair();
    const hostPem = signNebulaHostCert(hostRequest(ca, { publicKeyPem: keys.publicKeyPem, subnets: ["192.168.3.0/24"] }));

    it("parses what it signed", () => {
        const p = parseNebulaCert(hostPem);
        expect(p).toMatchObject({
            name: "node-a",
            ips: ["10.67.1.5/16"],
            subnets: ["192.168.3.0/24"],
            groups: ["servers", "k3s"],
            notBefore: at(nowS - 3600),
            notAfter: at(nowS + 30 * DAY),
            isCA: false,
            issuer: ca.fingerprint,
            publicKey: decodeNebulaPem(keys.publicKeyPem, NEBULA_PEM_TYPES.x25519PublicKey).toString("hex"),
        });
        expect(p.signature).toMatch(/^[0-9a-f]{128}$/);
        expect(p.fingerprint).toBe(nebulaCertFingerprint(hostPem));
        expect(parseNebulaCert(ca.certPem)).toMatchObject({ isCA: true, issuer: "", fingerprint: ca.fingerprint, ips: ["10.67.0.0/16"] });
        expect(nebulaCertMatchesKey(hostPem, keys.privateKeyPem)).toBe(true);
        expect(nebulaCertMatchesKey(hostPem, generateNebulaHostKeyPair().privateKeyPem)).toBe(false);
        expect(nebulaCertMatchesKey(ca.certPem, ca.keyPem)).toBe(true);
        expect(nebulaCertMatchesKey(ca.certPem, fleetCa(2).keyPem)).toBe(false);
    });

    it("accepts a good certificate at its validity bounds and rejects it outside", () => {
        const d = rawDetails(hostPem);
        expect(verifyNebulaCert(ca.certPem, hostPem, new Date())).toEqual({ ok: true });
        expect(verifyNebulaCert(ca.certPem, hostPem, at(d.notBefore))).toEqual({ ok: true });
        expect(verifyNebulaCert(ca.certPem, hostPem, at(d.notAfter))).toEqual({ ok: true });
        expect(verifyNebulaCert(ca.certPem, hostPem, new Date(d.notAfter * 1000 + 1))).toEqual({ ok: false, reason: "certificate is expired" });
        expect(verifyNebulaCert(ca.certPem, hostPem, at(d.notBefore - 1))).toEqual({ ok: false, reason: "certificate is expired" });
    });

    it("rejects a certificate whose CA has expired", () => {
        const shortCa = createNebulaCa({ name: "short", notBefore: at(nowS - 10 * DAY), notAfter: at(nowS - DAY) });
        const pem = signNebulaHostCert(hostRequest(shortCa, { notBefore: at(nowS - 9 * DAY), notAfter: at(nowS - DAY) }));
        expect(verifyNebulaCert(shortCa.certPem, pem, new Date())).toEqual({ ok: false, reason: "root certificate is expired" });
        expect(verifyNebulaCert(shortCa.certPem, pem, at(nowS - 5 * DAY))).toEqual({ ok: true });
    });

    it("rejects a tampered signature and tampered details", () => {
        const raw = decodeNebulaCert(decodeNebulaPem(hostPem, NEBULA_PEM_TYPES.certificate));
        const badSig = Buffer.from(raw.signature);
        badSig[10] ^= 0x01;
        const sigTampered = encodeNebulaPem(NEBULA_PEM_TYPES.certificate, encodeNebulaCert({ ...raw, signature: badSig }));
        expect(verifyNebulaCert(ca.certPem, sigTampered, new Date())).toEqual({ ok: false, reason: "certificate signature did not match" });
        const renamed = encodeNebulaPem(NEBULA_PEM_TYPES.certificate, encodeNebulaCert({ ...raw, details: { ...raw.details, name: "node-b" } }));
        expect(verifyNebulaCert(ca.certPem, renamed, new Date())).toEqual({ ok: false, reason: "certificate signature did not match" });
    });

    it("rejects certificates from another CA, CA files that are not CAs, and garbage", () => {
        const other = fleetCa(3);
        expect(verifyNebulaCert(other.certPem, hostPem, new Date())).toEqual({ ok: false, reason: "could not find ca for the certificate" });
        expect(verifyNebulaCert(hostPem, hostPem, new Date())).toEqual({
            ok: false,
            reason: "error while adding ca cert to pool: node-a: certificate is not a CA",
        });
        expect(verifyNebulaCert(ca.certPem, ca.certPem, new Date())).toEqual({ ok: false, reason: "no issuer in certificate" });
        expect(verifyNebulaCert(ca.certPem, "garbage", new Date()).ok).toBe(false);
        expect(verifyNebulaCert("", hostPem, new Date()).ok).toBe(false);
        // A "CA" whose self-signature is broken is not trusted.
        const caRaw = decodeNebulaCert(decodeNebulaPem(ca.certPem, NEBULA_PEM_TYPES.certificate));
        const forgedCa = encodeNebulaPem(NEBULA_PEM_TYPES.certificate, encodeNebulaCert({ ...caRaw, details: { ...caRaw.details, groups: [] } }));
        expect(verifyNebulaCert(forgedCa, hostPem, new Date())).toEqual({
            ok: false,
            reason: "error while adding ca cert to pool: shortcircuit test CA: certificate is not self-signed",
        });
    });

    it("verifies against a bundle of CAs, as during CA rotation", () => {
        const next = fleetCa(4);
        const nextHost = signNebulaHostCert(hostRequest(next));
        const bundle = ca.certPem + next.certPem;
        expect(verifyNebulaCert(bundle, hostPem, new Date())).toEqual({ ok: true });
        expect(verifyNebulaCert(bundle, nextHost, new Date())).toEqual({ ok: true });
    });

    it("checks CA constraints even on certificates signed outside this library", () => {
        const base = rawDetails(hostPem);
        const outside = forge(ca.keyPem, { ...base, ips: [0x0a440105, 0xffff0000] });
        expect(verifyNebulaCert(ca.certPem, outside, new Date())).toMatchObject({
            ok: false,
            reason: expect.stringMatching(/ip assignment outside/) as unknown,
        });
    });
});

// ---------------------------------------------------------------------------------------------
// Against the real nebula-cert
// ---------------------------------------------------------------------------------------------

describe("nebula-cert interop", () => {
    it("nebula-cert is installed (a missing binary fails with the setup hint)", () => {
        expect(() => nebulaCert(["-version"], dir, { ...process.env, PATH: path.join(dir, "empty") })).toThrow(SETUP_HINT);
        expect(mustNebulaCert(["-version"], dir)).toMatch(/Version: 1\.\d+\.\d+/);
    });

    it("accepts a CA and host certificates made by the library", () => {
        const ca = fleetCa();
        write("ca.crt", ca.certPem);

        const caJson = printJson("ca.crt", dir);
        expect(caJson.fingerprint).toBe(ca.fingerprint);
        expect(caJson.details).toMatchObject({
            name: "shortcircuit test CA",
            ips: ["10.67.0.0/16"],
            subnets: ["192.168.0.0/16"],
            groups: ["servers", "k3s", "lighthouse", "laptops"],
            isCa: true,
            issuer: "",
        });
        expect(new Date(caJson.details.notBefore).getTime()).toBe((nowS - DAY) * 1000);
        expect(new Date(caJson.details.notAfter).getTime()).toBe((nowS + 365 * DAY) * 1000);
        expect(caJson.signature).toBe(parseNebulaCert(ca.certPem).signature);
        const caText = mustNebulaCert(["print", "-path", "ca.crt"], dir);
        expect(caText).toContain(`Fingerprint: ${ca.fingerprint}`);
        expect(caText).toContain("Is CA: true");

        const hosts = [
            { name: "node-a", address: "10.67.1.5/16", groups: ["servers", "k3s"], subnets: [] as string[] },
            { name: "lighthouse-1", address: "10.67.0.1/16", groups: ["lighthouse"], subnets: ["192.168.10.0/24", "192.168.20.0/23"] },
            { name: "laptop", address: "10.67.200.9/16", groups: [], subnets: [] },
            { name: "Ümlaut host", address: "10.67.255.254/24", groups: ["laptops", "servers"], subnets: [] },
        ];
        for (const h of hosts) {
            const keys = generateNebulaHostKeyPair();
            const notBefore = at(nowS - 3600);
            const notAfter = at(nowS + 90 * DAY);
            const pem = signNebulaHostCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, ...h, notBefore, notAfter, publicKeyPem: keys.publicKeyPem });
            const file = write(`host-${hosts.indexOf(h)}.crt`, pem);

            const verified = nebulaCert(["verify", "-ca", "ca.crt", "-crt", file], dir);
            expect({ host: h.name, ...verified }).toEqual({ host: h.name, status: 0, stdout: "", stderr: "" });

            const printed = printJson(file, dir);
            expect(printed.details).toMatchObject({
                name: h.name,
                ips: [h.address],
                subnets: h.subnets,
                groups: h.groups,
                isCa: false,
                issuer: ca.fingerprint,
                publicKey: decodeNebulaPem(keys.publicKeyPem, NEBULA_PEM_TYPES.x25519PublicKey).toString("hex"),
            });
            expect(new Date(printed.details.notBefore).getTime()).toBe(notBefore.getTime());
            expect(new Date(printed.details.notAfter).getTime()).toBe(notAfter.getTime());
            expect(printed.fingerprint).toBe(nebulaCertFingerprint(pem));
            expect(printed.signature).toBe(parseNebulaCert(pem).signature);
        }
    });

    it("signs with a library-made CA key and a library-made public key", () => {
        const ca = fleetCa();
        const keys = generateNebulaHostKeyPair();
        write("ca.crt", ca.certPem);
        write("ca.key", ca.keyPem);
        write("host.pub", keys.publicKeyPem);
        // nebula-cert sign checks the CA key against the CA certificate before signing.
        const signArgs = ["sign", "-ca-crt", "ca.crt", "-ca-key", "ca.key", "-in-pub", "host.pub"];
        mustNebulaCert([...signArgs, "-name", "up", "-ip", "10.67.9.9/16", "-groups", "k3s", "-out-crt", "up.crt"], dir);
        mustNebulaCert(["verify", "-ca", "ca.crt", "-crt", "up.crt"], dir);
        expect(nebulaCertMatchesKey(read("up.crt"), keys.privateKeyPem)).toBe(true);
        expect(verifyNebulaCert(ca.certPem, read("up.crt"), new Date())).toEqual({ ok: true });

        // nebula-cert enforces the same CA group constraint the library does.
        const refused = nebulaCert([...signArgs, "-name", "x", "-ip", "10.67.9.10/16", "-groups", "admins", "-out-crt", "x.crt"], dir);
        expect(refused.status).not.toBe(0);
        expect(refused.stderr).toContain("certificate contained a group not present on the signing ca: admins");
    });

    it("round-trips certificates and keys made by nebula-cert", () => {
        mustNebulaCert(
            ["ca", "-name", "Upstream CA", "-duration", "8760h", "-groups", "a,b"].concat([
                "-ips",
                "10.68.0.0/16",
                "-subnets",
                "192.168.0.0/16",
                "-out-crt",
                "ca.crt",
                "-out-key",
                "ca.key",
            ]),
            dir,
        );
        mustNebulaCert(["keygen", "-out-key", "h.key", "-out-pub", "h.pub"], dir);
        mustNebulaCert(
            ["sign", "-name", "upstream-host", "-ip", "10.68.1.7/16", "-groups", "a"].concat([
                "-subnets",
                "192.168.5.0/24",
                "-in-pub",
                "h.pub",
                "-out-crt",
                "h.crt",
            ]),
            dir,
        );
        mustNebulaCert(["sign", "-name", "bare", "-ip", "10.68.1.8/24", "-out-crt", "bare.crt", "-out-key", "bare.key"], dir);

        for (const file of ["ca.crt", "h.crt", "bare.crt"]) {
            const text = read(file);
            const bytes = decodeNebulaPem(text, NEBULA_PEM_TYPES.certificate);
            const reencoded = encodeNebulaCert(decodeNebulaCert(bytes));
            expect({ file, hex: reencoded.toString("hex") }).toEqual({ file, hex: bytes.toString("hex") });
            expect(encodeNebulaPem(NEBULA_PEM_TYPES.certificate, reencoded)).toBe(text);
            expect(nebulaCertFingerprint(text)).toBe(printJson(file, dir).fingerprint);
        }

        const caPem = read("ca.crt");
        const host = parseNebulaCert(read("h.crt"));
        expect(host).toMatchObject({
            name: "upstream-host",
            ips: ["10.68.1.7/16"],
            subnets: ["192.168.5.0/24"],
            groups: ["a"],
            isCA: false,
            issuer: nebulaCertFingerprint(caPem),
            publicKey: decodeNebulaPem(read("h.pub"), NEBULA_PEM_TYPES.x25519PublicKey).toString("hex"),
        });
        expect(parseNebulaCert(caPem)).toMatchObject({ name: "Upstream CA", isCA: true, groups: ["a", "b"], ips: ["10.68.0.0/16"], issuer: "" });
        expect(verifyNebulaCert(caPem, read("h.crt"), new Date())).toEqual({ ok: true });
        expect(verifyNebulaCert(caPem, read("bare.crt"), new Date())).toEqual({ ok: true });

        // Keys from nebula-cert load.
        expect(nebulaHostPublicKeyPem(read("h.key"))).toBe(read("h.pub"));
        expect(nebulaCertMatchesKey(read("bare.crt"), read("bare.key"))).toBe(true);
        expect(nebulaCertMatchesKey(read("h.crt"), read("bare.key"))).toBe(false);
        expect(nebulaCertMatchesKey(caPem, read("ca.key"))).toBe(true);

        // The library signs with nebula-cert's CA key, and nebula-cert accepts the result.
        const caInfo = parseNebulaCert(caPem);
        const mine = signNebulaHostCert({
            caCertPem: caPem,
            caKeyPem: read("ca.key"),
            name: "from-library",
            address: "10.68.2.2/16",
            groups: ["b"],
            subnets: ["192.168.6.0/24"],
            notBefore: caInfo.notBefore,
            notAfter: caInfo.notAfter,
            publicKeyPem: read("h.pub"),
        });
        write("mine.crt", mine);
        mustNebulaCert(["verify", "-ca", "ca.crt", "-crt", "mine.crt"], dir);
    });

    it("rejects a tampered signature, like nebula-cert", () => {
        const ca = fleetCa();
        const pem = signNebulaHostCert(hostRequest(ca));
        const raw = decodeNebulaCert(decodeNebulaPem(pem, NEBULA_PEM_TYPES.certificate));
        const sig = Buffer.from(raw.signature);
        sig[63] ^= 0x80;
        const tampered = encodeNebulaPem(NEBULA_PEM_TYPES.certificate, encodeNebulaCert({ ...raw, signature: sig }));
        write("ca.crt", ca.certPem);
        write("good.crt", pem);
        write("bad.crt", tampered);

        expect(nebulaCert(["verify", "-ca", "ca.crt", "-crt", "good.crt"], dir).status).toBe(0);
        const bad = nebulaCert(["verify", "-ca", "ca.crt", "-crt", "bad.crt"], dir);
        expect(bad.status).not.toBe(0);
        expect(bad.stderr).toContain("certificate signature did not match");
        expect(verifyNebulaCert(ca.certPem, tampered, new Date())).toEqual({ ok: false, reason: "certificate signature did not match" });
    });

    it("rejects an expired certificate, like nebula-cert", () => {
        const ca = fleetCa();
        const pem = signNebulaHostCert(hostRequest(ca, { notBefore: at(nowS - 20 * 3600), notAfter: at(nowS - 3600) }));
        write("ca.crt", ca.certPem);
        write("old.crt", pem);
        const r = nebulaCert(["verify", "-ca", "ca.crt", "-crt", "old.crt"], dir);
        expect(r.status).not.toBe(0);
        expect(r.stderr).toContain("certificate is expired");
        expect(verifyNebulaCert(ca.certPem, pem, new Date())).toEqual({ ok: false, reason: "certificate is expired" });
        expect(verifyNebulaCert(ca.certPem, pem, at(nowS - 2 * 3600))).toEqual({ ok: true });
    });

    it("agrees with nebula-cert on every CA constraint violation", () => {
        const ca = fleetCa();
        write("ca.crt", ca.certPem);
        const base = rawDetails(signNebulaHostCert(hostRequest(ca, { subnets: ["192.168.1.0/24"] })));
        const caDetails = rawDetails(ca.certPem);
        const violations: [string, RawNebulaCertDetails][] = [
            ["expires after the CA", { ...base, notAfter: caDetails.notAfter + 1 }],
            ["starts before the CA", { ...base, notBefore: caDetails.notBefore - 1 }],
            ["group the CA lacks", { ...base, groups: ["servers", "admins"] }],
            ["ip outside the CA's", { ...base, ips: [0x0a440105, 0xffff0000] }],
            ["mask wider than the CA's", { ...base, ips: [0x0a430105, 0xff000000] }],
            ["subnet outside the CA's", { ...base, subnets: [0xac100000, 0xffffff00] }],
        ];
        for (const [what, details] of violations) {
            const pem = forge(ca.keyPem, details);
            const file = write(`${violations.findIndex(([w]) => w === what)}.crt`, pem);
            const ours = verifyNebulaCert(ca.certPem, pem, new Date());
            const theirs = nebulaCert(["verify", "-ca", "ca.crt", "-crt", file], dir);
            expect({ what, ok: ours.ok, status: theirs.status === 0 }).toEqual({ what, ok: false, status: false });
            if (!ours.ok) {
                // Library reasons add "(CA allows …)" context after nebula's own wording.
                expect({ what, stderr: theirs.stderr }).toEqual({ what, stderr: expect.stringContaining(ours.reason.split(" (CA ")[0]) as unknown });
            }
        }
    });
});
