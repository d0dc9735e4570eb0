import { parse as parsePlist } from "plist";
import { HOMEBREW_NEBULA_BINARY, NEBULA_LAUNCHD_LABEL, NEBULA_PLIST_PATH, macosNebulaBinary, renderNebulaPlist } from "../../../components/nebula/service";

/*
 * Nebula's LaunchDaemon on macOS hosts: the job file's content, where it goes, and which binary
 * it runs (the stack's, else Homebrew's for the host's architecture).
 */

describe("Nebula's LaunchDaemon", () => {
    it("runs the given binary on the delivered config, at load and kept alive, logging to one file", () => {
        const xml = renderNebulaPlist("/opt/homebrew/bin/nebula");
        expect(xml).toMatch(/^<\?xml version="1\.0" encoding="UTF-8"\?>\n<!DOCTYPE plist PUBLIC "-\/\/Apple\/\/DTD PLIST 1\.0\/\/EN"/);
        expect(parsePlist(xml)).toEqual({
            Label: "io.kub0.shortcircuit.nebula",
            ProgramArguments: ["/opt/homebrew/bin/nebula", "-config", "/etc/nebula/config.yml"],
            RunAtLoad: true,
            KeepAlive: true,
            StandardOutPath: "/var/log/shortcircuit-nebula.log",
            StandardErrorPath: "/var/log/shortcircuit-nebula.log",
        });
        expect(NEBULA_PLIST_PATH).toBe(`/Library/LaunchDaemons/${NEBULA_LAUNCHD_LABEL}.plist`);
    });

    it("takes the binary from the stack, else Homebrew's for the architecture", () => {
        expect(macosNebulaBinary({ arch: "arm64" })).toBe("/opt/homebrew/bin/nebula");
        expect(macosNebulaBinary({ arch: "amd64" })).toBe("/usr/local/bin/nebula");
        expect(macosNebulaBinary({ arch: "arm64", macos: { nebulaBinary: "/usr/local/opt/nebula/bin/nebula" } })).toBe("/usr/local/opt/nebula/bin/nebula");
        expect(HOMEBREW_NEBULA_BINARY).toEqual({ arm64: "/opt/homebrew/bin/nebula", amd64: "/usr/local/bin/nebula" });
    });
});
