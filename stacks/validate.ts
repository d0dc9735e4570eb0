import type { z } from "zod";
import { runGuards, type Problem } from "./guards";
import { FleetSchema, type Fleet } from "./schema";

export type { Problem } from "./guards";

/** Thrown when the stack config is invalid; its message lists every problem, one per line. */
export class FleetConfigError extends Error {
    constructor(readonly problems: readonly Problem[]) {
        super(`invalid fleet config:\n${problems.filter((p) => p.severity === "error").map(formatProblem).join("\n")}`);
        this.name = "FleetConfigError";
    }
}

export function formatProblem(problem: Problem): string {
    const prefix = problem.severity === "warning" ? "warning: " : "";
    return `${prefix}${problem.path}: ${problem.message}`;
}

/** `["nodes", 3, "nebula", "address"]` → `fleet.nodes[3].nebula.address`. */
export function formatConfigPath(root: string, path: readonly PropertyKey[]): string {
    return path.reduce<string>(
        (acc, key) => (typeof key === "number" ? `${acc}[${key}]` : `${acc}.${String(key)}`),
        root,
    );
}

function zodProblems(root: string, error: z.ZodError): Problem[] {
    return error.issues.map((issue) => {
        // Unknown keys are reported on the parent; name each key so the path points at it.
        if (issue.code === "unrecognized_keys") {
            return {
                path: formatConfigPath(root, issue.path),
                message: `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}`,
                severity: "error" as const,
            };
        }
        return { path: formatConfigPath(root, issue.path), message: issue.message, severity: "error" as const };
    });
}

export interface ValidationResult {
    /** Present only when there are no errors (warnings allowed). */
    fleet?: Fleet;
    problems: Problem[];
}

/** Parses raw config (as read from Pulumi config or a stack file) and runs every guard. */
export function validateFleet(raw: unknown): ValidationResult {
    const parsed = FleetSchema.safeParse(raw, {
        // zod's default ("expected string, received undefined") hides that the key is simply missing.
        error: (issue) => (issue.code === "invalid_type" && issue.input === undefined ? `required (${issue.expected})` : undefined),
    });
    if (!parsed.success) {
        return { problems: zodProblems("fleet", parsed.error) };
    }
    const problems = runGuards(parsed.data);
    const hasErrors = problems.some((problem) => problem.severity === "error");
    return hasErrors ? { problems } : { fleet: parsed.data, problems };
}

/** Like validateFleet, but throws FleetConfigError listing every error. */
export function parseFleet(raw: unknown): { fleet: Fleet; warnings: Problem[] } {
    const result = validateFleet(raw);
    if (!result.fleet) {
        throw new FleetConfigError(result.problems);
    }
    return { fleet: result.fleet, warnings: result.problems };
}
