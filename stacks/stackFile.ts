import * as fs from "node:fs";
import * as path from "node:path";
import { isScalar, parseDocument, visit } from "yaml";
import { checkStack, type StackCheck, type StackCheckOptions } from "./check";
import type { SecretReader } from "./secrets";

/*
 * Reads a Pulumi.<stack>.yaml without the Pulumi CLI, for the offline `render` command and
 * the tests. The Pulumi program itself reads the same values through stacks/load.ts.
 */

export const CONFIG_NAMESPACE = "shortcircuit";
export const FLEET_KEY = `${CONFIG_NAMESPACE}:fleet`;

/** The project root, where Pulumi.yaml and the stack files live. */
export const PROJECT_ROOT = path.resolve(__dirname, "..");

export function stackFilePath(stack: string): string {
    return path.join(PROJECT_ROOT, `Pulumi.${stack}.yaml`);
}

export interface StackFile {
    path: string;
    /** `config:` with the `shortcircuit:` namespace stripped; secure values stay as `{ secure: ... }`. */
    config: Record<string, unknown>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

// A YAML timestamp as a plain scalar: a date, or a date and a UTC time.
// (Go also takes one-digit months and days; fractional seconds are left alone, refused either way.)
const PLAIN_TIMESTAMP = /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[Tt ](\d{2}:\d{2}:\d{2})Z)?$/;

/**
 * The Pulumi CLI reads stack files with Go's YAML decoder, which turns an unquoted timestamp
 * into a time and hands the program its Go spelling, `2026-11-01 00:00:00 +0000 UTC`. A YAML
 * 1.2 parser keeps `2026-11-01`. Rewriting such plain scalars the way Pulumi does makes render
 * validate exactly what the program will see. (Timestamps with a zone offset keep their text:
 * the date grammar refuses them in either spelling.)
 */
function asPulumiPassesIt(document: ReturnType<typeof parseDocument>): void {
    visit(document, {
        Scalar(_key, node) {
            if (isScalar(node) && node.type === "PLAIN" && typeof node.value === "string") {
                const match = PLAIN_TIMESTAMP.exec(node.value);
                if (match) {
                    const [, year, month, day, time] = match;
                    node.value = `${year}-${month.padStart(2, "0")}-${day.padStart(2, "0")} ${time ?? "00:00:00"} +0000 UTC`;
                }
            }
        },
    });
}

export function readStackFile(filePath: string): StackFile {
    const text = fs.readFileSync(filePath, "utf8");
    const parsed = parseDocument(text);
    if (parsed.errors.length > 0) {
        throw new Error(`${filePath}: not valid YAML: ${parsed.errors[0].message.split("\n")[0]}`);
    }
    asPulumiPassesIt(parsed);
    const document: unknown = parsed.toJS();
    if (!isRecord(document) || !isRecord(document.config)) {
        throw new Error(`${filePath}: no "config:" map; is this a Pulumi stack file?`);
    }
    const config: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(document.config)) {
        if (key.startsWith(`${CONFIG_NAMESPACE}:`)) {
            config[key.slice(CONFIG_NAMESPACE.length + 1)] = value;
        }
    }
    return { path: filePath, config };
}

/** The raw (unvalidated) fleet object of a stack file. */
export function rawFleetFromStackFile(file: StackFile): unknown {
    if (!("fleet" in file.config)) {
        throw new Error(`${file.path}: missing ${FLEET_KEY}`);
    }
    return file.config.fleet;
}

function isSecureValue(value: unknown): boolean {
    return isRecord(value) && Object.keys(value).length === 1 && typeof value.secure === "string";
}

/**
 * The stack file as checkStack reads secrets: a `secure:` value is set and secret, its plaintext
 * out of reach (decrypting it takes the Pulumi CLI); a plain value is set in plaintext; an absent
 * key is unknown, since an operator's stack file need not hold the secrets.
 */
export function stackFileSecrets(file: StackFile): SecretReader {
    return (key) => {
        if (!(key in file.config)) {
            return { state: "unknown" };
        }
        const value = file.config[key];
        if (isSecureValue(value)) {
            return { state: "set", secret: true };
        }
        // As the engine hands the program a non-string value: its JSON text.
        return { state: "set", secret: false, value: typeof value === "string" ? value : JSON.stringify(value) };
    };
}

/** checkStack on a stack file, as the offline commands read it. Throws when the file holds no fleet. */
export function checkStackFile(file: StackFile, options: StackCheckOptions = {}): StackCheck {
    return checkStack(rawFleetFromStackFile(file), stackFileSecrets(file), options);
}
