import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PassThrough } from "node:stream";
import { stringify as stringifyYaml } from "yaml";
import { runRender } from "../../scripts/render";
import { runProgramUnderMocks, runUnderMocks, TEST_SECRETS, valueOf } from "../support/pulumiMocks";
import { rawFleet, type Raw } from "../support/fixtures";

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
            pulumi.runtime.setAllConfig(config, ["shortcircuit:headscaleNoiseKey", "shortcircuit:derpKey"]);
            return (await import("../../index")).default();
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

/** render's verdict on a raw fleet: the `<path>: <reason>` error lines, empty when it wrote the tree. */
function renderVerdict(raw: unknown): string[] {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sc-agree-"));
    try {
        const file = path.join(dir, "Pulumi.agree.yaml");
        fs.writeFileSync(file, stringifyYaml({ config: { "shortcircuit:fleet": raw } }));
        const stdout = new PassThrough();
        const stderr = new PassThrough();
        const code = runRender(["--config-file", file, "--out", path.join(dir, "out")], stdout, stderr);
        const lines = String(stderr.read() ?? "")
            .split("\n")
            .filter((line) => line !== "" && !line.startsWith("render: ") && !line.startsWith("warning: "));
        expect(code === 0).toBe(lines.length === 0);
        return lines;
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

describe("render and the program agree", () => {
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
    ];
    it.each(cases)("on %s", async (_name, mutate) => {
        const raw: Raw = rawFleet("lab");
        mutate(raw);
        const expected = renderVerdict(raw);
        const { error } = await runProgramUnderMocks({ stack: "lab", preview: true }, raw);
        expect(error === undefined ? [] : (error as Error).message.split("\n")).toEqual(expected);
    });

    it("on an unquoted CA date, as each reads it", async () => {
        // render parses the YAML itself; the engine hands the program Go's spelling of the date.
        const raw: Raw = rawFleet("lab");
        expect(renderVerdict(raw)).toEqual([]);
        raw.overlays.nebula.pki.caIssuedOn = "2026-11-01 00:00:00 +0000 UTC";
        const { error, program } = await runProgramUnderMocks({ stack: "lab", preview: true }, raw);
        expect(error).toBeUndefined();
        expect(Object.keys(await valueOf(program!.nebulaCertExpiry))).toContain("lab-agent-01");
    });
});
