/*
 * The fleet's rules for Nebula certificate names and groups: what nebula-cert, Nebula's firewall
 * and v2 certificates accept, checked in the config before anything is signed. The certificate
 * codec (nebulaCert.ts) refuses only what it cannot encode.
 */
import { NEBULA_MAX_NAME_BYTES } from "./nebulaCert";

function isWellFormedUnicode(text: string): boolean {
    return !/\p{Cs}/u.test(text);
}

// C0 controls and DEL: legal in protobuf, but they break `nebula-cert print`, logs and YAML.
function hasControlChars(text: string): boolean {
    for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c < 0x20 || c === 0x7f) return true;
    }
    return false;
}

/** Why `name` cannot be a certificate name, or `undefined` if it can. */
export function nebulaNameProblem(name: string): string | undefined {
    if (name.length === 0) return "must not be empty (nebula-cert requires -name; v2 certificates reject empty names)";
    if (!isWellFormedUnicode(name)) return "must be valid Unicode (protobuf strings are UTF-8 and Go rejects invalid UTF-8)";
    if (Buffer.byteLength(name, "utf8") > NEBULA_MAX_NAME_BYTES) {
        return `must be at most ${NEBULA_MAX_NAME_BYTES} bytes of UTF-8 (nebula v2 MaxNameLength)`;
    }
    if (name.trim() !== name) return "must not start or end with whitespace";
    if (hasControlChars(name)) return "must not contain control characters";
    if (name === "any") {
        return 'must not be "any": a firewall rule `host: any` matches every host, so this host could never be singled out';
    }
    return undefined;
}

/** Why `group` cannot be a certificate group, or `undefined` if it can. */
export function nebulaGroupProblem(group: string): string | undefined {
    if (group.length === 0) return "must not be empty (nebula-cert drops empty groups; v2 certificates reject them)";
    if (!isWellFormedUnicode(group)) return "must be valid Unicode (protobuf strings are UTF-8 and Go rejects invalid UTF-8)";
    if (group.trim() !== group) {
        return "must not start or end with whitespace (nebula-cert trims it, so such a group could never be reissued)";
    }
    if (group.includes(",")) {
        return "must not contain ',' (nebula-cert's -groups flag is comma separated, so the group could never be reissued)";
    }
    if (hasControlChars(group)) return "must not contain control characters";
    if (group === "any") {
        return 'must not be "any": a firewall rule `group: any` matches every host, so this group could never be targeted';
    }
    return undefined;
}
