import { Document } from "yaml";
import type { DerpRelayConfig, Fleet } from "../../stacks/schema";

/*
 * Headscale's config.yaml, its DERP map and policy, as plain objects serialised with the
 * yaml library. Key names follow headscale v0.29 (see ../shared/DESIGN.md).
 */

export const HEADSCALE_DIR = "/etc/headscale";
export const HEADSCALE_STATE_DIR = "/var/lib/headscale";
export const HEADSCALE_FILES = {
    config: `${HEADSCALE_DIR}/config.yaml`,
    derpMap: `${HEADSCALE_DIR}/derp.yaml`,
    policy: `${HEADSCALE_DIR}/policy.hujson`,
    noiseKey: `${HEADSCALE_DIR}/noise_private.key`,
    derpKey: `${HEADSCALE_DIR}/derp_server_private.key`,
    database: `${HEADSCALE_STATE_DIR}/db.sqlite`,
    acmeCache: `${HEADSCALE_STATE_DIR}/cache`,
    socket: "/var/run/headscale/headscale.sock",
} as const;

/** Metrics stay on loopback; /health is served on the main listener. */
export const HEADSCALE_METRICS_PORT = 9090;
export const HEADSCALE_METRICS_LISTEN = `127.0.0.1:${HEADSCALE_METRICS_PORT}`;
export const TAILSCALE_PUBLIC_DERP_MAP = "https://controlplane.tailscale.com/derpmap/default";

export interface HeadscaleConfigOptions {
    /** Where the files live, when not the production paths (tests run headscale in a temp dir). */
    paths?: Partial<Record<keyof typeof HEADSCALE_FILES, string>>;
    /** Overrides listen_addr (tests listen on a namespace address). */
    listenAddr?: string;
    /** Overrides server_url (tests use a test CA and a test host name). */
    serverUrl?: string;
    /** TLS from files instead of Let's Encrypt (tests). */
    tls?: { certPath: string; keyPath: string };
    /** STUN listen address override. */
    stunListenAddr?: string;
}

export function headscaleServerUrl(fleet: Fleet): string {
    return `https://${fleet.controlServer.hostname}`;
}

export function renderHeadscaleConfig(fleet: Fleet, options: HeadscaleConfigOptions = {}): Record<string, unknown> {
    const control = fleet.controlServer;
    const paths = { ...HEADSCALE_FILES, ...options.paths };
    const tls = options.tls
        ? { tls_cert_path: options.tls.certPath, tls_key_path: options.tls.keyPath }
        : {
              tls_letsencrypt_hostname: control.hostname,
              tls_letsencrypt_cache_dir: paths.acmeCache,
              tls_letsencrypt_challenge_type: "HTTP-01",
              tls_letsencrypt_listen: ":http",
          };
    return {
        server_url: options.serverUrl ?? headscaleServerUrl(fleet),
        listen_addr: options.listenAddr ?? "0.0.0.0:443",
        metrics_listen_addr: HEADSCALE_METRICS_LISTEN,
        grpc_listen_addr: "127.0.0.1:50443",
        grpc_allow_insecure: false,
        noise: { private_key_path: paths.noiseKey },
        prefixes: { v4: fleet.overlays.tailnet.prefix, v6: fleet.overlays.tailnet.prefixV6, allocation: "sequential" },
        derp: {
            server: {
                enabled: true,
                region_id: control.derp.regionId,
                region_code: control.derp.regionCode,
                region_name: control.derp.regionName,
                stun_listen_addr: options.stunListenAddr ?? `0.0.0.0:${control.derp.stunPort}`,
                private_key_path: paths.derpKey,
                automatically_add_embedded_derp_region: true,
                // Only nodes of this tailnet may relay through the embedded DERP.
                verify_clients: true,
            },
            urls: control.tailscaleDerpFallback ? [TAILSCALE_PUBLIC_DERP_MAP] : [],
            paths: [paths.derpMap],
            auto_update_enabled: true,
            update_frequency: "1h",
        },
        disable_check_updates: true,
        node: { ephemeral: { inactivity_timeout: "30m" } },
        database: { type: "sqlite", sqlite: { path: paths.database, write_ahead_log: true } },
        ...tls,
        log: { level: "info", format: "text" },
        policy: { mode: "file", path: paths.policy },
        dns: {
            magic_dns: true,
            base_domain: control.magicDnsBaseDomain,
            // Nodes keep their own resolvers; MagicDNS only adds the tailnet names.
            override_local_dns: false,
            nameservers: { global: [] },
        },
        unix_socket: paths.socket,
        unix_socket_permission: "0770",
        logtail: { enabled: false },
    };
}

/**
 * The standalone relays' region entries (the embedded region 900 is added by headscale itself).
 * Region ids are map keys that headscale reads as integers, so they are numbers here: a
 * quoted "901" makes headscale refuse the whole map at start.
 */
export function renderDerpMap(
    fleet: Fleet,
    certNames: Readonly<Record<string, string>> = {},
    publicIps: Readonly<Record<string, string>> = {},
): { regions: Map<number, Record<string, unknown>> } {
    const regions = new Map<number, Record<string, unknown>>();
    for (const relay of fleet.derpRelays) {
        regions.set(relay.regionId, {
            regionid: relay.regionId,
            regioncode: relay.regionCode,
            regionname: relay.regionName,
            nodes: [derpNode(relay, certNames[relay.host], publicIps[relay.host])],
        });
    }
    return { regions };
}

function derpNode(relay: DerpRelayConfig, certName: string | undefined, ipv4: string | undefined): Record<string, unknown> {
    return {
        name: `${relay.regionId}a`,
        regionid: relay.regionId,
        hostname: relay.hostname,
        ...(ipv4 ? { ipv4 } : {}),
        stunport: relay.stunPort,
        derpport: relay.derpPort,
        // A self-signed relay is trusted by pinning its certificate, not by a public CA.
        ...(certName ? { certname: certName } : {}),
    };
}

/**
 * The tailnet policy: every node of the fleet may reach every other, and nothing else is
 * on this tailnet. Headscale reads HuJSON; plain JSON is valid HuJSON.
 */
export function renderHeadscalePolicy(): string {
    return `${JSON.stringify({ acls: [{ action: "accept", src: ["*"], dst: ["*:*"] }] }, null, 2)}\n`;
}

export function toYaml(value: object, header: string): string {
    const document = new Document(value);
    document.commentBefore = ` ${header}`;
    return document.toString({ lineWidth: 0 });
}

export function renderHeadscaleConfigYaml(fleet: Fleet, options: HeadscaleConfigOptions = {}): string {
    return toYaml(renderHeadscaleConfig(fleet, options), "Managed by shortcircuit (Pulumi): Headscale with the embedded DERP relay.");
}

export function renderDerpMapYaml(fleet: Fleet, certNames: Readonly<Record<string, string>> = {}, publicIps: Readonly<Record<string, string>> = {}): string {
    return toYaml(renderDerpMap(fleet, certNames, publicIps), "Managed by shortcircuit (Pulumi): the fleet's own DERP regions.");
}
