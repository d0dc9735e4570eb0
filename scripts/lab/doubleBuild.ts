/**
 * Turning a double's TypeScript into what the hosts' wrappers run. Each call of a double is a
 * fresh node process (hundreds per test), so its start time matters: the types are stripped
 * once per run (node:module stripTypeScriptTypes, in a child so its experimental warning stays
 * out of the test output) and each invocation then starts in ~50 ms instead of ~150 ms.
 *
 * A double is several modules: the entry and every module it imports as a value (followed
 * from the stripped code, so `import type` costs nothing) are written side by side into
 * <runDir>/<entry's directory name>/, named by their path from the entry's directory ("/" as
 * "__", ".." as "up"), with every relative import rewritten to that name plus ".mjs" (ESM needs
 * the extension) and `yaml` and `plist` to the harness's own copies (hosts have no node_modules).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DOUBLE_SCRIPT } from "./constants";
import { run } from "./processes";

const BUILD = `
const fs = require("node:fs");
const path = require("node:path");
const m = require("node:module");
const [entry, outDir, yamlPath, plistPath] = process.argv.slice(1);
const entryDir = path.dirname(entry);
const outName = (file) => path.relative(entryDir, file).split(path.sep).map((s) => (s === ".." ? "up" : s)).join("__").replace(/\\.ts$/, ".mjs");
fs.mkdirSync(outDir, { recursive: true });
const todo = [entry];
const done = new Set();
while (todo.length > 0) {
    const src = todo.pop();
    if (done.has(src)) continue;
    done.add(src);
    const js = m.stripTypeScriptTypes(fs.readFileSync(src, "utf8")).replace(/(\\bfrom\\s*|\\bimport\\s*)"([^"]+)"/g, (all, kw, spec) => {
        if (spec === "yaml") return kw + JSON.stringify(yamlPath);
        if (spec === "plist") return kw + JSON.stringify(plistPath);
        if (!spec.startsWith(".")) return all;
        const target = path.resolve(path.dirname(src), spec + ".ts");
        todo.push(target);
        return kw + JSON.stringify("./" + outName(target));
    });
    fs.writeFileSync(path.join(outDir, outName(src)), "// generated from " + path.relative(entryDir, src) + " by the lab fleet harness\\n" + js);
}
`;

/** Builds the double whose entry is `source` (default: the k3s double); returns the entry's .mjs path. */
export async function buildDouble(runDir: string, source = DOUBLE_SCRIPT): Promise<string> {
    const outDir = path.join(runDir, path.basename(path.dirname(source)));
    const target = path.join(outDir, path.basename(source).replace(/\.ts$/, ".mjs"));
    const r = await run(
        process.execPath,
        ["--disable-warning=ExperimentalWarning", "-e", BUILD, source, outDir, require.resolve("yaml"), require.resolve("plist")],
        {
            timeoutMs: 20_000,
        },
    );
    if (r.code !== 0 || !fs.existsSync(target)) {
        throw new Error(`lab fleet: could not build ${source} (node >= 22.13 strips types; this is ${process.version}):\n${r.stderr}${r.stdout}`);
    }
    return target;
}
