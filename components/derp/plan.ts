import { framedPayload } from "../remote/payload";
import { delivery, plannedSsh, type HostPlan, type Values } from "../hostPlan";
import { versions } from "../versions";
import { nodeByName } from "../../stacks/fleet";
import type { DerpRelayConfig, Fleet } from "../../stacks/schema";
import {
    DERPER_CERT_DIR,
    DERPER_LAUNCHD_LABEL,
    DERPER_PLIST_PATH,
    DERPER_UNIT,
    DERPER_UNIT_PATH,
    derperBinary,
    renderDerperPlist,
    renderDerperUnit,
} from "./derper";

/** A self-signed relay's certificate (public) and key (secret). */
export interface RelayCertValues<V> {
    certPem: V;
    keyPem: V;
}

export interface RelayPlan<V> extends HostPlan<V> {
    hostname: string;
    /**
     * derp/install.sh's payload: the pinned derper version, where the unit or job runs it, the
     * unit or job file (the version it names is kept), and the relay's own systemd unit (empty
     * under launchd).
     */
    installPayload: string;
}

/** derper on an existing fleet host: its unit (systemd) or job (launchd), and a self-signed pair. */
export function planDerpRelay<V>(fleet: Fleet, relay: DerpRelayConfig, values: Values<V>, cert: RelayCertValues<V> | undefined): RelayPlan<V> {
    const host = nodeByName(fleet, relay.host);
    if (!host) {
        throw new Error(`fleet.derpRelays: host ${relay.host} is not in the fleet (validation should have refused it)`);
    }
    const launchd = relay.serviceManager === "launchd";
    const field = `fleet.derpRelays[${fleet.derpRelays.indexOf(relay)}]`;
    const serviceFile = launchd
        ? { path: DERPER_PLIST_PATH, mode: 0o644, content: values.text(renderDerperPlist(fleet, relay)) }
        : { path: DERPER_UNIT_PATH, mode: 0o644, content: values.text(renderDerperUnit(fleet, relay)) };
    return {
        name: relay.host,
        hostname: relay.hostname,
        ssh: plannedSsh(fleet, host),
        installPayload: framedPayload({
            VERSION: versions.tailscale,
            TARGET: derperBinary(),
            SERVICE_FILE: serviceFile.path,
            SYSTEMD_UNIT: launchd ? "" : DERPER_UNIT,
        }),
        deliveries: [
            delivery(values, {
                role: "derper",
                checkPort: relay.derpPort,
                // derp/install.sh (the step before) puts the pinned derper at derperBinary() on either system.
                service: launchd
                    ? {
                          kind: "launchd",
                          label: DERPER_LAUNCHD_LABEL,
                          plist: DERPER_PLIST_PATH,
                          program: derperBinary(),
                          // Two derpers would fight over the DERP and STUN ports.
                          takeover: {
                              program: "derper",
                              field: `${field}.adoptDerperLabel`,
                              ...(relay.adoptDerperLabel !== undefined ? { adoptLabel: relay.adoptDerperLabel } : {}),
                          },
                      }
                    : { kind: "systemd", unit: DERPER_UNIT },
                // macOS has no root group: root:wheel, as launchd wants its job files.
                ...(launchd ? { fileOwner: "root:wheel" } : {}),
                secretFiles: cert ? [{ path: `${DERPER_CERT_DIR}/${relay.hostname}.key`, mode: 0o600, content: cert.keyPem }] : [],
                publicFiles: [serviceFile, ...(cert ? [{ path: `${DERPER_CERT_DIR}/${relay.hostname}.crt`, mode: 0o644, content: cert.certPem }] : [])],
            }),
        ],
    };
}
