/**
 * A host's /usr/local/bin: wrappers that run the doubles with the host's config, a sudo shim,
 * and links to this machine's own /usr/local/bin entries (so real tools stay reachable).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { STAND_IN_TOOLS } from "./service-doubles/types";
import type { StandInTool } from "./service-doubles/types";
import { shQuote } from "./processes";

/** Wrapper of one service-doubles tool (headscale, nebula, go, curl, ...). */
export function standInWrapper(tool: string, hostConfig: string, script: string): string {
    return [
        "#!/bin/sh",
        `# service-doubles: lab fleet TEST DOUBLE standing in for \`${tool}\` (not the real one).`,
        "# See scripts/lab/service-doubles and scripts/lab (the lab harness).",
        `K3S_TEST_DOUBLE_HOST_CONFIG=${shQuote(hostConfig)}`,
        "export K3S_TEST_DOUBLE_HOST_CONFIG",
        `exec ${shQuote(process.execPath)} --disable-warning=ExperimentalWarning ${shQuote(script)} ${tool} "$@"`,
        "",
    ].join("\n");
}

/** Wrapper of one k3s-double tool (k3s, kubectl, systemctl, journalctl). */
export function shimWrapper(tool: string, hostConfig: string, doubleScript: string): string {
    return [
        "#!/bin/sh",
        `# k3s-test-double: lab fleet TEST DOUBLE standing in for \`${tool}\` (not the real one).`,
        "# See scripts/lab/k3s-double and scripts/lab (the lab harness).",
        `K3S_TEST_DOUBLE_HOST_CONFIG=${shQuote(hostConfig)}`,
        "export K3S_TEST_DOUBLE_HOST_CONFIG",
        `exec ${shQuote(process.execPath)} --disable-warning=ExperimentalWarning ${shQuote(doubleScript)} ${tool} "$@"`,
        "",
    ].join("\n");
}

export const SUDO_SHIM = `#!/bin/bash
# lab fleet sudo shim (test harness, not sudo): lab sessions are root already.
while [ $# -gt 0 ]; do
  case "$1" in
    -n|-E|-H|-S|-k|--non-interactive|--preserve-env|--preserve-env=*|--login-class=*) shift ;;
    -u|--user) [ "\${2:-}" = root ] || { echo "lab sudo shim: only -u root is supported" >&2; exit 1; }; shift 2 ;;
    --user=root|-uroot) shift ;;
    --) shift; break ;;
    -*) echo "lab sudo shim: unsupported option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "lab sudo shim: no command" >&2; exit 1; }
exec "$@"
`;

/** Writes the stand-in wrappers into a host's /usr/local/bin, except the missing ones (removed). */
export function applyMissingTools(binDir: string, hostConfig: string, script: string, missing: readonly StandInTool[]): void {
    for (const t of STAND_IN_TOOLS) {
        const file = path.join(binDir, t);
        if (missing.includes(t)) fs.rmSync(file, { force: true });
        else fs.writeFileSync(file, standInWrapper(t, hostConfig, script), { mode: 0o755 });
    }
}

/**
 * The real systemctl/journalctl paths (symlinks resolved, each once) that a host bind-mounts its
 * shims over: scripts that call /usr/bin/systemctl by full path must reach the double too.
 */
export function systemToolBindTargets(): string[] {
    const bindTargets: string[] = [];
    const seen = new Set<string>();
    for (const t of ["/usr/bin/systemctl", "/bin/systemctl", "/usr/bin/journalctl", "/bin/journalctl"]) {
        try {
            const real = fs.realpathSync(path.dirname(t)) + "/" + path.basename(t);
            if (fs.existsSync(t) && !seen.has(real)) {
                seen.add(real);
                bindTargets.push(real);
            }
        } catch {
            // no such dir
        }
    }
    return bindTargets;
}
