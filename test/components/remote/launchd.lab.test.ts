import * as fs from "node:fs";
import type { Delivery } from "../../../components/hostPlan";
import type { FleetPlan } from "../../../components/plan";
import { parsePayload } from "../../../components/remote/payload";
import { remoteScript } from "../../../components/remote/scripts";
import { compareHost } from "../../../scripts/drift/compare";
import { driftExpectation } from "../../../scripts/drift/expect";
import { collectorPayload, parseCollectorOutput } from "../../../scripts/drift/observe";
import { collectorScript } from "../../../scripts/drift/run";
import { checkLabPrerequisites, startLabFleet, type ExecResult, type LabFleet } from "../../../scripts/lab";
import { MACOS_RUNTIME } from "../../../scripts/lab/macos/types";
import { throwawayPlan } from "../../../scripts/render/throwawayPlan";
import type { Fleet } from "../../../stacks/schema";
import { validateFleet } from "../../../stacks/validate";
import { rawFleet, type Raw } from "../../support/fixtures";

/*
 * derper and Nebula as LaunchDaemons on a macOS-shaped lab host (scripts/lab/macos: BSD userland
 * stand-ins, bash as 3.2, and a launchctl stand-in that keeps launchd's system-domain rules and
 * really runs each job's ProgramArguments): the plan's exact payloads through the real
 * remote/deliver-files.sh over SSH, as `pulumi up` runs them. The relay of the lab stack plays
 * the Mac (os: macos, derper under launchd). Its Nebula job file names Debian's real nebula
 * (nodes[].macos.nebulaBinary: /usr/bin/nebula), which `nebula -test` runs on the new files; the
 * job itself runs a shell loop that stays up and takes SIGHUP, and derper's a TCP listener on its
 * port (the launchctl stand-in's `program` cue: the `go` stand-in's derper serves nothing).
 *
 * The tests build on each other in order, like a sequence of `pulumi up` runs. No wall-clock
 * assertions: the waits are the delivery's own bounded health checks; what happened is read from
 * the launchctl stand-in's event log and the steps' output.
 */

jest.setTimeout(240_000);

const BRIDGE_PREFIX = "198.18.97";
const MAC = "lab-relay-01";
const MAC_OCTET = 2;
const NEBULA = "io.kub0.shortcircuit.nebula";
const NEBULA_PLIST = `/Library/LaunchDaemons/${NEBULA}.plist`;
const DERPER = "com.tailscale.derper";
const DERPER_PLIST = `/Library/LaunchDaemons/${DERPER}.plist`;
const OPERATOR = "homebrew.mxcl.nebula";
const OPERATOR_PLIST = `/Library/LaunchDaemons/${OPERATOR}.plist`;
const SEED = "3e".repeat(32);
const OTHER_SEED = "9b".repeat(32);
/** One issuing instant, so equal inputs give byte-equal payloads. */
const NOW = new Date();
/** Files launchd's jobs log to on the machine (the host's /var/log is the machine's). */
const JOB_LOGS = ["/var/log/shortcircuit-nebula.log", "/var/log/derper.log"];
const logsBefore = new Map<string, boolean>();
const NEBULA_CUE = { program: ["/bin/sh", "-c", "trap 'echo reloaded' HUP; while :; do sleep 1 & wait $!; done"] };

function labConfig(mutate: (raw: Raw) => void = () => {}): Raw {
    const raw: Raw = rawFleet("lab");
    raw.sites[0].lan = `${BRIDGE_PREFIX}.0/24`;
    raw.nodes.forEach((node: Raw, index: number) => {
        node.lan.address = `${BRIDGE_PREFIX}.${node.name === MAC ? MAC_OCTET : 20 + index}`;
    });
    raw.access.sshVia = "lan";
    const mac = raw.nodes.find((node: Raw) => node.name === MAC);
    mac.os = "macos";
    mac.macos = { nebulaBinary: "/usr/bin/nebula" };
    raw.derpRelays[0].serviceManager = "launchd";
    mutate(raw);
    return raw;
}

function validated(raw: Raw): Fleet {
    const result = validateFleet(raw, { now: NOW });
    expect(result.problems.filter((problem) => problem.severity === "error")).toEqual([]);
    return result.fleet as Fleet;
}

const planOf = (raw: Raw, seed = SEED): FleetPlan<string> => throwawayPlan(validated(raw), { now: NOW, pkiSeedHex: seed }).plan;
const macOf = (raw: Raw): Raw => raw.nodes.find((node: Raw) => node.name === MAC);

function nebulaDelivery(plan: FleetPlan<string>): Delivery<string> {
    const host = plan.nebulaHosts.find((each) => each.name === MAC);
    if (!host) throw new Error(`${MAC} has no Nebula delivery`);
    return host.delivery;
}

let fleet: LabFleet;

async function step(script: "remote/deliver-files.sh" | "derp/install.sh", payload: string): Promise<ExecResult> {
    const result = await fleet.ssh(MAC, remoteScript(script), payload, { timeoutMs: 150_000 });
    expect(result.timedOut).toBe(false);
    return result;
}

/** Both steps of a delivery, as the program chains them; the secret step must pass. */
async function deliver(delivery: Delivery<string>): Promise<ExecResult> {
    const secrets = await step("remote/deliver-files.sh", delivery.payloads.secret);
    expect({ code: secrets.code, stderr: secrets.stderr }).toEqual({ code: 0, stderr: "" });
    return step("remote/deliver-files.sh", delivery.payloads.public);
}

const ok = (result: ExecResult): ExecResult => {
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
    return result;
};
const on = (file: string): string => fleet.hostPath(MAC, file);
const read = (file: string): string => fs.readFileSync(on(file), "utf8");
const exists = (file: string): boolean => fs.existsSync(on(file));
const jobs = (): string[] => Object.keys(fleet.launchdState(MAC).jobs).sort();
const running = (label: string): boolean => {
    const job = fleet.launchdState(MAC).jobs[label];
    return job !== undefined && job.pid !== null;
};
/** launchctl calls that change something, of one label, from event index `from` on. */
const changes = (label: string, from: number): string[] =>
    fleet
        .launchdEvents(MAC, label)
        .slice(from)
        .filter((event) => ["bootstrap", "bootout", "kickstart", "signal"].includes(event.verb))
        .map((event) =>
            `${event.verb}${event.verb === "signal" ? ` ${event.detail ?? ""}` : event.verb === "kickstart" ? ` ${event.detail ?? ""}` : ""}`.trim(),
        );
const mark = (label: string): number => fleet.launchdEvents(MAC, label).length;

beforeAll(async () => {
    const missing = checkLabPrerequisites();
    if (missing.length > 0) {
        throw new Error(`the lab fleet needs: ${missing.join("; ")} (scripts/setup.sh installs them; CI runs as root)`);
    }
    if (!fs.existsSync("/usr/bin/nebula")) {
        throw new Error("this suite runs Debian's nebula as the Mac's Nebula job (scripts/setup.sh installs it)");
    }
    for (const log of JOB_LOGS) logsBefore.set(log, fs.existsSync(log));
    const derpPort = planOf(labConfig()).relays[0].deliveries[0].checkPort;
    fleet = await startLabFleet({
        bridgeCidr: `${BRIDGE_PREFIX}.0/24`,
        hosts: [
            {
                name: MAC,
                role: "agent",
                os: "macos",
                lanAddress: `${BRIDGE_PREFIX}.${MAC_OCTET}`,
                launchd: {
                    [DERPER]: {
                        program: [
                            `${MACOS_RUNTIME}/node/bin/node`,
                            "-e",
                            `require("net").createServer((socket) => socket.destroy()).listen(${derpPort}, "127.0.0.1")`,
                        ],
                    },
                    // The operator's own job: a process that stays up, standing in for their Nebula.
                    [OPERATOR]: { program: ["/bin/sleep", "100000"] },
                    // The program's Nebula job: Debian's nebula, run here, kept exiting soon after
                    // each start (launchd's KeepAlive started it again: see the report of issue 22),
                    // so a process that stays up and takes SIGHUP stands in for it; the job file's
                    // ProgramArguments are still parsed and checked, and `nebula -test` is real.
                    [NEBULA]: NEBULA_CUE,
                },
            },
        ],
    });
});

afterAll(async () => {
    await fleet?.stop();
    for (const log of JOB_LOGS) {
        if (logsBefore.get(log) === false) fs.rmSync(log, { force: true });
    }
});

describe("derper as a LaunchDaemon", () => {
    it("is installed, loaded with bootstrap and answering; its files root:wheel", async () => {
        const relay = planOf(labConfig()).relays[0];
        const install = await step("derp/install.sh", relay.installPayload);
        expect(install.code).toBe(0);
        expect(install.stdout).toContain("derper v");
        // A link into the host's /usr/local/lib/derper (not followed from this side).
        expect(fs.lstatSync(on("/usr/local/bin/derper")).isSymbolicLink()).toBe(true);
        const from = mark(DERPER);
        const result = ok(await deliver(relay.deliveries[0]));
        expect(result.stdout).toContain(`derper: restarted ${DERPER}; it is active and answering`);
        expect(changes(DERPER, from)).toEqual(["bootstrap"]);
        expect(running(DERPER)).toBe(true);
        const stat = fs.statSync(on(DERPER_PLIST));
        expect({ uid: stat.uid, gid: stat.gid, mode: (stat.mode & 0o7777).toString(8) }).toEqual({ uid: 0, gid: 0, mode: "644" });
        const key = fs.statSync(on("/var/lib/derper/certs/derp-lab.kub0.io.key"));
        expect({ uid: key.uid, gid: key.gid, mode: (key.mode & 0o7777).toString(8) }).toEqual({ uid: 0, gid: 0, mode: "600" });
        // A no-op `up` touches nothing.
        const again = ok(await deliver(relay.deliveries[0]));
        expect(again.stdout).toContain("derper: no change");
        expect(changes(DERPER, from)).toEqual(["bootstrap"]);
    });
});

describe("Nebula as a LaunchDaemon", () => {
    it("stops before changing anything while an operator's job runs nebula, naming the file and the field", async () => {
        const job = parsePayload(nebulaDelivery(planOf(labConfig())).payloads.public)
            .files.find((file) => file.target === NEBULA_PLIST)
            ?.content.split(NEBULA)
            .join(OPERATOR)
            .split("/usr/bin/nebula")
            .join("/opt/homebrew/opt/nebula/bin/nebula");
        fs.writeFileSync(on(OPERATOR_PLIST), job ?? "");
        ok(await fleet.exec(MAC, `chown root:wheel ${OPERATOR_PLIST} && chmod 0644 ${OPERATOR_PLIST} && launchctl bootstrap system ${OPERATOR_PLIST}`));
        expect(running(OPERATOR)).toBe(true);

        const index = validated(labConfig()).nodes.findIndex((node) => node.name === MAC);
        const delivery = nebulaDelivery(planOf(labConfig()));
        const secrets = await step("remote/deliver-files.sh", delivery.payloads.secret);
        expect(secrets.code).not.toBe(0);
        expect(secrets.stderr.trim()).toBe(
            `nebula secrets: ${OPERATOR_PLIST} (launchd job ${OPERATOR}) runs nebula; set fleet.nodes[${index}].macos.adoptNebulaLabel: ${OPERATOR} to have it taken over, or remove it; nothing changed`,
        );
        const files = await step("remote/deliver-files.sh", delivery.payloads.public);
        expect(files.code).not.toBe(0);
        expect(files.stderr.trim()).toContain(`set fleet.nodes[${index}].macos.adoptNebulaLabel: ${OPERATOR} to have it taken over`);
        expect(fs.readdirSync(on("/etc/nebula"))).toEqual([]);
        expect(exists(NEBULA_PLIST)).toBe(false);
        expect(jobs()).toEqual([DERPER, OPERATOR]);
    });

    it("taking over the operator's job: a Nebula that is not healthy puts it back; a rerun converges", async () => {
        const adopting = labConfig((raw) => (macOf(raw).macos.adoptNebulaLabel = OPERATOR));
        const delivery = nebulaDelivery(planOf(adopting));
        await fleet.setLaunchdBehaviour(MAC, NEBULA, { ...NEBULA_CUE, failSpawns: 1 });
        const from = mark(OPERATOR);
        const failed = await deliver(delivery);
        expect(failed.code).not.toBe(0);
        expect(failed.stderr).toContain(`${NEBULA} was new and is unloaded, the job it took over (${OPERATOR}) is back`);
        expect(changes(OPERATOR, from)).toEqual(["bootout", "bootstrap"]);
        expect(jobs()).toEqual([DERPER, OPERATOR]);
        expect(running(OPERATOR)).toBe(true);
        expect(exists(OPERATOR_PLIST)).toBe(true);
        expect(exists(NEBULA_PLIST)).toBe(false);

        // The cue is spent: the rerun takes the job over and runs the program's Nebula.
        const rerun = ok(await deliver(delivery));
        expect(rerun.stdout).toContain(`took over ${OPERATOR}: moved ${OPERATOR_PLIST} aside to ${OPERATOR_PLIST}.shortcircuit-adopted`);
        expect(rerun.stdout).toContain(`nebula: restarted ${NEBULA}; it is active and answering`);
        expect(jobs()).toEqual([DERPER, NEBULA]);
        expect(running(NEBULA)).toBe(true);
        expect(exists(OPERATOR_PLIST)).toBe(false);
        expect(exists(`${OPERATOR_PLIST}.shortcircuit-adopted`)).toBe(true);
        expect(fleet.launchdState(MAC).jobs[NEBULA].programArguments).toEqual(["/usr/bin/nebula", "-config", "/etc/nebula/config.yml"]);
        for (const file of ["/etc/nebula/config.yml", "/etc/nebula/host.key", NEBULA_PLIST]) {
            const stat = fs.statSync(on(file));
            expect([file, stat.uid, stat.gid]).toEqual([file, 0, 0]);
        }
        // Converged: nothing left to do.
        const again = ok(await deliver(delivery));
        expect(again.stdout).toContain("nebula: no change");
    });

    it("reloads on a certificate-only change (launchctl kill HUP): the same Nebula process takes it", async () => {
        const adopted = (raw: Raw): void => {
            macOf(raw).macos.adoptNebulaLabel = OPERATOR;
        };
        const pid = fleet.launchdState(MAC).jobs[NEBULA].pid;
        const from = mark(NEBULA);
        const result = ok(await deliver(nebulaDelivery(planOf(labConfig(adopted), OTHER_SEED))));
        expect(result.stdout).toContain(`reloaded ${NEBULA} (only files it re-reads changed)`);
        expect(changes(NEBULA, from)).toEqual(["signal SIGHUP"]);
        expect(fleet.launchdState(MAC).jobs[NEBULA].pid).toBe(pid);
        expect(running(NEBULA)).toBe(true);
    });

    it("restarts on a config change (kickstart -k)", async () => {
        const from = mark(NEBULA);
        const config = labConfig((raw) => {
            macOf(raw).macos.adoptNebulaLabel = OPERATOR;
            raw.overlays.nebula.listenPort = 4343;
        });
        const result = ok(await deliver(nebulaDelivery(planOf(config, OTHER_SEED))));
        expect(result.stdout).toContain(`restarted ${NEBULA}`);
        expect(changes(NEBULA, from)).toEqual(["kickstart -k"]);
    });

    it("a Nebula that fails its health check gets the previous files and job back, and the step fails; a rerun converges", async () => {
        const previous = read("/etc/nebula/config.yml");
        const next = labConfig((raw) => {
            macOf(raw).macos.adoptNebulaLabel = OPERATOR;
            raw.overlays.nebula.listenPort = 4444;
        });
        await fleet.setLaunchdBehaviour(MAC, NEBULA, { ...NEBULA_CUE, failSpawns: 1 });
        const from = mark(NEBULA);
        const failed = await deliver(nebulaDelivery(planOf(next, OTHER_SEED)));
        expect(failed.code).not.toBe(0);
        expect(failed.stderr).toContain(
            `${NEBULA} is not healthy 30s after its restart on the new files; put the previous files back and ${NEBULA} is healthy on them`,
        );
        expect(changes(NEBULA, from)).toEqual(["kickstart -k", "kickstart -k"]);
        expect(read("/etc/nebula/config.yml")).toBe(previous);
        expect(running(NEBULA)).toBe(true);

        const rerun = ok(await deliver(nebulaDelivery(planOf(next, OTHER_SEED))));
        expect(rerun.stdout).toContain(`restarted ${NEBULA}`);
        expect(read("/etc/nebula/config.yml")).toContain("port: 4444");
        expect(ok(await deliver(nebulaDelivery(planOf(next, OTHER_SEED)))).stdout).toContain("nebula: no change");
    });

    it("a changed job file: the loaded job is booted out, then the new file bootstrapped", async () => {
        ok(await fleet.exec(MAC, "ln -sfn /usr/bin/nebula /usr/local/sbin/nebula"));
        const moved = labConfig((raw) => {
            macOf(raw).macos = { nebulaBinary: "/usr/local/sbin/nebula", adoptNebulaLabel: OPERATOR };
            raw.overlays.nebula.listenPort = 4444;
        });
        const from = mark(NEBULA);
        ok(await deliver(nebulaDelivery(planOf(moved, OTHER_SEED))));
        expect(changes(NEBULA, from)).toEqual(["bootout", "bootstrap"]);
        expect(fleet.launchdState(MAC).jobs[NEBULA].programArguments[0]).toBe("/usr/local/sbin/nebula");
        expect(read(`${NEBULA_PLIST}.previous`)).toContain("<string>/usr/bin/nebula</string>");
    });
});

describe("drift on the Mac", () => {
    it("reads its files, owners and jobs and finds them as planned", async () => {
        const raw = labConfig((each) => {
            macOf(each).macos = { nebulaBinary: "/usr/local/sbin/nebula", adoptNebulaLabel: OPERATOR };
            each.overlays.nebula.listenPort = 4444;
        });
        const expected = driftExpectation(validated(raw)).hosts.find((host) => host.name === MAC);
        if (!expected) throw new Error(`no drift expectation for ${MAC}`);
        const collected = await fleet.ssh(MAC, collectorScript(), collectorPayload(expected, { diff: false }), { timeoutMs: 60_000 });
        expect({ code: collected.code, stderr: collected.stderr }).toEqual({ code: 0, stderr: "" });
        const seen = parseCollectorOutput(Buffer.from(collected.stdout, "utf8"));
        expect(seen.files.get(NEBULA_PLIST)).toMatchObject({ present: true, owner: "root:wheel", mode: 0o644, type: "regular file" });
        expect(seen.services.get(NEBULA)?.props.ActiveState).toBe("active");
        expect(seen.services.get(DERPER)?.props.ActiveState).toBe("active");
        const findings = compareHost({}, expected, seen, { now: NOW, diff: false });
        // The Mac's identity files are checked by presence, mode and owner; the LAN link cannot be
        // read there (no ip, no ifconfig on the lab's Mac): a warning, not drift.
        expect(findings.filter((finding) => finding.severity === "drift")).toEqual([]);

        // A job booted out behind the program's back is drift.
        ok(await fleet.exec(MAC, `launchctl bootout system/${DERPER}`));
        const after = parseCollectorOutput(
            Buffer.from((await fleet.ssh(MAC, collectorScript(), collectorPayload(expected, { diff: false }), { timeoutMs: 60_000 })).stdout, "utf8"),
        );
        expect(compareHost({}, expected, after, { now: NOW, diff: false }).filter((finding) => finding.severity === "drift")).toEqual([
            { area: "service", subject: DERPER, severity: "drift", message: "job not loaded (launchctl print finds no such service)" },
        ]);
    });
});
