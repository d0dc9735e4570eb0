/**
 * Nebula v1 certificates, made and checked natively with node:crypto so operators never need
 * `nebula-cert`. Plain values in, plain values out: no Pulumi here.
 *
 * Behaviour follows slackhq/nebula v1.6.x (cert/cert.go, cert/ca.go, cmd/nebula-cert/{ca,sign}.go):
 * a certificate is a protobuf `RawNebulaCertificate {1: details, 2: signature}` inside a
 * `NEBULA CERTIFICATE` PEM block, and the Ed25519 signature covers the protobuf encoding of the
 * details. Nebula re-encodes the details it parsed before checking the signature, so the encoder
 * here must produce exactly the bytes Go's protobuf marshaller would.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, randomBytes, sign, verify } from "node:crypto";

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/** PEM block types nebula uses; the strings are the banners nebula checks for. */
export const NEBULA_PEM_TYPES = {
    certificate: "NEBULA CERTIFICATE",
    ed25519PrivateKey: "NEBULA ED25519 PRIVATE KEY",
    ed25519PublicKey: "NEBULA ED25519 PUBLIC KEY",
    x25519PrivateKey: "NEBULA X25519 PRIVATE KEY",
    x25519PublicKey: "NEBULA X25519 PUBLIC KEY",
} as const;

/** One of the PEM banners in {@link NEBULA_PEM_TYPES}. */
export type NebulaPemType = (typeof NEBULA_PEM_TYPES)[keyof typeof NEBULA_PEM_TYPES];

/**
 * The certificate details exactly as they sit on the wire (protobuf `RawNebulaCertificateDetails`).
 * Only needed by callers that encode or decode by hand; everything else uses the PEM-level API.
 */
export interface RawNebulaCertDetails {
    /** Field 1. Empty string is omitted on the wire. */
    name: string;
    /** Field 2: flat list of big-endian uint32 `ip, mask` pairs. */
    ips: number[];
    /** Field 3: flat list of uint32 `network, mask` pairs (the "unsafe routes" a host serves). */
    subnets: number[];
    /** Field 4, in certificate order (order is part of the signed bytes). */
    groups: string[];
    /** Field 5: unix seconds (int64). */
    notBefore: number;
    /** Field 6: unix seconds (int64). */
    notAfter: number;
    /** Field 7: Ed25519 public key for CAs, X25519 public key for hosts (32 bytes). */
    publicKey: Uint8Array;
    /** Field 8. */
    isCA: boolean;
    /** Field 9: raw sha256 of the issuing CA's marshalled certificate; empty for a self-signed CA. */
    issuer: Uint8Array;
}

/** A whole certificate as on the wire (protobuf `RawNebulaCertificate`). */
export interface RawNebulaCert {
    details: RawNebulaCertDetails;
    signature: Uint8Array;
}

/** Human-friendly view of a certificate, shaped like `nebula-cert print -json`'s `details`. */
export interface NebulaCertDetails {
    name: string;
    /** CIDR strings with the host bits kept, e.g. `10.67.1.5/16` (as nebula prints them). */
    ips: string[];
    /** CIDR strings, e.g. `192.168.10.0/24`. */
    subnets: string[];
    groups: string[];
    notBefore: Date;
    notAfter: Date;
    /** Lower-case hex. */
    publicKey: string;
    isCA: boolean;
    /** Lower-case hex fingerprint of the issuing CA; empty string for a CA. */
    issuer: string;
}

/** {@link NebulaCertDetails} plus the parts outside the signed details. */
export interface ParsedNebulaCert extends NebulaCertDetails {
    /** Lower-case hex Ed25519 signature. */
    signature: string;
    /** Lower-case hex sha256 of the marshalled certificate: what `nebula-cert print` shows. */
    fingerprint: string;
}

/** Inputs for {@link createNebulaCa}. */
export interface NebulaCaRequest {
    name: string;
    notBefore: Date;
    notAfter: Date;
    /** When set, host certificates may only carry these groups. */
    groups?: string[];
    /** When set, host addresses must fall inside one of these IPv4 CIDRs (with a mask at least as long). */
    ips?: string[];
    /** When set, host `subnets` must fall inside one of these IPv4 CIDRs. */
    subnets?: string[];
    /**
     * 32-byte Ed25519 seed. Leave unset for a fresh random key; set it to rebuild the same CA
     * byte-for-byte (Ed25519 signatures are deterministic).
     */
    privateKeySeed?: Uint8Array;
}

/** Output of {@link createNebulaCa}. */
export interface NebulaCa {
    /** `NEBULA CERTIFICATE` PEM, ready for `pki.ca`. */
    certPem: string;
    /** `NEBULA ED25519 PRIVATE KEY` PEM (64 bytes: seed followed by public key), as nebula-cert writes. */
    keyPem: string;
    /** Lower-case hex sha256 of the certificate; hosts' `issuer`. */
    fingerprint: string;
}

/** Output of {@link generateNebulaHostKeyPair}. */
export interface NebulaHostKeyPair {
    /** `NEBULA X25519 PRIVATE KEY` PEM, for a host's `pki.key`. */
    privateKeyPem: string;
    /** `NEBULA X25519 PUBLIC KEY` PEM, what gets signed into the host certificate. */
    publicKeyPem: string;
}

/** Inputs for {@link signNebulaHostCert}. */
export interface NebulaHostCertRequest {
    caCertPem: string;
    caKeyPem: string;
    /** Usually the hostname; firewall `host:` rules match on it. */
    name: string;
    /** The host's overlay IPv4 address with the overlay network's prefix length, e.g. `10.67.1.5/16`. */
    address: string;
    groups: string[];
    /** IPv4 networks (no host bits) this host routes for as unsafe routes. */
    subnets?: string[];
    notBefore: Date;
    notAfter: Date;
    /** `NEBULA X25519 PUBLIC KEY` PEM of the host. */
    publicKeyPem: string;
}

/** Result of {@link verifyNebulaCert}; `reason` uses nebula's own wording where it has one. */
export type NebulaVerifyResult = { ok: true } | { ok: false; reason: string };

/** Thrown for any rejected input; `field` names the offending request field (e.g. `groups[2]`). */
export class NebulaCertError extends Error {
    constructor(
        readonly field: string,
        readonly reason: string,
    ) {
        super(`nebula certificate: ${field}: ${reason}`);
        this.name = "NebulaCertError";
    }
}

// ---------------------------------------------------------------------------------------------
// Name and group rules
// ---------------------------------------------------------------------------------------------

/**
 * Nebula v2 certificates cap names at 253 bytes (a DNS name); holding v1 names to the same limit
 * keeps a later move to v2 certificates painless.
 */
export const NEBULA_MAX_NAME_BYTES = 253;

/**
 * Why the codec will not encode `text` as a name or group: what the certificate format and its
 * tools cannot carry. The fleet's own rules for names and groups (nebulaNames.ts) are
 * stricter and are checked before anything reaches here.
 */
function encodableTextProblem(text: string, maxBytes: number): string | undefined {
    if (text.length === 0) return "must not be empty";
    if (!isWellFormedUnicode(text)) return "must be valid Unicode (protobuf strings are UTF-8)";
    if (Buffer.byteLength(text, "utf8") > maxBytes) return `must be at most ${maxBytes} bytes of UTF-8`;
    // C0 controls and DEL: legal in protobuf, but they break `nebula-cert print`, logs and YAML.
    for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c < 0x20 || c === 0x7f) return "must not contain control characters";
    }
    return undefined;
}

// ---------------------------------------------------------------------------------------------
// IPv4 CIDRs
// ---------------------------------------------------------------------------------------------

/** An IPv4 address and mask as nebula stores them: two uint32s. */
export interface NebulaIpv4Net {
    ip: number;
    mask: number;
}

const OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])";
// Go's net.ParseCIDR (which nebula-cert uses) rejects leading zeros in octets, so this does too.
const IPV4_CIDR = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}/(3[0-2]|[12][0-9]|[0-9])$`);

/** Parse `a.b.c.d/n`, keeping the host bits of the address. Throws {@link NebulaCertError}. */
function parseNebulaIpv4Cidr(text: string, field: string): NebulaIpv4Net {
    const m = IPV4_CIDR.exec(text);
    if (m === null) {
        const reason = text.includes(":") ? "nebula v1 certificates only hold IPv4" : "expected an IPv4 CIDR such as 10.67.1.5/16";
        throw new NebulaCertError(field, `"${text}" is not valid: ${reason}`);
    }
    const ip = ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
    return { ip, mask: prefixToMask(Number(m[5])) };
}

function prefixToMask(bits: number): number {
    return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

function ipToString(ip: number): string {
    return [ip >>> 24, (ip >>> 16) & 0xff, (ip >>> 8) & 0xff, ip & 0xff].join(".");
}

/**
 * Render like Go's net.IPNet.String(): the prefix length for a contiguous mask, otherwise the
 * mask in hex (only reachable for hand-crafted certificates).
 */
function formatNebulaIpv4Net(net: NebulaIpv4Net): string {
    const inverted = ~net.mask >>> 0;
    const contiguous = (inverted & (inverted + 1)) === 0;
    if (!contiguous) return `${ipToString(net.ip)}/${net.mask.toString(16).padStart(8, "0")}`;
    let bits = 0;
    for (let m = net.mask; m !== 0; m = (m << 1) >>> 0) bits++;
    return `${ipToString(net.ip)}/${bits}`;
}

function pairsToNets(pairs: number[]): NebulaIpv4Net[] {
    const nets: NebulaIpv4Net[] = [];
    for (let i = 0; i + 1 < pairs.length; i += 2) nets.push({ ip: pairs[i], mask: pairs[i + 1] });
    return nets;
}

function netsToPairs(nets: NebulaIpv4Net[]): number[] {
    return nets.flatMap((n) => [n.ip, n.mask]);
}

function parseNetworkList(list: string[] | undefined, field: string): NebulaIpv4Net[] {
    return (list ?? []).map((text, i) => {
        const net = parseNebulaIpv4Cidr(text, `${field}[${i}]`);
        // nebula-cert silently masks subnets to their network address; refusing instead keeps the
        // config honest about what ends up in the certificate.
        if ((net.ip & net.mask) >>> 0 !== net.ip) {
            throw new NebulaCertError(
                `${field}[${i}]`,
                `"${text}" has host bits set; use ${formatNebulaIpv4Net({ ip: (net.ip & net.mask) >>> 0, mask: net.mask })}`,
            );
        }
        return net;
    });
}

/** Same test as nebula's netMatch: the CA net holds the address, and its mask is no longer. */
function netWithin(cert: NebulaIpv4Net, ca: NebulaIpv4Net): boolean {
    if ((cert.ip & ca.mask) >>> 0 !== (ca.ip & ca.mask) >>> 0) return false;
    for (let shift = 24; shift >= 0; shift -= 8) {
        if (((ca.mask >>> shift) & 0xff) > ((cert.mask >>> shift) & 0xff)) return false;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// Protobuf encoding
// ---------------------------------------------------------------------------------------------

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

function varint(value: bigint): number[] {
    const out: number[] = [];
    let v = BigInt.asUintN(64, value);
    while (v >= 0x80n) {
        out.push(Number(v & 0x7fn) | 0x80);
        v >>= 7n;
    }
    out.push(Number(v));
    return out;
}

function tag(field: number, wire: number): number[] {
    return varint(BigInt((field << 3) | wire));
}

function lenField(field: number, data: Uint8Array): Buffer {
    return Buffer.concat([Buffer.from(tag(field, WIRE_LEN)), Buffer.from(varint(BigInt(data.length))), data]);
}

function utf8(text: string, field: string): Buffer {
    if (!isWellFormedUnicode(text)) throw new NebulaCertError(field, "is not valid Unicode, so it cannot be encoded as UTF-8");
    return Buffer.from(text, "utf8");
}

function isWellFormedUnicode(text: string): boolean {
    return !/\p{Cs}/u.test(text);
}

function checkUint32(values: number[], field: string): void {
    for (const v of values) {
        if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new NebulaCertError(field, `${v} is not a uint32`);
    }
}

function checkInt64Seconds(value: number, field: string): void {
    if (!Number.isSafeInteger(value)) throw new NebulaCertError(field, `${value} is not a whole number of unix seconds`);
}

/**
 * Encode the details the way Go's proto.Marshal does for this proto3 message: fields in number
 * order, repeated uint32 packed, zero/empty scalars left out. Repeated strings are written even when
 * empty, as Go does. These are the bytes the CA signs.
 */
export function encodeNebulaCertDetails(d: RawNebulaCertDetails): Buffer {
    checkUint32(d.ips, "ips");
    checkUint32(d.subnets, "subnets");
    checkInt64Seconds(d.notBefore, "notBefore");
    checkInt64Seconds(d.notAfter, "notAfter");
    const parts: Buffer[] = [];
    if (d.name.length > 0) parts.push(lenField(1, utf8(d.name, "name")));
    if (d.ips.length > 0) parts.push(lenField(2, Buffer.from(d.ips.flatMap((v) => varint(BigInt(v))))));
    if (d.subnets.length > 0) parts.push(lenField(3, Buffer.from(d.subnets.flatMap((v) => varint(BigInt(v))))));
    d.groups.forEach((g, i) => parts.push(lenField(4, utf8(g, `groups[${i}]`))));
    if (d.notBefore !== 0) parts.push(Buffer.from([...tag(5, WIRE_VARINT), ...varint(BigInt(d.notBefore))]));
    if (d.notAfter !== 0) parts.push(Buffer.from([...tag(6, WIRE_VARINT), ...varint(BigInt(d.notAfter))]));
    if (d.publicKey.length > 0) parts.push(lenField(7, d.publicKey));
    if (d.isCA) parts.push(Buffer.from([...tag(8, WIRE_VARINT), 1]));
    if (d.issuer.length > 0) parts.push(lenField(9, d.issuer));
    return Buffer.concat(parts);
}

/** Encode a whole certificate (details always present, as nebula always sets them). */
export function encodeNebulaCert(cert: RawNebulaCert): Buffer {
    const parts = [lenField(1, encodeNebulaCertDetails(cert.details))];
    if (cert.signature.length > 0) parts.push(lenField(2, cert.signature));
    return Buffer.concat(parts);
}

class ProtoReader {
    private pos = 0;
    constructor(private readonly buf: Buffer) {}

    get done(): boolean {
        return this.pos >= this.buf.length;
    }

    // Same limits as Go's protowire.ConsumeVarint: at most 10 bytes, the 10th holding one bit.
    varint(): bigint {
        let result = 0n;
        for (let i = 0; i < 10; i++) {
            if (this.pos >= this.buf.length) throw new Error("truncated varint");
            const b = this.buf[this.pos++];
            if (i === 9 && b > 1) throw new Error("varint overflows 64 bits");
            result |= BigInt(b & 0x7f) << BigInt(7 * i);
            if (b < 0x80) return result;
        }
        throw new Error("varint overflows 64 bits");
    }

    bytes(): Buffer {
        const len = this.varint();
        if (len > BigInt(this.buf.length - this.pos)) throw new Error("length-delimited field runs past the end");
        const out = this.buf.subarray(this.pos, this.pos + Number(len));
        this.pos += Number(len);
        return out;
    }

    skip(wire: number): void {
        if (wire === WIRE_VARINT) this.varint();
        else if (wire === WIRE_LEN) this.bytes();
        else if (wire === WIRE_FIXED64 || wire === WIRE_FIXED32) {
            const n = wire === WIRE_FIXED64 ? 8 : 4;
            if (this.pos + n > this.buf.length) throw new Error("truncated fixed-width field");
            this.pos += n;
        } else throw new Error(`unsupported wire type ${wire}`);
    }

    /** Next field key, or throws on a malformed one. */
    key(): { field: number; wire: number } {
        const k = this.varint();
        const field = Number(k >> 3n);
        if (field === 0 || k >> 3n > 0x1fffffffn) throw new Error("invalid field number");
        return { field, wire: Number(k & 7n) };
    }
}

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

function decodeUtf8(bytes: Buffer, field: string): string {
    try {
        return STRICT_UTF8.decode(bytes);
    } catch {
        throw new Error(`${field} is not valid UTF-8`);
    }
}

function int64ToNumber(v: bigint, field: string): number {
    const n = BigInt.asIntN(64, v);
    if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) throw new Error(`${field} ${n} is out of range`);
    return Number(n);
}

function decodeDetails(buf: Buffer): RawNebulaCertDetails {
    const d: RawNebulaCertDetails = {
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
    const r = new ProtoReader(buf);
    const readUint32s = (wire: number, into: number[]): boolean => {
        if (wire === WIRE_LEN) {
            const packed = new ProtoReader(r.bytes());
            while (!packed.done) into.push(Number(BigInt.asUintN(32, packed.varint())));
            return true;
        }
        if (wire === WIRE_VARINT) {
            into.push(Number(BigInt.asUintN(32, r.varint())));
            return true;
        }
        return false;
    };
    while (!r.done) {
        const { field, wire } = r.key();
        // Like Go's protobuf runtime, a known field with an unexpected wire type is kept as an unknown
        // field, and unknown fields vanish when nebula re-encodes the details.
        let handled = false;
        switch (field) {
            case 1:
                if (wire === WIRE_LEN) {
                    d.name = decodeUtf8(r.bytes(), "name");
                    handled = true;
                }
                break;
            case 2:
                handled = readUint32s(wire, d.ips);
                break;
            case 3:
                handled = readUint32s(wire, d.subnets);
                break;
            case 4:
                if (wire === WIRE_LEN) {
                    d.groups.push(decodeUtf8(r.bytes(), "group"));
                    handled = true;
                }
                break;
            case 5:
            case 6:
                if (wire === WIRE_VARINT) {
                    const v = int64ToNumber(r.varint(), field === 5 ? "notBefore" : "notAfter");
                    if (field === 5) d.notBefore = v;
                    else d.notAfter = v;
                    handled = true;
                }
                break;
            case 7:
                if (wire === WIRE_LEN) {
                    d.publicKey = Buffer.from(r.bytes());
                    handled = true;
                }
                break;
            case 8:
                if (wire === WIRE_VARINT) {
                    d.isCA = r.varint() !== 0n;
                    handled = true;
                }
                break;
            case 9:
                if (wire === WIRE_LEN) {
                    d.issuer = Buffer.from(r.bytes());
                    handled = true;
                }
                break;
            case 100:
                // Field 100 is the curve in nebula >= 1.7; 0 is Curve25519. Nebula 1.6 would ignore a
                // P-256 marker and misread the keys, so refuse rather than guess.
                if (wire === WIRE_VARINT) {
                    if (r.varint() !== 0n) throw new Error("P-256 certificates are not supported");
                    handled = true;
                }
                break;
            default:
                // An unknown field: skipped below, as Go's runtime keeps it and nebula's re-encoding drops it.
                break;
        }
        if (!handled) r.skip(wire);
    }
    return d;
}

/**
 * Decode certificate bytes with the same acceptance rules as nebula v1.6's
 * UnmarshalNebulaCertificate. Throws on malformed input.
 */
export function decodeNebulaCert(bytes: Uint8Array): RawNebulaCert {
    if (bytes.length === 0) throw new Error("nebula certificate: nil byte array");
    const r = new ProtoReader(Buffer.from(bytes));
    // Protobuf merges repeated occurrences of a message field; concatenating and decoding once
    // gives the same result.
    const detailChunks: Buffer[] = [];
    let signature: Buffer = Buffer.alloc(0);
    try {
        while (!r.done) {
            const { field, wire } = r.key();
            if (field === 1 && wire === WIRE_LEN) detailChunks.push(r.bytes());
            else if (field === 2 && wire === WIRE_LEN) signature = Buffer.from(r.bytes());
            else r.skip(wire);
        }
    } catch (e) {
        throw new Error(`nebula certificate: malformed protobuf: ${(e as Error).message}`);
    }
    if (detailChunks.length === 0) throw new Error("nebula certificate: encoded Details was nil");
    let details: RawNebulaCertDetails;
    try {
        details = decodeDetails(Buffer.concat(detailChunks));
    } catch (e) {
        throw new Error(`nebula certificate: malformed details: ${(e as Error).message}`);
    }
    if (details.ips.length % 2 !== 0) throw new Error("nebula certificate: encoded IPs should be in pairs, an odd number was found");
    if (details.subnets.length % 2 !== 0) {
        throw new Error("nebula certificate: encoded Subnets should be in pairs, an odd number was found");
    }
    if (details.publicKey.length < 32) {
        throw new Error(`nebula certificate: public key was fewer than 32 bytes; ${details.publicKey.length}`);
    }
    return { details, signature };
}

// ---------------------------------------------------------------------------------------------
// PEM
// ---------------------------------------------------------------------------------------------

const PEM_KEY_LENGTHS: Partial<Record<NebulaPemType, number>> = {
    [NEBULA_PEM_TYPES.ed25519PrivateKey]: 64,
    [NEBULA_PEM_TYPES.ed25519PublicKey]: 32,
    [NEBULA_PEM_TYPES.x25519PrivateKey]: 32,
    [NEBULA_PEM_TYPES.x25519PublicKey]: 32,
};

/** PEM-encode byte-for-byte like Go's pem.EncodeToMemory (64-column base64, trailing newline). */
export function encodeNebulaPem(type: NebulaPemType, bytes: Uint8Array): string {
    const b64 = Buffer.from(bytes).toString("base64");
    const lines: string[] = [];
    for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
    return [`-----BEGIN ${type}-----`, ...lines, `-----END ${type}-----`].join("\n") + "\n";
}

interface PemBlock {
    type: string;
    bytes: Buffer;
}

const PEM_BLOCK = /-----BEGIN ([^\r\n]+?)-----\r?\n([\s\S]*?)-----END \1-----/g;

function pemBlocks(text: string): PemBlock[] {
    const blocks: PemBlock[] = [];
    for (const m of text.matchAll(PEM_BLOCK)) {
        const body = m[2].replace(/\s+/g, "");
        // Buffer.from(…, "base64") silently skips junk; a corrupted key must fail loudly instead.
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) {
            throw new Error(`PEM block ${m[1]} has an invalid base64 body`);
        }
        blocks.push({ type: m[1], bytes: Buffer.from(body, "base64") });
    }
    return blocks;
}

/**
 * Decode the first PEM block, which must have banner `type` (nebula also only looks at the first
 * block). Key types are length-checked as nebula does.
 */
export function decodeNebulaPem(pem: string, type: NebulaPemType): Buffer {
    const [first] = pemBlocks(pem);
    if (first === undefined) throw new Error(`expected a ${type} PEM block, found no PEM block`);
    if (first.type !== type) throw new Error(`expected a ${type} PEM block, found ${first.type}`);
    const want = PEM_KEY_LENGTHS[type];
    if (want !== undefined && first.bytes.length !== want) {
        throw new Error(`${type} must hold ${want} bytes, found ${first.bytes.length}`);
    }
    return first.bytes;
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

// RFC 8410 PKCS#8 wrappers: node:crypto has no raw-key import for these curves, and the
// 16-byte prefix is fixed for a 32-byte key.
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

function jwkRaw(key: KeyObject, part: "d" | "x"): Buffer {
    const value = key.export({ format: "jwk" })[part];
    if (typeof value !== "string") throw new Error(`key has no JWK "${part}"`);
    return Buffer.from(value, "base64url");
}

function ed25519PrivateFromSeed(seed: Uint8Array): KeyObject {
    if (seed.length !== 32) throw new NebulaCertError("privateKeySeed", `must be 32 bytes, got ${seed.length}`);
    return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" });
}

function ed25519PublicFromRaw(raw: Uint8Array): KeyObject | undefined {
    if (raw.length !== 32) return undefined;
    try {
        return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(raw).toString("base64url") }, format: "jwk" });
    } catch {
        return undefined;
    }
}

/** The X25519 public key for a raw 32-byte private key (nebula stores it unclamped, as generated). */
export function x25519PublicFromPrivate(privateKey: Uint8Array): Buffer {
    if (privateKey.length !== 32) throw new Error(`X25519 private key must be 32 bytes, got ${privateKey.length}`);
    const key = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, privateKey]), format: "der", type: "pkcs8" });
    return jwkRaw(createPublicKey(key), "x");
}

/** A fresh X25519 host key pair in nebula's PEM formats. */
export function generateNebulaHostKeyPair(): NebulaHostKeyPair {
    const { privateKey } = generateKeyPairSync("x25519");
    return {
        privateKeyPem: encodeNebulaPem(NEBULA_PEM_TYPES.x25519PrivateKey, jwkRaw(privateKey, "d")),
        publicKeyPem: encodeNebulaPem(NEBULA_PEM_TYPES.x25519PublicKey, jwkRaw(privateKey, "x")),
    };
}

/** The `NEBULA X25519 PUBLIC KEY` PEM that belongs to a `NEBULA X25519 PRIVATE KEY` PEM. */
export function nebulaHostPublicKeyPem(privateKeyPem: string): string {
    const priv = decodeNebulaPem(privateKeyPem, NEBULA_PEM_TYPES.x25519PrivateKey);
    return encodeNebulaPem(NEBULA_PEM_TYPES.x25519PublicKey, x25519PublicFromPrivate(priv));
}

/** Loads a CA key and checks its two halves agree: Go signs with the stored public half. */
function loadCaKey(caKeyPem: string): { key: KeyObject; publicKey: Buffer } {
    let raw: Buffer;
    try {
        raw = decodeNebulaPem(caKeyPem, NEBULA_PEM_TYPES.ed25519PrivateKey);
    } catch (e) {
        throw new NebulaCertError("caKeyPem", (e as Error).message);
    }
    const key = ed25519PrivateFromSeed(raw.subarray(0, 32));
    const publicKey = jwkRaw(createPublicKey(key), "x");
    if (!publicKey.equals(raw.subarray(32))) {
        throw new NebulaCertError("caKeyPem", "the public half does not match the seed; the key file is corrupt");
    }
    return { key, publicKey };
}

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

function sha256(bytes: Uint8Array): Buffer {
    return createHash("sha256").update(bytes).digest();
}

/** Raw sha256 of the canonical encoding; nebula fingerprints re-encoded certificates, not input bytes. */
function rawFingerprint(cert: RawNebulaCert): Buffer {
    return sha256(encodeNebulaCert(cert));
}

function decodeCertPem(pem: string): RawNebulaCert {
    return decodeNebulaCert(decodeNebulaPem(pem, NEBULA_PEM_TYPES.certificate));
}

function toUnixSeconds(date: Date, field: string): number {
    const ms = date.getTime();
    if (!Number.isFinite(ms)) throw new NebulaCertError(field, "is not a valid date");
    // Nebula stores time.Unix(): whole seconds, floored.
    return Math.floor(ms / 1000);
}

function checkSignature(cert: RawNebulaCert, signerPublicKey: Uint8Array): boolean {
    const key = ed25519PublicFromRaw(signerPublicKey);
    if (key === undefined || cert.signature.length !== 64) return false;
    try {
        return verify(null, encodeNebulaCertDetails(cert.details), key, cert.signature);
    } catch {
        return false;
    }
}

/** nebula's Expired(): the bounds themselves still count as valid. */
function expiredAt(d: RawNebulaCertDetails, at: Date): boolean {
    const t = at.getTime();
    return d.notBefore * 1000 > t || d.notAfter * 1000 < t;
}

/**
 * nebula's CheckRootConstrains, in its order and wording, with the request field to blame.
 */
function caConstraintProblem(child: RawNebulaCertDetails, ca: RawNebulaCertDetails): { field: string; reason: string } | undefined {
    if (child.notAfter > ca.notAfter) {
        return { field: "notAfter", reason: `certificate expires after signing certificate (CA notAfter ${isoSeconds(ca.notAfter)})` };
    }
    if (child.notBefore < ca.notBefore) {
        return {
            field: "notBefore",
            reason: `certificate is valid before the signing certificate (CA notBefore ${isoSeconds(ca.notBefore)})`,
        };
    }
    if (ca.groups.length > 0) {
        const allowed = new Set(ca.groups);
        const i = child.groups.findIndex((g) => !allowed.has(g));
        if (i >= 0) {
            return {
                field: `groups[${i}]`,
                reason: `certificate contained a group not present on the signing ca: ${child.groups[i]} (CA allows ${ca.groups.join(", ")})`,
            };
        }
    }
    const caIps = pairsToNets(ca.ips);
    if (caIps.length > 0) {
        const bad = pairsToNets(child.ips).find((n) => !caIps.some((c) => netWithin(n, c)));
        if (bad !== undefined) {
            return {
                field: "address",
                reason:
                    `certificate contained an ip assignment outside the limitations of the signing ca: ${formatNebulaIpv4Net(bad)} ` +
                    `(CA allows ${caIps.map(formatNebulaIpv4Net).join(", ")})`,
            };
        }
    }
    const caSubnets = pairsToNets(ca.subnets);
    if (caSubnets.length > 0) {
        const subnets = pairsToNets(child.subnets);
        const i = subnets.findIndex((n) => !caSubnets.some((c) => netWithin(n, c)));
        if (i >= 0) {
            return {
                field: `subnets[${i}]`,
                reason:
                    `certificate contained a subnet assignment outside the limitations of the signing ca: ${formatNebulaIpv4Net(subnets[i])} ` +
                    `(CA allows ${caSubnets.map(formatNebulaIpv4Net).join(", ")})`,
            };
        }
    }
    return undefined;
}

function isoSeconds(unix: number): string {
    return new Date(unix * 1000).toISOString().replace(".000Z", "Z");
}

function checkName(name: string): void {
    const problem = encodableTextProblem(name, NEBULA_MAX_NAME_BYTES);
    if (problem !== undefined) throw new NebulaCertError("name", `${JSON.stringify(name)} ${problem}`);
}

function checkGroups(groups: string[], field: string): void {
    const seen = new Map<string, number>();
    groups.forEach((g, i) => {
        const problem = encodableTextProblem(g, Number.MAX_SAFE_INTEGER);
        if (problem !== undefined) throw new NebulaCertError(`${field}[${i}]`, `${JSON.stringify(g)} ${problem}`);
        const earlier = seen.get(g);
        if (earlier !== undefined) throw new NebulaCertError(`${field}[${i}]`, `${JSON.stringify(g)} duplicates ${field}[${earlier}]`);
        seen.set(g, i);
    });
}

function checkValidity(notBefore: number, notAfter: number): void {
    if (notAfter <= notBefore) {
        throw new NebulaCertError("notAfter", `${isoSeconds(notAfter)} must be later than notBefore ${isoSeconds(notBefore)}`);
    }
}

function signedPem(details: RawNebulaCertDetails, key: KeyObject): { pem: string; fingerprint: string } {
    const cert: RawNebulaCert = { details, signature: sign(null, encodeNebulaCertDetails(details), key) };
    return {
        pem: encodeNebulaPem(NEBULA_PEM_TYPES.certificate, encodeNebulaCert(cert)),
        fingerprint: rawFingerprint(cert).toString("hex"),
    };
}

/**
 * Make a self-signed Nebula CA, as `nebula-cert ca` does but with explicit validity and an
 * optional fixed seed so the result is reproducible.
 */
export function createNebulaCa(req: NebulaCaRequest): NebulaCa {
    checkName(req.name);
    const groups = req.groups ?? [];
    checkGroups(groups, "groups");
    // nebula-cert keeps the host bits of CA -ips, so they are accepted here too.
    const ips = (req.ips ?? []).map((t, i) => parseNebulaIpv4Cidr(t, `ips[${i}]`));
    const subnets = parseNetworkList(req.subnets, "subnets");
    const notBefore = toUnixSeconds(req.notBefore, "notBefore");
    const notAfter = toUnixSeconds(req.notAfter, "notAfter");
    checkValidity(notBefore, notAfter);

    const key = ed25519PrivateFromSeed(req.privateKeySeed ?? randomBytes(32));
    const seed = jwkRaw(key, "d");
    const publicKey = jwkRaw(createPublicKey(key), "x");
    const { pem, fingerprint } = signedPem(
        {
            name: req.name,
            ips: netsToPairs(ips),
            subnets: netsToPairs(subnets),
            groups: [...groups],
            notBefore,
            notAfter,
            publicKey,
            isCA: true,
            issuer: Buffer.alloc(0),
        },
        key,
    );
    const keyPem = encodeNebulaPem(NEBULA_PEM_TYPES.ed25519PrivateKey, Buffer.concat([seed, publicKey]));
    return { certPem: pem, keyPem, fingerprint };
}

/**
 * Sign a host certificate, refusing anything nebula would later reject (CA constraints, key
 * mismatch) and anything that breaks the name/group rules. Throws {@link NebulaCertError}.
 * Output is a pure function of the inputs.
 */
export function signNebulaHostCert(req: NebulaHostCertRequest): string {
    let ca: RawNebulaCert;
    try {
        ca = decodeCertPem(req.caCertPem);
    } catch (e) {
        throw new NebulaCertError("caCertPem", (e as Error).message);
    }
    if (!ca.details.isCA) throw new NebulaCertError("caCertPem", `${ca.details.name}: certificate is not a CA`);
    if (!checkSignature(ca, ca.details.publicKey)) {
        throw new NebulaCertError("caCertPem", `${ca.details.name}: certificate is not self-signed; nebula would not trust it`);
    }
    const caKey = loadCaKey(req.caKeyPem);
    if (!caKey.publicKey.equals(ca.details.publicKey)) {
        throw new NebulaCertError("caKeyPem", "refusing to sign, root certificate does not match private key");
    }

    checkName(req.name);
    checkGroups(req.groups, "groups");
    const address = parseNebulaIpv4Cidr(req.address, "address");
    if (address.ip === 0) throw new NebulaCertError("address", "0.0.0.0 cannot be a host address");
    const subnets = parseNetworkList(req.subnets, "subnets");
    const notBefore = toUnixSeconds(req.notBefore, "notBefore");
    const notAfter = toUnixSeconds(req.notAfter, "notAfter");
    checkValidity(notBefore, notAfter);
    let publicKey: Buffer;
    try {
        publicKey = decodeNebulaPem(req.publicKeyPem, NEBULA_PEM_TYPES.x25519PublicKey);
    } catch (e) {
        throw new NebulaCertError("publicKeyPem", (e as Error).message);
    }

    const details: RawNebulaCertDetails = {
        name: req.name,
        ips: [address.ip, address.mask],
        subnets: netsToPairs(subnets),
        groups: [...req.groups],
        notBefore,
        notAfter,
        publicKey,
        isCA: false,
        issuer: rawFingerprint(ca),
    };
    const problem = caConstraintProblem(details, ca.details);
    if (problem !== undefined) {
        throw new NebulaCertError(problem.field, `refusing to sign, root certificate constraints violated: ${problem.reason}`);
    }
    return signedPem(details, caKey.key).pem;
}

/** Friendly view of raw details. */
function describeNebulaCertDetails(d: RawNebulaCertDetails): NebulaCertDetails {
    return {
        name: d.name,
        ips: pairsToNets(d.ips).map(formatNebulaIpv4Net),
        subnets: pairsToNets(d.subnets).map(formatNebulaIpv4Net),
        groups: [...d.groups],
        notBefore: new Date(d.notBefore * 1000),
        notAfter: new Date(d.notAfter * 1000),
        publicKey: Buffer.from(d.publicKey).toString("hex"),
        isCA: d.isCA,
        issuer: Buffer.from(d.issuer).toString("hex"),
    };
}

/** Decode the first certificate in a PEM string. Throws on malformed input. */
export function parseNebulaCert(pem: string): ParsedNebulaCert {
    const cert = decodeCertPem(pem);
    return {
        ...describeNebulaCertDetails(cert.details),
        signature: Buffer.from(cert.signature).toString("hex"),
        fingerprint: rawFingerprint(cert).toString("hex"),
    };
}

/**
 * Every certificate in a PEM bundle (a ca.crt holding several CAs, which nebula accepts), in
 * order. Throws on malformed input, on a block that is not a certificate, or on no block at all.
 */
export function parseNebulaCertBundle(pem: string): ParsedNebulaCert[] {
    const blocks = pemBlocks(pem);
    if (blocks.length === 0) throw new Error(`expected ${NEBULA_PEM_TYPES.certificate} PEM blocks, found none`);
    return blocks.map((block) => {
        if (block.type !== NEBULA_PEM_TYPES.certificate) throw new Error(`expected ${NEBULA_PEM_TYPES.certificate} PEM blocks, found ${block.type}`);
        const cert = decodeNebulaCert(block.bytes);
        return {
            ...describeNebulaCertDetails(cert.details),
            signature: Buffer.from(cert.signature).toString("hex"),
            fingerprint: rawFingerprint(cert).toString("hex"),
        };
    });
}

/** Hex sha256 of the (re-encoded) certificate, as `nebula-cert print` shows it. */
export function nebulaCertFingerprint(pem: string): string {
    return rawFingerprint(decodeCertPem(pem)).toString("hex");
}

/**
 * Whether a private key PEM belongs to a certificate (nebula's VerifyPrivateKey): an Ed25519 key for
 * a CA, an X25519 key for a host.
 */
export function nebulaCertMatchesKey(certPem: string, privateKeyPem: string): boolean {
    const cert = decodeCertPem(certPem);
    try {
        if (cert.details.isCA) return loadCaKey(privateKeyPem).publicKey.equals(cert.details.publicKey);
        const priv = decodeNebulaPem(privateKeyPem, NEBULA_PEM_TYPES.x25519PrivateKey);
        return x25519PublicFromPrivate(priv).equals(cert.details.publicKey);
    } catch {
        return false;
    }
}

/**
 * Check `certPem` against one or more CA certificates in `caCertPem`, at time `at`, the way nebula
 * v1.6's CAPool + Verify do: every CA must be a self-signed CA, the issuer must be one of them, the
 * CA and certificate must be valid at `at`, the signature must match and the CA's constraints hold.
 * Unlike `nebula-cert verify`, an expired CA that did not sign this certificate is tolerated (the
 * nebula daemon does the same). Never throws.
 */
export function verifyNebulaCert(caCertPem: string, certPem: string, at: Date): NebulaVerifyResult {
    const cas = new Map<string, RawNebulaCert>();
    try {
        const blocks = pemBlocks(caCertPem);
        if (blocks.length === 0) return { ok: false, reason: "error while adding ca cert to pool: no PEM block found" };
        for (const block of blocks) {
            if (block.type !== NEBULA_PEM_TYPES.certificate) {
                return { ok: false, reason: `error while adding ca cert to pool: unexpected PEM block ${block.type}` };
            }
            const ca = decodeNebulaCert(block.bytes);
            if (!ca.details.isCA) {
                return { ok: false, reason: `error while adding ca cert to pool: ${ca.details.name}: certificate is not a CA` };
            }
            if (!checkSignature(ca, ca.details.publicKey)) {
                return { ok: false, reason: `error while adding ca cert to pool: ${ca.details.name}: certificate is not self-signed` };
            }
            cas.set(rawFingerprint(ca).toString("hex"), ca);
        }
    } catch (e) {
        return { ok: false, reason: `error while adding ca cert to pool: ${(e as Error).message}` };
    }

    let cert: RawNebulaCert;
    try {
        cert = decodeCertPem(certPem);
    } catch (e) {
        return { ok: false, reason: `error while parsing crt: ${(e as Error).message}` };
    }
    if (cert.details.issuer.length === 0) return { ok: false, reason: "no issuer in certificate" };
    const signer = cas.get(Buffer.from(cert.details.issuer).toString("hex"));
    if (signer === undefined) return { ok: false, reason: "could not find ca for the certificate" };
    if (expiredAt(signer.details, at)) return { ok: false, reason: "root certificate is expired" };
    if (expiredAt(cert.details, at)) return { ok: false, reason: "certificate is expired" };
    if (!checkSignature(cert, signer.details.publicKey)) return { ok: false, reason: "certificate signature did not match" };
    const problem = caConstraintProblem(cert.details, signer.details);
    if (problem !== undefined) return { ok: false, reason: problem.reason };
    return { ok: true };
}
