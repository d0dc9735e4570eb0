import { delivery, type Delivery, type PlannedFile, type Values } from "../hostPlan";
import { NEBULA_FILES } from "./config";
import { NEBULA_LAUNCHD_LABEL, NEBULA_PLIST_PATH, NEBULA_UNIT, NEBULA_UNIT_PATH, renderNebulaPlist, renderNebulaUnit } from "./service";

/** A member's identity as the plan receives it; `keyPem` is secret. */
export interface NebulaIdentityValues<V> {
    certPem: V;
    keyPem: V;
    /** The networks (address/prefix) the certificate was issued for, where the plan knows them. */
    networks?: readonly string[];
}

/**
 * How Nebula runs on the host: a systemd unit (Linux), or the program's LaunchDaemon (macOS),
 * running `nebulaBinary`, taking over the operator's job `adoptLabel` if the stack names one;
 * `fieldPrefix` is the host's config path (`fleet.nodes[7].macos`) for the step's messages.
 * `binaryVersion`: the nebula version the host's bootstrap installs (the control server's), so
 * a new one restarts Nebula onto it (Delivery.binaryVersion); other hosts bring their own nebula.
 */
export type NebulaService =
    { kind: "systemd"; interfaceName: string; binaryVersion?: string } | { kind: "launchd"; nebulaBinary: string; adoptLabel?: string; fieldPrefix: string };

interface NebulaFileArgs<V> {
    configYaml: string;
    caCertPem: V;
    identity: NebulaIdentityValues<V>;
}

/** The Nebula files every member has, whoever runs it (admin workstations run it their own way). */
export function nebulaFiles<V>(values: Values<V>, args: NebulaFileArgs<V>): { publicFiles: PlannedFile<V>[]; secretFiles: PlannedFile<V>[] } {
    return {
        secretFiles: [{ path: NEBULA_FILES.key, mode: 0o600, content: args.identity.keyPem }],
        publicFiles: [
            { path: NEBULA_FILES.ca, mode: 0o644, content: args.caCertPem },
            { path: NEBULA_FILES.cert, mode: 0o644, content: args.identity.certPem },
            { path: NEBULA_FILES.config, mode: 0o644, content: values.text(args.configYaml) },
        ],
    };
}

/**
 * One host's Nebula files: config, CA, certificate and the unit or LaunchDaemon, then the key,
 * which travels in its own secret step.
 */
export function planNebulaDelivery<V>(values: Values<V>, args: NebulaFileArgs<V> & { precheckConfigYaml: string; service: NebulaService }): Delivery<V> {
    const files = nebulaFiles(values, args);
    // A new CA bundle, certificate or key alone is taken by a reload (SIGHUP: the unit's
    // ExecReload, `launchctl kill HUP` under launchd), which keeps every tunnel up: adoption and
    // CA rotation never drop the mesh (test/components/nebula/caRollout.lab.test.ts measures it
    // on a real mesh).
    const reload = {
        reloadPaths: [NEBULA_FILES.ca, NEBULA_FILES.cert, NEBULA_FILES.key],
        nebulaCert: { path: NEBULA_FILES.cert, networks: args.identity.networks ?? [] },
    };
    const precheckNebulaConfig = { name: "nebula-precheck.yml", content: values.text(args.precheckConfigYaml) };
    const service = args.service;
    switch (service.kind) {
        case "systemd":
            return delivery(values, {
                role: "nebula",
                precheckNebulaConfig,
                // On Linux the tun link is how Nebula answers.
                checkInterface: service.interfaceName,
                ...reload,
                ...(service.binaryVersion !== undefined ? { binaryVersion: service.binaryVersion } : {}),
                service: { kind: "systemd", unit: NEBULA_UNIT },
                secretFiles: files.secretFiles,
                publicFiles: [...files.publicFiles, { path: NEBULA_UNIT_PATH, mode: 0o644, content: values.text(renderNebulaUnit()) }],
            });
        case "launchd":
            // macOS names its utun devices itself: no interface to check, launchd's state is.
            return delivery(values, {
                role: "nebula",
                precheckNebulaConfig,
                ...reload,
                service: {
                    kind: "launchd",
                    label: NEBULA_LAUNCHD_LABEL,
                    plist: NEBULA_PLIST_PATH,
                    program: service.nebulaBinary,
                    programField: `${service.fieldPrefix}.nebulaBinary`,
                    takeover: {
                        program: "nebula",
                        field: `${service.fieldPrefix}.adoptNebulaLabel`,
                        ...(service.adoptLabel !== undefined ? { adoptLabel: service.adoptLabel } : {}),
                    },
                },
                fileOwner: "root:wheel",
                secretFiles: files.secretFiles,
                publicFiles: [...files.publicFiles, { path: NEBULA_PLIST_PATH, mode: 0o644, content: values.text(renderNebulaPlist(service.nebulaBinary)) }],
            });
        default: {
            const unhandled: never = service;
            throw new Error(`unhandled Nebula service ${JSON.stringify(unhandled)}`);
        }
    }
}
