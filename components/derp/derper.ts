import { createHash, X509Certificate } from "node:crypto";
import { build as buildPlist } from "plist";
import { headscaleServerUrl } from "../control/headscale";
import { renderServiceUnit } from "../remote/systemdUnit";
import { versions } from "../versions";
import type { DerpRelayConfig, Fleet } from "../../stacks/schema";

/*
 * The standalone DERP relay: derper's flags, and the systemd unit or launchd job that runs
 * it. Clients are verified against Headscale's /verify, and fail-open is off: an unreachable
 * Headscale must not turn the relay into an open relay.
 */

/** Where derp/install.sh puts derper, one directory per version (`go install`'s GOBIN). */
export const DERPER_INSTALL_DIR = "/usr/local/lib/derper";
/**
 * The derper the unit or job runs: the pinned version's own path, not the /usr/local/bin/derper
 * link. A version change is then a change to the unit or job file, so the delivery restarts
 * derper onto the new binary; through the link, the old process would run on unnoticed.
 */
export function derperBinary(): string {
    return `${DERPER_INSTALL_DIR}/${versions.tailscale}/derper`;
}
export const DERPER_CERT_DIR = "/var/lib/derper/certs";
/** The relay's own key; named explicitly so it stays put across restarts and reinstalls. */
export const DERPER_KEY_PATH = "/var/lib/derper/derper.key";
export const DERPER_UNIT = "derper.service";
export const DERPER_UNIT_PATH = `/etc/systemd/system/${DERPER_UNIT}`;
/**
 * The program's label for derper's LaunchDaemon. A job file of the operator's under this same
 * label is replaced in place (its previous file comes back if derper is not healthy on the new
 * one); a job under any other label that runs derper is taken over only when the stack names it
 * (`derpRelays[].adoptDerperLabel`), otherwise the step stops before changing anything.
 */
export const DERPER_LAUNCHD_LABEL = "com.tailscale.derper";
export const DERPER_PLIST_PATH = `/Library/LaunchDaemons/${DERPER_LAUNCHD_LABEL}.plist`;

export function derperVerifyUrl(fleet: Fleet): string {
    return `${headscaleServerUrl(fleet)}/verify`;
}

export function derperArgs(fleet: Fleet, relay: DerpRelayConfig): string[] {
    const selfSigned = relay.certMode === "self-signed";
    return [
        "-c",
        DERPER_KEY_PATH,
        "-a",
        `:${relay.derpPort}`,
        "-hostname",
        relay.hostname,
        "-certmode",
        selfSigned ? "manual" : "letsencrypt",
        "-certdir",
        DERPER_CERT_DIR,
        // Let's Encrypt needs port 80; a pinned self-signed relay does not listen on it.
        "-http-port",
        selfSigned ? "-1" : "80",
        "-stun",
        "-stun-port",
        String(relay.stunPort),
        "-verify-client-url",
        derperVerifyUrl(fleet),
        "-verify-client-url-fail-open=false",
    ];
}

export function renderDerperUnit(fleet: Fleet, relay: DerpRelayConfig): string {
    return renderServiceUnit({
        description: `Tailscale DERP relay ${relay.hostname} (region ${relay.regionId} ${relay.regionCode})`,
        execStart: [derperBinary(), ...derperArgs(fleet, relay)].join(" "),
    });
}

export function renderDerperPlist(fleet: Fleet, relay: DerpRelayConfig): string {
    return buildPlist({
        Label: DERPER_LAUNCHD_LABEL,
        ProgramArguments: [derperBinary(), ...derperArgs(fleet, relay)],
        RunAtLoad: true,
        KeepAlive: true,
        StandardOutPath: "/var/log/derper.log",
        StandardErrorPath: "/var/log/derper.log",
    });
}

/** `sha256-raw:<hex>` of a certificate's DER bytes: how a DERP map pins a self-signed relay. */
export function derpCertName(certPem: string): string {
    return `sha256-raw:${createHash("sha256").update(new X509Certificate(certPem).raw).digest("hex")}`;
}
