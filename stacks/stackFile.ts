import * as fs from "node:fs";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";

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

export function readStackFile(filePath: string): StackFile {
    const text = fs.readFileSync(filePath, "utf8");
    const document: unknown = parseYaml(text);
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
