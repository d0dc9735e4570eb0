import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { PassThrough } from "node:stream";
import { stringify as stringifyYaml } from "yaml";
import { runRender, targetInside, writeRenderedTree } from "../../scripts/render";
import { clusterObjectFile, edgeObjects, renderClusterEdge } from "../../components/edge/objects";
import { nebulaMembers } from "../../stacks/nebulaMembers";
import { k3sNodes } from "../../stacks/fleet";
import { rawFleet, validFleet, type Raw } from "../support/fixtures";

interface RunResult {
    code: number;
    stdout: string;
    stderr: string;
}

function render(args: string[]): RunResult {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const code = runRender(args, stdout, stderr);
    return { code, stdout: String(stdout.read() ?? ""), stderr: String(stderr.read() ?? "") };
}

let workDir: string;
beforeEach(() => {
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), "sc-render-"));
});
afterEach(() => {
    fs.rmSync(workDir, { recursive: true, force: true });
});

function listFiles(dir: string): string[] {
    return fs
        .readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((entry) => entry.isFile())
        .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
        .sort();
}

describe("npm run render", () => {
    it("writes a config.yaml for every prod node and a rollout.json naming every node once", () => {
        const out = path.join(workDir, "prod");
        const result = render(["--stack", "prod", "--out", out]);
        expect(result).toMatchObject({ code: 0, stderr: "" });

        const names = k3sNodes(validFleet("prod")).map((node) => node.name);
        for (const name of names) {
            const file = path.join(out, "hosts", name, "etc/rancher/k3s/config.yaml");
            expect(fs.readFileSync(file, "utf8")).toContain(`node-name: ${name}\n`);
        }
        const rollout = JSON.parse(fs.readFileSync(path.join(out, "rollout.json"), "utf8")) as { order: string[] };
        expect([...rollout.order].sort()).toEqual([...names].sort());
        expect(new Set(rollout.order).size).toBe(rollout.order.length);
        const members = nebulaMembers(validFleet("prod")).map((member) => member.name);
        expect(members).toEqual(expect.arrayContaining(["shortcircuit-lighthouse-sfo3", "aero", ...names]));
        expect(listFiles(out)).toEqual(
            [
                ".shortcircuit-render",
                "rollout.json",
                "ssh/lan.conf",
                "ssh/nebula.conf",
                "ssh/tailnet.conf",
                ...names.flatMap((name) => ["config.yaml", "cluster-token", "shortcircuit-rollout.env"].map((file) => `hosts/${name}/etc/rancher/k3s/${file}`)),
                ...members.flatMap((name) => ["ca.crt", "config.yml", "host.crt", "host.key"].map((file) => `hosts/${name}/etc/nebula/${file}`)),
                // Linux fleet hosts get Nebula's unit with its files, the Mac its LaunchDaemon; workstations run their own.
                ...validFleet("prod")
                    .nodes.filter((node) => node.os !== "macos" && node.nebula)
                    .map((node) => `hosts/${node.name}/etc/systemd/system/nebula.service`),
                "hosts/shortcircuit-lighthouse-sfo3/cloud-init.yaml",
                ...["config.yaml", "derp.yaml", "derp_server_private.key", "noise_private.key", "policy.hujson"].map(
                    (file) => `hosts/shortcircuit-lighthouse-sfo3/etc/headscale/${file}`,
                ),
                "hosts/shortcircuit-lighthouse-sfo3/etc/systemd/system/nebula.service",
                // controlServer.replica: Litestream's files and Headscale's restore drop-in.
                ...[
                    "etc/litestream.yml",
                    "etc/default/litestream",
                    "etc/systemd/system/litestream.service",
                    "etc/systemd/system/headscale-restore.service",
                    "etc/systemd/system/headscale.service.d/shortcircuit-restore.conf",
                ].map((file) => `hosts/shortcircuit-lighthouse-sfo3/${file}`),
                "hosts/aero/Library/LaunchDaemons/com.tailscale.derper.plist",
                "hosts/aero/Library/LaunchDaemons/io.kub0.shortcircuit.nebula.plist",
                ...edgeObjects(renderClusterEdge(validFleet("prod"))).map(clusterObjectFile),
            ].sort(),
        );
        expect(fs.statSync(path.join(out, "hosts/shortcircuit-lighthouse-sfo3/cloud-init.yaml")).mode & 0o777).toBe(0o600);
        expect(fs.statSync(path.join(out, "hosts/shortcircuit-lighthouse-sfo3/etc/headscale/noise_private.key")).mode & 0o777).toBe(0o600);
        expect(fs.statSync(path.join(out, "hosts/aero/etc/nebula/host.key")).mode & 0o777).toBe(0o600);
        expect(fs.statSync(path.join(out, "hosts/shortcircuit-lighthouse-sfo3/etc/default/litestream")).mode & 0o777).toBe(0o600);
        expect(result.stdout).toContain("identities are throwaway");
        expect(fs.statSync(path.join(out, `hosts/${names[0]}/etc/rancher/k3s/cluster-token`)).mode & 0o777).toBe(0o600);
        expect(fs.readFileSync(path.join(out, "cluster/helmchartconfig-kube-system-traefik.yaml"), "utf8")).toContain("allowExternalNameServices: true");
    });

    it("reads a stack file from elsewhere with --config-file and re-renders over its own output", () => {
        const file = path.join(workDir, "Pulumi.elsewhere.yaml");
        fs.writeFileSync(file, stringifyYaml({ config: { "shortcircuit:fleet": rawFleet("lab") } }));
        const out = path.join(workDir, "lab");
        expect(render(["--config-file", file, "--out", out]).code).toBe(0);
        expect(render(["--config-file", file, "--out", out]).code).toBe(0);
        expect(fs.existsSync(path.join(out, "hosts/lab-agent-02/etc/rancher/k3s/config.yaml"))).toBe(true);
        expect(fs.readdirSync(workDir).filter((name) => name.includes("staging"))).toEqual([]);
    });

    it("rejects an invalid stack with every problem on stderr and writes nothing", () => {
        const raw: Raw = rawFleet("lab");
        raw.overlays.nebula.mtu = 1200;
        raw.nodes[2].nebula.address = "10.68.1.21";
        const file = path.join(workDir, "Pulumi.bad.yaml");
        fs.writeFileSync(file, stringifyYaml({ config: { "shortcircuit:fleet": raw } }));
        const out = path.join(workDir, "bad");

        const result = render(["--config-file", file, "--out", out]);
        expect(result.code).toBe(1);
        expect(result.stderr).toContain("fleet.overlays.nebula.mtu: MTU 1200 is below the 1280 floor");
        expect(result.stderr).toContain("fleet.nodes[2].nebula.address: 10.68.1.21 is a duplicate of lab-agent-01");
        expect(result.stderr).toContain("nothing written");
        expect(fs.readdirSync(workDir)).toEqual(["Pulumi.bad.yaml"]);
    });

    it("refuses to overwrite a directory it did not write", () => {
        const out = path.join(workDir, "precious");
        fs.mkdirSync(out);
        fs.writeFileSync(path.join(out, "notes.txt"), "keep me");
        const result = render(["--stack", "lab", "--out", out]);
        expect(result.code).toBe(1);
        expect(result.stderr).toContain("was not written by render");
        expect(fs.readdirSync(out)).toEqual(["notes.txt"]);
    });

    it("refuses to replace its own output once someone added a file there, and keeps the file", () => {
        const out = path.join(workDir, "lab");
        expect(render(["--stack", "lab", "--out", out]).code).toBe(0);
        fs.writeFileSync(path.join(out, "hosts", "notes.txt"), "keep me");
        const result = render(["--stack", "lab", "--out", out]);
        expect(result.code).toBe(1);
        expect(result.stderr).toBe(
            `render: ${out} holds 1 file render did not write ("hosts/notes.txt"); move it out or choose another --out, render replaces the whole directory\n`,
        );
        expect(fs.readFileSync(path.join(out, "hosts", "notes.txt"), "utf8")).toBe("keep me");
        fs.rmSync(path.join(out, "hosts", "notes.txt"));
        expect(render(["--stack", "lab", "--out", out]).code).toBe(0);
    });

    it("refuses an --out inside the source tree, except the git-ignored out/", () => {
        const root = path.resolve(__dirname, "../..");
        for (const out of [path.join(root, "stacks", "rendered"), root, path.join(root, "out")]) {
            const result = render(["--stack", "lab", "--out", out]);
            expect(result.code).toBe(1);
            expect(result.stderr).toMatch(/source tree/);
        }
        expect(fs.existsSync(path.join(root, "stacks", "rendered"))).toBe(false);
    });

    it("refuses a plaintext secret in the stack file and writes nothing", () => {
        const file = path.join(workDir, "Pulumi.plain.yaml");
        fs.writeFileSync(file, stringifyYaml({ config: { "shortcircuit:fleet": rawFleet("lab"), "shortcircuit:derpKey": `privkey:${"ab".repeat(32)}` } }));
        const result = render(["--config-file", file, "--out", path.join(workDir, "plain")]);
        expect(result.code).toBe(1);
        expect(result.stderr).toContain("shortcircuit:derpKey: must be set with --secret (it is stored in plaintext)");
        expect(fs.readdirSync(workDir)).toEqual(["Pulumi.plain.yaml"]);
    });

    it("never writes a path that leaves its staging directory, whatever the model says", () => {
        const out = path.join(workDir, "nested", "out");
        for (const bad of ["../escape.txt", "hosts/../../escape.txt", "/tmp/escape.txt", "hosts//x", "hosts/./x", ""]) {
            const file = (content: string): { content: string; mode: number } => ({ content, mode: 0o644 });
            expect(() =>
                writeRenderedTree(
                    out,
                    new Map([
                        ["rollout.json", file("{}")],
                        [bad, file("x")],
                    ]),
                ),
            ).toThrow(/refusing to write/);
        }
        expect(listFiles(workDir)).toEqual([]);
        expect(() => targetInside(workDir, "hosts/a/etc/x")).not.toThrow();
    });

    it("explains its usage when arguments are missing", () => {
        const result = render(["--stack", "lab"]);
        expect(result.code).toBe(2);
        expect(result.stderr).toContain("--out <dir> is required");
    });
});

describe("the render command line", () => {
    it("exits non-zero with the problem on stderr for an invalid --config-file, writing nothing", () => {
        const raw: Raw = rawFleet("lab");
        raw.cluster.clusterCidr = "100.68.0.0/16";
        const file = path.join(workDir, "Pulumi.cli.yaml");
        fs.writeFileSync(file, stringifyYaml({ config: { "shortcircuit:fleet": raw } }));
        const out = path.join(workDir, "cli-out");
        const result = spawnSync(process.execPath, ["-r", "ts-node/register/transpile-only", "scripts/render.ts", "--config-file", file, "--out", out], {
            cwd: path.resolve(__dirname, "../.."),
            encoding: "utf8",
            timeout: 60000,
        });
        expect(result.status).toBe(1);
        expect(result.stderr).toContain("fleet.cluster.clusterCidr: cluster CIDR 100.68.0.0/16 overlaps the tailnet prefix 100.68.0.0/16");
        expect(fs.existsSync(out)).toBe(false);
    });
});
