import { runProgramUnderMocks, valueOf } from "../support/pulumiMocks";
import { rawFleet, type Raw } from "../support/fixtures";

describe("the program under strict mocks", () => {
    it("builds from the lab stack and exports the rollout order", async () => {
        const { program, error } = await runProgramUnderMocks({ stack: "lab" }, rawFleet("lab"));
        expect(error).toBeUndefined();
        expect(program!.rollout).toEqual(["lab-agent-01", "lab-agent-02", "lab-server-01"]);
        expect(Object.keys(program!.k3sConfigSha256).sort()).toEqual(["lab-agent-01", "lab-agent-02", "lab-server-01"]);
        expect(program!.k3sConfigSha256["lab-server-01"]).toMatch(/^[0-9a-f]{64}$/);
        const expiry = await valueOf(program!.nebulaCertExpiry);
        expect(Object.keys(expiry).sort()).toEqual(["lab-agent-01", "lab-agent-02", "lab-relay-01", "lab-server-01", "shortcircuit-lab-sfo3"]);
    });

    it("refuses an invalid fleet before declaring any resource", async () => {
        const raw: Raw = rawFleet("lab");
        raw.overlays.tailnet.mtu = 1200;
        raw.derpRelays[0].regionCode = "labsfo";
        const { recorder, error } = await runProgramUnderMocks({ stack: "lab" }, raw);
        // A RunError: the engine prints its message alone, with no "unhandled exception" or stack.
        expect((error as { __pulumiRunError?: boolean }).__pulumiRunError).toBe(true);
        expect((error as Error).message).toBe(
            [
                "fleet.overlays.tailnet.mtu: MTU 1200 is below the 1280 floor: SSH and TLS packets stop fitting (the Nebula MTU 1200 lockout)",
                'fleet.derpRelays[0].regionCode: DERP region code "labsfo" is already used by fleet.controlServer.derp',
            ].join("\n"),
        );
        expect(recorder.resources).toEqual([]);
    });

    it("fails without the k3s token secret, naming the key", async () => {
        const { error } = await runProgramUnderMocks({ stack: "lab" }, rawFleet("lab"), {});
        expect(String(error)).toMatch(/shortcircuit:k3sToken/);
    });
});

describe("the program in preview mode", () => {
    it("builds the prod stack with the same rollout as render", async () => {
        const { program, error } = await runProgramUnderMocks({ stack: "prod", preview: true }, rawFleet("prod"));
        expect(error).toBeUndefined();
        expect(program!.rollout).toHaveLength(18);
        expect(program!.rollout.slice(-1)).toEqual(["toa-fwd-gpu-01"]);
    });
});
