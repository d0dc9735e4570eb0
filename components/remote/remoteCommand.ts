import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import { BecomeSchema, type Become } from "../../stacks/schema";
import type { StepConnection } from "./connection";
import { packScript, unpackScript } from "./packedScript";
import { remoteScript, type RemoteScriptPath } from "./scripts";

/*
 * The one way the program builds a `command:remote:Command`: the script is fixed text from a
 * `.sh` file, per-host values and files arrive on stdin in the payload format, and a secret
 * payload keeps stdin (and what the script prints) out of state and logs.
 *
 * `create` is a one-line launcher, not the script: the command provider repeats `create` in every
 * failure message, and a 10 KB script printed three times buried the two lines that said what went
 * wrong. stdin carries the script first, packed (packedScript.ts), then the payload; the launcher
 * reads exactly the packed script's bytes, unpacks it and hands the rest of stdin to it. The
 * script's digest in `create` keeps a changed script visible in a preview diff even when the
 * secret stdin is hidden.
 */

/** Which of a step's streams the command provider sends, line by line, to the engine's log. */
export type StepLogging = "stdoutAndStderr" | "stdout" | "stderr" | "none";

/**
 * `create` for `relativePath`: reads the packed script's bytes from stdin, unpacks them and runs
 * the script with bash, telling it (as $1) which streams the provider logs: remote/prelude.sh
 * bounds the lines of exactly those, because the provider hangs on a logged line of 64 KiB.
 *
 * With `become: "sudo"` the same reader runs under `sudo -n /bin/bash`, so the script, its
 * payload and any secret in it stay on stdin (never in argv, so never in `ps` or sudo's log,
 * which records only this short reader). A probe first runs `sudo -n /bin/bash -c :`: where
 * sudo would ask for a password, refuses, or is missing, the step fails before reading its
 * script, so nothing is written, with one line naming the host, the user and the sudoers rule
 * that fixes it. Written for any login shell (sh, bash, zsh: macOS's default).
 */
export function stepLauncher(relativePath: string, script: string, logging: StepLogging = "stdoutAndStderr", become: Become = "none"): string {
    // The name lands unquoted in a shell line. The program's steps pass a RemoteScriptPath (one of
    // REMOTE_SCRIPTS, checked by the compiler in RemoteStepArgs); tests launch scripts of their
    // own, so here it is a string that must look like a path, never a value.
    if (!/^[a-z0-9][a-z0-9/._-]*\.sh$/.test(relativePath)) throw new Error(`not a step script path: ${relativePath}`);
    const digest = createHash("sha256").update(script).digest("hex").slice(0, 16);
    const bytes = Buffer.byteLength(packScript(script), "utf8");
    const tail = `# shortcircuit sha256:${digest}`;
    // Exactly the packed script's bytes, so the payload behind it stays on stdin for bash. GNU's
    // dd (and a recent macOS's) fills one block with as many reads as it takes and never reads
    // past it (iflag=fullblock); an older BSD dd refuses the operand before it reads anything
    // (POSIX: operands are processed before any input is read), and `bs=1` then reads byte by
    // byte. A script that cannot be unpacked (a tool missing, the text cut short) runs nothing:
    // gzip fails on empty or truncated input, says why, and the launcher exits with its status.
    const reader = `script="$({ dd bs=${bytes} count=1 iflag=fullblock || dd bs=1 count=${bytes}; } 2>/dev/null | base64 --decode | gzip -dc)" && exec bash -c "$script"`;
    switch (become) {
        case "none":
            return `${reader} ${relativePath} ${logging} ${tail}`;
        case "sudo":
            return `${SUDO_PROBE} && exec sudo -n /bin/bash -c '${reader} "$0" "$1"' ${relativePath} ${logging} ${tail}`;
        default:
            throw new Error(`unhandled become ${JSON.stringify(become satisfies never)}`);
    }
}

/** Fails a sudo step before it reads anything, with one line: the host, the user, sudo's reason, the fix. */
const SUDO_PROBE =
    `{ why="$(sudo -n /bin/bash -c : 2>&1 </dev/null)" || { printf 'shortcircuit: %s: cannot become root: sudo -n /bin/bash as %s failed (%s); ` +
    `fix: on that host add the line "%s ALL=(root) NOPASSWD: /bin/bash" with visudo -f /etc/sudoers.d/shortcircuit\\n' ` +
    `"$(uname -n)" "$(id -un)" "$(printf '%s\\n' "$why" | tail -n 1)" "$(id -un)" >&2; exit 1; }; }`;

const LAUNCHER_TAIL = / (\S+) (stdoutAndStderr|stdout|stderr|none) # shortcircuit sha256:[0-9a-f]{16}$/;

/** A step's stdin: its script, packed, then the payload the script reads. */
export function stepStdin(script: string, payload: string): string {
    return `${packScript(script)}${payload}`;
}

/** A recorded step's stdin split back into the script it runs and the payload that script reads. */
export function splitStepStdin(create: string, stdin: string): { path: string; script: string; payload: string; become: Become } {
    const count = /(?:^|[ '])script="\$\(\{ dd bs=(\d+) count=1 iflag=fullblock /.exec(create);
    const tail = LAUNCHER_TAIL.exec(create);
    if (count && tail) {
        const raw = Buffer.from(stdin, "utf8");
        const bytes = Number(count[1]);
        let script: string;
        try {
            script = unpackScript(raw.subarray(0, bytes).toString("utf8"));
        } catch {
            throw new Error(`not a shortcircuit step's stdin: its first ${bytes} bytes are not a packed script`);
        }
        const logging = tail[2] as StepLogging;
        for (const become of BecomeSchema.options) {
            // Only a launcher this module builds, byte for byte, for the script it carries.
            if (create === stepLauncher(tail[1], script, logging, become)) {
                return { path: tail[1], script, payload: raw.subarray(bytes).toString("utf8"), become };
            }
        }
    }
    throw new Error(`not a shortcircuit step launcher: ${create.slice(0, 80)}`);
}

export interface RemoteStepArgs {
    connection: StepConnection;
    /** `components/<path>.sh`, run after remote/prelude.sh: one of REMOTE_SCRIPTS. */
    script: RemoteScriptPath;
    /** The step's payload (remote/payload.ts). */
    stdin: pulumi.Input<string>;
    /** The payload holds secrets: stdin is stored as a secret (the scripts never print content). */
    secret?: boolean;
    /** What the script prints is secret (a kubeconfig): stored as a secret and not logged. */
    secretOutput?: boolean;
    /** Extra values whose change re-runs the step although its payload did not change. */
    triggers?: pulumi.Input<unknown>[];
    /** What must succeed first. */
    after?: pulumi.Input<pulumi.Resource>[];
}

export function remoteStep(name: string, parent: pulumi.Resource, args: RemoteStepArgs): command.remote.Command {
    const script = remoteScript(args.script);
    // Every stream is logged but a secret one. The only step whose stdout is data the program
    // parses (the kubeconfig) is secret, so it runs with "none" and its output passes unchanged;
    // every logged stream has its lines bounded by the prelude (see stepLauncher), which keeps
    // all the text but folds a line over 16 KiB.
    const logging: StepLogging = args.secretOutput ? "none" : "stdoutAndStderr";
    const launcher = stepLauncher(args.script, script, logging, args.connection.become);
    const stdin = pulumi.output(args.stdin).apply((payload) => stepStdin(script, payload));
    return new command.remote.Command(
        name,
        {
            connection: args.connection.ssh,
            create: launcher,
            update: launcher,
            stdin: args.secret ? pulumi.secret(stdin) : stdin,
            triggers: args.triggers,
            logging,
        },
        {
            parent,
            dependsOn: args.after ?? [],
            additionalSecretOutputs: [...(args.secret ? ["stdin"] : []), ...(args.secretOutput ? ["stdout"] : [])],
        },
    );
}
