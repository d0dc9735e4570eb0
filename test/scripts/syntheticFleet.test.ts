import { rolloutOrder } from "../../components/k3s/order";
import { syntheticRawFleet } from "../../scripts/syntheticFleet";
import { validateFleet } from "../../stacks/validate";

describe("the benchmark's synthetic fleets", () => {
    it.each([200, 1000])("a %i-host fleet passes every guard", (size) => {
        const result = validateFleet(syntheticRawFleet(size));
        expect(result.problems).toEqual([]);
        expect(result.fleet?.nodes).toHaveLength(size);
        expect(rolloutOrder(result.fleet!).slice(-1)[0].genesis).toBe(true);
    });
});
