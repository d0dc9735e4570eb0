import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { HEADSCALE_FILES, renderDerpMapYaml, renderHeadscaleConfigYaml, renderHeadscalePolicy } from "../../../components/control/headscale";
import { LITESTREAM_BINARY, LITESTREAM_FILES } from "../../../components/control/litestream";
import { planControlServer } from "../../../components/control/plan";
import { plainValues } from "../../../components/hostPlan";
import type { Fleet } from "../../../stacks/schema";
import { parseFleet } from "../../../stacks/validate";
import { rawFleet, type Raw } from "../../support/fixtures";
import {
    litestreamBinary,
    litestreamEnv,
    replicaOn,
    runBounded,
    startReplicate,
    startS3,
    waitReplicated,
    writeLitestreamConfig,
    type Replicator,
    type S3Server,
} from "../../support/litestreamLab";
import { stopChildren } from "../../support/processes";
import { TailnetClients, type HsNode, type Status, type TailnetNode } from "../../support/tailnetClients";
import { machineHasGo } from "../../support/tools";
import {
    buildLan,
    deleteOwnNamespaces,
    exited,
    makeCa,
    nsName,
    removeLeftovers,
    sctnNamespaces,
    stop,
    tail,
    TEMP_PREFIX,
    waitFor,
    type Daemon,
} from "../../support/tailnetLab";

/*
 * Rebuilding the control server from nothing: the pinned headscale on the lab stack's rendered
 * config, three real tailscaled nodes, the pinned Litestream replicating headscale's database
 * (with the config the program renders) into a real S3 server (versitygw) on loopback. The
 * control host's data is then destroyed entirely (database, WAL, shm, Litestream's local state:
 * what a lost volume takes), the restore unit's own commands bring the database back, and
 * headscale starts on it: every node reconnects with its old key and address, though no node
 * could enroll again, and the node enrolled last is there.
 *
 * The restore runs exactly what the plan's headscale-restore.service runs (its ExecStartPre and
 * ExecStart lines, read from the rendered unit), with only the paths swapped for this run's temp
 * directory; systemd itself does not run here. Litestream runs in the root namespace on loopback
 * beside versitygw; headscale and the nodes in network namespaces on one bridged LAN.
 *
 * Needs root, /dev/net/tun, iproute2, openssl and the Go-built tools (build-tailnet-tools.sh,
 * build-litestream.sh). Skips only on a machine without Go.
 */

jest.setTimeout(120_000);

const hasGo = machineHasGo();
if (!hasGo) {
    console.warn("litestream suite skipped: this machine has no Go toolchain to build headscale, tailscaled, litestream and versitygw with");
}
const describeWithGo = hasGo ? describe : describe.skip;

const HS_NAME = "hs.sctn.test";
const HS_URL = `https://${HS_NAME}`;
const HS_ADDRESS = "192.168.50.250";
const HS_SHORT = "lhs";

type TestNode = TailnetNode;

/** The node the test adds last: the change that must survive the rebuild. */
const LATE_NODE = "lab-late-01";
const nodes: TestNode[] = [
    { name: "lab-server-01", short: "l1", lan: "192.168.50.11", dir: "", socket: "" },
    { name: "lab-agent-01", short: "l2", lan: "192.168.50.21", dir: "", socket: "" },
    { name: LATE_NODE, short: "l3", lan: "192.168.50.31", dir: "", socket: "" },
];
const [n1, n2, late] = nodes as [TestNode, TestNode, TestNode];
const ns = (short: string): string => nsName(short);

let tmp = "";
let caFile = "";
let hsConfig = "";
let hsDir = "";
let database = "";
let headscale: Daemon | undefined;
let s3: S3Server | undefined;
let replicator: Replicator | undefined;
let litestreamConfig = "";
let authKey = "";
let authKeyId = "";
let fleet: Fleet;
let suiteStart = 0;

const NOISE_KEY = `privkey:${randomBytes(32).toString("hex")}`;
const DERP_KEY = `privkey:${randomBytes(32).toString("hex")}`;

const daemons = (): Daemon[] => [headscale, ...nodes.map((n) => n.daemon)].filter((d): d is Daemon => d !== undefined);

function logs(): string {
    const litestreamLog = replicator && fs.existsSync(replicator.log) ? fs.readFileSync(replicator.log, "utf8").split("\n").slice(-20).join("\n") : "";
    return [...daemons().map((d) => tail(d)), `--- litestream\n${litestreamLog}`].join("\n");
}

/** The lab stack with a replica, as an operator's stack file has it. */
function labWithReplica(): Fleet {
    const raw: Raw = rawFleet("lab");
    raw.controlServer.replica ??= {
        bucket: "shortcircuit-lab-headscale",
        endpoint: "https://sfo3.digitaloceanspaces.com",
        region: "sfo3",
        path: "headscale/lab",
    };
    return parseFleet(raw).fleet;
}

// ---------------------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------------------

const clients = new TailnetClients({ caFile: () => caFile, hsConfig: () => hsConfig, logs, iface: "tailscale0" });
const hs = (args: readonly string[]): Promise<string> => clients.hs(args);
const hsJson = <T>(args: readonly string[]): Promise<T> => clients.hsJson<T>(args);
const hsNodes = (): Promise<HsNode[]> => clients.hsNodes();
const status = (node: TestNode): Promise<Status> => clients.status(node);
const waitRunning = (node: TestNode, timeoutMs: number): Promise<Status> => clients.waitRunning(node, timeoutMs);
const pingUntilReply = (from: TestNode, to: string): Promise<string> => clients.pingUntilReply(from, to);
const startTailscaled = (node: TestNode): void => clients.startTailscaled(node);

const identity = (list: HsNode[]): unknown[] => list.map((n) => [String(n.id), n.name, n.node_key, n.machine_key, [...n.ip_addresses].sort()]).sort();

const ipv4 = (s: Status): string => (s.Self.TailscaleIPs ?? []).find((a) => !a.includes(":")) ?? "";

async function up(node: TestNode): Promise<void> {
    const r = await clients.ts(
        node,
        ["up", `--login-server=${HS_URL}`, `--auth-key=${authKey}`, `--hostname=${node.name}`, "--accept-dns=false", "--accept-routes=false", "--timeout=60s"],
        70_000,
    );
    if (r.status !== 0) {
        throw new Error(`tailscale up on ${node.name} exited ${r.status}:\n${r.stdout}${r.stderr}\n${logs()}`);
    }
}

// ---------------------------------------------------------------------------------------------
// Headscale, Litestream and the restore unit's commands
// ---------------------------------------------------------------------------------------------

async function startHeadscale(): Promise<void> {
    headscale = await clients.startHeadscale(ns(HS_SHORT), path.join(hsDir, "headscale.log"), ns(n1.short), HS_URL);
}

function startLitestream(): void {
    replicator = startReplicate(litestreamConfig, litestreamEnv(s3!), path.join(tmp, "litestream.log"));
}

/** A unit file's values for `key`, in order (`Key=value` lines). */
function unitValues(unit: string, key: string): string[] {
    return unit
        .split("\n")
        .filter((line) => line.startsWith(`${key}=`))
        .map((line) => line.slice(key.length + 1));
}

/** The plan's restore unit, as delivered to the control host. */
function plannedRestoreUnit(): string {
    const plan = planControlServer(
        fleet,
        plainValues,
        "lab-control",
        { configYaml: "", precheckConfigYaml: "" },
        {
            noiseKey: NOISE_KEY,
            derpKey: DERP_KEY,
            nebula: { certPem: "", keyPem: "", networks: [] },
            nebulaCaCertPem: "",
            relayCertNames: {},
            replica: { accessKeyId: "unused", secretAccessKey: "unused" },
        },
    );
    const file = plan.deliveries.flatMap((each) => each.publicFiles).find((each) => each.path === LITESTREAM_FILES.restoreUnit);
    if (!file) {
        throw new Error("the plan delivers no restore unit for a stack with a replica");
    }
    return file.content;
}

/**
 * headscale-restore.service's ExecStartPre and ExecStart, with the production paths swapped for
 * this run's (the binary, the config, the database): what systemd runs before headscale starts.
 */
async function runRestoreUnit(): Promise<{ status: number; output: string }> {
    const unit = plannedRestoreUnit();
    const swap = (line: string): string =>
        line
            .replaceAll(LITESTREAM_BINARY, litestreamBinary())
            .replaceAll(LITESTREAM_FILES.config, litestreamConfig)
            .replaceAll(HEADSCALE_FILES.database, database);
    const commands = [...unitValues(unit, "ExecStartPre"), ...unitValues(unit, "ExecStart")].map(swap);
    expect(commands).toHaveLength(2);
    let output = "";
    for (const command of commands) {
        // systemd splits ExecStart on blanks and honours single quotes; bash -c does the same for these lines.
        const result = await runBounded("bash", ["-c", `exec ${command}`], litestreamEnv(s3!), 120_000);
        output += result.output;
        if (result.status !== 0) {
            return { status: result.status, output };
        }
    }
    return { status: 0, output };
}

function sha256File(file: string): string {
    return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/** Node names in a copy of headscale's database restored from the replica (litestream restore -o). */
async function namesInReplica(): Promise<string[]> {
    const copy = path.join(tmp, `probe-${Date.now()}.sqlite`);
    try {
        const result = await runBounded(litestreamBinary(), ["restore", "-config", litestreamConfig, "-o", copy, database], litestreamEnv(s3!), 60_000);
        if (result.status !== 0) {
            throw new Error(`litestream restore -o exited ${result.status}: ${result.output}`);
        }
        const db = new DatabaseSync(copy, { readOnly: true });
        try {
            return (db.prepare("SELECT hostname FROM nodes ORDER BY id").all() as { hostname: string }[]).map((row) => row.hostname);
        } finally {
            db.close();
        }
    } finally {
        for (const suffix of ["", "-wal", "-shm"]) {
            fs.rmSync(`${copy}${suffix}`, { force: true });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Setup and teardown
// ---------------------------------------------------------------------------------------------

async function setUp(): Promise<void> {
    if (process.getuid?.() !== 0) {
        throw new Error("the litestream suite needs root (network namespaces, veth, /dev/net/tun); CI runs it as root");
    }
    if (!fs.existsSync("/dev/net/tun")) {
        throw new Error("/dev/net/tun is missing: tailscaled cannot create tailscale0");
    }
    removeLeftovers();
    fleet = labWithReplica();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${TEMP_PREFIX}${process.pid}-`));
    fs.mkdirSync(path.join(tmp, "ca"), { recursive: true });
    const { ca } = await makeCa(path.join(tmp, "ca"), HS_NAME);
    caFile = ca.cert;
    s3 = await startS3(path.join(tmp, "s3"));
    await buildLan(
        "lsw",
        [{ short: HS_SHORT, address: HS_ADDRESS }, ...nodes.map((n) => ({ short: n.short, address: n.lan }))],
        24,
        `${HS_ADDRESS} ${HS_NAME}\n`,
    );

    // The volume stand-in: everything headscale and Litestream keep on the control host.
    hsDir = path.join(tmp, "hs");
    const volume = path.join(hsDir, "volume");
    fs.mkdirSync(volume, { recursive: true });
    database = path.join(volume, "db.sqlite");
    const paths = {
        config: path.join(hsDir, "config.yaml"),
        derpMap: path.join(hsDir, "derp.yaml"),
        policy: path.join(hsDir, "policy.hujson"),
        noiseKey: path.join(hsDir, "noise_private.key"),
        derpKey: path.join(hsDir, "derp_server_private.key"),
        database,
        acmeCache: path.join(volume, "cache"),
        socket: path.join(hsDir, "headscale.sock"),
    };
    hsConfig = paths.config;
    fs.writeFileSync(
        hsConfig,
        renderHeadscaleConfigYaml(fleet, {
            paths,
            listenAddr: `${HS_ADDRESS}:443`,
            serverUrl: HS_URL,
            tls: { certPath: path.join(tmp, "ca", `${HS_NAME}.crt`), keyPath: path.join(tmp, "ca", `${HS_NAME}.key`) },
            stunListenAddr: `${HS_ADDRESS}:${fleet.controlServer.derp.stunPort}`,
        }),
    );
    // The relay region's DERP server does not run here: netcheck finds it unreachable and the
    // nodes use the embedded region 900 (or direct paths, which nothing blocks here).
    fs.writeFileSync(paths.derpMap, renderDerpMapYaml(fleet));
    fs.writeFileSync(paths.policy, renderHeadscalePolicy());
    fs.writeFileSync(paths.noiseKey, `${NOISE_KEY}\n`, { mode: 0o600 });
    fs.writeFileSync(paths.derpKey, `${DERP_KEY}\n`, { mode: 0o600 });
    litestreamConfig = writeLitestreamConfig(tmp, replicaOn(s3, { path: fleet.controlServer.replica!.path }), database);

    for (const node of nodes) {
        node.dir = path.join(tmp, node.short);
        node.socket = path.join(node.dir, "tailscaled.sock");
        fs.mkdirSync(path.join(node.dir, "state"), { recursive: true });
    }
}

async function tearDown(): Promise<void> {
    try {
        await stop(daemons());
        await stopChildren(replicator ? [replicator.child] : []);
        await s3?.stop();
    } finally {
        deleteOwnNamespaces();
        if (tmp && !process.env.SCTN_KEEP_TMP) {
            fs.rmSync(tmp, { recursive: true, force: true });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

describeWithGo("Headscale's database replicated by Litestream, restored on a host that lost it (root, netns, Go-built tools, S3 on loopback)", () => {
    beforeAll(async () => {
        suiteStart = Date.now();
        await setUp();
    }, 90_000);

    afterAll(async () => {
        await tearDown();
        console.log(`litestream suite: ${((Date.now() - suiteStart) / 1000).toFixed(1)} s`);
        expect(
            [...daemons(), ...(replicator ? [{ name: "litestream", child: replicator.child }] : []), ...(s3 ? [{ name: "versitygw", child: s3.child }] : [])]
                .filter((d) => !exited(d.child))
                .map((d) => d.name),
        ).toEqual([]);
        expect(sctnNamespaces().filter((name) => name.endsWith(`-${process.pid}`))).toEqual([]);
    }, 60_000);

    it("1. on a first deployment (no database, an empty replica) the restore unit succeeds and leaves no file; headscale starts on a new database and Litestream replicates it", async () => {
        const first = await runRestoreUnit();
        expect(first).toMatchObject({ status: 0 });
        expect(fs.existsSync(database)).toBe(false);
        await startHeadscale();
        expect(fs.existsSync(database)).toBe(true);
        startLitestream();
        await waitReplicated(litestreamConfig, database, litestreamEnv(s3!), 30_000);
    });

    it("2. enrolls two nodes, then a third (the last change); the replica holds it within a bounded wait", async () => {
        await hs(["users", "create", "lab"]);
        const user = (await hsJson<{ id: string | number; name: string }[]>(["users", "list"])).find((u) => u.name === "lab");
        const created = await hsJson<{ id: string | number; key: string }>([
            "preauthkeys",
            "create",
            "--user",
            String(user!.id),
            "--reusable",
            "--expiration",
            "1h",
        ]);
        authKey = created.key;
        authKeyId = String(created.id);
        for (const node of [n1, n2]) {
            startTailscaled(node);
        }
        await Promise.all([n1, n2].map(up));
        await Promise.all([n1, n2].map((node) => waitRunning(node, 30_000)));
        // The change made last: a new node enrolls.
        startTailscaled(late);
        await up(late);
        await waitRunning(late, 30_000);
        expect((await hsNodes()).map((n) => n.name).sort()).toEqual(nodes.map((n) => n.name).sort());
        // Event-based, bounded: a copy restored from the replica lists the late node.
        const names = await waitFor(
            `the replica to hold ${LATE_NODE}`,
            async () => {
                const listed = await namesInReplica();
                return listed.includes(LATE_NODE) ? listed : undefined;
            },
            { timeoutMs: 30_000, intervalMs: 250, attempts: 60, context: logs },
        );
        expect(names.sort()).toEqual(nodes.map((n) => n.name).sort());
    });

    it("3. after the control host loses all its data, the restore unit brings the database back; every node reconnects without re-enrolling, keeps its key and address, and the last node is there", async () => {
        const before = await hsNodes();
        const statusBefore = await Promise.all(nodes.map(status));
        // No node could enroll again: the only pre-auth key is expired before the loss.
        await hs(["preauthkeys", "expire", "--id", authKeyId]);
        // Everything up to the expiry is in the replica before the host is lost.
        await waitReplicated(litestreamConfig, database, litestreamEnv(s3!), 30_000);

        // The host is lost: both processes die at once, and the volume is gone.
        headscale!.child.kill("SIGKILL");
        replicator!.child.kill("SIGKILL");
        await stopChildren([headscale!.child, replicator!.child]);
        const volume = path.dirname(database);
        expect(fs.readdirSync(volume).sort()).toEqual(expect.arrayContaining(["db.sqlite", "db.sqlite-wal", ".db.sqlite-litestream"]));
        fs.rmSync(volume, { recursive: true, force: true });
        fs.mkdirSync(volume);

        const restore = await runRestoreUnit();
        expect(restore).toMatchObject({ status: 0 });
        expect(fs.existsSync(database)).toBe(true);

        await startHeadscale();
        startLitestream();
        await waitFor(
            "every node to be online in headscale again",
            async () => ((await hsNodes()).filter((n) => n.online).length === nodes.length ? true : undefined),
            { timeoutMs: 60_000, intervalMs: 500, context: logs },
        );
        const after = await hsNodes();
        expect(identity(after)).toEqual(identity(before));
        expect(after.map((n) => n.name)).toContain(LATE_NODE);
        const keys = await hsJson<{ id: string | number; expiration?: unknown }[]>(["preauthkeys", "list"]);
        expect(keys.map((key) => String(key.id))).toContain(authKeyId);

        for (const [i, node] of nodes.entries()) {
            const s = await waitRunning(node, 30_000);
            expect(s.Self.PublicKey).toBe(statusBefore[i].Self.PublicKey);
            expect(ipv4(s)).toBe(ipv4(statusBefore[i]));
        }
        expect(await pingUntilReply(n1, ipv4(statusBefore[2]))).toContain(`bytes from ${ipv4(statusBefore[2])}`);
        expect(await pingUntilReply(late, ipv4(statusBefore[1]))).toContain(`bytes from ${ipv4(statusBefore[1])}`);
    });

    it("4. never overwrites a database that exists, even when the replica is unreachable", async () => {
        // A change after the rebuild: the replica and the local database now agree again.
        await waitReplicated(litestreamConfig, database, litestreamEnv(s3!), 30_000);
        await stop([headscale!]);
        await stopChildren([replicator!.child]);
        const before = sha256File(database);
        const mtime = fs.statSync(database).mtimeMs;

        const again = await runRestoreUnit();
        expect(again).toMatchObject({ status: 0 });
        expect(again.output).toContain("database already exists, skipping");
        expect(sha256File(database)).toBe(before);
        expect(fs.statSync(database).mtimeMs).toBe(mtime);

        // With the S3 server gone, a host that has its database still starts (no S3 call is made).
        await s3!.stop();
        const offline = await runRestoreUnit();
        expect(offline).toMatchObject({ status: 0 });
        expect(sha256File(database)).toBe(before);
        // ...but a host without one refuses to start headscale on an empty database.
        fs.renameSync(database, `${database}.kept`);
        const refused = await runRestoreUnit();
        expect(refused.status).not.toBe(0);
        expect(fs.existsSync(database)).toBe(false);
        fs.renameSync(`${database}.kept`, database);
    });
});
