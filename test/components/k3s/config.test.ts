import { parse as parseYaml } from "yaml";
import { renderK3sConfig, renderK3sConfigYaml, serverTlsSans } from "../../../components/k3s/config";
import { k3sNodes, nodeByName, type K3sNodeConfig } from "../../../stacks/fleet";
import { parseFleet } from "../../../stacks/validate";
import { rawFleet, validFleet, type Raw } from "../../support/fixtures";

const prod = validFleet("prod");
const node = (name: string): K3sNodeConfig => nodeByName(prod, name) as K3sNodeConfig;

describe("k3s config.yaml for the prod fleet", () => {
    it("gives the genesis cluster-init, the cluster settings, etcd tuning and a tls-san on every overlay", () => {
        expect(renderK3sConfig(prod, node("toa-fwd-gpu-01"))).toEqual({
            "node-name": "toa-fwd-gpu-01",
            "node-ip": ["100.67.0.1"],
            "flannel-iface": "tailscale0",
            "token-file": "/etc/rancher/k3s/cluster-token",
            "cluster-init": true,
            "cluster-cidr": ["10.42.0.0/16"],
            "service-cidr": ["10.43.0.0/16"],
            "flannel-backend": "vxlan",
            "tls-san": ["100.67.0.1", "10.67.1.1", "192.168.10.11", "k3s.kub0.io"],
            "etcd-arg": ["heartbeat-interval=500", "election-timeout=5000"],
            "node-taint": ["amd.com/gpu=true:NoSchedule"],
            "node-label": ["topology.kubernetes.io/region=toa", "amd.com/gpu=true"],
        });
    });

    it("points joining servers at the genesis and gives them their own SANs and no cluster-init", () => {
        const config = renderK3sConfig(prod, node("aus-fwd-gpu-01"));
        expect(config.server).toBe("https://100.67.0.1:6443");
        expect(config["cluster-init"]).toBeUndefined();
        expect(config["tls-san"]).toEqual(["100.67.0.10", "10.67.2.11", "192.168.20.11", "k3s.kub0.io", "100.67.0.1"]);
        expect(config["etcd-arg"]).toEqual(["heartbeat-interval=500", "election-timeout=5000"]);
    });

    it("gives agents no server-only keys", () => {
        const config = renderK3sConfig(prod, node("lax-node-01"));
        expect(Object.keys(config)).toEqual(["node-name", "node-ip", "flannel-iface", "token-file", "server", "node-label"]);
        expect(config).toMatchObject({ "node-ip": ["100.67.0.16"], server: "https://100.67.0.1:6443" });
    });

    it("never writes vpn-auth, a token or a secret into any node's file", () => {
        for (const each of k3sNodes(prod)) {
            const text = renderK3sConfigYaml(prod, each);
            expect(text).not.toMatch(/vpn-auth|^token:/m);
        }
    });

    it("covers every address a server has on every overlay in tls-san", () => {
        for (const server of k3sNodes(prod).filter((each) => each.role === "server")) {
            const sans = serverTlsSans(prod, server);
            for (const address of [server.tailnet?.address, server.nebula?.address, server.lan.address]) {
                expect(sans).toContain(address);
            }
        }
    });

    it("serialises through the yaml library: the file parses back to the same object", () => {
        const text = renderK3sConfigYaml(prod, node("aus-fwd-gpu-01"));
        expect(text.startsWith("# Managed by shortcircuit")).toBe(true);
        expect(parseYaml(text)).toEqual(renderK3sConfig(prod, node("aus-fwd-gpu-01")));
    });

    it("matches the recorded files for one node of each kind", () => {
        for (const name of ["toa-fwd-gpu-01", "lax-fwd-gpu-01", "hnd-fwd-gpu-01", "aus-node-01"]) {
            expect(renderK3sConfigYaml(prod, node(name))).toMatchSnapshot(name);
        }
    });
});

describe("per-cluster defaults with per-node overrides", () => {
    it("takes flannel-iface from the LAN for a node that overrides it, node-ip from the tailnet", () => {
        const lab = validFleet("lab");
        const config = renderK3sConfig(lab, nodeByName(lab, "lab-agent-02") as K3sNodeConfig);
        expect(config["flannel-iface"]).toBe("eth0");
        expect(config["node-ip"]).toEqual(["100.68.0.22"]);
    });

    it("moves every node with the cluster default, and the server URL with the genesis", () => {
        const raw: Raw = rawFleet("prod");
        raw.cluster.nodeIpFrom = "nebula";
        raw.cluster.flannelIfaceFrom = "nebula";
        const fleet = parseFleet(raw).fleet;
        const agent = renderK3sConfig(fleet, nodeByName(fleet, "lax-node-01") as K3sNodeConfig);
        expect(agent).toMatchObject({ "node-ip": ["10.67.3.1"], "flannel-iface": "nebula0", server: "https://10.67.1.1:6443" });
    });

    it("adds node-external-ip where set and an explicit server URL's host to every server's SANs", () => {
        const raw: Raw = rawFleet("prod");
        raw.nodes[0].externalIp = "203.0.113.10";
        raw.cluster.serverUrl = "https://api.kub0.io:6443";
        const fleet = parseFleet(raw).fleet;
        const genesis = renderK3sConfig(fleet, nodeByName(fleet, "toa-fwd-gpu-01") as K3sNodeConfig);
        expect(genesis["node-external-ip"]).toEqual(["203.0.113.10"]);
        expect(genesis["tls-san"]).toEqual(expect.arrayContaining(["203.0.113.10", "api.kub0.io"]));
        expect(renderK3sConfig(fleet, nodeByName(fleet, "lax-node-01") as K3sNodeConfig).server).toBe("https://api.kub0.io:6443");
    });
});
