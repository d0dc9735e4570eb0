import { parse as parsePlist } from "plist";
import { parsePayload } from "../../../components/remote/payload";
import { throwawayPlan } from "../../../scripts/render/throwawayPlan";
import { formatProblem, validateFleet } from "../../../stacks/validate";
import { rawFleet, type Raw } from "../../support/fixtures";

/*
 * The Nebula deliveries the plan makes per host kind: prod's Mac (`aero`) gets the program's
 * LaunchDaemon, root:wheel, reloadable on a certificate change, with what its step needs to
 * refuse or take over an operator's job; Linux hosts keep their unit and parameters.
 */

const NOW = new Date("2026-11-22T00:00:00Z");

function planOf(mutate: (fleet: Raw) => void = () => {}): ReturnType<typeof throwawayPlan>["plan"] {
    const raw = rawFleet("prod") as Raw;
    mutate(raw);
    const { fleet, problems } = validateFleet(raw, { now: NOW });
    if (!fleet) {
        throw new Error(problems.map(formatProblem).join("\n"));
    }
    return throwawayPlan(fleet, { now: NOW, pkiSeedHex: "6d".repeat(32) }).plan;
}

const aeroIndex = (raw: Raw): number => (raw.nodes as { name: string }[]).findIndex((node) => node.name === "aero");

function aeroNebula(plan: ReturnType<typeof planOf>) {
    const host = plan.nebulaHosts.find((each) => each.name === "aero");
    if (!host) throw new Error("aero has no Nebula delivery");
    return host.delivery;
}

describe("Nebula on prod's Mac", () => {
    it("is the program's LaunchDaemon, installed with the files, all root:wheel", () => {
        const nebula = aeroNebula(planOf());
        expect(nebula.service).toEqual({
            kind: "launchd",
            label: "io.kub0.shortcircuit.nebula",
            plist: "/Library/LaunchDaemons/io.kub0.shortcircuit.nebula.plist",
            program: "/opt/homebrew/bin/nebula",
            programField: "fleet.nodes[11].macos.nebulaBinary",
            takeover: { program: "nebula", field: "fleet.nodes[11].macos.adoptNebulaLabel" },
        });
        expect(nebula.fileOwner).toBe("root:wheel");
        expect(nebula.secretOwner).toBeUndefined();
        expect(nebula.publicFiles.map((file) => [file.path, file.mode.toString(8)])).toEqual([
            ["/etc/nebula/ca.crt", "644"],
            ["/etc/nebula/host.crt", "644"],
            ["/etc/nebula/config.yml", "644"],
            ["/Library/LaunchDaemons/io.kub0.shortcircuit.nebula.plist", "644"],
        ]);
        expect(nebula.secretFiles.map((file) => [file.path, file.mode.toString(8)])).toEqual([["/etc/nebula/host.key", "600"]]);
        const plist = nebula.publicFiles.find((file) => file.path.endsWith(".plist"))?.content ?? "";
        expect(parsePlist(plist)).toMatchObject({ ProgramArguments: ["/opt/homebrew/bin/nebula", "-config", "/etc/nebula/config.yml"] });
        // A certificate-only change reloads (launchctl kill HUP), as ExecReload does on Linux.
        expect(nebula.reloadPaths).toEqual(["/etc/nebula/ca.crt", "/etc/nebula/host.crt", "/etc/nebula/host.key"]);
        expect(nebula.nebulaCert).toEqual({ path: "/etc/nebula/host.crt", networks: ["10.67.2.1/16"] });
        expect(nebula.checkInterface).toBeUndefined();
        const params = parsePayload(nebula.payloads.public).params;
        expect(params).toMatchObject({ OWNER: "root:wheel", PROGRAM: "/opt/homebrew/bin/nebula", CONFLICT_PROGRAM: "nebula", ADOPT_LABEL: "" });
        expect(parsePayload(nebula.payloads.secret).params.OWNER).toBe("root:wheel");
    });

    it("runs the stack's nebula binary and takes over the operator's job the stack names", () => {
        const nebula = aeroNebula(
            planOf((raw) => {
                (raw.nodes as Raw[])[aeroIndex(raw)].macos = { nebulaBinary: "/usr/local/opt/nebula/bin/nebula", adoptNebulaLabel: "homebrew.mxcl.nebula" };
            }),
        );
        expect(nebula.service).toMatchObject({
            program: "/usr/local/opt/nebula/bin/nebula",
            takeover: { program: "nebula", field: "fleet.nodes[11].macos.adoptNebulaLabel", adoptLabel: "homebrew.mxcl.nebula" },
        });
        const plist = nebula.publicFiles.find((file) => file.path.endsWith(".plist"))?.content ?? "";
        expect(parsePlist(plist)).toMatchObject({ ProgramArguments: ["/usr/local/opt/nebula/bin/nebula", "-config", "/etc/nebula/config.yml"] });
        expect(parsePayload(nebula.payloads.public).params).toMatchObject({ PROGRAM: "/usr/local/opt/nebula/bin/nebula", ADOPT_LABEL: "homebrew.mxcl.nebula" });
    });

    it("leaves Linux hosts' deliveries as they were: the unit, no owner, no launchd parameters", () => {
        const plan = planOf();
        const linux = plan.nebulaHosts.find((each) => each.name === "toa-fwd-gpu-01")?.delivery;
        expect(linux?.service).toEqual({ kind: "systemd", unit: "nebula.service" });
        expect(linux?.fileOwner).toBeUndefined();
        expect(linux?.checkInterface).toBe("nebula0");
        const params = parsePayload(linux?.payloads.public ?? "").params;
        expect(Object.keys(params).sort()).toEqual(
            [
                "STEP",
                "SERVICE_MANAGER",
                "SERVICE",
                "PLIST",
                "RESTART",
                "CHECK_TIMEOUT",
                "OWNER",
                "SECRET_PATHS",
                "PRECHECK_NEBULA_CONFIG",
                "CHECK_PORT",
                "CHECK_INTERFACE",
                "RELOAD_PATHS",
                "NEBULA_CERT",
                "NEBULA_CERT_NETWORKS",
            ].sort(),
        );
        expect(params.OWNER).toBe("");
    });
});
