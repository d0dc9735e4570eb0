import { execFileSync, spawn } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { killTree, processTree } from "../processes";

/*
 * The real Pulumi engine for the end-to-end suite (DESIGN.md, "Testing" item 6): the CLI,
 * its Node.js language host and the kubernetes plugin built from the Go module proxy, and the
 * project's TEST DOUBLES of the command, tls and digitalocean providers (scripts/lab/provider-doubles), all
 * from scripts/tools/build-engine.sh's cache. SHORTCIRCUIT_PULUMI_PLUGINS=<dir> swaps the
 * doubles for real plugins: every pulumi-resource-<name> in <dir> is installed instead.
 *
 * Each stack runs on a copy of the program (Pulumi.yaml, index.ts, components/, stacks/,
 * package.json, tsconfig.json, node_modules linked) in its own directory, with a file://
 * backend, a passphrase secrets provider and a private PULUMI_HOME, so nothing is written
 * into the clone or the operator's ~/.pulumi.
 */

const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");
const PROGRAM_FILES = ["Pulumi.yaml", "index.ts", "package.json", "tsconfig.json"];
const PROGRAM_DIRS = ["components", "stacks"];

export interface Engine {
    /** PATH etc. from build-engine.sh. */
    env: Record<string, string>;
    pulumiBin: string;
    kubeBin: string;
    doublesDir: string;
    /** PULUMI_HOME of the cache, holding the kubernetes plugin. */
    cacheHome: string;
    cliVersion: string;
}

/** The pins the plugins are installed under (package.json), by provider name. */
export function pluginPins(): Record<string, string> {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    return {
        command: pkg.dependencies["@pulumi/command"],
        tls: pkg.dependencies["@pulumi/tls"],
        digitalocean: pkg.dependencies["@pulumi/digitalocean"],
        kubernetes: pkg.dependencies["@pulumi/kubernetes"],
    };
}

/** The engine from the cache; throws with what to run when it is not built (CI builds it in scripts/setup.sh). */
export function loadEngine(): Engine {
    let out: string;
    try {
        out = execFileSync("bash", [path.join(REPO_ROOT, "scripts/tools/build-engine.sh"), "--check"], {
            encoding: "utf8",
            stdio: ["ignore", "pipe", "pipe"],
            timeout: 120_000,
        });
    } catch (error) {
        const stderr = String((error as { stderr?: string }).stderr ?? "");
        throw new Error(`the real Pulumi engine is not built: run bash scripts/setup.sh (it runs scripts/tools/build-engine.sh)\n${stderr}`);
    }
    const env: Record<string, string> = {};
    for (const line of out.split("\n")) {
        const match = /^export ([A-Z_]+)="(.*)"$/.exec(line) ?? /^export ([A-Z_]+)=(.*)$/.exec(line);
        if (!match) continue;
        const value = match[2].replace("$PATH", env.PATH ?? process.env.PATH ?? "");
        env[match[1]] = value;
    }
    const pulumiBin = env.PATH.split(":").find((dir) => fs.existsSync(path.join(dir, "pulumi")));
    if (!pulumiBin || !env.SHORTCIRCUIT_KUBE_BIN || !env.SHORTCIRCUIT_PROVIDER_DOUBLES || !env.PULUMI_HOME) {
        throw new Error(`build-engine.sh printed no usable exports:\n${out}`);
    }
    const cliVersion = execFileSync(path.join(pulumiBin, "pulumi"), ["version"], { encoding: "utf8", env: { ...process.env, ...env } }).trim();
    return { env, pulumiBin, kubeBin: env.SHORTCIRCUIT_KUBE_BIN, doublesDir: env.SHORTCIRCUIT_PROVIDER_DOUBLES, cacheHome: env.PULUMI_HOME, cliVersion };
}

export interface RunResult {
    code: number | null;
    stdout: string;
    stderr: string;
    /** stdout + stderr as they interleaved. */
    output: string;
    durationMs: number;
    timedOut: boolean;
}

export interface PluginChoice {
    /** "double" or the path of the real plugin installed. */
    command: string;
    tls: string;
    digitalocean: string;
    kubernetes: string;
}

export interface StackOptions {
    runDir: string;
    engine: Engine;
    stack: string;
    /** The fleet object (the stack file's shortcircuit:fleet). */
    fleet: unknown;
    secrets: Record<string, string>;
    /** Post-processes the stack file's text (e.g. an unquoted date). */
    editStackFile?: (text: string) => string;
    /** A Pulumi project directory run instead of the shortcircuit program (its files are copied, node_modules linked; no fleet config is written). */
    programDir?: string;
    /** More plain config beside the fleet, by full key ("digitalocean:apiEndpoint"). A `secrets` key with a ":" is a full key too. */
    config?: Record<string, string>;
    /**
     * Link the working tree's program (index.ts, components/, stacks/, package.json,
     * tsconfig.json) instead of copying it, so an edit shows up in the next preview. Pulumi.yaml
     * is copied either way: the engine looks for Pulumi.<stack>.yaml beside it, and that must be
     * the project's own derived file, never a committed one.
     */
    linkProgram?: boolean;
    /** Real plugin binaries to install, by provider (before SHORTCIRCUIT_PULUMI_PLUGINS and the doubles). */
    pluginFiles?: Partial<Record<"command" | "tls" | "digitalocean", string>>;
    /**
     * Another backend instead of runDir/backend's file:// one: its login URL (e.g. an S3 bucket's
     * `s3://…?endpoint=…`) and what the CLI needs beside it (AWS_ACCESS_KEY_ID, …). `stateFile` then
     * names nothing: read the state with `exportState()`.
     */
    backend?: { url: string; env?: Record<string, string> };
}

/**
 * Writes a Pulumi TypeScript project of one index.ts into `dir` (for `StackOptions.programDir`):
 * the small programs that pin one behaviour of a provider double or the engine.
 */
export function writeTinyProgram(dir: string, project: string, indexTs: string): string {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "Pulumi.yaml"), `name: ${project}\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n    packagemanager: npm\n`);
    fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: project, main: "index.ts" }));
    fs.writeFileSync(
        path.join(dir, "tsconfig.json"),
        JSON.stringify({
            compilerOptions: { target: "ES2022", module: "commonjs", moduleResolution: "node", strict: true, esModuleInterop: true, skipLibCheck: true },
            files: ["index.ts"],
            "ts-node": { transpileOnly: true },
        }),
    );
    fs.writeFileSync(path.join(dir, "index.ts"), indexTs);
    return dir;
}

/** One Pulumi project copy + stack, driven through the real CLI. */
export class PulumiStack {
    readonly projectDir: string;
    readonly backendDir: string;
    readonly home: string;
    readonly passphrase = crypto.randomBytes(18).toString("base64");
    plugins: PluginChoice = { command: "double", tls: "double", digitalocean: "double", kubernetes: "built from the module proxy" };
    /** Every output any command printed, for the secrets check. */
    readonly transcripts: string[] = [];

    constructor(readonly options: StackOptions) {
        this.projectDir = path.join(options.runDir, `project-${options.stack}`);
        this.backendDir = path.join(options.runDir, "backend");
        this.home = path.join(options.runDir, "pulumi-home");
    }

    get stackFile(): string {
        return path.join(this.projectDir, `Pulumi.${this.options.stack}.yaml`);
    }

    /** The backend's checkpoint of this stack (what `pulumi stack export` would print, encrypted secrets and all). */
    get stateFile(): string {
        return path.join(this.backendDir, ".pulumi", "stacks", "shortcircuit", `${this.options.stack}.json`);
    }

    env(): Record<string, string> {
        const e = this.options.engine.env;
        return {
            ...(process.env as Record<string, string>),
            ...e,
            PULUMI_HOME: this.home,
            PULUMI_BACKEND_URL: this.options.backend?.url ?? `file://${this.backendDir}`,
            ...(this.options.backend?.env ?? {}),
            PULUMI_CONFIG_PASSPHRASE: this.passphrase,
            PULUMI_SKIP_UPDATE_CHECK: "true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
            // Only the installed plugins (doubles or SHORTCIRCUIT_PULUMI_PLUGINS), never one that
            // happens to be on PATH (the cache's bin holds the kubernetes plugin).
            PULUMI_IGNORE_AMBIENT_PLUGINS: "true",
            PULUMI_SKIP_CONFIRMATIONS: "true",
            NO_COLOR: "1",
            CI: "true",
        };
    }

    /** Copies the program, installs the plugins (doubles or SHORTCIRCUIT_PULUMI_PLUGINS), creates the stack. */
    async init(): Promise<void> {
        fs.mkdirSync(this.projectDir, { recursive: true });
        fs.mkdirSync(this.backendDir, { recursive: true });
        if (this.options.programDir) {
            fs.cpSync(this.options.programDir, this.projectDir, { recursive: true });
        } else {
            for (const file of PROGRAM_FILES) {
                if (this.options.linkProgram && file !== "Pulumi.yaml") fs.symlinkSync(path.join(REPO_ROOT, file), path.join(this.projectDir, file));
                else fs.copyFileSync(path.join(REPO_ROOT, file), path.join(this.projectDir, file));
            }
            for (const dir of PROGRAM_DIRS) {
                if (this.options.linkProgram) fs.symlinkSync(path.join(REPO_ROOT, dir), path.join(this.projectDir, dir));
                else fs.cpSync(path.join(REPO_ROOT, dir), path.join(this.projectDir, dir), { recursive: true });
            }
        }
        fs.symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(this.projectDir, "node_modules"));
        if (!fs.existsSync(path.join(this.home, "plugins"))) await this.installPlugins();
        await this.check(["stack", "init", this.options.stack, "--secrets-provider", "passphrase"]);
        const stackFile = parseYaml(fs.readFileSync(this.stackFile, "utf8")) as Record<string, unknown>;
        stackFile.config = { ...(this.options.config ?? {}), ...(this.options.programDir ? {} : { "shortcircuit:fleet": this.options.fleet }) };
        let text = stringifyYaml(stackFile, { lineWidth: 0 });
        if (this.options.editStackFile) text = this.options.editStackFile(text);
        fs.writeFileSync(this.stackFile, text);
        for (const [key, value] of Object.entries(this.options.secrets)) {
            await this.check(["config", "set", "--secret", key.includes(":") ? key : `shortcircuit:${key}`, "--stack", this.options.stack], value);
        }
    }

    /** Writes a new fleet object into the stack file (secrets stay). */
    setFleet(fleet: unknown): void {
        const stackFile = parseYaml(fs.readFileSync(this.stackFile, "utf8")) as { config: Record<string, unknown> };
        stackFile.config["shortcircuit:fleet"] = fleet;
        let text = stringifyYaml(stackFile, { lineWidth: 0 });
        if (this.options.editStackFile) text = this.options.editStackFile(text);
        fs.writeFileSync(this.stackFile, text);
    }

    private async installPlugins(): Promise<void> {
        const pins = pluginPins();
        const real = process.env.SHORTCIRCUIT_PULUMI_PLUGINS;
        fs.mkdirSync(path.join(this.home, "plugins"), { recursive: true });
        const install = async (name: string, file: string): Promise<void> => {
            await this.check(["plugin", "install", "resource", name, pins[name], "--file", file, "--reinstall"]);
        };
        for (const name of ["command", "tls", "digitalocean"] as const) {
            const candidate = this.options.pluginFiles?.[name] ?? (real ? path.join(real, `pulumi-resource-${name}`) : "");
            if (candidate && fs.existsSync(candidate)) {
                await install(name, candidate);
                this.plugins[name] = candidate;
            } else if (fs.existsSync(path.join(this.options.engine.doublesDir, `pulumi-resource-${name}`))) {
                await install(name, path.join(this.options.engine.doublesDir, `pulumi-resource-${name}`));
            } else {
                // A doubles directory built before the digitalocean double existed (build-engine.sh --check
                // requires it now); a program that registers no digitalocean resource runs without it.
                this.plugins[name] = "not installed";
            }
        }
        const realKubernetes = real ? path.join(real, "pulumi-resource-kubernetes") : "";
        if (realKubernetes && fs.existsSync(realKubernetes)) {
            await install("kubernetes", realKubernetes);
            this.plugins.kubernetes = realKubernetes;
        } else {
            // The plugin build-pulumi.sh built (the engine finds no symlinked plugin directory).
            const built = path.join(this.options.engine.pulumiBin, "pulumi-resource-kubernetes");
            if (!fs.existsSync(built)) throw new Error(`${built} is missing: run bash scripts/setup.sh`);
            await install("kubernetes", built);
        }
    }

    /** Runs `pulumi <args> --non-interactive` in the project, bounded by timeoutMs. */
    run(args: string[], opts: { stdin?: string; timeoutMs?: number; env?: Record<string, string>; onSpawn?: (pid: number) => void } = {}): Promise<RunResult> {
        return runProcess(path.join(this.options.engine.pulumiBin, "pulumi"), [...args, "--non-interactive"], {
            cwd: this.projectDir,
            env: { ...this.env(), ...(opts.env ?? {}) },
            stdin: opts.stdin,
            timeoutMs: opts.timeoutMs ?? 600_000,
            onSpawn: opts.onSpawn,
        }).then((result) => {
            this.transcripts.push(result.output);
            // SHORTCIRCUIT_E2E_LOGS=<dir> keeps every command's output (the run directory is removed at the end).
            const keep = process.env.SHORTCIRCUIT_E2E_LOGS;
            if (keep) {
                fs.mkdirSync(keep, { recursive: true });
                const name = `${String(this.transcripts.length).padStart(3, "0")}-${this.options.stack}-${args
                    .slice(0, 2)
                    .join("-")
                    .replace(/[^a-z0-9-]/gi, "_")}.log`;
                fs.writeFileSync(path.join(keep, name), `$ pulumi ${args.join(" ")}\nexit ${result.code} after ${result.durationMs} ms\n${result.output}`);
            }
            return result;
        });
    }

    async check(args: string[], stdin?: string): Promise<RunResult> {
        const result = await this.run(args, { stdin });
        if (result.code !== 0) throw new Error(`pulumi ${args.join(" ")} exited ${result.code}:\n${result.output}`);
        return result;
    }

    /** `extra`: more flags, e.g. `["--replace", urn]`; `onSpawn` gets the CLI's pid (its process group). */
    up(timeoutMs?: number, extra: string[] = [], onSpawn?: (pid: number) => void): Promise<RunResult> {
        return this.run(["up", "--stack", this.options.stack, "--yes", "--skip-preview", "--color", "never", "--suppress-progress", ...extra], {
            timeoutMs,
            onSpawn,
        });
    }
    preview(extra: string[] = [], timeoutMs?: number, env?: Record<string, string>): Promise<RunResult> {
        return this.run(["preview", "--stack", this.options.stack, "--color", "never", "--suppress-progress", ...extra], { timeoutMs, env });
    }
    /** `preview: true` runs destroy's preview first, as `pulumi destroy --yes` does; else --skip-preview. */
    destroy(timeoutMs?: number, opts: { preview?: boolean } = {}): Promise<RunResult> {
        return this.run(
            ["destroy", "--stack", this.options.stack, "--yes", ...(opts.preview ? [] : ["--skip-preview"]), "--color", "never", "--suppress-progress"],
            { timeoutMs },
        );
    }
    /** The stack's checkpoint from the backend, whichever it is (`pulumi stack export`, which takes no lock; secrets stay encrypted). */
    async exportState(): Promise<{ version: number; deployment: { resources?: { urn: string; type: string }[] } & Record<string, unknown> }> {
        // Through a file: stdout arrives in chunks, which would cut a UTF-8 character at a chunk's end.
        const file = path.join(this.options.runDir, `export-${this.options.stack}-${Date.now()}.json`);
        await this.check(["stack", "export", "--stack", this.options.stack, "--file", file]);
        try {
            return JSON.parse(fs.readFileSync(file, "utf8")) as {
                version: number;
                deployment: { resources?: { urn: string; type: string }[] } & Record<string, unknown>;
            };
        } finally {
            fs.rmSync(file, { force: true });
        }
    }
    async outputs(): Promise<Record<string, unknown>> {
        const result = await this.check(["stack", "output", "--json", "--stack", this.options.stack]);
        return JSON.parse(result.stdout) as Record<string, unknown>;
    }
}

export function runProcess(
    file: string,
    args: string[],
    opts: { cwd?: string; env?: Record<string, string>; stdin?: string; timeoutMs: number; onSpawn?: (pid: number) => void },
): Promise<RunResult> {
    return new Promise((resolve) => {
        const started = Date.now();
        const child = spawn(file, args, { cwd: opts.cwd, env: opts.env, stdio: ["pipe", "pipe", "pipe"], detached: true });
        let stdout = "";
        let stderr = "";
        let output = "";
        let timedOut = false;
        if (child.pid !== undefined) opts.onSpawn?.(child.pid);
        child.stdout.on("data", (chunk: Buffer) => {
            stdout += chunk.toString();
            output += chunk.toString();
        });
        child.stderr.on("data", (chunk: Buffer) => {
            stderr += chunk.toString();
            output += chunk.toString();
        });
        const timer = setTimeout(() => {
            timedOut = true;
            try {
                // The language host and each plugin run in process groups of their own: the
                // whole tree by pid, then the group (what spawned meanwhile).
                if (child.pid !== undefined) {
                    killTree(processTree(child.pid));
                    process.kill(-child.pid, "SIGKILL");
                }
            } catch {
                // already gone
            }
        }, opts.timeoutMs);
        child.on("close", (code) => {
            clearTimeout(timer);
            resolve({ code, stdout, stderr, output, durationMs: Date.now() - started, timedOut });
        });
        child.stdin.on("error", () => undefined);
        child.stdin.end(opts.stdin ?? "");
    });
}
