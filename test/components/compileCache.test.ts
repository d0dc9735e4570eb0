import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";

/*
 * components/compileCache.ts turns Node's on-disk compile cache on as it loads, so it must be
 * index.ts's first import. Run in a fresh node (jest's own module loader is not Node's), through
 * ts-node as the language host runs the program.
 */

const ROOT = path.resolve(__dirname, "..", "..");

function loadInFreshNode(env: NodeJS.ProcessEnv, loadModule = true): { dir: string | undefined; status: number | null; stderr: string } {
    const script = [
        'require("ts-node").register({ transpileOnly: true });',
        loadModule ? 'require("./components/compileCache");' : "",
        'require("yaml");',
        'process.stdout.write(String(require("node:module").getCompileCacheDir() ?? ""));',
    ].join("\n");
    const result = spawnSync(process.execPath, ["-e", script], { cwd: ROOT, env, encoding: "utf8", timeout: 60_000 });
    return { dir: result.stdout === "" ? undefined : result.stdout, status: result.status, stderr: result.stderr };
}

/** The environment without either of Node's compile-cache variables, and TMPDIR set to `dir`. */
function cleanEnv(dir: string): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: dir };
    delete env.NODE_COMPILE_CACHE;
    delete env.NODE_DISABLE_COMPILE_CACHE;
    return env;
}

describe("Node's compile cache", () => {
    it("is on once the module is loaded, in Node's default directory, and holds what loads after it; off without it", () => {
        const scratch = mkdtempSync(path.join(tmpdir(), "sc-compile-cache-"));
        try {
            const loaded = loadInFreshNode(cleanEnv(scratch));
            expect(loaded.stderr).toBe("");
            expect(loaded.status).toBe(0);
            expect(loaded.dir).toContain(path.join(scratch, "node-compile-cache"));
            // Node writes the cache when the process ends: a directory per Node version and arch.
            expect(readdirSync(path.join(scratch, "node-compile-cache")).length).toBeGreaterThan(0);
            // Without the module, the same node has no cache: it is the module that turns it on.
            expect(loadInFreshNode(cleanEnv(scratch), false).dir).toBeUndefined();
        } finally {
            rmSync(scratch, { recursive: true, force: true });
        }
    });

    it("stays off where the operator turned it off (NODE_DISABLE_COMPILE_CACHE=1)", () => {
        const scratch = mkdtempSync(path.join(tmpdir(), "sc-compile-cache-"));
        const loaded = loadInFreshNode({ ...cleanEnv(scratch), NODE_DISABLE_COMPILE_CACHE: "1" });
        rmSync(scratch, { recursive: true, force: true });
        expect(loaded.status).toBe(0);
        expect(loaded.dir).toBeUndefined();
    });

    it("is index.ts's first import, so every other module loads with it on", () => {
        const imports = [...readFileSync(path.join(ROOT, "index.ts"), "utf8").matchAll(/^import\b[^;]*?["']([^"']+)["'];/gms)].map((match) => match[1]);
        expect(imports[0]).toBe("./components/compileCache");
        expect(imports.length).toBeGreaterThan(5);
    });
});
