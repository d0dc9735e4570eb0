import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { splitStepStdin, stepLauncher, type RemoteStepArgs } from "../../../components/remote/remoteCommand";
import { REMOTE_SCRIPTS, remoteScript } from "../../../components/remote/scripts";

/*
 * A remote step's `create` is a one-line launcher that reads the script from the head of stdin
 * and leaves the payload behind it for the script. The SSH server runs `create` with the login
 * user's shell, so the launcher is run here by every POSIX shell this machine has.
 */

const shells = ["/bin/sh", "/bin/bash", "/bin/dash", "/usr/bin/zsh"].filter((shell) => existsSync(shell));

function launch(shell: string, script: string, payload: string): { code: number | null; stdout: string; stderr: string } {
    const result = spawnSync(shell, ["-c", stepLauncher("test/echo.sh", script)], { input: `${script}${payload}`, encoding: "utf8", timeout: 20_000 });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("the remote step launcher", () => {
    // Multi-byte text in the script: the launcher counts bytes, not characters.
    const script = "# prüft — ein Skript\nset -eu\nprintf 'name=%s\\n' \"$0\"\ncat\n";

    it.each(shells)("runs the script with bash from %s and hands it exactly the payload behind it", (shell) => {
        const payload = "KEY=value\n\n@file 0644 3 /tmp/x\nabc";
        const result = launch(shell, script, payload);
        expect(result.stderr).toBe("");
        expect(result.code).toBe(0);
        expect(result.stdout).toBe(`name=test/echo.sh\n${payload}`);
    });

    it("fails the step when the script's own exit says so", () => {
        const result = launch("/bin/sh", "echo broken >&2; exit 7\n", "");
        expect(result.code).toBe(7);
        expect(result.stderr).toBe("broken\n");
    });

    it("is one short line that changes whenever the script does", () => {
        for (const path of REMOTE_SCRIPTS) {
            const launcher = stepLauncher(path, remoteScript(path));
            expect(launcher).not.toContain("\n");
            expect(launcher.length).toBeLessThan(160);
        }
        expect(stepLauncher("a.sh", "echo one\n")).not.toBe(stepLauncher("a.sh", "echo two\n"));
    });

    it("takes only a known step script: a misspelled one is a compile error (tsc checks this file)", () => {
        // @ts-expect-error "k3s/aply.sh" is not one of REMOTE_SCRIPTS
        const misspelled: RemoteStepArgs["script"] = "k3s/aply.sh";
        const known: RemoteStepArgs["script"] = "k3s/apply.sh";
        expect(REMOTE_SCRIPTS).not.toContain(misspelled);
        expect(REMOTE_SCRIPTS).toContain(known);
    });

    it("splits a recorded stdin back into script and payload", () => {
        const payload = "NODE=ä\n\n";
        expect(splitStepStdin(stepLauncher("k3s/apply.sh", script), `${script}${payload}`)).toEqual({ path: "k3s/apply.sh", script, payload });
        expect(() => splitStepStdin("bash -c 'echo hi'", "")).toThrow(/not a shortcircuit step launcher/);
    });
});
