import * as nodeModule from "node:module";

/*
 * Why this exists: every `pulumi preview` starts a fresh node that compiles the program's modules
 * and the provider SDKs' again. Node (22.1+) can keep their compiled code on disk and reuse it
 * when the source is unchanged (it checks a hash of each source). The language host loads
 * @pulumi/pulumi, TypeScript and ts-node before the program starts, so those are only cached when
 * the operator sets NODE_COMPILE_CACHE themselves (README, Speed); this covers what the program
 * loads after it: our own modules, @pulumi/command, tls, kubernetes, digitalocean, zod, yaml.
 * NODE_COMPILE_CACHE, when set, names the directory; otherwise Node's default under the system's
 * temporary directory. A node without the API, or a cache it cannot use, changes nothing.
 */

/** Turns on Node's on-disk compile cache for every module loaded after this call. */
function enableCompileCache(): void {
    const api = nodeModule as { enableCompileCache?: (directory?: string) => unknown };
    try {
        api.enableCompileCache?.();
    } catch {
        // The cache only saves time; a directory it cannot create leaves compilation as it was.
    }
}

// On import, not from index.ts's body: imports are hoisted above a module's statements (ES
// semantics, which swc keeps), so only an import that comes first runs before the others load.
enableCompileCache();
