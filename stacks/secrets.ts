import type { Problem } from "./guards";

/*
 * Checks on the stack's secret config values. They receive the plaintext only to test its
 * shape; no message ever repeats a value.
 */

export const HEADSCALE_KEY_PATTERN = /^privkey:[0-9a-f]{64}$/;

export interface RawSecrets {
    k3sToken?: string;
    headscaleNoiseKey?: string;
    derpKey?: string;
}

/** Every config key the program reads as a secret (stacks/load.ts); none may be stored in plaintext. */
export const SECRET_CONFIG_KEYS = ["k3sToken", "headscaleNoiseKey", "derpKey", "sshPrivateKey", "nebulaCaCert", "nebulaCaKey"] as const;
export type SecretConfigKey = (typeof SECRET_CONFIG_KEYS)[number];

/**
 * A secret key set as plaintext lives unencrypted in the stack file and in every copy of it;
 * Pulumi would still mask it, so nothing else would ever say so. Refuse it instead.
 * `isPlaintext(key)` is true when the key is set and not marked secret.
 */
export function plaintextSecretProblems(isPlaintext: (key: SecretConfigKey) => boolean): Problem[] {
    return SECRET_CONFIG_KEYS.filter(isPlaintext).map((key) => ({
        path: `shortcircuit:${key}`,
        message: `must be set with --secret (it is stored in plaintext): pulumi config set --secret shortcircuit:${key} <value>`,
        severity: "error" as const,
    }));
}

const SET_HINT = (key: string): string => `set it with: pulumi config set --secret shortcircuit:${key} <value>`;

export function secretProblems(secrets: RawSecrets): Problem[] {
    const problems: Problem[] = [];
    const error = (key: string, message: string): void => {
        problems.push({ path: `shortcircuit:${key}`, message, severity: "error" });
    };
    if (!secrets.k3sToken) {
        error("k3sToken", `required secret is missing; ${SET_HINT("k3sToken")}`);
    } else if (/\s/.test(secrets.k3sToken)) {
        error("k3sToken", "must not contain whitespace (it is written as the node's token file)");
    }
    for (const key of ["headscaleNoiseKey", "derpKey"] as const) {
        const value = secrets[key];
        if (!value) {
            error(key, `required secret is missing; generate one with: echo "privkey:$(openssl rand -hex 32)" and ${SET_HINT(key)}`);
        } else if (!HEADSCALE_KEY_PATTERN.test(value)) {
            error(key, "must be privkey: followed by 64 lowercase hex characters (a Curve25519 private key)");
        }
    }
    if (secrets.headscaleNoiseKey && secrets.headscaleNoiseKey === secrets.derpKey) {
        error("derpKey", "must differ from shortcircuit:headscaleNoiseKey: the noise and DERP keys are separate identities");
    }
    return problems;
}
