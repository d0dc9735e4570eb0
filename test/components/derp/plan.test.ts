import { parse as parsePlist } from "plist";
import { parsePayload } from "../../../components/remote/payload";
import { versions } from "../../../components/versions";
import { throwawayPlan } from "../../../scripts/render/throwawayPlan";
import type { Fleet } from "../../../stacks/schema";
import { validateFleet } from "../../../stacks/validate";
import { rawFleet, validFleet, withPinnedVersions, type Raw } from "../../support/fixtures";

/*
 * derper on prod's Mac: its LaunchDaemon, delivered root:wheel, running the pinned derper at the
 * path derp/install.sh puts it (one directory per version), and refusing or taking over an
 * operator's own derper job.
 */

const NOW = new Date("2026-11-22T00:00:00Z");

const PINNED = `/usr/local/lib/derper/${versions.tailscale}/derper`;

function aeroRelay(fleet: Fleet) {
    const { plan } = throwawayPlan(fleet, { now: NOW, pkiSeedHex: "7e".repeat(32) });
    return plan.relays.find((each) => each.name === "aero");
}

function prodWith(mutate: (raw: Raw) => void) {
    const raw: Raw = rawFleet("prod");
    mutate(raw);
    return validateFleet(raw, { now: NOW });
}

describe("the Austin relay on prod's Mac", () => {
    it("is derper's LaunchDaemon, root:wheel, running the pinned version's own binary", () => {
        const relay = aeroRelay(validFleet("prod"));
        expect(relay?.ssh).toMatchObject({ user: "admin" });
        const derper = relay?.deliveries[0];
        expect(derper?.service).toEqual({
            kind: "launchd",
            label: "com.tailscale.derper",
            plist: "/Library/LaunchDaemons/com.tailscale.derper.plist",
            program: PINNED,
            takeover: { program: "derper", field: "fleet.derpRelays[0].adoptDerperLabel" },
        });
        expect(derper?.fileOwner).toBe("root:wheel");
        expect(derper?.publicFiles.map((file) => [file.path, file.mode.toString(8)])).toEqual([["/Library/LaunchDaemons/com.tailscale.derper.plist", "644"]]);
        const job = parsePlist(derper?.publicFiles[0].content ?? "") as Record<string, unknown>;
        expect(job).toMatchObject({ Label: "com.tailscale.derper", RunAtLoad: true, KeepAlive: true });
        expect((job.ProgramArguments as string[])[0]).toBe(PINNED);
        expect(parsePayload(derper?.payloads.public ?? "").params).toMatchObject({
            SERVICE_MANAGER: "launchd",
            OWNER: "root:wheel",
            PROGRAM: PINNED,
            PROGRAM_FIELD: "",
            CONFLICT_PROGRAM: "derper",
            ADOPT_LABEL: "",
            ADOPT_FIELD: "fleet.derpRelays[0].adoptDerperLabel",
            CHECK_PORT: "443",
        });
    });

    it("has derp/install.sh put the pinned version where the job runs it; under launchd it looks for no systemd unit (the delivery checks for another derper job)", () => {
        const relay = aeroRelay(validFleet("prod"));
        expect(parsePayload(relay?.installPayload ?? "").params).toEqual({
            VERSION: versions.tailscale,
            TARGET: PINNED,
            SERVICE_FILE: "/Library/LaunchDaemons/com.tailscale.derper.plist",
            SYSTEMD_UNIT: "",
        });
    });

    it("under systemd derp/install.sh is told the relay's own unit, so another unit that runs derper stops it", () => {
        const [relay] = throwawayPlan(validFleet("lab"), { now: NOW, pkiSeedHex: "7e".repeat(32) }).plan.relays;
        expect(parsePayload(relay.installPayload).params).toEqual({
            VERSION: versions.tailscale,
            TARGET: PINNED,
            SERVICE_FILE: "/etc/systemd/system/derper.service",
            SYSTEMD_UNIT: "derper.service",
        });
        expect(relay.deliveries[0].service).toEqual({ kind: "systemd", unit: "derper.service" });
    });

    it("a new derper version changes the job file, so the delivery restarts derper onto it", () => {
        const before = aeroRelay(validFleet("prod"));
        const after = withPinnedVersions({ tailscale: "v1.104.0" }, () => aeroRelay(validFleet("prod")));
        const job = parsePlist(after?.deliveries[0].publicFiles[0].content ?? "") as { ProgramArguments: string[] };
        expect(job.ProgramArguments[0]).toBe("/usr/local/lib/derper/v1.104.0/derper");
        expect(after?.deliveries[0].payloads.public).not.toBe(before?.deliveries[0].payloads.public);
        expect(parsePayload(after?.installPayload ?? "").params).toEqual({
            VERSION: "v1.104.0",
            TARGET: "/usr/local/lib/derper/v1.104.0/derper",
            SERVICE_FILE: "/Library/LaunchDaemons/com.tailscale.derper.plist",
            SYSTEMD_UNIT: "",
        });
    });

    it("takes over the operator's own derper job when the stack names its label", () => {
        const result = prodWith((raw) => (raw.derpRelays[0].adoptDerperLabel = "io.kub0.derp-aus"));
        expect(result.problems).toEqual([]);
        const relay = aeroRelay(result.fleet as Fleet);
        expect(parsePayload(relay?.deliveries[0].payloads.public ?? "").params).toMatchObject({
            CONFLICT_PROGRAM: "derper",
            ADOPT_LABEL: "io.kub0.derp-aus",
            ADOPT_FIELD: "fleet.derpRelays[0].adoptDerperLabel",
        });
    });

    it("refuses adoptDerperLabel on a systemd relay, and a value that is not a launchd label", () => {
        const lab: Raw = rawFleet("lab");
        lab.derpRelays[0].adoptDerperLabel = "io.kub0.derper";
        expect(validateFleet(lab, { now: NOW }).problems).toContainEqual(
            expect.objectContaining({
                path: "fleet.derpRelays[0].adoptDerperLabel",
                message: "only a launchd relay takes over an operator's job; under systemd the program writes its own unit in place",
            }),
        );
        const hostile = prodWith((raw) => (raw.derpRelays[0].adoptDerperLabel = "x; rm -rf /"));
        expect(hostile.problems.map((problem) => problem.path)).toEqual(["fleet.derpRelays[0].adoptDerperLabel"]);
    });
});
