import { createHash } from "node:crypto";
import type { MockRecorder, RecordedResource } from "./pulumiMocks";
import type { ExecResult, LabFleet, LabHost } from "../../scripts/lab";

/*
 * Plays the Pulumi engine's part for the program's remote commands against lab test hosts:
 * the commands recorded under mocks (exact script text, exact stdin, connection host) run
 * over real SSH in dependency order; a command whose script and stdin are what it last
 * applied successfully is not run again (no diff, no update); commands that do not depend on
 * each other run side by side, as the engine runs them; the first failure stops the run (what
 * is running finishes, nothing new starts) and a failed command stays "not applied" so the
 * next run retries it. The real engine is exercised by the end-to-end suite; this is
 * for the scripts' behaviour on hosts.
 */

export interface StepRun {
    name: string;
    host: string;
    result: ExecResult;
}

export interface UpResult {
    ran: StepRun[];
    skipped: string[];
    failed?: StepRun;
}

const REMOTE_COMMAND = "command:remote:Command";

/** A started command's result until its session ends. */
const NOT_FINISHED: ExecResult = { code: null, signal: null, stdout: "", stderr: "", timedOut: false, durationMs: 0 };

interface Connection {
    host: string;
}

/** The remote commands whose names start with `prefix`, in dependency order. */
export function orderedCommands(recorder: MockRecorder, prefix: string): RecordedResource[] {
    const commands = recorder.ofType(REMOTE_COMMAND).filter((resource) => resource.name.startsWith(prefix));
    const byName = new Map(commands.map((command) => [command.name, command]));
    const ordered: RecordedResource[] = [];
    const visiting = new Set<string>();
    const visit = (command: RecordedResource): void => {
        if (ordered.includes(command) || visiting.has(command.name)) {
            return;
        }
        visiting.add(command.name);
        for (const dependency of command.dependsOn) {
            const before = byName.get(dependency);
            if (before) {
                visit(before);
            }
        }
        ordered.push(command);
    };
    commands.forEach(visit);
    return ordered;
}

export class EngineEmulator {
    private readonly applied = new Map<string, string>();

    constructor(private readonly fleet: LabFleet) {}

    private hostFor(command: RecordedResource): LabHost {
        const address = (command.inputs.connection as Connection).host;
        const host = this.fleet.hosts.find((candidate) => candidate.lanAddress === address);
        if (!host) {
            throw new Error(`${command.name} connects to ${address}, which is no lab host`);
        }
        return host;
    }

    /** Forgets what a command applied, as if its state were lost (forces the next run). */
    forget(name: string): void {
        this.applied.delete(name);
    }

    /** Forgets everything, as when every command's connection changed (a new SSH path). */
    forgetAll(): void {
        this.applied.clear();
    }

    /**
     * Runs `commands` as the engine does: each starts once every command it depends on (among
     * these) is done, so independent ones (pre-flights) run side by side. After the first
     * failure no command starts; the ones already running finish. `ran` is in start order.
     */
    async up(commands: readonly RecordedResource[], timeoutMs = 120000): Promise<UpResult> {
        const outcome: UpResult = { ran: [], skipped: [] };
        const names = new Set(commands.map((command) => command.name));
        const done = new Set<string>();
        const started = new Set<string>();
        const running = new Map<string, Promise<void>>();
        const ready = (command: RecordedResource): boolean => command.dependsOn.every((dependency) => !names.has(dependency) || done.has(dependency));
        // Bounded: every pass starts or finishes at least one command, or stops.
        for (let pass = 0; pass <= 2 * commands.length + 1; pass++) {
            if (!outcome.failed) {
                for (const command of commands) {
                    if (started.has(command.name) || !ready(command)) continue;
                    started.add(command.name);
                    const script = String(command.inputs.create);
                    const stdin = typeof command.inputs.stdin === "string" ? command.inputs.stdin : "";
                    const fingerprint = createHash("sha256").update(script).update("\0").update(stdin).digest("hex");
                    if (this.applied.get(command.name) === fingerprint) {
                        outcome.skipped.push(command.name);
                        done.add(command.name);
                        continue;
                    }
                    const host = this.hostFor(command);
                    const run: StepRun = { name: command.name, host: host.name, result: NOT_FINISHED };
                    outcome.ran.push(run);
                    running.set(
                        command.name,
                        this.fleet.ssh(host, script, stdin, { timeoutMs }).then((result) => {
                            run.result = result;
                            running.delete(command.name);
                            if (result.code !== 0) {
                                outcome.failed ??= run;
                                return;
                            }
                            this.applied.set(command.name, fingerprint);
                            done.add(command.name);
                        }),
                    );
                }
            }
            if (running.size === 0) break;
            await Promise.race(running.values());
        }
        return outcome;
    }
}
