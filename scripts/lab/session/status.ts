/** `lab status`: what the lab command's labs run, read from their records and the machine. */
import { execFileSync } from "node:child_process";
import { listSessionDirs, readSession, sameProcess, sessionFiles } from "./record";

function namespaces(): string[] {
    try {
        return execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
            .split("\n")
            .map((line) => line.split(" ")[0])
            .filter(Boolean);
    } catch {
        return [];
    }
}

/** Lines for the operator; `running` is how many labs run whole. */
export function status(): { lines: string[]; running: number } {
    const sessions = listSessionDirs();
    if (sessions.length === 0) return { lines: ["no lab runs (npm run lab -- up)"], running: 0 };
    const netns = namespaces();
    const lines: string[] = [];
    let running = 0;
    for (const { stack, dir } of sessions) {
        const record = readSession(dir);
        if (!record) {
            lines.push(`stack ${stack}: incomplete (an up in progress, or one that crashed): npm run lab -- down --stack ${stack} removes it`);
            continue;
        }
        const keeper = sameProcess(record.keeperPid, record.keeperStart);
        const hostNs = record.hosts.map((host) => `sc-lab-${record.runId}-${host.name}`);
        const present = hostNs.filter((name) => netns.includes(name)).length;
        const api = record.apiServerPids.every((entry) => sameProcess(entry.pid, entry.start));
        const whole = keeper && present === record.hosts.length && api;
        if (whole) running += 1;
        const files = sessionFiles(dir);
        lines.push(
            `stack ${stack}: ${whole ? "running" : "BROKEN (npm run lab -- down --stack " + stack + ", then up)"} since ${record.startedAt}, fleet run ${record.runId}`,
            `  keeper pid ${record.keeperPid} ${keeper ? "alive" : "gone"}; hosts ${present}/${record.hosts.length} namespaces present; API server ${record.apiServerUrl ?? "none"} ${api ? "alive" : "gone"}`,
            `  ${record.plugins}`,
            ...record.hosts.map((host) => `  ${host.name.padEnd(24)} ${host.lanAddress.padEnd(15)} ${host.role}`),
            `  ssh:    ssh -F ${files.sshConfig} <host>   (or npm run lab -- ssh <host>)`,
            `  pulumi: npm run lab -- pulumi preview --diff --stack ${stack}   (or: source ${files.env}; cd ${record.projectDir}; pulumi …)`,
            `  stack file: ${record.projectDir}/Pulumi.${stack}.yaml (derived; the committed one is never written)`,
            `  drift:  npm run drift -- --config-file ${record.projectDir}/Pulumi.${stack}.yaml --identity ${files.identity} --known-hosts ${files.knownHosts} --strict-host-key-checking yes`,
        );
    }
    return { lines, running };
}
