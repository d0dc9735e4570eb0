import * as ipaddr from "ipaddr.js";
import { z } from "zod";
import { isIpv4Address } from "./net";

/*
 * The grammars of the consumers config values land in. A value that passes one of these is
 * safe everywhere it is written: a shell word, a YAML scalar, an SSH client config token, a
 * path segment, a Kubernetes name, a systemd unit line, a Nebula certificate. Each grammar is
 * the consumer's own rule (or a subset of it), never a list of known-bad strings, so a value
 * nobody thought of is refused by the same rule as the ones in the tests.
 */

/**
 * C0 controls, DEL and the C1 block: never meaningful in a single-line value, and they split
 * lines in every consumer. (A char-code test rather than a regex with control characters.)
 */
export function hasControlCharacter(text: string, allowTab = false): boolean {
    for (let i = 0; i < text.length; i++) {
        const code = text.charCodeAt(i);
        if ((code < 0x20 && !(allowTab && code === 0x09)) || (code >= 0x7f && code <= 0x9f)) {
            return true;
        }
    }
    return false;
}

/** A one-line, human-readable value (descriptions, region names): no controls, no edge whitespace, bounded. */
export function singleLineText(max: number): z.ZodString {
    return z
        .string()
        .min(1, "must not be empty")
        .max(max, `must be at most ${max} characters`)
        .refine((value) => !hasControlCharacter(value), "must be one line without control characters")
        .refine((value) => value.trim() === value, "must not start or end with whitespace");
}

// RFC 1123 label: what a hostname, a Kubernetes object name and a Nebula host name all accept.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** A lowercase DNS label of at most `max` (≤ 63) characters; one message per value, length first. */
export function dnsLabelOf(max: number, why = "a DNS label"): z.ZodString {
    return z.string().superRefine((value, ctx) => {
        if (value.length > max) {
            ctx.addIssue({ code: "custom", message: `must be at most ${max} characters (${why})` });
        } else if (!DNS_LABEL.test(value)) {
            ctx.addIssue({ code: "custom", message: "must be a lowercase DNS label (a-z, 0-9, '-', starting and ending alphanumeric)" });
        }
    });
}

/** A lowercase DNS label, ≤ 63 characters: node, site, namespace and object names. */
export const dnsLabel = dnsLabelOf(63);

function isDnsName(value: string, minLabels: number): boolean {
    if (value.length === 0 || value.length > 253) {
        return false;
    }
    const labels = value.split(".");
    return labels.length >= minLabels && labels.every((label) => DNS_LABEL.test(label)) && /[a-z]/.test(labels[labels.length - 1]);
}

/** A fully qualified lowercase DNS name (at least two labels, each a DNS label, ≤ 253 in all). */
export const dnsName = z.string().refine((value) => isDnsName(value, 2), "must be a lowercase fully qualified DNS name");

/** Where a network peer is dialled: a dotted-quad IPv4 address or a lowercase DNS name (one label allowed, as ssh resolves short names). */
export const hostName = z.string().refine((value) => isIpv4Address(value) || isDnsName(value, 1), "must be an IPv4 address or a lowercase DNS name");

/** `host:port` with the port required: Nebula's static_host_map cannot guess a port. */
export const hostPort = z.string().superRefine((value, ctx) => {
    const match = /^(.*):([0-9]{1,5})$/.exec(value);
    if (!match) {
        ctx.addIssue({ code: "custom", message: "must be host:port, such as derp-aus.kub0.io:4242 (the port is required)" });
        return;
    }
    if (!(isIpv4Address(match[1]) || isDnsName(match[1], 1))) {
        ctx.addIssue({ code: "custom", message: "must be host:port with an IPv4 address or a lowercase DNS name as host" });
    }
    const port = Number(match[2]);
    if (port < 1 || port > 65535 || match[2].startsWith("0")) {
        ctx.addIssue({ code: "custom", message: "must be host:port with a port from 1 to 65535" });
    }
});

/**
 * `https://host:port` and nothing else: the k3s server URL. No path, query, fragment or user
 * part, since k3s appends its own paths and would send credentials in the clear to a proxy.
 */
export const httpsOrigin = z.string().refine((value) => {
    const match = /^https:\/\/([^/:?#@]+):([0-9]{1,5})$/.exec(value);
    if (!match) {
        return false;
    }
    const port = Number(match[2]);
    return (isIpv4Address(match[1]) || isDnsName(match[1], 1)) && port >= 1 && port <= 65535 && !match[2].startsWith("0");
}, "must be https://<host>:<port> with no path, query or credentials, such as https://k3s.kub0.io:6443");

/** An http(s) URL for an in-cluster endpoint (forwardAuth): parsable, no whitespace or controls. */
export const httpUrl = z.string().refine((value) => {
    if (/\s/.test(value) || hasControlCharacter(value)) {
        return false;
    }
    try {
        const url = new URL(value);
        return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "" && url.username === "" && url.password === "";
    } catch {
        return false;
    }
}, "must be an http:// or https:// URL without spaces, control characters or credentials");

/**
 * A Linux interface name: 1-15 bytes, no '/', ':' or whitespace (the kernel's dev_valid_name),
 * restricted further to [A-Za-z0-9_.-] starting alphanumeric so it is also a shell word and
 * never looks like an option; "." and ".." are impossible by that first character.
 */
export const linuxIfName = z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/, "must be a Linux interface name: 1-15 of A-Z a-z 0-9 _ . - starting with a letter or digit");

/**
 * An absolute path of plain segments (the payload's target grammar, remote/payload.ts): it lands
 * in a launchd job's ProgramArguments and in a step's parameters, so no space, quote or glob
 * character, and no "." or ".." segment.
 */
export const absolutePlainPath = z
    .string()
    .max(1024)
    .refine(
        (value) => /^(\/[A-Za-z0-9._@+-]+)+$/.test(value) && !value.split("/").some((segment) => segment === "." || segment === ".."),
        "must be an absolute path of plain segments (A-Z a-z 0-9 . _ @ + -, no . or .. segment), e.g. /opt/homebrew/bin/nebula",
    );

/** A launchd job label: it names /Library/LaunchDaemons/<label>.plist and a `system/<label>` service target. */
export const launchdLabel = z
    .string()
    .regex(
        /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/,
        "must be a launchd label: 1-128 of A-Z a-z 0-9 . _ - starting with a letter or digit (e.g. homebrew.mxcl.nebula)",
    );

/** A login name as Debian's adduser accepts it by default; it is an SSH `User` token and a shell word. */
export const sshUser = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a POSIX user name: 1-32 of a-z 0-9 _ - starting with a letter or _");

// Kubernetes IsQualifiedName: an optional DNS-subdomain prefix and a 63-character name.
const K8S_NAME_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

export function isK8sQualifiedName(value: string): boolean {
    const slash = value.indexOf("/");
    const prefix = slash >= 0 ? value.slice(0, slash) : undefined;
    const name = slash >= 0 ? value.slice(slash + 1) : value;
    if (prefix !== undefined && !(prefix.length <= 253 && prefix.split(".").every((label) => DNS_LABEL.test(label)))) {
        return false;
    }
    return K8S_NAME_PART.test(name);
}

export function isK8sLabelValue(value: string): boolean {
    return value === "" || K8S_NAME_PART.test(value);
}

/** A Kubernetes label or taint key (qualified name). */
export const k8sQualifiedName = z
    .string()
    .refine(isK8sQualifiedName, "must be a Kubernetes qualified name: [prefix/]name, name ≤ 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric");

/** A Kubernetes label or taint value: empty, or ≤ 63 of [A-Za-z0-9_.-] starting and ending alphanumeric. */
export const k8sLabelValue = z.string().refine(isK8sLabelValue, "must be a Kubernetes label value: ≤ 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric");

/** A Service port name (IANA_SVC_NAME): ≤ 15 of a-z 0-9 '-', at least one letter, no "--", no '-' at either end. */
export const k8sPortName = z
    .string()
    .refine(
        (value) => /^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/.test(value) && /[a-z]/.test(value) && !value.includes("--"),
        "must be a Kubernetes port name: ≤ 15 of a-z 0-9 '-' with at least one letter",
    );

/** An HTTP header field name (RFC 9110 token): a header name cannot carry CR/LF or ':'. */
export const httpHeaderName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/, "must be an HTTP header name (RFC 9110 token characters only)");

/** An HTTP header field value: visible characters, spaces and tabs; CR/LF would start a new header. */
export const httpHeaderValue = z
    .string()
    .max(4096, "must be at most 4096 characters")
    .refine((value) => !hasControlCharacter(value, true), "must not contain CR, LF or other control characters (they would inject headers)");

/** A URL path prefix for stripPrefix: starts with '/', no whitespace, controls or '?'/'#'. */
export const urlPathPrefix = z
    .string()
    .regex(/^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]{0,1023}$/, "must be a URL path starting with '/' (RFC 3986 path characters only)");

/** A container image reference (registry/path:tag@digest), the grammar of the distribution spec. */
export const imageReference = z
    .string()
    .max(512, "must be at most 512 characters")
    .regex(
        /^([a-z0-9.-]+(:[0-9]+)?\/)?[a-z0-9]+([._-]+[a-z0-9]+)*(\/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$/,
        "must be a container image reference such as ghcr.io/org/app:1.2.3",
    );

/** A slug for a cloud API (DigitalOcean size or image): lowercase letters, digits and '-'. */
export const cloudSlug = z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,62}[a-z0-9])?$/, "must be a lowercase slug such as s-1vcpu-1gb");

/**
 * An S3 bucket name (AWS's rules, which Spaces follows): 3-63 lowercase letters, digits, dots and
 * hyphens, starting and ending with a letter or digit, not shaped like an IP address.
 */
export const s3BucketName = z
    .string()
    .regex(
        /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
        "must be an S3 bucket name: 3-63 lowercase letters, digits, . and -, starting and ending with a letter or digit",
    )
    .refine((value) => !/^\d+\.\d+\.\d+\.\d+$/.test(value) && !value.includes(".."), "must not look like an IP address or hold '..'");

/**
 * A key prefix inside a bucket: segments of letters, digits, `.`, `_` and `-` joined by `/`, no
 * leading or trailing `/`, no `.`/`..` segment. It lands in a YAML file and in object keys only.
 */
export const objectKeyPrefix = z
    .string()
    .regex(
        /^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/,
        "must be a key prefix such as headscale/prod: segments of letters, digits, . _ - joined by /, no leading or trailing /",
    );

/** A Go time.Duration as Litestream reads it, in whole hours, minutes or seconds: 72h, 30m, 1h30m, 1s. */
export const goDuration = z
    .string()
    .regex(/^([1-9][0-9]*h)?([1-9][0-9]*m)?([1-9][0-9]*s)?$/, "must be a duration such as 72h, 30m or 1s")
    .refine((value) => value !== "", "must not be empty");

export function isGoDuration(value: string): boolean {
    return goDuration.safeParse(value).success;
}

/** Seconds in a duration goDuration accepted. */
export function goDurationSeconds(value: string): number {
    const units: Record<string, number> = { h: 3600, m: 60, s: 1 };
    let total = 0;
    for (const match of value.matchAll(/([0-9]+)([hms])/g)) {
        total += Number(match[1]) * units[match[2]];
    }
    return total;
}

/** The ULA range every Headscale IPv6 prefix must sit inside. */
export const TAILNET_V6_SUPERNET = "fd7a:115c:a1e0::/48";

/** An IPv6 CIDR that names its network address and lies inside fd7a:115c:a1e0::/48, as Headscale requires. */
export const tailnetV6Prefix = z.string().superRefine((value, ctx) => {
    if (!/^[0-9a-f:]+\/[0-9]{1,3}$/.test(value) || !ipaddr.IPv6.isValidCIDR(value)) {
        ctx.addIssue({ code: "custom", message: "must be a lowercase IPv6 CIDR such as fd7a:115c:a1e0::/48" });
        return;
    }
    const [address, length] = ipaddr.IPv6.parseCIDR(value);
    const [supernet, supernetLength] = ipaddr.IPv6.parseCIDR(TAILNET_V6_SUPERNET);
    if (length < supernetLength || !address.match(supernet, supernetLength)) {
        ctx.addIssue({ code: "custom", message: `must lie inside ${TAILNET_V6_SUPERNET}, the only IPv6 range Headscale hands out` });
        return;
    }
    if (ipaddr.IPv6.networkAddressFromCIDR(value).toString() !== address.toString()) {
        ctx.addIssue({ code: "custom", message: "must name the network address (host bits zero)" });
    }
});

/**
 * A UTC calendar date. Pulumi hands the program an unquoted YAML date as
 * `2026-11-01 00:00:00 +0000 UTC` while a YAML 1.2 parser (render) reads `2026-11-01`; both
 * mean the same day, so both are accepted and normalised to `YYYY-MM-DD`. A time of day other
 * than midnight is refused in either spelling, so render and the program agree.
 */
export const calendarDate = z
    .string()
    .transform((value) => /^(\d{4}-\d{2}-\d{2}) 00:00:00 \+0000 UTC$/.exec(value)?.[1] ?? value)
    .pipe(z.iso.date("must be a date such as 2026-11-01"));

/** Escapes a value for quoting inside a one-line message: a hostile value must not split or forge the line. */
export function quoteForMessage(value: string, max = 80): string {
    const shown = value.length > max ? `${value.slice(0, max)}…` : value;
    return JSON.stringify(shown);
}
