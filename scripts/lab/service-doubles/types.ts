/**
 * What the harness and the stand-ins share: the tools, their cues (ToolBehaviour), the call
 * log and the chown record.
 */

export const STAND_IN_TOOLS = ["headscale", "nebula", "go", "curl", "apt-get", "dpkg", "cloud-init", "chown"] as const;
export type StandInTool = (typeof STAND_IN_TOOLS)[number];

export interface CurlResponse {
    body?: string;
    /** A binary body (a release archive), base64; written in place of `body`. */
    bodyBase64?: string;
    /** curl's exit code (default 0). */
    exitCode?: number;
    /** With -f/--fail and >= 400: exit 22, no body. */
    httpStatus?: number;
}

export interface ToolBehaviour {
    /** What `headscale version` prints (default "v0.0.0-lab-test-double"). */
    headscaleVersion?: string;
    /** When a string, `headscale configtest` prints it and exits 1. */
    headscaleConfigtestFails?: string | null;
    /** What `nebula -version` prints after "Version: " (a leading v is dropped; default "0.0.0-lab-test-double"). */
    nebulaVersion?: string;
    /** "real": Debian's /usr/bin/nebula -test when present (default); "stub": the config file must exist. */
    nebulaTest?: "real" | "stub";
    /** When a string, `nebula -test` prints it and exits 1. */
    nebulaTestFails?: string | null;
    /** When a string, `go install` prints it and exits 1. */
    goInstallFails?: string | null;
    /** `go install` stops halfway through copying the binary into GOBIN (a killed install), exit 2. */
    goInstallCutShort?: boolean;
    /** Answers by exact URL; every other URL fails with exit 7. */
    curlResponses?: Record<string, CurlResponse>;
    /** `dpkg --print-architecture` (default amd64). */
    arch?: string;
    /** Tools whose wrapper is absent from the host's /usr/local/bin (`command -v` fails). Harness-applied. */
    missing?: StandInTool[];
}

export interface ToolInvocation {
    at: string;
    atMs: number;
    /** CLOCK_MONOTONIC µs (same clock as the service-manager stand-in's events). */
    monoUs: number;
    tool: string;
    argv: string[];
    cwd: string;
    /** GOBIN, GOMODCACHE and GOCACHE (as Go resolves them) for go; absent otherwise. */
    env?: Record<string, string>;
    exitCode: number;
    stdoutHead: string;
    stderrHead: string;
}

export interface ToolState {
    /** chown stand-in: path (as given) -> owner spec, for owners the machine does not know. */
    owners: Record<string, { owner: string; recursive: boolean }>;
}
