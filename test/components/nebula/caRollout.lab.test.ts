import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { renderNebulaConfigYaml } from "../../../components/nebula/config";
import { nebulaMembers, type NebulaMember } from "../../../stacks/nebulaMembers";
import type { NebulaCaMaterial } from "../../../stacks/existingNebulaCa";
import { parseFleet } from "../../../stacks/validate";
import { runUnderMocks, valueOf } from "../../support/pulumiMocks";
import { rawFleet, type Raw } from "../../support/fixtures";
import { exited, sleep, stopChildren, type ToolResult } from "../../support/processes";
import { labFleetWithAdmins, namespaceJanitor, suiteTools } from "../../support/netnsSuite";

/*
 * Issue 16, "Adopt the running fleet", with real Nebula (Debian's 1.6.1) in network namespaces
 * (the shape of mesh.test.ts, own names: scnca-*):
 *
 * 1. A mesh whose CA and host certificates were made with `nebula-cert` (outside the program) is
 *    adopted with `pki.ca: existing`: each host in turn gets the program's new key and
 *    certificate from that same CA and restarts Nebula.
 * 2. It is rotated to a CA the program makes: stage trust (ca.crt holds both CAs), stage sign
 *    (certificates from the new CA), done (only the new CA), each stage rolled host by host
 *    with a restart.
 * 3. The same rotation again (generation 1 → 2), each step a SIGHUP reload instead of a restart.
 *
 * The files come from the NebulaPki component itself under mocks, with the key resources pinned
 * (as Pulumi state keeps them across runs). A `ping -i 0.2` from node A to node B runs through
 * each rollout; its longest gap and loss are printed, not asserted (restarting A or B costs pings).
 * What is asserted: after every host's step, the mesh is whole (each admin host reaches every
 * other member within a bounded retry).
 */

jest.setTimeout(300_000);

const SETUP_HINT = "is not on PATH: run scripts/setup.sh (it installs Debian's nebula, iproute2 and iputils-ping)";
const NS_PREFIX = "scnca-";
const TEMP_PREFIX = "scnca-rollout-";
const DAY_MS = 86_400_000;
const NOW = new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS);
const PING_INTERVAL_S = 0.2;

const NODE_A = "lab-server-01";
const NODE_B = "lab-agent-01";

interface MeshHost {
    member: string;
    short: string;
    underlay: string;
}

const HOSTS: readonly MeshHost[] = [
    { member: "shortcircuit-lab-sfo3", short: "sfo3", underlay: "198.19.0.1" },
    { member: "lab-relay-01", short: "relay", underlay: "198.19.0.2" },
    { member: NODE_A, short: "srv", underlay: "198.19.0.11" },
    { member: NODE_B, short: "agt", underlay: "198.19.0.21" },
];

const nsName = (short: string): string => `${NS_PREFIX}${short}-${process.pid}`;
const SWITCH_NS = nsName("sw");

const tools = suiteTools(SETUP_HINT);
const { tool, must, toolAsync } = tools;

const fleet = labFleetWithAdmins([NODE_A, NODE_B]);
const members = nebulaMembers(fleet);
const memberOf = (name: string): NebulaMember => members.find((m) => m.name === name)!;
const hostOf = (name: string): MeshHost => HOSTS.find((host) => host.member === name)!;
/** Pairs ICMP may cross (from an admin host), covering every member. */
const PAIRS: [string, string][] = [
    [NODE_A, NODE_B],
    [NODE_B, NODE_A],
    ...HOSTS.filter((h) => h.member !== NODE_A && h.member !== NODE_B).flatMap((h): [string, string][] => [
        [NODE_A, h.member],
        [NODE_B, h.member],
    ]),
];

// --- Files: what the NebulaPki component issues, keys pinned as state pins them -------------

interface HostFiles {
    ca: string;
    cert: string;
    key: string;
}

/** A stable Ed25519 PKCS#8 key per (state, resource name): what Pulumi state would hand back on each run. */
function pinnedKey(label: string): string {
    const seed = createHash("sha256").update(label).digest();
    const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
    return `-----BEGIN PRIVATE KEY-----\n${der.toString("base64")}\n-----END PRIVATE KEY-----\n`;
}

async function programFiles(
    pki: Record<string, unknown>,
    existingCa: NebulaCaMaterial | undefined,
    state: string,
): Promise<{ files: Record<string, HostFiles>; fingerprint: string }> {
    const raw: Raw = rawFleet("lab");
    raw.overlays.nebula.pki = { ...raw.overlays.nebula.pki, ...pki };
    const outputs = ({ type, name }: { type: string; name: string }): Record<string, unknown> | undefined =>
        type === "tls:index/privateKey:PrivateKey" ? { privateKeyPemPkcs8: pinnedKey(`${state}:${name}`) } : undefined;
    const run = await runUnderMocks({ stack: "lab", outputs }, raw, async () => {
        const { NebulaPki } = await import("../../../components/nebula/nebulaPki");
        const parsed = parseFleet(raw).fleet;
        const component = new NebulaPki("nebula", { fleet: parsed, members: nebulaMembers(fleet), now: NOW, existingCa });
        const files: Record<string, HostFiles> = {};
        const ca = await valueOf(component.trustBundlePem);
        for (const [name, identity] of Object.entries(component.identities)) {
            files[name] = { ca, cert: await valueOf(identity.certPem), key: await valueOf(identity.keyPem) };
        }
        return { files, fingerprint: await valueOf(component.caFingerprint) };
    });
    if (!run.result) {
        throw new Error(`NebulaPki failed under mocks: ${String(run.error)}`);
    }
    return run.result;
}

// --- Namespaces and nebula processes -------------------------------------------------------

interface Running {
    host: MeshHost;
    child: ChildProcess;
    log: string;
}

const running = new Map<string, Running>();
let tmp = "";

const dirOf = (host: MeshHost): string => path.join(tmp, host.member);

const { namespaces: ours, deleteNamespace, removeLeftovers } = namespaceJanitor(tools, NS_PREFIX, TEMP_PREFIX);

function logs(): string {
    return [...running.values()]
        .map(({ host, log }) => `--- nebula ${host.member}:\n${(fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "").split("\n").slice(-15).join("\n")}`)
        .join("\n");
}

function buildUnderlay(): void {
    must("ip", ["netns", "add", SWITCH_NS]);
    must("ip", ["-n", SWITCH_NS, "link", "add", "br-ca", "type", "bridge"]);
    must("ip", ["-n", SWITCH_NS, "link", "set", "br-ca", "up"]);
    for (const host of HOSTS) {
        const ns = nsName(host.short);
        must("ip", ["netns", "add", ns]);
        must("ip", ["-n", SWITCH_NS, "link", "add", `q-${host.short}`, "type", "veth", "peer", "name", "eth0", "netns", ns]);
        must("ip", ["-n", SWITCH_NS, "link", "set", `q-${host.short}`, "master", "br-ca", "up"]);
        must("ip", ["-n", ns, "link", "set", "lo", "up"]);
        must("ip", ["-n", ns, "addr", "add", `${host.underlay}/24`, "dev", "eth0"]);
        must("ip", ["-n", ns, "link", "set", "eth0", "up"]);
    }
}

function writeFiles(host: MeshHost, files: HostFiles): void {
    const dir = dirOf(host);
    fs.mkdirSync(dir, { recursive: true });
    // As deliver-files.sh installs: each file replaced whole (rename), so nebula never reads half a file.
    for (const [name, content, mode] of [
        ["ca.crt", files.ca, 0o644],
        ["host.crt", files.cert, 0o644],
        ["host.key", files.key, 0o600],
    ] as const) {
        fs.writeFileSync(path.join(dir, `${name}.new`), content, { mode });
        fs.renameSync(path.join(dir, `${name}.new`), path.join(dir, name));
    }
}

function startNebula(host: MeshHost): void {
    const dir = dirOf(host);
    const config = path.join(dir, "config.yml");
    const endpointOverride = (light: NebulaMember): string => `${hostOf(light.name).underlay}:${fleet.overlays.nebula.listenPort}`;
    fs.writeFileSync(config, renderNebulaConfigYaml(fleet, members, memberOf(host.member), { pkiDir: dir, endpointOverride }));
    const log = path.join(dir, "nebula.log");
    const fd = fs.openSync(log, "a");
    try {
        const child = spawn("ip", ["netns", "exec", nsName(host.short), "nebula", "-config", config], { stdio: ["ignore", fd, fd] });
        child.on("error", () => undefined);
        running.set(host.member, { host, child, log });
    } finally {
        fs.closeSync(fd);
    }
}

async function waitForInterface(host: MeshHost): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
        const proc = running.get(host.member)!;
        if (exited(proc.child)) {
            throw new Error(`nebula for ${host.member} exited\n${logs()}`);
        }
        const addr = tool("ip", ["-n", nsName(host.short), "-o", "addr", "show", "dev", fleet.overlays.nebula.interface]);
        if (addr.status === 0 && addr.output.includes(`inet ${memberOf(host.member).addressWithPrefix} `)) {
            return;
        }
        if (Date.now() > deadline) {
            throw new Error(`nebula0 did not come up on ${host.member} within 20 s\n${logs()}`);
        }
        await sleep(200);
    }
}

/** systemctl restart: stop (SIGTERM, bounded), start with the files now on disk. */
async function restart(host: MeshHost): Promise<void> {
    await stopChildren([running.get(host.member)!.child]);
    startNebula(host);
    await waitForInterface(host);
}

/** systemctl reload (the unit's ExecReload: kill -HUP $MAINPID). `ip netns exec` execs nebula, so the child's pid is nebula's. */
async function reload(host: MeshHost): Promise<void> {
    const { child, log } = running.get(host.member)!;
    const before = fs.readFileSync(log, "utf8").length;
    child.kill("SIGHUP");
    const deadline = Date.now() + 10_000;
    // Nebula 1.6 logs both on every reload: the CA pool and the host's certificate and key re-read from disk.
    const reloaded = (text: string): boolean =>
        /Caught HUP, reloading config/.test(text) && /Trusted CA certificates refreshed/.test(text) && /Client cert refreshed from disk/.test(text);
    while (!reloaded(fs.readFileSync(log, "utf8").slice(before))) {
        if (Date.now() > deadline) {
            throw new Error(`nebula on ${host.member} logged no reload within 10 s\n${logs()}`);
        }
        await sleep(100);
    }
    await sleep(300);
    const text = fs.readFileSync(log, "utf8").slice(before);
    if (/level=error/.test(text)) {
        throw new Error(`nebula on ${host.member} logged an error on reload:\n${text}`);
    }
}

/** The mesh is whole: every pair in PAIRS answers a ping within 40 tries (each ≤ 1 s + 0.25 s pause). */
async function assertMeshWhole(step: string): Promise<void> {
    for (const [from, to] of PAIRS) {
        let last: ToolResult = { status: -1, output: "" };
        let ok = false;
        for (let attempt = 0; attempt < 40 && !ok; attempt++) {
            last = await toolAsync("ip", ["netns", "exec", nsName(hostOf(from).short), "ping", "-n", "-c", "1", "-W", "1", memberOf(to).address], 5_000);
            ok = last.status === 0;
            if (!ok) {
                await sleep(250);
            }
        }
        if (!ok) {
            throw new Error(`after ${step}: ${from} cannot reach ${to} over Nebula:\n${last.output}\n${logs()}`);
        }
    }
}

// --- The continuous ping ------------------------------------------------------------------

interface PingRun {
    stop(): Promise<{ sent: number; received: number; lost: number; longestGapS: number }>;
}

function continuousPing(maxSeconds: number): PingRun {
    const child = spawn(
        "ip",
        [
            "netns",
            "exec",
            nsName(hostOf(NODE_A).short),
            "ping",
            "-n",
            "-i",
            String(PING_INTERVAL_S),
            "-W",
            "1",
            "-w",
            String(maxSeconds),
            memberOf(NODE_B).address,
        ],
        {
            stdio: ["ignore", "pipe", "pipe"],
        },
    );
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.on("error", () => undefined);
    return {
        async stop() {
            child.kill("SIGINT");
            for (let i = 0; i < 50 && !exited(child); i++) {
                await sleep(100);
            }
            if (!exited(child)) {
                child.kill("SIGKILL");
            }
            const seqs = [...output.matchAll(/icmp_seq=(\d+) ttl=/g)].map((m) => Number(m[1]));
            const sent = Number(/(\d+) packets transmitted/.exec(output)?.[1] ?? Math.max(0, ...seqs));
            const received = new Set(seqs).size;
            // The longest run of unanswered sequence numbers, as time: (missing + 1) intervals between two replies.
            const sorted = [...new Set(seqs)].sort((a, b) => a - b);
            let longest = 0;
            for (let i = 1; i < sorted.length; i++) {
                longest = Math.max(longest, sorted[i] - sorted[i - 1]);
            }
            if (sorted.length > 0) {
                longest = Math.max(longest, sorted[0], sent - sorted[sorted.length - 1]);
            }
            return { sent, received, lost: sent - received, longestGapS: Number((longest * PING_INTERVAL_S).toFixed(1)) };
        },
    };
}

async function rollout(name: string, stages: { stage: string; files: Record<string, HostFiles> }[], step: (host: MeshHost) => Promise<void>): Promise<void> {
    const ping = continuousPing(240);
    await sleep(1000);
    const perStage: string[] = [];
    for (const { stage, files } of stages) {
        const started = Date.now();
        for (const host of HOSTS) {
            writeFiles(host, files[host.member]);
            await step(host);
            await assertMeshWhole(`${name}, stage ${stage}, ${host.member}`);
        }
        perStage.push(`${stage} ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
    await sleep(1000);
    const result = await ping.stop();
    console.log(
        `[caRollout] ${name}: ping ${NODE_A} → ${NODE_B} every ${PING_INTERVAL_S} s: sent ${result.sent}, received ${result.received}, lost ${result.lost}, longest gap ${result.longestGapS} s (stages: ${perStage.join(", ")})`,
    );
    expect(result.received).toBeGreaterThan(0);
}

// --- Setup: a mesh made with nebula-cert, outside the program -------------------------------

let operatorCa: NebulaCaMaterial = { certPem: "", keyPem: "" };

beforeAll(async () => {
    if (process.getuid?.() !== 0) {
        throw new Error("the Nebula CA rollout test needs root (network namespaces, /dev/net/tun)");
    }
    must("nebula", ["-version"]);
    must("nebula-cert", ["-version"]);
    removeLeftovers();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${TEMP_PREFIX}${process.pid}-`));
    const caDir = path.join(tmp, "operator-ca");
    fs.mkdirSync(caDir);
    must("nebula-cert", ["ca", "-name", "home CA", "-out-crt", path.join(caDir, "ca.crt"), "-out-key", path.join(caDir, "ca.key")]);
    operatorCa = { certPem: fs.readFileSync(path.join(caDir, "ca.crt"), "utf8"), keyPem: fs.readFileSync(path.join(caDir, "ca.key"), "utf8") };
    buildUnderlay();
    for (const host of HOSTS) {
        const member = memberOf(host.member);
        const dir = dirOf(host);
        fs.mkdirSync(dir, { recursive: true });
        fs.copyFileSync(path.join(caDir, "ca.crt"), path.join(dir, "ca.crt"));
        must("nebula-cert", [
            "sign",
            ...["-ca-crt", path.join(caDir, "ca.crt"), "-ca-key", path.join(caDir, "ca.key")],
            ...["-name", member.name, "-ip", member.addressWithPrefix, "-groups", member.groups.join(",")],
            ...["-out-crt", path.join(dir, "host.crt"), "-out-key", path.join(dir, "host.key")],
        ]);
        startNebula(host);
    }
    for (const host of HOSTS) {
        await waitForInterface(host);
    }
    await assertMeshWhole("the nebula-cert mesh came up");
});

afterAll(async () => {
    try {
        await stopChildren([...running.values()].map(({ child }) => child));
    } finally {
        for (const ns of [...HOSTS.map((host) => nsName(host.short)), SWITCH_NS]) {
            if (ours().includes(ns)) {
                deleteNamespace(ns);
            }
        }
        if (tmp) {
            fs.rmSync(tmp, { recursive: true, force: true });
        }
    }
    expect(ours()).toEqual([]);
});

it("adopts a mesh on a nebula-cert CA: program-issued keys and certificates from that CA, one host restart at a time", async () => {
    const adopted = await programFiles({ ca: "existing" }, operatorCa, "state-1");
    expect(adopted.fingerprint).toBe(
        must("nebula-cert", ["print", "-json", "-path", path.join(tmp, "operator-ca", "ca.crt")]).match(/"fingerprint":"([0-9a-f]+)"/)?.[1],
    );
    for (const files of Object.values(adopted.files)) {
        expect(files.ca).toBe(operatorCa.certPem);
    }
    await rollout("adopt (existing CA kept)", [{ stage: "adopt", files: adopted.files }], restart);
    // nebula-cert itself accepts what the program issued from the operator's CA.
    fs.writeFileSync(path.join(tmp, "check.crt"), adopted.files[NODE_A].cert);
    must("nebula-cert", ["verify", "-ca", path.join(tmp, "operator-ca", "ca.crt"), "-crt", path.join(tmp, "check.crt")]);
});

it("rotates to a program-made CA through trust → sign → done, each stage one host restart at a time, without splitting the mesh", async () => {
    const trust = await programFiles({ ca: "generated", rotation: { from: "existing", stage: "trust" } }, operatorCa, "state-1");
    const sign = await programFiles({ ca: "generated", rotation: { from: "existing", stage: "sign" } }, operatorCa, "state-1");
    const done = await programFiles({ ca: "generated" }, undefined, "state-1");
    expect(sign.fingerprint).toBe(done.fingerprint);
    expect(trust.files[NODE_A].ca).toBe(sign.files[NODE_A].ca);
    await rollout(
        "rotate existing → generation 1 (restart)",
        [
            { stage: "trust", files: trust.files },
            { stage: "sign", files: sign.files },
            { stage: "done", files: done.files },
        ],
        restart,
    );
});

it("rotates generation 1 → 2 with a SIGHUP reload per host instead of a restart", async () => {
    const pki = (stage: "trust" | "sign"): Record<string, unknown> => ({ caGeneration: 2, rotation: { from: 1, stage } });
    const trust = await programFiles(pki("trust"), undefined, "state-1");
    const sign = await programFiles(pki("sign"), undefined, "state-1");
    const done = await programFiles({ caGeneration: 2 }, undefined, "state-1");
    await rollout(
        "rotate generation 1 → 2 (SIGHUP reload)",
        [
            { stage: "trust", files: trust.files },
            { stage: "sign", files: sign.files },
            { stage: "done", files: done.files },
        ],
        reload,
    );
    // Reloaded certificates are the ones new handshakes present: restart A (fresh tunnels to everyone) and check again.
    await restart(hostOf(NODE_A));
    await assertMeshWhole("restarting node A after the reload rollout");
});

/** Fresh nebula-cert keys and certificates from the operator's CA, as the hosts had before adoption. */
function operatorFiles(label: string): Record<string, HostFiles> {
    const files: Record<string, HostFiles> = {};
    const caDir = path.join(tmp, "operator-ca");
    for (const host of HOSTS) {
        const member = memberOf(host.member);
        const dir = path.join(tmp, `${label}-${host.member}`);
        fs.mkdirSync(dir, { recursive: true });
        must("nebula-cert", [
            "sign",
            ...["-ca-crt", path.join(caDir, "ca.crt"), "-ca-key", path.join(caDir, "ca.key")],
            ...["-name", member.name, "-ip", member.addressWithPrefix, "-groups", member.groups.join(",")],
            ...["-out-crt", path.join(dir, "host.crt"), "-out-key", path.join(dir, "host.key")],
        ]);
        files[host.member] = {
            ca: operatorCa.certPem,
            cert: fs.readFileSync(path.join(dir, "host.crt"), "utf8"),
            key: fs.readFileSync(path.join(dir, "host.key"), "utf8"),
        };
    }
    return files;
}

it("adopts with a SIGHUP reload per host: a new key and certificate from the same CA are taken without a restart", async () => {
    // Back on the operator's own nebula-cert certificates first, as before an adoption; then the
    // program's keys and certificates from the same CA go in by reload.
    const back = operatorFiles("operator-again");
    for (const host of HOSTS) {
        writeFiles(host, back[host.member]);
    }
    for (const host of HOSTS) {
        await restart(host);
    }
    await assertMeshWhole("every host back on nebula-cert certificates");
    const adopted = await programFiles({ ca: "existing" }, operatorCa, "state-2");
    await rollout("adopt (existing CA kept, SIGHUP reload)", [{ stage: "adopt", files: adopted.files }], reload);
    await restart(hostOf(NODE_A));
    await assertMeshWhole("restarting node A after the reload adoption");
});
