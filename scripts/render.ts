/*
 * `npm run render -- --stack <name> --out <dir> [--config-file <path>] [--pki-seed <hex>]`
 *
 * Validates a stack's fleet and writes what every host would receive, mirroring host paths
 * under <dir>/hosts/<host>/. Needs no Pulumi CLI, cloud account or network. On invalid config
 * it prints every problem as `<config path>: <reason>`, exits non-zero and writes nothing.
 *
 * --out: a directory render wrote before is replaced only while it holds nothing but what
 * render wrote (the marker lists those files), so a file an operator added is never deleted;
 * inside the source tree only the git-ignored out/ may receive output, so throwaway keys are
 * never left where they could be committed.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { renderFleetFiles, type RenderedFiles } from "./render/files";
import { SSH_VIA_ENV, type StackCheck } from "../stacks/check";
import { PROJECT_ROOT, checkStackFile, readStackFile, stackFilePath } from "../stacks/stackFile";
import { formatProblem } from "../stacks/validate";

/** Marks a directory as render output and lists, one a line, the files render wrote there. */
const MARKER = ".shortcircuit-render";
/** The one place inside the source tree render may write (git-ignored). */
const IN_TREE_OUT = path.join(PROJECT_ROOT, "out");

class UsageError extends Error {}

interface CommandOptions {
    stack?: string;
    out: string;
    configFile: string;
    pkiSeedHex?: string;
}

function parseOptions(argv: string[]): CommandOptions {
    const { values } = parseArgs({
        args: argv,
        options: {
            stack: { type: "string" },
            out: { type: "string" },
            "config-file": { type: "string" },
            "pki-seed": { type: "string" },
        },
        strict: true,
    });
    if (!values.out) {
        throw new UsageError("--out <dir> is required");
    }
    if (!values.stack && !values["config-file"]) {
        throw new UsageError("--stack <name> or --config-file <path> is required");
    }
    const pkiSeedHex = values["pki-seed"];
    if (pkiSeedHex !== undefined && !/^[0-9a-f]{64}$/i.test(pkiSeedHex)) {
        throw new UsageError("--pki-seed must be 64 hex characters");
    }
    return {
        stack: values.stack,
        out: path.resolve(values.out),
        configFile: values["config-file"] ? path.resolve(values["config-file"]) : stackFilePath(values.stack as string),
        pkiSeedHex,
    };
}

function isInside(parent: string, child: string): boolean {
    const relative = path.relative(parent, child);
    return relative === "" || (!relative.startsWith("..") && !path.isAbsolute(relative));
}

/** Render output holds throwaway keys: never in the source tree, except the git-ignored out/. */
function assertOutsideSourceTree(out: string): void {
    const real = (p: string): string => {
        // Resolve symlinks of the part that exists, so a link into the tree is caught too.
        let existing = p;
        while (!fs.existsSync(existing) && path.dirname(existing) !== existing) {
            existing = path.dirname(existing);
        }
        return path.join(fs.realpathSync(existing), path.relative(existing, p));
    };
    const resolved = real(out);
    const root = fs.realpathSync(PROJECT_ROOT);
    if (isInside(resolved, root)) {
        throw new UsageError(`--out ${out} contains the source tree; choose a directory of its own`);
    }
    if (isInside(root, resolved) && !(isInside(path.join(root, "out"), resolved) && resolved !== path.join(root, "out"))) {
        throw new UsageError(
            `--out ${out} is inside the source tree, where its throwaway keys could be committed; use ${IN_TREE_OUT}/<name> (git-ignored) or a directory outside`,
        );
    }
}

/** Files under `dir`, relative, `/`-separated, sorted. */
function filesUnder(dir: string): string[] {
    return fs
        .readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((entry) => !entry.isDirectory())
        .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)).split(path.sep).join("/"))
        .sort();
}

function assertReplaceable(dir: string): void {
    if (!fs.existsSync(dir)) {
        return;
    }
    const entries = fs.readdirSync(dir);
    if (entries.length === 0) {
        return;
    }
    if (!entries.includes(MARKER)) {
        throw new UsageError(`${dir} exists, is not empty and was not written by render; choose an empty or new --out`);
    }
    const written = new Set(
        fs
            .readFileSync(path.join(dir, MARKER), "utf8")
            .split("\n")
            .filter((line) => line !== ""),
    );
    written.add(MARKER);
    const foreign = filesUnder(dir).filter((file) => !written.has(file));
    if (foreign.length > 0) {
        const shown = foreign
            .slice(0, 5)
            .map((file) => JSON.stringify(file))
            .join(", ");
        throw new UsageError(
            `${dir} holds ${foreign.length} file${foreign.length > 1 ? "s" : ""} render did not write (${shown}${foreign.length > 5 ? ", …" : ""}); move ${foreign.length > 1 ? "them" : "it"} out or choose another --out, render replaces the whole directory`,
        );
    }
}

/**
 * Where a rendered file goes inside `root`. Whatever the model says, a path that is not a plain
 * relative path staying inside `root` (absolute, `..`, `.` or empty segments) is refused:
 * validation already keeps names to DNS labels, this is the second line of defence.
 */
export function targetInside(root: string, relative: string): string {
    const segments = relative.split("/");
    if (
        path.isAbsolute(relative) ||
        segments.some((segment) => segment === "" || segment === "." || segment === ".." || segment.includes("\\") || segment.includes("\0"))
    ) {
        throw new Error(`refusing to write ${JSON.stringify(relative)}: not a plain relative path`);
    }
    const target = path.resolve(root, ...segments);
    if (!isInside(root, target) || target === path.resolve(root)) {
        throw new Error(`refusing to write ${JSON.stringify(relative)}: it resolves outside ${root}`);
    }
    return target;
}

/** Writes into a sibling staging directory, then swaps it in, so a failed write leaves no half tree. */
export function writeRenderedTree(out: string, files: RenderedFiles): void {
    assertReplaceable(out);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const staging = fs.mkdtempSync(`${out}.staging-`);
    try {
        for (const [relative, file] of files) {
            const target = targetInside(staging, relative);
            fs.mkdirSync(path.dirname(target), { recursive: true });
            // The mode the host gets: key material is readable by its owner only.
            fs.writeFileSync(target, file.content, { mode: file.mode });
            fs.chmodSync(target, file.mode);
        }
        fs.writeFileSync(
            path.join(staging, MARKER),
            [...files.keys()]
                .sort()
                .map((file) => `${file}\n`)
                .join(""),
        );
        fs.rmSync(out, { recursive: true, force: true });
        fs.renameSync(staging, out);
    } catch (error) {
        fs.rmSync(staging, { recursive: true, force: true });
        throw error;
    }
}

export function runRender(argv: string[], stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream, env: NodeJS.ProcessEnv = process.env): number {
    let options: CommandOptions;
    try {
        options = parseOptions(argv);
    } catch (error) {
        stderr.write(`render: ${(error as Error).message}\nusage: npm run render -- --stack <name> --out <dir> [--config-file <path>] [--pki-seed <64 hex>]\n`);
        return 2;
    }
    let check: StackCheck;
    try {
        assertOutsideSourceTree(options.out);
        check = checkStackFile(readStackFile(options.configFile), { sshVia: env[SSH_VIA_ENV] });
    } catch (error) {
        stderr.write(`render: ${(error as Error).message}\n`);
        return 1;
    }
    for (const problem of check.problems) {
        stderr.write(`${formatProblem(problem)}\n`);
    }
    const fleet = check.fleet;
    if (!fleet) {
        stderr.write(`render: ${options.configFile} is invalid (${check.problems.filter((p) => p.severity === "error").length} errors); nothing written\n`);
        return 1;
    }
    try {
        const { files, notes } = renderFleetFiles(fleet, { now: new Date(), pkiSeedHex: options.pkiSeedHex });
        writeRenderedTree(options.out, files);
        stdout.write(`render: wrote ${files.size} files for ${fleet.nodes.length} hosts to ${options.out}\n`);
        for (const note of notes) {
            stdout.write(`render: ${note}\n`);
        }
    } catch (error) {
        stderr.write(`render: ${(error as Error).message}\n`);
        return 1;
    }
    return 0;
}

if (require.main === module) {
    process.exitCode = runRender(process.argv.slice(2), process.stdout, process.stderr);
}
