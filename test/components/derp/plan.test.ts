import { parse as parsePlist } from "plist";
import { parsePayload } from "../../../components/remote/payload";
import { throwawayPlan } from "../../../scripts/render/throwawayPlan";
import { validFleet } from "../../support/fixtures";

/*
 * derper on prod's Mac: its LaunchDaemon, delivered root:wheel, running the derper that
 * derp/install.sh puts at /usr/local/bin/derper.
 */

const NOW = new Date("2026-11-22T00:00:00Z");

describe("the Austin relay on prod's Mac", () => {
    it("is derper's LaunchDaemon, root:wheel, running /usr/local/bin/derper", () => {
        const { plan } = throwawayPlan(validFleet("prod"), { now: NOW, pkiSeedHex: "7e".repeat(32) });
        const relay = plan.relays.find((each) => each.name === "aero");
        expect(relay?.ssh).toMatchObject({ user: "admin" });
        const derper = relay?.deliveries[0];
        expect(derper?.service).toEqual({
            kind: "launchd",
            label: "com.tailscale.derper",
            plist: "/Library/LaunchDaemons/com.tailscale.derper.plist",
            program: "/usr/local/bin/derper",
        });
        expect(derper?.fileOwner).toBe("root:wheel");
        expect(derper?.publicFiles.map((file) => [file.path, file.mode.toString(8)])).toEqual([["/Library/LaunchDaemons/com.tailscale.derper.plist", "644"]]);
        const job = parsePlist(derper?.publicFiles[0].content ?? "") as Record<string, unknown>;
        expect(job).toMatchObject({ Label: "com.tailscale.derper", RunAtLoad: true, KeepAlive: true });
        expect((job.ProgramArguments as string[])[0]).toBe("/usr/local/bin/derper");
        expect(parsePayload(derper?.payloads.public ?? "").params).toMatchObject({
            SERVICE_MANAGER: "launchd",
            OWNER: "root:wheel",
            PROGRAM: "/usr/local/bin/derper",
            PROGRAM_FIELD: "",
            CONFLICT_PROGRAM: "",
            ADOPT_LABEL: "",
            CHECK_PORT: "443",
        });
    });
});
