import * as fs from "node:fs";
import * as path from "node:path";
import * as ts from "typescript";

/*
 * Data flows one way: stacks/ (config) ← components/ (the concerns and the planner) ←
 * index.ts (the program) and scripts/ (the operator's commands). Every relative import of every
 * .ts file of those is read with the TypeScript compiler's own scanner; one that runs back up
 * fails this suite, naming the file and the import.
 */

const ROOT = path.resolve(__dirname, "../..");

type Layer = "stacks" | "components" | "program" | "scripts" | "test";

/** What each layer may import (itself included). */
const MAY_IMPORT: Readonly<Record<Exclude<Layer, "test">, readonly Layer[]>> = {
    stacks: ["stacks"],
    components: ["stacks", "components"],
    program: ["stacks", "components"],
    scripts: ["stacks", "components", "scripts"],
};

function layerOf(file: string): Layer | undefined {
    if (file === "index.ts") return "program";
    const top = file.split("/")[0];
    return top === "stacks" || top === "components" || top === "scripts" || top === "test" ? top : undefined;
}

function sourceFiles(dir: string): string[] {
    return fs
        .readdirSync(path.join(ROOT, dir), { recursive: true, withFileTypes: true })
        .filter((entry) => entry.isFile() && entry.name.endsWith(".ts"))
        .map((entry) => path.relative(ROOT, path.join(entry.parentPath, entry.name)).split(path.sep).join("/"));
}

/** The repository files a source file imports (relative specifiers only; packages are not ours). */
function importsOf(file: string, text: string): string[] {
    return ts
        .preProcessFile(text, true, true)
        .importedFiles.map((imported) => imported.fileName)
        .filter((specifier) => specifier.startsWith("."))
        .map((specifier) => path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier)));
}

/** `<file> imports <target>` for each import that runs back up. */
function backwardImports(files: ReadonlyMap<string, string>): string[] {
    const found: string[] = [];
    for (const [file, text] of files) {
        const from = layerOf(file);
        if (from === undefined || from === "test") continue;
        for (const target of importsOf(file, text)) {
            const to = layerOf(target.endsWith(".ts") ? target : `${target}.ts`) ?? layerOf(target);
            if (to === undefined || !MAY_IMPORT[from].includes(to)) {
                found.push(`${file} (${from}) imports ${target} (${to ?? "outside the layers"})`);
            }
        }
    }
    return found;
}

function tree(): Map<string, string> {
    const files = ["index.ts", ...sourceFiles("stacks"), ...sourceFiles("components"), ...sourceFiles("scripts")];
    return new Map(files.map((file) => [file, fs.readFileSync(path.join(ROOT, file), "utf8")]));
}

describe("layers: no import runs back up", () => {
    it("finds every kind of backward import in a made-up tree (the check can fail)", () => {
        const made = new Map([
            ["stacks/a.ts", 'import { x } from "../components/plan";\nimport type { Y } from "./schema";'],
            ["components/b.ts", 'import { run } from "../scripts/render";\nconst t = require("../test/support/fixtures");'],
            ["components/nebula/c.ts", 'export { main } from "../../index";'],
            ["scripts/d.ts", 'import "../index";\nimport { z } from "zod";'],
            ["index.ts", 'import { y } from "./scripts/drift";'],
        ]);
        expect(backwardImports(made)).toEqual([
            "stacks/a.ts (stacks) imports components/plan (components)",
            "components/b.ts (components) imports scripts/render (scripts)",
            "components/b.ts (components) imports test/support/fixtures (test)",
            "components/nebula/c.ts (components) imports index (program)",
            "scripts/d.ts (scripts) imports index (program)",
            "index.ts (program) imports scripts/drift (scripts)",
        ]);
    });

    it("holds for index.ts, stacks/, components/ and scripts/", () => {
        const files = tree();
        expect(files.size).toBeGreaterThan(50);
        expect(backwardImports(files)).toEqual([]);
    });

    it("keeps the Nebula certificate codec a leaf: it imports nothing of ours", () => {
        const codec = "stacks/nebulaCert.ts";
        expect(importsOf(codec, fs.readFileSync(path.join(ROOT, codec), "utf8"))).toEqual([]);
    });
});
