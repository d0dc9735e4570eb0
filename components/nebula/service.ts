/*
 * How Nebula runs as a service: the systemd unit on Linux, the LaunchDaemon on macOS, both from
 * the delivered /etc/nebula/config.yml. Shipping the unit or job with the files means a rebuilt
 * host gets the same service, whatever its distro or Homebrew ships.
 */
import { build as buildPlist } from "plist";
import { NEBULA_FILES } from "./config";
import { assertNever } from "../hostPlan";
import { renderServiceUnit } from "../remote/systemdUnit";
import type { FleetNode } from "../../stacks/schema";

export const NEBULA_UNIT = "nebula.service";
export const NEBULA_UNIT_PATH = `/etc/systemd/system/${NEBULA_UNIT}`;
/**
 * The program's own launchd label for Nebula on macOS hosts. Not `net.defined.nebula` (what an
 * earlier version kicked, assuming the operator had loaded a job under it) nor Homebrew's
 * `homebrew.mxcl.nebula`: a label nobody else uses means delivering this job can never
 * silently overwrite an operator's job file of the same name. An operator's existing job, under
 * whatever label, is taken over only when the stack names it (`nodes[].macos.adoptNebulaLabel`);
 * otherwise the step finds it and stops (remote/deliver-files.sh).
 */
export const NEBULA_LAUNCHD_LABEL = "io.kub0.shortcircuit.nebula";
export const NEBULA_PLIST_PATH = `/Library/LaunchDaemons/${NEBULA_LAUNCHD_LABEL}.plist`;
/** Where launchd writes Nebula's output (macOS has no journal to take it). */
export const NEBULA_LAUNCHD_LOG = "/var/log/shortcircuit-nebula.log";
/** Homebrew's prefix: /opt/homebrew on Apple silicon, /usr/local on Intel Macs. */
export const HOMEBREW_NEBULA_BINARY = { arm64: "/opt/homebrew/bin/nebula", amd64: "/usr/local/bin/nebula" } as const;

export function renderNebulaUnit(): string {
    return renderServiceUnit({
        description: "Nebula overlay (shortcircuit backup SSH path)",
        execStart: `/usr/bin/env nebula -config ${NEBULA_FILES.config}`,
        execReload: "/bin/kill -HUP $MAINPID",
    });
}

/** The nebula binary a macOS host's LaunchDaemon runs: the stack's, else Homebrew's for its arch. */
export function macosNebulaBinary(node: Pick<FleetNode, "arch" | "macos">): string {
    if (node.macos?.nebulaBinary !== undefined) {
        return node.macos.nebulaBinary;
    }
    switch (node.arch) {
        case "arm64":
            return HOMEBREW_NEBULA_BINARY.arm64;
        case "amd64":
            return HOMEBREW_NEBULA_BINARY.amd64;
        default:
            return assertNever(node.arch);
    }
}

/**
 * The LaunchDaemon: loaded at boot (RunAtLoad), restarted by launchd whenever it exits
 * (KeepAlive), reloaded by SIGHUP (`launchctl kill HUP`) as the unit's ExecReload does.
 */
export function renderNebulaPlist(binary: string): string {
    return buildPlist({
        Label: NEBULA_LAUNCHD_LABEL,
        ProgramArguments: [binary, "-config", NEBULA_FILES.config],
        RunAtLoad: true,
        KeepAlive: true,
        StandardOutPath: NEBULA_LAUNCHD_LOG,
        StandardErrorPath: NEBULA_LAUNCHD_LOG,
    });
}
