import { NEBULA_MAX_NAME_BYTES, nebulaHostPublicKeyPem, parseNebulaCert, verifyNebulaCert } from "../../../stacks/nebulaCert";
import {
    THROWAWAY_CA_SUFFIX,
    caFromSeed,
    certExpiryStatus,
    certValidityAt,
    generatedCaPolicy,
    issueMemberCert,
    x25519KeyPemFromBytes,
} from "../../../components/nebula/issuance";
import { CA_NAME_MAX_BYTES, CA_NAME_SUFFIX_ROOM } from "../../../stacks/schema";
import { expiryMessages } from "../../../components/nebula/nebulaPki";
import { nebulaMembers } from "../../../stacks/nebulaMembers";
import { validFleet } from "../../support/fixtures";

const DAY = 86400 * 1000;
const policy = { certValidityDays: 365, renewBeforeDays: 30 };
const ca = { notBefore: new Date("2026-11-01T00:00:00Z"), notAfter: new Date("2036-10-29T00:00:00Z") };
const at = (iso: string): Date => new Date(iso);

describe("certificate validity cycles", () => {
    it("issues the first cycle from the CA's notBefore for a full lifetime", () => {
        expect(certValidityAt(ca, policy, at("2026-11-22T10:00:00Z"))).toEqual({
            cycle: 0,
            notBefore: at("2026-11-01T00:00:00Z"),
            notAfter: at("2027-11-01T00:00:00Z"),
        });
    });

    it("keeps the same validity for every moment inside a cycle, so re-runs reproduce the certificate", () => {
        const early = certValidityAt(ca, policy, at("2026-11-02T00:00:00Z"));
        const late = certValidityAt(ca, policy, at("2027-10-01T23:59:59Z"));
        expect(late).toEqual(early);
    });

    it("moves to the next cycle exactly when the current certificate enters its renewal window", () => {
        const first = certValidityAt(ca, policy, at("2026-11-22T00:00:00Z"));
        const windowStart = new Date(first.notAfter.getTime() - policy.renewBeforeDays * DAY);
        expect(certValidityAt(ca, policy, new Date(windowStart.getTime() - 1000)).cycle).toBe(0);
        const next = certValidityAt(ca, policy, windowStart);
        expect(next.cycle).toBe(1);
        expect(next.notBefore).toEqual(windowStart);
    });

    it("never lets a host certificate outlive the CA", () => {
        const late = certValidityAt(ca, policy, at("2036-06-01T00:00:00Z"));
        expect(late.notAfter).toEqual(ca.notAfter);
    });

    it("reports ok, renewing, expiring and expired", () => {
        expect(certExpiryStatus(ca, policy, at("2026-12-01T00:00:00Z"))).toEqual({ state: "ok" });
        expect(certExpiryStatus(ca, policy, at("2027-10-10T00:00:00Z"))).toEqual({ state: "renewing", previousNotAfter: at("2027-11-01T00:00:00Z") });
        expect(certExpiryStatus(ca, policy, at("2036-10-10T00:00:00Z"))).toEqual({ state: "expiring", notAfter: ca.notAfter });
        expect(certExpiryStatus(ca, policy, at("2036-11-01T00:00:00Z"))).toEqual({ state: "expired", notAfter: ca.notAfter });
    });
});

describe("issuing from state-held keys", () => {
    const fleet = validFleet("lab");
    const members = nebulaMembers(fleet);
    const caMaterial = caFromSeed(Buffer.alloc(32, 7), generatedCaPolicy(fleet.overlays.nebula.pki, 1));
    const hostKey = x25519KeyPemFromBytes(Buffer.alloc(32, 9));

    it("derives the CA certificate from the key and config alone", () => {
        expect(caFromSeed(Buffer.alloc(32, 7), generatedCaPolicy(fleet.overlays.nebula.pki, 1))).toEqual(caMaterial);
        const parsed = parseNebulaCert(caMaterial.certPem);
        expect(parsed).toMatchObject({ name: "shortcircuit-lab", isCA: true, notBefore: at("2026-11-01T00:00:00Z") });
        expect(parsed.notAfter.getTime() - parsed.notBefore.getTime()).toBe(3650 * DAY);
    });

    it("signs a member certificate the CA verifies, byte-identical on every run inside the cycle", () => {
        const agent = members.find((member) => member.name === "lab-agent-01")!;
        const first = issueMemberCert(caMaterial, agent, nebulaHostPublicKeyPem(hostKey), policy, at("2026-11-22T00:00:00Z"));
        const again = issueMemberCert(caMaterial, agent, nebulaHostPublicKeyPem(hostKey), policy, at("2027-01-15T12:00:00Z"));
        expect(again).toBe(first);
        expect(verifyNebulaCert(caMaterial.certPem, first, at("2026-11-22T00:00:00Z"))).toEqual({ ok: true });
        expect(parseNebulaCert(first)).toMatchObject({ name: "lab-agent-01", ips: ["10.68.1.21/16"], groups: ["agent", "k3s", "lab"] });
    });
});

describe("render's throwaway CA name", () => {
    it("fits the room the schema leaves after caName, so a caName of the longest allowed length still encodes", () => {
        expect(Buffer.byteLength(THROWAWAY_CA_SUFFIX, "utf8")).toBeLessThanOrEqual(CA_NAME_SUFFIX_ROOM);
        expect(CA_NAME_MAX_BYTES + CA_NAME_SUFFIX_ROOM).toBe(NEBULA_MAX_NAME_BYTES);
        const longest = "é".repeat(Math.floor(CA_NAME_MAX_BYTES / 2)) + "x".repeat(CA_NAME_MAX_BYTES % 2);
        const ca = caFromSeed(Buffer.alloc(32, 7), { caName: `${longest}${THROWAWAY_CA_SUFFIX}`, caIssuedOn: "2026-01-01", caValidityDays: 365 });
        expect(parseNebulaCert(ca.certPem).name).toBe(`${longest}${THROWAWAY_CA_SUFFIX}`);
    });
});

describe("expiry messages", () => {
    const fleet = validFleet("lab");
    const members = nebulaMembers(fleet);
    const caPem = caFromSeed(Buffer.alloc(32, 7), generatedCaPolicy(fleet.overlays.nebula.pki, 1)).certPem;

    it("says nothing mid-cycle", () => {
        expect(expiryMessages(caPem, members, policy, at("2026-12-01T00:00:00Z"))).toEqual({ warnings: [], errors: [] });
    });

    it("warns when certificates enter their renewal window", () => {
        const { warnings, errors } = expiryMessages(caPem, members, policy, at("2027-10-10T00:00:00Z"));
        expect(errors).toEqual([]);
        expect(warnings).toEqual([
            "Nebula host certificates entered their renewal window: the previous cycle's certificates expire 2027-11-01T00:00:00.000Z; hosts still holding them (shortcircuit-lab-sfo3, lab-server-01, lab-agent-01, lab-agent-02, lab-relay-01) get new ones, valid from 2027-10-02T00:00:00.000Z until 2028-10-01T00:00:00.000Z, from the next update.",
        ]);
    });

    it("fails when the CA has expired", () => {
        const { errors } = expiryMessages(caPem, members, policy, at("2036-11-01T00:00:00Z"));
        expect(errors).toEqual([
            "Nebula CA expired at 2036-10-29T00:00:00.000Z: no certificate it signs is valid (shortcircuit-lab-sfo3, lab-server-01, lab-agent-01, lab-agent-02, lab-relay-01). Rotate to a new CA through fleet.overlays.nebula.pki.rotation (docs/runbooks/rotating-the-nebula-ca.md); re-signing this one would change its fingerprint and split the mesh.",
        ]);
    });
});
