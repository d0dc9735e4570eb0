/**
 * Loading config.yaml and its drop-ins the way k3s merges them, and checking every key and
 * value against k3s's flags for the host's role.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { AGENT_KEYS, CONFIG_DROPIN_DIR, CONFIG_FILE, CRITICAL_DEFAULTS, SERVER_ONLY_KEYS } from "./constants";
import type { Kind } from "./constants";
import type { LabRole, LoadedConfigFile } from "./types";
import { isRecord, sha256 } from "./util";

export interface LoadedConfig {
    files: LoadedConfigFile[];
    merged: Record<string, unknown>;
    sha: string;
}

export function readConfigFiles(): LoadedConfig {
    const files: LoadedConfigFile[] = [];
    const paths: string[] = [];
    if (fs.existsSync(CONFIG_FILE)) paths.push(CONFIG_FILE);
    if (fs.existsSync(CONFIG_DROPIN_DIR)) {
        for (const f of fs
            .readdirSync(CONFIG_DROPIN_DIR)
            .filter((x) => x.endsWith(".yaml"))
            .sort()) {
            paths.push(path.join(CONFIG_DROPIN_DIR, f));
        }
    }
    const merged: Record<string, unknown> = {};
    const errors: string[] = [];
    for (const p of paths) {
        const text = fs.readFileSync(p, "utf8");
        files.push({ path: p, sha256: sha256(text), text });
        let doc: unknown;
        try {
            doc = YAML.parse(text) as unknown;
        } catch (e) {
            errors.push(`${p}: invalid YAML: ${(e as Error).message.split("\n")[0]}`);
            continue;
        }
        if (doc === null || doc === undefined) continue;
        if (!isRecord(doc)) {
            errors.push(`${p}: top level must be a mapping of k3s flags`);
            continue;
        }
        for (const [rawKey, value] of Object.entries(doc)) {
            if (rawKey.endsWith("+")) {
                const key = rawKey.slice(0, -1);
                const prev = merged[key];
                const prevList = prev === undefined ? [] : Array.isArray(prev) ? (prev as unknown[]) : [prev];
                merged[key] = [...prevList, ...(Array.isArray(value) ? (value as unknown[]) : [value])];
            } else {
                merged[rawKey] = value;
            }
        }
    }
    const sha = sha256(files.map((f) => `${f.path}\n${f.sha256}`).join("\n"));
    if (errors.length > 0) throw new StartError(errors.join("; "), { files, merged, sha });
    return { files, merged, sha };
}

export class StartError extends Error {
    loaded: LoadedConfig | null;
    constructor(message: string, loaded: LoadedConfig | null) {
        super(message);
        this.loaded = loaded;
    }
}

export function keyKinds(role: LabRole): Record<string, Kind> {
    return role === "server" ? { ...AGENT_KEYS, ...SERVER_ONLY_KEYS } : { ...AGENT_KEYS };
}

/** Normalised config: lists are string[], bools boolean, others string. */
export type Normalised = Record<string, string | string[] | boolean>;

export function normalise(role: LabRole, merged: Record<string, unknown>): { cfg: Normalised; errors: string[] } {
    const kinds = keyKinds(role);
    const cfg: Normalised = {};
    const errors: string[] = [];
    for (const [key, value] of Object.entries(merged)) {
        const kind = kinds[key];
        if (kind === undefined) {
            const serverOnly = role === "agent" && SERVER_ONLY_KEYS[key] !== undefined;
            errors.push(
                serverOnly
                    ? `flag provided but not defined: -${key} (config key "${key}" is a k3s server flag; this host runs k3s agent)`
                    : `flag provided but not defined: -${key} (unknown config key "${key}")`,
            );
            continue;
        }
        if (value === null || value === undefined) continue;
        const scalar = (v: unknown): string | null => (typeof v === "string" ? v : typeof v === "number" || typeof v === "boolean" ? String(v) : null);
        switch (kind) {
            case "bool":
                if (typeof value === "boolean") cfg[key] = value;
                else if (value === "true" || value === "false") cfg[key] = value === "true";
                else errors.push(`invalid boolean value ${JSON.stringify(value)} for flag -${key}`);
                break;
            case "int":
                if (typeof value === "number" && Number.isInteger(value)) cfg[key] = String(value);
                else if (typeof value === "string" && /^-?\d+$/.test(value)) cfg[key] = value;
                else errors.push(`invalid integer value ${JSON.stringify(value)} for flag -${key}`);
                break;
            case "string": {
                const s = scalar(value);
                if (s === null) errors.push(`invalid value for flag -${key}: expected a string, got ${Array.isArray(value) ? "a list" : "a mapping"}`);
                else cfg[key] = s;
                break;
            }
            case "list": {
                const items = Array.isArray(value) ? (value as unknown[]) : [value];
                const strs: string[] = [];
                for (const item of items) {
                    const s = scalar(item);
                    if (s === null) {
                        errors.push(`invalid value for flag -${key}: list items must be scalars`);
                        break;
                    }
                    // urfave/cli string slices split on commas
                    strs.push(
                        ...s
                            .split(",")
                            .map((x) => x.trim())
                            .filter((x) => x !== ""),
                    );
                }
                cfg[key] = strs;
                break;
            }
        }
    }
    return { cfg, errors };
}

export function list(cfg: Normalised, key: string): string[] {
    const v = cfg[key];
    return Array.isArray(v) ? v : [];
}
export function str(cfg: Normalised, key: string): string | undefined {
    const v = cfg[key];
    return typeof v === "string" ? v : undefined;
}
export function bool(cfg: Normalised, key: string): boolean {
    return cfg[key] === true;
}

export function criticalOf(cfg: Normalised): Record<string, string> {
    const result: Record<string, string> = {};
    for (const [key, def] of Object.entries(CRITICAL_DEFAULTS)) {
        const v = cfg[key];
        if (v === undefined) result[key] = def;
        else if (Array.isArray(v)) result[key] = key === "disable" ? [...v].sort().join(",") : v.join(",");
        else result[key] = String(v);
    }
    return result;
}

export function urlHost(url: string): string | null {
    const m = /^https:\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(url);
    if (!m || m[1] === undefined) return null;
    return m[1].replace(/^\[|\]$/g, "");
}
