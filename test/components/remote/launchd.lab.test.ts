import * as fs from "node:fs";
import { build as buildPlist } from "plist";
import type { Delivery } from "../../../components/hostPlan";
import type { FleetPlan } from "../../../components/plan";
import { parsePayload } from "../../../components/remote/payload";
import { remoteScript } from "../../../components/remote/scripts";
import { versions } from "../../../components/versions";
import { compareHost } from "../../../scripts/drift/compare";
import { driftExpectation } from "../../../scripts/drift/expect";
import { collectorPayload, parseCollectorOutput } from "../../../scripts/drift/observe";
import { collectorScript } from "../../../scripts/drift/run";
import { checkLabPrerequisites, startLabFleet, type ExecResult, type LabFleet } from "../../../scripts/lab";
import { MACOS_RUNTIME } from "../../../scripts/lab/macos/types";
import { throwawayPlan } from "../../../scripts/render/throwawayPlan";
import type { Fleet } from "../../../stacks/schema";
import { validateFleet } from "../../../stacks/validate";
import { rawFleet, withPinnedVersions, type Raw } from "../../support/fixtures";

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
/** The operator's own derper job, from before the program ran the relay. */
const OPERATOR_DERPER = "io.kub0.derp-aus";
const OPERATOR_DERPER_PLIST = `/Library/LaunchDaemons/${OPERATOR_DERPER}.plist`;
/** Where derp/install.sh puts the pinned derper, and what the program's job runs. */
const PINNED_DERPER = `/usr/local/lib/derper/${versions.tailscale}/derper`;
const NEXT_TAILSCALE = "v1.104.0";
const RELAY_KEY = "/var/lib/derper/certs/derp-lab.kub0.io.key";
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

/** derp/install.sh must pass; the lab's `go` stand-in says on stderr what it installed. */
async function install(payload: string): Promise<ExecResult> {
    const result = await step("derp/install.sh", payload);
    expect(result.code).toBe(0);
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
                    // The operator's own jobs: processes that stay up, standing in for their Nebula and derper.
                    [OPERATOR]: { program: ["/bin/sleep", "100000"] },
                    [OPERATOR_DERPER]: { program: ["/bin/sleep", "100000"] },
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
    const relayOf = (raw: Raw) => planOf(raw).relays[0];
    const adoptingDerper = (): Raw => labConfig((raw) => (raw.derpRelays[0].adoptDerperLabel = OPERATOR_DERPER));

    it("installs the pinned derper, then stops before changing anything while an operator's job runs derper, naming the file and the field", async () => {
        const relay = relayOf(labConfig());
        expect((await install(relay.installPayload)).stdout).toContain(`derper ${versions.tailscale} at ${PINNED_DERPER}`);
        // A link into the host's /usr/local/lib/derper (not followed from this side).
        expect(fs.readlinkSync(on("/usr/local/bin/derper"))).toBe(PINNED_DERPER);

        fs.writeFileSync(
            on(OPERATOR_DERPER_PLIST),
            buildPlist({ Label: OPERATOR_DERPER, ProgramArguments: ["/Users/admin/go/bin/derper", "-hostname", "derp-aus.kub0.io"], KeepAlive: true }),
        );
        const plist = OPERATOR_DERPER_PLIST;
        ok(await fleet.exec(MAC, `chown root:wheel ${plist} && chmod 0644 ${plist} && launchctl bootstrap system ${plist}`));
        expect(running(OPERATOR_DERPER)).toBe(true);

        const refusal = `${plist} (launchd job ${OPERATOR_DERPER}) runs derper; set fleet.derpRelays[0].adoptDerperLabel: ${OPERATOR_DERPER} to have it taken over, or remove it; nothing changed`;
        const secrets = await step("remote/deliver-files.sh", relay.deliveries[0].payloads.secret);
        expect({ code: secrets.code, stderr: secrets.stderr.trim() }).toEqual({ code: 1, stderr: `derper secrets: ${refusal}` });
        const files = await step("remote/deliver-files.sh", relay.deliveries[0].payloads.public);
        expect({ code: files.code, stderr: files.stderr.trim() }).toEqual({ code: 1, stderr: `derper: ${refusal}` });
        expect(exists(DERPER_PLIST)).toBe(false);
        expect(exists(RELAY_KEY)).toBe(false);
        expect(jobs()).toEqual([OPERATOR_DERPER]);
        expect(running(OPERATOR_DERPER)).toBe(true);
    });

    it("takes the operator's job over when the stack names it: loaded with bootstrap and answering, its files root:wheel; a rerun changes nothing", async () => {
        const relay = relayOf(adoptingDerper());
        const from = mark(DERPER);
        const fromOperator = mark(OPERATOR_DERPER);
        const result = ok(await deliver(relay.deliveries[0]));
        expect(result.stdout).toContain(`took over ${OPERATOR_DERPER}: moved ${OPERATOR_DERPER_PLIST} aside to ${OPERATOR_DERPER_PLIST}.shortcircuit-adopted`);
        expect(result.stdout).toContain(`derper: restarted ${DERPER}; it is active and answering`);
        expect(changes(OPERATOR_DERPER, fromOperator)).toEqual(["bootout"]);
        expect(changes(DERPER, from)).toEqual(["bootstrap"]);
        expect(jobs()).toEqual([DERPER]);
        expect(running(DERPER)).toBe(true);
        expect(fleet.launchdState(MAC).jobs[DERPER].programArguments[0]).toBe(PINNED_DERPER);
        expect(exists(OPERATOR_DERPER_PLIST)).toBe(false);
        expect(exists(`${OPERATOR_DERPER_PLIST}.shortcircuit-adopted`)).toBe(true);
        const stat = fs.statSync(on(DERPER_PLIST));
        expect({ uid: stat.uid, gid: stat.gid, mode: (stat.mode & 0o7777).toString(8) }).toEqual({ uid: 0, gid: 0, mode: "644" });
        const key = fs.statSync(on(RELAY_KEY));
        expect({ uid: key.uid, gid: key.gid, mode: (key.mode & 0o7777).toString(8) }).toEqual({ uid: 0, gid: 0, mode: "600" });

        // A no-op `up` touches nothing, with the field or after it is deleted (nothing is left to take over).
        expect(ok(await deliver(relay.deliveries[0])).stdout).toContain("derper: no change");
        expect(ok(await deliver(relayOf(labConfig()).deliveries[0])).stdout).toContain("derper: no change");
        expect(changes(DERPER, from)).toEqual(["bootstrap"]);
    });

    it("a new derper version is installed beside the old one and the job file names it, so derper restarts onto it; going back does the same", async () => {
        const pinned = relayOf(labConfig());
        const next = withPinnedVersions({ tailscale: NEXT_TAILSCALE }, () => relayOf(labConfig()));
        const nextBinary = `/usr/local/lib/derper/${NEXT_TAILSCALE}/derper`;
        const from = mark(DERPER);
        expect((await install(next.installPayload)).stdout).toContain(`derper ${NEXT_TAILSCALE} at ${nextBinary}`);
        expect(fs.readlinkSync(on("/usr/local/bin/derper"))).toBe(nextBinary);
        // The job still runs the pinned one: it stays, for the delivery to go back to.
        expect(exists(PINNED_DERPER)).toBe(true);
        expect(ok(await deliver(next.deliveries[0])).stdout).toContain(`derper: restarted ${DERPER}`);
        expect(changes(DERPER, from)).toEqual(["bootout", "bootstrap"]);
        expect(fleet.launchdState(MAC).jobs[DERPER].programArguments[0]).toBe(nextBinary);

        await install(pinned.installPayload);
        expect(ok(await deliver(pinned.deliveries[0])).stdout).toContain(`derper: restarted ${DERPER}`);
        expect(changes(DERPER, from)).toEqual(["bootout", "bootstrap", "bootout", "bootstrap"]);
        expect(fleet.launchdState(MAC).jobs[DERPER].programArguments[0]).toBe(PINNED_DERPER);
        expect(running(DERPER)).toBe(true);
        // The install after that keeps only the pinned version, which the job runs.
        expect(exists(nextBinary)).toBe(true);
        expect((await install(pinned.installPayload)).stdout).toContain(
            `derper install: removed /usr/local/lib/derper/${NEXT_TAILSCALE} (neither the pinned version nor the one ${DERPER_PLIST} runs)`,
        );
        expect(fs.readdirSync(on("/usr/local/lib/derper"))).toEqual([versions.tailscale]);
    });

    it("an operator's own /usr/local/bin/derper is left as it is; the relay's job does not use it", async () => {
        const relay = relayOf(labConfig());
        ok(await fleet.exec(MAC, "rm -f /usr/local/bin/derper && printf '#!/bin/sh\\n' > /usr/local/bin/derper && chmod 0755 /usr/local/bin/derper"));
        expect((await install(relay.installPayload)).stdout).toContain(
            `derper install: left /usr/local/bin/derper as it is (not a link this step made); the relay runs ${PINNED_DERPER}`,
        );
        expect(fs.lstatSync(on("/usr/local/bin/derper")).isSymbolicLink()).toBe(false);
        expect(read("/usr/local/bin/derper")).toBe("#!/bin/sh\n");
        expect(ok(await deliver(relay.deliveries[0])).stdout).toContain("derper: no change");

        // Once it is gone, the link is the program's again.
        ok(await fleet.exec(MAC, "rm -f /usr/local/bin/derper"));
        await install(relay.installPayload);
        expect(fs.readlinkSync(on("/usr/local/bin/derper"))).toBe(PINNED_DERPER);
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
