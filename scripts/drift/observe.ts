import { FramedReader, framedPayload } from "../../components/remote/payload";
import type { ExpectedHost } from "./expect";

/*
 * The collector's side of one host (scripts/drift/collect.sh): what it is asked on stdin, in
 * the payload format every remote step reads, and what its report says, parsed.
 */

/** Bytes of a public file's text the collector prints at most (for the certificate and --diff). */
export const TEXT_LIMIT = 262144;

export interface ObservedFile {
    present: boolean;
    sha256?: string;
    mode?: number;
    owner?: string;
    /** Seconds since the epoch, with the fraction. */
    mtime?: number;
    type?: string;
}

export interface ObservedService {
    props: Record<string, string>;
}

export interface Observation {
    clock?: { realtime: number; monotonicNs?: number; source: string };
    files: Map<string, ObservedFile>;
    texts: Map<string, string>;
    ifaces: Map<string, string[] | null>;
    /** Interfaces the host had no tool to read (neither ip nor ifconfig). */
    unreadableIfaces?: Set<string>;
    table52: string[];
    acceptRoutes?: "yes" | "no" | "unknown";
    services: Map<string, ObservedService>;
    /** service → marker mtime (s). */
    pending: Map<string, number>;
    knodes: Map<string, { annotation?: string; unschedulable: boolean; cordonedByRollout: boolean }>;
    kubectlError?: string;
    complete: boolean;
}

export class CollectorOutputError extends Error {}

/** What the collector reads on stdin for one host. */
export function collectorPayload(host: ExpectedHost, options: { diff: boolean }): string {
    const text = host.files.filter(
        (file) =>
            (options.diff && file.check === "content") ||
            (host.nebula !== undefined && (file.path === host.nebula.certPath || file.path === host.nebula.caPath)),
    );
    return framedPayload({
        PATHS: host.files.map((file) => file.path).join(" "),
        TEXT_PATHS: text.map((file) => file.path).join(" "),
        TEXT_LIMIT: String(TEXT_LIMIT),
        IFACES: [...new Set(host.addresses.map((pair) => pair.iface))].join(" "),
        SERVICES: host.services.map((service) => `${service.manager}:${service.name}`).join(" "),
        KUBECTL: host.kubectl ? "yes" : "no",
    });
}

export function parseCollectorOutput(output: Buffer): Observation {
    const observation: Observation = {
        files: new Map(),
        texts: new Map(),
        ifaces: new Map(),
        table52: [],
        services: new Map(),
        pending: new Map(),
        knodes: new Map(),
        complete: false,
    };
    const reader = new FramedReader(output);
    const readLine = (): string | undefined => reader.line();
    const first = readLine();
    if (first !== "drift-collector 1") {
        throw new CollectorOutputError(`not a drift collector report (first line ${JSON.stringify(first?.slice(0, 80))})`);
    }
    for (let line = readLine(); line !== undefined; line = readLine()) {
        const fields = line.split(" ");
        const [tag] = fields;
        switch (tag) {
            case "clock": {
                const monotonic = fields[2] === "-" ? undefined : fields[3] === "uptime" ? Math.round(Number(fields[2]) * 1e9) : Number(fields[2]);
                observation.clock = { realtime: Number(fields[1]), monotonicNs: monotonic, source: fields[3] ?? "" };
                break;
            }
            case "file":
                observation.files.set(
                    fields[1],
                    fields[2] === "present"
                        ? {
                              present: true,
                              sha256: fields[3] === "-" ? undefined : fields[3],
                              mode: parseInt(fields[4], 8),
                              owner: fields[5],
                              mtime: Number(fields[6]),
                              type: fields[7]?.replace(/_/g, " "),
                          }
                        : { present: false },
                );
                break;
            case "text": {
                const text = reader.take(Number(fields[2]));
                if (text === undefined) {
                    throw new CollectorOutputError(`text of ${fields[1]} cut short`);
                }
                observation.texts.set(fields[1], text);
                // The block ends with the collector's own newline.
                reader.take(1);
                break;
            }
            case "iface":
                if (fields[2] === "missing") {
                    observation.ifaces.set(fields[1], null);
                } else if (fields[2] === "unreadable") {
                    observation.unreadableIfaces = new Set([...(observation.unreadableIfaces ?? []), fields[1]]);
                } else if (!observation.ifaces.has(fields[1])) {
                    observation.ifaces.set(fields[1], []);
                }
                break;
            case "addr": {
                const list = observation.ifaces.get(fields[1]) ?? [];
                list.push(fields[2]);
                observation.ifaces.set(fields[1], list);
                break;
            }
            case "route52":
                observation.table52.push(fields.slice(1).join(" "));
                break;
            case "tailscale":
                observation.acceptRoutes = fields[2] === "yes" || fields[2] === "no" ? fields[2] : "unknown";
                break;
            case "svc": {
                const service = observation.services.get(fields[1]) ?? { props: {} };
                const property = fields.slice(2).join(" ");
                const equals = property.indexOf("=");
                if (equals > 0) {
                    service.props[property.slice(0, equals)] = property.slice(equals + 1).replace(/_/g, " ");
                }
                observation.services.set(fields[1], service);
                break;
            }
            case "pending":
                observation.pending.set(fields[1], Number(fields[2]));
                break;
            case "knode":
                observation.knodes.set(fields[1], {
                    annotation: fields[2] === "-" ? undefined : fields[2],
                    unschedulable: fields[3] === "true",
                    cordonedByRollout: fields[4] === "true",
                });
                break;
            case "kerror":
                observation.kubectlError = fields.slice(1).join(" ");
                break;
            case "end":
                observation.complete = true;
                break;
            default:
                break;
        }
    }
    if (!observation.complete) {
        throw new CollectorOutputError("the collector's report was cut short (no end record)");
    }
    return observation;
}
