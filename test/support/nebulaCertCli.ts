import { spawnSync } from "node:child_process";

/*
 * Debian's real nebula-cert (1.6.1), as the certificate suites run it: a missing binary fails
 * the suite with a pointer to scripts/setup.sh, never a skip.
 */

export const NEBULA_CERT_SETUP_HINT = "nebula-cert is not on PATH: run scripts/setup.sh (it installs Debian's `nebula` package; CI runs it first)";

export interface NebulaCertResult {
    status: number;
    stdout: string;
    stderr: string;
}

/** `nebula-cert print -json` of one certificate, the fields the suites read. */
export interface PrintedNebulaCert {
    details: {
        name: string;
        ips: string[];
        subnets: string[];
        groups: string[] | null;
        notBefore: string;
        notAfter: string;
        publicKey: string;
        isCa: boolean;
        issuer: string;
    };
    fingerprint: string;
    signature: string;
}

/** Runs nebula-cert in `cwd`, bounded. */
export function nebulaCert(args: string[], cwd?: string, env: NodeJS.ProcessEnv = process.env): NebulaCertResult {
    const r = spawnSync("nebula-cert", args, { cwd, env, encoding: "utf8", timeout: 20_000 });
    if (r.error !== undefined) {
        if ((r.error as NodeJS.ErrnoException).code === "ENOENT") throw new Error(NEBULA_CERT_SETUP_HINT);
        throw r.error;
    }
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs nebula-cert and returns its stdout; a non-zero exit fails with its output. */
export function mustNebulaCert(args: string[], cwd?: string): string {
    const r = nebulaCert(args, cwd);
    if (r.status !== 0) throw new Error(`nebula-cert ${args.join(" ")} exited ${r.status}: ${r.stderr}${r.stdout}`);
    return r.stdout;
}

/** `nebula-cert print -json -path <file>`, parsed. */
export function printNebulaCert(file: string, cwd?: string): PrintedNebulaCert {
    return JSON.parse(mustNebulaCert(["print", "-json", "-path", file], cwd)) as PrintedNebulaCert;
}
