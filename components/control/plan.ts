import { framedPayload } from "../remote/payload";
import { delivery, plannedSsh, type Delivery, type PlannedSsh, type Values } from "../hostPlan";
import { planNebulaDelivery, type NebulaIdentityValues } from "../nebula/plan";
import { versions } from "../versions";
import { nodeByName } from "../../stacks/fleet";
import type { Fleet } from "../../stacks/schema";
import { digitalOceanVolumeDevice, headscaleVolumeName, renderCloudInit } from "./files";
import {
    LITESTREAM_FILES,
    LITESTREAM_UNIT,
    renderHeadscaleRestoreDropIn,
    renderLitestreamConfigYaml,
    renderLitestreamEnv,
    renderLitestreamUnit,
    renderRestoreUnit,
} from "./litestream";
import { HEADSCALE_FILES, HEADSCALE_METRICS_PORT, headscaleServerUrl, renderDerpMapYaml, renderHeadscaleConfigYaml, renderHeadscalePolicy } from "./headscale";

/** One firewall rule: the sources of an inbound rule, the destinations of an outbound one. */
export interface FirewallRule {
    protocol: "tcp" | "udp" | "icmp";
    portRange?: string;
    addresses: string[];
}

/** A control server on a DigitalOcean droplet: what ControlDroplet declares. */
export type DropletHostPlan = Extract<ControlHostPlan, { kind: "droplet" }>;

export type ControlHostPlan =
    | {
          kind: "droplet";
          name: string;
          region: string;
          size: string;
          image: string;
          volumeName: string;
          volumeSizeGb: number;
          inbound: FirewallRule[];
          outbound: FirewallRule[];
          /** How the program reaches it: its reserved IP (known only once allocated) as root. */
          ssh: Omit<PlannedSsh, "host">;
          /** Running objects the first `up` imports instead of creating. */
          adopt?: { dropletId: string; reservedIp: string; volumeId: string; firewallId?: string };
      }
    | { kind: "existing"; ssh: PlannedSsh };

/** Headscale with its embedded DERP relay and the SFO3 Nebula lighthouse, on one host. */
export type ControlPlan<V> = ControlPlanCommon<V> &
    (
        | {
              host: DropletHostPlan;
              /** The droplet's user data (secret: it carries the keys): what a built droplet boots with. */
              cloudInit: V;
          }
        | { host: Extract<ControlHostPlan, { kind: "existing" }>; cloudInit?: undefined }
    );

/** A control plan whose host is a droplet: it always carries the droplet's cloud-init. */
export type DropletControlPlan<V> = Extract<ControlPlan<V>, { host: DropletHostPlan }>;

interface ControlPlanCommon<V> {
    /** The host's name on the mesh and in render's tree. */
    name: string;
    hostname: string;
    headscaleUrl: string;
    derpMapYaml: V;
    /** Headscale's files, then Nebula's: each restarts its own service. */
    deliveries: Delivery<V>[];
    bootstrapPayload: string;
    healthPayload: string;
}

export interface ControlIdentityValues<V> {
    noiseKey: V;
    derpKey: V;
    nebula: NebulaIdentityValues<V>;
    nebulaCaCertPem: V;
    /** Relay host → `sha256-raw:<hex>` pin of its self-signed certificate. */
    relayCertNames: Readonly<Record<string, V>>;
    /** The S3 credentials of `controlServer.replica`; required when it is set. */
    replica?: ReplicaCredentials<V>;
}

export interface ReplicaCredentials<V> {
    accessKeyId: V;
    secretAccessKey: V;
}

/** Whether the control server is a droplet the program declares (then the plan carries its cloud-init). */
export function isDropletPlan<V>(plan: ControlPlan<V>): plan is DropletControlPlan<V> {
    return plan.host.kind === "droplet";
}

const ADMIN_SSH_PORT = "22";
const HEALTH_ATTEMPTS = 60;

/** Where the control server runs and how it is reached; pure, so adoption can be checked before anything is declared. */
export function controlHost(fleet: Fleet): ControlHostPlan {
    const control = fleet.controlServer;
    const host = control.host;
    switch (host.kind) {
        case "droplet": {
            const world = ["0.0.0.0/0", "::/0"];
            const overlays = [fleet.overlays.tailnet.prefix, fleet.overlays.nebula.network];
            return {
                kind: "droplet",
                name: host.name,
                region: host.region,
                size: host.size,
                image: host.image,
                volumeName: host.volumeName ?? headscaleVolumeName(host.name),
                volumeSizeGb: host.volumeSizeGb,
                inbound: [
                    { protocol: "tcp", portRange: "443", addresses: world },
                    { protocol: "tcp", portRange: "80", addresses: world },
                    { protocol: "udp", portRange: String(control.derp.stunPort), addresses: world },
                    { protocol: "udp", portRange: String(fleet.overlays.nebula.listenPort), addresses: world },
                    { protocol: "tcp", portRange: ADMIN_SSH_PORT, addresses: [...host.adminCidrs, ...overlays] },
                    { protocol: "icmp", addresses: world },
                ],
                // Headscale fetches DERP maps and ACME certificates, the bootstrap its packages.
                outbound: [
                    { protocol: "tcp", portRange: "1-65535", addresses: world },
                    { protocol: "udp", portRange: "1-65535", addresses: world },
                    { protocol: "icmp", addresses: world },
                ],
                // A new droplet takes a while to answer SSH; a running host does not.
                ssh: { user: "root", port: 22, timeoutSeconds: fleet.access.sshTimeoutSeconds, dialAttempts: 10, become: "none" },
                ...(host.adopt ? { adopt: host.adopt } : {}),
            };
        }
        case "existing": {
            const node = nodeByName(fleet, host.host);
            if (!node) {
                throw new Error(`fleet.controlServer.host.host: ${host.host} is not in the fleet (validation should have refused it)`);
            }
            return { kind: "existing", ssh: plannedSsh(fleet, node) };
        }
    }
}

export function planControlServer<V>(
    fleet: Fleet,
    values: Values<V>,
    name: string,
    nebulaConfig: { configYaml: string; precheckConfigYaml: string },
    ids: ControlIdentityValues<V>,
): ControlPlan<V> {
    const host = controlHost(fleet);
    const relayHosts = Object.keys(ids.relayCertNames).sort();
    const derpMapYaml = values.derive(
        relayHosts.map((relay) => ids.relayCertNames[relay]),
        (names) => renderDerpMapYaml(fleet, Object.fromEntries(relayHosts.map((relay, index) => [relay, names[index]]))),
    );
    const replica = fleet.controlServer.replica;
    if (replica && !ids.replica) {
        throw new Error("fleet.controlServer.replica is set but no replica credentials were given (stacks/check.ts requires them)");
    }
    // Litestream's files first: Headscale's drop-in requires the restore unit they bring.
    const litestream =
        replica && ids.replica
            ? [
                  delivery(values, {
                      role: "litestream",
                      service: { kind: "systemd", unit: LITESTREAM_UNIT },
                      binaryVersion: versions.litestream,
                      secretFiles: [
                          {
                              path: LITESTREAM_FILES.env,
                              mode: 0o600,
                              content: values.derive([ids.replica.accessKeyId, ids.replica.secretAccessKey], ([id, secret]) => renderLitestreamEnv(id, secret)),
                          },
                      ],
                      publicFiles: [
                          { path: LITESTREAM_FILES.config, mode: 0o644, content: values.text(renderLitestreamConfigYaml(replica)) },
                          { path: LITESTREAM_FILES.restoreUnit, mode: 0o644, content: values.text(renderRestoreUnit()) },
                          { path: LITESTREAM_FILES.unit, mode: 0o644, content: values.text(renderLitestreamUnit()) },
                      ],
                  }),
              ]
            : [];
    const deliveries = [
        ...litestream,
        delivery(values, {
            role: "headscale",
            service: { kind: "systemd", unit: "headscale.service" },
            binaryVersion: versions.headscale,
            // Headscale opens its loopback metrics listener only once it has read its config and
            // keys and opened its database: a restart is healthy when that port answers.
            checkPort: HEADSCALE_METRICS_PORT,
            secretFiles: [
                { path: HEADSCALE_FILES.noiseKey, mode: 0o600, content: values.derive([ids.noiseKey], ([key]) => `${key}\n`) },
                { path: HEADSCALE_FILES.derpKey, mode: 0o600, content: values.derive([ids.derpKey], ([key]) => `${key}\n`) },
            ],
            secretOwner: "headscale:headscale",
            publicFiles: [
                { path: HEADSCALE_FILES.config, mode: 0o644, content: values.text(renderHeadscaleConfigYaml(fleet)) },
                { path: HEADSCALE_FILES.policy, mode: 0o644, content: values.text(renderHeadscalePolicy()) },
                { path: HEADSCALE_FILES.derpMap, mode: 0o644, content: derpMapYaml },
                ...(replica ? [{ path: LITESTREAM_FILES.headscaleDropIn, mode: 0o644, content: values.text(renderHeadscaleRestoreDropIn()) }] : []),
            ],
        }),
        planNebulaDelivery(values, {
            ...nebulaConfig,
            caCertPem: ids.nebulaCaCertPem,
            identity: ids.nebula,
            service: { kind: "systemd", interfaceName: fleet.overlays.nebula.interface, binaryVersion: versions.nebula },
        }),
    ];
    const bootstrapParams = (start: boolean): string =>
        framedPayload({
            VOLUME_DEVICE: host.kind === "droplet" ? digitalOceanVolumeDevice(host.volumeName) : "none",
            HEADSCALE_VERSION: versions.headscale,
            NEBULA_VERSION: versions.nebula,
            LITESTREAM_VERSION: replica ? versions.litestream : "none",
            START: start ? "yes" : "no",
        });
    const files = deliveries.flatMap((each) => [...each.publicFiles, ...each.secretFiles]);
    const common: ControlPlanCommon<V> = {
        name,
        hostname: fleet.controlServer.hostname,
        headscaleUrl: headscaleServerUrl(fleet),
        derpMapYaml,
        deliveries,
        bootstrapPayload: bootstrapParams(false),
        healthPayload: framedPayload({ HOSTNAME: fleet.controlServer.hostname, ATTEMPTS: String(HEALTH_ATTEMPTS) }),
    };
    switch (host.kind) {
        case "droplet":
            return {
                ...common,
                host,
                cloudInit: values.derive(
                    files.map((file) => file.content),
                    (contents) =>
                        renderCloudInit(
                            files.map((file, index) => ({ ...file, content: contents[index] })),
                            bootstrapParams(true),
                        ),
                ),
            };
        case "existing":
            return { ...common, host };
    }
}
