import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { REMOTE_LIBRARIES, REMOTE_SCRIPTS, remoteScriptSource } from "../../components/remote/scripts";

/*
 * Every shell script the project runs passes shellcheck: each remote step as written
 * (remote/prelude.sh + its own file, with the directives its comments hold; what a host runs is
 * the same tokens without comments, test/components/remote/scripts.test.ts), and the
 * operator-side scripts as they are.
 */

const root = path.resolve(__dirname, "../..");

function shellcheck(args: string[], input?: string): { status: number | null; output: string } {
    const result = spawnSync("shellcheck", args, { input, encoding: "utf8", timeout: 60_000 });
    if (result.error) {
        throw new Error(`shellcheck could not run (setup installs Debian's shellcheck): ${result.error.message}`);
    }
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe("shellcheck", () => {
    it.each(REMOTE_SCRIPTS)("passes %s with the prelude and its libraries", (script) => {
        expect(shellcheck(["-s", "bash", "-"], remoteScriptSource(script))).toEqual({ status: 0, output: "" });
    });

    it("covers every .sh file next to the components", () => {
        const onDisk = fs
            .readdirSync(path.join(root, "components"), { recursive: true, withFileTypes: true })
            .filter((entry) => entry.isFile() && entry.name.endsWith(".sh") && entry.name !== "prelude.sh")
            .map((entry) => path.relative(path.join(root, "components"), path.join(entry.parentPath, entry.name)))
            .sort();
        expect(onDisk).toEqual([...REMOTE_SCRIPTS, ...REMOTE_LIBRARIES].sort());
    });

    it("passes the operator-side scripts", () => {
        const scripts = [
            ".ci/run",
            ...fs
                .readdirSync(path.join(root, "scripts"))
                .filter((name) => name.endsWith(".sh"))
                .map((name) => `scripts/${name}`),
        ];
        const tools = fs
            .readdirSync(path.join(root, "scripts/tools"))
            .filter((name) => name.endsWith(".sh"))
            .map((name) => `scripts/tools/${name}`);
        expect(shellcheck(["-x", "-s", "bash", ...[...scripts, ...tools].map((file) => path.join(root, file))])).toEqual({ status: 0, output: "" });
    });

    it("passes the lab harness's shell files (the macOS-shaped host's bash 3.2 setup)", () => {
        const lab = fs
            .readdirSync(path.join(root, "scripts/lab"), { recursive: true, withFileTypes: true })
            .filter((entry) => entry.isFile() && entry.name.endsWith(".sh"))
            .map((entry) => path.join(entry.parentPath, entry.name));
        expect(lab.map((file) => path.relative(root, file))).toContain("scripts/lab/macos/bash32-env.sh");
        expect(shellcheck(["-s", "bash", ...lab])).toEqual({ status: 0, output: "" });
    });
});
