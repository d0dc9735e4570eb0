import { existingCaProblems } from "./existingNebulaCa";
import { usesExistingNebulaCa } from "./fleet";
import type { Problem } from "./guards";
import { nebulaMembers } from "./nebulaMembers";
import type { Fleet } from "./schema";
import { knownSecretValue, plaintextSecretProblems, replicaSecretProblems, secretProblems, type SecretReader } from "./secrets";
import { formatProblem, validateFleet } from "./validate";

/*
 * The one check of a stack: the program (stacks/load.ts), `render` and `drift` all call
 * checkStack, so they refuse the same stacks with the same lines. They differ only in how they
 * read the config (the engine's config, or the stack file) and so in what they can know of the
 * secrets (SecretRead); what a reader cannot know is not checked by it.
 */

/** Set by scripts/ssh-switch.sh: moves the program's SSH connections to another path with ssh's own. */
export const SSH_VIA_ENV = "SHORTCIRCUIT_SSH_VIA";

/** Applies the SSH path override before validation, so the guards check the path actually used. */
export function withSshViaOverride(raw: unknown, override: string | undefined): unknown {
    if (override === undefined || override === "" || typeof raw !== "object" || raw === null) {
        return raw;
    }
    const fleet = raw as Record<string, unknown>;
    const access = typeof fleet.access === "object" && fleet.access !== null ? fleet.access : {};
    return { ...fleet, access: { ...access, sshVia: override } };
}

export interface StackCheckOptions {
    /** SHORTCIRCUIT_SSH_VIA: the SSH path every host is reached over, in place of access.sshVia. */
    sshVia?: string;
    /** The clock for the date checks (the CAs' validity); defaults to now. */
    now?: Date;
}

export interface StackCheck {
    /** The validated fleet; present only when there are no errors (warnings allowed). */
    fleet?: Fleet;
    /** Every problem, errors and warnings, in the order they are reported. */
    problems: Problem[];
}

/** The raw `shortcircuit:fleet` value and the stack's secrets, checked: the schema, every guard, the secrets' presence, storage and shape, the operator's Nebula CA. */
export function checkStack(rawFleet: unknown, readSecret: SecretReader, options: StackCheckOptions = {}): StackCheck {
    const now = options.now ?? new Date();
    const validation = validateFleet(withSshViaOverride(rawFleet, options.sshVia), { now });
    const problems = [
        ...validation.problems,
        ...plaintextSecretProblems(readSecret),
        ...secretProblems(readSecret),
        ...(validation.fleet ? nebulaCaProblems(validation.fleet, readSecret, now) : []),
        ...(validation.fleet ? replicaSecretProblems(validation.fleet.controlServer.replica !== undefined, readSecret) : []),
    ];
    const refused = !validation.fleet || problems.some((problem) => problem.severity === "error");
    return refused ? { problems } : { fleet: validation.fleet, problems };
}

/** The `<config path>: <reason>` line of every error: what a command refuses the stack with. */
export function refusalLines(check: StackCheck): string[] {
    return check.problems.filter((problem) => problem.severity === "error").map(formatProblem);
}

const NEBULA_CA_KEYS = ["nebulaCaCert", "nebulaCaKey"] as const;

/**
 * The operator's CA is read (and checked: a CA, unexpired, its key, able to sign every member)
 * only when the fleet uses it; set while unused, it is only a warning.
 */
function nebulaCaProblems(fleet: Fleet, readSecret: SecretReader, now: Date): Problem[] {
    if (!usesExistingNebulaCa(fleet.overlays.nebula.pki)) {
        return NEBULA_CA_KEYS.filter((key) => readSecret(key).state === "set").map((key) => ({
            path: `shortcircuit:${key}`,
            message: 'is set but unused: overlays.nebula.pki uses no existing CA (ca "existing" or rotation.from "existing")',
            severity: "warning" as const,
        }));
    }
    const cert = knownSecretValue(readSecret, "nebulaCaCert");
    const key = knownSecretValue(readSecret, "nebulaCaKey");
    if (cert === null || key === null) {
        // A reader that cannot see both (an encrypted stack file) cannot judge the pair.
        return [];
    }
    return existingCaProblems(cert, key, nebulaMembers(fleet), now).map((problem) => ({
        path: `shortcircuit:${problem.key}`,
        message: problem.message,
        severity: "error" as const,
    }));
}
