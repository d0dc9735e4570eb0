import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { PassThrough } from "node:stream";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { runRender } from "../../scripts/render";
import { renderFleetFiles, type RenderedFiles } from "../../scripts/render/files";
import { BOOTSTRAP_PARAMS_PATH, digitalOceanVolumeDevice, headscaleVolumeName } from "../../components/control/files";
import { parseNebulaCert } from "../../stacks/nebulaCert";
import { nodeRolloutPayloads } from "../../components/k3s/rollout";
import { PayloadError, framedPayload, parsePayload } from "../../components/remote/payload";
import { scriptFile } from "../../components/remote/scripts";
import { THROWAWAY_CA_SUFFIX } from "../../components/nebula/issuance";
import type { Fleet } from "../../stacks/schema";
import { k3sNodes } from "../../stacks/fleet";
import { formatProblem, validateFleet } from "../../stacks/validate";
import { rawFleet, type Raw } from "../support/fixtures";
import { renderSshConfig } from "../../components/access/sshConfig";

/*
 * Property-style: every free-text-capable field is fed every hostile string. Each input is
 * either refused with one-line `<config path>: <reason>` problems naming the field, or
 * rendered so that the real consumer (ssh -G, the YAML parser, bash reading the payload,
 * the Nebula certificate decoder) reads the value back unchanged. Every input also goes
 * through the render command, which must write nothing outside --out.
 */

const HOSTILE: readonly string[] = [
    'say "hi"',
    "a\nb",
    "a\rb",
    "$(touch /tmp/sc-pwned)",
    "`id`",
    "a;b",
    "*",
    "..",
    "../../escape",
    "a\u0000b",
    "x".repeat(300),
    "ünïcödé",
    "a b",
];

type ReadBack = (files: RenderedFiles, fleet: Fleet, value: string) => void;

interface Field {
    /** The config path a refusal must name (a prefix of the reported path). */
    path: string;
    set: (fleet: Raw, value: string) => void;
    /** How the consumer reads the rendered value; absent for values no file carries. */
    readBack?: ReadBack;
    /** A valid but unusual value, so every read-back runs at least once. */
    valid: string;
}

function yamlOf(files: RenderedFiles, file: string): Raw {
    const text = files.get(file)?.content;
    if (text === undefined) {
        throw new Error(`${file} was not rendered`);
    }
    return parseYaml(text);
}

function clusterObject(files: RenderedFiles, kind: string): Raw {
    for (const [file, text] of files) {
        if (file.startsWith("cluster/")) {
            const object: Raw = parseYaml(text.content);
            if (object.kind === kind) {
                return object;
            }
        }
    }
    throw new Error(`no ${kind} rendered`);
}

let scratch: string;
beforeAll(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), "sc-hostile-"));
});
afterAll(() => {
    fs.rmSync(scratch, { recursive: true, force: true });
});

/** `ssh -G` prints the effective client config for a host: the consumer's own reading. */
function sshEffective(config: string, host: string): Map<string, string> {
    const file = path.join(scratch, "ssh.conf");
    fs.writeFileSync(file, config);
    const result = spawnSync("ssh", ["-G", "-F", file, host], { encoding: "utf8", timeout: 10000 });
    if (result.status !== 0) {
        throw new Error(`ssh -G failed: ${result.stderr}`);
    }
    const settings = new Map<string, string>();
    for (const line of result.stdout.split("\n")) {
        const space = line.indexOf(" ");
        if (space > 0 && !settings.has(line.slice(0, space))) {
            settings.set(line.slice(0, space), line.slice(space + 1));
        }
    }
    return settings;
}

/** Runs `body` after the remote steps' prelude with `payload` on stdin; returns what it prints, NUL-separated. */
function bashReads(payload: string, body: string): string[] {
    const result = spawnSync("bash", ["-c", `${scriptFile("remote/prelude.sh")}${body}`], { input: payload, encoding: "utf8", timeout: 10000 });
    if (result.status !== 0) {
        throw new Error(`bash failed: ${result.stderr}`);
    }
    return result.stdout.split("\0").slice(0, -1);
}

const nodeNameReadBack: ReadBack = (files, fleet, value) => {
    expect(sshEffective(files.get("ssh/lan.conf")!.content, value).get("hostname")).toBe("192.168.50.21");
    expect(yamlOf(files, `hosts/${value}/etc/rancher/k3s/config.yaml`)["node-name"]).toBe(value);
    const node = k3sNodes(fleet).find((each) => each.name === value)!;
    expect(bashReads(nodeRolloutPayloads(fleet, node).prepare("token"), `param NODE_NAME; printf '\\0'`)).toEqual([value]);
};

const FIELDS: readonly Field[] = [
    {
        path: "fleet.sites[0].name",
        set: (fleet, value) => {
            fleet.sites[0].name = value;
            for (const node of fleet.nodes) {
                node.site = value;
            }
        },
        valid: "s".repeat(63),
        readBack: (files, _fleet, value) => expect(parseNebulaCert(files.get("hosts/lab-agent-01/etc/nebula/host.crt")!.content).groups).toContain(value),
    },
    { path: "fleet.sites[0].description", set: (fleet, value) => (fleet.sites[0].description = value), valid: "Bench (Austin) $HOME 'q' ü" },
    { path: "fleet.nodes[1].name", set: (fleet, value) => (fleet.nodes[1].name = value), valid: "n".repeat(63), readBack: nodeNameReadBack },
    { path: "fleet.nodes[1].hardware", set: (fleet, value) => (fleet.nodes[1].hardware = value), valid: "rpi5 (8 GB) `x`" },
    {
        path: "fleet.nodes[1].ssh.user",
        set: (fleet, value) => (fleet.nodes[1].ssh = { user: value }),
        valid: "_svc-deploy_01",
        readBack: (files, _fleet, value) => expect(sshEffective(files.get("ssh/lan.conf")!.content, "lab-agent-01").get("user")).toBe(value),
    },
    { path: "fleet.nodes[1].ssh.host", set: (fleet, value) => (fleet.nodes[1].ssh = { host: value }), valid: "jump-01.lab.kub0.io" },
    {
        path: "fleet.nodes[2].lan.interface",
        set: (fleet, value) => (fleet.nodes[2].lan.interface = value),
        valid: "enp1s0f1.100_x",
        readBack: (files, fleet, value) => {
            const node = k3sNodes(fleet).find((each) => each.name === "lab-agent-02")!;
            expect(
                bashReads(
                    nodeRolloutPayloads(fleet, node).prepare("token"),
                    `pairs=(); param_words EXPECT_ADDRESSES pairs; for pair in "\${pairs[@]}"; do printf '%s\\0' "\${pair%%=*}"; done`,
                ),
            ).toContain(value);
            expect(yamlOf(files, "hosts/lab-agent-02/etc/rancher/k3s/config.yaml")["flannel-iface"]).toBe(value);
        },
    },
    {
        path: "fleet.overlays.tailnet.interface",
        set: (fleet, value) => (fleet.overlays.tailnet.interface = value),
        valid: "ts-0.1_a",
        readBack: (files, _fleet, value) => expect(yamlOf(files, "hosts/lab-server-01/etc/rancher/k3s/config.yaml")["flannel-iface"]).toBe(value),
    },
    {
        path: "fleet.overlays.nebula.interface",
        set: (fleet, value) => (fleet.overlays.nebula.interface = value),
        valid: "nebula-backup01",
        readBack: (files, _fleet, value) => expect(yamlOf(files, "hosts/lab-agent-01/etc/nebula/config.yml").tun.dev).toBe(value),
    },
    {
        path: "fleet.nodes[3].nebula.publicEndpoint",
        set: (fleet, value) => (fleet.nodes[3].nebula.publicEndpoint = value),
        valid: "203.0.113.9:65535",
        readBack: (files, _fleet, value) => expect(yamlOf(files, "hosts/lab-agent-01/etc/nebula/config.yml").static_host_map["10.68.1.2"]).toEqual([value]),
    },
    {
        path: "fleet.nodes[1].nebula.groups[0]",
        set: (fleet, value) => (fleet.nodes[1].nebula.groups = [value]),
        valid: "gpu fast $(x) ü",
        readBack: (files, _fleet, value) => expect(parseNebulaCert(files.get("hosts/lab-agent-01/etc/nebula/host.crt")!.content).groups).toContain(value),
    },
    {
        path: "fleet.overlays.nebula.adminGroup",
        set: (fleet, value) => (fleet.overlays.nebula.adminGroup = value),
        valid: "ops; `team`",
        readBack: (files, _fleet, value) =>
            expect(yamlOf(files, "hosts/lab-agent-01/etc/nebula/config.yml").firewall.inbound.map((rule: { group?: string }) => rule.group)).toContain(value),
    },
    {
        path: "fleet.overlays.nebula.pki.caName",
        set: (fleet, value) => (fleet.overlays.nebula.pki.caName = value),
        valid: 'Lab CA "2026" ü',
        readBack: (files, _fleet, value) =>
            expect(parseNebulaCert(files.get("hosts/lab-agent-01/etc/nebula/ca.crt")!.content).name).toBe(`${value}${THROWAWAY_CA_SUFFIX}`),
    },
    {
        path: "fleet.overlays.nebula.pki.caIssuedOn",
        set: (fleet, value) => (fleet.overlays.nebula.pki.caIssuedOn = value),
        valid: "2026-01-31 00:00:00 +0000 UTC",
        readBack: (files) =>
            expect(parseNebulaCert(files.get("hosts/lab-agent-01/etc/nebula/ca.crt")!.content).notBefore.toISOString()).toBe("2026-01-31T00:00:00.000Z"),
    },
    {
        path: "fleet.overlays.tailnet.prefixV6",
        set: (fleet, value) => (fleet.overlays.tailnet.prefixV6 = value),
        valid: "fd7a:115c:a1e0:ab00::/56",
        readBack: (files, _fleet, value) => expect(yamlOf(files, "hosts/shortcircuit-lab-sfo3/etc/headscale/config.yaml").prefixes.v6).toBe(value),
    },
    {
        path: "fleet.nodes[1].labels",
        set: (fleet, value) => (fleet.nodes[1].labels = { [value]: "v" }),
        valid: `${"d".repeat(63)}.example.com/${"k".repeat(63)}`,
        readBack: (files, _fleet, value) => expect(yamlOf(files, "hosts/lab-agent-01/etc/rancher/k3s/config.yaml")["node-label"]).toContain(`${value}=v`),
    },
    {
        path: "fleet.nodes[1].labels.k",
        set: (fleet, value) => (fleet.nodes[1].labels = { k: value }),
        valid: "A-b_c.9",
        readBack: (files, _fleet, value) => expect(yamlOf(files, "hosts/lab-agent-01/etc/rancher/k3s/config.yaml")["node-label"]).toContain(`k=${value}`),
    },
    {
        path: "fleet.nodes[1].taints[0]",
        set: (fleet, value) => (fleet.nodes[1].taints = [`${value}=true:NoSchedule`]),
        valid: "example.com/Gpu_1.x",
        readBack: (files, _fleet, value) =>
            expect(yamlOf(files, "hosts/lab-agent-01/etc/rancher/k3s/config.yaml")["node-taint"]).toEqual([`${value}=true:NoSchedule`]),
    },
    {
        path: "fleet.nodes[1].taints[0]",
        set: (fleet, value) => (fleet.nodes[1].taints = [`gpu=${value}:NoExecute`]),
        valid: "Z9.z-_a",
        readBack: (files, _fleet, value) =>
            expect(yamlOf(files, "hosts/lab-agent-01/etc/rancher/k3s/config.yaml")["node-taint"]).toEqual([`gpu=${value}:NoExecute`]),
    },
    {
        path: "fleet.cluster.serverUrl",
        set: (fleet, value) => (fleet.cluster.serverUrl = value),
        valid: "https://10.68.1.11:6443",
        readBack: (files, _fleet, value) => expect(yamlOf(files, "hosts/lab-agent-01/etc/rancher/k3s/config.yaml").server).toBe(value),
    },
    {
        path: "fleet.cluster.apiDnsNames[0]",
        set: (fleet, value) => (fleet.cluster.apiDnsNames = [value]),
        valid: "api-1.k3s.lab.kub0.io",
        readBack: (files, _fleet, value) => expect(yamlOf(files, "hosts/lab-server-01/etc/rancher/k3s/config.yaml")["tls-san"]).toContain(value),
    },
    {
        path: "fleet.controlServer.hostname",
        set: (fleet, value) => (fleet.controlServer.hostname = value),
        valid: "headscale-1.lab.kub0.io",
        readBack: (files, _fleet, value) => expect(yamlOf(files, "hosts/shortcircuit-lab-sfo3/etc/headscale/config.yaml").server_url).toBe(`https://${value}`),
    },
    {
        path: "fleet.controlServer.derp.regionName",
        set: (fleet, value) => (fleet.controlServer.derp.regionName = value),
        valid: 'SFO3 "lab" $(x) ü',
        readBack: (files, _fleet, value) => expect(yamlOf(files, "hosts/shortcircuit-lab-sfo3/etc/headscale/config.yaml").derp.server.region_name).toBe(value),
    },
    {
        path: "fleet.controlServer.host.name",
        set: (fleet, value) => (fleet.controlServer.host.name = value),
        valid: `l${"a".repeat(53)}`,
        readBack: (files, _fleet, value) => {
            expect(sshEffective(files.get("ssh/nebula.conf")!.content, value).get("hostname")).toBe("10.68.0.1");
            // The bootstrap reads the device from its parameters file, never from a command line.
            const writeFiles = yamlOf(files, `hosts/${value}/cloud-init.yaml`).write_files as { path: string; content: string }[];
            const params = writeFiles.find((file) => file.path === BOOTSTRAP_PARAMS_PATH)!.content;
            expect(parsePayload(params).params.VOLUME_DEVICE).toBe(digitalOceanVolumeDevice(headscaleVolumeName(value)));
            expect(bashReads(params, `param VOLUME_DEVICE; printf '\\0'`)).toEqual([digitalOceanVolumeDevice(headscaleVolumeName(value))]);
        },
    },
    { path: "fleet.controlServer.host.image", set: (fleet, value) => (fleet.controlServer.host.image = value), valid: "ubuntu-24-04-x64" },
    {
        path: "fleet.derpRelays[0].regionName",
        set: (fleet, value) => (fleet.derpRelays[0].regionName = value),
        valid: "Relay; `lab`",
        readBack: (files, _fleet, value) => expect(yamlOf(files, "hosts/shortcircuit-lab-sfo3/etc/headscale/derp.yaml").regions[901].regionname).toBe(value),
    },
    {
        path: "fleet.derpRelays[0].hostname",
        set: (fleet, value) => (fleet.derpRelays[0].hostname = value),
        valid: "d-1.relay.lab.kub0.io",
        readBack: (files, _fleet, value) =>
            expect(yamlOf(files, "hosts/shortcircuit-lab-sfo3/etc/headscale/derp.yaml").regions[901].nodes[0].hostname).toBe(value),
    },
    {
        path: "fleet.edge.middlewares[0].stripPrefix.prefixes[0]",
        set: (fleet, value) => (fleet.edge.middlewares[0].stripPrefix.prefixes = [value]),
        valid: "/a;b=c/%20/*",
        readBack: (files, _fleet, value) => expect(clusterObject(files, "Middleware").spec.stripPrefix.prefixes).toEqual([value]),
    },
    {
        path: "fleet.edge.middlewares[0]",
        set: (fleet, value) => (fleet.edge.middlewares = [{ name: "hdr", namespace: "networking", headers: { customRequestHeaders: { [value]: "v" } } }]),
        valid: "X-Auth_Request.User!#",
        readBack: (files, _fleet, value) => expect(clusterObject(files, "Middleware").spec.headers.customRequestHeaders).toEqual({ [value]: "v" }),
    },
    {
        path: "fleet.edge.middlewares[0].headers.customRequestHeaders.X",
        set: (fleet, value) => (fleet.edge.middlewares = [{ name: "hdr", namespace: "networking", headers: { customRequestHeaders: { X: value } } }]),
        valid: 'a "b" $(c) `d`; *\tü',
        readBack: (files, _fleet, value) => expect(clusterObject(files, "Middleware").spec.headers.customRequestHeaders).toEqual({ X: value }),
    },
    {
        path: "fleet.edge.middlewares[0].forwardAuth.address",
        set: (fleet, value) => (fleet.edge.middlewares = [{ name: "auth", namespace: "networking", forwardAuth: { address: value } }]),
        valid: "http://auth.networking.svc:4180/oauth2/auth?rd=$x",
        readBack: (files, _fleet, value) => expect(clusterObject(files, "Middleware").spec.forwardAuth.address).toBe(value),
    },
    {
        path: "fleet.edge.middlewares[0].name",
        set: (fleet, value) => (fleet.edge.middlewares[0].name = value),
        valid: "m".repeat(63),
        readBack: (files, _fleet, value) => expect(clusterObject(files, "Middleware").metadata.name).toBe(value),
    },
    {
        path: "fleet.edge.externalServices[0].ports[0].name",
        set: (fleet, value) => (fleet.edge.externalServices[0].ports[0].name = value),
        valid: "http-alt-8080",
        readBack: (files, _fleet, value) => expect(clusterObject(files, "Service").spec.ports[0].name).toBe(value),
    },
    {
        path: "fleet.edge.workloads[0].image",
        set: (fleet, value) => (fleet.edge.workloads = [{ name: "w", namespace: "networking", kind: "Deployment", image: value }]),
        valid: "registry.lab:5000/team/app_x:1.2.3-rc.1",
        readBack: (files, _fleet, value) => expect(clusterObject(files, "Deployment").spec.template.spec.containers[0].image).toBe(value),
    },
    {
        path: "fleet.overlays.nebula.admins[0].name",
        set: (fleet, value) => (fleet.overlays.nebula.admins = [{ name: value, address: "10.68.9.9" }]),
        valid: "ops-laptop-01",
        readBack: (files, _fleet, value) => expect(parseNebulaCert(files.get(`hosts/${value}/etc/nebula/host.crt`)!.content).name).toBe(value),
    },
];

function listAll(dir: string): string[] {
    return fs
        .readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((entry) => !entry.isDirectory())
        .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
        .sort();
}

/** The render command on this raw fleet, in a fresh sandbox; asserts it wrote only inside --out. */
function renderInSandbox(raw: unknown): { code: number; stderr: string } {
    const sandbox = fs.mkdtempSync(path.join(scratch, "run-"));
    const file = path.join(sandbox, "Pulumi.hostile.yaml");
    fs.writeFileSync(file, stringifyYaml({ config: { "shortcircuit:fleet": raw } }));
    // Deep enough that ../../ from a host directory would still land inside the sandbox, where it is seen.
    const out = path.join(sandbox, "a", "b", "out");
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const code = runRender(["--config-file", file, "--out", out, "--pki-seed", "11".repeat(32)], stdout, stderr);
    const outside = listAll(sandbox).filter((entry) => entry !== "Pulumi.hostile.yaml" && !entry.startsWith(path.join("a", "b", "out") + path.sep));
    expect(outside).toEqual([]);
    fs.rmSync(sandbox, { recursive: true, force: true });
    return { code, stderr: String(stderr.read() ?? "") };
}

const PROBLEM_LINE = /^(warning: )?fleet[^\n]*: [^\n]+$/;

describe("every free-text field against hostile strings", () => {
    for (const field of FIELDS) {
        it(`${field.path}: refused with its path, or read back unchanged by its consumer`, () => {
            for (const value of [...HOSTILE, field.valid]) {
                const raw: Raw = rawFleet("lab");
                field.set(raw, value);
                const result = validateFleet(raw, { now: new Date("2026-11-29T00:00:00Z") });
                const lines = result.problems.map(formatProblem);
                for (const line of lines) {
                    expect(line).toMatch(PROBLEM_LINE);
                }
                const rendered = renderInSandbox(raw);
                if (!result.fleet) {
                    expect({ value, lines: lines.filter((line) => line.startsWith(field.path)).length > 0 }).toEqual({ value, lines: true });
                    expect(rendered.code).toBe(1);
                    continue;
                }
                // Accepted: render must succeed and the consumer must read the value back as given.
                expect({ value, code: rendered.code, stderr: rendered.stderr }).toEqual({ value, code: 0, stderr: "" });
                const { files } = renderFleetFiles(result.fleet, { now: new Date("2026-11-29T00:00:00Z"), pkiSeedHex: "22".repeat(32) });
                field.readBack?.(files, result.fleet, value);
            }
            // The valid value must really be accepted, or the read-back above never ran.
            const raw: Raw = rawFleet("lab");
            field.set(raw, field.valid);
            expect(
                validateFleet(raw)
                    .problems.filter((p) => p.severity === "error")
                    .map(formatProblem),
            ).toEqual([]);
        });
    }
});

describe("defence in depth, should a value ever bypass the schema", () => {
    it("the SSH config renderer refuses a value ssh would read as more than one literal word", () => {
        const fleet = validateFleet(rawFleet("lab")).fleet!;
        for (const user of ["root\nHost *", "a b", 'a"b', "*"]) {
            const bypassed: Fleet = { ...fleet, nodes: fleet.nodes.map((node, index) => (index === 1 ? { ...node, ssh: { ...node.ssh, user } } : node)) };
            expect(() => renderSshConfig(bypassed, "lan")).toThrow(/is not a single literal ssh_config word/);
        }
    });

    it("no value reaches a shell as code: payload parameters are single printable lines read back verbatim", () => {
        const hostile = "x;reboot $(id) `id` 'q' \"dq\" *";
        expect(bashReads(framedPayload({ VOLUME_DEVICE: hostile }), `param VOLUME_DEVICE; printf '\\0'`)).toEqual([hostile]);
        for (const value of ["a\nb", "a\rb", "a\u0000b", "ü"]) {
            expect(() => framedPayload({ VOLUME_DEVICE: value })).toThrow(PayloadError);
        }
    });
});
