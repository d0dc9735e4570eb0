import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { splitStepStdin, stepLauncher, stepStdin, type RemoteStepArgs } from "../../../components/remote/remoteCommand";
import type { Become } from "../../../stacks/schema";
import { REMOTE_SCRIPTS, remoteScript } from "../../../components/remote/scripts";

/*
 * A remote step's `create` is a one-line launcher that reads the script from the head of stdin
 * and leaves the payload behind it for the script. The SSH server runs `create` with the login
 * user's shell, so the launcher is run here by every POSIX shell this machine has.
 */

const shells = ["/bin/sh", "/bin/bash", "/bin/dash", "/usr/bin/zsh"].filter((shell) => existsSync(shell));

function launch(
    shell: string,
    script: string,
    payload: string,
    become: Become = "none",
    env?: NodeJS.ProcessEnv,
): { code: number | null; stdout: string; stderr: string } {
    const result = spawnSync(shell, ["-c", stepLauncher("test/echo.sh", script, "stdoutAndStderr", become)], {
        input: stepStdin(script, payload),
        encoding: "utf8",
        timeout: 100_000,
        env,
    });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

// The real sudo (Debian's package, installed by setup): root may always run it, `nobody` never.
const sudo = ["/usr/bin/sudo", "/bin/sudo"].find((file) => existsSync(file));
const asRoot = process.getuid?.() === 0;

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

    (sudo && asRoot ? it.each(shells) : it.skip.each(shells))(
        "with become sudo, runs it as root through the real sudo from %s, payload byte for byte",
        (shell) => {
            const payload = "KEY=secret\n\n@file 0600 4 /tmp/x\nab\r\n";
            const result = launch(shell, `${script}id -un\n`, payload, "sudo");
            expect(result.stderr).toBe("");
            expect(result.code).toBe(0);
            expect(result.stdout).toBe(`name=test/echo.sh\n${payload}root\n`);
        },
        // sudo looks the machine's own name up, which can wait on DNS that never answers here.
        120_000,
    );

    (sudo && asRoot ? it.each(shells) : it.skip.each(shells))(
        "with become sudo, a user sudo refuses fails from %s in one line before the script runs",
        (shell) => {
            const marker = `/tmp/shortcircuit-launcher-ran-${process.pid}`;
            const ran = `touch ${marker}\n`;
            const result = spawnSync("su", ["nobody", "-s", shell, "-c", stepLauncher("test/echo.sh", ran, "stdoutAndStderr", "sudo")], {
                input: stepStdin(ran, "PAYLOAD=1\n\n"),
                encoding: "utf8",
                timeout: 100_000,
            });
            expect(result.status).toBe(1);
            expect(result.stdout).toBe("");
            const lines = result.stderr.trimEnd().split("\n");
            expect(lines).toHaveLength(1);
            expect(lines[0]).toMatch(
                /^shortcircuit: \S+: cannot become root: sudo -n \/bin\/bash as nobody failed \(sudo: a password is required\); fix: on that host add the line "nobody ALL=\(root\) NOPASSWD: \/bin\/bash" with visudo -f \/etc\/sudoers.d\/shortcircuit$/,
            );
            expect(existsSync(marker)).toBe(false);
        },
    );

    it("reads a script that reaches it in pieces: one block, filled by as many reads as it takes", () => {
        const dir = mkdtempSync(join(tmpdir(), "sc-launcher-"));
        try {
            const payload = "KEY=value\n\n";
            // The packed script's first 20 bytes, a pause, then the rest: a plain `dd bs=N count=1` would stop at the first read.
            const stdin = Buffer.from(stepStdin(script, payload));
            writeFileSync(join(dir, "head"), stdin.subarray(0, 20));
            writeFileSync(join(dir, "tail"), stdin.subarray(20));
            const launcher = stepLauncher("test/echo.sh", script);
            const result = spawnSync("bash", ["-c", `{ cat head; sleep 0.3; cat tail; } | sh -c '${launcher.replace(/'/g, "'\\''")}'`], {
                cwd: dir,
                encoding: "utf8",
                timeout: 100_000,
            });
            expect(result.stderr).toBe("");
            expect(result.stdout).toBe(`name=test/echo.sh\n${payload}`);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    it.each(shells)("where dd refuses iflag (an older macOS), reads the script byte by byte from %s, payload intact", (shell) => {
        const dir = mkdtempSync(join(tmpdir(), "sc-bsd-dd-"));
        try {
            // An older BSD dd: an unknown operand fails before any input is read (POSIX).
            writeFileSync(
                join(dir, "dd"),
                `#!/bin/sh\ncase " $* " in *" iflag="*) echo iflag >>"${dir}/refused"; echo "dd: unknown operand iflag" >&2; exit 1 ;; esac\nexec /bin/dd "$@"\n`,
                { mode: 0o755 },
            );
            const payload = "KEY=value\n\n@file 0644 3 /tmp/x\nabc";
            const result = launch(shell, script, payload, "none", { ...process.env, PATH: `${dir}:/usr/bin:/bin` });
            expect(result.stderr).toBe("");
            expect(result.stdout).toBe(`name=test/echo.sh\n${payload}`);
            expect(readFileSync(join(dir, "refused"), "utf8")).toBe("iflag\n");
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
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
            // Short enough to read in a failure message, which repeats it.
            expect(launcher.length).toBeLessThan(240);
            const sudoLauncher = stepLauncher(path, remoteScript(path), "stdoutAndStderr", "sudo");
            expect(sudoLauncher).not.toContain("\n");
            // What sudo runs (and logs) is the short reader, never the script.
            expect(sudoLauncher).not.toContain(remoteScript(path).split("\n")[0]);
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
        expect(splitStepStdin(stepLauncher("k3s/apply.sh", script), stepStdin(script, payload))).toEqual({
            path: "k3s/apply.sh",
            script,
            payload,
            become: "none",
        });
        expect(splitStepStdin(stepLauncher("k3s/apply.sh", script, "stdout", "sudo"), stepStdin(script, payload))).toEqual({
            path: "k3s/apply.sh",
            script,
            payload,
            become: "sudo",
        });
        expect(() => splitStepStdin("bash -c 'echo hi'", "")).toThrow(/not a shortcircuit step launcher/);
        // A stdin that holds the script as plain text (as before scripts were packed) is not one of ours.
        const launcher = stepLauncher("k3s/apply.sh", script);
        expect(() => splitStepStdin(launcher, `${script}${payload}`.padEnd(4096, "x"))).toThrow(/not a packed script/);
    });
});
