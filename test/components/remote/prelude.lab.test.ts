import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { splitStepStdin, stepLauncher, stepStdin, type StepLogging } from "../../../components/remote/remoteCommand";
import { scriptFile } from "../../../components/remote/scripts";

/*
 * The command provider (1.2.1) stops reading a logged stream at a line of 64 KiB and the step
 * then hangs (scripts/lab/provider-doubles/README.md, "Logging"). remote/prelude.sh, which every
 * step sends first, folds every line of the streams the launcher says are logged to at most
 * 16 KiB. Here the exact launcher and prelude a step sends run from every POSIX shell of this
 * machine (the SSH server runs `create` with the login shell), with a test body in place of a
 * step's own file.
 */

const shells = ["/bin/sh", "/bin/bash", "/bin/dash"].filter((shell) => existsSync(shell));
/** The longest line the prelude lets through on a logged stream, newline not counted. */
const BOUND = 16 * 1024;
const MARK = " [shortcircuit: line folded here, it goes on in the next line]\n";

interface Run {
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: Buffer;
    stderr: Buffer;
}

function runStep(
    body: string,
    options: { shell?: string; logging?: StepLogging; payload?: string; timeoutMs?: number; env?: Record<string, string> } = {},
): Run {
    const script = `${scriptFile("remote/prelude.sh")}${body}`;
    const launcher = stepLauncher("test/long-lines.sh", script, options.logging ?? "stdoutAndStderr");
    const result = spawnSync(options.shell ?? "/bin/sh", ["-c", launcher], {
        input: Buffer.from(stepStdin(script, options.payload ?? "STEP=test\n\n"), "utf8"),
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 64 * 1024 * 1024,
        env: { ...process.env, ...(options.env ?? {}) },
    });
    if (result.error) throw result.error;
    return { code: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

function lineLengths(output: Buffer): number[] {
    const lengths: number[] = [];
    let start = 0;
    for (let at = output.indexOf(10); at !== -1; at = output.indexOf(10, start)) {
        lengths.push(at - start);
        start = at + 1;
    }
    lengths.push(output.length - start);
    return lengths;
}

/** What a folded stream said, the fold marks taken out. */
function unfolded(output: Buffer): Buffer {
    const mark = Buffer.from(MARK, "utf8");
    const parts: Buffer[] = [];
    let start = 0;
    for (let at = output.indexOf(mark); at !== -1; at = output.indexOf(mark, start)) {
        parts.push(output.subarray(start, at));
        start = at + mark.length;
    }
    parts.push(output.subarray(start));
    return Buffer.concat(parts);
}

function isUtf8(output: Buffer): boolean {
    try {
        new TextDecoder("utf-8", { fatal: true }).decode(output);
        return true;
    } catch {
        return false;
    }
}

// 100 KiB lines on both streams, a line of two-byte characters that starts one byte off (a
// cut at 16000 bytes would split one), 45 KB of \r-progress without a newline, numbered short
// lines around them, and a last line without a newline.
const LONG_BODY = [
    'for i in 1 2 3; do echo "out $i"; echo "err $i" >&2; done',
    "head -c 102400 /dev/zero | tr '\\0' x; echo",
    "head -c 102400 /dev/zero | tr '\\0' y >&2; echo >&2",
    "printf a; i=0; while [ $i -lt 30000 ]; do printf '\\303\\274'; i=$((i + 1)); done; echo",
    "i=0; while [ $i -lt 3000 ]; do printf 'progress %05d%%\\r' $i; i=$((i + 1)); done >&2; echo >&2",
    'for i in 4 5 6; do echo "out $i"; echo "err $i" >&2; done',
    "printf 'no newline at the end'",
    "",
].join("\n");

function expectedStdout(): Buffer {
    return Buffer.concat([
        Buffer.from("out 1\nout 2\nout 3\n"),
        Buffer.from(`${"x".repeat(102400)}\n`),
        Buffer.from(`a${"ü".repeat(30000)}\n`, "utf8"),
        Buffer.from("out 4\nout 5\nout 6\nno newline at the end"),
    ]);
}

function expectedStderr(): Buffer {
    let progress = "";
    for (let i = 0; i < 3000; i++) progress += `progress ${String(i).padStart(5, "0")}%\r`;
    return Buffer.from(`err 1\nerr 2\nerr 3\n${"y".repeat(102400)}\n${progress}\nerr 4\nerr 5\nerr 6\n`);
}

describe("a step's logged output lines", () => {
    it.each(shells)("are at most 16 KiB, with all their text and a valid UTF-8 cut, launched from %s", (shell) => {
        const run = runStep(`${LONG_BODY}exit 0\n`, { shell });
        expect(run.code).toBe(0);
        for (const output of [run.stdout, run.stderr]) {
            expect(Math.max(...lineLengths(output))).toBeLessThanOrEqual(BOUND);
            expect(isUtf8(output)).toBe(true);
        }
        // Every long line was folded (marked), and nothing else changed, order included.
        expect(lineLengths(run.stdout).filter((length) => length > 16000)).not.toEqual([]);
        expect(unfolded(run.stdout).equals(expectedStdout())).toBe(true);
        expect(unfolded(run.stderr).equals(expectedStderr())).toBe(true);
    });

    it.each([
        ["exit 7", 7],
        ["false", 1],
        ["fail() { echo 'failing' >&2; exit 42; }; fail", 42],
        ['x="$(exit 3)" || echo "subshell said $?"; exit 5', 5],
    ])("keep the step's exit status after `%s`, with the whole tail", (last, code) => {
        const run = runStep(`${LONG_BODY}\n${last}\necho never\n`);
        expect(run.code).toBe(code);
        expect(run.stdout.includes(Buffer.from("never"))).toBe(false);
        const stdout = unfolded(run.stdout);
        expect(stdout.subarray(0, expectedStdout().length).equals(expectedStdout())).toBe(true);
        expect(unfolded(run.stderr).subarray(0, expectedStderr().length).equals(expectedStderr())).toBe(true);
        expect(Math.max(...lineLengths(run.stdout), ...lineLengths(run.stderr))).toBeLessThanOrEqual(BOUND);
    });

    it("fold only the streams the provider logs, and a stream it does not log passes byte for byte", () => {
        const body = "head -c 102400 /dev/zero | tr '\\0' x; echo; head -c 102400 /dev/zero | tr '\\0' y >&2; printf 'a\\000b'\n";
        const none = runStep(body, { logging: "none" });
        expect(none.code).toBe(0);
        expect(none.stdout.equals(Buffer.concat([Buffer.from(`${"x".repeat(102400)}\na`), Buffer.from([0]), Buffer.from("b")]))).toBe(true);
        expect(none.stderr.equals(Buffer.from("y".repeat(102400)))).toBe(true);

        const stdoutOnly = runStep(body, { logging: "stdout" });
        expect(Math.max(...lineLengths(stdoutOnly.stdout))).toBeLessThanOrEqual(BOUND);
        expect(stdoutOnly.stderr.equals(Buffer.from("y".repeat(102400)))).toBe(true);

        const stderrOnly = runStep(body, { logging: "stderr" });
        expect(lineLengths(stderrOnly.stdout)[0]).toBe(102400);
        expect(Math.max(...lineLengths(stderrOnly.stderr))).toBeLessThanOrEqual(BOUND);
        expect(unfolded(stderrOnly.stderr).equals(Buffer.from("y".repeat(102400)))).toBe(true);
    });

    it("still read their payload from stdin, untouched by the copies", () => {
        const run = runStep('printf "%s|" "$(param STEP)"; stage="$(mktemp -d)"; cleanup_paths+=("$stage"); read_files "$stage"; cat "$stage/1"\n', {
            payload: "STEP=payload-check\n\n@file 0644 5 /tmp/x\nhello",
        });
        expect(run.stderr.toString()).toBe("");
        expect(run.code).toBe(0);
        expect(run.stdout.toString()).toBe("payload-check|hello");
    });

    it("leave no FIFO behind and remove the step's cleanup paths", () => {
        const tmp = mkdtempSync(path.join(os.tmpdir(), "step-output-"));
        try {
            const run = runStep('d="$(mktemp -d)"; cleanup_paths+=("$d"); echo "$d"\n', { env: { TMPDIR: tmp } });
            expect(run.code).toBe(0);
            expect(run.stdout.toString().startsWith(`${tmp}/`)).toBe(true);
            expect(readdirSync(tmp)).toEqual([]);
        } finally {
            rmSync(tmp, { recursive: true, force: true });
        }
    });

    it("end the step even when something it started holds its output open", () => {
        // A stray background child keeps the FIFO open: its copy is ended after 20 s.
        const run = runStep('sleep 40 &\necho "holder $!"\necho done\nexit 6\n', { timeoutMs: 35_000 });
        const holder = /holder (\d+)/.exec(run.stdout.toString());
        if (holder) spawnSync("kill", [holder[1]]);
        expect(run.signal).toBeNull();
        expect(run.code).toBe(6);
        expect(run.stdout.toString()).toMatch(/done\n$/);
    }, 60_000);
});

describe("the launcher", () => {
    it("tells the script which streams are logged, and the recorded step still splits", () => {
        for (const logging of ["stdoutAndStderr", "stdout", "stderr", "none"] as const) {
            const launcher = stepLauncher("edge/read-kubeconfig.sh", "cat\n", logging);
            expect(launcher).toContain(` edge/read-kubeconfig.sh ${logging} # `);
            expect(splitStepStdin(launcher, stepStdin("cat\n", "rest")).payload).toBe("rest");
        }
    });
});

describe("write_atomically", () => {
    it("puts the bytes with their mode, keeps the previous copy on request, and leaves no temporary file", () => {
        const dir = mkdtempSync(path.join(os.tmpdir(), "atomic-write-"));
        try {
            const body = [
                `d=${dir}`,
                'printf one >"$d/src"',
                'write_atomically "$d/src" "$d/target" 640',
                'printf two >"$d/src"',
                'write_atomically "$d/src" "$d/target" 600 "" keep-previous',
                'printf "%s %s %s" "$(cat "$d/target")" "$(cat "$d/target.previous")" "$(stat -c %a "$d/target")"',
                "",
            ].join("\n");
            const run = runStep(body);
            expect(run.stderr.toString()).toBe("");
            expect(run.code).toBe(0);
            expect(run.stdout.toString()).toBe("two one 600");
            expect(readdirSync(dir).sort()).toEqual(["src", "target", "target.previous"]);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    it("fails, even where bash ignores set -e, without touching the target when the write fails", () => {
        const dir = mkdtempSync(path.join(os.tmpdir(), "atomic-write-"));
        try {
            // The source cannot be read: `cat` fails inside the helper, called from `if`.
            const body = [
                `d=${dir}`,
                'printf old >"$d/target"',
                'if write_atomically "$d/missing" "$d/target" 600; then echo wrote; else echo failed; fi',
                'cat "$d/target"',
                "",
            ].join("\n");
            const run = runStep(body);
            expect(run.code).toBe(0);
            expect(run.stdout.toString()).toBe("failed\nold");
            expect(readdirSync(dir)).toEqual(["target"]);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});

describe("tailscale_accept_routes", () => {
    /** Go's json.MarshalIndent(prefs, "", "\t"), as `tailscale debug prefs` prints it (trimmed). */
    const prefs = (routeAll: boolean, nested = ""): string =>
        [
            "{",
            '\t"ControlURL": "https://hs.example",',
            `\t"RouteAll": ${String(routeAll)},`,
            ...(nested ? [nested] : []),
            '\t"WantRunning": true',
            "}",
            "",
        ].join("\n");

    /** Runs the prelude function against a stand-in `tailscale` that answers `get` and `debug prefs` as given. */
    function acceptRoutes(answers: { get?: string; prefs?: string }): string {
        const dir = mkdtempSync(path.join(os.tmpdir(), "tailscale-prefs-"));
        try {
            if (answers.get !== undefined) writeFileSync(path.join(dir, "get"), answers.get);
            if (answers.prefs !== undefined) writeFileSync(path.join(dir, "prefs"), answers.prefs);
            // An old client has no `get` subcommand: it says so on stderr and exits 1.
            const standIn = [
                "#!/bin/sh",
                `d=${dir}`,
                'case "$1 $2" in',
                '  "get accept-routes") if [ -f "$d/get" ]; then cat "$d/get"; exit 0; fi; echo "tailscale: unknown subcommand: get" >&2; exit 1 ;;',
                '  "debug prefs") if [ -f "$d/prefs" ]; then cat "$d/prefs"; exit 0; fi; echo "failed to connect to local tailscaled" >&2; exit 1 ;;',
                "esac",
                "exit 2",
                "",
            ].join("\n");
            writeFileSync(path.join(dir, "tailscale"), standIn);
            chmodSync(path.join(dir, "tailscale"), 0o755);
            const run = runStep('echo "accept-routes=$(tailscale_accept_routes)"\n', { shell: "/bin/bash", env: { PATH: `${dir}:${process.env.PATH ?? ""}` } });
            expect(run.code).toBe(0);
            return run.stdout.toString().trim();
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    }

    it("reads `tailscale get accept-routes` where the client has it", () => {
        expect(acceptRoutes({ get: "true\n", prefs: prefs(false) })).toBe("accept-routes=yes");
        expect(acceptRoutes({ get: "false\n", prefs: prefs(true) })).toBe("accept-routes=no");
    });

    it("falls back to the top-level RouteAll line of `debug prefs` on an older client", () => {
        expect(acceptRoutes({ prefs: prefs(true) })).toBe("accept-routes=yes");
        expect(acceptRoutes({ prefs: prefs(false) })).toBe("accept-routes=no");
    });

    it("does not take a nested key of the same name for the preference", () => {
        const nested = ['\t"AutoUpdate": {', '\t\t"RouteAll": true', "\t},"].join("\n");
        expect(acceptRoutes({ prefs: prefs(false, nested) })).toBe("accept-routes=no");
        expect(acceptRoutes({ prefs: ["{", '\t"AutoUpdate": {', '\t\t"RouteAll": true', "\t}", "}", ""].join("\n") })).toBe("accept-routes=unknown");
    });

    it("says unknown when neither answers", () => {
        expect(acceptRoutes({})).toBe("accept-routes=unknown");
        expect(acceptRoutes({ get: "maybe\n" })).toBe("accept-routes=unknown");
    });
});
