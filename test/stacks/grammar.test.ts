import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { stringify as stringifyYaml } from "yaml";
import { formatProblem, validateFleet } from "../../stacks/validate";
import { plaintextSecretProblems } from "../../stacks/secrets";
import { rawFleetFromStackFile, readStackFile, stackFileSecrets } from "../../stacks/stackFile";
import { rawFleet, type Raw } from "../support/fixtures";

/*
 * One refusal per class of value that used to escape its place (issue 13): each value is
 * checked against the grammar of the consumer it lands in, and every refusal is one
 * `<config path>: <reason>` line.
 */

const NOW = new Date("2026-11-29T12:00:00Z");

function errorsAfter(mutate: (fleet: Raw) => void): string[] {
    const fleet: Raw = rawFleet("lab");
    mutate(fleet);
    return validateFleet(fleet, { now: NOW })
        .problems.filter((problem) => problem.severity === "error")
        .map(formatProblem);
}

describe("SSH client config injection", () => {
    it("refuses an SSH user with a newline, a host with spaces and a droplet named *", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.nodes[1].ssh = { user: "root\nHost *\n  ProxyCommand sh -c 'touch /tmp/pwned'" };
                fleet.nodes[2].ssh = { host: "10.0.0.1 -oProxyCommand=x" };
                fleet.controlServer.host.name = "*";
            }),
        ).toEqual([
            "fleet.nodes[1].ssh.user: must be a POSIX user name: 1-32 of a-z 0-9 _ - starting with a letter or _",
            "fleet.nodes[2].ssh.host: must be an IPv4 address or a lowercase DNS name",
            "fleet.controlServer.host.name: must be a lowercase DNS label (a-z, 0-9, '-', starting and ending alphanumeric)",
        ]);
    });
});

describe("path traversal through names", () => {
    it("refuses droplet and admin names that would leave hosts/ or land on another host", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.controlServer.host.name = "../../etc";
                fleet.overlays.nebula.admins = [{ name: "../hosts/lab-agent-01", address: "10.68.9.9" }];
            }),
        ).toEqual([
            "fleet.overlays.nebula.admins[0].name: must be a lowercase DNS label (a-z, 0-9, '-', starting and ending alphanumeric)",
            "fleet.controlServer.host.name: must be a lowercase DNS label (a-z, 0-9, '-', starting and ending alphanumeric)",
        ]);
    });

    it("refuses a droplet name whose volume name DigitalOcean would refuse", () => {
        expect(errorsAfter((fleet) => (fleet.controlServer.host.name = `a${"b".repeat(54)}`))).toEqual([
            "fleet.controlServer.host.name: must be at most 54 characters (the volume <name>-headscale is limited to 64)",
        ]);
        expect(errorsAfter((fleet) => (fleet.controlServer.host.name = "1-lighthouse"))).toEqual([
            "fleet.controlServer.host.name: must start with a letter (DigitalOcean volume names do)",
        ]);
    });
});

describe("free text where the consumer has a grammar", () => {
    it("refuses interface names Linux or a shell would not take as one word", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.overlays.tailnet.interface = "tailscale0:1";
                fleet.overlays.nebula.interface = "nebula-interface0";
                fleet.nodes[1].lan.interface = "eth 0";
            }),
        ).toEqual([
            "fleet.overlays.tailnet.interface: must be a Linux interface name: 1-15 of A-Z a-z 0-9 _ . - starting with a letter or digit",
            "fleet.overlays.nebula.interface: must be a Linux interface name: 1-15 of A-Z a-z 0-9 _ . - starting with a letter or digit",
            "fleet.nodes[1].lan.interface: must be a Linux interface name: 1-15 of A-Z a-z 0-9 _ . - starting with a letter or digit",
        ]);
    });

    it("refuses a lighthouse endpoint without a port, a server URL with a path and a prefixV6 outside the ULA", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.nodes[3].nebula.publicEndpoint = "derp-lab.kub0.io";
                fleet.cluster.serverUrl = "https://k3s.lab.kub0.io:6443/api?x=1";
                fleet.overlays.tailnet.prefixV6 = "fd00::/8";
            }),
        ).toEqual([
            "fleet.overlays.tailnet.prefixV6: must lie inside fd7a:115c:a1e0::/48, the only IPv6 range Headscale hands out",
            "fleet.cluster.serverUrl: must be https://<host>:<port> with no path, query or credentials, such as https://k3s.kub0.io:6443",
            "fleet.nodes[3].nebula.publicEndpoint: must be host:port, such as derp-aus.kub0.io:4242 (the port is required)",
        ]);
        expect(errorsAfter((fleet) => (fleet.cluster.serverUrl = "http://k3s.lab.kub0.io:6443"))).toHaveLength(1);
        expect(errorsAfter((fleet) => (fleet.cluster.serverUrl = "https://k3s.lab.kub0.io:6443"))).toEqual([]);
    });

    it("refuses a CA name Nebula would refuse, the same way render and preview do", () => {
        expect(errorsAfter((fleet) => (fleet.overlays.nebula.pki.caName = "shortcircuit "))).toEqual([
            "fleet.overlays.nebula.pki.caName: Nebula CA name must not start or end with whitespace",
        ]);
        expect(errorsAfter((fleet) => (fleet.overlays.nebula.pki.caName = "c".repeat(240)))).toEqual([
            "fleet.overlays.nebula.pki.caName: must be at most 231 bytes of UTF-8 (Nebula's 253, less room for render's throwaway-CA suffix)",
        ]);
    });

    it("refuses taint and label keys and values outside Kubernetes' syntax", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.nodes[1].taints = ["gpu\n=true:NoSchedule", "gpu=true false:NoExecute"];
                fleet.nodes[1].labels = { "bad key": "x", ok: "-leading-dash" };
            }),
        ).toEqual([
            "fleet.nodes[1].taints[0]: taint key must be a Kubernetes qualified name: [prefix/]name, name ≤ 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric",
            "fleet.nodes[1].taints[1]: taint value must be a Kubernetes label value: ≤ 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric",
            'fleet.nodes[1].labels["bad key"]: key must be a Kubernetes qualified name: [prefix/]name, name ≤ 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric',
            "fleet.nodes[1].labels.ok: must be a Kubernetes label value: ≤ 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric",
        ]);
    });

    it("refuses Middleware header names and values that would inject a header", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.edge.middlewares = [
                    { name: "hdr", namespace: "networking", headers: { customResponseHeaders: { "X-A: b": "c", "X-B": "ok\r\nSet-Cookie: s=1" } } },
                ];
            }),
        ).toEqual([
            'fleet.edge.middlewares[0].headers.customResponseHeaders["X-A: b"]: key must be an HTTP header name (RFC 9110 token characters only)',
            'fleet.edge.middlewares[0].headers.customResponseHeaders["X-B"]: must not contain CR, LF or other control characters (they would inject headers)',
        ]);
    });

    it("refuses two Middlewares with one name in one namespace instead of dropping one", () => {
        expect(
            errorsAfter(
                (fleet) => void fleet.edge.middlewares.push({ name: "networking-strip-adsb", namespace: "networking", stripPrefix: { prefixes: ["/x"] } }),
            ),
        ).toEqual(["fleet.edge.middlewares[1].name: Middleware networking/networking-strip-adsb is already declared by fleet.edge.middlewares[0]"]);
    });

    it("refuses a node name longer than a DNS label, in one line naming the path", () => {
        expect(errorsAfter((fleet) => (fleet.nodes[1].name = "n".repeat(300)))).toEqual(["fleet.nodes[1].name: must be at most 63 characters (a DNS label)"]);
    });

    it("refuses a CA issued in the future and a validity that overflows a date", () => {
        expect(errorsAfter((fleet) => (fleet.overlays.nebula.pki.caIssuedOn = "2027-06-01"))).toEqual([
            "fleet.overlays.nebula.pki.caIssuedOn: 2027-06-01 is in the future: Nebula rejects a CA before its notBefore, so no host could connect until then; use today's date or earlier",
        ]);
        expect(errorsAfter((fleet) => (fleet.overlays.nebula.pki.caValidityDays = 1e12))).toEqual([
            "fleet.overlays.nebula.pki.caValidityDays: must be at most 36500 days (a century)",
        ]);
        expect(
            errorsAfter((fleet) => {
                fleet.overlays.nebula.pki.caIssuedOn = "1950-01-01";
                fleet.overlays.nebula.pki.caValidityDays = 36500;
            }),
        ).toEqual([]);
    });

    it("refuses a macOS K3s node, a non-Debian existing control host and systemd on macOS", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.nodes[1].os = "macos";
                fleet.nodes[3].os = "fedora";
                delete fleet.nodes[3].nebula;
                fleet.derpRelays = [];
                fleet.edge.externalServices = [];
                fleet.controlServer.host = { kind: "existing", host: "lab-relay-01" };
            }),
        ).toEqual([
            "fleet.nodes[1].os: lab-agent-01 is a K3s agent on macOS: k3s and its rollout scripts (systemd, /etc/rancher) run only on Linux; make it standalone",
            "fleet.controlServer.host.host: lab-relay-01 runs fedora; the control server's bootstrap installs Headscale with dpkg/apt-get and runs it under systemd, so it needs debian, ubuntu or raspios",
        ]);
        expect(errorsAfter((fleet) => (fleet.nodes[3].os = "macos"))).toEqual([
            "fleet.derpRelays[0].serviceManager: systemd needs a Linux host; lab-relay-01 runs macOS (use launchd)",
        ]);
        expect(errorsAfter((fleet) => (fleet.controlServer.host.image = "fedora-39-x64"))).toEqual([
            "fleet.controlServer.host.image: must be a Debian or Ubuntu image slug (debian-12-x64): the bootstrap installs with apt-get",
        ]);
    });
});

describe("a macOS host's settings (nodes[].macos)", () => {
    const relayOnMac = (fleet: Raw): void => {
        fleet.nodes[3].os = "macos";
        fleet.derpRelays[0].serviceManager = "launchd";
    };

    it("takes an absolute nebula binary path and a launchd label to adopt on a macOS host", () => {
        expect(
            errorsAfter((fleet) => {
                relayOnMac(fleet);
                fleet.nodes[3].macos = { nebulaBinary: "/usr/local/opt/nebula/bin/nebula", adoptNebulaLabel: "homebrew.mxcl.nebula" };
            }),
        ).toEqual([]);
    });

    it("refuses a relative, spaced or climbing binary path and a label that is not a plain name", () => {
        expect(
            errorsAfter((fleet) => {
                relayOnMac(fleet);
                fleet.nodes[3].macos = { nebulaBinary: "bin/nebula", adoptNebulaLabel: "../evil label" };
            }),
        ).toEqual([
            "fleet.nodes[3].macos.nebulaBinary: must be an absolute path of plain segments (A-Z a-z 0-9 . _ @ + -, no . or .. segment), e.g. /opt/homebrew/bin/nebula",
            "fleet.nodes[3].macos.adoptNebulaLabel: must be a launchd label: 1-128 of A-Z a-z 0-9 . _ - starting with a letter or digit (e.g. homebrew.mxcl.nebula)",
        ]);
        for (const nebulaBinary of ["/opt/home brew/nebula", "/opt/../bin/nebula", "/opt/homebrew/bin/", "/opt/$(id)/nebula"]) {
            expect(
                errorsAfter((fleet) => {
                    relayOnMac(fleet);
                    fleet.nodes[3].macos = { nebulaBinary };
                }),
            ).toEqual([
                "fleet.nodes[3].macos.nebulaBinary: must be an absolute path of plain segments (A-Z a-z 0-9 . _ @ + -, no . or .. segment), e.g. /opt/homebrew/bin/nebula",
            ]);
        }
        expect(
            errorsAfter((fleet) => {
                relayOnMac(fleet);
                fleet.nodes[3].macos = { nebulaBinary: "/opt/homebrew/bin/nebula", unknown: true };
            }),
        ).toEqual(['fleet.nodes[3].macos: unknown key "unknown"']);
    });

    it("refuses the settings on a Linux host, and adoption where the host runs no Nebula", () => {
        expect(errorsAfter((fleet) => (fleet.nodes[1].macos = { nebulaBinary: "/usr/bin/nebula" }))).toEqual([
            "fleet.nodes[1].macos: lab-agent-01 runs debian; macos settings apply only to os: macos hosts",
        ]);
        expect(
            errorsAfter((fleet) => {
                relayOnMac(fleet);
                delete fleet.nodes[3].nebula;
                fleet.nodes[3].macos = { adoptNebulaLabel: "homebrew.mxcl.nebula" };
            }),
        ).toEqual(["fleet.nodes[3].macos.adoptNebulaLabel: lab-relay-01 has no nebula membership, so the program runs no Nebula there to take over with"]);
    });
});

describe("overlap with the tailnet's whole address space", () => {
    it("refuses cluster, service, mesh and LAN ranges anywhere in 100.64.0.0/10, not only in the prefix", () => {
        const reason =
            "overlaps 100.64.0.0/10: tailscaled drops every packet from that range that does not arrive on the tailnet interface, whatever the tailnet prefix";
        expect(
            errorsAfter((fleet) => {
                fleet.cluster.clusterCidr = "100.100.0.0/16";
                fleet.cluster.serviceCidr = "100.127.0.0/16";
                fleet.overlays.nebula.network = "100.64.0.0/16";
            }),
        ).toEqual(
            expect.arrayContaining([
                `fleet.cluster.clusterCidr: 100.100.0.0/16 ${reason}`,
                `fleet.cluster.serviceCidr: 100.127.0.0/16 ${reason}`,
                `fleet.overlays.nebula.network: 100.64.0.0/16 ${reason}`,
            ]),
        );
    });
});

describe("messages keep their path and stay on one line", () => {
    it("quotes a label key with a newline in the path instead of splitting the line", () => {
        const errors = errorsAfter((fleet) => (fleet.nodes[1].labels = { "evil\nfleet.fake: injected": "x" }));
        expect(errors).toHaveLength(1);
        expect(errors[0]).toMatch(/^fleet\.nodes\[1\]\.labels\["evil\\nfleet\.fake: injected"\]: key must be a Kubernetes qualified name/);
        expect(errors[0]).not.toContain("\n");
    });

    it("reports schema errors and the guard errors of the sections that parsed in one run", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.nodes[1].ssh = { user: "a b" };
                fleet.cluster.clusterCidr = "10.68.0.0/16";
                fleet.edge.middlewares.push({ ...fleet.edge.middlewares[0] });
            }),
        ).toEqual([
            "fleet.nodes[1].ssh.user: must be a POSIX user name: 1-32 of a-z 0-9 _ - starting with a letter or _",
            "fleet.cluster.clusterCidr: cluster CIDR 10.68.0.0/16 overlaps the Nebula network 10.68.0.0/16 (fleet.overlays.nebula.network): routes for it would shadow pod or service traffic (the table 52 incident)",
        ]);
    });
});

describe("stack files read by render", () => {
    let dir: string;
    beforeEach(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "sc-stackfile-"));
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("refuses a secret key stored in plaintext and accepts one stored as ciphertext", () => {
        const file = path.join(dir, "Pulumi.x.yaml");
        fs.writeFileSync(
            file,
            stringifyYaml({
                config: {
                    "shortcircuit:fleet": rawFleet("lab"),
                    "shortcircuit:k3sToken": "K10-plain",
                    "shortcircuit:derpKey": { secure: "v1:abc" },
                    "shortcircuit:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----",
                },
            }),
        );
        expect(plaintextSecretProblems(stackFileSecrets(readStackFile(file))).map(formatProblem)).toEqual([
            "shortcircuit:k3sToken: must be set with --secret (it is stored in plaintext): pulumi config set --secret shortcircuit:k3sToken <value>",
            "shortcircuit:sshPrivateKey: must be set with --secret (it is stored in plaintext): pulumi config set --secret shortcircuit:sshPrivateKey <value>",
        ]);
    });

    it("reads an unquoted date as Pulumi passes it, and validates it the same", () => {
        const text = fs.readFileSync(path.resolve(__dirname, "../../Pulumi.lab.yaml"), "utf8").replace('caIssuedOn: "2026-11-01"', "caIssuedOn: 2026-11-01");
        const file = path.join(dir, "Pulumi.lab.yaml");
        fs.writeFileSync(file, text);
        const raw: Raw = rawFleetFromStackFile(readStackFile(file));
        expect(raw.overlays.nebula.pki.caIssuedOn).toBe("2026-11-01 00:00:00 +0000 UTC");
        expect(validateFleet(raw, { now: NOW }).fleet?.overlays.nebula.pki.caIssuedOn).toBe("2026-11-01");
        const later = path.join(dir, "Pulumi.later.yaml");
        fs.writeFileSync(later, text.replace("caIssuedOn: 2026-11-01", "caIssuedOn: 2026-11-01T10:00:00Z"));
        expect(validateFleet(rawFleetFromStackFile(readStackFile(later)), { now: NOW }).problems.map(formatProblem)).toEqual([
            "fleet.overlays.nebula.pki.caIssuedOn: must be a date such as 2026-11-01",
        ]);
    });
});
