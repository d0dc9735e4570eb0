import { becomeOf } from "../../components/hostPlan";
import { formatProblem, validateFleet } from "../../stacks/validate";
import { labWithExistingControlHost, rawFleet, type Raw } from "../support/fixtures";

/** Validates the lab stack after `mutate`, returning every problem as `<path>: <reason>`. */
function problemsAfter(mutate: (fleet: Raw) => void, stack: "lab" | "prod" = "lab"): string[] {
    const fleet: Raw = rawFleet(stack);
    mutate(fleet);
    return validateFleet(fleet).problems.map(formatProblem);
}

function errorsAfter(mutate: (fleet: Raw) => void, stack: "lab" | "prod" = "lab"): string[] {
    return problemsAfter(mutate, stack).filter((line) => !line.startsWith("warning: "));
}

const SERVER = 0;
const AGENT_1 = 1;
const AGENT_2 = 2;
const RELAY = 3;

describe("schema errors name the config path", () => {
    it("reports an unknown key, a bad address and a bad CIDR together", () => {
        const errors = errorsAfter((fleet) => {
            fleet.nodes[AGENT_1].tailnet.adress = "100.68.0.99";
            fleet.nodes[AGENT_2].lan.address = "192.168.50.300";
            fleet.cluster.clusterCidr = "10.42.1.0/16";
        });
        expect(errors).toEqual(
            expect.arrayContaining([
                'fleet.nodes[1].tailnet: unknown key "adress"',
                "fleet.nodes[2].lan.address: must be a dotted-quad IPv4 address",
                "fleet.cluster.clusterCidr: must name the network address (host bits zero)",
            ]),
        );
        expect(errors).toHaveLength(3);
    });

    it("rejects a taint that is not key[=value]:Effect", () => {
        expect(errorsAfter((fleet) => (fleet.nodes[AGENT_1].taints = ["amd.com/gpu=true"]))).toEqual([
            "fleet.nodes[1].taints[0]: must be key[=value]:NoSchedule|PreferNoSchedule|NoExecute",
        ]);
    });

    it("rejects the tailscale flannel backend with the reason", () => {
        expect(errorsAfter((fleet) => (fleet.cluster.flannelBackend = "tailscale"))).toEqual([
            "fleet.cluster.flannelBackend: must be vxlan, host-gw, wireguard-native or none (the tailscale backend accepts routes into table 52)",
        ]);
    });

    it("rejects accepting tailnet subnet routes", () => {
        expect(errorsAfter((fleet) => (fleet.overlays.tailnet.acceptRoutes = true))).toEqual([
            "fleet.overlays.tailnet.acceptRoutes: must be false: accepted subnet routes land in table 52 and steal the cluster and service CIDRs",
        ]);
    });
});

describe("MTU guards", () => {
    it("rejects an overlay MTU below 1280", () => {
        expect(errorsAfter((fleet) => (fleet.overlays.nebula.mtu = 1200))).toEqual([
            "fleet.overlays.nebula.mtu: MTU 1200 is below the 1280 floor: SSH and TLS packets stop fitting (the Nebula MTU 1200 lockout)",
        ]);
    });

    it("rejects a LAN MTU below 1280", () => {
        expect(errorsAfter((fleet) => (fleet.nodes[AGENT_2].lan.mtu = 1000))).toEqual([
            "fleet.nodes[2].lan.mtu: MTU 1000 is below the 1280 floor: SSH and TLS packets stop fitting (the Nebula MTU 1200 lockout)",
        ]);
    });

    it("rejects a relay whose overlay MTU differs from the rest of the overlay", () => {
        expect(errorsAfter((fleet) => (fleet.nodes[RELAY].nebula.mtu = 1350))).toEqual([
            "fleet.nodes[3].nebula.mtu: relay host lab-relay-01 has nebula MTU 1350 but the nebula runs at 1300: one MTU per overlay (a relay at 1300 under a 1350 mesh silently dropped TLS certificates)",
        ]);
    });

    it("rejects a host whose tailnet MTU differs, and accepts one that states the same MTU", () => {
        expect(errorsAfter((fleet) => (fleet.nodes[AGENT_1].tailnet.mtu = 1420))).toEqual([
            "fleet.nodes[1].tailnet.mtu: lab-agent-01 has tailnet MTU 1420 but the tailnet runs at 1280: one MTU per overlay (a relay at 1300 under a 1350 mesh silently dropped TLS certificates)",
        ]);
        expect(errorsAfter((fleet) => (fleet.nodes[AGENT_1].tailnet.mtu = 1280))).toEqual([]);
    });
});

describe("network overlap guards", () => {
    it("rejects a cluster CIDR overlapping the tailnet prefix", () => {
        expect(errorsAfter((fleet) => (fleet.cluster.clusterCidr = "100.64.0.0/10"))).toEqual([
            "fleet.cluster.clusterCidr: cluster CIDR 100.64.0.0/10 overlaps the tailnet prefix 100.68.0.0/16 (fleet.overlays.tailnet.prefix): routes for it would shadow pod or service traffic (the table 52 incident)",
        ]);
    });

    it("rejects a service CIDR overlapping the Nebula network", () => {
        expect(errorsAfter((fleet) => (fleet.cluster.serviceCidr = "10.68.128.0/20"))).toEqual([
            "fleet.cluster.serviceCidr: service CIDR 10.68.128.0/20 overlaps the Nebula network 10.68.0.0/16 (fleet.overlays.nebula.network): routes for it would shadow pod or service traffic (the table 52 incident)",
        ]);
    });

    it("rejects a cluster CIDR overlapping a site LAN", () => {
        expect(errorsAfter((fleet) => (fleet.cluster.clusterCidr = "192.168.0.0/16"))).toEqual([
            "fleet.cluster.clusterCidr: cluster CIDR 192.168.0.0/16 overlaps the lab LAN 192.168.50.0/24 (fleet.sites[0].lan): routes for it would shadow pod or service traffic (the table 52 incident)",
        ]);
    });

    it("rejects cluster and service CIDRs overlapping each other", () => {
        expect(errorsAfter((fleet) => (fleet.cluster.serviceCidr = "10.42.128.0/17"))).toEqual([
            "fleet.cluster.serviceCidr: 10.42.128.0/17 overlaps the cluster CIDR 10.42.0.0/16",
        ]);
    });

    it("rejects overlays that overlap each other", () => {
        expect(errorsAfter((fleet) => (fleet.overlays.nebula.network = "100.68.0.0/16"))).toContain(
            "fleet.overlays.nebula.network: 100.68.0.0/16 overlaps the tailnet prefix 100.68.0.0/16 (fleet.overlays.tailnet.prefix)",
        );
    });

    it("rejects a tailnet prefix outside 100.64.0.0/10", () => {
        const errors = errorsAfter((fleet) => {
            fleet.overlays.tailnet.prefix = "100.128.0.0/16";
            for (const node of fleet.nodes) {
                node.tailnet.address = node.tailnet.address.replace(/^100\.68\./, "100.128.");
            }
        });
        expect(errors).toEqual(["fleet.overlays.tailnet.prefix: 100.128.0.0/16 is outside 100.64.0.0/10, the only range Headscale hands out"]);
    });
});

describe("address guards", () => {
    it("rejects an address outside its overlay's network", () => {
        expect(errorsAfter((fleet) => (fleet.nodes[AGENT_1].nebula.address = "10.69.1.21"))).toEqual([
            "fleet.nodes[1].nebula.address: 10.69.1.21 is outside the Nebula network 10.68.0.0/16",
        ]);
        expect(errorsAfter((fleet) => (fleet.nodes[AGENT_1].tailnet.address = "100.69.0.21"))).toEqual([
            "fleet.nodes[1].tailnet.address: 100.69.0.21 is outside the tailnet prefix 100.68.0.0/16",
        ]);
        expect(errorsAfter((fleet) => (fleet.nodes[AGENT_1].lan.address = "192.168.51.21"))).toEqual([
            "fleet.nodes[1].lan.address: 192.168.51.21 is outside the lab LAN 192.168.50.0/24",
        ]);
    });

    it("rejects the network address of an overlay as a host address", () => {
        expect(errorsAfter((fleet) => (fleet.nodes[AGENT_1].nebula.address = "10.68.0.0"))).toEqual([
            "fleet.nodes[1].nebula.address: 10.68.0.0 is the network or broadcast address of the Nebula network 10.68.0.0/16",
        ]);
    });

    it("rejects the same address on two nodes, naming the first owner", () => {
        expect(errorsAfter((fleet) => (fleet.nodes[AGENT_2].nebula.address = "10.68.1.21"))).toEqual([
            "fleet.nodes[2].nebula.address: 10.68.1.21 is a duplicate of lab-agent-01 (fleet.nodes[1].nebula.address)",
        ]);
        expect(errorsAfter((fleet) => (fleet.nodes[AGENT_2].tailnet.address = "100.68.0.11"))).toEqual([
            "fleet.nodes[2].tailnet.address: 100.68.0.11 is a duplicate of lab-server-01 (fleet.nodes[0].tailnet.address)",
        ]);
    });

    it("rejects a node reusing the control server's Nebula address", () => {
        expect(errorsAfter((fleet) => (fleet.nodes[AGENT_2].nebula.address = "10.68.0.1"))).toEqual([
            "fleet.controlServer.nebula.address: 10.68.0.1 is a duplicate of lab-agent-02 (fleet.nodes[2].nebula.address)",
        ]);
    });

    it("rejects a node whose node-ip overlay has no address for it", () => {
        expect(errorsAfter((fleet) => delete fleet.nodes[AGENT_1].tailnet)).toEqual([
            "fleet.nodes[1].tailnet: lab-agent-01 takes its node-ip from the tailnet but has no tailnet address (set fleet.nodes[1].tailnet.address)",
            "fleet.nodes[1].tailnet: lab-agent-01 takes its flannel interface from the tailnet but has no tailnet address (set fleet.nodes[1].tailnet.address)",
        ]);
        expect(
            errorsAfter((fleet) => {
                delete fleet.nodes[AGENT_1].nebula;
                fleet.nodes[AGENT_1].nodeIpFrom = "nebula";
            }),
        ).toEqual(["fleet.nodes[1].nodeIpFrom: lab-agent-01 takes its node-ip from the nebula but has no nebula address (set fleet.nodes[1].nebula.address)"]);
    });

    it("rejects a lighthouse without a public endpoint", () => {
        expect(errorsAfter((fleet) => delete fleet.nodes[RELAY].nebula.publicEndpoint)).toEqual([
            "fleet.nodes[3].nebula.publicEndpoint: lighthouse lab-relay-01 needs a public host:port other hosts can dial",
        ]);
    });
});

describe("cluster membership guards", () => {
    it("rejects a fleet with no genesis server", () => {
        expect(errorsAfter((fleet) => (fleet.nodes[SERVER].genesis = false))).toEqual([
            "fleet.nodes: no genesis server: exactly one server must set genesis: true (it runs cluster-init)",
        ]);
    });

    it("rejects two genesis servers", () => {
        expect(errorsAfter((fleet) => (fleet.nodes[5].genesis = true), "prod")).toEqual([
            "fleet.nodes: 2 genesis servers (toa-fwd-gpu-01, aus-fwd-gpu-01): exactly one may run cluster-init",
        ]);
    });

    it("rejects a genesis that is not a server", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.nodes[SERVER].genesis = false;
                fleet.nodes[AGENT_1].genesis = true;
            }),
        ).toEqual(["fleet.nodes[1].genesis: lab-agent-01 is the genesis but its role is agent; only a server can run cluster-init"]);
    });

    it("warns, without failing, on an even number of etcd servers", () => {
        const fleet: Raw = rawFleet("lab");
        fleet.nodes[AGENT_1].role = "server";
        const result = validateFleet(fleet);
        expect(result.fleet).toBeDefined();
        expect(result.problems.map(formatProblem)).toEqual([
            "warning: fleet.nodes: 2 etcd servers: an even member count tolerates no more failures than 1 and adds a vote that can split",
        ]);
        expect(problemsAfter((raw) => (raw.nodes[6].role = "server"), "prod")).toEqual([
            "warning: fleet.nodes: 4 etcd servers: an even member count tolerates no more failures than 3 and adds a vote that can split",
        ]);
    });

    it("rejects an election timeout under five heartbeats", () => {
        expect(errorsAfter((fleet) => (fleet.cluster.etcd.electionTimeoutMs = 2000))).toEqual([
            "fleet.cluster.etcd.electionTimeoutMs: 2000 ms is under 5 × the 500 ms heartbeat; etcd refuses to start",
        ]);
    });

    it("rejects duplicate node names and unknown sites", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.nodes[AGENT_2].name = "lab-agent-01";
                fleet.nodes[RELAY].site = "nowhere";
            }),
        ).toEqual([
            'fleet.nodes[2].name: duplicate node name "lab-agent-01" (also fleet.nodes[1])',
            'fleet.nodes[3].site: unknown site "nowhere"; declared sites: lab',
        ]);
    });
});

describe("control server and DERP guards", () => {
    it("rejects a DERP region id used twice", () => {
        expect(errorsAfter((fleet) => (fleet.derpRelays[0].regionId = 900))).toEqual([
            "fleet.derpRelays[0].regionId: DERP region id 900 is already used by fleet.controlServer.derp",
        ]);
    });

    it("rejects a DERP region code used twice", () => {
        expect(errorsAfter((fleet) => (fleet.derpRelays[0].regionCode = "labsfo"))).toEqual([
            'fleet.derpRelays[0].regionCode: DERP region code "labsfo" is already used by fleet.controlServer.derp',
        ]);
    });

    it("rejects a MagicDNS base domain that contains the Headscale server name", () => {
        expect(errorsAfter((fleet) => (fleet.controlServer.magicDnsBaseDomain = "lab.kub0.io"))).toEqual([
            "fleet.controlServer.magicDnsBaseDomain: lab.kub0.io contains the Headscale server name hs.lab.kub0.io: MagicDNS would shadow it and clients lose the control server",
        ]);
    });

    it("rejects a relay on an unknown host and launchd on Linux", () => {
        expect(errorsAfter((fleet) => (fleet.derpRelays[0].host = "ghost"))).toEqual(['fleet.derpRelays[0].host: unknown fleet host "ghost"']);
        expect(errorsAfter((fleet) => (fleet.derpRelays[0].serviceManager = "launchd"))).toEqual([
            "fleet.derpRelays[0].serviceManager: launchd needs a macOS host; lab-relay-01 runs debian",
        ]);
    });

    it("rejects a second relay on a host that runs one, and a relay on an existing control server's host", () => {
        const addSecond = (fleet: Raw): void => {
            fleet.derpRelays.push({ ...fleet.derpRelays[0], regionId: 990, regionCode: "labtwo", hostname: "derp-two.lab.kub0.io" });
        };
        expect(errorsAfter(addSecond)).toEqual([
            "fleet.derpRelays[1].host: lab-relay-01 already runs fleet.derpRelays[0]'s derper: one relay per host (both would be its one derper unit or job, on its ports)",
        ]);
        const existing: Raw = labWithExistingControlHost();
        existing.derpRelays[0].host = existing.controlServer.host.host;
        const result = validateFleet(existing, { now: new Date() });
        expect(result.problems.filter((problem) => problem.severity === "error").map(formatProblem)).toEqual([
            `fleet.derpRelays[0].host: lab-control-01 is the control server's host, whose Headscale serves DERP region ${existing.controlServer.derp.regionId} itself: a relay there adds no path and would contend for its ports`,
        ]);
    });

    it("rejects a droplet nobody may SSH to", () => {
        expect(errorsAfter((fleet) => (fleet.controlServer.host.adminCidrs = []))).toEqual([
            "fleet.controlServer.host.adminCidrs: list the CIDRs the program and operators SSH from: the droplet's firewall admits SSH only from these and the overlays, and a rebuilt droplet is reached over its public IP",
        ]);
    });

    it("rejects a DERP region id in the range Tailscale uses for its public regions", () => {
        expect(errorsAfter((fleet) => (fleet.derpRelays[0].regionId = 1))).toEqual([
            "fleet.derpRelays[0].regionId: must be ≥ 900: 1-899 are Tailscale's public regions",
        ]);
    });

    it("rejects a relay without a hostname", () => {
        expect(errorsAfter((fleet) => delete fleet.derpRelays[0].hostname)).toEqual(["fleet.derpRelays[0].hostname: required (string)"]);
    });
});

describe("edge guards", () => {
    it("rejects a Tailscale hostNetwork workload with the reason", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.edge.workloads = [
                    { name: "tailscale", namespace: "tailscale", kind: "DaemonSet", image: "tailscale/tailscale:v1.104.5", hostNetwork: true },
                ];
            }),
        ).toEqual([
            "fleet.edge.workloads[0].hostNetwork: tailscale would run Tailscale with hostNetwork: it rewrites the node's routes and iptables and took nodes off the network",
        ]);
    });

    it("rejects an unnamed service port and a middleware of no kind", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.edge.externalServices[0].ports = [{ port: 8080 }];
                fleet.edge.middlewares.push({ name: "empty", namespace: "networking" });
            }),
        ).toEqual([
            "fleet.edge.middlewares[1]: a middleware sets exactly one of stripPrefix, forwardAuth, headers; empty sets none",
            "fleet.edge.externalServices[0].ports[0].name: every port needs a name that the Service and EndpointSlice share (unnamed ports gave Traefik 'no available server')",
        ]);
    });
});

it("reports every problem at once", () => {
    const errors = errorsAfter((fleet) => {
        fleet.overlays.nebula.mtu = 1200;
        fleet.nodes[AGENT_2].nebula.address = "10.68.1.21";
        fleet.nodes[SERVER].genesis = false;
        fleet.derpRelays[0].regionId = 900;
    });
    expect(errors).toHaveLength(4);
    expect(errors.map((line) => line.split(":")[0])).toEqual([
        "fleet.overlays.nebula.mtu",
        "fleet.nodes[2].nebula.address",
        "fleet.nodes",
        "fleet.derpRelays[0].regionId",
    ]);
});

describe("Nebula guards", () => {
    it("rejects a certificate lifetime longer than the CA's", () => {
        expect(errorsAfter((fleet) => (fleet.overlays.nebula.pki.certValidityDays = 4000))).toEqual([
            "fleet.overlays.nebula.pki.certValidityDays: 4000 days is longer than the CA's 3650: a host certificate must expire before its CA",
        ]);
    });

    it("rejects a renewal window as long as the certificate lifetime", () => {
        expect(errorsAfter((fleet) => (fleet.overlays.nebula.pki.renewBeforeDays = 365))).toEqual([
            "fleet.overlays.nebula.pki.renewBeforeDays: 365 days is not shorter than the 365-day certificate lifetime: every run would reissue",
        ]);
    });

    it("rejects group names Nebula cannot carry", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.nodes[AGENT_1].nebula.groups = ["gpu,fast", "any"];
                fleet.overlays.nebula.adminGroup = " admin";
            }),
        ).toEqual([
            `fleet.overlays.nebula.adminGroup: Nebula group " admin" must not start or end with whitespace (nebula-cert trims it, so such a group could never be reissued)`,
            `fleet.nodes[1].nebula.groups[0]: Nebula group "gpu,fast" must not contain ',' (nebula-cert's -groups flag is comma separated, so the group could never be reissued)`,
            'fleet.nodes[1].nebula.groups[1]: Nebula group "any" must not be "any": a firewall rule `group: any` matches every host, so this group could never be targeted',
        ]);
    });

    it("rejects an admin workstation outside the mesh or reusing a node's address or name", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.overlays.nebula.admins = [
                    { name: "ops-laptop", address: "10.69.0.5" },
                    { name: "lab-agent-01", address: "10.68.1.22" },
                ];
            }),
        ).toEqual([
            "fleet.overlays.nebula.admins[0].address: 10.69.0.5 is outside the Nebula network 10.68.0.0/16",
            "fleet.overlays.nebula.admins[1].address: 10.68.1.22 is a duplicate of lab-agent-02 (fleet.nodes[2].nebula.address)",
            'fleet.overlays.nebula.admins[1].name: "lab-agent-01" is already a fleet node; Nebula names must be unique',
        ]);
    });

    it("rejects a CA issue date that is not a date", () => {
        expect(errorsAfter((fleet) => (fleet.overlays.nebula.pki.caIssuedOn = "last tuesday"))).toEqual([
            "fleet.overlays.nebula.pki.caIssuedOn: must be a date such as 2026-11-01",
        ]);
    });

    it("rejects a control server on an existing host that keeps its own Nebula section", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.controlServer.host = { kind: "existing", host: "lab-relay-01" };
            }),
        ).toEqual([
            // That host is also the lab's relay: both problems at once.
            "fleet.derpRelays[0].host: lab-relay-01 is the control server's host, whose Headscale serves DERP region 900 itself: a relay there adds no path and would contend for its ports",
            "fleet.nodes[3].nebula: lab-relay-01 runs the control server, whose Nebula identity is fleet.controlServer.nebula; remove the node's own nebula section",
        ]);
    });
});

describe("an expired signing CA fails validation (issue 26)", () => {
    it("refuses a generated CA whose validity has ended, naming caIssuedOn", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.overlays.nebula.pki.caIssuedOn = "2010-01-01";
                fleet.overlays.nebula.pki.caValidityDays = 3650;
            }),
        ).toEqual([
            "fleet.overlays.nebula.pki.caIssuedOn: the signing Nebula CA (generation 1) expired at 2019-12-30T00:00:00.000Z: no certificate it signs is valid. Make a new CA sign: caGeneration 2 (docs/runbooks/rotating-the-nebula-ca.md); moving these dates would re-sign this CA under a new fingerprint and split the mesh",
        ]);
    });

    it("names rotation.fromCaIssuedOn when the retiring CA still signs (stage trust)", () => {
        const errors = errorsAfter((fleet) => {
            fleet.overlays.nebula.pki.caGeneration = 2;
            fleet.overlays.nebula.pki.rotation = { from: 1, stage: "trust", fromCaIssuedOn: "2010-01-01", fromCaValidityDays: 365 };
        });
        expect(errors).toEqual([
            expect.stringMatching(/^fleet\.overlays\.nebula\.pki\.rotation\.fromCaIssuedOn: the signing Nebula CA \(generation 1\) expired at 2011-01-01T/),
        ]);
    });

    it("lets an expired retiring CA go once the new one signs (stage sign)", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.overlays.nebula.pki.caGeneration = 2;
                fleet.overlays.nebula.pki.rotation = { from: 1, stage: "sign", fromCaIssuedOn: "2010-01-01", fromCaValidityDays: 365 };
            }),
        ).toEqual([]);
    });
});

describe("fields that state one fact must agree (issue 26)", () => {
    it("refuses a publicIp that is not the adopted reserved IP", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.controlServer.publicIp = "198.51.100.7";
                fleet.controlServer.host.adopt = { dropletId: "123", reservedIp: "198.51.100.8", volumeId: "3f0e8c2a-1b2c-4d5e-8f90-a1b2c3d4e5f6" };
            }),
        ).toEqual([
            "fleet.controlServer.publicIp: 198.51.100.7 is not the adopted reserved IP 198.51.100.8 (fleet.controlServer.host.adopt.reservedIp): every Nebula host would dial the lighthouse at an address it does not answer on; set both to the reserved IP",
        ]);
        expect(
            errorsAfter((fleet) => {
                fleet.controlServer.publicIp = "198.51.100.8";
                fleet.controlServer.host.adopt = { dropletId: "123", reservedIp: "198.51.100.8", volumeId: "3f0e8c2a-1b2c-4d5e-8f90-a1b2c3d4e5f6" };
            }),
        ).toEqual([]);
    });

    it("refuses a publicIp that is not the existing control host's externalIp", () => {
        const fleet = labWithExistingControlHost();
        fleet.controlServer.publicIp = "198.51.100.7";
        fleet.nodes[4].externalIp = "198.51.100.9";
        expect(validateFleet(fleet).problems.map(formatProblem)).toEqual([
            "fleet.controlServer.publicIp: 198.51.100.7 is not lab-control-01's public address 198.51.100.9 (fleet.nodes[4].externalIp), and the control server runs there; set both to the address it answers on",
        ]);
    });

    it("refuses a lighthouse endpoint address that is not the node's externalIp; a name is not compared", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.nodes[RELAY].externalIp = "198.51.100.30";
                fleet.nodes[RELAY].nebula.publicEndpoint = "198.51.100.31:4242";
            }),
        ).toEqual([
            "fleet.nodes[3].nebula.publicEndpoint: dials 198.51.100.31, but lab-relay-01's public address is 198.51.100.30 (fleet.nodes[3].externalIp); set both to the address it answers on",
        ]);
        expect(errorsAfter((fleet) => (fleet.nodes[RELAY].externalIp = "198.51.100.30"))).toEqual([]);
    });

    it("refuses become none for a non-root SSH user, and plans sudo for one by default", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.nodes[AGENT_1].ssh = { user: "admin", become: "none" };
            }),
        ).toEqual([
            "fleet.nodes[1].ssh.become: is none, but admin is not root: every step writes root's files (/etc, the service manager); use sudo (the default for a non-root user) or log in as root",
        ]);
        expect(errorsAfter((fleet) => (fleet.nodes[AGENT_1].ssh = { user: "admin" }))).toEqual([]);
        expect(errorsAfter((fleet) => (fleet.nodes[AGENT_1].ssh = { user: "root", become: "sudo" }))).toEqual([]);
        expect([becomeOf({ user: "root" }), becomeOf({ user: "admin" }), becomeOf({ user: "root", become: "sudo" })]).toEqual(["none", "sudo", "sudo"]);
    });

    it("refuses ssh.via beside ssh.host, which overrides it", () => {
        expect(
            errorsAfter((fleet) => {
                fleet.nodes[AGENT_1].ssh = { via: "nebula", host: "agent-01.lab.example" };
            }),
        ).toEqual(["fleet.nodes[1].ssh.via: is unused: ssh.host (agent-01.lab.example) names the SSH address outright; remove one of the two"]);
    });
});
