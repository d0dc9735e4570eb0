import { parse as parseYaml } from "yaml";
import { renderNebulaConfig, renderNebulaConfigYaml } from "../../../components/nebula/config";
import { nebulaMembers, type NebulaMember } from "../../../stacks/nebulaMembers";
import { renderSshConfig } from "../../../components/access/sshConfig";
import { parseFleet } from "../../../stacks/validate";
import { rawFleet, validFleet, type Raw } from "../../support/fixtures";

const prod = validFleet("prod");
const members = nebulaMembers(prod);
const member = (name: string): NebulaMember => {
    const found = members.find((each) => each.name === name);
    if (!found) {
        throw new Error(`no member ${name}`);
    }
    return found;
};

describe("Nebula membership", () => {
    it("has both lighthouses, every node with a Nebula address, and no duplicates", () => {
        expect(members.filter((each) => each.lighthouse).map((each) => each.name)).toEqual(["shortcircuit-lighthouse-sfo3", "aero"]);
        expect(members).toHaveLength(prod.nodes.length + 1);
        expect(new Set(members.map((each) => each.address)).size).toBe(members.length);
    });

    it("puts every host in its role and site group, K3s nodes in k3s, lighthouses in lighthouse", () => {
        expect(member("toa-fwd-gpu-01")).toMatchObject({ addressWithPrefix: "10.67.1.1/16", groups: ["k3s", "server", "toa"] });
        expect(member("aero")).toMatchObject({ groups: ["aus", "lighthouse", "standalone"], publicEndpoint: "derp-aus.kub0.io:4242" });
        expect(member("shortcircuit-lighthouse-sfo3")).toMatchObject({
            kind: "control-server",
            address: "10.67.0.1",
            groups: ["control-server", "lighthouse"],
            publicEndpoint: "hs.kub0.io:4242",
        });
    });

    it("dials the SFO3 lighthouse by its reserved IP once it is configured", () => {
        const raw: Raw = rawFleet("prod");
        raw.controlServer.publicIp = "203.0.113.7";
        expect(nebulaMembers(parseFleet(raw).fleet)[0].publicEndpoint).toBe("203.0.113.7:4242");
    });

    it("gives admin workstations a member entry in the admin group", () => {
        const raw: Raw = rawFleet("prod");
        raw.overlays.nebula.admins = [{ name: "ops-laptop", address: "10.67.255.10", groups: ["oncall"] }];
        const admin = nebulaMembers(parseFleet(raw).fleet).find((each) => each.name === "ops-laptop");
        expect(admin).toMatchObject({ kind: "admin", groups: ["admin", "oncall"], lighthouse: false });
    });
});

describe("Nebula config.yml", () => {
    it("points a node at both lighthouses, as lighthouse hosts and relays, with the overlay's MTU", () => {
        const config = renderNebulaConfig(prod, members, member("lax-node-01"));
        expect(config).toMatchObject({
            pki: { ca: "/etc/nebula/ca.crt", cert: "/etc/nebula/host.crt", key: "/etc/nebula/host.key" },
            static_host_map: { "10.67.0.1": ["hs.kub0.io:4242"], "10.67.2.1": ["derp-aus.kub0.io:4242"] },
            lighthouse: { am_lighthouse: false, hosts: ["10.67.0.1", "10.67.2.1"] },
            listen: { port: 0 },
            punchy: { punch: true, respond: true },
            relay: { am_relay: false, use_relays: true, relays: ["10.67.0.1", "10.67.2.1"] },
            tun: { dev: "nebula0", mtu: 1300 },
        });
    });

    it("makes lighthouses listen on 4242, act as relays and list no lighthouse hosts", () => {
        const config = renderNebulaConfig(prod, members, member("aero"));
        expect(config).toMatchObject({
            lighthouse: { am_lighthouse: true, hosts: [] },
            listen: { port: 4242 },
            relay: { am_relay: true, relays: [] },
        });
    });

    it("admits only ICMP and SSH from the admin group when Nebula does not carry the cluster", () => {
        expect(renderNebulaConfig(prod, members, member("toa-fwd-gpu-01")).firewall).toEqual({
            outbound: [{ port: "any", proto: "any", host: "any" }],
            inbound: [
                { port: "any", proto: "icmp", group: "admin" },
                { port: 22, proto: "tcp", group: "admin" },
            ],
        });
    });

    it("adds the k3s ports from the k3s group when node-ip or flannel runs over Nebula", () => {
        const raw: Raw = rawFleet("prod");
        raw.cluster.flannelIfaceFrom = "nebula";
        const fleet = parseFleet(raw).fleet;
        const all = nebulaMembers(fleet);
        const server = all.find((each) => each.name === "toa-fwd-gpu-01")!;
        const inbound = (renderNebulaConfig(fleet, all, server).firewall as { inbound: unknown[] }).inbound;
        expect(inbound).toEqual([
            { port: "any", proto: "icmp", group: "admin" },
            { port: 22, proto: "tcp", group: "admin" },
            { port: 6443, proto: "tcp", group: "k3s" },
            { port: 10250, proto: "tcp", group: "k3s" },
            { port: 8472, proto: "udp", group: "k3s" },
            { port: "51820-51821", proto: "udp", group: "k3s" },
            { port: "2379-2380", proto: "tcp", group: "k3s" },
        ]);
        const feeder = all.find((each) => each.name === "aus-adsb-01")!;
        expect((renderNebulaConfig(fleet, all, feeder).firewall as { inbound: unknown[] }).inbound).toHaveLength(2);
    });

    it("serialises through the yaml library and matches the recorded file", () => {
        const text = renderNebulaConfigYaml(prod, members, member("aus-node-01"));
        expect(parseYaml(text)).toEqual(renderNebulaConfig(prod, members, member("aus-node-01")));
        expect(text).toMatchSnapshot();
    });
});

describe("SSH client configs, one per path", () => {
    it("names every host by its node name with that path's address", () => {
        const nebula = renderSshConfig(prod, "nebula");
        const tailnet = renderSshConfig(prod, "tailnet");
        const lan = renderSshConfig(prod, "lan");
        expect(nebula).toContain("Host toa-fwd-gpu-01\n  HostName 10.67.1.1\n  User root\n  Port 22\n  ConnectTimeout 20\n");
        expect(tailnet).toContain("Host toa-fwd-gpu-01\n  HostName 100.67.0.1\n");
        expect(lan).toContain("Host aero\n  HostName 192.168.20.2\n  User admin\n");
        expect(nebula).toContain("Host shortcircuit-lighthouse-sfo3\n  HostName 10.67.0.1\n");
        for (const text of [nebula, tailnet, lan]) {
            expect(text.match(/^Host /gm)).toHaveLength(text === nebula ? prod.nodes.length + 1 : prod.nodes.length);
        }
    });
});
