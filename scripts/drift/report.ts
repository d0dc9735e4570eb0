import type { Area, Finding } from "./compare";

/*
 * What `drift` prints: one line per host and a summary line, then the details; or one JSON
 * document for scripts. Pure: results in, text out.
 */

export type HostStatus = "ok" | "drift" | "unreachable";

export interface HostResult {
    name: string;
    /** Where drift connected (`user@host:port`), or undefined when the address is unknown. */
    address?: string;
    status: HostStatus;
    /** Why the host could not be read: timeout, auth, no route, refused, host key, … */
    reason?: string;
    findings: Finding[];
    seconds: number;
}

export interface DriftReport {
    stack: string;
    hosts: HostResult[];
    notes: string[];
}

/** 0: everything matches; 3: drift; 4: a host could not be read (whatever else was found). */
export function exitCode(report: DriftReport): 0 | 3 | 4 {
    if (report.hosts.some((host) => host.status === "unreachable")) {
        return 4;
    }
    return report.hosts.some((host) => host.status === "drift") ? 3 : 0;
}

export function hostStatus(findings: readonly Finding[]): HostStatus {
    return findings.some((finding) => finding.severity === "drift") ? "drift" : "ok";
}

const AREAS: Area[] = ["file", "address", "route", "service", "k3s", "nebula"];

function counts(findings: readonly Finding[]): string {
    const drift = findings.filter((finding) => finding.severity === "drift");
    const parts = AREAS.map((area) => [area, drift.filter((finding) => finding.area === area).length] as const)
        .filter(([, n]) => n > 0)
        .map(([area, n]) => `${n} ${area}`);
    const warnings = findings.length - drift.length;
    if (warnings > 0) {
        parts.push(`${warnings} warning${warnings > 1 ? "s" : ""}`);
    }
    return parts.join(", ");
}

export function summaryLine(report: DriftReport): string {
    const by = (status: HostStatus): number => report.hosts.filter((host) => host.status === status).length;
    const findings = report.hosts.reduce((sum, host) => sum + host.findings.filter((finding) => finding.severity === "drift").length, 0);
    const warnings = report.hosts.reduce((sum, host) => sum + host.findings.filter((finding) => finding.severity === "warning").length, 0);
    return (
        `drift ${report.stack}: ${report.hosts.length} hosts, ${by("ok")} ok, ${by("drift")} drifted (${findings} finding${findings === 1 ? "" : "s"}), ` +
        `${by("unreachable")} unreachable${warnings > 0 ? `, ${warnings} warning${warnings === 1 ? "" : "s"}` : ""}`
    );
}

export function formatText(report: DriftReport): string {
    const rows = report.hosts.map((host) => [
        host.name,
        host.address ?? "-",
        host.status,
        host.status === "unreachable" ? (host.reason ?? "") : counts(host.findings),
    ]);
    const header = ["HOST", "ADDRESS", "STATUS", "FINDINGS"];
    const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
    const line = (cells: string[]): string =>
        cells
            .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column])))
            .join("  ")
            .trimEnd();
    const out = [line(header), ...rows.map(line), summaryLine(report)];
    const details = report.hosts.filter((host) => host.findings.length > 0 || host.status === "unreachable");
    for (const host of details) {
        out.push("", `${host.name}:`);
        if (host.status === "unreachable") {
            out.push(`  unreachable: ${host.reason ?? "unknown"}`);
        }
        for (const finding of host.findings) {
            out.push(`  ${finding.severity === "warning" ? "warning " : ""}${finding.area} ${finding.subject}: ${finding.message}`);
            if (finding.diff) {
                out.push(
                    ...finding.diff
                        .trimEnd()
                        .split("\n")
                        .map((diffLine) => `    ${diffLine}`),
                );
            }
        }
    }
    for (const note of report.notes) {
        out.push("", `note: ${note}`);
    }
    return `${out.join("\n")}\n`;
}

export function formatJson(report: DriftReport): string {
    return `${JSON.stringify({ stack: report.stack, exitCode: exitCode(report), summary: summaryLine(report), hosts: report.hosts, notes: report.notes }, null, 2)}\n`;
}
