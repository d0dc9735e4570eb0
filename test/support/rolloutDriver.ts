import { createHash } from "node:crypto";
import type { MockRecorder, RecordedResource } from "./pulumiMocks";
import type { ExecResult, LabFleet, LabHost } from "../../scripts/lab";

/*
 * Plays the Pulumi engine's part for the program's remote commands against lab test hosts:
 * the commands recorded under mocks (exact script text, exact stdin, connection host) run
 * over real SSH in dependency order; a command whose script and stdin are what it last
 * applied successfully is not run again (no diff, no update); the first failure stops the
 * run and every command after it is left untouched, and a failed command stays "not applied"
 * so the next run retries it. The real engine is exercised by the end-to-end suite; this is
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

    async up(commands: readonly RecordedResource[], timeoutMs = 120000): Promise<UpResult> {
        const outcome: UpResult = { ran: [], skipped: [] };
        for (const command of commands) {
            const script = String(command.inputs.create);
            const stdin = typeof command.inputs.stdin === "string" ? command.inputs.stdin : "";
            const fingerprint = createHash("sha256").update(script).update("\0").update(stdin).digest("hex");
            if (this.applied.get(command.name) === fingerprint) {
                outcome.skipped.push(command.name);
                continue;
            }
            const host = this.hostFor(command);
            const result = await this.fleet.ssh(host, script, stdin, { timeoutMs });
            const run = { name: command.name, host: host.name, result };
            outcome.ran.push(run);
            if (result.code !== 0) {
                outcome.failed = run;
                return outcome;
            }
            this.applied.set(command.name, fingerprint);
        }
        return outcome;
    }
}
