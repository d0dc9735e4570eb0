import { readFileSync } from "node:fs";
import * as path from "node:path";

/*
 * Remote steps are `.sh` files next to the component that runs them, shellchecked in the test
 * command. What runs on a host is remote/prelude.sh (strict mode and the payload reader)
 * followed by the step's own file.
 */

const COMPONENTS_DIR = path.resolve(__dirname, "..");
const cache = new Map<string, string>();

function read(relativePath: string): string {
    let text = cache.get(relativePath);
    if (text === undefined) {
        text = readFileSync(path.join(COMPONENTS_DIR, relativePath), "utf8");
        cache.set(relativePath, text);
    }
    return text;
}

/** Every remote step's script, for shellcheck and tests. */
export const REMOTE_SCRIPTS = [
    "remote/deliver-files.sh",
    "k3s/prepare.sh",
    "k3s/apply.sh",
    "control/bootstrap.sh",
    "control/health.sh",
    "control/authorize.sh",
    "derp/install.sh",
    "edge/read-kubeconfig.sh",
] as const;

/** A step script's path under components/: one of REMOTE_SCRIPTS, so a misspelled step is a compile error. */
export type RemoteScriptPath = (typeof REMOTE_SCRIPTS)[number];

/**
 * Functions a step's script runs, in files of their own so a test can run them alone against a
 * real tool (k3s/self-drain.sh against the real API server: test/scripts/lab/stack/apiServer.lab.test.ts).
 */
export const SCRIPT_LIBRARIES: Partial<Record<RemoteScriptPath, readonly string[]>> = {
    "k3s/apply.sh": ["k3s/self-drain.sh"],
};

/** Every library file, for shellcheck and tests. */
export const REMOTE_LIBRARIES = [...new Set(Object.values(SCRIPT_LIBRARIES).flat())];

/**
 * A step's script as written: the prelude, its libraries, then `components/<relativePath>` (what
 * shellcheck reads, directives and all).
 */
export function remoteScriptSource(relativePath: string): string {
    const libraries = SCRIPT_LIBRARIES[relativePath as RemoteScriptPath] ?? [];
    return [read("remote/prelude.sh"), ...libraries.map(read), read(relativePath)].join("");
}

/**
 * Drops whole-line comments and blank lines. Only for the project's own step scripts, none of
 * which has a heredoc or a multi-line string: test/components/remote/scripts.test.ts proves with
 * shfmt's parser that each shipped script is the written one, token for token.
 */
export function withoutCommentLines(script: string): string {
    return script
        .split("\n")
        .filter((line) => !/^\s*(#|$)/.test(line))
        .map((line) => `${line}\n`)
        .join("");
}

const shipped = new Map<string, string>();

/**
 * A step's script as it runs on a host: the prelude, then `components/<relativePath>`, without
 * comment and blank lines. Every step carries its script in its stdin, so the script is in every
 * registration the SDK encodes (one character at a time, google-protobuf's writeString) and the
 * engine decodes, previews included; comments were about 40 % of those bytes.
 */
export function remoteScript(relativePath: string): string {
    let script = shipped.get(relativePath);
    if (script === undefined) {
        script = withoutCommentLines(remoteScriptSource(relativePath));
        shipped.set(relativePath, script);
    }
    return script;
}

/** A script file as it is: for scripts that run without the payload reader (cloud-init), and a step library a test runs alone. */
export function scriptFile(relativePath: string): string {
    return read(relativePath);
}
