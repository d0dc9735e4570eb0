import { delivery, type Delivery, type Values } from "../hostPlan";
import { NEBULA_FILES } from "./config";
import { NEBULA_LAUNCHD_LABEL, NEBULA_UNIT, NEBULA_UNIT_PATH, renderNebulaUnit } from "./service";

/** A member's identity as the plan receives it; `keyPem` is secret. */
export interface NebulaIdentityValues<V> {
    certPem: V;
    keyPem: V;
    /** The networks (address/prefix) the certificate was issued for, where the plan knows them. */
    networks?: readonly string[];
}

/**
 * One host's Nebula files: config, CA, certificate and (Linux) the unit, then the key, which
 * travels in its own secret step. On macOS the LaunchDaemon is the operator's; it is kicked.
 */
export function planNebulaDelivery<V>(
    values: Values<V>,
    args: { configYaml: string; precheckConfigYaml: string; caCertPem: V; identity: NebulaIdentityValues<V>; macos: boolean; interfaceName: string },
): Delivery<V> {
    return delivery(values, {
        role: "nebula",
        precheckNebulaConfig: { name: "nebula-precheck.yml", content: values.text(args.precheckConfigYaml) },
        // On Linux the tun link is how Nebula answers; macOS names its utun devices itself. A
        // new CA bundle, certificate or key alone is taken by a reload (SIGHUP, the unit's
        // ExecReload), which keeps every tunnel up: adoption and CA rotation never drop the mesh
        // (test/components/nebula/caRollout.lab.test.ts measures it on a real mesh).
        ...(args.macos
            ? {}
            : {
                  checkInterface: args.interfaceName,
                  reloadPaths: [NEBULA_FILES.ca, NEBULA_FILES.cert, NEBULA_FILES.key],
                  nebulaCert: { path: NEBULA_FILES.cert, networks: args.identity.networks ?? [] },
              }),
        service: args.macos ? { kind: "launchd", label: NEBULA_LAUNCHD_LABEL } : { kind: "systemd", unit: NEBULA_UNIT },
        secretFiles: [{ path: NEBULA_FILES.key, mode: 0o600, content: args.identity.keyPem }],
        publicFiles: [
            { path: NEBULA_FILES.ca, mode: 0o644, content: args.caCertPem },
            { path: NEBULA_FILES.cert, mode: 0o644, content: args.identity.certPem },
            { path: NEBULA_FILES.config, mode: 0o644, content: values.text(args.configYaml) },
            ...(args.macos ? [] : [{ path: NEBULA_UNIT_PATH, mode: 0o644, content: values.text(renderNebulaUnit()) }]),
        ],
    });
}
