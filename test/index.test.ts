import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PassThrough } from "node:stream";
import { stringify as stringifyYaml } from "yaml";
import { runDriftCommand } from "../scripts/drift";
import { runRender } from "../scripts/render";
import { SSH_VIA_ENV } from "../stacks/check";
import { runProgramUnderMocks, runUnderMocks, TEST_SECRETS, valueOf } from "./support/pulumiMocks";
import { rawFleet, type Raw } from "./support/fixtures";

describe("the program under strict mocks", () => {
    it("builds from the lab stack and exports the rollout order", async () => {
        const { program, error } = await runProgramUnderMocks({ stack: "lab" }, rawFleet("lab"));
        expect(error).toBeUndefined();
        expect(program!.rollout).toEqual(["lab-agent-01", "lab-agent-02", "lab-server-01"]);
        expect(Object.keys(program!.k3sConfigSha256).sort()).toEqual(["lab-agent-01", "lab-agent-02", "lab-server-01"]);
        expect(program!.k3sConfigSha256["lab-server-01"]).toMatch(/^[0-9a-f]{64}$/);
        const expiry = await valueOf(program!.nebulaCertExpiry);
        expect(Object.keys(expiry).sort()).toEqual(["lab-agent-01", "lab-agent-02", "lab-relay-01", "lab-server-01", "shortcircuit-lab-sfo3"]);
    });

    it("refuses an invalid fleet before declaring any resource", async () => {
        const raw: Raw = rawFleet("lab");
        raw.overlays.tailnet.mtu = 1200;
        raw.derpRelays[0].regionCode = "labsfo";
        const { recorder, error } = await runProgramUnderMocks({ stack: "lab" }, raw);
        // A RunError: the engine prints its message alone, with no "unhandled exception" or stack.
        expect((error as { __pulumiRunError?: boolean }).__pulumiRunError).toBe(true);
        expect((error as Error).message).toBe(
            [
                "fleet.overlays.tailnet.mtu: MTU 1200 is below the 1280 floor: SSH and TLS packets stop fitting (the Nebula MTU 1200 lockout)",
                'fleet.derpRelays[0].regionCode: DERP region code "labsfo" is already used by fleet.controlServer.derp',
            ].join("\n"),
        );
        expect(recorder.resources).toEqual([]);
    });

    it("fails without the k3s token secret, naming the key", async () => {
        const { error } = await runProgramUnderMocks({ stack: "lab" }, rawFleet("lab"), {});
        expect(String(error)).toMatch(/shortcircuit:k3sToken/);
    });
});

describe("the program in preview mode", () => {
    it("builds the prod stack with the same rollout as render", async () => {
        const { program, error } = await runProgramUnderMocks({ stack: "prod", preview: true }, rawFleet("prod"));
        expect(error).toBeUndefined();
        expect(program!.rollout).toHaveLength(18);
        expect(program!.rollout.slice(-1)).toEqual(["toa-fwd-gpu-01"]);
    });
});

describe("invalid config under the engine (issue 13)", () => {
    it("refuses a secret set without --secret, naming the key", async () => {
        const { recorder, error } = await runUnderMocks({ stack: "lab" }, rawFleet("lab"), async () => {
            const pulumi = await import("@pulumi/pulumi");
            const config: Record<string, string> = { "shortcircuit:fleet": JSON.stringify(rawFleet("lab")) };
            for (const [key, value] of Object.entries(TEST_SECRETS)) {
                config[`shortcircuit:${key}`] = value;
            }
            // As `pulumi config set shortcircuit:k3sToken …` without --secret leaves it.
            pulumi.runtime.setAllConfig(config, [
                "shortcircuit:headscaleNoiseKey",
                "shortcircuit:derpKey",
                "shortcircuit:replicaAccessKeyId",
                "shortcircuit:replicaSecretAccessKey",
            ]);
            return (await import("../index")).default({ exitOnRefusal: false });
        });
        expect((error as { __pulumiRunError?: boolean }).__pulumiRunError).toBe(true);
        expect((error as Error).message).toBe(
            "shortcircuit:k3sToken: must be set with --secret (it is stored in plaintext): pulumi config set --secret shortcircuit:k3sToken <value>",
        );
        expect(recorder.resources).toEqual([]);
    });

    it("prints each problem on its own line, even for a hostile key, in preview too", async () => {
        const raw: Raw = rawFleet("lab");
        raw.nodes[1].labels = { "x\nfleet.fake: forged": "y" };
        const { error } = await runProgramUnderMocks({ stack: "lab", preview: true }, raw);
        expect((error as { __pulumiRunError?: boolean }).__pulumiRunError).toBe(true);
        const lines = (error as Error).message.split("\n");
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/^fleet\.nodes\[1\]\.labels\["x\\nfleet\.fake: forged"\]: key must be a Kubernetes qualified name/);
    });
});

/** A secret as the stack holds it: its value, and whether it was set with --secret. */
type StackSecret = { value: string; secret: boolean };

const SECRET_TEST_SECRETS: Readonly<Record<string, StackSecret>> = Object.fromEntries(
    Object.entries(TEST_SECRETS).map(([key, value]) => [key, { value, secret: true }]),
);

/**
 * Runs an offline command on a stack file holding `raw` and `secrets` (a secret as `secure:`
 * ciphertext, as `pulumi config set --secret` writes it) and returns its `<path>: <reason>` error
 * lines, empty when it accepted the stack.
 */
async function offlineVerdict(
    raw: unknown,
    secrets: Readonly<Record<string, StackSecret>>,
    run: (file: string, dir: string, stdout: PassThrough, stderr: PassThrough) => Promise<number>,
    prefix: string,
    acceptedCode: number,
): Promise<string[]> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sc-agree-"));
    try {
        const file = path.join(dir, "Pulumi.agree.yaml");
        const config: Record<string, unknown> = { "shortcircuit:fleet": raw };
        for (const [key, { value, secret }] of Object.entries(secrets)) {
            config[`shortcircuit:${key}`] = secret ? { secure: `v1:${Buffer.from(value).toString("base64")}` } : value;
        }
        fs.writeFileSync(file, stringifyYaml({ config }));
        const stdout = new PassThrough();
        const stderr = new PassThrough();
        const code = await run(file, dir, stdout, stderr);
        const lines = String(stderr.read() ?? "")
            .split("\n")
            .filter((line) => line !== "" && !line.startsWith(prefix) && !line.startsWith("warning: "));
        expect(code === acceptedCode).toBe(lines.length === 0);
        return lines;
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/** render's verdict: the error lines, empty when it wrote the tree. */
function renderVerdict(raw: unknown, secrets: Readonly<Record<string, StackSecret>> = {}, env: NodeJS.ProcessEnv = {}): Promise<string[]> {
    return offlineVerdict(
        raw,
        secrets,
        (file, dir, stdout, stderr) => Promise.resolve(runRender(["--config-file", file, "--out", path.join(dir, "out")], stdout, stderr, env)),
        "render: ",
        0,
    );
}

/** drift's verdict: the error lines. `--host` names no host, so an accepted stack ends before any SSH session. */
function driftVerdict(raw: unknown, secrets: Readonly<Record<string, StackSecret>> = {}, env: NodeJS.ProcessEnv = {}): Promise<string[]> {
    return offlineVerdict(
        raw,
        secrets,
        (file, _dir, stdout, stderr) => runDriftCommand(["--config-file", file, "--host", "no-such-host"], stdout, stderr, env),
        "drift: ",
        2,
    );
}

/** The program's verdict under mocks: the lines of the RunError it fails with, empty when it ran. */
async function programVerdict(
    raw: unknown,
    secrets: Readonly<Record<string, StackSecret>> = SECRET_TEST_SECRETS,
    env: NodeJS.ProcessEnv = {},
): Promise<string[]> {
    const saved = process.env[SSH_VIA_ENV];
    if (env[SSH_VIA_ENV] === undefined) delete process.env[SSH_VIA_ENV];
    else process.env[SSH_VIA_ENV] = env[SSH_VIA_ENV];
    try {
        const { error } = await runUnderMocks({ stack: "lab", preview: true }, raw, async () => {
            const pulumi = await import("@pulumi/pulumi");
            const config: Record<string, string> = { "shortcircuit:fleet": JSON.stringify(raw) };
            for (const [key, { value }] of Object.entries(secrets)) {
                config[`shortcircuit:${key}`] = value;
            }
            const secretKeys = Object.entries(secrets)
                .filter(([, each]) => each.secret)
                .map(([key]) => `shortcircuit:${key}`);
            pulumi.runtime.setAllConfig(config, secretKeys);
            return (await import("../index")).default({ exitOnRefusal: false });
        });
        return error === undefined ? [] : (error as Error).message.split("\n");
    } finally {
        if (saved === undefined) delete process.env[SSH_VIA_ENV];
        else process.env[SSH_VIA_ENV] = saved;
    }
}

describe("render, drift and the program refuse alike (one checkStack)", () => {
    const cases: [string, (raw: Raw) => void][] = [
        ["a CA name with a trailing space", (raw) => (raw.overlays.nebula.pki.caName = "shortcircuit ")],
        ["a non-ASCII CA name", (raw) => (raw.overlays.nebula.pki.caName = "Kübö CA")],
        ["a droplet name that climbs out of hosts/", (raw) => (raw.controlServer.host.name = "../x")],
        [
            "a header value with shell syntax",
            (raw) => void raw.edge.middlewares.push({ name: "hdr", namespace: "networking", headers: { customRequestHeaders: { "X-Q": '$(id) `id`; "q"' } } }),
        ],
        ["an SSH user with a newline", (raw) => (raw.nodes[1].ssh = { user: "root\nHost *" })],
        ["a cluster CIDR in 100.64.0.0/10", (raw) => (raw.cluster.clusterCidr = "100.96.0.0/16")],
        ["an MTU below the floor and a reused DERP region code", (raw) => ((raw.overlays.tailnet.mtu = 1200), (raw.derpRelays[0].regionCode = "labsfo"))],
    ];
    it.each(cases)("on %s", async (_name, mutate) => {
        const raw: Raw = rawFleet("lab");
        mutate(raw);
        const expected = await programVerdict(raw);
        expect(await renderVerdict(raw, SECRET_TEST_SECRETS)).toEqual(expected);
        expect(await driftVerdict(raw, SECRET_TEST_SECRETS)).toEqual(expected);
    });

    const secretCases: [string, Record<string, StackSecret>, NodeJS.ProcessEnv][] = [
        ["a k3s token stored in plaintext", { ...SECRET_TEST_SECRETS, k3sToken: { value: "K10-test-token", secret: false } }, {}],
        ["a malformed noise key stored in plaintext", { ...SECRET_TEST_SECRETS, headscaleNoiseKey: { value: "privkey:not-hex", secret: false } }, {}],
        ["an SSH path override that names no network", SECRET_TEST_SECRETS, { [SSH_VIA_ENV]: "wifi" }],
    ];
    it.each(secretCases)("on %s", async (_name, secrets, env) => {
        const raw: Raw = rawFleet("lab");
        const expected = await programVerdict(raw, secrets, env);
        expect(expected.length).toBeGreaterThan(0);
        expect(await renderVerdict(raw, secrets, env)).toEqual(expected);
        expect(await driftVerdict(raw, secrets, env)).toEqual(expected);
    });

    it("accepts the lab stack, each of the three", async () => {
        const raw: Raw = rawFleet("lab");
        expect(await programVerdict(raw)).toEqual([]);
        expect(await renderVerdict(raw, SECRET_TEST_SECRETS)).toEqual([]);
        expect(await driftVerdict(raw, SECRET_TEST_SECRETS)).toEqual([]);
    });

    it("on an unquoted CA date, as each reads it", async () => {
        // render parses the YAML itself; the engine hands the program Go's spelling of the date.
        const raw: Raw = rawFleet("lab");
        expect(await renderVerdict(raw)).toEqual([]);
        raw.overlays.nebula.pki.caIssuedOn = "2026-11-01 00:00:00 +0000 UTC";
        const { error, program } = await runProgramUnderMocks({ stack: "lab", preview: true }, raw);
        expect(error).toBeUndefined();
        expect(Object.keys(await valueOf(program!.nebulaCertExpiry))).toContain("lab-agent-01");
    });
});
