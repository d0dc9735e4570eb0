import { parse, stringify } from "yaml";
import { afterFirstUp, committedFleet, deriveLabShape, labHostSpec, labWithExistingControlHost, type FleetInput } from "../../../../scripts/lab/stack/labShape";
import { parseFleet } from "../../../../stacks/validate";
import { throwawayPlan } from "../../../../scripts/render/throwawayPlan";

const PREFIX = "198.19.42";
const plan = (raw: unknown) => throwawayPlan(parseFleet(raw).fleet, { now: new Date("2026-12-05T00:00:00Z"), pkiSeedHex: "00".repeat(32) }).plan;

describe("a committed stack reshaped for a lab fleet", () => {
    it("lab: the committed LAN octets on the bridge, the control server on lab-control-01 at .3, like the fixture the suites used", () => {
        const shape = deriveLabShape(committedFleet("lab"), { bridgePrefix: PREFIX });
        expect(Object.fromEntries(shape.hosts.map((host) => [host.name, host.lanAddress]))).toEqual({
            "lab-server-01": `${PREFIX}.11`,
            "lab-agent-01": `${PREFIX}.21`,
            "lab-agent-02": `${PREFIX}.22`,
            "lab-relay-01": `${PREFIX}.2`,
            "lab-control-01": `${PREFIX}.3`,
        });
        expect(shape.control).toBe("lab-control-01");
        expect(shape.genesis).toBe("lab-server-01");
        expect(shape.hosts.find((host) => host.name === "lab-relay-01")?.derpPort).toBe(443);
        const fixture = labWithExistingControlHost();
        expect(shape.fleet.nodes.map((node) => [node.name, node.tailnet?.address, node.nebula?.address])).toEqual(
            fixture.nodes.map((node) => [node.name, node.tailnet?.address, node.nebula?.address]),
        );
        expect(shape.fleet.controlServer.host).toEqual({ kind: "existing", host: "lab-control-01" });
        expect(shape.fleet.sites).toEqual([{ name: "lab", description: "Test bench", lan: `${PREFIX}.0/24` }]);
    });

    it("prod: valid, every host on the bridge at a distinct address inside its site's block, no committed LAN address or site range left", () => {
        const committed = committedFleet("prod");
        const shape = deriveLabShape(committed, { bridgePrefix: PREFIX });
        const text = stringify(shape.fleet);
        for (const site of committed.sites) expect(text).not.toContain(site.lan.split(".").slice(0, 3).join("."));
        for (const node of committed.nodes) expect(text).not.toMatch(new RegExp(`\\b${node.lan.address.replace(/\./g, "\\.")}\\b`));
        const addresses = shape.hosts.map((host) => host.lanAddress);
        expect(new Set(addresses).size).toBe(addresses.length);
        expect(addresses.every((address) => address.startsWith(`${PREFIX}.`) && !address.endsWith(".0") && !address.endsWith(".1"))).toBe(true);
        // Every prod node is a lab host, plus the host that plays the droplet.
        expect(shape.hosts.map((host) => host.name).sort()).toEqual([...committed.nodes.map((node) => node.name), "kub0-control-01"].sort());
        expect(shape.fleet.access?.sshVia).toBe("lan");
        expect(shape.fleet.nodes.find((node) => node.name === "aero")).toMatchObject({ os: "debian" });
        // Still reached as admin, through sudo: its lab host accepts that login.
        expect(shape.fleet.nodes.find((node) => node.name === "aero")?.ssh).toMatchObject({ user: "admin" });
        const aero = shape.hosts.find((host) => host.name === "aero");
        expect(aero?.loginUser).toBe("admin");
        expect(aero && labHostSpec(shape, aero).login).toEqual({ user: "admin", sudo: "nopasswd" });
        expect(shape.hosts.filter((host) => host.loginUser !== undefined).map((host) => host.name)).toEqual(["aero"]);
        expect(shape.changes).toEqual(
            expect.arrayContaining([
                "access.sshVia: nebula → lan (the overlays exist only inside the lab hosts)",
                "controlServer.host: droplet shortcircuit-lighthouse-sfo3 → existing host kub0-control-01 (DigitalOcean is not in the lab)",
            ]),
        );
        // The source is not changed.
        expect(committed).toEqual(committedFleet("prod"));
    });

    it("prod: after the first up, a rehearsed change restarts the same K3s nodes in the same order as prod; the first up bootstraps", () => {
        const committed = plan(committedFleet("prod"));
        const first = deriveLabShape(committedFleet("prod"), { bridgePrefix: PREFIX }).fleet;
        expect(plan(first).order.edges).not.toEqual(committed.order.edges);
        const stackFile = `# derived\nconfig:\n  shortcircuit:fleet:\n${stringify(first)
            .split("\n")
            .map((line) => `    ${line}`)
            .join("\n")}\n`;
        const after = parse(afterFirstUp(stackFile, committedFleet("prod"))) as { config: Record<string, FleetInput> };
        expect(after.config["shortcircuit:fleet"].cluster.bootstrap).toBeUndefined();
        const derived = plan(after.config["shortcircuit:fleet"]);
        expect(derived.order.edges.filter((edge) => edge.step.startsWith("k3s")).map((edge) => `${edge.step} <- ${edge.after}`)).toEqual(
            committed.order.edges.filter((edge) => edge.step.startsWith("k3s")).map((edge) => `${edge.step} <- ${edge.after}`),
        );
    });

    it("droplet: the droplet stays and its player is a lab host outside the fleet", () => {
        const shape = deriveLabShape(committedFleet("lab"), { bridgePrefix: PREFIX, controlServer: "droplet" });
        expect(shape.fleet.controlServer.host.kind).toBe("droplet");
        expect(shape.fleet.nodes.map((node) => node.name)).not.toContain("lab-control-01");
        expect(shape.hosts.find((host) => host.name === "lab-control-01")).toMatchObject({ control: true, lanAddress: `${PREFIX}.3` });
    });

    it("the host that plays the control server is .3 without the relay too (the droplet suites' reserved IP)", () => {
        const source = committedFleet("lab");
        source.nodes = source.nodes.filter((node) => node.genesis === true);
        source.derpRelays = [];
        source.edge = { enabled: false };
        const shape = deriveLabShape(source, { bridgePrefix: PREFIX, controlServer: "droplet" });
        expect(shape.hosts.map((host) => [host.name, host.lanAddress])).toEqual([
            ["lab-server-01", `${PREFIX}.11`],
            ["lab-control-01", `${PREFIX}.3`],
        ]);
    });

    it("refuses a bridge prefix that is not three octets", () => {
        expect(() => deriveLabShape(committedFleet("lab"), { bridgePrefix: "198.19" })).toThrow("bridge prefix 198.19 is not three octets");
    });
});
