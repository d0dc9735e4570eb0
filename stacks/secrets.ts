import type { Problem } from "./guards";

/*
 * Checks on the stack's secret config values. They receive the plaintext only to test its
 * shape; no message ever repeats a value.
 */

export const HEADSCALE_KEY_PATTERN = /^privkey:[0-9a-f]{64}$/;

/** Every config key the program reads as a secret (stacks/load.ts); none may be stored in plaintext. */
export const SECRET_CONFIG_KEYS = [
    "k3sToken",
    "headscaleNoiseKey",
    "derpKey",
    "sshPrivateKey",
    "nebulaCaCert",
    "nebulaCaKey",
    "replicaAccessKeyId",
    "replicaSecretAccessKey",
] as const;
export type SecretConfigKey = (typeof SECRET_CONFIG_KEYS)[number];

/**
 * What one reader of the stack's config knows of a secret key. The program reads the engine's
 * config, which holds every key that is set, decrypted; the offline commands (render, drift)
 * read the stack file, which need not hold the secrets and holds them encrypted when it does.
 * A check that needs what a reader cannot know is skipped for that reader, never guessed.
 */
export type SecretRead =
    /** Known not to be set. */
    | { state: "unset" }
    /** This reader cannot tell whether the key is set. */
    | { state: "unknown" }
    /** Set; `secret` is false for a value stored in plaintext; `value` when the reader can see it. */
    | { state: "set"; secret: boolean; value?: string };

export type SecretReader = (key: SecretConfigKey) => SecretRead;

/**
 * A secret key set as plaintext lives unencrypted in the stack file and in every copy of it;
 * Pulumi would still mask it, so nothing else would ever say so. Refuse it instead.
 */
export function plaintextSecretProblems(read: SecretReader): Problem[] {
    const isPlaintext = (key: SecretConfigKey): boolean => {
        const known = read(key);
        return known.state === "set" && !known.secret;
    };
    return SECRET_CONFIG_KEYS.filter(isPlaintext).map((key) => ({
        path: `shortcircuit:${key}`,
        message: `must be set with --secret (it is stored in plaintext): pulumi config set --secret shortcircuit:${key} <value>`,
        severity: "error" as const,
    }));
}

const SET_HINT = (key: string): string => `set it with: pulumi config set --secret shortcircuit:${key} <value>`;

/**
 * What a secret holds, as far as the reader knows: `undefined` when it is not set (an empty
 * value counts as not set), `null` when the reader cannot tell.
 */
export function knownSecretValue(read: SecretReader, key: SecretConfigKey): string | undefined | null {
    const known = read(key);
    if (known.state === "unset") {
        return undefined;
    }
    if (known.state === "set" && known.value !== undefined) {
        return known.value === "" ? undefined : known.value;
    }
    return null;
}

/** The secrets every stack needs, by their shape (the values are never repeated). */
export function secretProblems(read: SecretReader): Problem[] {
    const problems: Problem[] = [];
    const error = (key: string, message: string): void => {
        problems.push({ path: `shortcircuit:${key}`, message, severity: "error" });
    };
    const k3sToken = knownSecretValue(read, "k3sToken");
    if (k3sToken === undefined) {
        error("k3sToken", `required secret is missing; ${SET_HINT("k3sToken")}`);
    } else if (k3sToken !== null && /\s/.test(k3sToken)) {
        error("k3sToken", "must not contain whitespace (it is written as the node's token file)");
    }
    const keys = { headscaleNoiseKey: knownSecretValue(read, "headscaleNoiseKey"), derpKey: knownSecretValue(read, "derpKey") };
    for (const key of ["headscaleNoiseKey", "derpKey"] as const) {
        const value = keys[key];
        if (value === undefined) {
            error(key, `required secret is missing; generate one with: echo "privkey:$(openssl rand -hex 32)" and ${SET_HINT(key)}`);
        } else if (value !== null && !HEADSCALE_KEY_PATTERN.test(value)) {
            error(key, "must be privkey: followed by 64 lowercase hex characters (a Curve25519 private key)");
        }
    }
    if (typeof keys.headscaleNoiseKey === "string" && keys.headscaleNoiseKey === keys.derpKey) {
        error("derpKey", "must differ from shortcircuit:headscaleNoiseKey: the noise and DERP keys are separate identities");
    }
    return problems;
}

export const REPLICA_SECRET_KEYS = ["replicaAccessKeyId", "replicaSecretAccessKey"] as const;

/**
 * An S3 key id or secret as it may appear in Litestream's systemd EnvironmentFile: one word of the
 * characters S3 and Spaces keys are made of (base64 and -_.), so no quote, backslash, `$` or
 * newline can change how systemd (or Litestream's ${VAR} expansion) reads the line.
 */
export const REPLICA_SECRET_PATTERN = /^[A-Za-z0-9+/=._-]{1,256}$/;

/**
 * The replica's credentials: required when `controlServer.replica` is set (Litestream could
 * neither replicate nor restore without them), a warning when set without it.
 */
export function replicaSecretProblems(replicaConfigured: boolean, read: SecretReader): Problem[] {
    if (!replicaConfigured) {
        return REPLICA_SECRET_KEYS.filter((key) => read(key).state === "set").map((key) => ({
            path: `shortcircuit:${key}`,
            message: "is set but unused: fleet.controlServer.replica is not set",
            severity: "warning" as const,
        }));
    }
    const problems: Problem[] = [];
    for (const key of REPLICA_SECRET_KEYS) {
        const value = knownSecretValue(read, key);
        if (value === undefined) {
            problems.push({
                path: `shortcircuit:${key}`,
                message: `required secret is missing (controlServer.replica is set); ${SET_HINT(key)}`,
                severity: "error",
            });
        } else if (value !== null && !REPLICA_SECRET_PATTERN.test(value)) {
            problems.push({
                path: `shortcircuit:${key}`,
                message: "must be one word of letters, digits and + / = . _ - (an S3 access key id or secret), at most 256 characters",
                severity: "error",
            });
        }
    }
    return problems;
}
