import { k3sNodes, servers, genesisNode } from "../../stacks/fleet";
import { validateFleet } from "../../stacks/validate";
import { rawFleet } from "../support/fixtures";

describe("committed stack files", () => {
    it.each(["prod", "lab"] as const)("%s parses with no errors and no warnings", (stack) => {
        const result = validateFleet(rawFleet(stack));
        expect(result.problems).toEqual([]);
        expect(result.fleet).toBeDefined();
    });

    it("prod describes the fleet from the design: four sites, 18 K3s nodes, three etcd members, six GPU nodes", () => {
        const fleet = validateFleet(rawFleet("prod")).fleet!;
        expect(fleet.sites.map((site) => site.name)).toEqual(["toa", "aus", "lax", "hnd"]);
        expect(k3sNodes(fleet)).toHaveLength(18);
        expect(
            servers(fleet)
                .map((node) => node.name)
                .sort(),
        ).toEqual(["aus-fwd-gpu-01", "lax-fwd-gpu-01", "toa-fwd-gpu-01"]);
        expect(genesisNode(fleet).name).toBe("toa-fwd-gpu-01");
        const gpu = fleet.nodes.filter((node) => node.taints.includes("amd.com/gpu=true:NoSchedule"));
        expect(gpu).toHaveLength(6);
        expect(fleet.nodes.filter((node) => node.site === "aus")).toHaveLength(8);
        expect(fleet.controlServer.hostname).toBe("hs.kub0.io");
        expect(fleet.controlServer.derp).toMatchObject({ regionId: 900, regionCode: "sfo3" });
        expect(fleet.derpRelays).toEqual([expect.objectContaining({ regionId: 901, regionCode: "aus", hostname: "derp-aus.kub0.io", host: "aero" })]);
        expect(fleet.overlays.nebula.network).toBe("10.67.0.0/16");
        expect(fleet.cluster).toMatchObject({ nodeIpFrom: "tailnet", flannelIfaceFrom: "tailnet" });
        expect(fleet.cluster.etcd).toEqual({ heartbeatIntervalMs: 500, electionTimeoutMs: 5000 });
    });

    it("lab is one server, two agents, one relay host and the cheapest droplet", () => {
        const fleet = validateFleet(rawFleet("lab")).fleet!;
        expect(fleet.nodes.map((node) => [node.name, node.role])).toEqual([
            ["lab-server-01", "server"],
            ["lab-agent-01", "agent"],
            ["lab-agent-02", "agent"],
            ["lab-relay-01", "standalone"],
        ]);
        expect(fleet.derpRelays.map((relay) => relay.host)).toEqual(["lab-relay-01"]);
        expect(fleet.controlServer.host).toMatchObject({ kind: "droplet", size: "s-1vcpu-512mb-10gb" });
    });
});
