import { rolloutOrder } from "../../../components/k3s/order";
import { k3sNodes } from "../../../stacks/fleet";
import { parseFleet } from "../../../stacks/validate";
import { rawFleet, validFleet, type Raw } from "../../support/fixtures";

describe("rollout order", () => {
    const prod = validFleet("prod");
    const order = rolloutOrder(prod);
    const names = order.map((node) => node.name);

    it("names every K3s node exactly once and no standalone host", () => {
        expect([...names].sort()).toEqual(
            k3sNodes(prod)
                .map((node) => node.name)
                .sort(),
        );
        expect(new Set(names).size).toBe(names.length);
        expect(names).not.toContain("aero");
    });

    it("rolls agents first, then the joining servers, the genesis last", () => {
        const firstServer = order.findIndex((node) => node.role === "server");
        expect(order.slice(0, firstServer).every((node) => node.role === "agent")).toBe(true);
        expect(order.slice(firstServer).every((node) => node.role === "server")).toBe(true);
        expect(names.slice(firstServer)).toEqual(["aus-fwd-gpu-01", "lax-fwd-gpu-01", "toa-fwd-gpu-01"]);
    });

    it("bootstraps a new cluster the other way round: genesis, servers, then agents", () => {
        const raw: Raw = rawFleet("prod");
        raw.cluster.bootstrap = true;
        const bootstrapOrder = rolloutOrder(parseFleet(raw).fleet).map((node) => node.name);
        expect(bootstrapOrder.slice(0, 3)).toEqual(["toa-fwd-gpu-01", "aus-fwd-gpu-01", "lax-fwd-gpu-01"]);
        expect([...bootstrapOrder].sort()).toEqual([...names].sort());
    });

    it("does not depend on the order nodes are listed in", () => {
        const raw: Raw = rawFleet("prod");
        raw.nodes.reverse();
        expect(rolloutOrder(parseFleet(raw).fleet).map((node) => node.name)).toEqual(names);
    });
});
