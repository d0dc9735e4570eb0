import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { isMap, isScalar, parse as parseYaml, parseDocument } from "yaml";
import { derpCertName, derperArgs } from "../../../components/derp/derper";
import {
    HEADSCALE_FILES,
    renderDerpMapYaml,
    renderHeadscaleConfig,
    renderHeadscaleConfigYaml,
    renderHeadscalePolicy,
    type HeadscaleConfigOptions,
} from "../../../components/control/headscale";
import { nodeRolloutPayloads } from "../../../components/k3s/rollout";
import { remoteScript } from "../../../components/remote/scripts";
import { k3sNodes } from "../../../stacks/fleet";
import type { Fleet } from "../../../stacks/schema";
import { parseFleet } from "../../../stacks/validate";
import { rawFleet, validFleet, type Raw } from "../../support/fixtures";
import { TailnetClients, type HsNode, type PeerStatus, type Status, type TailnetNode } from "../../support/tailnetClients";
import { machineHasGo, tailnetTool } from "../../support/tools";
import {
    buildLan,
    deleteOwnNamespaces,
    exited,
    Fatal,
    httpsIn,
    makeCa,
    makeSelfSigned,
    must,
    nsName,
    removeLeftovers,
    run,
    sctnNamespaces,
    startIn,
    stop,
    tail,
    TEMP_PREFIX,
    waitFor,
    type Daemon,
    type Result,
} from "../../support/tailnetLab";

/*
 * The configuration the program renders for the lab stack, run for real: the pinned headscale
 * (embedded DERP region 900), the pinned derper as the second relay (region 901), and three
 * tailscaled nodes, each in its own network namespace on one bridged "LAN" (the lab stack's
 * 192.168.50.0/24, which here exists only between these namespaces). Nothing has a route
 * anywhere else; every process that talks to the control server trusts only the test CA.
 *
 * What differs from production, and only because a test host must differ:
 *   - headscale: listen_addr, server_url (https://hs.sctn.test, a name the namespaces' hosts
 *     files map to the headscale namespace), TLS from files signed by the test CA instead of
 *     Let's Encrypt, the STUN listen address, and every path in a temp dir.
 *   - derper: -a (the relay namespace's address), -certdir, -c (its key file; in production
 *     derper, running as root, keeps it at its default /var/lib/derper/derper.key) and the
 *     verify URL's host. -hostname stays the lab relay's name: the DERP map the program renders
 *     carries that name (TLS SNI) plus the test address as `ipv4`, and pins the test relay's
 *     self-signed certificate with the program's own derpCertName.
 *   - the noise and DERP private keys are fixed test keys (stack secrets in production).
 *
 * Direct UDP between node 1 and node 2 is dropped by nftables inside both namespaces from the
 * start. Each of them also has STUN to one relay dropped, so netcheck measures only the other
 * region and the two pick different home DERP regions: node 1 homes on 901 labrelay, node 2 on
 * 900 labsfo, and traffic between them crosses both of the program's regions. Node 3 is
 * unfiltered: the control case that direct paths work where nothing is blocked.
 *
 * Needs root, /dev/net/tun, iproute2, nftables (`nft`), openssl, iputils-ping, bash and the
 * Go-built tools (scripts/tools/build-tailnet-tools.sh). Skips only on a machine without Go.
 */

const SUITE_TIMEOUT_NOTE = "about 40 s on the machine it was written on; every wait is bounded on its own";
jest.setTimeout(90_000);

const hasGo = machineHasGo();
if (!hasGo) {
    console.warn("tailnet suite skipped: this machine has no Go toolchain to build headscale, tailscaled, tailscale and derper with");
}
const describeWithGo = hasGo ? describe : describe.skip;

// ---------------------------------------------------------------------------------------------
// The lab fleet and the test hosts
// ---------------------------------------------------------------------------------------------

const lab = validFleet("lab");
const relay = lab.derpRelays[0];
const HS_NAME = "hs.sctn.test";
const HS_URL = `https://${HS_NAME}`;
const LAN_PREFIX = 24;
/** The control server is a droplet, not on the lab LAN; the test gives it an address there. */
const HS_ADDRESS = "192.168.50.250";
const NODE_NAMES = ["lab-server-01", "lab-agent-01", "lab-agent-02"] as const;
type NodeName = (typeof NODE_NAMES)[number];

function lanAddress(name: string): string {
    const node = lab.nodes.find((n) => n.name === name);
    if (!node?.lan) {
        throw new Error(`${name} has no LAN address in the lab stack`);
    }
    return node.lan.address;
}

interface TestNode extends TailnetNode {
    name: NodeName;
}

const nodes: TestNode[] = NODE_NAMES.map((name, i) => ({ name, short: `n${i + 1}`, lan: lanAddress(name), dir: "", socket: "" }));
const [n1, n2, n3] = nodes as [TestNode, TestNode, TestNode];
const RELAY_SHORT = "relay";
const HS_SHORT = "hs";
const RELAY_ADDRESS = lanAddress(relay.host);
const ns = (short: string): string => nsName(short);

const ROUTES = [lab.cluster.clusterCidr, lab.cluster.serviceCidr];

// ---------------------------------------------------------------------------------------------
// State of the run
// ---------------------------------------------------------------------------------------------

let tmp = "";
let caFile = "";
let hsConfig = "";
let hsPaths: Record<keyof typeof HEADSCALE_FILES, string>;
let headscale: Daemon | undefined;
let derper: Daemon | undefined;
const daemons = (): Daemon[] => [headscale, derper, ...nodes.map((n) => n.daemon)].filter((d): d is Daemon => d !== undefined);
let authKeyId = "";
let renderedDerpMap = "";

function logs(): string {
    return daemons()
        .map((d) => tail(d))
        .join("\n");
}

// ---------------------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------------------

const clients = new TailnetClients({ caFile: () => caFile, hsConfig: () => hsConfig, logs, iface: lab.overlays.tailnet.interface });
const hs = (args: readonly string[]): Promise<string> => clients.hs(args);
const hsJson = <T>(args: readonly string[]): Promise<T> => clients.hsJson<T>(args);
const hsNodes = (): Promise<HsNode[]> => clients.hsNodes();
const ts = (node: TestNode, args: readonly string[], timeoutMs = 20_000): Promise<Result> => clients.ts(node, args, timeoutMs);
const tsMust = (node: TestNode, args: readonly string[], timeoutMs = 20_000): Promise<string> => clients.tsMust(node, args, timeoutMs);
const status = (node: TestNode): Promise<Status> => clients.status(node);
const waitRunning = (node: TestNode, timeoutMs: number): Promise<Status> => clients.waitRunning(node, timeoutMs);
const pingUntilReply = (from: TestNode, to: string): Promise<string> => clients.pingUntilReply(from, to);
const startTailscaled = (node: TestNode): void => clients.startTailscaled(node);

function peer(s: Status, name: string): PeerStatus | undefined {
    return Object.values(s.Peer ?? {}).find((p) => p.HostName === name);
}

async function tailnetIp(node: TestNode): Promise<string> {
    const ip = (await status(node)).Self.TailscaleIPs?.find((a) => !a.includes(":"));
    if (!ip) {
        throw new Error(`${node.name} has no tailnet IPv4 address`);
    }
    return ip;
}

async function table52(node: TestNode): Promise<string> {
    return (await run("ip", ["-n", ns(node.short), "-4", "route", "show", "table", "52"])).stdout;
}

async function hsNode(name: string): Promise<HsNode> {
    const found = (await hsNodes()).find((n) => n.name === name || n.given_name === name);
    if (!found) {
        throw new Error(`headscale lists no node ${name}`);
    }
    return found;
}

// ---------------------------------------------------------------------------------------------
// Headscale and derper as the program renders them
// ---------------------------------------------------------------------------------------------

function headscaleOptions(): HeadscaleConfigOptions {
    return {
        paths: hsPaths,
        listenAddr: `${HS_ADDRESS}:443`,
        serverUrl: HS_URL,
        tls: { certPath: path.join(tmp, "ca", `${HS_NAME}.crt`), keyPath: path.join(tmp, "ca", `${HS_NAME}.key`) },
        stunListenAddr: `${HS_ADDRESS}:${lab.controlServer.derp.stunPort}`,
    };
}

async function startHeadscale(): Promise<void> {
    headscale = await clients.startHeadscale(ns(HS_SHORT), path.join(tmp, "hs", "headscale.log"), ns(n1.short), HS_URL);
}

const relayCertDir = (): string => path.join(tmp, "relay", "certs");

/** The program's derper flags with only the test-host values swapped; returns [args, what was swapped]. */
function relayArgs(): { args: string[]; swapped: Record<string, [string, string]> } {
    const program = derperArgs(lab, relay);
    const replace: Record<string, string> = {
        "-a": `${RELAY_ADDRESS}:${relay.derpPort}`,
        "-certdir": relayCertDir(),
        "-verify-client-url": `${HS_URL}/verify`,
    };
    const args = [...program];
    const swapped: Record<string, [string, string]> = {};
    for (const [flag, value] of Object.entries(replace)) {
        const i = args.indexOf(flag);
        if (i < 0) {
            throw new Error(`derperArgs has no ${flag}: ${program.join(" ")}`);
        }
        swapped[flag] = [args[i + 1], value];
        args[i + 1] = value;
    }
    // The relay's own key file; production derper runs as root and uses its default path.
    args.push("-c", path.join(tmp, "relay", "derper.key"));
    return { args, swapped };
}

async function startDerper(): Promise<void> {
    const { args } = relayArgs();
    derper = startIn(ns(RELAY_SHORT), "derper", tailnetTool("derper"), args, path.join(tmp, "relay", "derper.log"), { SSL_CERT_FILE: caFile });
    const started = derper;
    await waitFor(
        "derper to serve TLS with the pinned certificate",
        async () => {
            if (exited(started.child)) {
                throw new Fatal(`derper exited (${started.child.exitCode ?? started.child.signalCode})`);
            }
            const r = await run(
                "ip",
                ["netns", "exec", ns(n3.short), "openssl", "s_client", "-connect", `${RELAY_ADDRESS}:${relay.derpPort}`, "-servername", relay.hostname],
                {
                    timeoutMs: 5_000,
                },
            );
            return r.stdout.includes("BEGIN CERTIFICATE") ? r : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 300, context: logs },
    );
}

// ---------------------------------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------------------------------

/**
 * Node 1 and node 2: no UDP to or from each other (direct WireGuard and disco), and no STUN to one
 * region each, so their home DERP regions differ. Counters prove the drops happened.
 */
async function applyFilters(): Promise<void> {
    const stunBlocked: Record<string, string> = {
        [n1.short]: `${HS_ADDRESS} udp dport ${lab.controlServer.derp.stunPort}`,
        [n2.short]: `${RELAY_ADDRESS} udp dport ${relay.stunPort}`,
    };
    for (const [self, other] of [
        [n1, n2],
        [n2, n1],
    ] as const) {
        const rules = `table inet sctn {
  counter direct_out {}
  counter direct_in {}
  chain out {
    type filter hook output priority 0; policy accept;
    ip daddr ${other.lan} meta l4proto udp counter name direct_out drop
    ip daddr ${stunBlocked[self.short]} drop
  }
  chain in {
    type filter hook input priority 0; policy accept;
    ip saddr ${other.lan} meta l4proto udp counter name direct_in drop
  }
}
`;
        await must("ip", ["netns", "exec", ns(self.short), "nft", "-f", "-"], { input: rules });
    }
}

async function directDrops(node: TestNode): Promise<number> {
    const out = await must("ip", ["netns", "exec", ns(node.short), "nft", "-j", "list", "counters", "table", "inet", "sctn"]);
    let packets = 0;
    for (const item of (JSON.parse(out) as { nftables: { counter?: { packets: number } }[] }).nftables) {
        packets += item.counter?.packets ?? 0;
    }
    return packets;
}

/** A `k3s` test double and a `tailscale` that talks to this node's tailscaled, for the pre-flight. */
function preflightBin(node: TestNode): string {
    const bin = path.join(node.dir, "bin");
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(path.join(bin, "k3s"), "#!/bin/sh\n# k3s-test-double: pre-flight only asks whether k3s is installed.\necho 'k3s test double'\n", {
        mode: 0o755,
    });
    fs.writeFileSync(path.join(bin, "tailscale"), `#!/bin/sh\nexec '${tailnetTool("tailscale")}' --socket='${node.socket}' "$@"\n`, { mode: 0o755 });
    return bin;
}

/** The lab fleet with the node addresses this run got from headscale (the model holds the live address). */
function liveFleet(addresses: Readonly<Record<string, string>>): Fleet {
    const raw: Raw = rawFleet("lab");
    for (const node of raw.nodes as Raw[]) {
        if (node.tailnet) {
            // Headscale hands out addresses sequentially; park the others outside that range.
            node.tailnet.address = addresses[node.name as string] ?? `100.68.0.${200 + (raw.nodes as Raw[]).indexOf(node)}`;
        }
    }
    return parseFleet(raw).fleet;
}

async function runPreflight(node: TestNode, fleet: Fleet): Promise<Result> {
    const k3sNode = k3sNodes(fleet).find((n) => n.name === node.name);
    if (!k3sNode) {
        throw new Error(`${node.name} is not a K3s node of the lab stack`);
    }
    // The exact prepare step (pre-flight, then the token file), in a private mount namespace so
    // its token write lands on a throwaway tmpfs, never on this machine's /etc/rancher.
    const payload = nodeRolloutPayloads(fleet, k3sNode).prepare("tailnet-test-token");
    const inner = 'mkdir -p /etc/rancher && mount -t tmpfs tmpfs /etc/rancher && exec bash -c "$SCRIPT"';
    return run(
        "ip",
        ["netns", "exec", ns(node.short), "unshare", "-m", "--propagation", "private", "env", `SCRIPT=${remoteScript("k3s/prepare.sh")}`, "bash", "-c", inner],
        {
            input: payload,
            timeoutMs: 20_000,
            env: { PATH: `${preflightBin(node)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` },
        },
    );
}

/** The `regions` keys of a DERP map YAML, as the YAML parser types them. */
function regionKeys(derpMapYaml: string): unknown[] {
    const regions = parseDocument(derpMapYaml).get("regions");
    return isMap(regions) ? regions.items.map((pair) => (isScalar(pair.key) ? pair.key.value : pair.key)) : [];
}

// ---------------------------------------------------------------------------------------------
// Setup and teardown
// ---------------------------------------------------------------------------------------------

const NOISE_KEY = `privkey:${randomBytes(32).toString("hex")}`;
const DERP_KEY = `privkey:${randomBytes(32).toString("hex")}`;
let suiteStart = 0;

async function setUp(): Promise<void> {
    if (process.getuid?.() !== 0) {
        throw new Error("the tailnet suite needs root (network namespaces, veth, /dev/net/tun, nftables); CI runs it as root");
    }
    for (const [tool, args] of [
        ["ip", ["-V"]],
        ["nft", ["--version"]],
        ["openssl", ["version"]],
        ["ping", ["-V"]],
    ] as const) {
        const r = await run(tool, args).catch((error: Error) => ({ status: -1, stdout: "", stderr: error.message }));
        if (r.status !== 0) {
            throw new Error(`${tool} is missing or broken (${r.stderr.trim()}): run scripts/setup.sh (Debian iproute2, nftables, openssl, iputils-ping)`);
        }
    }
    if (!fs.existsSync("/dev/net/tun")) {
        throw new Error("/dev/net/tun is missing: tailscaled cannot create tailscale0");
    }
    removeLeftovers();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${TEMP_PREFIX}${process.pid}-`));
    for (const dir of ["ca", "hs", "relay", "relay/certs"]) {
        fs.mkdirSync(path.join(tmp, dir), { recursive: true });
    }
    const { ca } = await makeCa(path.join(tmp, "ca"), HS_NAME);
    caFile = ca.cert;
    const relayCert = path.join(relayCertDir(), `${relay.hostname}.crt`);
    await makeSelfSigned(relayCert, path.join(relayCertDir(), `${relay.hostname}.key`), relay.hostname);

    await buildLan(
        "sw",
        [{ short: HS_SHORT, address: HS_ADDRESS }, { short: RELAY_SHORT, address: RELAY_ADDRESS }, ...nodes.map((n) => ({ short: n.short, address: n.lan }))],
        LAN_PREFIX,
        `${HS_ADDRESS} ${HS_NAME}\n`,
    );
    await applyFilters();

    const dir = path.join(tmp, "hs");
    hsPaths = {
        config: path.join(dir, "config.yaml"),
        derpMap: path.join(dir, "derp.yaml"),
        policy: path.join(dir, "policy.hujson"),
        noiseKey: path.join(dir, "noise_private.key"),
        derpKey: path.join(dir, "derp_server_private.key"),
        database: path.join(dir, "db.sqlite"),
        acmeCache: path.join(dir, "cache"),
        socket: path.join(dir, "headscale.sock"),
    };
    hsConfig = hsPaths.config;
    fs.writeFileSync(hsConfig, renderHeadscaleConfigYaml(lab, headscaleOptions()));
    renderedDerpMap = renderDerpMapYaml(lab, { [relay.host]: derpCertName(fs.readFileSync(relayCert, "utf8")) }, { [relay.host]: RELAY_ADDRESS });
    fs.writeFileSync(hsPaths.derpMap, renderedDerpMap);
    fs.writeFileSync(hsPaths.policy, renderHeadscalePolicy());
    fs.writeFileSync(hsPaths.noiseKey, `${NOISE_KEY}\n`, { mode: 0o600 });
    fs.writeFileSync(hsPaths.derpKey, `${DERP_KEY}\n`, { mode: 0o600 });

    for (const node of nodes) {
        node.dir = path.join(tmp, node.short);
        node.socket = path.join(node.dir, "tailscaled.sock");
        fs.mkdirSync(path.join(node.dir, "state"), { recursive: true });
    }
    await Promise.all([startHeadscale(), startDerper()]);
    nodes.forEach(startTailscaled);
}

async function tearDown(): Promise<void> {
    try {
        await stop(daemons());
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

describeWithGo("the rendered Headscale + DERP configuration on a real tailnet (root, netns, Go-built tools)", () => {
    beforeAll(async () => {
        suiteStart = Date.now();
        await setUp();
    }, 90_000);

    afterAll(async () => {
        await tearDown();
        console.log(`tailnet suite: ${((Date.now() - suiteStart) / 1000).toFixed(1)} s (${SUITE_TIMEOUT_NOTE})`);
        expect(
            daemons()
                .filter((d) => !exited(d.child))
                .map((d) => d.name),
        ).toEqual([]);
        expect(sctnNamespaces().filter((name) => name.endsWith(`-${process.pid}`))).toEqual([]);
    }, 60_000);

    it("0. renders DERP region ids as integer YAML keys, as headscale's map[int] needs", () => {
        // A quoted "901" stops headscale at start: "cannot unmarshal !!str `901` into int".
        expect(regionKeys(renderedDerpMap)).toEqual([relay.regionId]);
    });

    it("1. runs headscale on the lab stack's rendered config, changed only where a test host must differ, with the embedded DERP on", async () => {
        const asDeployed = renderHeadscaleConfig(lab);
        const asRun = parseYaml(fs.readFileSync(hsConfig, "utf8")) as Record<string, any>;
        const changed = Object.keys({ ...asDeployed, ...asRun }).filter((k) => JSON.stringify(asDeployed[k]) !== JSON.stringify(asRun[k]));
        // Top-level keys that move: addresses, TLS source, and file paths (noise, derp, database, policy, socket).
        expect(changed.sort()).toEqual(
            [
                "database",
                "derp",
                "listen_addr",
                "noise",
                "policy",
                "server_url",
                "tls_cert_path",
                "tls_key_path",
                "tls_letsencrypt_cache_dir",
                "tls_letsencrypt_challenge_type",
                "tls_letsencrypt_hostname",
                "tls_letsencrypt_listen",
                "unix_socket",
            ].sort(),
        );
        const deployedDerp = asDeployed.derp as Record<string, any>;
        expect({
            ...asRun.derp,
            paths: deployedDerp.paths,
            server: { ...asRun.derp.server, stun_listen_addr: deployedDerp.server.stun_listen_addr, private_key_path: deployedDerp.server.private_key_path },
        }).toEqual(deployedDerp);
        expect(asRun.derp.server).toMatchObject({ enabled: true, region_id: 900, region_code: "labsfo", verify_clients: true });
        expect(asRun.prefixes.v4).toBe("100.68.0.0/16");

        // Headscale is up over TLS from the test CA, and serves its embedded DERP.
        const health = await httpsIn(ns(n1.short), caFile, `${HS_URL}/health`);
        expect(health.status).toBe(200);
        const derpProbe = await httpsIn(ns(n1.short), caFile, `${HS_URL}/derp/probe`);
        expect(derpProbe.status).toBe(200);
    });

    it("3. enrolls three nodes with one reusable, expiring pre-auth key; they get 100.68.0.0/16 addresses and ping each other over tailscale0", async () => {
        await hs(["users", "create", "lab"]);
        const users = await hsJson<{ id: string | number; name: string }[]>(["users", "list"]);
        const user = users.find((u) => u.name === "lab");
        expect(user).toBeDefined();
        const created = await hsJson<{ id: string | number; key: string; reusable: boolean; expiration: { seconds: string | number } | string }>([
            "preauthkeys",
            "create",
            "--user",
            String(user!.id),
            "--reusable",
            "--expiration",
            "1h",
        ]);
        authKeyId = String(created.id);
        expect(created.reusable).toBe(true);
        const expiresAt = typeof created.expiration === "string" ? Date.parse(created.expiration) : Number(created.expiration.seconds) * 1000;
        expect(expiresAt).toBeGreaterThan(Date.now() + 50 * 60_000);
        expect(expiresAt).toBeLessThan(Date.now() + 70 * 60_000);

        const ups = await Promise.all(
            nodes.map((node) =>
                ts(
                    node,
                    [
                        "up",
                        `--login-server=${HS_URL}`,
                        `--auth-key=${created.key}`,
                        `--hostname=${node.name}`,
                        "--accept-dns=false",
                        `--accept-routes=${String(lab.overlays.tailnet.acceptRoutes)}`,
                        "--timeout=60s",
                    ],
                    70_000,
                ),
            ),
        );
        ups.forEach((r, i) => {
            if (r.status !== 0) {
                throw new Error(`tailscale up on ${nodes[i].name} exited ${r.status}:\n${r.stdout}${r.stderr}\n${logs()}`);
            }
        });
        const ips: string[] = [];
        for (const node of nodes) {
            const s = await waitRunning(node, 30_000);
            const v4 = s.Self.TailscaleIPs!.find((a) => !a.includes(":"))!;
            expect(v4).toMatch(/^100\.68\.\d+\.\d+$/);
            ips.push(v4);
            const link = await must("ip", ["-n", ns(node.short), "-o", "addr", "show", "dev", lab.overlays.tailnet.interface]);
            expect(link).toContain(`inet ${v4}/32`);
            expect(await must("ip", ["-n", ns(node.short), "link", "show", lab.overlays.tailnet.interface])).toContain(` mtu ${lab.overlays.tailnet.mtu} `);
        }
        expect(new Set(ips).size).toBe(3);
        const listed = await hsNodes();
        expect(listed.map((n) => n.name).sort()).toEqual([...NODE_NAMES].sort());

        for (const from of nodes) {
            for (const [j, to] of nodes.entries()) {
                if (to !== from) {
                    const route = await must("ip", ["-n", ns(from.short), "route", "get", ips[j]]);
                    expect(route).toContain(`dev ${lab.overlays.tailnet.interface}`);
                    expect(await pingUntilReply(from, ips[j])).toContain(`bytes from ${ips[j]}`);
                }
            }
        }
    });

    it("2. runs the second relay with the program's derper flags (verify URL to headscale, fail-open off) and refuses an unenrolled client", async () => {
        const { args, swapped } = relayArgs();
        expect(Object.keys(swapped).sort()).toEqual(["-a", "-certdir", "-verify-client-url"]);
        expect(swapped["-a"][0]).toBe(`:${relay.derpPort}`);
        expect(swapped["-verify-client-url"][0]).toBe(`https://${lab.controlServer.hostname}/verify`);
        expect(args).toContain("-verify-client-url-fail-open=false");
        expect(args.slice(args.indexOf("-hostname"), args.indexOf("-hostname") + 2)).toEqual(["-hostname", relay.hostname]);
        expect(args.slice(args.indexOf("-certmode"), args.indexOf("-certmode") + 2)).toEqual(["-certmode", "manual"]);

        // Headscale's /verify, the admission controller derper asks: an enrolled node key is allowed, a stranger's is not.
        const enrolled = (await status(n1)).Self.PublicKey;
        const stranger = `nodekey:${randomBytes(32).toString("hex")}`;
        const verify = (key: string): Promise<{ status: number; body: string }> =>
            httpsIn(ns(RELAY_SHORT), caFile, `${HS_URL}/verify`, "POST", JSON.stringify({ NodePublic: key, Source: n1.lan }));
        const allowed = await verify(enrolled);
        expect(allowed.status).toBe(200);
        expect(JSON.parse(allowed.body)).toEqual({ Allow: true });
        const refused = await verify(stranger);
        expect(refused.status).toBe(200);
        expect(JSON.parse(refused.body)).toEqual({ Allow: false });

        // A real DERP client with a key headscale never saw: `tailscale debug derp` dials with a throwaway key.
        // (Its own output reports success even when the relay refuses, so derper's log is the evidence.)
        const enrolledKeys = (await hsNodes()).map((n) => n.node_key);
        await ts(n3, ["debug", "derp", String(relay.regionId)], 30_000);
        const rejection = await waitFor(
            "derper to log the unenrolled client's rejection",
            () => {
                const log = fs.readFileSync(derper!.log, "utf8");
                const match = /admission controller: (nodekey:[0-9a-f]+)\/(\S+) not allowed/.exec(log);
                return Promise.resolve(match ?? undefined);
            },
            { timeoutMs: 10_000, intervalMs: 250, context: logs },
        );
        expect(enrolledKeys).not.toContain(rejection[1]);
        expect(rejection[2]).toContain(n3.lan);
    });

    it("4. with direct UDP between two nodes dropped, they reach each other through the program's DERP regions 900 labsfo and 901 labrelay", async () => {
        const derpMap = JSON.parse(await tsMust(n1, ["debug", "derp-map"])) as {
            Regions: Record<string, { RegionID: number; RegionCode: string; Nodes: { HostName: string }[] }>;
        };
        const regions = Object.values(derpMap.Regions).map((r) => [r.RegionID, r.RegionCode, r.Nodes.map((n) => n.HostName)]);
        expect(regions.sort()).toEqual([
            [lab.controlServer.derp.regionId, lab.controlServer.derp.regionCode, [HS_NAME]],
            [relay.regionId, relay.regionCode, [relay.hostname]],
        ]);

        const ip1 = await tailnetIp(n1);
        const ip2 = await tailnetIp(n2);
        expect(await pingUntilReply(n1, ip2)).toContain(`bytes from ${ip2}`);
        expect(await pingUntilReply(n2, ip1)).toContain(`bytes from ${ip1}`);

        // Each sends to the other's home region: node 1 → node 2 via labsfo, node 2 → node 1 via labrelay.
        const pong12 = await tsMust(n1, ["ping", "--c=3", "--until-direct=false", "--timeout=5s", ip2], 30_000);
        expect(pong12).toMatch(new RegExp(`pong from ${n2.name} \\(${ip2.replace(/\./g, "\\.")}\\) via DERP\\(${lab.controlServer.derp.regionCode}\\)`));
        const pong21 = await tsMust(n2, ["ping", "--c=3", "--until-direct=false", "--timeout=5s", ip1], 30_000);
        expect(pong21).toMatch(new RegExp(`pong from ${n1.name} \\(${ip1.replace(/\./g, "\\.")}\\) via DERP\\(${relay.regionCode}\\)`));

        const s1 = await status(n1);
        const s2 = await status(n2);
        expect(s1.Self.Relay).toBe(relay.regionCode);
        expect(s2.Self.Relay).toBe(lab.controlServer.derp.regionCode);
        expect(peer(s1, n2.name)).toMatchObject({ Relay: lab.controlServer.derp.regionCode, CurAddr: "" });
        expect(peer(s2, n1.name)).toMatchObject({ Relay: relay.regionCode, CurAddr: "" });

        type Netcheck = { PreferredDERP: number; RegionLatency?: Record<string, number> };
        const [json1, json2, text3] = await Promise.all([
            tsMust(n1, ["netcheck", "--format=json"], 30_000),
            tsMust(n2, ["netcheck", "--format=json"], 30_000),
            tsMust(n3, ["netcheck"], 30_000),
        ]);
        const net1 = JSON.parse(json1) as Netcheck;
        const net2 = JSON.parse(json2) as Netcheck;
        expect(net1.PreferredDERP).toBe(relay.regionId);
        expect(net2.PreferredDERP).toBe(lab.controlServer.derp.regionId);
        // Node 1 measured only the relay (STUN to headscale dropped), node 2 only headscale's region.
        expect(Object.keys(net1.RegionLatency ?? {})).toEqual([String(relay.regionId)]);
        expect(Object.keys(net2.RegionLatency ?? {})).toEqual([String(lab.controlServer.derp.regionId)]);
        expect(text3).toContain(`- ${lab.controlServer.derp.regionCode}: `);
        expect(text3).toContain(`- ${relay.regionCode}: `);
        expect(text3).toMatch(new RegExp(`Nearest DERP: (${lab.controlServer.derp.regionName}|${relay.regionName})`));

        // The drops really happened (tailscale kept trying the direct path), and direct paths work where nothing is dropped.
        expect(await directDrops(n1)).toBeGreaterThan(0);
        expect(await directDrops(n2)).toBeGreaterThan(0);
        const direct = await tsMust(n3, ["ping", "--c=10", "--timeout=5s", ip1], 60_000);
        expect(direct).toContain(`via ${n1.lan}:41641`);
    });

    it("5. with --accept-routes=false table 52 routes nothing into the cluster CIDRs though a peer advertises them; pre-flight passes, and fails with accept-routes on", async () => {
        await tsMust(n3, ["set", `--advertise-routes=${ROUTES.join(",")}`]);
        const advertiser = await waitFor(
            "headscale to see the advertised routes",
            async () => {
                const node = await hsNode(n3.name);
                return ROUTES.every((r) => (node.available_routes ?? []).includes(r)) ? node : undefined;
            },
            { timeoutMs: 20_000, intervalMs: 500, context: logs },
        );
        await hs(["nodes", "approve-routes", "--identifier", String(advertiser.id), "--routes", ROUTES.join(",")]);
        expect((await hsNode(n3.name)).approved_routes?.sort()).toEqual([...ROUTES].sort());

        // Node 1 learns the approved routes, and still keeps them out of table 52.
        await waitFor(
            `${n1.name} to see ${n3.name}'s primary routes`,
            async () => {
                const p = peer(await status(n1), n3.name);
                return ROUTES.every((r) => (p?.PrimaryRoutes ?? []).includes(r)) ? true : undefined;
            },
            { timeoutMs: 30_000, intervalMs: 500, context: logs },
        );
        const table = await table52(n1);
        expect(table).toContain(`dev ${lab.overlays.tailnet.interface}`); // tailscale's table exists (peer routes)
        for (const route of ROUTES) {
            expect(table).not.toContain(route.split("/")[0]);
        }

        // The K3s pre-flight, as the rollout runs it, on this node (its stand-in nebula0 carries the lab address).
        await must("ip", ["-n", ns(n1.short), "tuntap", "add", "dev", lab.overlays.nebula.interface, "mode", "tun"]);
        const nebulaAddress = lab.nodes.find((n) => n.name === n1.name)!.nebula!.address;
        await must("ip", ["-n", ns(n1.short), "addr", "add", `${nebulaAddress}/16`, "dev", lab.overlays.nebula.interface]);
        const fleet = liveFleet(Object.fromEntries(await Promise.all(nodes.map(async (n) => [n.name, await tailnetIp(n)] as const))));
        const passed = await runPreflight(n1, fleet);
        expect(`${passed.stdout}${passed.stderr}`).toContain(`preflight ${n1.name}: ok`);
        expect(passed.status).toBe(0);

        // Accept routes: table 52 now steals the cluster range, and pre-flight says so.
        await tsMust(n1, ["set", "--accept-routes=true"]);
        await waitFor("table 52 to route the cluster CIDR", async () => ((await table52(n1)).includes(ROUTES[0]) ? true : undefined), {
            timeoutMs: 20_000,
            intervalMs: 300,
            context: logs,
        });
        const failed = await runPreflight(n1, fleet);
        expect(failed.status).toBe(1);
        expect(failed.stderr).toMatch(
            new RegExp(
                `preflight ${n1.name}: Tailscale table 52 routes (10\\.42\\.0\\.0/16|10\\.43\\.0\\.0/16), which covers cluster range (10\\.42\\.0\\.0/16|10\\.43\\.0\\.0/16): an accepted subnet route`,
            ),
        );

        await tsMust(n1, ["set", `--accept-routes=${String(lab.overlays.tailnet.acceptRoutes)}`]);
        await waitFor(
            "table 52 to drop the cluster CIDRs again",
            async () => {
                const table = await table52(n1);
                return ROUTES.some((r) => table.includes(r)) ? undefined : true;
            },
            {
                timeoutMs: 20_000,
                intervalMs: 300,
                context: logs,
            },
        );
    });

    it("6. after a headscale restart on the same state dir and noise key, the nodes reconnect without re-enrolling and keep their addresses", async () => {
        const before = await hsNodes();
        const ipsBefore = await Promise.all(nodes.map(tailnetIp));
        const keysBefore = await Promise.all(nodes.map(async (n) => (await status(n)).Self.PublicKey));
        const noiseKeyBefore = await httpsIn(ns(n1.short), caFile, `${HS_URL}/key?v=120`);
        // No node could enroll again: the only pre-auth key is expired before the restart.
        await hs(["preauthkeys", "expire", "--id", authKeyId]);

        await stop([headscale!]);
        expect(exited(headscale!.child)).toBe(true);
        await startHeadscale();

        expect(fs.readFileSync(hsPaths.noiseKey, "utf8").trim()).toBe(NOISE_KEY);
        expect(await httpsIn(ns(n1.short), caFile, `${HS_URL}/key?v=120`)).toEqual(noiseKeyBefore);
        await waitFor(
            "every node to be online in headscale again",
            async () => ((await hsNodes()).filter((n) => n.online).length === nodes.length ? true : undefined),
            { timeoutMs: 60_000, intervalMs: 500, context: logs },
        );
        const after = await hsNodes();
        const identity = (list: HsNode[]): unknown[] => list.map((n) => [String(n.id), n.name, n.node_key, n.machine_key, [...n.ip_addresses].sort()]).sort();
        expect(identity(after)).toEqual(identity(before));

        for (const [i, node] of nodes.entries()) {
            const s = await waitRunning(node, 30_000);
            expect(s.Self.PublicKey).toBe(keysBefore[i]);
            expect(s.Self.TailscaleIPs!.find((a) => !a.includes(":"))).toBe(ipsBefore[i]);
        }
        expect(await pingUntilReply(n1, ipsBefore[2])).toContain(`bytes from ${ipsBefore[2]}`);
        expect(await pingUntilReply(n3, ipsBefore[1])).toContain(`bytes from ${ipsBefore[1]}`);
        expect(await pingUntilReply(n2, ipsBefore[0])).toContain(`bytes from ${ipsBefore[0]}`);
    });

    it("2b. with headscale down, the relay refuses clients instead of failing open", async () => {
        await stop([headscale!]);
        const mark = fs.readFileSync(derper!.log, "utf8").length;
        await ts(n3, ["debug", "derp", String(relay.regionId)], 30_000);
        const refused = await waitFor(
            "derper to log a rejection for the unreachable admission controller",
            () => {
                const log = fs.readFileSync(derper!.log, "utf8").slice(mark);
                return Promise.resolve(new RegExp(`rejected: Post "${HS_URL}/verify": .*connection refused`).exec(log) ?? undefined);
            },
            { timeoutMs: 10_000, intervalMs: 250, context: logs },
        );
        expect(refused[0]).not.toContain("allowing client");
        expect(fs.readFileSync(derper!.log, "utf8").slice(mark)).not.toContain("admission controller unreachable; allowing client");
    });
});
