/*
 * `npm run render -- --stack <name> --out <dir> [--config-file <path>] [--pki-seed <hex>]`
 *
 * Validates a stack's fleet and writes what every host would receive, mirroring host paths
 * under <dir>/hosts/<host>/. Needs no Pulumi CLI, cloud account or network. On invalid config
 * it prints every problem as `<config path>: <reason>`, exits non-zero and writes nothing.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { renderFleetFiles, type RenderedFiles } from "../components/planFiles";
import { rawFleetFromStackFile, readStackFile, stackFilePath } from "../stacks/stackFile";
import { formatProblem, validateFleet } from "../stacks/validate";

/** Marks a directory as render output so a re-render may replace it and nothing else. */
const MARKER = ".shortcircuit-render";

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

function assertReplaceable(dir: string): void {
    if (!fs.existsSync(dir)) {
        return;
    }
    const entries = fs.readdirSync(dir);
    if (entries.length > 0 && !entries.includes(MARKER)) {
        throw new UsageError(`${dir} exists, is not empty and was not written by render; choose an empty or new --out`);
    }
}

/** Writes into a sibling staging directory, then swaps it in, so a failed write leaves no half tree. */
export function writeRenderedTree(out: string, files: RenderedFiles): void {
    assertReplaceable(out);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const staging = fs.mkdtempSync(`${out}.staging-`);
    try {
        for (const [relative, file] of files) {
            const target = path.join(staging, relative);
            fs.mkdirSync(path.dirname(target), { recursive: true });
            // The mode the host gets: key material is readable by its owner only.
            fs.writeFileSync(target, file.content, { mode: file.mode });
            fs.chmodSync(target, file.mode);
        }
        fs.writeFileSync(path.join(staging, MARKER), "");
        fs.rmSync(out, { recursive: true, force: true });
        fs.renameSync(staging, out);
    } catch (error) {
        fs.rmSync(staging, { recursive: true, force: true });
        throw error;
    }
}

export function runRender(argv: string[], stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): number {
    let options: CommandOptions;
    try {
        options = parseOptions(argv);
    } catch (error) {
        stderr.write(`render: ${(error as Error).message}\nusage: npm run render -- --stack <name> --out <dir> [--config-file <path>] [--pki-seed <64 hex>]\n`);
        return 2;
    }
    let raw: unknown;
    try {
        raw = rawFleetFromStackFile(readStackFile(options.configFile));
    } catch (error) {
        stderr.write(`render: ${(error as Error).message}\n`);
        return 1;
    }
    const { fleet, problems } = validateFleet(raw);
    for (const problem of problems) {
        stderr.write(`${formatProblem(problem)}\n`);
    }
    if (!fleet) {
        stderr.write(`render: ${options.configFile} is invalid (${problems.filter((p) => p.severity === "error").length} errors); nothing written\n`);
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
