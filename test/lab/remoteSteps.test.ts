import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import type { FleetPlan } from "../../components/plan";
import { throwawayPlan } from "../../components/planFiles";
import { parsePayload, type PayloadFile } from "../../components/remote/payload";
import { remoteScript } from "../../components/remote/scripts";
import { versions } from "../../components/versions";
import type { Fleet } from "../../stacks/schema";
import { validateFleet } from "../../stacks/validate";
import { rawFleet, type Raw } from "../support/fixtures";
import { checkLabPrerequisites, LAB_PRIVATE_DIRS, startLabFleet, type ExecResult, type LabFleet, type ServiceEvent } from "./labFleet";

/*
 * The program's non-k3s remote steps on the lab fleet: each step's exact script
 * (remote/prelude.sh + the step's .sh, as remoteScript() builds it) runs over real SSH with the
 * plan's exact payload on stdin, against test hosts whose /etc/nebula, /etc/headscale,
 * /etc/systemd/system, /var/lib/... are private (test/lab/labFleet.ts) and whose systemctl,
 * headscale, nebula, go, curl, apt-get, dpkg, cloud-init and chown are recording stand-ins
 * (test/lab/service-doubles.ts). The plan is throwawayPlan() of the lab stack moved onto this
 * suite's bridge, with the control server on an existing host of the fleet.
 *
 * The suite's tests build on each other in order (one host's state carries from one test to the
 * next), like a sequence of `pulumi up` runs. No wall-clock race assertions: the only wait is
 * the delivery's own bounded activity check.
 */

jest.setTimeout(180_000);

const BRIDGE_PREFIX = "198.18.95";
const NEBULA_HOST = "lab-server-01";
const RELAY = "lab-relay-01";
const CONTROL = "lab-control-01";
const LAN_OCTET: Record<string, number> = { "lab-server-01": 11, "lab-agent-01": 21, "lab-agent-02": 22, "lab-relay-01": 2, "lab-control-01": 3 };

const DELIVER = "remote/deliver-files.sh";
const SEED = "5c".repeat(32);
const OTHER_SEED = "a7".repeat(32);
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
    const raw: Raw = rawFleet("lab");
    raw.nodes.push({
        name: CONTROL,
        site: "lab",
        role: "standalone",
        arch: "amd64",
        os: "debian",
        lan: { interface: "eth0", address: "192.168.50.3" },
        tailnet: { address: "100.68.0.3" },
    });
    raw.controlServer.host = { kind: "existing", host: CONTROL };
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
/** The lab stack with another Nebula listen port: only config.yml differs. */
let planB: FleetPlan<string>;
/** Another seed: other keys. */
let planC: FleetPlan<string>;
const realBefore = new Map<string, string[]>();
/** Files the steps write inside a host, by their in-host path: the machine's own stay as they were. */
const REAL_FILES = ["/usr/local/bin/derper", "/etc/rancher/k3s/k3s.yaml", "/etc/systemd/system/headscale.service", "/etc/systemd/system/nebula.service", "/etc/systemd/system/derper.service"];
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
const wrote = (result: ExecResult): string[] =>
    result.stdout
        .split("\n")
        .map((line) => /: wrote (\S+)$/.exec(line)?.[1])
        .filter((file): file is string => file !== undefined);
const pendingMarker = (host: string, unit: string): string => on(host, `/var/lib/shortcircuit/restart-pending.${unit}`);

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
    planC = planOf(labConfig(), OTHER_SEED);
    const raw = labConfig();
    fleet = await startLabFleet({
        bridgeCidr: `${BRIDGE_PREFIX}.0/24`,
        hosts: [
            { name: NEBULA_HOST, role: "server", lanAddress: `${BRIDGE_PREFIX}.${LAN_OCTET[NEBULA_HOST]}` },
            { name: RELAY, role: "agent", lanAddress: `${BRIDGE_PREFIX}.${LAN_OCTET[RELAY]}` },
            {
                name: CONTROL,
                role: "agent",
                lanAddress: `${BRIDGE_PREFIX}.${LAN_OCTET[CONTROL]}`,
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
    const PUBLIC = ["/etc/nebula/ca.crt", "/etc/nebula/host.crt", "/etc/nebula/config.yml", "/etc/systemd/system/nebula.service"];
    const KEY = "/etc/nebula/host.key";
    const ALL = [...PUBLIC, KEY];
    const stamps = (): Record<string, string> => Object.fromEntries(ALL.map((file) => [file, stamp(NEBULA_HOST, file)]));
    const restarts = (): ServiceEvent[] => starts(NEBULA_HOST, UNIT);

    it("plans the payloads the cases below rely on", () => {
        expect(filesOf(nebula(planA).public).map((file) => [file.target, file.mode])).toEqual(PUBLIC.map((file) => [file, 0o644]));
        expect(filesOf(nebula(planA).secret).map((file) => [file.target, file.mode])).toEqual([[KEY, 0o600]]);
        expect(parsePayload(nebula(planA).public).params).toMatchObject({ SERVICE_MANAGER: "systemd", SERVICE: UNIT, RESTART: "yes" });
        expect(parsePayload(nebula(planA).secret).params).toMatchObject({ SERVICE: UNIT, RESTART: "no", OWNER: "" });
        // B: only config.yml differs. C: only the key differs (its public payload is not used).
        expect(nebula(planB).secret).toBe(nebula(planA).secret);
        const differs = (x: string, y: string): string[] => filesOf(x).filter((file, index) => file.content !== filesOf(y)[index].content).map((file) => file.target);
        expect(differs(nebula(planB).public, nebula(planA).public)).toEqual(["/etc/nebula/config.yml"]);
        expect(differs(nebula(planC).secret, nebula(planA).secret)).toEqual([KEY]);
        expect(parsePayload(nebula(planC).secret).params).toEqual(parsePayload(nebula(planA).secret).params);
    });

    it("first run: writes every file with its mode, restarts nebula.service exactly once, and it is active", async () => {
        const secret = ok(await step(NEBULA_HOST, DELIVER, nebula(planA).secret));
        expect(wrote(secret)).toEqual([KEY]);
        expect(restarts()).toEqual([]);
        expect(fs.existsSync(pendingMarker(NEBULA_HOST, UNIT))).toBe(true);

        const files = ok(await step(NEBULA_HOST, DELIVER, nebula(planA).public));
        expect(wrote(files)).toEqual(PUBLIC);
        expect(files.stdout).toContain("nebula: restarted nebula.service; it is active");
        for (const file of filesOf(nebula(planA).public)) {
            expect(read(NEBULA_HOST, file.target)).toBe(file.content);
            expect(mode(NEBULA_HOST, file.target)).toBe(0o644);
        }
        expect(read(NEBULA_HOST, KEY)).toBe(fileIn(nebula(planA).secret, KEY).content);
        expect(mode(NEBULA_HOST, KEY)).toBe(0o600);
        expect(fs.readdirSync(on(NEBULA_HOST, "/etc/nebula")).sort()).toEqual(["ca.crt", "config.yml", "host.crt", "host.key"]);

        expect(restarts()).toHaveLength(1);
        expect(restarts()[0]).toMatchObject({ exitCode: 0, unitFileSha256: sha256(fileIn(nebula(planA).public, "/etc/systemd/system/nebula.service").content) });
        expect(fleet.unitStatus(NEBULA_HOST, UNIT)).toBe("active");
        expect(fs.existsSync(pendingMarker(NEBULA_HOST, UNIT))).toBe(false);
    });

    it("second run with the same payloads: writes nothing, restarts nothing", async () => {
        const before = stamps();
        const events = fleet.serviceEvents(NEBULA_HOST).length;
        for (const payload of [nebula(planA).secret, nebula(planA).public]) {
            const result = ok(await step(NEBULA_HOST, DELIVER, payload));
            expect(wrote(result)).toEqual([]);
            expect(result.stdout).toContain("no change");
        }
        expect(stamps()).toEqual(before);
        // The public step finds nothing pending: it does not even ask systemctl.
        expect(fleet.serviceEvents(NEBULA_HOST)).toHaveLength(events);
        expect(restarts()).toHaveLength(1);
    });

    it("a changed config.yml: only it is rewritten, the previous one kept, one restart", async () => {
        const before = stamps();
        expect(wrote(ok(await step(NEBULA_HOST, DELIVER, nebula(planB).secret)))).toEqual([]);
        const result = ok(await step(NEBULA_HOST, DELIVER, nebula(planB).public));
        expect(wrote(result)).toEqual(["/etc/nebula/config.yml"]);
        const after = stamps();
        for (const file of ALL.filter((each) => each !== "/etc/nebula/config.yml")) {
            expect(after[file]).toBe(before[file]);
        }
        expect(read(NEBULA_HOST, "/etc/nebula/config.yml")).toBe(fileIn(nebula(planB).public, "/etc/nebula/config.yml").content);
        expect(read(NEBULA_HOST, "/etc/nebula/config.yml.previous")).toBe(fileIn(nebula(planA).public, "/etc/nebula/config.yml").content);
        expect(restarts()).toHaveLength(2);
        expect(fleet.unitStatus(NEBULA_HOST, UNIT)).toBe("active");
    });

    it("a failed restart fails the run and stays pending: a plain rerun of the same payload restarts", async () => {
        await fleet.setServiceBehaviour(NEBULA_HOST, UNIT, { failRestarts: 1 });
        const failed = await step(NEBULA_HOST, DELIVER, nebula(planA).public);
        expect(failed.code).not.toBe(0);
        expect(wrote(failed)).toEqual(["/etc/nebula/config.yml"]);
        expect(failed.stderr).toContain("Job for nebula.service failed");
        expect(restarts()).toHaveLength(3);
        expect(restarts()[2].exitCode).not.toBe(0);
        expect(fleet.unitStatus(NEBULA_HOST, UNIT)).toBe("failed");
        expect(fs.existsSync(pendingMarker(NEBULA_HOST, UNIT))).toBe(true);

        const before = stamps();
        const rerun = ok(await step(NEBULA_HOST, DELIVER, nebula(planA).public));
        expect(wrote(rerun)).toEqual([]);
        expect(rerun.stdout).toContain("a restart of nebula.service is pending (a key changed, or the last restart did not complete); restarting it");
        expect(rerun.stdout).toContain("restarted nebula.service; it is active");
        expect(stamps()).toEqual(before);
        expect(restarts()).toHaveLength(4);
        expect(restarts()[3].exitCode).toBe(0);
        expect(fleet.unitStatus(NEBULA_HOST, UNIT)).toBe("active");
        expect(fs.existsSync(pendingMarker(NEBULA_HOST, UNIT))).toBe(false);
    });

    it("a daemon that exits at start fails the run (not active), and the restart stays pending", async () => {
        await fleet.setServiceBehaviour(NEBULA_HOST, UNIT, { exitAtStart: true });
        const failed = await step(NEBULA_HOST, DELIVER, nebula(planB).public);
        expect(failed.code).toBe(1);
        expect(wrote(failed)).toEqual(["/etc/nebula/config.yml"]);
        expect(failed.stderr).toContain("nebula: nebula.service is not active 30s after its restart; the restart stays pending for the next run");
        expect(restarts()).toHaveLength(5);
        expect(fleet.unitStatus(NEBULA_HOST, UNIT)).toBe("failed");
        expect(fs.existsSync(pendingMarker(NEBULA_HOST, UNIT))).toBe(true);

        // Once the daemon stays up, the same payload completes the pending restart.
        await fleet.setServiceBehaviour(NEBULA_HOST, UNIT, { exitAtStart: false });
        const rerun = ok(await step(NEBULA_HOST, DELIVER, nebula(planB).public));
        expect(wrote(rerun)).toEqual([]);
        expect(rerun.stdout).toContain("restarted nebula.service; it is active");
        expect(restarts()).toHaveLength(6);
        expect(fleet.unitStatus(NEBULA_HOST, UNIT)).toBe("active");
    });

    it("a changed key alone: the secret step writes it (mode 0600, old one kept 0600) and the public step restarts", async () => {
        const before = stamps();
        const secret = ok(await step(NEBULA_HOST, DELIVER, nebula(planC).secret));
        expect(wrote(secret)).toEqual([KEY]);
        expect(read(NEBULA_HOST, KEY)).toBe(fileIn(nebula(planC).secret, KEY).content);
        expect(mode(NEBULA_HOST, KEY)).toBe(0o600);
        expect(read(NEBULA_HOST, `${KEY}.previous`)).toBe(fileIn(nebula(planA).secret, KEY).content);
        expect(mode(NEBULA_HOST, `${KEY}.previous`)).toBe(0o600);
        expect(restarts()).toHaveLength(6);
        expect(fs.existsSync(pendingMarker(NEBULA_HOST, UNIT))).toBe(true);

        // The program re-runs the public step (its trigger is the secret's hash) with the same payload.
        const files = ok(await step(NEBULA_HOST, DELIVER, nebula(planB).public));
        expect(wrote(files)).toEqual([]);
        expect(files.stdout).toContain("restarted nebula.service; it is active");
        expect(restarts()).toHaveLength(7);
        const after = stamps();
        for (const file of PUBLIC) {
            expect(after[file]).toBe(before[file]);
        }
        expect(fs.existsSync(pendingMarker(NEBULA_HOST, UNIT))).toBe(false);
    });
});

describe("control server on an existing host (control/bootstrap.sh, deliveries, control/health.sh)", () => {
    const BOOTSTRAP = "control/bootstrap.sh";
    const headscaleUrl = `https://github.com/juanfont/headscale/releases/download/${versions.headscale}/headscale_${versions.headscale.replace(/^v/, "")}_linux_amd64.deb`;
    const nebulaUrl = `https://github.com/slackhq/nebula/releases/download/${versions.nebula}/nebula-linux-amd64.tar.gz`;
    const delivery = (role: string) => {
        const found = planA.control.deliveries.find((each) => each.role === role);
        if (!found) throw new Error(`no ${role} delivery`);
        return found.payloads;
    };

    it("plans a bootstrap that mounts nothing and starts nothing, then Headscale's files and Nebula's", () => {
        expect(parsePayload(planA.control.bootstrapPayload)).toEqual({
            params: { VOLUME_DEVICE: "none", HEADSCALE_VERSION: versions.headscale, NEBULA_VERSION: versions.nebula, START: "no" },
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

    it("Headscale's then Nebula's delivery: keys for the headscale user, each service restarted once after its unit and config", async () => {
        // The headscale .deb (bootstrap) installs headscale.service; the program writes nebula.service.
        fs.writeFileSync(on(CONTROL, "/etc/systemd/system/headscale.service"), HEADSCALE_UNIT, { mode: 0o644 });
        const noiseKey = "/etc/headscale/noise_private.key";
        const derpKey = "/etc/headscale/derp_server_private.key";

        const secrets = ok(await step(CONTROL, DELIVER, delivery("headscale").secret));
        expect(wrote(secrets)).toEqual([noiseKey, derpKey]);
        for (const key of [noiseKey, derpKey]) {
            expect(read(CONTROL, key)).toBe(fileIn(delivery("headscale").secret, key).content);
            expect(mode(CONTROL, key)).toBe(0o600);
            // chown ran on the staged file before it was renamed into place.
            const owned = Object.entries(fleet.toolState(CONTROL).owners).filter(([file]) => file.startsWith(`${key}.shortcircuit.`));
            expect(owned.map(([, owner]) => owner)).toEqual([{ owner: "headscale:headscale", recursive: false }]);
        }
        expect(fleet.serviceEvents(CONTROL)).toEqual([]);
        expect(fs.existsSync(on(CONTROL, "/etc/headscale/config.yaml"))).toBe(false);

        const files = ok(await step(CONTROL, DELIVER, delivery("headscale").public));
        const headscaleFiles = ["/etc/headscale/config.yaml", "/etc/headscale/policy.hujson", "/etc/headscale/derp.yaml"];
        expect(wrote(files)).toEqual(headscaleFiles);
        for (const file of headscaleFiles) {
            expect(read(CONTROL, file)).toBe(fileIn(delivery("headscale").public, file).content);
            expect(mode(CONTROL, file)).toBe(0o644);
        }
        expect(files.stdout.indexOf("wrote /etc/headscale/config.yaml")).toBeLessThan(files.stdout.indexOf("restarted headscale.service; it is active"));
        expect(starts(CONTROL)).toEqual([expect.objectContaining({ unit: "headscale.service", verb: "restart", exitCode: 0, unitFileSha256: sha256(HEADSCALE_UNIT) })]);
        expect(fleet.unitStatus(CONTROL, "headscale.service")).toBe("active");
        expect(fleet.serviceEvents(CONTROL, "nebula.service")).toEqual([]);

        expect(wrote(ok(await step(CONTROL, DELIVER, delivery("nebula").secret)))).toEqual(["/etc/nebula/host.key"]);
        expect(starts(CONTROL)).toHaveLength(1);
        const nebulaFiles = ok(await step(CONTROL, DELIVER, delivery("nebula").public));
        expect(wrote(nebulaFiles)).toEqual(["/etc/nebula/ca.crt", "/etc/nebula/host.crt", "/etc/nebula/config.yml", "/etc/systemd/system/nebula.service"]);
        const nebulaUnit = fileIn(delivery("nebula").public, "/etc/systemd/system/nebula.service").content;
        expect(read(CONTROL, "/etc/systemd/system/nebula.service")).toBe(nebulaUnit);
        expect(read(CONTROL, "/etc/nebula/config.yml")).toBe(fileIn(delivery("nebula").public, "/etc/nebula/config.yml").content);
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
            expect(wrote(ok(await step(CONTROL, DELIVER, delivery(role).secret)))).toEqual([]);
            expect(wrote(ok(await step(CONTROL, DELIVER, delivery(role).public)))).toEqual([]);
        }
        expect(fleet.serviceEvents(CONTROL)).toHaveLength(events);
        expect(fleet.toolInvocations(CONTROL, "curl")).toHaveLength(2);
        // An unchanged key still gets its owner.
        expect(fleet.toolState(CONTROL).owners["/etc/headscale/noise_private.key"]).toEqual({ owner: "headscale:headscale", recursive: false });
    });

    it("health: asks Headscale's /health on the loopback under its own name", async () => {
        const hostname = planA.control.hostname;
        await fleet.setToolBehaviour(CONTROL, { curlResponses: { [`https://${hostname}/health`]: { body: '{"status":"pass"}' } } });
        const result = ok(await step(CONTROL, "control/health.sh", planA.control.healthPayload));
        expect(result.stdout).toBe('{"status":"pass"}\n');
        expect(fleet.toolInvocations(CONTROL, "curl").at(-1)?.argv).toEqual(expect.arrayContaining(["--resolve", `${hostname}:443:127.0.0.1`, `https://${hostname}/health`]));
    });
});

describe("derper on a relay (derp/install.sh, then its delivery)", () => {
    const INSTALL = "derp/install.sh";
    const version = versions.tailscale;
    const target = `/usr/local/lib/derper/${version}/derper`;
    const relay = () => planA.relays[0];

    it("fails with a clear message when Go is missing", async () => {
        expect(parsePayload(relay().installPayload)).toEqual({ params: { VERSION: version }, files: [] });
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

    it("installs the pinned derper with go install once, and links it", async () => {
        const first = ok(await step(RELAY, INSTALL, relay().installPayload));
        expect(first.stdout).toContain(`derper ${version} at ${target}`);
        const calls = fleet.toolInvocations(RELAY, "go");
        expect(calls.map((call) => [call.argv, call.env, call.exitCode])).toEqual([
            [["install", `tailscale.com/cmd/derper@${version}`], { GOBIN: path.dirname(target) }, 0],
        ]);
        expect(fs.statSync(on(RELAY, target)).mode & 0o111).not.toBe(0);
        expect(fs.readlinkSync(on(RELAY, "/usr/local/bin/derper"))).toBe(target);
        expect(fs.statSync(on(RELAY, "/var/lib/derper/certs")).isDirectory()).toBe(true);
        const run = ok(await fleet.ssh(RELAY, "derper -version"));
        expect(run.stdout).toContain(version);

        const second = ok(await step(RELAY, INSTALL, relay().installPayload));
        expect(second.stdout).toContain(`derper ${version} at ${target}`);
        expect(fleet.toolInvocations(RELAY, "go")).toHaveLength(1);
    });

    it("delivers derper's unit and self-signed pair and restarts it once", async () => {
        const payloads = relay().deliveries[0].payloads;
        const secret = ok(await step(RELAY, DELIVER, payloads.secret));
        expect(wrote(secret)).toEqual(filesOf(payloads.secret).map((file) => file.target));
        const files = ok(await step(RELAY, DELIVER, payloads.public));
        expect(wrote(files)).toEqual(filesOf(payloads.public).map((file) => file.target));
        for (const file of [...filesOf(payloads.secret), ...filesOf(payloads.public)]) {
            expect(read(RELAY, file.target)).toBe(file.content);
            expect(mode(RELAY, file.target)).toBe(file.mode);
        }
        expect(starts(RELAY, "derper.service").map((event) => [event.verb, event.exitCode])).toEqual([["restart", 0]]);
        expect(fleet.unitStatus(RELAY, "derper.service")).toBe("active");
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
