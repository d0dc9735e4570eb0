import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { hostFilePath, renderFleetFiles, type RenderedFiles } from "../../../scripts/render/files";
import { NEBULA_FILES, lighthouses, renderNebulaConfigYaml } from "../../../components/nebula/config";
import { nebulaMembers, type NebulaMember } from "../../../stacks/nebulaMembers";
import { exited, sleep, stopChildren, type ToolResult } from "../../support/processes";
import { labFleetWithAdmins, namespaceJanitor, suiteTools } from "../../support/netnsSuite";

/*
 * A real Nebula mesh (Debian's nebula 1.6.1) from the lab stack's rendered certificates, keys and
 * configs, one network namespace per member, all joined by veth pairs to a bridge in a "switch"
 * namespace. Underlay addresses are in 198.18.0.0/15 (benchmark range) and never leave the
 * namespaces. Needs root, /dev/net/tun, `ip`, `ping` and `nebula`: without them the suite fails
 * (CI runs as root after scripts/setup.sh); it never skips.
 *
 * Members: both lab lighthouses run, each in its own namespace (lab-relay-01 and the control
 * server's shortcircuit-lab-sfo3), so every static_host_map entry and relay the configs name is
 * live; endpointOverride points each lighthouse entry at its namespace's underlay IP. Node A is
 * lab-server-01, node B lab-agent-01.
 *
 * The rendered firewall admits ICMP (and SSH) only from the admin group, so the fleet is the lab
 * stack with A and B given `nebula.groups: [<adminGroup>]` (as an operator would for hosts that
 * administer others); the lighthouse lab-relay-01 stays out of it, which makes it the probe that
 * the firewall is real.
 */

jest.setTimeout(90_000);

const SETUP_HINT = "is not on PATH: run scripts/setup.sh (it installs Debian's nebula, iproute2 and iputils-ping; CI runs it first)";
const NS_PREFIX = "scneb-";
const TEMP_PREFIX = "scneb-mesh-";
const SEED = "6d".repeat(32);
const DAY_MS = 86_400_000;
/** See realTools.test.ts: nebula checks certificates against the real clock. */
const NOW = new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS);

const NODE_A = "lab-server-01";
const NODE_B = "lab-agent-01";
const LIGHTHOUSE = "lab-relay-01";

interface MeshHost {
    member: string;
    short: string;
    underlay: string;
}

const HOSTS: readonly MeshHost[] = [
    { member: "shortcircuit-lab-sfo3", short: "sfo3", underlay: "198.18.0.1" },
    { member: LIGHTHOUSE, short: "relay", underlay: "198.18.0.2" },
    { member: NODE_A, short: "srv", underlay: "198.18.0.11" },
    { member: NODE_B, short: "agt", underlay: "198.18.0.21" },
];
const UNDERLAY_PREFIX = 24;
const UNDERLAY_MTU = 1500;

const nsName = (short: string): string => `${NS_PREFIX}${short}-${process.pid}`;
const SWITCH_NS = nsName("sw");

// ---------------------------------------------------------------------------------------------
// Running tools
// ---------------------------------------------------------------------------------------------

const { tool, must, toolAsync } = suiteTools(SETUP_HINT);

function ping(fromShort: string, to: string, extra: string[] = []): Promise<ToolResult> {
    return toolAsync("ip", ["netns", "exec", nsName(fromShort), "ping", "-n", ...extra, to], 15_000);
}

/** Pings until one run succeeds, at most `attempts` runs (each bounded by -c/-W and a 15 s kill). */
async function pingUntilReply(fromShort: string, to: string, extra: string[], attempts: number): Promise<ToolResult> {
    let last: ToolResult = { status: -1, output: "" };
    for (let attempt = 1; attempt <= attempts; attempt++) {
        last = await ping(fromShort, to, extra);
        if (last.status === 0) {
            return last;
        }
        await sleep(500);
    }
    throw new Error(`ping from ${nsName(fromShort)} to ${to} ${extra.join(" ")} failed ${attempts} times; last:\n${last.output}\n${nebulaLogs()}`);
}

// ---------------------------------------------------------------------------------------------
// Namespaces, processes and temp dirs (including leftovers of a crashed earlier run)
// ---------------------------------------------------------------------------------------------

const { namespaces: scnebNamespaces, deleteNamespace, removeLeftovers } = namespaceJanitor({ tool, must, toolAsync }, NS_PREFIX, TEMP_PREFIX);

interface Running {
    host: MeshHost;
    child: ChildProcess;
    log: string;
}

const running: Running[] = [];
let tmp = "";

function nebulaLogs(): string {
    return running
        .map(({ host, log }) => {
            const text = fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "";
            return `--- nebula log of ${host.member} (${nsName(host.short)}), last lines:\n${text.split("\n").slice(-25).join("\n")}`;
        })
        .join("\n");
}

async function stopAll(): Promise<void> {
    await stopChildren(running.map(({ child }) => child));
}

// ---------------------------------------------------------------------------------------------
// The fleet and its files
// ---------------------------------------------------------------------------------------------

const fleet = labFleetWithAdmins([NODE_A, NODE_B]);
const members = nebulaMembers(fleet);
const mtu = fleet.overlays.nebula.mtu;

function member(name: string): NebulaMember {
    const found = members.find((m) => m.name === name);
    if (!found) {
        throw new Error(`${name} is not a Nebula member of the lab stack`);
    }
    return found;
}

function hostOf(name: string): MeshHost {
    const found = HOSTS.find((host) => host.member === name);
    if (!found) {
        throw new Error(`${name} has no namespace in this mesh`);
    }
    return found;
}

const overlayAddress = (name: string): string => member(name).address;

function rendered(files: RenderedFiles, name: string, file: keyof typeof NEBULA_FILES): string {
    const content = files.get(hostFilePath(name, NEBULA_FILES[file]))?.content;
    if (content === undefined) {
        throw new Error(`the render has no ${file} for ${name}`);
    }
    return content;
}

// ---------------------------------------------------------------------------------------------
// Setup and teardown
// ---------------------------------------------------------------------------------------------

function checkPrerequisites(): void {
    if (process.getuid?.() !== 0) {
        throw new Error("the Nebula mesh test needs root (network namespaces, veth, /dev/net/tun); CI runs it as root");
    }
    must("ip", ["-V"]);
    must("ping", ["-V"]);
    must("nebula", ["-version"]);
    if (!fs.existsSync("/dev/net/tun")) {
        throw new Error("/dev/net/tun is missing: nebula cannot create nebula0");
    }
}

function buildUnderlay(): void {
    must("ip", ["netns", "add", SWITCH_NS]);
    must("ip", ["-n", SWITCH_NS, "link", "add", "br0", "type", "bridge"]);
    must("ip", ["-n", SWITCH_NS, "link", "set", "br0", "mtu", String(UNDERLAY_MTU), "up"]);
    for (const host of HOSTS) {
        const ns = nsName(host.short);
        const port = `p-${host.short}`;
        must("ip", ["netns", "add", ns]);
        must("ip", [
            "-n",
            SWITCH_NS,
            "link",
            "add",
            port,
            "mtu",
            String(UNDERLAY_MTU),
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "mtu",
            String(UNDERLAY_MTU),
            "netns",
            ns,
        ]);
        must("ip", ["-n", SWITCH_NS, "link", "set", port, "master", "br0", "up"]);
        must("ip", ["-n", ns, "link", "set", "lo", "up"]);
        must("ip", ["-n", ns, "addr", "add", `${host.underlay}/${UNDERLAY_PREFIX}`, "dev", "eth0"]);
        must("ip", ["-n", ns, "link", "set", "eth0", "up"]);
    }
}

function startNebula(files: RenderedFiles): void {
    const endpointOverride = (light: NebulaMember): string => `${hostOf(light.name).underlay}:${fleet.overlays.nebula.listenPort}`;
    for (const host of HOSTS) {
        const dir = path.join(tmp, host.member);
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, "ca.crt"), rendered(files, host.member, "ca"));
        fs.writeFileSync(path.join(dir, "host.crt"), rendered(files, host.member, "cert"));
        fs.writeFileSync(path.join(dir, "host.key"), rendered(files, host.member, "key"), { mode: 0o600 });
        const config = path.join(dir, "config.yml");
        fs.writeFileSync(config, renderNebulaConfigYaml(fleet, members, member(host.member), { pkiDir: dir, endpointOverride }));
        const log = path.join(dir, "nebula.log");
        const fd = fs.openSync(log, "w");
        try {
            const child = spawn("ip", ["netns", "exec", nsName(host.short), "nebula", "-config", config], { stdio: ["ignore", fd, fd] });
            running.push({ host, child, log });
            child.on("error", () => undefined);
        } finally {
            fs.closeSync(fd);
        }
    }
}

/** Polls (every 200 ms, at most 20 s) until every member's nebula0 carries its address. */
async function waitForTunnels(): Promise<void> {
    const deadline = Date.now() + 20_000;
    const pending = new Set(HOSTS.map((host) => host.member));
    while (pending.size > 0) {
        for (const { host, child } of running) {
            if (exited(child)) {
                throw new Error(`nebula for ${host.member} exited (${child.exitCode ?? child.signalCode}) before nebula0 came up\n${nebulaLogs()}`);
            }
            const addr = tool("ip", ["-n", nsName(host.short), "-o", "addr", "show", "dev", fleet.overlays.nebula.interface]);
            if (addr.status === 0 && addr.output.includes(`inet ${member(host.member).addressWithPrefix} `)) {
                pending.delete(host.member);
            }
        }
        if (pending.size === 0) {
            break;
        }
        if (Date.now() > deadline) {
            throw new Error(`${fleet.overlays.nebula.interface} did not come up within 20 s on ${[...pending].join(", ")}\n${nebulaLogs()}`);
        }
        await sleep(200);
    }
}

beforeAll(async () => {
    checkPrerequisites();
    removeLeftovers();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${TEMP_PREFIX}${process.pid}-`));
    buildUnderlay();
    startNebula(renderFleetFiles(fleet, { now: NOW, pkiSeedHex: SEED }).files);
    await waitForTunnels();
});

afterAll(async () => {
    try {
        await stopAll();
    } finally {
        for (const ns of [...HOSTS.map((host) => nsName(host.short)), SWITCH_NS]) {
            if (scnebNamespaces().includes(ns)) {
                deleteNamespace(ns);
            }
        }
        if (tmp) {
            fs.rmSync(tmp, { recursive: true, force: true });
        }
    }
    expect(running.filter(({ child }) => !exited(child)).map(({ host }) => host.member)).toEqual([]);
    expect(scnebNamespaces()).toEqual([]);
});

// ---------------------------------------------------------------------------------------------
// The mesh
// ---------------------------------------------------------------------------------------------

it("runs every lighthouse the lab configs name, with A and B in the admin group and the probe lighthouse outside it", () => {
    const adminGroup = fleet.overlays.nebula.adminGroup;
    expect(
        lighthouses(members)
            .map((m) => m.name)
            .sort(),
    ).toEqual(
        HOSTS.filter((h) => member(h.member).lighthouse)
            .map((h) => h.member)
            .sort(),
    );
    expect(member(LIGHTHOUSE).lighthouse).toBe(true);
    expect(member(LIGHTHOUSE).groups).not.toContain(adminGroup);
    expect(member(NODE_A).groups).toContain(adminGroup);
    expect(member(NODE_B).groups).toContain(adminGroup);
    expect(member(NODE_A).lighthouse).toBe(false);
    expect(member(NODE_B).lighthouse).toBe(false);
});

it("brings up nebula0 with each member's address and the lab overlay MTU", () => {
    for (const host of HOSTS) {
        const link = must("ip", ["-n", nsName(host.short), "link", "show", fleet.overlays.nebula.interface]);
        expect(link).toContain(` mtu ${mtu} `);
        const addr = must("ip", ["-n", nsName(host.short), "-o", "addr", "show", "dev", fleet.overlays.nebula.interface]);
        expect(addr).toContain(`inet ${member(host.member).addressWithPrefix} `);
    }
});

it("carries a ping from node A to node B over nebula0", async () => {
    const result = await pingUntilReply(hostOf(NODE_A).short, overlayAddress(NODE_B), ["-c", "3", "-W", "2"], 5);
    expect(result.output).toContain(`bytes from ${overlayAddress(NODE_B)}`);
});

it("passes a don't-fragment ping of exactly the MTU and refuses one byte more", async () => {
    const a = hostOf(NODE_A).short;
    const fits = await pingUntilReply(a, overlayAddress(NODE_B), ["-M", "do", "-s", String(mtu - 28), "-c", "2", "-W", "2"], 3);
    expect(fits.output).toContain(`${mtu - 28 + 8} bytes from ${overlayAddress(NODE_B)}`);
    const tooBig = await ping(a, overlayAddress(NODE_B), ["-M", "do", "-s", String(mtu - 27), "-c", "2", "-W", "2"]);
    expect(tooBig.status).not.toBe(0);
    expect(tooBig.output).not.toContain("bytes from");
});

it("drops ICMP from a member outside the admin group (the rendered firewall is enforced)", async () => {
    // Before any A → lighthouse ICMP: nebula's conntrack would let the lighthouse's echo in as a reply.
    const lighthouse = hostOf(LIGHTHOUSE).short;
    const blocked = await ping(lighthouse, overlayAddress(NODE_A), ["-c", "3", "-W", "2"]);
    expect(blocked.status).not.toBe(0);
    expect(blocked.output).not.toContain("bytes from");
    // The path itself works: A (admin) reaches the lighthouse, whose firewall admits the admin group.
    await pingUntilReply(hostOf(NODE_A).short, overlayAddress(LIGHTHOUSE), ["-c", "3", "-W", "2"], 3);
});
