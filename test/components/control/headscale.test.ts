import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parsePlist } from "plist";
import { parse as parseYaml } from "yaml";
import { throwawayPlan } from "../../../scripts/render/throwawayPlan";
import { isHostPath, parsePayload } from "../../../components/remote/payload";
import { remoteScript } from "../../../components/remote/scripts";
import { derpCertName, derperArgs, renderDerperPlist, renderDerperUnit } from "../../../components/derp/derper";
import { renderDerpMap, renderDerpMapYaml, renderHeadscaleConfig, renderHeadscaleConfigYaml } from "../../../components/control/headscale";
import { versions } from "../../../components/versions";
import { validFleet } from "../../support/fixtures";

const prod = validFleet("prod");
const lab = validFleet("lab");

describe("Headscale config.yaml", () => {
    it("has the keys headscale v0.29 reads, with the fleet's values", () => {
        const config = renderHeadscaleConfig(prod);
        expect(config).toMatchObject({
            server_url: "https://hs.kub0.io",
            listen_addr: "0.0.0.0:443",
            noise: { private_key_path: "/etc/headscale/noise_private.key" },
            prefixes: { v4: "100.67.0.0/16", v6: "fd7a:115c:a1e0::/48" },
            derp: {
                server: {
                    enabled: true,
                    region_id: 900,
                    region_code: "sfo3",
                    region_name: "San Francisco",
                    stun_listen_addr: "0.0.0.0:3478",
                    private_key_path: "/etc/headscale/derp_server_private.key",
                    automatically_add_embedded_derp_region: true,
                    verify_clients: true,
                },
                paths: ["/etc/headscale/derp.yaml"],
                urls: ["https://controlplane.tailscale.com/derpmap/default"],
            },
            database: { type: "sqlite", sqlite: { path: "/var/lib/headscale/db.sqlite" } },
            dns: { magic_dns: true, base_domain: "ts.kub0.io" },
            policy: { mode: "file", path: "/etc/headscale/policy.hujson" },
            tls_letsencrypt_hostname: "hs.kub0.io",
        });
    });

    it("lists Tailscale's public DERP map only when the fallback is configured", () => {
        expect((renderHeadscaleConfig(lab).derp as { urls: string[] }).urls).toEqual([]);
    });

    it("lets a test host move paths, listener and TLS without touching anything else", () => {
        const moved = renderHeadscaleConfig(lab, {
            paths: { database: "/tmp/t/db.sqlite" },
            listenAddr: "10.99.0.1:8443",
            serverUrl: "https://hs.test:8443",
            tls: { certPath: "/tmp/t/tls.crt", keyPath: "/tmp/t/tls.key" },
        });
        expect(moved).toMatchObject({ listen_addr: "10.99.0.1:8443", server_url: "https://hs.test:8443", tls_cert_path: "/tmp/t/tls.crt" });
        expect(moved).not.toHaveProperty("tls_letsencrypt_hostname");
        expect((moved.database as { sqlite: { path: string } }).sqlite.path).toBe("/tmp/t/db.sqlite");
        expect(moved.prefixes).toEqual(renderHeadscaleConfig(lab).prefixes);
    });

    it("serialises through the yaml library", () => {
        expect(parseYaml(renderHeadscaleConfigYaml(prod))).toEqual(renderHeadscaleConfig(prod));
    });
});

describe("DERP map", () => {
    it("describes the Austin relay as region 901 aus on the default ports", () => {
        expect(renderDerpMap(prod)).toEqual({
            regions: new Map([
                [
                    901,
                    {
                        regionid: 901,
                        regioncode: "aus",
                        regionname: "Austin",
                        nodes: [{ name: "901a", regionid: 901, hostname: "derp-aus.kub0.io", stunport: 3478, derpport: 443 }],
                    },
                ],
            ]),
        });
        // Headscale reads region ids as integers: the key must not be quoted.
        expect(renderDerpMapYaml(prod)).toMatch(/^regions:\n {2}901:\n/m);
    });

    it("pins a self-signed relay by the sha256 of its certificate", () => {
        const pem = readFileSync(join(__dirname, "../../fixtures/mock-self-signed.crt"), "utf8");
        const name = derpCertName(pem);
        expect(name).toMatch(/^sha256-raw:[0-9a-f]{64}$/);
        const map = renderDerpMap(lab, { "lab-relay-01": name });
        expect((map.regions.get(901)?.nodes as { certname?: string }[])[0].certname).toBe(name);
    });
});

describe("derper", () => {
    it("verifies clients against Headscale with fail-open off and serves STUN", () => {
        const relay = prod.derpRelays[0];
        expect(derperArgs(prod, relay)).toEqual([
            "-c",
            "/var/lib/derper/derper.key",
            "-a",
            ":443",
            "-hostname",
            "derp-aus.kub0.io",
            "-certmode",
            "letsencrypt",
            "-certdir",
            "/var/lib/derper/certs",
            "-http-port",
            "80",
            "-stun",
            "-stun-port",
            "3478",
            "-verify-client-url",
            "https://hs.kub0.io/verify",
            "-verify-client-url-fail-open=false",
        ]);
        expect(derperArgs(lab, lab.derpRelays[0])).toEqual(expect.arrayContaining(["-certmode", "manual", "-http-port", "-1"]));
    });

    it("runs under launchd on macOS and systemd elsewhere", () => {
        const job = parsePlist(renderDerperPlist(prod, prod.derpRelays[0])) as { Label: string; ProgramArguments: string[]; KeepAlive: boolean };
        expect(job.Label).toBe("com.tailscale.derper");
        expect(job.ProgramArguments[0]).toBe(`/usr/local/lib/derper/${versions.tailscale}/derper`);
        expect(job.ProgramArguments).toContain("-verify-client-url-fail-open=false");
        expect(job.KeepAlive).toBe(true);
        expect(renderDerperUnit(lab, lab.derpRelays[0])).toContain(
            `ExecStart=/usr/local/lib/derper/${versions.tailscale}/derper -c /var/lib/derper/derper.key -a :443 -hostname derp-lab.kub0.io -certmode manual`,
        );
    });
});

describe("the droplet's cloud-init", () => {
    const { plan } = throwawayPlan(prod, { now: new Date("2026-11-22T00:00:00Z"), pkiSeedHex: "3c".repeat(32) });
    const text = plan.control.cloudInit as string;
    const config = parseYaml(text) as { write_files: { path: string; content: string; permissions: string }[]; runcmd: string[][] };
    const byPath = Object.fromEntries(config.write_files.map((file) => [file.path, file]));

    it("is cloud-config YAML that writes every file with its mode", () => {
        expect(text.startsWith("#cloud-config\n")).toBe(true);
        expect(Object.keys(byPath).sort()).toEqual(
            [
                "/etc/headscale/config.yaml",
                "/etc/headscale/derp.yaml",
                "/etc/headscale/derp_server_private.key",
                "/etc/headscale/noise_private.key",
                "/etc/headscale/policy.hujson",
                "/etc/nebula/ca.crt",
                "/etc/nebula/config.yml",
                "/etc/nebula/host.crt",
                "/etc/nebula/host.key",
                "/etc/systemd/system/nebula.service",
                "/etc/litestream.yml",
                "/etc/default/litestream",
                "/etc/systemd/system/litestream.service",
                "/etc/systemd/system/headscale-restore.service",
                "/etc/systemd/system/headscale.service.d/shortcircuit-restore.conf",
                "/etc/shortcircuit/bootstrap.params",
                "/usr/local/sbin/shortcircuit-bootstrap",
            ].sort(),
        );
        expect(byPath["/etc/headscale/noise_private.key"].permissions).toBe("0600");
        expect(byPath["/etc/headscale/noise_private.key"].content).toMatch(/^privkey:[0-9a-f]{64}\n$/);
        expect(byPath["/etc/nebula/host.key"].permissions).toBe("0600");
        expect(byPath["/etc/default/litestream"].permissions).toBe("0600");
        expect(parseYaml(byPath["/etc/headscale/config.yaml"].content)).toEqual(renderHeadscaleConfig(prod));
    });

    it("lays down exactly the files, modes and contents the SSH steps deliver to the control host", () => {
        const overSsh = plan.control.deliveries
            .flatMap((delivery) => [...parsePayload(delivery.payloads.secret).files, ...parsePayload(delivery.payloads.public).files])
            .filter((file) => isHostPath(file.target));
        const fromCloudInit = config.write_files
            .filter((file) => !file.path.startsWith("/usr/local/sbin/") && !file.path.startsWith("/etc/shortcircuit/"))
            .map((file) => ({ target: file.path, mode: parseInt(file.permissions, 8), content: file.content }));
        const sorted = (list: { target: string }[]): { target: string }[] => [...list].sort((a, b) => (a.target < b.target ? -1 : 1));
        expect(sorted(fromCloudInit)).toEqual(sorted(overSsh));
    });

    it("runs the same bootstrap as the SSH step, with the volume device and pinned versions as parameters", () => {
        expect(config.runcmd).toEqual([["sh", "-c", "exec /usr/local/sbin/shortcircuit-bootstrap < /etc/shortcircuit/bootstrap.params"]]);
        expect(byPath["/usr/local/sbin/shortcircuit-bootstrap"].content).toBe(`#!/usr/bin/env bash\n${remoteScript("control/bootstrap.sh")}`);
        expect(parsePayload(byPath["/etc/shortcircuit/bootstrap.params"].content).params).toEqual({
            VOLUME_DEVICE: "/dev/disk/by-id/scsi-0DO_Volume_shortcircuit-lighthouse-sfo3-headscale",
            HEADSCALE_VERSION: "v0.29.1",
            NEBULA_VERSION: "v1.9.7",
            LITESTREAM_VERSION: "v0.5.18",
            START: "yes",
        });
        expect(parsePayload(plan.control.bootstrapPayload).params.START).toBe("no");
    });
});
