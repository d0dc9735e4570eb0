/*
 * `npm run stack-schema [-- --check]`
 *
 * Writes, from the zod schema the program validates with (stacks/schema.ts), the two committed
 * documents operators read and editors load:
 *   docs/stack-file.schema.json  a JSON Schema (draft 2020-12) of a whole Pulumi.<stack>.yaml
 *   docs/config-reference.md     the config reference, rendered from that JSON Schema
 * Descriptions and defaults come from the schema itself (`.describe()`, `.default()`, grammar
 * titles), so the reference cannot drift from what validates. --check writes nothing and exits 1
 * naming each stale file; the tests (test/scripts/stackSchema.test.ts) do the same comparison.
 *
 * Both outputs are stable (no timestamps; fields in schema order), and the JSON is printed the
 * way Prettier prints it, so `prettier --check` and this generator agree byte for byte.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { FleetSchema } from "../stacks/schema";
import { SECRET_CONFIG_KEYS, type SecretConfigKey } from "../stacks/secrets";
import { CONFIG_NAMESPACE, FLEET_KEY, PROJECT_ROOT } from "../stacks/stackFile";

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
    [key: string]: Json;
}

export const JSON_SCHEMA_PATH = "docs/stack-file.schema.json";
export const REFERENCE_PATH = "docs/config-reference.md";
const COMMAND = "npm run stack-schema";

/** What each secret config key holds; a key added to SECRET_CONFIG_KEYS fails to compile until it is described here. */
const SECRET_DESCRIPTIONS: Record<SecretConfigKey, string> = {
    k3sToken:
        "Required. The K3s join token (no whitespace), delivered as /etc/rancher/k3s/cluster-token (`token-file`), never inside config.yaml. Generate one with `openssl rand -hex 32`.",
    headscaleNoiseKey:
        'Required. Headscale\'s noise key, `privkey:` followed by 64 lowercase hex (`echo "privkey:$(openssl rand -hex 32)"`). Clients pin the server by it, so it survives rebuilds.',
    derpKey: "Required. The embedded DERP server's key, in the same format, different from the noise key.",
    sshPrivateKey: "Optional. An OpenSSH private key the program connects to hosts with; without it, the SSH agent (SSH_AUTH_SOCK) is used.",
    nebulaCaCert:
        "Only with `overlays.nebula.pki.ca: existing` or a rotation from it: the operator's Nebula CA certificate (PEM), so adopted hosts keep trusting it. Set while unused, it is a warning.",
    nebulaCaKey: "Only with `nebulaCaCert`: the operator's Nebula CA private key (PEM).",
    replicaAccessKeyId:
        "Only with `controlServer.replica`: the S3 access key id (a Spaces access key) Litestream writes and restores Headscale's database with. Set while unused, it is a warning.",
    replicaSecretAccessKey: "Only with `controlServer.replica`: that access key's secret.",
};

// Keys of a schema object whose values are schemas, or maps or lists of schemas.
const SUBSCHEMA = new Set(["items", "additionalProperties", "propertyNames", "not"]);
const SUBSCHEMA_MAPS = new Set(["properties", "patternProperties"]);
const SUBSCHEMA_LISTS = new Set(["anyOf", "oneOf", "allOf"]);
const LEADING_KEYS = ["$schema", "$comment", "title", "description", "type", "const", "enum", "default"];

function isObject(value: Json | undefined): value is JsonObject {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Annotations first (title, description, type …), then the rest in zod's order; property names keep schema order. */
function tidy(schema: Json): Json {
    if (!isObject(schema)) {
        return schema;
    }
    const keys = [...LEADING_KEYS.filter((key) => key in schema), ...Object.keys(schema).filter((key) => !LEADING_KEYS.includes(key))];
    const result: JsonObject = {};
    for (const key of keys) {
        const value = schema[key];
        if (SUBSCHEMA.has(key)) {
            result[key] = tidy(value);
        } else if (SUBSCHEMA_MAPS.has(key) && isObject(value)) {
            result[key] = Object.fromEntries(Object.entries(value).map(([name, sub]) => [name, tidy(sub)]));
        } else if (SUBSCHEMA_LISTS.has(key) && Array.isArray(value)) {
            result[key] = value.map(tidy);
        } else {
            result[key] = value;
        }
    }
    return result;
}

/** The fleet schema as the editor sees it: the input side (defaults optional), refinements unrepresented. */
function fleetJsonSchema(): JsonObject {
    const generated = JSON.parse(JSON.stringify(z.toJSONSchema(FleetSchema, { io: "input", unrepresentable: "any" }))) as JsonObject;
    delete generated.$schema;
    return tidy(generated) as JsonObject;
}

function secretJsonSchema(key: SecretConfigKey): JsonObject {
    return {
        description: SECRET_DESCRIPTIONS[key],
        type: "object",
        properties: {
            secure: { description: "The ciphertext Pulumi writes for `pulumi config set --secret`.", type: "string", minLength: 1 },
        },
        required: ["secure"],
        additionalProperties: false,
    };
}

function escapeRegExp(text: string): string {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The JSON Schema of a whole Pulumi.<stack>.yaml: Pulumi's top-level keys, the fleet and the secrets under `config`. */
export function stackFileJsonSchema(): JsonObject {
    const ownKeys = [FLEET_KEY, ...SECRET_CONFIG_KEYS.map((key) => `${CONFIG_NAMESPACE}:${key}`)];
    const configProperties: JsonObject = { [FLEET_KEY]: fleetJsonSchema() };
    for (const key of SECRET_CONFIG_KEYS) {
        configProperties[`${CONFIG_NAMESPACE}:${key}`] = secretJsonSchema(key);
    }
    const unknownOwnKey = `^${escapeRegExp(CONFIG_NAMESPACE)}:(?!(?:${ownKeys.map((key) => escapeRegExp(key.slice(CONFIG_NAMESPACE.length + 1))).join("|")})$)`;
    return {
        $schema: "https://json-schema.org/draft/2020-12/schema",
        $comment: `Generated by \`${COMMAND}\` from stacks/schema.ts; do not edit. Reference: ${REFERENCE_PATH}.`,
        title: "shortcircuit stack file (Pulumi.<stack>.yaml)",
        description:
            "A stack's settings: the fleet under `shortcircuit:fleet`, the secrets as `pulumi config set --secret` writes them, and any other namespace's keys. Shapes, enums, patterns and ranges only: `npm run render` and `pulumi preview` also check each grammar and every cross-field rule.",
        type: "object",
        properties: {
            config: {
                description: `The stack's configuration. Keys are \`<namespace>:<name>\`; other namespaces' keys (e.g. digitalocean:token) pass unchecked, and \`${CONFIG_NAMESPACE}:\` keys other than these are refused: the program reads no others.`,
                type: "object",
                properties: configProperties,
                required: [FLEET_KEY],
                patternProperties: { [unknownOwnKey]: false },
            },
            secretsprovider: { description: "Pulumi: the secrets provider that encrypts this stack's secrets.", type: "string" },
            encryptedkey: { description: "Pulumi: the KMS-encrypted data key (cloud secrets providers).", type: "string" },
            encryptionsalt: { description: "Pulumi: the encryption salt (passphrase secrets provider).", type: "string" },
            environment: { description: "Pulumi ESC: the environments this stack imports." },
        },
        required: ["config"],
        additionalProperties: false,
    };
}

// ---------------------------------------------------------------------------------------------
// JSON exactly as Prettier prints it (printWidth 160, tabWidth 4): objects stay expanded when
// written expanded; an array of scalars goes on one line when it fits, else one item a line; an
// array holding an object breaks.

const PRINT_WIDTH = 160;
const INDENT = "    ";

function isExpandedObject(value: Json): boolean {
    return isObject(value) && Object.keys(value).length > 0;
}

function printJson(value: Json, indent: string, lineSoFar: number, suffix: string): string {
    if (Array.isArray(value)) {
        if (value.length === 0) {
            return "[]";
        }
        const inner = indent + INDENT;
        if (!value.some((item) => isExpandedObject(item) || (Array.isArray(item) && item.length > 0))) {
            const flat = `[${value.map((item) => JSON.stringify(item)).join(", ")}]`;
            if (lineSoFar + flat.length + suffix.length <= PRINT_WIDTH) {
                return flat;
            }
            if (value.some((item) => typeof item === "number")) {
                throw new Error("a long array of numbers: Prettier would fill it, which this printer does not do");
            }
        }
        const items = value.map((item, index) => inner + printJson(item, inner, inner.length, index < value.length - 1 ? "," : ""));
        return `[\n${items.join(",\n")}\n${indent}]`;
    }
    if (isObject(value)) {
        const entries = Object.entries(value);
        if (entries.length === 0) {
            return "{}";
        }
        const inner = indent + INDENT;
        const lines = entries.map(([key, item], index) => {
            const head = `${inner}${JSON.stringify(key)}: `;
            return head + printJson(item, inner, head.length, index < entries.length - 1 ? "," : "");
        });
        return `{\n${lines.join(",\n")}\n${indent}}`;
    }
    return JSON.stringify(value);
}

export function formatJson(value: Json): string {
    return `${printJson(value, "", 0, "")}\n`;
}

// ---------------------------------------------------------------------------------------------
// The reference, rendered from the JSON Schema.

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function code(text: string): string {
    const ticks = text.includes("`") ? "``" : "`";
    return `${ticks}${text}${ticks}`;
}

/** A table cell: one line, pipes escaped (GitHub tables split on them, even inside code). */
function cell(text: string): string {
    return text.replace(/\s*\n\s*/g, " ").replace(/\|/g, "\\|");
}

/** GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens. */
function anchor(heading: string): string {
    return heading
        .toLowerCase()
        .replace(/[^a-z0-9 _-]/g, "")
        .replace(/ /g, "-");
}

function scalar(value: Json): string {
    return typeof value === "string" ? value : JSON.stringify(value);
}

function hasProperties(schema: JsonObject): boolean {
    return isObject(schema.properties);
}

/** The object variants of a union (`kind: droplet` / `kind: existing`), each named by its const discriminator. */
function objectVariants(schema: JsonObject): { label: string; schema: JsonObject }[] {
    const options = (schema.oneOf ?? schema.anyOf) as Json[] | undefined;
    if (!Array.isArray(options) || !options.every((option) => isObject(option) && hasProperties(option))) {
        return [];
    }
    return (options as JsonObject[]).map((option, index) => {
        const properties = option.properties as JsonObject;
        const discriminator = Object.entries(properties).find(([, property]) => isObject(property) && property.const !== undefined);
        const label = discriminator ? `${discriminator[0]}: ${scalar((discriminator[1] as JsonObject).const)}` : `variant ${index + 1}`;
        return { label, schema: option };
    });
}

/** One object's part of the reference: headed by its config path (`fleet.nodes[]`), which its fields extend. */
interface Section {
    heading: string;
    path: string;
    schema: JsonObject;
}

function link(heading: string): string {
    return `[${heading}](#${anchor(heading)})`;
}

/** The sections a field leads to: an object, a list of objects (`path[]`), or each variant of a union. */
function childSections(schema: JsonObject, childPath: string): Section[] {
    const variants = objectVariants(schema);
    if (variants.length > 0) {
        return variants.map((variant) => ({ heading: `${childPath} (${variant.label})`, path: childPath, schema: variant.schema }));
    }
    if (schema.type === "array" && isObject(schema.items) && hasProperties(schema.items)) {
        const items = schema.items;
        // A list's items are described by the list.
        return [
            {
                heading: `${childPath}[]`,
                path: `${childPath}[]`,
                schema: items.description === undefined ? { ...items, description: schema.description ?? null } : items,
            },
        ];
    }
    return hasProperties(schema) ? [{ heading: childPath, path: childPath, schema }] : [];
}

/** The field's type, naming the grammar (title) and linking to the sections of nested objects. */
function typeText(schema: JsonObject, sections: Section[]): string {
    if (sections.length > 1) {
        return `object, one of ${sections.map((section) => link(section.heading)).join(", ")}`;
    }
    const options = (schema.anyOf ?? schema.oneOf) as Json[] | undefined;
    if (Array.isArray(options)) {
        // `string (\`*\` or http(s) URL)` when every option is one type told apart by value or grammar; else `string or integer`.
        const parts = options.filter(isObject).map((option) => ({
            base: option.const !== undefined ? typeof option.const : scalar(option.type ?? "any"),
            label: option.const !== undefined ? code(scalar(option.const)) : typeof option.title === "string" ? option.title : undefined,
        }));
        if (parts.length > 0 && parts.every((part) => part.base === parts[0].base && part.label !== undefined)) {
            return `${parts[0].base} (${parts.map((part) => part.label).join(" or ")})`;
        }
        return [...new Set(parts.map((part) => part.base))].join(" or ");
    }
    const title = typeof schema.title === "string" ? ` (${schema.title})` : "";
    // `type` is a JSON value: its text (a string as is), so each spelling is a case or the default.
    switch (schema.type === undefined ? undefined : scalar(schema.type)) {
        case "array":
            return `list of ${sections.length === 1 ? link(sections[0].heading) : typeText(isObject(schema.items) ? schema.items : {}, [])}`;
        case "object":
            if (sections.length === 1) {
                return `object, see ${link(sections[0].heading)}`;
            }
            if (hasProperties(schema)) {
                return `object with ${Object.keys(schema.properties as JsonObject)
                    .map((name) => code(name))
                    .join(", ")}`;
            }
            return `map of ${typeText(isObject(schema.propertyNames) ? schema.propertyNames : { type: "string" }, [])} to ${
                isObject(schema.additionalProperties) ? typeText(schema.additionalProperties, []) : "any value"
            }`;
        case undefined:
            return schema.const !== undefined ? typeof schema.const : "any";
        default:
            return `${scalar(schema.type)}${title}`;
    }
}

function range(low: string | undefined, high: string | undefined, unit = ""): string | undefined {
    if (low !== undefined && high !== undefined) {
        return `${low}–${high}${unit}`;
    }
    if (low !== undefined) {
        return `≥ ${low}${unit}`;
    }
    return high !== undefined ? `≤ ${high}${unit}` : undefined;
}

function bound(value: Json | undefined): string | undefined {
    return typeof value === "number" && Math.abs(value) < MAX_SAFE ? String(value) : undefined;
}

/** Enum values, const, patterns, ranges, lengths and counts, of the field and (prefixed) its items, keys and values. */
function allowedText(schema: JsonObject): string {
    const parts: string[] = [];
    if (Array.isArray(schema.enum)) {
        parts.push(schema.enum.map((value) => code(scalar(value))).join(", "));
    }
    if (schema.const !== undefined) {
        parts.push(code(scalar(schema.const)));
    }
    const patterns = [schema, ...(Array.isArray(schema.allOf) ? schema.allOf.filter(isObject) : [])]
        .map((part) => part.pattern)
        .filter((pattern): pattern is string => typeof pattern === "string");
    if (patterns.length > 0) {
        parts.push(`matches ${patterns.map(code).join(" and ")}`);
    }
    const numbers =
        typeof schema.exclusiveMinimum === "number"
            ? range(undefined, bound(schema.maximum)) === undefined
                ? `> ${schema.exclusiveMinimum}`
                : `> ${schema.exclusiveMinimum}, ${range(undefined, bound(schema.maximum))}`
            : range(bound(schema.minimum), bound(schema.maximum));
    if (numbers) {
        parts.push(numbers);
    }
    const length = range(bound(schema.minLength), bound(schema.maxLength), " characters");
    if (length) {
        parts.push(length);
    }
    if (typeof schema.minItems === "number") {
        parts.push(`at least ${schema.minItems} ${schema.minItems === 1 ? "item" : "items"}`);
    }
    const options = (schema.anyOf ?? schema.oneOf) as Json[] | undefined;
    if (Array.isArray(options) && objectVariants(schema).length === 0) {
        const each = options.filter(isObject).map((option) => allowedText(option) || `any ${typeText(option, [])}`);
        if (each.some((text) => !text.startsWith("any "))) {
            parts.push(each.join(", or "));
        }
    }
    const nested = (label: string, sub: Json | undefined): void => {
        if (isObject(sub) && !hasProperties(sub)) {
            const text = allowedText(sub);
            if (text) {
                parts.push(`${label}: ${text}`);
            }
        }
    };
    if (schema.type === "array") {
        nested("each", schema.items);
    }
    nested("keys", schema.propertyNames);
    nested("values", schema.additionalProperties);
    return parts.join("; ");
}

function defaultText(schema: JsonObject): string {
    const value = schema.default;
    if (value === undefined) {
        return "";
    }
    if (isObject(value) && Object.keys(value).length > 0 && isObject(schema.properties)) {
        const properties = schema.properties;
        const fieldDefaults = Object.entries(value).every(([key, item]) => {
            const property = properties[key];
            return isObject(property) && JSON.stringify(property.default) === JSON.stringify(item);
        });
        if (fieldDefaults) {
            return "each field's default";
        }
    }
    return code(scalar(value));
}

/**
 * A table of the section's fields; `childPath` names where a field's own sections go (undefined:
 * none, the field is summed up in its row). Returns the table and those sections, in field order.
 */
function fieldTable(section: Section, childPath: (name: string) => string | undefined): { table: string[]; children: Section[] } {
    const properties = isObject(section.schema.properties) ? section.schema.properties : {};
    const required = new Set(Array.isArray(section.schema.required) ? section.schema.required : []);
    const table = ["| field | type | required | default | allowed | description |", "| --- | --- | --- | --- | --- | --- |"];
    const children: Section[] = [];
    for (const [name, property] of Object.entries(properties)) {
        if (!isObject(property)) {
            continue;
        }
        const target = childPath(name);
        const sections = target === undefined ? [] : childSections(property, target);
        children.push(...sections);
        const row = [
            code(name),
            typeText(property, sections),
            required.has(name) ? "yes" : "",
            defaultText(property),
            allowedText(property),
            typeof property.description === "string" ? property.description : "",
        ];
        table.push(`| ${row.map(cell).join(" | ")} |`);
    }
    return { table, children };
}

/** One section per object: its description, a table of its fields, then the sections of the objects inside it. */
function renderSection(section: Section, level: number, out: string[], childPath = (name: string): string | undefined => `${section.path}.${name}`): void {
    out.push(`${"#".repeat(level)} ${section.heading}`, "");
    if (typeof section.schema.description === "string") {
        out.push(section.schema.description, "");
    }
    const { table, children } = fieldTable(section, childPath);
    out.push(...table, "");
    for (const child of children) {
        renderSection(child, Math.min(level + 1, 4), out);
    }
}

const EDITOR_SETUP = [
    "## Editor support",
    "",
    `${code(JSON_SCHEMA_PATH)} is a JSON Schema (draft 2020-12) of a whole stack file, generated from the same schema. With a YAML language server, an editor completes keys and enum values, shows these descriptions on hover, and marks unknown keys, wrong types, and values outside the enums, patterns and ranges below while you type.`,
    "",
    `- **Modeline.** Both committed stack files start with \`# yaml-language-server: $schema=./${JSON_SCHEMA_PATH}\`, a YAML comment that Pulumi ignores; put the same line at the top of a new \`Pulumi.<stack>.yaml\`. The path is relative to the YAML file.`,
    `- **VS Code** with Red Hat's YAML extension (\`redhat.vscode-yaml\`): or map every stack file at once in \`.vscode/settings.json\`: \`{ "yaml.schemas": { "./${JSON_SCHEMA_PATH}": "Pulumi.*.yaml" } }\` (a relative schema path is taken from the workspace root).`,
    `- **Any other yaml-language-server client** (Neovim's \`yamlls\`, Helix, Zed, Emacs \`lsp-mode\`, …): the same \`yaml.schemas\` setting in the server's settings, e.g. \`settings = { yaml = { schemas = { ["./${JSON_SCHEMA_PATH}"] = "Pulumi.*.yaml" } } }\`. yaml-language-server reads draft 2020-12 from release 1.20.0; this schema uses no keyword that draft-07 reads differently.`,
    "",
    "The editor checks shapes only. The grammars written as code (DNS names, CIDRs, dates, taints…) and the cross-field guards (overlaps, duplicates, MTU agreement, one genesis…) run in `npm run render`, `pulumi preview` and `pulumi up`, which print every problem as one line `<config path>: <reason>`; those paths (`fleet.nodes[3].ssh.via`) match the headings below.",
    "",
];

export function configReferenceMarkdown(schema: JsonObject): string {
    const out: string[] = [
        "# Stack file reference",
        "",
        `_Generated by \`${COMMAND}\` from stacks/schema.ts (descriptions, defaults, grammars) and scripts/stackSchema.ts; do not edit: change those and run it again. The tests fail while this file is stale._`,
        "",
        `A stack's settings are \`Pulumi.<stack>.yaml\`. The whole fleet is one structured key, \`${FLEET_KEY}\`; secrets are separate keys set with \`pulumi config set --secret\`. Everything below is generated from the zod schema the program validates with (stacks/schema.ts), so every key, type, default and allowed value here is the one enforced; unknown keys are errors.`,
        "",
        ...EDITOR_SETUP,
    ];
    const config = (schema.properties as JsonObject).config as JsonObject;
    const fleet = (config.properties as JsonObject)[FLEET_KEY] as JsonObject;
    // The stack file and its config keys link to the sections below them; the fleet's sections are headed by the paths
    // error lines print (fleet.nodes[3].ssh is under fleet.nodes[].ssh).
    const top = (heading: string, section: JsonObject, linked: Record<string, string>): void => {
        out.push(`## ${heading}`, "");
        if (typeof section.description === "string") {
            out.push(section.description, "");
        }
        out.push(...fieldTable({ heading, path: "", schema: section }, (name) => linked[name]).table, "");
    };
    top("The stack file", schema, { config: "config" });
    top("config", config, { [FLEET_KEY]: "fleet" });
    renderSection({ heading: "fleet", path: "fleet", schema: fleet }, 2, out);
    return `${out.join("\n").replace(/\n+$/, "")}\n`;
}

/** Every generated file, path relative to the project root, with the text it must hold. */
export function generatedFiles(): { path: string; text: string }[] {
    const schema = stackFileJsonSchema();
    return [
        { path: JSON_SCHEMA_PATH, text: formatJson(schema) },
        { path: REFERENCE_PATH, text: configReferenceMarkdown(schema) },
    ];
}

/** The generated files whose committed text differs (or that are missing). */
export function staleFiles(root = PROJECT_ROOT): string[] {
    return generatedFiles()
        .filter((file) => {
            const target = path.join(root, file.path);
            return !fs.existsSync(target) || fs.readFileSync(target, "utf8") !== file.text;
        })
        .map((file) => file.path);
}

export function runStackSchema(argv: string[], stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream, root = PROJECT_ROOT): number {
    let check: boolean;
    try {
        check = parseArgs({ args: argv, options: { check: { type: "boolean", default: false } }, strict: true }).values.check === true;
    } catch (error) {
        stderr.write(`stack-schema: ${(error as Error).message}\nusage: ${COMMAND} [-- --check]\n`);
        return 2;
    }
    if (check) {
        const stale = staleFiles(root);
        for (const file of stale) {
            stderr.write(`stack-schema: ${file} is stale: run ${COMMAND} and commit it\n`);
        }
        return stale.length > 0 ? 1 : 0;
    }
    for (const file of generatedFiles()) {
        const target = path.join(root, file.path);
        fs.mkdirSync(path.dirname(target), { recursive: true });
        fs.writeFileSync(target, file.text);
        stdout.write(`stack-schema: wrote ${file.path}\n`);
    }
    return 0;
}

if (require.main === module) {
    process.exitCode = runStackSchema(process.argv.slice(2), process.stdout, process.stderr);
}
