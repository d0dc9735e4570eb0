import { z } from "zod";
import {
    calendarDate,
    cloudSlug,
    dnsLabel,
    dnsLabelOf,
    dnsName,
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
    linuxIfName,
    quoteForMessage,
    singleLineText,
    sshUser,
    tailnetV6Prefix,
    urlPathPrefix,
} from "./grammar";
import { isIpv4Address, isIpv4Cidr, isNetworkAddress } from "./net";
import { NEBULA_MAX_NAME_BYTES, nebulaGroupProblem, nebulaNameProblem } from "./nebulaNames";

/*
 * The stack config schema: the shape of `shortcircuit:fleet` in Pulumi.<stack>.yaml.
 * Objects are strict so a misspelt key is an error rather than a silently ignored setting.
 * Cross-field rules (overlaps, duplicates, MTU agreement, genesis) live in guards.ts.
 * Every free-text field has the grammar of the place it lands (grammar.ts), so a value that
 * passes here is safe in every file, shell, path and API it reaches.
 */

export const NodeNameSchema = dnsLabel;
export const DnsNameSchema = dnsName;
export const Ipv4Schema = z.string().refine(isIpv4Address, "must be a dotted-quad IPv4 address");
export const Ipv4CidrSchema = z
    .string()
    .refine(isIpv4Cidr, "must be an IPv4 CIDR such as 10.42.0.0/16")
    .refine((cidr) => !isIpv4Cidr(cidr) || isNetworkAddress(cidr), "must name the network address (host bits zero)");
/** Overlay and interface MTU; the 1280 floor is a guard with its own message, so the schema only bounds sanity. */
export const MtuSchema = z.number().int().min(576).max(9216);
export const PortSchema = z.number().int().min(1).max(65535);

/** Which network a node-level choice (node-ip, flannel-iface, SSH path) is taken from. */
export const PathSchema = z.enum(["tailnet", "nebula", "lan"]);
export type NetworkPath = z.infer<typeof PathSchema>;

const TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/** `key[=value]:Effect`, with the key a qualified name and the value a label value, as the kubelet parses --register-with-taints. */
export const TaintSchema = z.string().superRefine((value, ctx) => {
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
        ctx.addIssue({ code: "custom", message: "taint value must be a Kubernetes label value: ≤ 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric" });
    }
});

/** A Nebula certificate group; the rule lives with the certificate encoder. */
const NebulaGroupSchema = z.string().superRefine((value, ctx) => {
    const problem = nebulaGroupProblem(value);
    if (problem) {
        ctx.addIssue({ code: "custom", message: `Nebula group ${quoteForMessage(value)} ${problem}` });
    }
});

const SiteSchema = z.strictObject({
    /** Short site code used in node names (aus, lax, toa, hnd). */
    name: NodeNameSchema,
    description: singleLineText(200).optional(),
    /** The site's LAN; cluster and service CIDRs must not overlap it. */
    lan: Ipv4CidrSchema,
});

const OverlayAddressSchema = z.strictObject({
    address: Ipv4Schema,
    /** Set only where a host's interface MTU is known to be pinned; it must equal the overlay's MTU. */
    mtu: MtuSchema.optional(),
});

const NebulaMembershipSchema = OverlayAddressSchema.extend({
    /** This host serves as a Nebula lighthouse (and relay). */
    lighthouse: z.boolean().default(false),
    /** Public `host:port` other hosts dial to reach this lighthouse; required for lighthouses. */
    publicEndpoint: hostPort.optional(),
    /** Extra Nebula groups beyond role, site and lighthouse. */
    groups: z.array(NebulaGroupSchema).default([]),
});

const LanSchema = z.strictObject({
    interface: linuxIfName,
    address: Ipv4Schema,
    mtu: MtuSchema.default(1500),
});

const SshSchema = z.strictObject({
    user: sshUser.default("root"),
    port: PortSchema.default(22),
    /** Which network the program's SSH connections use; defaults to `access.sshVia`. */
    via: PathSchema.optional(),
    /** An explicit address or name, overriding the address on `via`. */
    host: hostName.optional(),
});

export const NodeRoleSchema = z.enum(["server", "agent", "standalone"]);
export type NodeRole = z.infer<typeof NodeRoleSchema>;

const NodeSchema = z.strictObject({
    name: NodeNameSchema,
    site: NodeNameSchema,
    /** server/agent run K3s; standalone hosts (DERP relay, feeders) are fleet members outside the cluster. */
    role: NodeRoleSchema,
    /** The server that bootstraps etcd with `cluster-init`; exactly one. */
    genesis: z.boolean().default(false),
    arch: z.enum(["amd64", "arm64"]),
    os: z.enum(["debian", "ubuntu", "raspios", "fedora", "macos"]),
    /** Hardware note (e.g. "rpi5", "framework-desktop", "mac-mini"); informational. */
    hardware: singleLineText(100).optional(),
    ssh: SshSchema.default({ user: "root", port: 22 }),
    lan: LanSchema,
    tailnet: OverlayAddressSchema.optional(),
    nebula: NebulaMembershipSchema.optional(),
    /** Public address advertised as `node-external-ip`. */
    externalIp: Ipv4Schema.optional(),
    /** Per-node override of `cluster.nodeIpFrom`. */
    nodeIpFrom: PathSchema.optional(),
    /** Per-node override of `cluster.flannelIfaceFrom`. */
    flannelIfaceFrom: PathSchema.optional(),
    taints: z.array(TaintSchema).default([]),
    labels: z.record(k8sQualifiedName, k8sLabelValue).default({}),
});
export type NodeConfig = z.infer<typeof NodeSchema>;

/** render's throwaway CA is named `<caName> (throwaway render CA)`; see nebulaIssuance.ts. */
export const THROWAWAY_CA_SUFFIX = " (throwaway render CA)";
const CA_NAME_MAX_BYTES = NEBULA_MAX_NAME_BYTES - Buffer.byteLength(THROWAWAY_CA_SUFFIX, "utf8");
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
    /** The CA being retired: "existing" (the stack secrets) or the generation number of a CA the program made. */
    from: z.union([z.literal("existing"), CaGenerationSchema], 'must be "existing" or the generation number (1, 2, …) of a CA the program made'),
    stage: z.enum(["trust", "sign"]),
    /** The retiring generation's caIssuedOn, when the new one moves it (default: pki.caIssuedOn); it must stay what it was. */
    fromCaIssuedOn: calendarDate.optional(),
    /** The retiring generation's caValidityDays, when the new one changes it (default: pki.caValidityDays). */
    fromCaValidityDays: z.number().int().min(30).max(MAX_VALIDITY_DAYS, `must be at most ${MAX_VALIDITY_DAYS} days (a century)`).optional(),
});

const NebulaPkiSchema = z.strictObject({
    /** "existing": the CA from the stack secrets shortcircuit:nebulaCaCert and shortcircuit:nebulaCaKey signs host certificates. */
    ca: NebulaCaSourceSchema.default("generated"),
    /** Which CA the program makes when `ca` is "generated"; raise it (with a rotation) to replace the CA. */
    caGeneration: CaGenerationSchema.default(1),
    rotation: NebulaRotationSchema.optional(),
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
        .default("shortcircuit"),
    /** A generated CA certificate's notBefore (UTC date); required while the program makes a CA. Changing it re-signs the CA with the same key. */
    caIssuedOn: calendarDate.optional(),
    /** Bounded so notBefore + validity stays a real date (guards check the sum). */
    caValidityDays: z.number().int().min(30).max(MAX_VALIDITY_DAYS, `must be at most ${MAX_VALIDITY_DAYS} days (a century)`).default(3650),
    /** Host certificates' lifetime; must fit inside the CA's. */
    certValidityDays: z.number().int().min(1).max(MAX_VALIDITY_DAYS, `must be at most ${MAX_VALIDITY_DAYS} days (a century)`).default(365),
    /** A certificate is reissued once it is this close to expiry; preview warns inside the window. */
    renewBeforeDays: z.number().int().min(1).max(MAX_VALIDITY_DAYS, `must be at most ${MAX_VALIDITY_DAYS} days (a century)`).default(30),
});

const NebulaAdminSchema = z.strictObject({
    name: NodeNameSchema,
    address: Ipv4Schema,
    groups: z.array(NebulaGroupSchema).default([]),
});

const OverlaysSchema = z.strictObject({
    tailnet: z.strictObject({
        /** Headscale `prefixes.v4`; must sit inside 100.64.0.0/10. */
        prefix: Ipv4CidrSchema,
        /** Headscale `prefixes.v6`; inside fd7a:115c:a1e0::/48. */
        prefixV6: tailnetV6Prefix.default("fd7a:115c:a1e0::/48"),
        interface: linuxIfName.default("tailscale0"),
        /** One MTU for every host on the tailnet (tailscaled uses 1280). */
        mtu: MtuSchema,
        /** Nodes join with --accept-routes=false: subnet routes would land in table 52 and shadow the cluster CIDRs. */
        acceptRoutes: z.literal(false, "must be false: accepted subnet routes land in table 52 and steal the cluster and service CIDRs").default(false),
    }),
    nebula: z.strictObject({
        network: Ipv4CidrSchema,
        interface: linuxIfName.default("nebula0"),
        /** One MTU for every host and relay on the mesh. */
        mtu: MtuSchema,
        listenPort: PortSchema.default(4242),
        pki: NebulaPkiSchema,
        /** Nebula group whose members may reach every host by ICMP and SSH (the backup control path). */
        adminGroup: NebulaGroupSchema.default("admin"),
        /** Operator workstations on the mesh: they get a certificate in the admin group and a config. */
        admins: z.array(NebulaAdminSchema).default([]),
    }),
});

const EtcdSchema = z.strictObject({
    heartbeatIntervalMs: z.number().int().positive().default(500),
    electionTimeoutMs: z.number().int().positive().default(5000),
});

const ClusterSchema = z.strictObject({
    name: NodeNameSchema,
    clusterCidr: Ipv4CidrSchema.default("10.42.0.0/16"),
    serviceCidr: Ipv4CidrSchema.default("10.43.0.0/16"),
    flannelBackend: z
        .enum(["vxlan", "host-gw", "wireguard-native", "none"], {
            error: "must be vxlan, host-gw, wireguard-native or none (the tailscale backend accepts routes into table 52)",
        })
        .default("vxlan"),
    /** Which overlay supplies every node's `node-ip` unless the node overrides it. */
    nodeIpFrom: PathSchema,
    /** Which interface carries flannel unless the node overrides it. */
    flannelIfaceFrom: PathSchema,
    etcd: EtcdSchema.default({ heartbeatIntervalMs: 500, electionTimeoutMs: 5000 }),
    /** DNS names for the API server; added to every server's `tls-san`. */
    apiDnsNames: z.array(DnsNameSchema).default([]),
    /** Server URL joining nodes use; defaults to the genesis server's node-ip on port 6443. */
    serverUrl: httpsOrigin.optional(),
    /** Seconds a restarted node has to become Ready (servers: and etcd healthy) before it is rolled back. */
    readyTimeoutSeconds: z.number().int().min(5).max(3600).default(300),
    /**
     * The cluster does not exist yet: roll the genesis first, then the other servers, then the
     * agents, since nothing can join before the genesis runs. Set false once it is up.
     */
    bootstrap: z.boolean().default(false),
    /** Packaged components to disable on every server (all servers must agree). */
    disable: z.array(z.enum(["coredns", "servicelb", "traefik", "local-storage", "metrics-server", "runtimes"])).default([]),
});

const DerpRegionSchema = z.strictObject({
    regionId: z.number().int().min(900, "must be ≥ 900: 1-899 are Tailscale's public regions").max(999),
    regionCode: z.string().regex(/^[a-z0-9-]{2,16}$/, "must be a short lowercase code"),
    regionName: singleLineText(64),
    stunPort: PortSchema.default(3478),
});

const DropletSchema = z.strictObject({
    kind: z.literal("droplet"),
    /**
     * A DNS label: it names the droplet, a directory under render's hosts/, the Nebula host, an
     * SSH Host and (with -headscale) the volume, whose device path reaches the bootstrap shell.
     * DigitalOcean volume names are ≤ 64 characters and start with a letter.
     */
    name: dnsLabelOf(64 - "-headscale".length, "the volume <name>-headscale is limited to 64").refine(
        (value) => !/^[0-9]/.test(value),
        "must start with a letter (DigitalOcean volume names do)",
    ),
    region: z.string().regex(/^[a-z]{3}\d$/, "must be a DigitalOcean region slug such as sfo3"),
    size: cloudSlug,
    /** The bootstrap script installs with dpkg/apt-get, so only Debian-family images can serve. */
    image: cloudSlug.regex(/^(debian|ubuntu)-/, "must be a Debian or Ubuntu image slug (debian-12-x64): the bootstrap installs with apt-get"),
    volumeSizeGb: z.number().int().min(1).default(1),
    /**
     * The volume holding Headscale's database; default `<name>-headscale`. Set it when adopting a
     * volume named otherwise (DigitalOcean cannot rename one). Its name is also its device path.
     */
    volumeName: z
        .string()
        .regex(/^[a-z][a-z0-9-]{0,62}[a-z0-9]$/, "must be a DigitalOcean volume name: lowercase letters, digits and -, starting with a letter, at most 64")
        .optional(),
    /** CIDRs allowed to SSH to the droplet from the internet (the overlays are always allowed). */
    adminCidrs: z.array(Ipv4CidrSchema).default([]),
    /**
     * The running objects to adopt on the first `up` (Pulumi import) instead of creating new
     * ones: the same public address, the same Headscale database. Inert once they are in state.
     */
    adopt: z
        .strictObject({
            dropletId: z.string().regex(/^[1-9][0-9]{0,18}$/, "must be the droplet's numeric id (doctl compute droplet list)"),
            reservedIp: Ipv4Schema,
            volumeId: z
                .string()
                .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, "must be the volume's id, a UUID (doctl compute volume list)"),
            firewallId: z
                .string()
                .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, "must be the firewall's id, a UUID (doctl compute firewall list)")
                .optional(),
        })
        .optional(),
});

const ExistingControlHostSchema = z.strictObject({
    kind: z.literal("existing"),
    /** A `standalone` node in `nodes` that runs Headscale instead of a droplet. */
    host: NodeNameSchema,
});

const ControlServerSchema = z.strictObject({
    /** Headscale's public name; server_url is https://<hostname>. */
    hostname: DnsNameSchema,
    magicDnsBaseDomain: DnsNameSchema,
    derp: DerpRegionSchema,
    /** The lighthouse's Nebula address (a droplet has no entry in `nodes`). */
    nebula: z.strictObject({ address: Ipv4Schema, mtu: MtuSchema.optional() }),
    /** Public address of the droplet when already known (reserved IP); otherwise taken from state. */
    publicIp: Ipv4Schema.optional(),
    /** Include Tailscale's public DERP map as a fallback. */
    tailscaleDerpFallback: z.boolean().default(false),
    host: z.discriminatedUnion("kind", [DropletSchema, ExistingControlHostSchema]),
});

const DerpRelaySchema = DerpRegionSchema.extend({
    /** The fleet host (a `nodes` entry) that runs derper. */
    host: NodeNameSchema,
    hostname: DnsNameSchema,
    derpPort: PortSchema.default(443),
    serviceManager: z.enum(["systemd", "launchd"]),
    certMode: z.enum(["letsencrypt", "self-signed"]),
});

const MiddlewareSchema = z.strictObject({
    name: NodeNameSchema,
    namespace: NodeNameSchema,
    stripPrefix: z.strictObject({ prefixes: z.array(urlPathPrefix).min(1) }).optional(),
    forwardAuth: z
        .strictObject({
            address: httpUrl,
            trustForwardHeader: z.boolean().optional(),
            authResponseHeaders: z.array(httpHeaderName).optional(),
        })
        .optional(),
    headers: z
        .strictObject({
            accessControlAllowOriginList: z.array(z.union([z.literal("*"), httpUrl], "must be * or an http(s) origin")).optional(),
            accessControlAllowMethods: z.array(httpHeaderName).optional(),
            accessControlAllowHeaders: z.array(httpHeaderName).optional(),
            accessControlAllowCredentials: z.boolean().optional(),
            accessControlMaxAge: z.number().int().min(0).optional(),
            customRequestHeaders: z.record(httpHeaderName, httpHeaderValue).optional(),
            customResponseHeaders: z.record(httpHeaderName, httpHeaderValue).optional(),
        })
        .optional(),
});

const ServicePortSchema = z.strictObject({
    name: k8sPortName.optional(),
    port: PortSchema,
    protocol: z.enum(["TCP", "UDP"]).default("TCP"),
});

const ExternalServiceSchema = z.strictObject({
    name: NodeNameSchema,
    namespace: NodeNameSchema,
    /** ExternalName: a DNS alias. headless: EndpointSlices generated from fleet hosts' overlay addresses. */
    type: z.enum(["ExternalName", "headless"]),
    externalName: DnsNameSchema.optional(),
    /** Fleet hosts behind a headless service. */
    hosts: z.array(NodeNameSchema).default([]),
    ports: z.array(ServicePortSchema).default([]),
});

const WorkloadSchema = z.strictObject({
    name: NodeNameSchema,
    namespace: NodeNameSchema,
    kind: z.enum(["Deployment", "DaemonSet", "StatefulSet"]),
    image: imageReference,
    hostNetwork: z.boolean().default(false),
});

const EdgeSchema = z.strictObject({
    enabled: z.boolean().default(true),
    /** Extra Traefik chart values merged into the HelmChartConfig (the ExternalName flags are always set). */
    traefikValues: z.record(z.string(), z.unknown()).default({}),
    /** Nodes labelled svccontroller.k3s.cattle.io/enablelb=true; empty means every node may run ServiceLB. */
    serviceLbNodes: z.array(NodeNameSchema).default([]),
    middlewares: z.array(MiddlewareSchema).default([]),
    externalServices: z.array(ExternalServiceSchema).default([]),
    /** Extra workloads the program deploys; checked against the hostNetwork Tailscale rule. */
    workloads: z.array(WorkloadSchema).default([]),
});

const AccessSchema = z.strictObject({
    /** Default SSH path for the program and the generated SSH configs. */
    sshVia: PathSchema.default("nebula"),
    /** Seconds to wait for an SSH connection before failing the node. */
    sshTimeoutSeconds: z.number().int().min(1).max(600).default(20),
});

export const FleetSchema = z.strictObject({
    sites: z.array(SiteSchema).min(1),
    overlays: OverlaysSchema,
    cluster: ClusterSchema,
    access: AccessSchema.default({ sshVia: "nebula", sshTimeoutSeconds: 20 }),
    nodes: z.array(NodeSchema).min(1),
    controlServer: ControlServerSchema,
    derpRelays: z.array(DerpRelaySchema).default([]),
    edge: EdgeSchema.default({
        enabled: true,
        traefikValues: {},
        serviceLbNodes: [],
        middlewares: [],
        externalServices: [],
        workloads: [],
    }),
});

/** The validated fleet: plain data, defaults filled in. */
export type Fleet = z.infer<typeof FleetSchema>;
export type FleetNode = Fleet["nodes"][number];
export type DerpRelay = Fleet["derpRelays"][number];
export type ControlServer = Fleet["controlServer"];
export type Middleware = Fleet["edge"]["middlewares"][number];
export type ExternalService = Fleet["edge"]["externalServices"][number];
