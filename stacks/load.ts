import * as pulumi from "@pulumi/pulumi";
import { SSH_VIA_ENV, checkStack, refusalLines } from "./check";
import type { NebulaCaMaterial } from "./existingNebulaCa";
import { usesExistingNebulaCa } from "./fleet";
import type { Fleet } from "./schema";
import type { SecretReader } from "./secrets";
import { formatProblem } from "./validate";

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
    /** The S3 credentials of `controlServer.replica`, read only when it is set. */
    replica?: { accessKeyId: pulumi.Output<string>; secretAccessKey: pulumi.Output<string> };
}

export interface LoadedStack {
    stack: string;
    fleet: Fleet;
    secrets: StackSecrets;
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

/** The engine's config as checkStack reads secrets: every set key, decrypted, and whether it is marked secret. */
const readConfigSecret: SecretReader = (key) => {
    const value = pulumi.runtime.getConfig(`shortcircuit:${key}`);
    return value === undefined ? { state: "unset" } : { state: "set", secret: isConfigSecret(`shortcircuit:${key}`), value };
};

/**
 * Ends the run on a refusal found after the program started (an async check): prints the lines
 * and exits with the code the SDK uses once it has printed an error itself (cmd/run's
 * nodeJSProcessExitedAfterLoggingUserActionableMessage, 32). A rejected main() is also reported,
 * but CLI v3.274.0 with SDK 3.270.0 then takes 45-90 s to end the run (measured on the real
 * engine); this takes a few. Anything but a RunError is left to the SDK's own handler.
 */
export async function endRefusedRun(error: unknown): Promise<void> {
    if (pulumi.RunError.isInstance(error)) {
        await pulumi.log.error(error.message);
        process.exit(EXIT_AFTER_REPORTED_ERROR);
    }
}

const EXIT_AFTER_REPORTED_ERROR = 32;

export function loadStack(): LoadedStack {
    const config = new pulumi.Config("shortcircuit");
    let rawFleet: unknown;
    try {
        rawFleet = config.requireObject<unknown>("fleet");
    } catch (error) {
        throw configRunError([`shortcircuit:fleet: ${(error as Error).message.split("\n")[0]}`]);
    }
    // The plaintext of the secrets is read only to check its shape; downstream sees secret Outputs.
    const check = checkStack(rawFleet, readConfigSecret, { sshVia: process.env[SSH_VIA_ENV] });
    // Every problem, config and secrets alike, fails the run before any resource is declared,
    // so invalid config never reaches a host.
    if (!check.fleet) {
        throw configRunError(refusalLines(check));
    }
    const fleet = check.fleet;
    for (const warning of check.problems) {
        void pulumi.log.warn(formatProblem(warning));
    }
    return {
        stack: pulumi.getStack(),
        fleet,
        secrets: {
            k3sToken: config.requireSecret("k3sToken"),
            sshPrivateKey: config.getSecret("sshPrivateKey"),
            headscaleNoiseKey: config.requireSecret("headscaleNoiseKey"),
            derpKey: config.requireSecret("derpKey"),
            nebulaCa: usesExistingNebulaCa(fleet.overlays.nebula.pki)
                ? pulumi.secret(
                      pulumi
                          .all([config.requireSecret("nebulaCaCert"), config.requireSecret("nebulaCaKey")])
                          .apply(([certPem, keyPem]) => ({ certPem, keyPem })),
                  )
                : undefined,
            replica: fleet.controlServer.replica
                ? { accessKeyId: config.requireSecret("replicaAccessKeyId"), secretAccessKey: config.requireSecret("replicaSecretAccessKey") }
                : undefined,
        },
    };
}
