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
    "k3s/drain.sh",
    "k3s/apply.sh",
    "k3s/uncordon.sh",
    "control/bootstrap.sh",
    "control/health.sh",
    "control/authorize.sh",
    "derp/install.sh",
    "edge/read-kubeconfig.sh",
] as const;

/** A step script's path under components/: one of REMOTE_SCRIPTS, so a misspelled step is a compile error. */
export type RemoteScriptPath = (typeof REMOTE_SCRIPTS)[number];

/** A step's script as it runs: the prelude, then `components/<relativePath>`. */
export function remoteScript(relativePath: string): string {
    return `${read("remote/prelude.sh")}${read(relativePath)}`;
}

/** A script file as it is, for scripts that run without the payload reader (cloud-init). */
export function scriptFile(relativePath: string): string {
    return read(relativePath);
}
