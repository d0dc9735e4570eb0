import type { z } from "zod";
import { hasControlCharacter } from "./grammar";
import { runGuards, type FleetSection, type FleetSections, type GuardOptions, type Problem } from "./guards";
import { FleetSchema, type Fleet } from "./schema";

export type { Problem } from "./guards";

/** Thrown when the stack config is invalid; its message lists every problem, one per line. */
export class FleetConfigError extends Error {
    constructor(readonly problems: readonly Problem[]) {
        super(
            `invalid fleet config:\n${problems
                .filter((p) => p.severity === "error")
                .map(formatProblem)
                .join("\n")}`,
        );
        this.name = "FleetConfigError";
    }
}

/** Control characters (a newline above all) escaped, so a problem is always exactly one line. */
function oneLine(text: string): string {
    return [...text]
        .map((c) => (hasControlCharacter(c) || c === "\u2028" || c === "\u2029" ? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}` : c))
        .join("");
}

export function formatProblem(problem: Problem): string {
    const prefix = problem.severity === "warning" ? "warning: " : "";
    return oneLine(`${prefix}${problem.path}: ${problem.message}`);
}

/**
 * `["nodes", 3, "nebula", "address"]` → `fleet.nodes[3].nebula.address`. A key that is not a
 * plain identifier (a label key such as `amd.com/gpu`, or a hostile one with a newline) is
 * written quoted, `labels["amd.com/gpu"]`, so the path stays unambiguous and on one line.
 */
export function formatConfigPath(root: string, path: readonly PropertyKey[]): string {
    return path.reduce<string>((acc, key) => {
        if (typeof key === "number") {
            return `${acc}[${key}]`;
        }
        const name = String(key);
        return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? `${acc}.${name}` : `${acc}[${JSON.stringify(name)}]`;
    }, root);
}

function zodProblems(root: string, error: z.ZodError): Problem[] {
    return error.issues.map((issue) => {
        // Unknown keys are reported on the parent; name each key so the path points at it.
        if (issue.code === "unrecognized_keys") {
            return {
                path: formatConfigPath(root, issue.path),
                message: `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`,
                severity: "error" as const,
            };
        }
        // A record key that fails its grammar: zod says only "Invalid key in record"; the key's own rule says why.
        if (issue.code === "invalid_key") {
            return { path: formatConfigPath(root, issue.path), message: `key ${issue.issues[0]?.message ?? issue.message}`, severity: "error" as const };
        }
        return { path: formatConfigPath(root, issue.path), message: issue.message, severity: "error" as const };
    });
}

export interface ValidationResult {
    /** Present only when there are no errors (warnings allowed). */
    fleet?: Fleet;
    problems: Problem[];
}

const PARSE_OPTIONS = {
    // zod's default ("expected string, received undefined") hides that the key is simply missing.
    error: (issue: z.core.$ZodRawIssue) => (issue.code === "invalid_type" && issue.input === undefined ? `required (${issue.expected})` : undefined),
};

/** Each section's own parse, typed: the mapped type makes this list every section of the fleet. */
const SECTION_PARSERS: { readonly [K in FleetSection]: (raw: unknown) => Fleet[K] | undefined } = {
    sites: (raw) => FleetSchema.shape.sites.safeParse(raw).data,
    overlays: (raw) => FleetSchema.shape.overlays.safeParse(raw).data,
    cluster: (raw) => FleetSchema.shape.cluster.safeParse(raw).data,
    access: (raw) => FleetSchema.shape.access.safeParse(raw).data,
    nodes: (raw) => FleetSchema.shape.nodes.safeParse(raw).data,
    controlServer: (raw) => FleetSchema.shape.controlServer.safeParse(raw).data,
    derpRelays: (raw) => FleetSchema.shape.derpRelays.safeParse(raw).data,
    edge: (raw) => FleetSchema.shape.edge.safeParse(raw).data,
};

function isFleetSection(key: string): key is FleetSection {
    return Object.hasOwn(SECTION_PARSERS, key);
}

function parseSection<K extends FleetSection>(into: FleetSections, key: K, input: Record<string, unknown>): void {
    const data = SECTION_PARSERS[key](input[key]);
    if (data !== undefined) {
        into[key] = data;
    }
}

/**
 * When the schema fails, the sections that still parse on their own, with their parsed data:
 * the guards that read only those run too, so one run reports schema and guard errors
 * together. Section granularity keeps every guard's view whole (a guard never sees half a
 * node list, whose indices would no longer match the config paths).
 */
function validSections(raw: unknown): FleetSections {
    const sections: FleetSections = {};
    const input = typeof raw === "object" && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
    for (const key of Object.keys(FleetSchema.shape)) {
        if (isFleetSection(key)) {
            parseSection(sections, key, input);
        }
    }
    return sections;
}

/** Parses raw config (as read from Pulumi config or a stack file) and runs every guard. */
export function validateFleet(raw: unknown, options: Pick<GuardOptions, "now"> = {}): ValidationResult {
    const parsed = FleetSchema.safeParse(raw, PARSE_OPTIONS);
    if (!parsed.success) {
        const guardProblems = runGuards(validSections(raw), options);
        return { problems: [...zodProblems("fleet", parsed.error), ...guardProblems] };
    }
    const problems = runGuards(parsed.data, options);
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
