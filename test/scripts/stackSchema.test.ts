import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PassThrough } from "node:stream";
import Ajv2020, { type ErrorObject } from "ajv/dist/2020";
import { parse } from "yaml";
import { JSON_SCHEMA_PATH, REFERENCE_PATH, generatedFiles, runStackSchema, stackFileJsonSchema, type Json, type JsonObject } from "../../scripts/stackSchema";
import { PROJECT_ROOT, stackFilePath } from "../../stacks/stackFile";

/*
 * The generated config reference and JSON Schema (scripts/stackSchema.ts): committed copies are
 * exactly what the schema generates now, the committed stack files pass the JSON Schema an
 * editor loads, and that schema refuses a wrong stack file at the path where it is wrong.
 */

const STACKS = ["lab", "prod"] as const;
const MODELINE = `# yaml-language-server: $schema=./${JSON_SCHEMA_PATH}`;

function validator(): ReturnType<Ajv2020["compile"]> {
    return new Ajv2020({ allErrors: true, strict: true }).compile(stackFileJsonSchema());
}

function stackDocument(stack: (typeof STACKS)[number]): any {
    return parse(fs.readFileSync(stackFilePath(stack), "utf8"));
}

let compiled: ReturnType<Ajv2020["compile"]> | undefined;

function errorsOf(document: unknown): ErrorObject[] {
    compiled ??= validator();
    const validate = compiled;
    return validate(document) ? [] : (validate.errors ?? []);
}

/** The first line where two texts differ, so a stale file's failure says where. */
function firstDifference(committed: string, generated: string): string {
    const a = committed.split("\n");
    const b = generated.split("\n");
    const line = a.findIndex((text, index) => text !== b[index]);
    const at = line < 0 ? a.length : line;
    return `line ${at + 1}: committed ${JSON.stringify(a[at])}, generated ${JSON.stringify(b[at])}`;
}

function capture(): { stream: PassThrough; text: () => string } {
    const stream = new PassThrough();
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    return { stream, text: () => Buffer.concat(chunks).toString("utf8") };
}

describe("committed generated docs", () => {
    it.each(generatedFiles().map((file) => [file.path, file.text]))("%s is what npm run stack-schema writes, byte for byte", (file, text) => {
        const target = path.join(PROJECT_ROOT, file);
        expect(fs.existsSync(target)).toBe(true);
        const committed = fs.readFileSync(target, "utf8");
        if (committed !== text) {
            throw new Error(`${file} is stale (${firstDifference(committed, text)}): run npm run stack-schema and commit it`);
        }
    });

    it("--check names the stale file and exits 1; after writing, it exits 0", () => {
        const root = fs.mkdtempSync(path.join(os.tmpdir(), "stack-schema-"));
        try {
            const write = capture();
            expect(runStackSchema([], write.stream, capture().stream, root)).toBe(0);
            expect(write.text()).toContain(`wrote ${REFERENCE_PATH}`);
            expect(runStackSchema(["--check"], capture().stream, capture().stream, root)).toBe(0);

            fs.appendFileSync(path.join(root, REFERENCE_PATH), "\nhand edit\n");
            const stderr = capture();
            expect(runStackSchema(["--check"], capture().stream, stderr.stream, root)).toBe(1);
            expect(stderr.text()).toBe(`stack-schema: ${REFERENCE_PATH} is stale: run npm run stack-schema and commit it\n`);

            fs.rmSync(path.join(root, JSON_SCHEMA_PATH));
            const missing = capture();
            expect(runStackSchema(["--check"], capture().stream, missing.stream, root)).toBe(1);
            expect(missing.text()).toContain(`${JSON_SCHEMA_PATH} is stale`);

            expect(runStackSchema(["--chek"], capture().stream, capture().stream, root)).toBe(2);
        } finally {
            fs.rmSync(root, { recursive: true, force: true });
        }
    });

    it("every link in the reference leads to one of its headings", () => {
        const reference = generatedFiles().find((file) => file.path === REFERENCE_PATH)!.text;
        // GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens.
        const anchors = new Set(
            [...reference.matchAll(/^#+ (.+)$/gm)].map(([, heading]) =>
                heading
                    .toLowerCase()
                    .replace(/[^a-z0-9 _-]/g, "")
                    .replace(/ /g, "-"),
            ),
        );
        expect(anchors.size).toBe([...reference.matchAll(/^#+ /gm)].length);
        const targets = [...reference.matchAll(/\]\(#([^)]+)\)/g)].map(([, target]) => target);
        expect(targets.length).toBeGreaterThan(20);
        expect(targets.filter((target) => !anchors.has(target))).toEqual([]);
    });

    it("the JSON Schema documents every field, and uses only keywords draft-07 reads the same way", () => {
        // Older yaml-language-server releases read draft-07; the reference promises they read this schema too.
        const allowed = new Set([
            "$schema",
            "$comment",
            "title",
            "description",
            "type",
            "const",
            "enum",
            "default",
            "properties",
            "patternProperties",
            "additionalProperties",
            "propertyNames",
            "required",
            "items",
            "minItems",
            "minLength",
            "maxLength",
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "pattern",
            "anyOf",
            "oneOf",
            "allOf",
        ]);
        const undocumented: string[] = [];
        const keywords = new Set<string>();
        const walk = (schema: Json, at: string): void => {
            if (typeof schema !== "object" || schema === null || Array.isArray(schema)) {
                return;
            }
            for (const [key, value] of Object.entries(schema)) {
                keywords.add(key);
                if (key === "properties" || key === "patternProperties") {
                    for (const [name, property] of Object.entries(value as JsonObject)) {
                        if (
                            key === "properties" &&
                            (typeof property !== "object" || property === null || typeof (property as JsonObject).description !== "string")
                        ) {
                            undocumented.push(`${at}.${name}`);
                        }
                        walk(property, `${at}.${name}`);
                    }
                } else if (key === "items" || key === "additionalProperties" || key === "propertyNames") {
                    walk(value, key === "items" ? `${at}[]` : `${at}{}`);
                } else if (key === "anyOf" || key === "oneOf" || key === "allOf") {
                    (value as Json[]).forEach((option) => walk(option, at));
                }
            }
        };
        walk(stackFileJsonSchema(), "");
        expect(undocumented).toEqual([]);
        expect([...keywords].filter((keyword) => !allowed.has(keyword))).toEqual([]);
    });
});

describe("the stack files and the JSON Schema editors load", () => {
    it.each(STACKS)("Pulumi.%s.yaml names the schema in its first line and passes it", (stack) => {
        const text = fs.readFileSync(stackFilePath(stack), "utf8");
        expect(text.split("\n")[0]).toBe(MODELINE);
        expect(fs.existsSync(path.resolve(path.dirname(stackFilePath(stack)), `./${JSON_SCHEMA_PATH}`))).toBe(true);
        expect(errorsOf(stackDocument(stack))).toEqual([]);
    });

    it("refuses an unknown key under nodes[0], naming the node and the key", () => {
        const document = stackDocument("lab");
        document.config["shortcircuit:fleet"].nodes[0].colour = "red";
        expect(errorsOf(document)).toEqual([
            expect.objectContaining({
                instancePath: "/config/shortcircuit:fleet/nodes/0",
                keyword: "additionalProperties",
                params: { additionalProperty: "colour" },
            }),
        ]);
    });

    it("refuses a value outside an enum, a range or a pattern at its path", () => {
        const document = stackDocument("prod");
        const fleet = document.config["shortcircuit:fleet"];
        fleet.cluster.flannelBackend = "tailscale";
        fleet.controlServer.derp.regionId = 42;
        fleet.nodes[1].lan.interface = "eth0; reboot";
        const found = errorsOf(document).map((error) => [error.instancePath, error.keyword]);
        expect(found).toEqual(
            expect.arrayContaining([
                ["/config/shortcircuit:fleet/cluster/flannelBackend", "enum"],
                ["/config/shortcircuit:fleet/controlServer/derp/regionId", "minimum"],
                ["/config/shortcircuit:fleet/nodes/1/lan/interface", "pattern"],
            ]),
        );
        expect(found).toHaveLength(3);
    });

    it("takes secrets only as Pulumi writes them, refuses unknown shortcircuit: keys, and passes other namespaces' keys", () => {
        const document = stackDocument("lab");
        document.config["shortcircuit:k3sToken"] = { secure: "v1:AAAABBBB" };
        document.config["digitalocean:token"] = { secure: "v1:CCCC" };
        document.config["digitalocean:region"] = "sfo3";
        expect(errorsOf(document)).toEqual([]);

        document.config["shortcircuit:derpKey"] = "privkey:plaintext";
        document.config["shortcircuit:k3stoken"] = { secure: "v1:AAAA" };
        const found = errorsOf(document).map((error) => [error.instancePath, error.keyword]);
        expect(found).toEqual([
            ["/config/shortcircuit:derpKey", "type"],
            ["/config/shortcircuit:k3stoken", "false schema"],
        ]);
    });

    it("requires the fleet and refuses keys Pulumi does not define at the top level", () => {
        const document = stackDocument("lab");
        document.confg = document.config;
        delete document.config;
        const found = errorsOf(document).map((error) => [error.instancePath, error.keyword]);
        expect(found).toEqual(
            expect.arrayContaining([
                ["", "required"],
                ["", "additionalProperties"],
            ]),
        );
    });
});
