import { z } from "zod";
import {
    absolutePlainPath,
    calendarDate,
    cloudSlug,
    dnsLabel,
    dnsLabelOf,
    dnsName,
    goDuration,
    goDurationSeconds,
    isGoDuration,
    hostName,
    hostPort,
    httpHeaderName,
    httpHeaderValue,
    httpUrl,
    httpsOrigin,
    imageReference,
    isK8sLabelValue,
    isK8sQualifiedName,
    k8sLabelValue,
    k8sPortName,
    k8sQualifiedName,
    launchdLabel,
    linuxIfName,
    objectKeyPrefix,
    quoteForMessage,
    s3BucketName,
    singleLineText,
    sshUser,
    tailnetV6Prefix,
    urlPathPrefix,
} from "./grammar";
import { isIpv4Address, isIpv4Cidr, isNetworkAddress } from "./net";
import { NEBULA_MAX_NAME_BYTES } from "./nebulaCert";
import { nebulaGroupProblem, nebulaNameProblem } from "./nebulaNames";

/*
 * The stack config schema: the shape of `shortcircuit:fleet` in Pulumi.<stack>.yaml.
 * Objects are strict so a misspelt key is an error rather than a silently ignored setting.
 * Cross-field rules (overlaps, duplicates, MTU agreement, genesis) live in guards.ts.
 * Every free-text field has the grammar of the place it lands (grammar.ts), so a value that
 * passes here is safe in every file, shell, path and API it reaches.
 *
 * The operator's documentation lives here too: each field's `.describe()` text and each grammar's
 * `title` become docs/config-reference.md and the editors' docs/stack-file.schema.json
 * (`npm run stack-schema`; the tests fail when those are stale). Metadata never changes what
 * validates. Say there what an operator must know; keep the why for developers in comments.
 */

export const NodeNameSchema = dnsLabel.meta({ title: "DNS label" });
export const DnsNameSchema = dnsName.meta({ title: "DNS name" });
export const Ipv4Schema = z.string().refine(isIpv4Address, "must be a dotted-quad IPv4 address").meta({ title: "IPv4 address" });
export const Ipv4CidrSchema = z
    .string()
    .refine(isIpv4Cidr, "must be an IPv4 CIDR such as 10.42.0.0/16")
    .refine((cidr) => !isIpv4Cidr(cidr) || isNetworkAddress(cidr), "must name the network address (host bits zero)")
    .meta({ title: "IPv4 CIDR" });
/** Overlay and interface MTU; the 1280 floor is a guard with its own message, so the schema only bounds sanity. */
export const MtuSchema = z.number().int().min(576).max(9216);
export const PortSchema = z.number().int().min(1).max(65535);

// The grammars as the reference names them (titles only; the rules are grammar.ts's).
const HostPort = hostPort.meta({ title: "host:port" });
const HostName = hostName.meta({ title: "IPv4 address or DNS name" });
const IfName = linuxIfName.meta({ title: "interface name" });
const SshUser = sshUser.meta({ title: "user name" });
const CalendarDate = calendarDate.meta({ title: "date YYYY-MM-DD" });
const HttpsOrigin = httpsOrigin.meta({ title: "https://host:port" });
const HttpUrl = httpUrl.meta({ title: "http(s) URL" });
const ImageReference = imageReference.meta({ title: "image reference" });
const CloudSlug = cloudSlug.meta({ title: "slug" });
const K8sQualifiedName = k8sQualifiedName.meta({ title: "Kubernetes qualified name" });
const K8sLabelValue = k8sLabelValue.meta({ title: "Kubernetes label value" });
const K8sPortName = k8sPortName.meta({ title: "port name" });
const HttpHeaderName = httpHeaderName.meta({ title: "header name" });
const HttpHeaderValue = httpHeaderValue.meta({ title: "header value" });
const UrlPathPrefix = urlPathPrefix.meta({ title: "URL path" });
const TailnetV6Prefix = tailnetV6Prefix.meta({ title: "IPv6 CIDR" });
const oneLine = (max: number): z.ZodString => singleLineText(max).meta({ title: "one line of text" });

/** Which network a node-level choice (node-ip, flannel-iface, SSH path) is taken from. */
export const PathSchema = z.enum(["tailnet", "nebula", "lan"]);
export type NetworkPath = z.infer<typeof PathSchema>;

const TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/** `key[=value]:Effect`, with the key a qualified name and the value a label value, as the kubelet parses --register-with-taints. */
export const TaintSchema = z
    .string()
    .superRefine((value, ctx) => {
        const colon = value.lastIndexOf(":");
        const effect = colon >= 0 ? value.slice(colon + 1) : "";
        if (colon < 0 || !TAINT_EFFECTS.includes(effect)) {
            ctx.addIssue({ code: "custom", message: "must be key[=value]:NoSchedule|PreferNoSchedule|NoExecute" });
            return;
        }
        const keyValue = value.slice(0, colon);
        const equals = keyValue.indexOf("=");
        const key = equals >= 0 ? keyValue.slice(0, equals) : keyValue;
        if (!isK8sQualifiedName(key)) {
            ctx.addIssue({
                code: "custom",
                message: "taint key must be a Kubernetes qualified name: [prefix/]name, name ≤ 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric",
            });
        }
        if (equals >= 0 && !isK8sLabelValue(keyValue.slice(equals + 1))) {
            ctx.addIssue({
                code: "custom",
                message: "taint value must be a Kubernetes label value: ≤ 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric",
            });
        }
    })
    .meta({ title: "key[=value]:Effect" });

/** A Nebula certificate group; the rule lives with the certificate encoder. */
const NebulaGroupSchema = z
    .string()
    .superRefine((value, ctx) => {
        const problem = nebulaGroupProblem(value);
        if (problem) {
            ctx.addIssue({ code: "custom", message: `Nebula group ${quoteForMessage(value)} ${problem}` });
        }
    })
    .meta({ title: "Nebula group" });

const SiteSchema = z.strictObject({
    name: NodeNameSchema.describe("Short site code used in node names (toa, aus, lax, hnd); unique."),
    description: oneLine(200).optional().describe("Free text."),
    lan: Ipv4CidrSchema.describe("The site's LAN. The cluster and service CIDRs must not overlap it; its nodes' `lan.address` lies inside it."),
});

const OverlayAddressSchema = z.strictObject({
    address: Ipv4Schema.describe("The host's address on this overlay: inside the overlay's network, unique, neither its network nor its broadcast address."),
    mtu: MtuSchema.optional().describe("Set only to state an interface MTU that is pinned on this host; it must equal the overlay's `mtu`."),
});

const NebulaMembershipSchema = OverlayAddressSchema.extend({
    lighthouse: z.boolean().default(false).describe("This host serves as a Nebula lighthouse (and relay)."),
    publicEndpoint: HostPort.optional().describe(
        "Public `host:port` other hosts dial to reach this lighthouse; required for lighthouses. An IPv4 host part must equal `externalIp` when both are set.",
    ),
    groups: z.array(NebulaGroupSchema).default([]).describe("Extra Nebula groups beyond role, site and lighthouse."),
});

const LanSchema = z.strictObject({
    interface: IfName.describe("The LAN interface."),
    address: Ipv4Schema.describe("The host's LAN address, inside its site's `lan`."),
    mtu: MtuSchema.default(1500).describe("The LAN link's MTU; at least 1280."),
});

export const BecomeSchema = z.enum(["none", "sudo"]);
export type Become = z.infer<typeof BecomeSchema>;

const SshSchema = z.strictObject({
    user: SshUser.default("root").describe("The SSH user."),
    port: PortSchema.default(22).describe("The SSH port."),
    via: PathSchema.optional().describe("Which network the program's SSH connections use; defaults to `access.sshVia`. Set this or `host`, not both."),
    host: HostName.optional().describe("An explicit address or name to SSH to, overriding the address on `via`."),
    become: BecomeSchema.optional().describe(
        "How the program's steps (and drift's collector) become root: `none` runs them as the SSH user, who must be root; `sudo` runs them through `sudo -n /bin/bash`, which must not ask for a password. Defaults to `none` for `root`, `sudo` for any other user.",
    ),
});

/**
 * Settings only a macOS host has. Nebula runs there as the program's own LaunchDaemon
 * (components/nebula/service.ts); derper needs no path here: derp/install.sh installs it at
 * /usr/local/lib/derper/<version>/derper itself.
 */
const MacosSchema = z.strictObject({
    nebulaBinary: absolutePlainPath
        .meta({ title: "absolute path" })
        .optional()
        .describe(
            "The nebula binary the program's Nebula LaunchDaemon runs. Default: Homebrew's, /opt/homebrew/bin/nebula on arm64 (Apple silicon) and /usr/local/bin/nebula on amd64 (Intel).",
        ),
    adoptNebulaLabel: launchdLabel
        .meta({ title: "launchd label" })
        .optional()
        .describe(
            "The label of an operator's own Nebula LaunchDaemon (e.g. homebrew.mxcl.nebula) that the program takes over: the Nebula step boots it out and moves its /Library/LaunchDaemons/<label>.plist aside (to <plist>.shortcircuit-adopted) before loading its own job. Without it, a step that finds another LaunchDaemon running nebula fails before changing anything. See docs/runbooks/adopting.md.",
        ),
});

export const NodeRoleSchema = z.enum(["server", "agent", "standalone"]);

const NodeSchema = z.strictObject({
    name: NodeNameSchema.describe("The host's name, also its Nebula name: unique among nodes, Nebula admins and the control droplet."),
    site: NodeNameSchema.describe("The `sites[].name` the host is at."),
    role: NodeRoleSchema.describe(
        "`server` and `agent` run K3s; `standalone` hosts (DERP relay, feeders) are fleet members outside the cluster and set no node-ip, flannel or taint options.",
    ),
    genesis: z
        .boolean()
        .default(false)
        .describe("The server that bootstraps etcd with `cluster-init`; exactly one server sets it. It is rolled last (first while `cluster.bootstrap`)."),
    arch: z.enum(["amd64", "arm64"]).describe("CPU architecture."),
    os: z.enum(["debian", "ubuntu", "raspios", "fedora", "macos"]).describe("Operating system."),
    hardware: oneLine(100).optional().describe("Hardware note (e.g. rpi5, framework-desktop, mac-mini); informational."),
    ssh: SshSchema.default({ user: "root", port: 22 }).describe("How the program reaches the host."),
    lan: LanSchema.describe("The host's LAN link."),
    macos: MacosSchema.optional().describe("Settings of a macOS host's services; only on `os: macos` hosts."),
    tailnet: OverlayAddressSchema.optional().describe(
        "The address Headscale assigned the node. Headscale allocates in order: copy it from `headscale nodes list`; pre-flight refuses a node whose `tailscale0` differs.",
    ),
    nebula: NebulaMembershipSchema.optional().describe(
        "The host's Nebula membership. Omit it on the host that runs an `existing` control server: its identity is `controlServer.nebula`.",
    ),
    externalIp: Ipv4Schema.optional().describe("Public address advertised as `node-external-ip` and added to servers' `tls-san`."),
    nodeIpFrom: PathSchema.optional().describe("Per-node override of `cluster.nodeIpFrom`."),
    flannelIfaceFrom: PathSchema.optional().describe("Per-node override of `cluster.flannelIfaceFrom`."),
    taints: z.array(TaintSchema).default([]).describe("Written as `node-taint`; the effect is NoSchedule, PreferNoSchedule or NoExecute."),
    labels: z.record(K8sQualifiedName, K8sLabelValue).default({}).describe("Written as `node-label`."),
});

/**
 * Bytes of Nebula's name limit that caName leaves free: `render` names its throwaway stand-in
 * `<caName><suffix>` (components/nebula/issuance.ts, whose suffix a test holds to this room).
 */
export const CA_NAME_SUFFIX_ROOM = 22;
export const CA_NAME_MAX_BYTES = NEBULA_MAX_NAME_BYTES - CA_NAME_SUFFIX_ROOM;
/** A century: longer than any certificate should live, short enough that no date overflows. */
export const MAX_VALIDITY_DAYS = 36500;

/** Where the CA that signs host certificates comes from: the program's own key, or the operator's (stack secrets). */
export const NebulaCaSourceSchema = z.enum(["generated", "existing"]);
/** A CA generation the program made: 1 is the key `nebula-ca-key`, n ≥ 2 is `nebula-ca-key-g<n>`. */
const CaGenerationSchema = z.number().int().min(1).max(99);

/**
 * A rotation from one CA to the one `ca`/`caGeneration` name, without a gap: stage "trust" puts
 * both CAs in every host's ca.crt and still signs with the old one; "sign" signs with the new
 * one, both still trusted; removing `rotation` trusts the new CA alone.
 */
const NebulaRotationSchema = z.strictObject({
    from: z
        .union([z.literal("existing"), CaGenerationSchema], 'must be "existing" or the generation number (1, 2, …) of a CA the program made')
        .describe("The CA being retired: `existing` (the stack secrets) or the generation number of a CA the program made."),
    stage: z
        .enum(["trust", "sign"])
        .describe("`trust`: both CAs in every host's ca.crt, the old one still signs. `sign`: the new one signs, both still trusted."),
    fromCaIssuedOn: CalendarDate.optional().describe(
        "The retiring generation's `caIssuedOn`, when the new one moves it (default: `pki.caIssuedOn`); it must stay what it was. Only when `from` is a generation.",
    ),
    fromCaValidityDays: z
        .number()
        .int()
        .min(30)
        .max(MAX_VALIDITY_DAYS, `must be at most ${MAX_VALIDITY_DAYS} days (a century)`)
        .optional()
        .describe("The retiring generation's `caValidityDays`, when the new one changes it (default: `pki.caValidityDays`). Only when `from` is a generation."),
});

const NebulaPkiSchema = z.strictObject({
    ca: NebulaCaSourceSchema.default("generated").describe(
        "Which CA signs host certificates: `generated`, the program's own; `existing`, the operator's from the stack secrets `shortcircuit:nebulaCaCert` and `shortcircuit:nebulaCaKey` (adoption).",
    ),
    caGeneration: CaGenerationSchema.default(1).describe(
        "Which CA the program makes when `ca` is `generated`: generation 1 keeps its key as `nebula-ca-key`, n ≥ 2 as `nebula-ca-key-g<n>`. Raise it (with a `rotation`) to replace the CA.",
    ),
    rotation: NebulaRotationSchema.optional().describe(
        "A two-CA rotation in progress, towards the CA that `ca`/`caGeneration` name, without a gap; removing it trusts the new CA alone. See the runbook docs/runbooks/rotating-the-nebula-ca.md.",
    ),
    caName: z
        .string()
        .superRefine((value, ctx) => {
            const problem = nebulaNameProblem(value);
            if (problem) {
                ctx.addIssue({ code: "custom", message: `Nebula CA name ${problem}` });
            } else if (Buffer.byteLength(value, "utf8") > CA_NAME_MAX_BYTES) {
                // render signs with "<caName> (throwaway render CA)"; that name must fit too, or render and preview disagree.
                ctx.addIssue({
                    code: "custom",
                    message: `must be at most ${CA_NAME_MAX_BYTES} bytes of UTF-8 (Nebula's ${NEBULA_MAX_NAME_BYTES}, less room for render's throwaway-CA suffix)`,
                });
            }
        })
        .default("shortcircuit")
        .describe(`The CA certificate's name; at most ${CA_NAME_MAX_BYTES} bytes of UTF-8.`),
    caIssuedOn: CalendarDate.optional().describe(
        "A generated CA certificate's notBefore (UTC date, not in the future); required while the program makes a CA. Moving it re-signs the CA with the same key under a new fingerprint: rotate instead.",
    ),
    // Bounded so notBefore + validity stays a real date (guards check the sum).
    caValidityDays: z
        .number()
        .int()
        .min(30)
        .max(MAX_VALIDITY_DAYS, `must be at most ${MAX_VALIDITY_DAYS} days (a century)`)
        .default(3650)
        .describe("A generated CA's lifetime in days; `caIssuedOn` plus this must end by the year 9999."),
    certValidityDays: z
        .number()
        .int()
        .min(1)
        .max(MAX_VALIDITY_DAYS, `must be at most ${MAX_VALIDITY_DAYS} days (a century)`)
        .default(365)
        .describe("Host certificates' lifetime in days; must fit inside the CA's."),
    renewBeforeDays: z
        .number()
        .int()
        .min(1)
        .max(MAX_VALIDITY_DAYS, `must be at most ${MAX_VALIDITY_DAYS} days (a century)`)
        .default(30)
        .describe("A host certificate is reissued once it is this close to expiry; preview warns inside the window."),
});

const NebulaAdminSchema = z.strictObject({
    name: NodeNameSchema.describe("The workstation's Nebula name; not a node's name."),
    address: Ipv4Schema.describe("Its Nebula address."),
    groups: z.array(NebulaGroupSchema).default([]).describe("Extra Nebula groups beyond the admin group."),
});

const OverlaysSchema = z.strictObject({
    tailnet: z
        .strictObject({
            prefix: Ipv4CidrSchema.describe(
                "Headscale `prefixes.v4`: inside 100.64.0.0/10, and overlapping neither the cluster and service CIDRs nor any LAN.",
            ),
            prefixV6: TailnetV6Prefix.default("fd7a:115c:a1e0::/48").describe("Headscale `prefixes.v6`; inside fd7a:115c:a1e0::/48."),
            interface: IfName.default("tailscale0").describe("The Tailscale interface on every host."),
            mtu: MtuSchema.describe("One MTU for every host on the tailnet (tailscaled uses 1280); at least 1280."),
            acceptRoutes: z
                .literal(false, "must be false: accepted subnet routes land in table 52 and steal the cluster and service CIDRs")
                .default(false)
                .describe(
                    "Must stay false: nodes join with `--accept-routes=false`, since accepted subnet routes land in table 52 and shadow the cluster CIDRs.",
                ),
        })
        .describe("The Headscale tailnet."),
    nebula: z
        .strictObject({
            network: Ipv4CidrSchema.describe("The Nebula mesh, e.g. 10.67.0.0/16; overlapping neither the cluster and service CIDRs nor any LAN."),
            interface: IfName.default("nebula0").describe("The Nebula interface on every host."),
            mtu: MtuSchema.describe("One MTU for every host and relay on the mesh; at least 1280."),
            listenPort: PortSchema.default(4242).describe("The UDP port lighthouses listen on; other hosts pick a port."),
            pki: NebulaPkiSchema.describe("The Nebula certificate authority and the host certificates it signs."),
            adminGroup: NebulaGroupSchema.default("admin").describe(
                "Nebula group whose members may reach every host by ICMP and SSH (the backup control path).",
            ),
            admins: z
                .array(NebulaAdminSchema)
                .default([])
                .describe("Operator workstations on the mesh: each gets a certificate in the admin group and a config (render writes their files)."),
        })
        .describe("The Nebula mesh."),
});

const EtcdSchema = z.strictObject({
    heartbeatIntervalMs: z.number().int().positive().default(500).describe("etcd's heartbeat interval, passed as `etcd-arg`."),
    electionTimeoutMs: z
        .number()
        .int()
        .positive()
        .default(5000)
        .describe("etcd's election timeout, passed as `etcd-arg`; at least 5 × `heartbeatIntervalMs`, or etcd refuses to start."),
});

const ClusterSchema = z.strictObject({
    name: NodeNameSchema.describe("The cluster's name."),
    clusterCidr: Ipv4CidrSchema.default("10.42.0.0/16").describe("The pod CIDR; must not overlap `serviceCidr`, the overlays or any LAN."),
    serviceCidr: Ipv4CidrSchema.default("10.43.0.0/16").describe("The service CIDR; must not overlap `clusterCidr`, the overlays or any LAN."),
    flannelBackend: z
        .enum(["vxlan", "host-gw", "wireguard-native", "none"], {
            error: "must be vxlan, host-gw, wireguard-native or none (the tailscale backend accepts routes into table 52)",
        })
        .default("vxlan")
        .describe("Never `tailscale`: that backend accepts routes into table 52."),
    nodeIpFrom: PathSchema.describe("Which network supplies every node's `node-ip` unless the node overrides it."),
    flannelIfaceFrom: PathSchema.describe(
        "Which network's interface becomes every node's `flannel-iface` unless the node overrides it (flannel's MTU is that interface's MTU − 50).",
    ),
    etcd: EtcdSchema.default({ heartbeatIntervalMs: 500, electionTimeoutMs: 5000 }).describe("etcd timing on the servers."),
    apiDnsNames: z.array(DnsNameSchema).default([]).describe("DNS names for the API server; added to every server's `tls-san`."),
    serverUrl: HttpsOrigin.optional().describe(
        "The URL joining nodes use; defaults to the genesis server's node-ip on port 6443. Its host is added to `tls-san`.",
    ),
    readyTimeoutSeconds: z
        .number()
        .int()
        .min(5)
        .max(3600)
        .default(300)
        .describe(
            "Seconds a restarted node has to become Ready (servers: and etcd healthy) before it is rolled back; also the most its drain may take before the rollout stops there.",
        ),
    bootstrap: z
        .boolean()
        .default(false)
        .describe(
            "The cluster does not exist yet: roll the genesis first, then the other servers, then the agents, since nothing can join before the genesis runs. Set false once it is up.",
        ),
    disable: z
        .array(z.enum(["coredns", "servicelb", "traefik", "local-storage", "metrics-server", "runtimes"]))
        .default([])
        .describe("Packaged components to disable on every server (all servers must agree)."),
});

const DerpRegionSchema = z.strictObject({
    regionId: z
        .number()
        .int()
        .min(900, "must be ≥ 900: 1-899 are Tailscale's public regions")
        .max(999)
        .describe("The DERP region id: 900–999 (1–899 are Tailscale's public regions), unique across the control server and the relays."),
    regionCode: z
        .string()
        .regex(/^[a-z0-9-]{2,16}$/, "must be a short lowercase code")
        .describe("A short lowercase code (e.g. sfo3), unique across the control server and the relays."),
    regionName: oneLine(64).describe("The region's display name."),
    stunPort: PortSchema.default(3478).describe("The UDP port STUN answers on."),
});

const DropletSchema = z
    .strictObject({
        kind: z.literal("droplet").describe("The program creates the droplet, or adopts a running one."),
        // Its device path (/dev/disk/by-id/scsi-0DO_Volume_<name>-headscale) reaches the bootstrap shell.
        name: dnsLabelOf(64 - "-headscale".length, "the volume <name>-headscale is limited to 64")
            .refine((value) => !/^[0-9]/.test(value), "must start with a letter (DigitalOcean volume names do)")
            .meta({ title: "DNS label" })
            .describe(
                "Names the droplet, the Nebula host, an SSH Host, a directory under render's hosts/ and (with `-headscale`) the volume: so at most 54 characters, starting with a letter (DigitalOcean volume names are at most 64 and start with a letter).",
            ),
        region: z
            .string()
            .regex(/^[a-z]{3}\d$/, "must be a DigitalOcean region slug such as sfo3")
            .describe("The DigitalOcean region slug, e.g. sfo3."),
        size: CloudSlug.describe("The DigitalOcean size slug, e.g. s-1vcpu-1gb."),
        image: CloudSlug.regex(/^(debian|ubuntu)-/, "must be a Debian or Ubuntu image slug (debian-12-x64): the bootstrap installs with apt-get").describe(
            "A Debian or Ubuntu image slug (e.g. debian-12-x64): the bootstrap script installs with dpkg and apt-get.",
        ),
        volumeSizeGb: z.number().int().min(1).default(1).describe("The size in GB of the volume holding Headscale's database."),
        volumeName: z
            .string()
            .regex(/^[a-z][a-z0-9-]{0,62}[a-z0-9]$/, "must be a DigitalOcean volume name: lowercase letters, digits and -, starting with a letter, at most 64")
            .optional()
            .describe(
                "The volume holding Headscale's database; default `<name>-headscale`. Set it when adopting a volume named otherwise (DigitalOcean cannot rename one). Its name is also its device path.",
            ),
        adminCidrs: z
            .array(Ipv4CidrSchema)
            .default([])
            .describe(
                "CIDRs allowed to SSH to the droplet from the internet (the overlays always are); at least one, since a rebuilt droplet is reached over its public IP.",
            ),
        adopt: z
            .strictObject({
                dropletId: z
                    .string()
                    .regex(/^[1-9][0-9]{0,18}$/, "must be the droplet's numeric id (doctl compute droplet list)")
                    .describe("The droplet's numeric id (`doctl compute droplet list`), as a string."),
                reservedIp: Ipv4Schema.describe("The reserved IP the droplet answers on; `controlServer.publicIp`, if set, must equal it."),
                volumeId: z
                    .string()
                    .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, "must be the volume's id, a UUID (doctl compute volume list)")
                    .describe("The volume's id, a UUID (`doctl compute volume list`)."),
                firewallId: z
                    .string()
                    .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, "must be the firewall's id, a UUID (doctl compute firewall list)")
                    .optional()
                    .describe("The firewall's id, a UUID (`doctl compute firewall list`)."),
            })
            .optional()
            .describe(
                "The running objects to adopt on the first `up` (Pulumi import) instead of creating new ones: the same public address, the same Headscale database. Inert once they are in state; delete it then. See the runbook docs/runbooks/adopting.md.",
            ),
    })
    .describe("A DigitalOcean droplet the program creates, or adopts.");

const ExistingControlHostSchema = z
    .strictObject({
        kind: z.literal("existing").describe("Headscale runs on a fleet host."),
        host: NodeNameSchema.describe(
            "The `standalone` node that runs Headscale; it has no `nebula` section of its own (its identity is `controlServer.nebula`).",
        ),
    })
    .describe("A standalone fleet host runs Headscale instead of a droplet.");

const Duration = goDuration.meta({ title: "duration" });

/**
 * Litestream's replica of Headscale's database. The credentials are stack secrets
 * (shortcircuit:replicaAccessKeyId, shortcircuit:replicaSecretAccessKey), never fields here.
 */
export const ReplicaSchema = z
    .strictObject({
        bucket: s3BucketName.meta({ title: "bucket name" }).describe("The S3 bucket (a Spaces bucket in prod) the database is replicated into."),
        endpoint: HttpUrl.describe("The S3 endpoint, e.g. https://sfo3.digitaloceanspaces.com for Spaces in SFO3."),
        region: CloudSlug.describe("The bucket's region as the S3 API names it (the Spaces region slug, e.g. sfo3)."),
        path: objectKeyPrefix
            .meta({ title: "key prefix" })
            .default("headscale")
            .describe("The key prefix inside the bucket; give each stack its own (e.g. headscale/prod, headscale/lab)."),
        retention: Duration.default("72h").describe(
            "How long Litestream keeps snapshots (snapshot.retention): the oldest point a restore can go back to. At least 1h and at least `snapshotInterval`.",
        ),
        snapshotInterval: Duration.default("24h").describe(
            "How often Litestream writes a full snapshot (snapshot.interval); a restore replays the changes since the newest one.",
        ),
        syncInterval: Duration.default("1s").describe(
            "How often Litestream ships new changes to the bucket (sync-interval): the most a lost volume loses, plus the upload time.",
        ),
    })
    // zod runs these even when a field failed its own check; that field's message is enough then.
    .refine((replica) => !isGoDuration(replica.retention) || goDurationSeconds(replica.retention) >= 3600, {
        path: ["retention"],
        message: "must be at least 1h",
    })
    .refine(
        (replica) =>
            !isGoDuration(replica.retention) ||
            !isGoDuration(replica.snapshotInterval) ||
            goDurationSeconds(replica.retention) < 3600 ||
            goDurationSeconds(replica.retention) >= goDurationSeconds(replica.snapshotInterval),
        {
            path: ["retention"],
            // Litestream deletes snapshots older than retention but always keeps the newest one
            // (db.go EnforceSnapshotRetention): a shorter retention leaves only that one most of the time.
            message: "must be at least snapshotInterval, or mostly only the newest snapshot is kept and no earlier point can be restored",
        },
    );

const ControlServerSchema = z.strictObject({
    hostname: DnsNameSchema.describe("Headscale's public name (e.g. hs.kub0.io); `server_url` is `https://<hostname>`."),
    magicDnsBaseDomain: DnsNameSchema.describe("MagicDNS's base domain; must not contain `hostname`, or MagicDNS would shadow the control server."),
    derp: DerpRegionSchema.describe("The embedded DERP region (e.g. 900 sfo3)."),
    nebula: z
        .strictObject({
            address: Ipv4Schema.describe("Its Nebula address."),
            mtu: MtuSchema.optional().describe("Set only to state a pinned interface MTU; it must equal the Nebula `mtu`."),
        })
        .describe("The control server's Nebula lighthouse identity (a droplet has no entry in `nodes`)."),
    publicIp: Ipv4Schema.optional().describe(
        "The control server's public address when already known (the reserved IP); otherwise taken from state. Must equal `host.adopt.reservedIp`, or an existing host's `externalIp`, where those are set.",
    ),
    tailscaleDerpFallback: z.boolean().default(false).describe("Also list Tailscale's public DERP map as a fallback."),
    host: z.discriminatedUnion("kind", [DropletSchema, ExistingControlHostSchema]).describe("Where Headscale runs: `kind: droplet` or `kind: existing`."),
    replica: ReplicaSchema.optional().describe(
        "Litestream replicates Headscale's database into this S3 bucket, and the bootstrap restores from it when the host holds no database (a lost volume). Needs the stack secrets shortcircuit:replicaAccessKeyId and shortcircuit:replicaSecretAccessKey. Without it the database lives only on the volume.",
    ),
});

const DerpRelaySchema = DerpRegionSchema.extend({
    host: NodeNameSchema.describe("The fleet host (a `nodes[].name`) that runs derper."),
    hostname: DnsNameSchema.describe("The relay's public DNS name."),
    derpPort: PortSchema.default(443).describe("The HTTPS port derper serves on."),
    serviceManager: z.enum(["systemd", "launchd"]).describe("`systemd` on Linux hosts, `launchd` on macOS hosts."),
    certMode: z.enum(["letsencrypt", "self-signed"]).describe("How derper gets its TLS certificate."),
    adoptDerperLabel: launchdLabel
        .meta({ title: "launchd label" })
        .optional()
        .describe(
            "launchd relays only: the label of an operator's own derper LaunchDaemon that the program takes over: the derper step boots it out and moves its /Library/LaunchDaemons/<label>.plist aside (to <plist>.shortcircuit-adopted) before loading its own job (com.tailscale.derper). Without it, a step that finds another LaunchDaemon running derper fails before changing anything. A job under com.tailscale.derper itself is replaced in place and needs no field. See docs/runbooks/adopting.md.",
        ),
});

const MiddlewareSchema = z.strictObject({
    name: NodeNameSchema.describe("The Middleware's name; unique in its namespace."),
    namespace: NodeNameSchema.describe("The Middleware's namespace."),
    stripPrefix: z
        .strictObject({ prefixes: z.array(UrlPathPrefix).min(1).describe("The path prefixes to strip.") })
        .optional()
        .describe("Traefik's stripPrefix. A middleware sets exactly one of `stripPrefix`, `forwardAuth` and `headers`."),
    forwardAuth: z
        .strictObject({
            address: HttpUrl.describe("The authentication service's URL."),
            trustForwardHeader: z.boolean().optional().describe("Trust the request's X-Forwarded-* headers."),
            authResponseHeaders: z.array(HttpHeaderName).optional().describe("Headers copied from the auth response into the request."),
        })
        .optional()
        .describe("Traefik's forwardAuth."),
    headers: z
        .strictObject({
            accessControlAllowOriginList: z
                .array(z.union([z.literal("*"), HttpUrl], "must be * or an http(s) origin"))
                .optional()
                .describe("CORS: `*` or http(s) origins."),
            accessControlAllowMethods: z.array(HttpHeaderName).optional().describe("CORS: allowed methods."),
            accessControlAllowHeaders: z.array(HttpHeaderName).optional().describe("CORS: allowed request headers."),
            accessControlAllowCredentials: z.boolean().optional().describe("CORS: allow credentials."),
            accessControlMaxAge: z.number().int().min(0).optional().describe("CORS: seconds a preflight result may be cached."),
            customRequestHeaders: z.record(HttpHeaderName, HttpHeaderValue).optional().describe("Headers set on the request."),
            customResponseHeaders: z.record(HttpHeaderName, HttpHeaderValue).optional().describe("Headers set on the response."),
        })
        .optional()
        .describe("Traefik's headers."),
});

const ServicePortSchema = z.strictObject({
    name: K8sPortName.optional().describe("The port's name, shared by the Service and the EndpointSlice; every port needs one."),
    port: PortSchema.describe("The port number."),
    protocol: z.enum(["TCP", "UDP"]).default("TCP").describe("The port's protocol."),
});

const ExternalServiceSchema = z.strictObject({
    name: NodeNameSchema.describe("The Service's name; unique in its namespace."),
    namespace: NodeNameSchema.describe("The Service's namespace."),
    type: z
        .enum(["ExternalName", "headless"])
        .describe("`ExternalName`: a DNS alias. `headless`: EndpointSlices generated from fleet hosts' overlay addresses."),
    externalName: DnsNameSchema.optional().describe("The name an `ExternalName` service aliases; required for that type."),
    hosts: z
        .array(NodeNameSchema)
        .default([])
        .describe("Fleet hosts behind a `headless` service (at least one); each needs an address on the network `cluster.nodeIpFrom` names."),
    ports: z.array(ServicePortSchema).default([]).describe("The Service's ports."),
});

const WorkloadSchema = z.strictObject({
    name: NodeNameSchema.describe("The workload's name; unique per kind in its namespace."),
    namespace: NodeNameSchema.describe("The workload's namespace."),
    kind: z.enum(["Deployment", "DaemonSet", "StatefulSet"]).describe("The workload's kind."),
    image: ImageReference.describe("The container image, e.g. ghcr.io/org/app:1.2.3."),
    hostNetwork: z
        .boolean()
        .default(false)
        .describe("Run in the node's network namespace; refused for Tailscale images, which rewrite the node's routes and iptables."),
});

const EdgeSchema = z.strictObject({
    enabled: z.boolean().default(true).describe("Deploy the cluster edge at all."),
    traefikValues: z
        .record(z.string(), z.unknown())
        .default({})
        .describe("Extra Traefik chart values merged into the HelmChartConfig (the ExternalName flags are always set)."),
    serviceLbNodes: z
        .array(NodeNameSchema)
        .default([])
        .describe("Nodes labelled svccontroller.k3s.cattle.io/enablelb=true (ServiceLB's allow-list); empty means every node may run ServiceLB."),
    middlewares: z.array(MiddlewareSchema).default([]).describe("Traefik Middlewares."),
    externalServices: z.array(ExternalServiceSchema).default([]).describe("Services for things outside the cluster."),
    workloads: z.array(WorkloadSchema).default([]).describe("Extra workloads the program deploys."),
});

const AccessSchema = z.strictObject({
    sshVia: PathSchema.default("nebula").describe(
        "Default SSH path for the program and the generated SSH configs. The environment variable SHORTCIRCUIT_SSH_VIA (set by scripts/ssh-switch.sh) overrides it.",
    ),
    sshTimeoutSeconds: z.number().int().min(1).max(600).default(20).describe("Seconds to wait for an SSH connection before failing the node."),
});

export const FleetSchema = z
    .strictObject({
        sites: z.array(SiteSchema).min(1).describe("The sites the fleet spans."),
        overlays: OverlaysSchema.describe("The two overlay networks every host joins."),
        cluster: ClusterSchema.describe("The K3s cluster. The K3s version, like every pinned version, is in components/versions.ts, not here."),
        access: AccessSchema.default({ sshVia: "nebula", sshTimeoutSeconds: 20 }).describe("How the program reaches hosts."),
        nodes: z.array(NodeSchema).min(1).describe("Every fleet host: K3s servers and agents, and standalone hosts outside the cluster."),
        controlServer: ControlServerSchema.describe("Headscale, its embedded DERP region and a Nebula lighthouse, on a droplet or a fleet host."),
        derpRelays: z.array(DerpRelaySchema).default([]).describe("Further DERP regions, each served by derper on a fleet host."),
        edge: EdgeSchema.default({
            enabled: true,
            traefikValues: {},
            serviceLbNodes: [],
            middlewares: [],
            externalServices: [],
            workloads: [],
        }).describe("The cluster edge: Traefik, ServiceLB, middlewares, Services for outside things, extra workloads."),
    })
    .describe("The fleet, under the one config key `shortcircuit:fleet`. Unknown keys are errors.");

/** The validated fleet: plain data, defaults filled in. */
export type Fleet = z.infer<typeof FleetSchema>;
export type FleetNode = Fleet["nodes"][number];
export type DerpRelayConfig = Fleet["derpRelays"][number];
export type Middleware = Fleet["edge"]["middlewares"][number];
export type ReplicaConfig = NonNullable<Fleet["controlServer"]["replica"]>;
