import * as pulumi from "@pulumi/pulumi";
import type { Fleet } from "./schema";
import { secretProblems } from "./secrets";
import { FleetConfigError, formatProblem, validateFleet } from "./validate";

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

export function loadStack(): LoadedStack {
    const config = new pulumi.Config("shortcircuit");
    const secretKeys = ["k3sToken", "headscaleNoiseKey", "derpKey"] as const;
    // The plaintext is read only to check its shape; downstream sees secret Outputs.
    const rawSecrets = Object.fromEntries(secretKeys.map((key) => [key, pulumi.runtime.getConfig(`shortcircuit:${key}`)]));
    const result = validateFleet(withSshViaOverride(config.requireObject<unknown>("fleet"), process.env[SSH_VIA_ENV]));
    const problems = [...result.problems, ...secretProblems(rawSecrets)];
    // Every problem, config and secrets alike, fails the run before any resource is declared,
    // so invalid config never reaches a host.
    if (!result.fleet || problems.some((problem) => problem.severity === "error")) {
        throw new FleetConfigError(problems);
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
        },
    };
}
