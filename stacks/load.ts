import * as pulumi from "@pulumi/pulumi";
import { nebulaMembers } from "./nebulaMembers";
import { existingCaProblems } from "./existingNebulaCa";
import type { NebulaCaMaterial } from "./existingNebulaCa";
import { usesExistingNebulaCa } from "./fleet";
import type { Problem } from "./guards";
import type { Fleet } from "./schema";
import { plaintextSecretProblems, secretProblems } from "./secrets";
import { formatProblem, validateFleet } from "./validate";

/*
 * The only place the program reads pulumi.Config. Everything downstream receives the
 * validated fleet (plain data) and the secrets as secret Outputs.
 */

export interface StackSecrets {
    /** K3s join token; delivered as a file, never placed in config.yaml. */
    k3sToken: pulumi.Output<string>;
    /** OpenSSH private key the program connects to hosts with; unset means the SSH agent (SSH_AUTH_SOCK). */
    sshPrivateKey?: pulumi.Output<string>;
    /** Headscale's noise key, `privkey:<64 hex>`: clients pin the server by it, so it survives rebuilds. */
    headscaleNoiseKey: pulumi.Output<string>;
    /** The embedded DERP server's key, `privkey:<64 hex>`, different from the noise key. */
    derpKey: pulumi.Output<string>;
    /** The operator's Nebula CA (nebulaCaCert, nebulaCaKey), read only when `overlays.nebula.pki` uses the existing CA. */
    nebulaCa?: pulumi.Output<NebulaCaMaterial>;
}

export interface LoadedStack {
    stack: string;
    fleet: Fleet;
    secrets: StackSecrets;
}

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

/**
 * Whether the engine passed a config key as a secret. The SDK keeps this in its config store
 * (runtime.isConfigSecret, exported but not declared); older SDKs only have the environment.
 */
function isConfigSecret(fullKey: string): boolean {
    const runtime = pulumi.runtime as unknown as { isConfigSecret?: (key: string) => boolean };
    if (typeof runtime.isConfigSecret === "function") {
        return runtime.isConfigSecret(fullKey);
    }
    const keys: unknown = JSON.parse(process.env.PULUMI_CONFIG_SECRET_KEYS ?? "[]");
    return Array.isArray(keys) && keys.includes(fullKey);
}

/**
 * Fails the run with exactly the `<config path>: <reason>` lines. A RunError is the error the
 * engine prints without "unhandled exception", stack trace or object dump, in preview and up.
 */
export function configRunError(lines: readonly string[]): pulumi.RunError {
    return new pulumi.RunError(lines.join("\n"));
}

export function loadStack(): LoadedStack {
    const config = new pulumi.Config("shortcircuit");
    const secretKeys = ["k3sToken", "headscaleNoiseKey", "derpKey"] as const;
    // The plaintext is read only to check its shape; downstream sees secret Outputs.
    const rawSecrets = Object.fromEntries(secretKeys.map((key) => [key, pulumi.runtime.getConfig(`shortcircuit:${key}`)]));
    let rawFleet: unknown;
    try {
        rawFleet = config.requireObject<unknown>("fleet");
    } catch (error) {
        throw configRunError([`shortcircuit:fleet: ${(error as Error).message.split("\n")[0]}`]);
    }
    const result = validateFleet(withSshViaOverride(rawFleet, process.env[SSH_VIA_ENV]));
    const plaintext = plaintextSecretProblems((key) => pulumi.runtime.getConfig(`shortcircuit:${key}`) !== undefined && !isConfigSecret(`shortcircuit:${key}`));
    const problems = [...result.problems, ...plaintext, ...secretProblems(rawSecrets), ...(result.fleet ? nebulaCaSecretProblems(result.fleet) : [])];
    // Every problem, config and secrets alike, fails the run before any resource is declared,
    // so invalid config never reaches a host.
    const errors = problems.filter((problem) => problem.severity === "error");
    if (!result.fleet || errors.length > 0) {
        throw configRunError(errors.map(formatProblem));
    }
    for (const warning of problems) {
        void pulumi.log.warn(formatProblem(warning));
    }
    return {
        stack: pulumi.getStack(),
        fleet: result.fleet,
        secrets: {
            k3sToken: config.requireSecret("k3sToken"),
            sshPrivateKey: config.getSecret("sshPrivateKey"),
            headscaleNoiseKey: config.requireSecret("headscaleNoiseKey"),
            derpKey: config.requireSecret("derpKey"),
            nebulaCa: usesExistingNebulaCa(result.fleet.overlays.nebula.pki)
                ? pulumi.secret(
                      pulumi
                          .all([config.requireSecret("nebulaCaCert"), config.requireSecret("nebulaCaKey")])
                          .apply(([certPem, keyPem]) => ({ certPem, keyPem })),
                  )
                : undefined,
        },
    };
}

const NEBULA_CA_KEYS = ["nebulaCaCert", "nebulaCaKey"] as const;

/**
 * The operator's CA is read (and checked: a CA, unexpired, its key, able to sign every member)
 * only when the fleet uses it; set while unused, it is only a warning.
 */
function nebulaCaSecretProblems(fleet: Fleet): Problem[] {
    if (!usesExistingNebulaCa(fleet.overlays.nebula.pki)) {
        return NEBULA_CA_KEYS.filter((key) => pulumi.runtime.getConfig(`shortcircuit:${key}`) !== undefined).map((key) => ({
            path: `shortcircuit:${key}`,
            message: 'is set but unused: overlays.nebula.pki uses no existing CA (ca "existing" or rotation.from "existing")',
            severity: "warning" as const,
        }));
    }
    const read = (key: (typeof NEBULA_CA_KEYS)[number]): string | undefined => pulumi.runtime.getConfig(`shortcircuit:${key}`);
    return existingCaProblems(read("nebulaCaCert"), read("nebulaCaKey"), nebulaMembers(fleet), new Date()).map(({ key, message }) => ({
        path: `shortcircuit:${key}`,
        message,
        severity: "error" as const,
    }));
}
