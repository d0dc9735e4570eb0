import { createHash } from "node:crypto";
import { framedPayload, type PayloadFile } from "./remote/payload";
import { sshHost } from "../stacks/fleet";
import type { Become, Fleet, FleetNode } from "../stacks/schema";

/*
 * The shapes of the host plan (plan.ts) that every concern fills in. A plan is plain data; only
 * identity-derived content (keys, certificates, anything computed from them) has the type `V`:
 * a plain string for `render`, a Pulumi Output for the program. `Values<V>` is how the plan
 * builds such content without knowing which, so both outputs come from one function.
 */

export interface Values<V> {
    /** A value known at plan time. */
    text(value: string): V;
    /** Content computed from identity values (secret if any input is). */
    derive(inputs: readonly V[], compute: (texts: readonly string[]) => string): V;
}

/** The plan's values for `render` and tests: identities are plain strings. */
export const plainValues: Values<string> = {
    text: (value) => value,
    derive: (inputs, compute) => compute(inputs),
};

/** Where a host answers SSH. The droplet's address is not known at plan time (see control/plan.ts). */
export interface PlannedSsh {
    host: string;
    user: string;
    port: number;
    timeoutSeconds: number;
    dialAttempts: number;
    /** How its steps become root: none (the user is root) or sudo -n (remote/remoteCommand.ts). */
    become: Become;
}

/** The stack file's `ssh.become`, or its default: none for root, sudo for anyone else. */
export function becomeOf(ssh: { user: string; become?: Become }): Become {
    return ssh.become ?? (ssh.user === "root" ? "none" : "sudo");
}

export function plannedSsh(fleet: Fleet, node: FleetNode): PlannedSsh {
    return {
        host: sshHost(fleet, node),
        user: node.ssh.user,
        port: node.ssh.port,
        timeoutSeconds: fleet.access.sshTimeoutSeconds,
        dialAttempts: 3,
        become: becomeOf(node.ssh),
    };
}

export interface PlannedFile<V> {
    /** Absolute path on the host. */
    path: string;
    mode: number;
    content: V;
}

/**
 * Other launchd jobs that run the same program (an operator's own Nebula job): the step refuses
 * to go on while one is installed, unless it is `adoptLabel`, which it boots out and moves aside
 * before loading its own. `field` is the config path that names `adoptLabel`.
 */
export interface LaunchdTakeover {
    /** The program's file name (`nebula`): a job whose arguments run `…/<program>` is one. */
    program: string;
    field: string;
    adoptLabel?: string;
}

export type ServiceManager =
    | { kind: "systemd"; unit: string }
    /**
     * A LaunchDaemon the delivery installs (`plist`, among its public files) and loads; `program`
     * is the executable the job runs, which must be on the host before anything is installed
     * (`programField`: the config path that names it, if one does).
     */
    | { kind: "launchd"; label: string; plist: string; program: string; programField?: string; takeover?: LaunchdTakeover };

/** A service's files on one host: changing any of them restarts it, then checks it stays up. */
export interface Delivery<V> {
    /** Names the delivery's steps: `<component>-<role>-secrets`, `<component>-<role>-files`. */
    role: string;
    service: ServiceManager;
    /** Keys; written by their own step so only its stdin is secret. */
    secretFiles: PlannedFile<V>[];
    /** Owner of the secret files when the service does not run as root (`user:group`). */
    secretOwner?: string;
    /**
     * Owner of every file (and of the secret files unless `secretOwner` is set) where the files
     * root writes would not get it by themselves: `root:wheel` on macOS, which has no `root`
     * group and gives a new file its directory's group. Unset: root's own (root:root on Linux).
     */
    fileOwner?: string;
    publicFiles: PlannedFile<V>[];
    /** Seconds the service has to come up and stay up after its restart. */
    checkTimeoutSeconds: number;
    /** A Nebula config to pass `nebula -test` with the new files before anything is installed. */
    precheckNebulaConfig?: { name: string; content: V };
    /** After its restart the service must answer on this local TCP port... */
    checkPort?: number;
    /** ...and bring up this link. */
    checkInterface?: string;
    /** Files the service re-reads on reload (systemd ExecReload): a change to only these reloads it. */
    reloadPaths?: string[];
    /**
     * A Nebula certificate among reloadPaths and the networks the plan issued it for: a reload is
     * enough only if they did not move (remote/deliver-files.sh). No networks: never a reload.
     */
    nebulaCert?: { path: string; networks: readonly string[] };
    /**
     * The version of the service's binary that an earlier step on the host installs (the control
     * server's bootstrap), where the program installs one. It is in the files step's payload only
     * so that a new version runs that step again: the bootstrap marks a restart pending before it
     * replaces a binary, and this step then restarts the service and checks it is healthy on the
     * new binary, files changed or not.
     */
    binaryVersion?: string;
    /** What the two steps read on stdin (remote/deliver-files.sh). */
    payloads: { secret: V; public: V; secretSha256: V };
}

const SERVICE_NAME = /^[A-Za-z0-9@._-]+$/;
const OWNER = /^[a-z_][a-z0-9_-]*:[a-z_][a-z0-9_-]*$/;

function serviceName(service: ServiceManager): string {
    switch (service.kind) {
        case "systemd":
            return service.unit;
        case "launchd":
            return service.label;
        default:
            return assertNever(service);
    }
}

export function assertNever(value: never): never {
    throw new Error(`unhandled case ${JSON.stringify(value)}`);
}

type DeliverySpec<V> = Omit<Delivery<V>, "payloads" | "checkTimeoutSeconds"> & { checkTimeoutSeconds?: number };

function deliveryParams<V>(spec: DeliverySpec<V>, restart: boolean, checkTimeoutSeconds: number): Record<string, string> {
    const name = serviceName(spec.service);
    const owner = restart ? spec.fileOwner : (spec.secretOwner ?? spec.fileOwner);
    if (
        !SERVICE_NAME.test(name) ||
        (spec.service.kind === "launchd" && spec.service.takeover?.adoptLabel !== undefined && !SERVICE_NAME.test(spec.service.takeover.adoptLabel)) ||
        (owner !== undefined && !OWNER.test(owner)) ||
        (spec.checkInterface !== undefined && !SERVICE_NAME.test(spec.checkInterface))
    ) {
        throw new Error(`delivery ${spec.role}: service ${JSON.stringify(name)}, owner ${JSON.stringify(owner)} or interface is not a plain name`);
    }
    return {
        STEP: restart ? spec.role : `${spec.role} secrets`,
        SERVICE_MANAGER: spec.service.kind,
        SERVICE: name,
        PLIST: spec.service.kind === "launchd" ? spec.service.plist : "",
        RESTART: restart ? "yes" : "no",
        CHECK_TIMEOUT: String(checkTimeoutSeconds),
        OWNER: owner ?? "",
        SECRET_PATHS: spec.secretFiles.map((file) => file.path).join(" "),
        PRECHECK_NEBULA_CONFIG: spec.precheckNebulaConfig?.name ?? "",
        CHECK_PORT: spec.checkPort === undefined ? "" : String(spec.checkPort),
        CHECK_INTERFACE: spec.checkInterface ?? "",
        RELOAD_PATHS: (spec.reloadPaths ?? []).join(" "),
        NEBULA_CERT: spec.nebulaCert?.path ?? "",
        NEBULA_CERT_NETWORKS: (spec.nebulaCert?.networks ?? []).join(" "),
        // Only where set, so no other host's payload changes for it.
        ...(restart && spec.binaryVersion !== undefined ? { BINARY_VERSION: spec.binaryVersion } : {}),
        ...launchdParams(spec.service),
    };
}

/**
 * The launchd job's own parameters, only in a launchd delivery's payloads (deliver-files.sh reads
 * them only in its launchd code), so no Linux host's payload changes for them.
 */
function launchdParams(service: ServiceManager): Record<string, string> {
    switch (service.kind) {
        case "systemd":
            return {};
        case "launchd":
            return {
                PROGRAM: service.program,
                PROGRAM_FIELD: service.programField ?? "",
                CONFLICT_PROGRAM: service.takeover?.program ?? "",
                ADOPT_LABEL: service.takeover?.adoptLabel ?? "",
                ADOPT_FIELD: service.takeover?.field ?? "",
            };
        default:
            return assertNever(service);
    }
}

function payloadFiles(files: readonly PlannedFile<unknown>[], contents: readonly string[]): PayloadFile[] {
    return files.map((file, index) => ({ target: file.path, mode: file.mode, content: contents[index] }));
}

/** A delivery with its payloads: secrets first (staged), then the rest, which switches both in. */
export function delivery<V>(values: Values<V>, spec: DeliverySpec<V>): Delivery<V> {
    const checkTimeoutSeconds = spec.checkTimeoutSeconds ?? 30;
    const secretParams = deliveryParams(spec, false, checkTimeoutSeconds);
    const publicParams = deliveryParams(spec, true, checkTimeoutSeconds);
    const secretContents = spec.secretFiles.map((file) => file.content);
    return {
        ...spec,
        checkTimeoutSeconds,
        payloads: {
            secret: values.derive(secretContents, (texts) => framedPayload(secretParams, payloadFiles(spec.secretFiles, texts))),
            public: values.derive(
                [...spec.publicFiles.map((file) => file.content), ...(spec.precheckNebulaConfig ? [spec.precheckNebulaConfig.content] : [])],
                (texts) =>
                    framedPayload(publicParams, [
                        ...payloadFiles(spec.publicFiles, texts),
                        ...(spec.precheckNebulaConfig
                            ? [{ target: spec.precheckNebulaConfig.name, mode: 0o600, content: texts[spec.publicFiles.length] }]
                            : []),
                    ]),
            ),
            // Re-runs the public step (and so the restart) when only a key changed.
            secretSha256: values.derive(secretContents, (texts) => createHash("sha256").update(texts.join("\0")).digest("hex")),
        },
    };
}

/** A host that receives files over SSH: Nebula members, DERP relays. */
export interface HostPlan<V> {
    name: string;
    ssh: PlannedSsh;
    deliveries: Delivery<V>[];
}
