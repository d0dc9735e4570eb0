/*
 * The systemd unit that runs Nebula from the delivered /etc/nebula/config.yml. Shipping the
 * unit with the files means a rebuilt host gets the same service, whatever its distro ships.
 */
import { NEBULA_FILES } from "./config";
import { renderServiceUnit } from "../remote/systemdUnit";

export const NEBULA_UNIT = "nebula.service";
export const NEBULA_UNIT_PATH = `/etc/systemd/system/${NEBULA_UNIT}`;
/** launchd label operators give the Nebula LaunchDaemon on macOS hosts. */
export const NEBULA_LAUNCHD_LABEL = "net.defined.nebula";

export function renderNebulaUnit(): string {
    return renderServiceUnit({
        description: "Nebula overlay (shortcircuit backup SSH path)",
        execStart: `/usr/bin/env nebula -config ${NEBULA_FILES.config}`,
        execReload: "/bin/kill -HUP $MAINPID",
    });
}
