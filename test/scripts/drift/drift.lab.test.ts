import * as fs from "node:fs";
import * as path from "node:path";
import { Writable } from "node:stream";
import { CORDON_PATCH, ROLLOUT_CORDON_ANNOTATION } from "../../../components/k3s/rollout";
import { runDriftCommand } from "../../../scripts/drift";
import { checkLabPrerequisites, type LabFleet } from "../../../scripts/lab";
import { DROPLET, RELAY, startDriftLab, type DriftLab } from "../../support/driftLab";

/*
 * `drift` on the lab fleet over real SSH: the whole lab stack delivered with the program's own
 * scripts reads clean; each kind of drift is then made by hand, reported with its exit code,
 * and undone. No run changes anything on a host.
 */

jest.setTimeout(240_000);

const BRIDGE_PREFIX = "198.18.97";
const SERVER = "lab-server-01";
const AGENT_1 = "lab-agent-01";
const AGENT_2 = "lab-agent-02";
const NEBULA_CONFIG = "/etc/nebula/config.yml";

let lab: DriftLab;
let fleet: LabFleet;

interface JsonReport {
    exitCode: number;
    hosts: { name: string; status: string; reason?: string; findings: { area: string; subject: string; severity: string; message: string; diff?: string }[] }[];
}

function sink(): { stream: Writable; text: () => string } {
    const chunks: Buffer[] = [];
    const stream = new Writable({
        write(chunk: Buffer, _encoding, callback) {
            chunks.push(Buffer.from(chunk));
            callback();
        },
    });
    return { stream, text: () => Buffer.concat(chunks).toString("utf8") };
}

async function drift(extra: string[] = [], json = true): Promise<{ code: number; out: string; err: string; report: JsonReport }> {
    const out = sink();
    const err = sink();
    const code = await runDriftCommand(
        [
            "--config-file",
            lab.configFile,
            "--control-host",
            lab.controlHost,
            "--nebula-ca-fingerprint",
            lab.caFingerprint,
            ...lab.sshArgs,
            ...(json ? ["--json"] : []),
            ...extra,
        ],
        out.stream,
        err.stream,
        {},
    );
    return { code, out: out.text(), err: err.text(), report: json ? (JSON.parse(out.text()) as JsonReport) : { exitCode: code, hosts: [] } };
}

function findingsOf(report: JsonReport, host: string): string[] {
    return (report.hosts.find((each) => each.name === host)?.findings ?? []).map(
        (finding) => `${finding.severity} ${finding.area} ${finding.subject}: ${finding.message}`,
    );
}

function driftedHosts(report: JsonReport): string[] {
    return report.hosts.filter((host) => host.status !== "ok").map((host) => host.name);
}

/** Every entry under each host's private directories: path, type, mode, size, mtime. */
function listing(): string[] {
    const lines: string[] = [];
    for (const host of fleet.hosts) {
        const walk = (dir: string): void => {
            for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
                const full = path.join(dir, entry.name);
                // The test doubles' own call log (like a journal): not part of a host's files.
                if (full === host.doubleStateDir) {
                    continue;
                }
                const stat = fs.lstatSync(full);
                lines.push(`${full} ${stat.mode.toString(8)} ${stat.size} ${stat.mtimeMs}`);
                if (entry.isDirectory()) {
                    walk(full);
                }
            }
        };
        walk(host.rootDir);
    }
    return lines.sort();
}

beforeAll(async () => {
    const missing = checkLabPrerequisites();
    if (missing.length > 0) {
        throw new Error(`the lab fleet needs: ${missing.join("; ")} (scripts/setup.sh installs them; CI runs as root)`);
    }
    lab = await startDriftLab(BRIDGE_PREFIX);
    fleet = lab.fleet;
});

afterAll(async () => {
    await lab?.cleanup();
});

describe("drift on the lab fleet", () => {
    it("reports a freshly delivered fleet as clean (exit 0), and changes nothing on any host", async () => {
        const before = listing();
        // A host's /tmp is its own only when the harness could mount one (not when this checkout
        // itself lives under /tmp): the machine's shared /tmp changes under other suites.
        const tmpListing = (host: (typeof fleet.hosts)[number]) =>
            fleet.exec(host, "if mountpoint -q /tmp; then find /tmp -printf '%p %T@\\n' | sort; else echo shared; fi");
        const tmpBefore = await Promise.all(fleet.hosts.map(tmpListing));
        const result = await drift();
        const summary = Object.fromEntries(result.report.hosts.map((host) => [host.name, [host.status, host.reason, ...findingsOf(result.report, host.name)]]));
        expect(summary).toEqual(Object.fromEntries([SERVER, AGENT_1, AGENT_2, RELAY, DROPLET].map((name) => [name, ["ok", undefined]])));
        expect(result.code).toBe(0);
        expect(listing()).toEqual(before);
        const tmpAfter = await Promise.all(fleet.hosts.map(tmpListing));
        expect(tmpAfter.map((r) => r.stdout)).toEqual(tmpBefore.map((r) => r.stdout));

        // The text report: a table line per host and the summary line.
        const text = await drift([], false);
        expect(text.code).toBe(0);
        expect(text.out).toMatch(/^HOST +ADDRESS +STATUS +FINDINGS\n/);
        expect(text.out).toContain(`drift Pulumi.drift-lab.yaml: 5 hosts, 5 ok, 0 drifted (0 findings), 0 unreachable`);
    });

    it("reports a hand edit of a config file with a diff, and the service now running an older config (exit 3)", async () => {
        const file = fleet.hostPath(AGENT_1, NEBULA_CONFIG);
        const original = fs.readFileSync(file, "utf8");
        const stat = fs.statSync(file);
        fs.writeFileSync(file, original.replace("mtu: 1300", "mtu: 1400"));
        try {
            const result = await drift(["--diff"]);
            expect(result.code).toBe(3);
            expect(driftedHosts(result.report)).toEqual([AGENT_1]);
            const findings = result.report.hosts.find((host) => host.name === AGENT_1)!.findings;
            const edit = findings.find((finding) => finding.subject === NEBULA_CONFIG)!;
            expect(edit.message).toMatch(/^content differs \(sha256 [0-9a-f]{12} on the host, [0-9a-f]{12} planned\)$/);
            expect(edit.diff).toContain("-  mtu: 1300\n+  mtu: 1400\n");
            expect(findingsOf(result.report, AGENT_1)).toContainEqual(
                expect.stringMatching(/^drift service nebula.service: runs an older config: started .*, \/etc\/nebula\/config.yml changed /),
            );
            // Secret files are never printed: not even in a diff.
            expect(result.out).not.toContain("PRIVATE KEY");
        } finally {
            fs.writeFileSync(file, original);
            fs.utimesSync(file, stat.atime, stat.mtime);
        }
        expect((await drift()).code).toBe(0);
    });

    it("reports a changed mode and a K3s config edited by hand against the node's annotation", async () => {
        const nebula = fleet.hostPath(AGENT_2, NEBULA_CONFIG);
        const k3s = fleet.hostPath(AGENT_2, "/etc/rancher/k3s/config.yaml");
        const original = fs.readFileSync(k3s, "utf8");
        const stat = fs.statSync(k3s);
        fs.chmodSync(nebula, 0o640);
        fs.writeFileSync(k3s, `${original}# edited by hand\n`);
        fs.utimesSync(k3s, stat.atime, stat.mtime);
        try {
            const result = await drift();
            expect(result.code).toBe(3);
            expect(findingsOf(result.report, AGENT_2)).toEqual([
                `drift file ${NEBULA_CONFIG}: mode 0640, planned 0644`,
                expect.stringMatching(/^drift file \/etc\/rancher\/k3s\/config.yaml: content differs/),
                expect.stringMatching(/^drift k3s lab-agent-02: config.yaml on disk \([0-9a-f]{12}\) is not the config the node was rolled with/),
            ]);
        } finally {
            fs.chmodSync(nebula, 0o644);
            fs.writeFileSync(k3s, original);
            fs.utimesSync(k3s, stat.atime, stat.mtime);
        }
    });

    it("reports a stopped service, a pending restart and a node an unfinished rollout left cordoned; an operator's cordon is only a warning", async () => {
        await fleet.exec(RELAY, "systemctl stop derper.service", { check: true });
        const marker = fleet.hostPath(SERVER, "/var/lib/shortcircuit/restart-pending.nebula.service");
        fs.writeFileSync(marker, "");
        await fleet.exec(SERVER, `k3s kubectl cordon ${AGENT_1}`, { check: true });
        // The rollout's own cordon, as self-drain.sh makes it (its annotation in the same patch).
        await fleet.exec(SERVER, `k3s kubectl patch node ${AGENT_2} --type merge -p '${JSON.stringify(CORDON_PATCH)}'`, { check: true });
        try {
            const result = await drift();
            expect(result.code).toBe(3);
            expect(findingsOf(result.report, RELAY)).toEqual(["drift service derper.service: not active (inactive)"]);
            expect(findingsOf(result.report, SERVER)).toEqual([
                expect.stringMatching(/^drift service nebula.service: restart pending since .* \(\/var\/lib\/shortcircuit\/restart-pending.nebula.service\)$/),
            ]);
            expect(findingsOf(result.report, AGENT_1)).toEqual([
                `warning k3s ${AGENT_1}: cordoned, not by a rollout: it stays so through rollouts (kubectl uncordon ${AGENT_1} lifts it)`,
            ]);
            expect(findingsOf(result.report, AGENT_2)).toEqual([
                `drift k3s ${AGENT_2}: cordoned by a rollout that did not finish: the next up drains it again and lifts the cordon once it is healthy`,
            ]);
        } finally {
            await fleet.exec(RELAY, "systemctl start derper.service", { check: true });
            fs.rmSync(marker);
            await fleet.exec(SERVER, `k3s kubectl uncordon ${AGENT_1}`, { check: true });
            const lifted = { spec: { unschedulable: null }, metadata: { annotations: { [ROLLOUT_CORDON_ANNOTATION]: null } } };
            await fleet.exec(SERVER, `k3s kubectl patch node ${AGENT_2} --type merge -p '${JSON.stringify(lifted)}'`, { check: true });
        }
    });

    it("reports a moved address and a table 52 route into the cluster range", async () => {
        const host = fleet.host(AGENT_2);
        await fleet.exec(host, `ip addr del ${host.tailnetAddress}/32 dev tailscale0 && ip addr add 100.68.0.99/32 dev tailscale0`, { check: true });
        await fleet.addTable52Route(AGENT_1, "10.42.0.0/16");
        try {
            const result = await drift();
            expect(result.code).toBe(3);
            expect(findingsOf(result.report, AGENT_2)).toEqual([`drift address tailscale0: has 100.68.0.99, expected ${host.tailnetAddress}`]);
            expect(findingsOf(result.report, AGENT_1)).toEqual([
                expect.stringMatching(
                    /^drift route table 52: routes 10.42.0.0\/16 \(10.42.0.0\/16 dev tailscale0.*\), which covers cluster range 10.42.0.0\/16$/,
                ),
            ]);
        } finally {
            await fleet.exec(host, `ip addr del 100.68.0.99/32 dev tailscale0 && ip addr add ${host.tailnetAddress}/32 dev tailscale0`, { check: true });
            await fleet.clearTable52(AGENT_1);
        }
    });

    it("reports an unreachable host with its reason (exit 4), the others still read", async () => {
        await fleet.setLanLink(AGENT_2, "down");
        try {
            const result = await drift();
            expect(result.code).toBe(4);
            const agent = result.report.hosts.find((host) => host.name === AGENT_2)!;
            expect(agent.status).toBe("unreachable");
            expect(agent.reason).toMatch(/^(timeout|no route)/);
            expect(result.report.hosts.filter((host) => host.status === "ok")).toHaveLength(4);
        } finally {
            await fleet.setLanLink(AGENT_2, "up");
        }
        expect((await drift()).code).toBe(0);
    });
});
