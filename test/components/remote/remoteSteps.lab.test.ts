import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { FleetPlan } from "../../../components/plan";
import { throwawayPlan } from "../../../scripts/render/throwawayPlan";
import { framedPayload, parsePayload, type PayloadFile } from "../../../components/remote/payload";
import { remoteScript } from "../../../components/remote/scripts";
import { versions } from "../../../components/versions";
import type { Fleet } from "../../../stacks/schema";
import { validateFleet } from "../../../stacks/validate";
import { labWithExistingControlHost, withPinnedVersions, type Raw } from "../../support/fixtures";
import { checkLabPrerequisites, LAB_PRIVATE_DIRS, startLabFleet, type ExecResult, type LabFleet, type ServiceEvent } from "../../../scripts/lab";

/*
 * The program's non-k3s remote steps on the lab fleet: each step's exact script
 * (remote/prelude.sh + the step's .sh, as remoteScript() builds it) runs over real SSH with the
 * plan's exact payload on stdin, against test hosts whose /etc/nebula, /etc/headscale,
 * /etc/systemd/system, /var/lib/... are private (scripts/lab) and whose systemctl,
 * headscale, nebula, go, curl, apt-get, dpkg, cloud-init and chown are recording stand-ins
 * (scripts/lab/service-doubles). The plan is throwawayPlan() of the lab stack moved onto this
 * suite's bridge, with the control server on an existing host of the fleet.
 *
 * The suite's tests build on each other in order (one host's state carries from one test to the
 * next), like a sequence of `pulumi up` runs. No wall-clock race assertions: the waits are the
 * delivery's own bounded health check and bounded polls of the lab's event logs; ordering is
 * read from those logs (service-manager events, tool invocations) and the steps' own output.
 * The Nebula hosts carry the plan's Nebula link (overlays.nebula.interface), which the
 * delivery's health check asks for; the relay's derper stand-in listens on nothing, so a test
 * that needs derper to answer starts a listener on its derp port inside the relay.
 */

jest.setTimeout(180_000);
/** A step whose service is not healthy waits out CHECK_TIMEOUT (the plan's 30 s) after each restart. */
const FAILING_STEP_MS = 150_000;

const BRIDGE_PREFIX = "198.18.95";
const NEBULA_HOST = "lab-server-01";
const RELAY = "lab-relay-01";
const CONTROL = "lab-control-01";
const LAN_OCTET: Record<string, number> = { "lab-server-01": 11, "lab-agent-01": 21, "lab-agent-02": 22, "lab-relay-01": 2, "lab-control-01": 3 };
/** The plan's Nebula link (the lab stack's overlays.nebula.interface), which the health check asks for. */
const NEBULA_IFACE = "nebula0";

const DELIVER = "remote/deliver-files.sh";
const SEED = "5c".repeat(32);
const OTHER_SEED = "a7".repeat(32);
const PRECHECK = "nebula-precheck.yml";
/** One issuing instant for every plan of the suite, so equal inputs give byte-equal payloads. */
const NOW = new Date();

/** What the headscale .deb installs; the program never writes this unit itself. */
const HEADSCALE_UNIT = `[Unit]
Description=headscale coordination server (lab test: stands in for the .deb's unit)
After=network-online.target

[Service]
User=headscale
ExecStart=/usr/bin/headscale serve
Restart=always

[Install]
WantedBy=multi-user.target
`;

const START_VERBS = new Set(["start", "restart", "try-restart", "reload-or-restart", "force-reload"]);

function labConfig(): Raw {
    const raw: Raw = labWithExistingControlHost();
    expect(raw.controlServer.host.host).toBe(CONTROL);
    // The lab fleet has no Litestream stand-in and no S3 server: the replica's steps run for
    // real in test/components/control/litestream.lab.test.ts.
    delete raw.controlServer.replica;
    raw.sites[0].lan = `${BRIDGE_PREFIX}.0/24`;
    for (const node of raw.nodes) {
        node.lan.address = `${BRIDGE_PREFIX}.${LAN_OCTET[node.name]}`;
    }
    raw.access.sshVia = "lan";
    return raw;
}

function validated(raw: Raw): Fleet {
    const result = validateFleet(raw);
    const errors = result.problems.filter((problem) => problem.severity === "error");
    expect(errors).toEqual([]);
    return result.fleet as Fleet;
}

function planOf(raw: Raw, seed: string): FleetPlan<string> {
    return throwawayPlan(validated(raw), { now: NOW, pkiSeedHex: seed }).plan;
}

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");
const filesOf = (payload: string): PayloadFile[] => parsePayload(payload).files;
const fileIn = (payload: string, target: string): PayloadFile => {
    const file = filesOf(payload).find((each) => each.target === target);
    if (!file) throw new Error(`no ${target} in the payload`);
    return file;
};

let fleet: LabFleet;
let planA: FleetPlan<string>;
/** The lab stack with another Nebula listen port: only config.yml (and its precheck twin) differ. */
let planB: FleetPlan<string>;
/** Another seed and another listen port: other CA, certificates, keys and config. */
let planD: FleetPlan<string>;
/** Yet another listen port: again only config.yml differs. */
let planE: FleetPlan<string>;
const realBefore = new Map<string, string[]>();
/** Files the steps write inside a host, by their in-host path: the machine's own stay as they were. */
const REAL_FILES = [
    "/usr/local/bin/derper",
    "/etc/rancher/k3s/k3s.yaml",
    "/etc/systemd/system/headscale.service",
    "/etc/systemd/system/nebula.service",
    "/etc/systemd/system/derper.service",
];
const realFilesBefore = new Map<string, boolean>();
let realFstab = "";

function realListing(dir: string): string[] {
    return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

/** Runs one remote step as the program does: its script over SSH, its payload on stdin. */
async function step(host: string, script: string, payload: string, timeoutMs = 90_000): Promise<ExecResult> {
    const result = await fleet.ssh(host, remoteScript(script), payload, { timeoutMs });
    expect(result.timedOut).toBe(false);
    return result;
}

const ok = (result: ExecResult): ExecResult => {
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    return result;
};
const on = (host: string, file: string): string => fleet.hostPath(host, file);
const read = (host: string, file: string): string => fs.readFileSync(on(host, file), "utf8");
const mode = (host: string, file: string): number => fs.statSync(on(host, file)).mode & 0o7777;
const stamp = (host: string, file: string): string => {
    const stat = fs.statSync(on(host, file));
    return `${stat.ino}:${stat.mtimeMs}`;
};
const starts = (host: string, unit?: string): ServiceEvent[] => fleet.serviceEvents(host, unit).filter((event) => START_VERBS.has(event.verb));
const logged =
    (verb: string) =>
    (result: ExecResult): string[] =>
        result.stdout
            .split("\n")
            .map((line) => new RegExp(`: ${verb} (\\S+)$`).exec(line)?.[1])
            .filter((file): file is string => file !== undefined);
const wrote = logged("wrote");
const stagedBy = logged("staged");
const pendingMarker = (host: string, unit: string): string => on(host, `/var/lib/shortcircuit/restart-pending.${unit}`);
const lockDir = (host: string, unit: string): string => on(host, `/var/lib/shortcircuit/lock.${unit}`);
const staged = (host: string, file: string): string => on(host, `${file}.shortcircuit-staged`);
const exists = (host: string, file: string): boolean => fs.existsSync(on(host, file));
const listing = (host: string, dir: string): string[] => fs.readdirSync(on(host, dir)).sort();
/** The delivery's `nebula -test` calls on a host (the stand-in runs Debian's real nebula -test). */
const nebulaTests = (host: string) => fleet.toolInvocations(host, "nebula").filter((call) => call.argv.includes("-test"));
/** The public payload with its precheck attachment replaced (everything else as planned). */
const withPrecheck = (payload: string, content: string): string => {
    const { params, files } = parsePayload(payload);
    return framedPayload(
        params,
        files.map((file) => (file.target === PRECHECK ? { ...file, content } : file)),
    );
};

/**
 * A TCP listener on 127.0.0.1:port inside a lab host's network namespace (the test's own child
 * process, stopped by its pid), standing in for a daemon that answers on its port.
 */
async function listenOn(host: string, port: number): Promise<{ connections: () => number; stop: () => Promise<void> }> {
    const code = `require("net").createServer((socket) => { process.stdout.write("connection\\n"); socket.destroy(); }).listen(${port}, "127.0.0.1", () => process.stdout.write("listening\\n"));`;
    const child = spawn("ip", ["netns", "exec", fleet.host(host).netns, process.execPath, "-e", code], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let errors = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (errors += chunk.toString()));
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const stop = async (): Promise<void> => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
        await exited;
    };
    try {
        await until(
            `a listener on ${host}:${port}`,
            () => {
                if (child.exitCode !== null) throw new Error(`the listener on ${host}:${port} exited: ${errors}`);
                return output.includes("listening") ? true : undefined;
            },
            200,
        );
    } catch (error) {
        await stop();
        throw error;
    }
    return { connections: () => output.split("\n").filter((line) => line === "connection").length, stop };
}

/** Polls a lab log until `probe` answers; bounded in count, never a timing assertion. */
async function until<T>(what: string, probe: () => T | undefined, tries = 400, intervalMs = 100): Promise<T> {
    for (let i = 0; i < tries; i++) {
        const value = probe();
        if (value !== undefined) return value;
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
    throw new Error(`gave up waiting for ${what} after ${tries} polls`);
}

beforeAll(async () => {
    const missing = checkLabPrerequisites();
    if (missing.length > 0) {
        throw new Error(`the lab fleet needs: ${missing.join("; ")} (scripts/setup.sh installs them; CI runs as root)`);
    }
    for (const dir of LAB_PRIVATE_DIRS) {
        realBefore.set(dir, realListing(dir));
    }
    for (const file of REAL_FILES) {
        realFilesBefore.set(file, fs.existsSync(file));
    }
    realFstab = fs.readFileSync("/etc/fstab", "utf8");
    planA = planOf(labConfig(), SEED);
    const moved = labConfig();
    moved.overlays.nebula.listenPort = 4343;
    planB = planOf(moved, SEED);
    const other = labConfig();
    other.overlays.nebula.listenPort = 4444;
    planD = planOf(other, OTHER_SEED);
    const third = labConfig();
    third.overlays.nebula.listenPort = 4545;
    planE = planOf(third, SEED);
    const raw = labConfig();
    expect(validated(raw).overlays.nebula.interface).toBe(NEBULA_IFACE);
    const nebulaAddress = (name: string): string => String(raw.nodes.find((node: Raw) => node.name === name)?.nebula?.address ?? "10.68.0.3");
    fleet = await startLabFleet({
        bridgeCidr: `${BRIDGE_PREFIX}.0/24`,
        hosts: [
            {
                name: NEBULA_HOST,
                role: "server",
                lanAddress: `${BRIDGE_PREFIX}.${LAN_OCTET[NEBULA_HOST]}`,
                nebulaAddress: nebulaAddress(NEBULA_HOST),
                nebulaIface: NEBULA_IFACE,
            },
            { name: RELAY, role: "agent", lanAddress: `${BRIDGE_PREFIX}.${LAN_OCTET[RELAY]}` },
            {
                name: CONTROL,
                role: "agent",
                lanAddress: `${BRIDGE_PREFIX}.${LAN_OCTET[CONTROL]}`,
                nebulaAddress: nebulaAddress(CONTROL),
                nebulaIface: NEBULA_IFACE,
                tools: { headscaleVersion: versions.headscale, nebulaVersion: versions.nebula },
            },
        ],
    });
    expect(raw.nodes.find((node: Raw) => node.name === CONTROL).lan.address).toBe(fleet.host(CONTROL).sshHost);
});

afterAll(async () => {
    await fleet?.stop();
});

describe("the plan addresses the lab hosts", () => {
    it("reaches each step's host at the lab address the plan connects to", () => {
        expect(planA.nebulaHosts.find((host) => host.name === NEBULA_HOST)?.ssh.host).toBe(fleet.host(NEBULA_HOST).sshHost);
        expect(planA.relays.map((relay) => [relay.name, relay.ssh.host])).toEqual([[RELAY, fleet.host(RELAY).sshHost]]);
        expect(planA.control.host).toMatchObject({ kind: "existing", ssh: { host: fleet.host(CONTROL).sshHost, user: "root" } });
        expect(planA.edge?.genesisSsh.host).toBe(fleet.host(NEBULA_HOST).sshHost);
    });
});

describe("Nebula delivery (remote/deliver-files.sh) on a fleet host", () => {
    const nebula = (plan: FleetPlan<string>) => {
        const host = plan.nebulaHosts.find((each) => each.name === NEBULA_HOST);
        if (!host) throw new Error(`${NEBULA_HOST} is not a Nebula host of the plan`);
        return host.delivery.payloads;
    };
    const UNIT = "nebula.service";
    const CONFIG = "/etc/nebula/config.yml";
    const CA = "/etc/nebula/ca.crt";
    const CERT = "/etc/nebula/host.crt";
    const PUBLIC = [CA, CERT, CONFIG, "/etc/systemd/system/nebula.service"];
    const KEY = "/etc/nebula/host.key";
    const ALL = [...PUBLIC, KEY];
    const stamps = (): Record<string, string> => Object.fromEntries(ALL.map((file) => [file, stamp(NEBULA_HOST, file)]));
    const restarts = (): ServiceEvent[] => starts(NEBULA_HOST, UNIT);
    const content = (plan: FleetPlan<string>, file: string): string =>
        (file === KEY ? fileIn(nebula(plan).secret, KEY) : fileIn(nebula(plan).public, file)).content;
    /** Verbs of every service-manager call on the host from event `from` on (daemon-reload included). */
    const verbsSince = (from: number): string[] =>
        fleet
            .serviceEvents(NEBULA_HOST)
            .slice(from)
            .map((event) => event.verb);
    /**
     * One restart of the enabled unit whose file did not change, which the health check accepted:
     * systemd's state asked (no reload needed), the restart, active twice a second apart, link present.
     */
    const HEALTHY_RESTART = ["show", "restart", "is-active", "is-active"];
    /** The first, with the unit file new: enabled without the reload `enable` does by itself, then one reload. */
    const FIRST_RESTART = ["enable", "daemon-reload", "restart", "is-active", "is-active"];
    const healthy = (result: ExecResult): void => {
        expect(result.stdout).toContain("nebula: restarted nebula.service; it is active and answering");
        expect(fleet.unitStatus(NEBULA_HOST, UNIT)).toBe("active");
        expect(fs.existsSync(pendingMarker(NEBULA_HOST, UNIT))).toBe(false);
        expect(fs.existsSync(lockDir(NEBULA_HOST, UNIT))).toBe(false);
    };
    const notHealthy = `nebula: nebula.service is not healthy 30s after its restart on the new files; put the previous files back`;

    it("plans the payloads the cases below rely on", () => {
        const pub = parsePayload(nebula(planA).public);
        expect(pub.files.map((file) => [file.target, file.mode])).toEqual([...PUBLIC.map((file) => [file, 0o644]), [PRECHECK, 0o600]]);
        expect(filesOf(nebula(planA).secret).map((file) => [file.target, file.mode])).toEqual([[KEY, 0o600]]);
        expect(pub.params).toMatchObject({
            SERVICE_MANAGER: "systemd",
            SERVICE: UNIT,
            RESTART: "yes",
            CHECK_TIMEOUT: "30",
            SECRET_PATHS: KEY,
            PRECHECK_NEBULA_CONFIG: PRECHECK,
            CHECK_INTERFACE: NEBULA_IFACE,
            CHECK_PORT: "",
        });
        expect(parsePayload(nebula(planA).secret).params).toMatchObject({ SERVICE: UNIT, RESTART: "no", OWNER: "" });
        // The precheck twin of config.yml: the lighthouses on the loopback, so nebula -test resolves no name.
        const precheck = fileIn(nebula(planA).public, PRECHECK).content;
        const endpoints = (yaml: string): string[] => [...yaml.matchAll(/^\s+- (\S+):\d+$/gm)].map((match) => match[1]);
        const anyEndpoint = (yaml: string): string => yaml.replace(/^(\s+- )\S+:(\d+)$/gm, "$1<endpoint>:$2");
        expect(endpoints(content(planA, CONFIG))).toContain(planA.relays[0].hostname);
        expect(new Set(endpoints(precheck))).toEqual(new Set(["127.0.0.1"]));
        expect(anyEndpoint(precheck)).toBe(anyEndpoint(content(planA, CONFIG)));
        // The lab's nebula stand-in runs Debian's real `nebula -test` only when it is installed.
        expect(fs.existsSync("/usr/bin/nebula")).toBe(true);
        const differs = (x: string, y: string): string[] =>
            filesOf(x)
                .filter((file, index) => file.content !== filesOf(y)[index].content)
                .map((file) => file.target);
        // B and E: only config.yml differs. D: CA, certificate, config and key differ.
        for (const plan of [planB, planE]) {
            expect(nebula(plan).secret).toBe(nebula(planA).secret);
            expect(differs(nebula(plan).public, nebula(planA).public)).toEqual([CONFIG, PRECHECK]);
        }
        expect(differs(nebula(planE).public, nebula(planB).public)).toEqual([CONFIG, PRECHECK]);
        expect(differs(nebula(planD).public, nebula(planA).public)).toEqual([CA, CERT, CONFIG, PRECHECK]);
        expect(differs(nebula(planD).secret, nebula(planA).secret)).toEqual([KEY]);
        expect(parsePayload(nebula(planD).secret).params).toEqual(parsePayload(nebula(planA).secret).params);
    });

    it("first run: the secret step stages the key; the public step passes nebula -test, installs everything, restarts once and sees it healthy", async () => {
        const secret = ok(await step(NEBULA_HOST, DELIVER, nebula(planA).secret));
        expect(wrote(secret)).toEqual([]);
        expect(stagedBy(secret)).toEqual([KEY]);
        expect(exists(NEBULA_HOST, KEY)).toBe(false);
        expect(fs.readFileSync(staged(NEBULA_HOST, KEY), "utf8")).toBe(content(planA, KEY));
        expect(fs.statSync(staged(NEBULA_HOST, KEY)).mode & 0o7777).toBe(0o600);
        expect(fleet.serviceEvents(NEBULA_HOST)).toEqual([]);
        expect(fs.existsSync(pendingMarker(NEBULA_HOST, UNIT))).toBe(true);

        const files = ok(await step(NEBULA_HOST, DELIVER, nebula(planA).public));
        expect(wrote(files)).toEqual([...PUBLIC, KEY]);
        healthy(files);
        for (const file of ALL) {
            expect(read(NEBULA_HOST, file)).toBe(content(planA, file));
            expect(mode(NEBULA_HOST, file)).toBe(file === KEY ? 0o600 : 0o644);
        }
        // Beside the certificate: the networks the plan issued it for, recorded once Nebula is healthy on it.
        expect(listing(NEBULA_HOST, "/etc/nebula")).toEqual(["ca.crt", "config.yml", "host.crt", "host.crt.shortcircuit-networks", "host.key"]);

        // Debian's nebula -test accepted the new files (from a scratch copy) before the restart.
        const tests = nebulaTests(NEBULA_HOST);
        expect(tests.map((call) => [call.argv.slice(0, 2), call.exitCode])).toEqual([[["-test", "-config"], 0]]);
        expect(tests[0].argv[2]).toMatch(/^\/tmp\/shortcircuit\.[^/]+\/precheck\/nebula-precheck\.yml$/);
        expect(restarts()).toHaveLength(1);
        expect(tests[0].monoUs).toBeLessThan(restarts()[0].monoUs);
        expect(restarts()[0]).toMatchObject({ exitCode: 0, unitFileSha256: sha256(content(planA, "/etc/systemd/system/nebula.service")) });
        expect(verbsSince(0)).toEqual(FIRST_RESTART);
    });

    it("second run with the same payloads: writes nothing, restarts nothing", async () => {
        const before = stamps();
        const events = fleet.serviceEvents(NEBULA_HOST).length;
        for (const payload of [nebula(planA).secret, nebula(planA).public]) {
            const result = ok(await step(NEBULA_HOST, DELIVER, payload));
            expect(wrote(result)).toEqual([]);
            expect(stagedBy(result)).toEqual([]);
            expect(result.stdout).toContain("no change");
        }
        expect(stamps()).toEqual(before);
        // The public step finds nothing pending: it does not even ask systemctl.
        expect(fleet.serviceEvents(NEBULA_HOST)).toHaveLength(events);
        expect(restarts()).toHaveLength(1);
        expect(exists(NEBULA_HOST, `${KEY}.shortcircuit-staged`)).toBe(false);
    });

    it("a changed config.yml: only it is rewritten, the previous one kept, one restart", async () => {
        const before = stamps();
        expect(wrote(ok(await step(NEBULA_HOST, DELIVER, nebula(planB).secret)))).toEqual([]);
        const result = ok(await step(NEBULA_HOST, DELIVER, nebula(planB).public));
        expect(wrote(result)).toEqual([CONFIG]);
        healthy(result);
        const after = stamps();
        for (const file of ALL.filter((each) => each !== CONFIG)) {
            expect(after[file]).toBe(before[file]);
        }
        expect(read(NEBULA_HOST, CONFIG)).toBe(content(planB, CONFIG));
        expect(read(NEBULA_HOST, `${CONFIG}.previous`)).toBe(content(planA, CONFIG));
        expect(restarts()).toHaveLength(2);
    });

    it("a failed restart: the previous files go back, nebula is restarted on them and healthy, the step fails; a rerun installs again", async () => {
        await fleet.setServiceBehaviour(NEBULA_HOST, UNIT, { failRestarts: 1 });
        const failed = await step(NEBULA_HOST, DELIVER, nebula(planA).public);
        expect(failed.code).toBe(1);
        expect(wrote(failed)).toEqual([CONFIG]);
        expect(failed.stderr).toContain("Job for nebula.service failed");
        expect(failed.stderr).toContain(`${notHealthy} and nebula.service is healthy on them`);
        expect(failed.stdout).not.toContain("restarted nebula.service");
        expect(read(NEBULA_HOST, CONFIG)).toBe(content(planB, CONFIG));
        expect(
            restarts()
                .slice(2)
                .map((event) => event.exitCode),
        ).toEqual([1, 0]);
        expect(fleet.unitStatus(NEBULA_HOST, UNIT)).toBe("active");
        // Healthy on the previous files: nothing is pending; the wanted files are simply not in place.
        expect(fs.existsSync(pendingMarker(NEBULA_HOST, UNIT))).toBe(false);

        const rerun = ok(await step(NEBULA_HOST, DELIVER, nebula(planA).public));
        expect(wrote(rerun)).toEqual([CONFIG]);
        healthy(rerun);
        expect(read(NEBULA_HOST, CONFIG)).toBe(content(planA, CONFIG));
        expect(restarts()).toHaveLength(5);
        expect(restarts()[4].exitCode).toBe(0);
    });

    it(
        "a daemon that exits at start: the previous files go back and nebula is restarted on them, the step fails, a rerun fails again, and once it stays up a rerun succeeds",
        async () => {
            await fleet.setServiceBehaviour(NEBULA_HOST, UNIT, { exitAtStart: true });
            try {
                for (const attempt of [1, 2]) {
                    const events = fleet.serviceEvents(NEBULA_HOST).length;
                    const failed = await step(NEBULA_HOST, DELIVER, nebula(planB).public, FAILING_STEP_MS);
                    expect([attempt, failed.code]).toEqual([attempt, 1]);
                    // Each run writes config.yml anew (the last one put the previous one back).
                    expect(wrote(failed)).toEqual([CONFIG]);
                    expect(failed.stderr).toContain(`${notHealthy}, but nebula.service is not healthy on them either`);
                    expect(failed.stdout).not.toContain("restarted nebula.service");
                    expect(read(NEBULA_HOST, CONFIG)).toBe(content(planA, CONFIG));
                    // Restarted on the new files, then on the previous ones: never reported healthy.
                    const verbs = verbsSince(events);
                    expect(verbs.filter((verb) => verb === "restart")).toEqual(["restart", "restart"]);
                    expect(verbs.filter((verb) => verb === "is-active").length).toBeGreaterThanOrEqual(2);
                    expect(fleet.unitStatus(NEBULA_HOST, UNIT)).toBe("failed");
                    expect(fs.existsSync(pendingMarker(NEBULA_HOST, UNIT))).toBe(true);
                }
                expect(restarts()).toHaveLength(9);
            } finally {
                await fleet.setServiceBehaviour(NEBULA_HOST, UNIT, { exitAtStart: false });
            }

            const rerun = ok(await step(NEBULA_HOST, DELIVER, nebula(planB).public));
            expect(wrote(rerun)).toEqual([CONFIG]);
            healthy(rerun);
            expect(read(NEBULA_HOST, CONFIG)).toBe(content(planB, CONFIG));
            expect(restarts()).toHaveLength(10);
        },
        2 * 2 * FAILING_STEP_MS,
    );

    it("a public step hung up during its health check: no rollback happens, and a rerun of the same payload completes the pending restart", async () => {
        const events = fleet.serviceEvents(NEBULA_HOST).length;
        await fleet.setServiceBehaviour(NEBULA_HOST, UNIT, { exitAtStart: true });
        const hangUp = async (): Promise<ExecResult> => {
            const running = step(NEBULA_HOST, DELIVER, nebula(planA).public, FAILING_STEP_MS);
            // The step has written config.yml, restarted nebula and asked whether it is active.
            await until("the step's restart and first health probe", () => {
                const verbs = verbsSince(events);
                const restart = verbs.indexOf("restart");
                return restart >= 0 && verbs.indexOf("is-active", restart) > restart ? true : undefined;
            });
            expect(read(NEBULA_HOST, CONFIG)).toBe(content(planA, CONFIG));
            // The run's lock names its pid: the remote bash running this very script.
            const pid = Number(fs.readFileSync(path.join(lockDir(NEBULA_HOST, UNIT), "pid"), "utf8").trim());
            expect(fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim()).toBe("bash");
            expect(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8")).toContain(remoteScript(DELIVER));
            process.kill(pid, "SIGHUP");
            return await running;
        };
        const cut = await hangUp().finally(() => fleet.setServiceBehaviour(NEBULA_HOST, UNIT, { exitAtStart: false }));
        expect(cut.code).not.toBe(0);
        expect(wrote(cut)).toEqual([CONFIG]);
        expect(cut.stdout).not.toContain("restarted nebula.service");
        expect(cut.stderr).not.toContain("put the previous files back");
        // Cut short: the new file stays, nothing was rolled back, the restart is pending, the lock released.
        expect(read(NEBULA_HOST, CONFIG)).toBe(content(planA, CONFIG));
        expect(verbsSince(events).filter((verb) => verb === "restart")).toEqual(["restart"]);
        expect(fs.existsSync(pendingMarker(NEBULA_HOST, UNIT))).toBe(true);
        expect(fs.existsSync(lockDir(NEBULA_HOST, UNIT))).toBe(false);

        const before = stamps();
        const rerunFrom = fleet.serviceEvents(NEBULA_HOST).length;
        const rerun = ok(await step(NEBULA_HOST, DELIVER, nebula(planA).public));
        expect(wrote(rerun)).toEqual([]);
        expect(rerun.stdout).toContain("nebula: a restart of nebula.service is pending (a key changed, or the last restart did not complete); restarting it");
        healthy(rerun);
        expect(stamps()).toEqual(before);
        expect(verbsSince(rerunFrom)).toEqual(HEALTHY_RESTART);
    });

    it("a key is never live alone: the secret step stages it, the public step switches key, certificate, CA and config in together, and the old key is dropped once healthy", async () => {
        const before = stamps();
        const events = fleet.serviceEvents(NEBULA_HOST).length;
        const secret = ok(await step(NEBULA_HOST, DELIVER, nebula(planD).secret));
        expect(wrote(secret)).toEqual([]);
        expect(stagedBy(secret)).toEqual([KEY]);
        // The running key is untouched; the new one waits beside it, owner-only.
        expect(stamps()).toEqual(before);
        expect(read(NEBULA_HOST, KEY)).toBe(content(planA, KEY));
        expect(fs.readFileSync(staged(NEBULA_HOST, KEY), "utf8")).toBe(content(planD, KEY));
        expect(fs.statSync(staged(NEBULA_HOST, KEY)).mode & 0o7777).toBe(0o600);
        expect(fleet.serviceEvents(NEBULA_HOST)).toHaveLength(events);
        expect(fs.existsSync(pendingMarker(NEBULA_HOST, UNIT))).toBe(true);

        const files = ok(await step(NEBULA_HOST, DELIVER, nebula(planD).public));
        expect(wrote(files)).toEqual([CA, CERT, CONFIG, KEY]);
        healthy(files);
        for (const file of ALL) {
            expect(read(NEBULA_HOST, file)).toBe(content(planD, file));
        }
        expect(mode(NEBULA_HOST, KEY)).toBe(0o600);
        // One restart, on all of them at once, after nebula -test accepted them together.
        expect(verbsSince(events)).toEqual(HEALTHY_RESTART);
        expect(nebulaTests(NEBULA_HOST).at(-1)?.exitCode).toBe(0);
        // The old key is gone once nebula is healthy on the new one; the public files' previous versions stay.
        expect(exists(NEBULA_HOST, `${KEY}.previous`)).toBe(false);
        expect(exists(NEBULA_HOST, `${KEY}.shortcircuit-staged`)).toBe(false);
        for (const file of [CA, CERT, CONFIG]) {
            expect(read(NEBULA_HOST, `${file}.previous`)).toBe(content(planA, file));
        }
        expect(listing(NEBULA_HOST, "/etc/nebula")).toEqual([
            "ca.crt",
            "ca.crt.previous",
            "config.yml",
            "config.yml.previous",
            "host.crt",
            "host.crt.previous",
            "host.crt.shortcircuit-networks",
            "host.key",
        ]);
    });

    it("nebula -test refuses a key that is not its certificate's, and a broken config: nothing installed, nothing restarted, the step fails", async () => {
        const events = fleet.serviceEvents(NEBULA_HOST).length;
        const tests = nebulaTests(NEBULA_HOST).length;
        // Plan A's key is staged while plan D's certificate is what the public step carries.
        expect(stagedBy(ok(await step(NEBULA_HOST, DELIVER, nebula(planA).secret)))).toEqual([KEY]);
        const before = stamps();
        const dir = listing(NEBULA_HOST, "/etc/nebula");
        const mismatch = await step(NEBULA_HOST, DELIVER, nebula(planD).public);
        expect(mismatch.code).toBe(1);
        expect(mismatch.stderr).toContain("nebula: nebula -test refused the new files; nothing installed");
        expect(mismatch.stderr).toContain("private key is not a pair with public key in nebula cert");
        expect(wrote(mismatch)).toEqual([]);

        // Plan A's files, with a precheck config that does not parse.
        const broken = withPrecheck(nebula(planA).public, `${fileIn(nebula(planA).public, PRECHECK).content}tun: [unclosed\n`);
        expect(filesOf(broken).filter((file) => file.target !== PRECHECK)).toEqual(filesOf(nebula(planA).public).filter((file) => file.target !== PRECHECK));
        const unparsable = await step(NEBULA_HOST, DELIVER, broken);
        expect(unparsable.code).toBe(1);
        expect(unparsable.stderr).toContain("nebula: nebula -test refused the new files; nothing installed");
        expect(unparsable.stderr).toMatch(/failed to load config.*yaml/);
        expect(wrote(unparsable)).toEqual([]);

        expect(
            nebulaTests(NEBULA_HOST)
                .slice(tests)
                .map((call) => call.exitCode),
        ).toEqual([1, 1]);
        expect(stamps()).toEqual(before);
        expect(listing(NEBULA_HOST, "/etc/nebula")).toEqual(dir);
        expect(fleet.serviceEvents(NEBULA_HOST)).toHaveLength(events);
        expect(fleet.unitStatus(NEBULA_HOST, UNIT)).toBe("active");
        // The staged key still waits for its files.
        expect(fs.readFileSync(staged(NEBULA_HOST, KEY), "utf8")).toBe(content(planA, KEY));

        // Plan A's own public step: it passes, and switches plan A's key in with its certificate.
        const files = ok(await step(NEBULA_HOST, DELIVER, nebula(planA).public));
        expect(wrote(files)).toEqual([CA, CERT, CONFIG, KEY]);
        healthy(files);
        for (const file of ALL) {
            expect(read(NEBULA_HOST, file)).toBe(content(planA, file));
        }
        expect(exists(NEBULA_HOST, `${KEY}.previous`)).toBe(false);
        expect(verbsSince(events)).toEqual(HEALTHY_RESTART);
    });

    it("two runs of the public step at once: the lock serialises them, each restart is checked before the next begins, and .previous is the other run's file", async () => {
        const events = fleet.serviceEvents(NEBULA_HOST).length;
        const [b, e] = await Promise.all([step(NEBULA_HOST, DELIVER, nebula(planB).public), step(NEBULA_HOST, DELIVER, nebula(planE).public)]);
        for (const result of [ok(b), ok(e)]) {
            expect(wrote(result)).toEqual([CONFIG]);
            healthy(result);
        }
        // Not interleaved: each run's restart and its two health probes, then the other's.
        expect(verbsSince(events)).toEqual([...HEALTHY_RESTART, ...HEALTHY_RESTART]);
        const [bConfig, eConfig] = [content(planB, CONFIG), content(planE, CONFIG)];
        expect([
            [bConfig, eConfig],
            [eConfig, bConfig],
        ]).toContainEqual([read(NEBULA_HOST, CONFIG), read(NEBULA_HOST, `${CONFIG}.previous`)]);

        // The same payload twice at once: the run that waited finds nothing to do.
        const again = fleet.serviceEvents(NEBULA_HOST).length;
        const previous = read(NEBULA_HOST, CONFIG);
        const pair = await Promise.all([step(NEBULA_HOST, DELIVER, nebula(planA).public), step(NEBULA_HOST, DELIVER, nebula(planA).public)]);
        pair.forEach(ok);
        expect(pair.map((result) => wrote(result)).sort((x, y) => x.length - y.length)).toEqual([[], [CONFIG]]);
        expect(pair.filter((result) => result.stdout.includes("no change"))).toHaveLength(1);
        expect(verbsSince(again)).toEqual(HEALTHY_RESTART);
        expect(read(NEBULA_HOST, CONFIG)).toBe(content(planA, CONFIG));
        expect(read(NEBULA_HOST, `${CONFIG}.previous`)).toBe(previous);
        expect(fs.existsSync(lockDir(NEBULA_HOST, UNIT))).toBe(false);
    });

    it("a unit file systemd has not reloaded since a run wrote it, or a unit disabled by hand: the pending restart reloads (and enables) first", async () => {
        const unitFile = "/etc/systemd/system/nebula.service";
        const wanted = read(NEBULA_HOST, unitFile);
        // An earlier run wrote the wanted unit over one systemd had loaded, marked the restart
        // pending, and stopped before its reload: systemd's copy is the older file.
        ok(await fleet.ssh(NEBULA_HOST, `cat >${unitFile} && systemctl daemon-reload`, `${wanted}# an older unit\n`));
        ok(await fleet.ssh(NEBULA_HOST, `cat >${unitFile}`, wanted));
        expect((await fleet.ssh(NEBULA_HOST, "systemctl show -p NeedDaemonReload --value nebula.service", "")).stdout.trim()).toBe("yes");
        fs.writeFileSync(pendingMarker(NEBULA_HOST, UNIT), "");
        const stale = fleet.serviceEvents(NEBULA_HOST).length;
        const reloaded = ok(await step(NEBULA_HOST, DELIVER, nebula(planA).public));
        expect(wrote(reloaded)).toEqual([]);
        healthy(reloaded);
        expect(verbsSince(stale)).toEqual(["show", "daemon-reload", "restart", "is-active", "is-active"]);
        // Restarted on the unit in place, without systemd's "changed on disk" warning.
        expect(restarts().at(-1)).toMatchObject({ exitCode: 0, unitFileSha256: sha256(wanted) });
        expect(restarts().at(-1)?.staleUnitFile).toBeUndefined();

        ok(await fleet.ssh(NEBULA_HOST, "systemctl disable --quiet --no-reload nebula.service", ""));
        fs.writeFileSync(pendingMarker(NEBULA_HOST, UNIT), "");
        const disabled = fleet.serviceEvents(NEBULA_HOST).length;
        healthy(ok(await step(NEBULA_HOST, DELIVER, nebula(planA).public)));
        expect(verbsSince(disabled)).toEqual(["show", "enable", "daemon-reload", "restart", "is-active", "is-active"]);
        expect((await fleet.ssh(NEBULA_HOST, "systemctl is-enabled nebula.service", "")).stdout.trim()).toBe("enabled");
    });
});

describe("control server on an existing host (control/bootstrap.sh, deliveries, control/health.sh)", () => {
    const BOOTSTRAP = "control/bootstrap.sh";
    const headscaleUrl = `https://github.com/juanfont/headscale/releases/download/${versions.headscale}/headscale_${versions.headscale.replace(/^v/, "")}_linux_amd64.deb`;
    const nebulaUrl = `https://github.com/slackhq/nebula/releases/download/${versions.nebula}/nebula-linux-amd64.tar.gz`;
    const delivery = (role: string, plan: FleetPlan<string> = planA) => {
        const found = plan.control.deliveries.find((each) => each.role === role);
        if (!found) throw new Error(`no ${role} delivery`);
        return found.payloads;
    };

    // A running Headscale's data, there before the program's first run on this host (adoption).
    const existingData: Record<string, Buffer> = {
        "/var/lib/headscale/db.sqlite": randomBytes(64 * 1024),
        "/var/lib/headscale/noise_private.key": Buffer.from(`privkey:${"3d".repeat(32)}\n`),
        "/var/lib/headscale/derp_server_private.key": Buffer.from(`privkey:${"4e".repeat(32)}\n`),
    };
    beforeAll(() => {
        for (const [file, bytes] of Object.entries(existingData)) {
            fs.writeFileSync(on(CONTROL, file), bytes, { mode: 0o600 });
        }
    });

    it("plans a bootstrap that mounts nothing and starts nothing, then Headscale's files and Nebula's", () => {
        expect(parsePayload(planA.control.bootstrapPayload)).toEqual({
            params: { VOLUME_DEVICE: "none", HEADSCALE_VERSION: versions.headscale, NEBULA_VERSION: versions.nebula, LITESTREAM_VERSION: "none", START: "no" },
            files: [],
        });
        expect(planA.control.deliveries.map((each) => each.role)).toEqual(["headscale", "nebula"]);
        expect(parsePayload(delivery("headscale").secret).params).toMatchObject({ SERVICE: "headscale.service", OWNER: "headscale:headscale", RESTART: "no" });
    });

    it("bootstrap with the pinned versions installed: downloads nothing, starts nothing, prepares Headscale's state", async () => {
        const result = ok(await step(CONTROL, BOOTSTRAP, planA.control.bootstrapPayload));
        expect(result.stdout).toContain("bootstrap: done");
        expect(result.stdout).not.toContain("installed");
        expect(fleet.toolInvocations(CONTROL, "headscale").map((call) => call.argv)).toEqual([["version"]]);
        expect(fleet.toolInvocations(CONTROL, "nebula").map((call) => call.argv)).toEqual([["-version"]]);
        expect(fleet.toolInvocations(CONTROL, "curl")).toEqual([]);
        expect(fleet.toolInvocations(CONTROL, "apt-get")).toEqual([]);
        expect(fleet.serviceEvents(CONTROL)).toEqual([]);
        expect(fs.statSync(on(CONTROL, "/var/lib/headscale/cache")).isDirectory()).toBe(true);
        expect(mode(CONTROL, "/var/lib/headscale/cache")).toBe(0o750);
        expect(fleet.toolState(CONTROL).owners).toEqual({
            "/var/lib/headscale": { owner: "headscale:headscale", recursive: true },
            "/var/run/headscale": { owner: "headscale:headscale", recursive: true },
        });
    });

    it("bootstrap with another version installed: the download fails (no internet) and the error names it", async () => {
        try {
            await fleet.setToolBehaviour(CONTROL, { headscaleVersion: "v0.28.0" });
            const headscale = await step(CONTROL, BOOTSTRAP, planA.control.bootstrapPayload);
            expect(headscale.code).not.toBe(0);
            expect(headscale.stderr).toContain("curl: (7) Failed to connect to github.com port 443");
            expect(headscale.stderr).toContain(`bootstrap: could not download headscale ${versions.headscale.replace(/^v/, "")} from ${headscaleUrl}\n`);
            expect(headscale.stdout).not.toContain("installed");
            expect(fleet.toolInvocations(CONTROL, "curl").map((call) => call.argv.at(-1))).toEqual([headscaleUrl]);

            await fleet.setToolBehaviour(CONTROL, { headscaleVersion: versions.headscale, nebulaVersion: "1.8.2" });
            const nebula = await step(CONTROL, BOOTSTRAP, planA.control.bootstrapPayload);
            expect(nebula.code).not.toBe(0);
            expect(nebula.stderr).toContain(`bootstrap: could not download nebula ${versions.nebula} from ${nebulaUrl}\n`);
            expect(fleet.toolInvocations(CONTROL, "curl").map((call) => call.argv.at(-1))).toEqual([headscaleUrl, nebulaUrl]);

            expect(fleet.toolInvocations(CONTROL, "apt-get")).toEqual([]);
            expect(fleet.serviceEvents(CONTROL)).toEqual([]);
        } finally {
            await fleet.setToolBehaviour(CONTROL, { headscaleVersion: versions.headscale, nebulaVersion: versions.nebula });
        }
    });

    it("Headscale's then Nebula's delivery: keys staged for the headscale user, switched in with the config, each service restarted once after its unit and config", async () => {
        // The headscale .deb (bootstrap) installs headscale.service; the program writes nebula.service.
        fs.writeFileSync(on(CONTROL, "/etc/systemd/system/headscale.service"), HEADSCALE_UNIT, { mode: 0o644 });
        const noiseKey = "/etc/headscale/noise_private.key";
        const derpKey = "/etc/headscale/derp_server_private.key";
        const keys = [noiseKey, derpKey];
        expect(parsePayload(delivery("headscale").public).params).toMatchObject({
            SECRET_PATHS: keys.join(" "),
            OWNER: "",
            PRECHECK_NEBULA_CONFIG: "",
            CHECK_PORT: "9090",
            CHECK_INTERFACE: "",
        });

        const secrets = ok(await step(CONTROL, DELIVER, delivery("headscale").secret));
        expect(wrote(secrets)).toEqual([]);
        expect(stagedBy(secrets)).toEqual(keys);
        for (const key of keys) {
            expect(exists(CONTROL, key)).toBe(false);
            expect(fs.readFileSync(staged(CONTROL, key), "utf8")).toBe(fileIn(delivery("headscale").secret, key).content);
            expect(fs.statSync(staged(CONTROL, key)).mode & 0o7777).toBe(0o600);
            // chown ran on the staged file (its temporary name) before it was renamed beside the key.
            const owned = Object.entries(fleet.toolState(CONTROL).owners).filter(([file]) => file.startsWith(`${key}.shortcircuit-staged.shortcircuit.`));
            expect(owned.map(([, owner]) => owner)).toEqual([{ owner: "headscale:headscale", recursive: false }]);
        }
        expect(fleet.serviceEvents(CONTROL)).toEqual([]);
        expect(exists(CONTROL, "/etc/headscale/config.yaml")).toBe(false);
        expect(fs.existsSync(pendingMarker(CONTROL, "headscale.service"))).toBe(true);

        // Headscale's metrics listener, the port its delivery checks after the restart.
        const metrics = await listenOn(CONTROL, 9090);
        const files = await step(CONTROL, DELIVER, delivery("headscale").public).finally(() => metrics.stop());
        ok(files);
        expect(metrics.connections()).toBeGreaterThanOrEqual(2);
        const headscaleFiles = ["/etc/headscale/config.yaml", "/etc/headscale/policy.hujson", "/etc/headscale/derp.yaml"];
        expect(wrote(files)).toEqual([...headscaleFiles, ...keys]);
        for (const file of headscaleFiles) {
            expect(read(CONTROL, file)).toBe(fileIn(delivery("headscale").public, file).content);
            expect(mode(CONTROL, file)).toBe(0o644);
        }
        for (const key of keys) {
            expect(read(CONTROL, key)).toBe(fileIn(delivery("headscale").secret, key).content);
            expect(mode(CONTROL, key)).toBe(0o600);
            expect(fs.existsSync(staged(CONTROL, key))).toBe(false);
        }
        expect(listing(CONTROL, "/etc/headscale")).toEqual(["config.yaml", "derp.yaml", "derp_server_private.key", "noise_private.key", "policy.hujson"]);
        expect(files.stdout.indexOf(`wrote ${noiseKey}`)).toBeLessThan(files.stdout.indexOf("restarted headscale.service; it is active and answering"));
        expect(starts(CONTROL)).toEqual([
            expect.objectContaining({ unit: "headscale.service", verb: "restart", exitCode: 0, unitFileSha256: sha256(HEADSCALE_UNIT) }),
        ]);
        expect(fleet.unitStatus(CONTROL, "headscale.service")).toBe("active");
        expect(fs.existsSync(pendingMarker(CONTROL, "headscale.service"))).toBe(false);
        expect(fleet.serviceEvents(CONTROL, "nebula.service")).toEqual([]);

        const nebulaSecret = ok(await step(CONTROL, DELIVER, delivery("nebula").secret));
        expect(wrote(nebulaSecret)).toEqual([]);
        expect(stagedBy(nebulaSecret)).toEqual(["/etc/nebula/host.key"]);
        expect(starts(CONTROL)).toHaveLength(1);
        const nebulaFiles = ok(await step(CONTROL, DELIVER, delivery("nebula").public));
        expect(wrote(nebulaFiles)).toEqual([
            "/etc/nebula/ca.crt",
            "/etc/nebula/host.crt",
            "/etc/nebula/config.yml",
            "/etc/systemd/system/nebula.service",
            "/etc/nebula/host.key",
        ]);
        // The control server is a lighthouse: its precheck config passes Debian's nebula -test too.
        expect(nebulaTests(CONTROL).map((call) => call.exitCode)).toEqual([0]);
        const nebulaUnit = fileIn(delivery("nebula").public, "/etc/systemd/system/nebula.service").content;
        expect(read(CONTROL, "/etc/systemd/system/nebula.service")).toBe(nebulaUnit);
        expect(read(CONTROL, "/etc/nebula/config.yml")).toBe(fileIn(delivery("nebula").public, "/etc/nebula/config.yml").content);
        expect(read(CONTROL, "/etc/nebula/host.key")).toBe(fileIn(delivery("nebula").secret, "/etc/nebula/host.key").content);
        expect(mode(CONTROL, "/etc/nebula/host.key")).toBe(0o600);
        // Order of every start: Headscale after its files, Nebula after its unit and config.
        expect(starts(CONTROL).map((event) => [event.unit, event.verb, event.exitCode, event.unitFileSha256])).toEqual([
            ["headscale.service", "restart", 0, sha256(HEADSCALE_UNIT)],
            ["nebula.service", "restart", 0, sha256(nebulaUnit)],
        ]);
        expect(fleet.unitStatus(CONTROL, "nebula.service")).toBe("active");
    });

    it("a rerun of every control step changes nothing and restarts nothing", async () => {
        const events = fleet.serviceEvents(CONTROL).length;
        ok(await step(CONTROL, BOOTSTRAP, planA.control.bootstrapPayload));
        for (const role of ["headscale", "nebula"]) {
            const secret = ok(await step(CONTROL, DELIVER, delivery(role).secret));
            expect([role, wrote(secret), stagedBy(secret)]).toEqual([role, [], []]);
            expect(wrote(ok(await step(CONTROL, DELIVER, delivery(role).public)))).toEqual([]);
        }
        expect(fleet.serviceEvents(CONTROL)).toHaveLength(events);
        expect(fleet.toolInvocations(CONTROL, "curl")).toHaveLength(2);
        // An unchanged key still gets its owner.
        expect(fleet.toolState(CONTROL).owners["/etc/headscale/noise_private.key"]).toEqual({ owner: "headscale:headscale", recursive: false });
    });

    it("a Headscale that does not answer on its metrics port after a config change: the previous config goes back and the step fails; answering, the rerun succeeds", async () => {
        const configPath = "/etc/headscale/config.yaml";
        const previous = read(CONTROL, configPath);
        const { params, files } = parsePayload(delivery("headscale").public);
        const changed = framedPayload(
            params,
            files.map((file) => (file.target === configPath ? { ...file, content: `${file.content}# changed by the test\n` } : file)),
        );
        // Nothing listens on 9090: headscale.service is active but not answering.
        const failed = await step(CONTROL, DELIVER, changed, FAILING_STEP_MS);
        expect(failed.code).toBe(1);
        expect(wrote(failed)).toEqual([configPath]);
        expect(failed.stderr).toContain("headscale: headscale.service is not healthy");
        expect(read(CONTROL, configPath)).toBe(previous);
        expect(fs.existsSync(pendingMarker(CONTROL, "headscale.service"))).toBe(true);

        const metrics = await listenOn(CONTROL, 9090);
        const rerun = await step(CONTROL, DELIVER, changed).finally(() => metrics.stop());
        ok(rerun);
        expect(wrote(rerun)).toEqual([configPath]);
        expect(rerun.stdout).toContain("headscale: restarted headscale.service; it is active and answering");
        expect(read(CONTROL, configPath)).toBe(`${previous}# changed by the test\n`);
        expect(fs.existsSync(pendingMarker(CONTROL, "headscale.service"))).toBe(false);

        // Back to the planned config, so the later cases see the plan's files.
        const restore = await listenOn(CONTROL, 9090);
        ok(await step(CONTROL, DELIVER, delivery("headscale").public).finally(() => restore.stop()));
        expect(read(CONTROL, configPath)).toBe(previous);
    });

    it("keeps the Headscale data that was there before the first run byte for byte", () => {
        for (const [file, bytes] of Object.entries(existingData)) {
            expect([file, fs.readFileSync(on(CONTROL, file)).equals(bytes)]).toEqual([file, true]);
        }
    });

    it("health: asks Headscale's /health on the loopback under its own name", async () => {
        const hostname = planA.control.hostname;
        await fleet.setToolBehaviour(CONTROL, { curlResponses: { [`https://${hostname}/health`]: { body: '{"status":"pass"}' } } });
        const result = ok(await step(CONTROL, "control/health.sh", planA.control.healthPayload));
        expect(result.stdout).toBe('{"status":"pass"}\n');
        expect(fleet.toolInvocations(CONTROL, "curl").at(-1)?.argv).toEqual(
            expect.arrayContaining(["--resolve", `${hostname}:443:127.0.0.1`, `https://${hostname}/health`]),
        );
    });

    it("a new pinned Headscale and Nebula: bootstrap installs them and marks both restarts pending; each delivery runs again for the version and restarts its service on the same files, checked; a rerun changes nothing", async () => {
        const next = { headscale: "v0.29.2", nebula: "v1.9.8" };
        const bumped = withPinnedVersions(next, () => planOf(labConfig(), SEED));
        const bumpedDelivery = (role: string) => delivery(role, bumped);
        // Only the version differs: the same files, and the files step's payload names the version.
        for (const [role, version] of [
            ["headscale", next.headscale],
            ["nebula", next.nebula],
        ] as const) {
            expect(filesOf(bumpedDelivery(role).public)).toEqual(filesOf(delivery(role).public));
            expect(bumpedDelivery(role).secret).toBe(delivery(role).secret);
            expect(parsePayload(bumpedDelivery(role).public).params.BINARY_VERSION).toBe(version);
        }

        // The releases, served by the lab's curl: a .deb the apt-get stand-in records, and a
        // nebula archive whose nebula is the host's own nebula stand-in (it reads the version cue).
        const release = fs.mkdtempSync(path.join(os.tmpdir(), "shortcircuit-release-"));
        try {
            fs.copyFileSync(on(CONTROL, "/usr/local/bin/nebula"), path.join(release, "nebula"));
            fs.writeFileSync(path.join(release, "nebula-cert"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
            execFileSync("tar", ["-czf", path.join(release, "nebula.tar.gz"), "-C", release, "nebula", "nebula-cert"]);
            const archive = fs.readFileSync(path.join(release, "nebula.tar.gz"));
            const deb = Buffer.from("a headscale .deb, as far as the lab's apt-get can tell\n");
            const debName = `headscale_${next.headscale.slice(1)}_linux_amd64.deb`;
            const headscaleRelease = `https://github.com/juanfont/headscale/releases/download/${next.headscale}`;
            const nebulaRelease = `https://github.com/slackhq/nebula/releases/download/${next.nebula}`;
            const digest = (bytes: Buffer): string => createHash("sha256").update(bytes).digest("hex");
            await fleet.setToolBehaviour(CONTROL, {
                curlResponses: {
                    [`${headscaleRelease}/${debName}`]: { bodyBase64: deb.toString("base64") },
                    [`${headscaleRelease}/checksums.txt`]: { body: `${digest(deb)}  ${debName}\n` },
                    [`${nebulaRelease}/nebula-linux-amd64.tar.gz`]: { bodyBase64: archive.toString("base64") },
                    [`${nebulaRelease}/SHASUM256.txt`]: { body: `${digest(archive)}  nebula-linux-amd64.tar.gz\n` },
                },
            });
            const events = fleet.serviceEvents(CONTROL).length;
            const bootstrap = ok(await step(CONTROL, BOOTSTRAP, bumped.control.bootstrapPayload));
            expect(bootstrap.stdout).toContain(`bootstrap: installed headscale ${next.headscale.slice(1)}`);
            expect(bootstrap.stdout).toContain(`bootstrap: installed nebula ${next.nebula}`);
            expect(fleet.toolInvocations(CONTROL, "apt-get").at(-1)?.argv.at(-1)).toMatch(new RegExp(`/${debName.replace(/\./g, "\\.")}$`));
            // It starts nothing itself: both restarts are left, marked, to the deliveries.
            expect(fleet.serviceEvents(CONTROL)).toHaveLength(events);
            for (const unit of ["headscale.service", "nebula.service"]) {
                expect([unit, fs.existsSync(pendingMarker(CONTROL, unit))]).toEqual([unit, true]);
            }
            // What the installed binaries now report.
            await fleet.setToolBehaviour(CONTROL, { headscaleVersion: next.headscale, nebulaVersion: next.nebula });

            const metrics = await listenOn(CONTROL, 9090);
            const headscale = await (async () => {
                ok(await step(CONTROL, DELIVER, bumpedDelivery("headscale").secret));
                return step(CONTROL, DELIVER, bumpedDelivery("headscale").public);
            })().finally(() => metrics.stop());
            ok(headscale);
            expect(wrote(headscale)).toEqual([]);
            expect(headscale.stdout).toContain("a restart of headscale.service is pending");
            expect(headscale.stdout).toContain("headscale: restarted headscale.service; it is active and answering");
            expect(metrics.connections()).toBeGreaterThanOrEqual(2);
            ok(await step(CONTROL, DELIVER, bumpedDelivery("nebula").secret));
            const nebula = ok(await step(CONTROL, DELIVER, bumpedDelivery("nebula").public));
            expect(wrote(nebula)).toEqual([]);
            expect(nebula.stdout).toContain("nebula: restarted nebula.service; it is active and answering");
            expect(
                fleet
                    .serviceEvents(CONTROL)
                    .slice(events)
                    .filter((event) => START_VERBS.has(event.verb))
                    .map((event) => [event.unit, event.verb, event.exitCode]),
            ).toEqual([
                ["headscale.service", "restart", 0],
                ["nebula.service", "restart", 0],
            ]);
            for (const unit of ["headscale.service", "nebula.service"]) {
                expect([unit, fs.existsSync(pendingMarker(CONTROL, unit))]).toEqual([unit, false]);
            }

            // Converged: the new versions are there, nothing to install or restart.
            const after = fleet.serviceEvents(CONTROL).length;
            expect(ok(await step(CONTROL, BOOTSTRAP, bumped.control.bootstrapPayload)).stdout).not.toContain("installed");
            for (const role of ["headscale", "nebula"]) {
                ok(await step(CONTROL, DELIVER, bumpedDelivery(role).secret));
                expect(ok(await step(CONTROL, DELIVER, bumpedDelivery(role).public)).stdout).toContain(`${role}: no change`);
            }
            expect(fleet.serviceEvents(CONTROL)).toHaveLength(after);
        } finally {
            fs.rmSync(release, { recursive: true, force: true });
            // The host's nebula stand-in back, and the pinned versions.
            await fleet.setToolBehaviour(CONTROL, { headscaleVersion: versions.headscale, nebulaVersion: versions.nebula, curlResponses: {}, missing: [] });
        }
    });
});

describe("derper on a relay (derp/install.sh, then its delivery)", () => {
    const INSTALL = "derp/install.sh";
    const version = versions.tailscale;
    const target = `/usr/local/lib/derper/${version}/derper`;
    const relay = () => planA.relays[0];
    const DERPER = "derper.service";
    const RELAY_KEY = `/var/lib/derper/certs/${String(labConfig().derpRelays[0].hostname)}.key`;

    it("fails with a clear message when Go is missing", async () => {
        expect(parsePayload(relay().installPayload)).toEqual({
            params: { VERSION: version, TARGET: target, SERVICE_FILE: `/etc/systemd/system/${DERPER}`, SYSTEMD_UNIT: DERPER },
            files: [],
        });
        await fleet.setToolBehaviour(RELAY, { missing: ["go"] });
        try {
            const result = await step(RELAY, INSTALL, relay().installPayload);
            expect(result.code).toBe(1);
            expect(result.stderr).toContain(`derper install: Go is not installed on ${RELAY}`);
            expect(fleet.toolInvocations(RELAY, "go")).toEqual([]);
            expect(fs.existsSync(on(RELAY, "/usr/local/bin/derper"))).toBe(false);
        } finally {
            await fleet.setToolBehaviour(RELAY, { missing: [] });
        }
    });

    it("takes only the plan's shape of target path, since it removes other versions beside it", async () => {
        for (const bad of ["/derper", `/usr/local/lib/${version}/derper`, "/usr/local/lib/derper/other/derper"]) {
            const params = { ...parsePayload(relay().installPayload).params, TARGET: bad };
            const result = await step(RELAY, INSTALL, framedPayload(params));
            expect({ code: result.code, stderr: result.stderr.trim() }).toEqual({
                code: 2,
                stderr: `shortcircuit: TARGET must be <dir>/derper/${version}/derper, not ${bad}`,
            });
        }
        expect(fleet.toolInvocations(RELAY, "go")).toEqual([]);
    });

    it("installs the pinned derper with go install once, its caches in a directory of the step's own that goes with it, and links it", async () => {
        // What an install cut short would leave: read-only, as Go leaves its module cache.
        const stale = on(RELAY, "/usr/local/lib/derper/.go-install.interrupted/mod/tailscale.com@v1.0.0");
        fs.mkdirSync(stale, { recursive: true });
        fs.writeFileSync(path.join(stale, "go.mod"), "module tailscale.com\n", { mode: 0o444 });
        fs.chmodSync(stale, 0o555);

        const first = ok(await step(RELAY, INSTALL, relay().installPayload));
        expect(first.stdout).toContain(`derper ${version} at ${target}`);
        const calls = fleet.toolInvocations(RELAY, "go");
        const ownDir = /^\/usr\/local\/lib\/derper\/\.go-install\.[A-Za-z0-9]{6}\/(bin|mod|build)$/;
        expect(calls.map((call) => [call.argv, call.env, call.exitCode])).toEqual([
            [
                ["install", `tailscale.com/cmd/derper@${version}`],
                { GOBIN: expect.stringMatching(ownDir), GOMODCACHE: expect.stringMatching(ownDir), GOCACHE: expect.stringMatching(ownDir) },
                0,
            ],
        ]);
        // Neither that run's directory nor the interrupted one's is left.
        expect(fs.readdirSync(on(RELAY, "/usr/local/lib/derper"))).toEqual([version]);
        const env = calls[0].env ?? {};
        expect(new Set([env.GOBIN, env.GOMODCACHE, env.GOCACHE].map((dir) => path.dirname(dir ?? "")))).toEqual(new Set([path.dirname(env.GOBIN ?? "")]));
        expect(fs.statSync(on(RELAY, target)).mode & 0o111).not.toBe(0);
        expect(fs.readlinkSync(on(RELAY, "/usr/local/bin/derper"))).toBe(target);
        expect(fs.statSync(on(RELAY, "/var/lib/derper/certs")).isDirectory()).toBe(true);
        const run = ok(await fleet.ssh(RELAY, "derper -version"));
        expect(run.stdout).toContain(version);

        const second = ok(await step(RELAY, INSTALL, relay().installPayload));
        expect(second.stdout).toContain(`derper ${version} at ${target}`);
        expect(fleet.toolInvocations(RELAY, "go")).toHaveLength(1);
    });

    it("another systemd unit that runs derper, active or enabled, stops the install before anything changes, naming it and how to retire it; stopped and disabled, it is no obstacle", async () => {
        const next = withPinnedVersions({ tailscale: "v1.104.0" }, () => planOf(labConfig(), SEED).relays[0]);
        const nextDir = "/usr/local/lib/derper/v1.104.0";
        const operatorUnit = "/etc/systemd/system/derp-relay.service";
        fs.writeFileSync(
            on(RELAY, operatorUnit),
            "[Unit]\nDescription=the operator's derper\n[Service]\nExecStart=/root/go/bin/derper -hostname derp-lab.kub0.io -a :443\nRestart=always\n[Install]\nWantedBy=multi-user.target\n",
        );
        // A unit that only mentions derper (it runs derper-exporter) is told apart from the one above,
        // which runs derper under another unit name: only that one is refused.
        fs.writeFileSync(
            on(RELAY, "/etc/systemd/system/derper-exporter.service"),
            "[Service]\nExecStart=/usr/local/bin/derper-exporter --derper-url http://127.0.0.1\n",
        );
        const goCalls = fleet.toolInvocations(RELAY, "go").length;
        const linkBefore = fs.readlinkSync(on(RELAY, "/usr/local/bin/derper"));
        const refused = (active: string, enabled: string) =>
            `derper install: ${operatorUnit} (systemd unit derp-relay.service: ${active}, ${enabled}) runs derper; the relay's ${DERPER} needs its ports: stop and disable it (systemctl disable --now derp-relay.service), then re-run; nothing changed`;
        try {
            ok(await fleet.ssh(RELAY, "systemctl enable --now derp-relay.service derper-exporter.service 2>/dev/null"));
            const running = await step(RELAY, INSTALL, next.installPayload);
            expect({ code: running.code, stderr: running.stderr.trim() }).toEqual({ code: 1, stderr: refused("active", "enabled") });

            ok(await fleet.ssh(RELAY, "systemctl stop derp-relay.service"));
            const atBoot = await step(RELAY, INSTALL, next.installPayload);
            expect({ code: atBoot.code, stderr: atBoot.stderr.trim() }).toEqual({ code: 1, stderr: refused("inactive", "enabled") });
            expect(fleet.toolInvocations(RELAY, "go")).toHaveLength(goCalls);
            expect(exists(RELAY, nextDir)).toBe(false);
            expect(fs.readlinkSync(on(RELAY, "/usr/local/bin/derper"))).toBe(linkBefore);

            ok(await fleet.ssh(RELAY, "systemctl disable derp-relay.service 2>/dev/null"));
            expect(ok(await step(RELAY, INSTALL, next.installPayload)).stdout).toContain(`derper v1.104.0 at ${nextDir}/derper`);
            // No unit runs the pinned version yet (nothing was delivered), so the new one's install took it away.
            expect(exists(RELAY, path.dirname(target))).toBe(false);
        } finally {
            ok(await fleet.ssh(RELAY, "systemctl disable --now derp-relay.service derper-exporter.service 2>/dev/null; true"));
            fs.rmSync(on(RELAY, operatorUnit), { force: true });
            fs.rmSync(on(RELAY, "/etc/systemd/system/derper-exporter.service"), { force: true });
        }
        // Back to the pinned version: installed again, the link the program's again, v1.104.0 gone.
        const back = ok(await step(RELAY, INSTALL, relay().installPayload));
        expect(back.stdout).toContain(`derper install: removed ${nextDir} (neither the pinned version nor the one /etc/systemd/system/${DERPER} runs)`);
        expect(fs.readdirSync(on(RELAY, "/usr/local/lib/derper"))).toEqual([version]);
        expect(fs.readlinkSync(on(RELAY, "/usr/local/bin/derper"))).toBe(target);
    });

    it("a go install cut short leaves no derper at the target (Go copies a binary into GOBIN in place), so the next install builds it again", async () => {
        const next = withPinnedVersions({ tailscale: "v1.104.0" }, () => planOf(labConfig(), SEED).relays[0]);
        const nextTarget = "/usr/local/lib/derper/v1.104.0/derper";
        await fleet.setToolBehaviour(RELAY, { goInstallCutShort: true });
        try {
            const cut = await step(RELAY, INSTALL, next.installPayload);
            expect(cut.code).toBe(2);
            expect(cut.stderr).toContain("killed while copying derper");
            expect(exists(RELAY, nextTarget)).toBe(false);
            expect(fs.readdirSync(on(RELAY, "/usr/local/lib/derper"))).toEqual([version]);
        } finally {
            await fleet.setToolBehaviour(RELAY, { goInstallCutShort: false });
        }
        expect(ok(await step(RELAY, INSTALL, next.installPayload)).stdout).toContain(`derper v1.104.0 at ${nextTarget}`);
        expect(ok(await fleet.ssh(RELAY, `${nextTarget} -version`)).stdout).toBe("v1.104.0 (lab fleet test double, not derper)\n");

        // Back to the pinned version, as the next `up` would.
        expect(ok(await step(RELAY, INSTALL, relay().installPayload)).stdout).toContain("derper install: removed /usr/local/lib/derper/v1.104.0");
        expect(fs.readdirSync(on(RELAY, "/usr/local/lib/derper"))).toEqual([version]);
    });

    it("derper's health check asks its derp port: with nothing listening the step fails and takes back what it wrote, the key waiting staged", async () => {
        const planned = relay().deliveries[0];
        const payloads = planned.payloads;
        const port = planA.relays[0].deliveries[0].checkPort;
        expect(port).toBe(443);
        expect(parsePayload(payloads.public).params).toMatchObject({
            SERVICE: DERPER,
            CHECK_PORT: "443",
            CHECK_INTERFACE: "",
            PRECHECK_NEBULA_CONFIG: "",
            SECRET_PATHS: RELAY_KEY,
        });
        expect(filesOf(payloads.secret).map((file) => file.target)).toEqual([RELAY_KEY]);

        const secret = ok(await step(RELAY, DELIVER, payloads.secret));
        expect(stagedBy(secret)).toEqual([RELAY_KEY]);
        expect(exists(RELAY, RELAY_KEY)).toBe(false);

        // The derper stand-in answers on no port.
        const failed = await step(RELAY, DELIVER, payloads.public, FAILING_STEP_MS);
        expect(failed.code).toBe(1);
        const written = [...filesOf(payloads.public).map((file) => file.target), RELAY_KEY];
        expect(wrote(failed)).toEqual(written);
        expect(failed.stderr).toContain(
            "derper: derper.service is not healthy 30s after its restart on the new files; put the previous files back, but derper.service is not healthy on them either",
        );
        expect(failed.stdout).not.toContain("restarted derper.service");
        // Started and active, yet never healthy: it never answered on its port. The check looks at
        // the port first (a builtin), so it never had to ask systemd.
        const verbs = fleet.serviceEvents(RELAY, DERPER).map((event) => [event.verb, event.result]);
        expect(verbs.filter(([verb]) => verb === "restart")).toEqual([["restart", "active"]]);
        expect(verbs.filter(([verb]) => verb === "is-active")).toEqual([]);
        // First delivery: nothing was there before, so what it wrote is gone again, and with its
        // unit gone derper is not started again; the new key waits staged for the next run.
        for (const file of written) {
            expect([file, exists(RELAY, file)]).toEqual([file, false]);
        }
        expect(fs.readFileSync(staged(RELAY, RELAY_KEY), "utf8")).toBe(fileIn(payloads.secret, RELAY_KEY).content);
        expect(fs.statSync(staged(RELAY, RELAY_KEY)).mode & 0o7777).toBe(0o600);
        expect(starts(RELAY, DERPER).map((event) => [event.verb, event.exitCode])).toEqual([["restart", 0]]);
        expect(fs.existsSync(pendingMarker(RELAY, DERPER))).toBe(true);
    });

    it("with derper answering on its derp port, a rerun of the same payload switches unit, certificate and key in and succeeds", async () => {
        const payloads = relay().deliveries[0].payloads;
        const listener = await listenOn(RELAY, 443);
        try {
            const files = ok(await step(RELAY, DELIVER, payloads.public));
            expect(wrote(files)).toEqual([...filesOf(payloads.public).map((file) => file.target), RELAY_KEY]);
            expect(files.stdout).toContain("derper: restarted derper.service; it is active and answering");
            for (const file of [...filesOf(payloads.secret), ...filesOf(payloads.public)]) {
                expect(read(RELAY, file.target)).toBe(file.content);
                expect(mode(RELAY, file.target)).toBe(file.mode);
            }
            expect(exists(RELAY, `${RELAY_KEY}.shortcircuit-staged`)).toBe(false);
            expect(exists(RELAY, `${RELAY_KEY}.previous`)).toBe(false);
            // The health check connected to the port, once per probe (active twice, a second apart).
            expect(listener.connections()).toBeGreaterThanOrEqual(2);
        } finally {
            await listener.stop();
        }
        expect(starts(RELAY, DERPER).map((event) => [event.verb, event.exitCode])).toEqual([
            ["restart", 0],
            ["restart", 0],
        ]);
        expect(fleet.unitStatus(RELAY, DERPER)).toBe("active");
        expect(fs.existsSync(pendingMarker(RELAY, DERPER))).toBe(false);
    });
});

describe("cluster edge (edge/read-kubeconfig.sh) on the genesis server", () => {
    const KUBECONFIG = "/etc/rancher/k3s/k3s.yaml";

    it("prints the genesis server's kubeconfig as it is, and fails while there is none", async () => {
        const payload = planA.edge?.readKubeconfigPayload ?? "";
        expect(parsePayload(payload)).toEqual({ params: {}, files: [] });
        const absent = await step(NEBULA_HOST, "edge/read-kubeconfig.sh", payload);
        expect(absent.code).not.toBe(0);
        expect(absent.stdout).toBe("");

        const kubeconfig = `apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: TEFCLVRFU1Q=\n    server: https://127.0.0.1:6443\n  name: default\nkind: Config\n`;
        fs.mkdirSync(path.dirname(on(NEBULA_HOST, KUBECONFIG)), { recursive: true });
        fs.writeFileSync(on(NEBULA_HOST, KUBECONFIG), kubeconfig, { mode: 0o600 });
        const result = ok(await step(NEBULA_HOST, "edge/read-kubeconfig.sh", payload));
        expect(result.stdout).toBe(kubeconfig);
    });
});

describe("the real machine", () => {
    it("is untouched: nothing was written into its own directories", () => {
        for (const [dir, before] of realBefore) {
            expect([dir, realListing(dir)]).toEqual([dir, before]);
        }
        expect(fs.readFileSync("/etc/fstab", "utf8")).toBe(realFstab);
        for (const [file, existed] of realFilesBefore) {
            expect([file, fs.existsSync(file)]).toEqual([file, existed]);
        }
    });
});
