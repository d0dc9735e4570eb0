import { installStrictMocks, setStackConfig } from "../support/pulumiMocks";
import { rawFleet, type Raw } from "../support/fixtures";

/** Imports the program fresh, as `pulumi up` would run it, after mocks and config are in place. */
async function runProgram(): Promise<typeof import("../../index")> {
    let program: typeof import("../../index") | undefined;
    await jest.isolateModulesAsync(async () => {
        program = await import("../../index");
    });
    return program!;
}

describe("the program under strict mocks", () => {
    beforeEach(() => jest.resetModules());

    it("builds from the lab stack and exports the rollout order", async () => {
        await installStrictMocks({ stack: "lab" });
        setStackConfig(rawFleet("lab"));
        const program = await runProgram();
        expect(program.rollout).toEqual(["lab-agent-01", "lab-agent-02", "lab-server-01"]);
        expect(Object.keys(program.k3sConfigSha256).sort()).toEqual(["lab-agent-01", "lab-agent-02", "lab-server-01"]);
        expect(program.k3sConfigSha256["lab-server-01"]).toMatch(/^[0-9a-f]{64}$/);
    });

    it("refuses an invalid fleet before declaring any resource", async () => {
        const recorder = await installStrictMocks({ stack: "lab" });
        const raw: Raw = rawFleet("lab");
        raw.overlays.tailnet.mtu = 1200;
        raw.derpRelays[0].regionCode = "labsfo";
        setStackConfig(raw);
        await expect(runProgram()).rejects.toThrow(
            [
                "invalid fleet config:",
                "fleet.overlays.tailnet.mtu: MTU 1200 is below the 1280 floor: SSH and TLS packets stop fitting (the Nebula MTU 1200 lockout)",
                'fleet.derpRelays[0].regionCode: DERP region code "labsfo" is already used by fleet.controlServer.derp',
            ].join("\n"),
        );
        expect(recorder.resources).toEqual([]);
    });

    it("fails without the k3s token secret, naming the key", async () => {
        await installStrictMocks({ stack: "lab" });
        setStackConfig(rawFleet("lab"), {});
        await expect(runProgram()).rejects.toThrow(/shortcircuit:k3sToken/);
    });
});

describe("the program in preview mode", () => {
    it("builds the prod stack with the same rollout as render", async () => {
        jest.resetModules();
        await installStrictMocks({ stack: "prod", preview: true });
        setStackConfig(rawFleet("prod"));
        const program = await runProgram();
        expect(program.rollout).toHaveLength(18);
        expect(program.rollout.slice(-1)).toEqual(["toa-fwd-gpu-01"]);
    });
});
