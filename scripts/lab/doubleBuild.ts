/** Turning a double's TypeScript into what the hosts' wrappers run. */
import * as fs from "node:fs";
import * as path from "node:path";
import { DOUBLE_SCRIPT } from "./constants";
import { run } from "./processes";

/**
 * Strips the double's types once per run (node:module stripTypeScriptTypes, in a child so
 * its experimental warning stays out of the test output) into <runDir>/k3s-test-double.mjs:
 * each invocation then starts in ~50 ms instead of ~150 ms. Falls back to the .ts file,
 * which node >= 22.18 runs directly.
 */
export async function buildDouble(runDir: string, source = DOUBLE_SCRIPT): Promise<string> {
    const target = path.join(runDir, path.basename(source).replace(/\.ts$/, ".mjs"));
    const script = `
const fs = require("node:fs");
const m = require("node:module");
const [src, dst, yamlPath] = process.argv.slice(1);
let js = m.stripTypeScriptTypes(fs.readFileSync(src, "utf8"));
const marker = 'from "yaml"';
const n = js.split(marker).length - 1;
if (n > 1) throw new Error("unexpected yaml import");
if (n === 1) js = js.replace(marker, "from " + JSON.stringify(yamlPath));
fs.writeFileSync(dst, "// generated from " + require("node:path").basename(src) + " by the lab fleet harness\\n" + js);
`;
    try {
        const r = await run(process.execPath, ["--disable-warning=ExperimentalWarning", "-e", script, source, target, require.resolve("yaml")], {
            timeoutMs: 20_000,
        });
        if (r.code === 0 && fs.existsSync(target)) return target;
    } catch {
        // fall back below
    }
    return source;
}
