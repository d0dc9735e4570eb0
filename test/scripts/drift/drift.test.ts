import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { compareHost, serviceStart } from "../../../scripts/drift/compare";
import { unifiedDiff } from "../../../scripts/drift/diff";
import { driftExpectation, type ExpectedHost } from "../../../scripts/drift/expect";
import { collectorPayload, parseCollectorOutput } from "../../../scripts/drift/observe";
import { exitCode, formatText, type DriftReport } from "../../../scripts/drift/report";
import { collectorScript, pool, unreachableReason } from "../../../scripts/drift/run";
import { validFleet } from "../../support/fixtures";

/*
 * drift's pure parts: what the plan says is compared by content, the collector's report (run
 * locally, without SSH, against files in a temporary directory), the comparison, the diff,
 * ssh's failure reasons and the exit codes. The lab-fleet suite runs it over real SSH.
 */

const sha = (text: string): string => createHash("sha256").update(text).digest("hex");

function collect(host: ExpectedHost, diff = false): ReturnType<typeof parseCollectorOutput> {
    const result = spawnSync("bash", ["-c", collectorScript()], { input: collectorPayload(host, { diff }), timeout: 30_000 });
    expect(result.stderr.toString()).toBe("");
    expect(result.status).toBe(0);
    return parseCollectorOutput(result.stdout);
}

describe("drift expectation from the plan", () => {
    const expectation = driftExpectation(validFleet("prod"));

    it("compares public non-identity files by content, identity files and secrets by presence, mode and owner", () => {
        const host = expectation.hosts.find((each) => each.k3s !== undefined)!;
        const check = Object.fromEntries(host.files.map((file) => [file.path, file.check]));
        expect(check).toMatchObject({
            "/etc/nebula/config.yml": "content",
            "/etc/systemd/system/nebula.service": "content",
            "/etc/rancher/k3s/config.yaml": "content",
            "/etc/rancher/k3s/shortcircuit-rollout.env": "content",
            "/etc/nebula/ca.crt": "identity",
            "/etc/nebula/host.crt": "identity",
            "/etc/nebula/host.key": "secret",
            "/etc/rancher/k3s/cluster-token": "secret",
        });
        expect(host.files.find((file) => file.path === "/etc/rancher/k3s/config.yaml")?.sha256).toBe(host.k3s?.configSha256);
        expect(host.services.map((service) => service.name)).toEqual(["nebula.service", host.k3s?.unit]);
    });

    it("takes the headscale keys' owner from the plan and the droplet's address from the options", () => {
        const control = driftExpectation(validFleet("prod"), { controlHost: "203.0.113.7" }).hosts.find((host) =>
            host.files.some((file) => file.path === "/etc/headscale/config.yaml"),
        )!;
        expect(control.ssh?.host).toBe("203.0.113.7");
        expect(control.files.filter((file) => file.check === "secret").map((file) => [file.path, file.owner])).toEqual(
            expect.arrayContaining([["/etc/headscale/noise_private.key", "headscale:headscale"]]),
        );
    });

    it("expects a macOS host's files root:wheel, its LaunchDaemons by label and job file, and only its LAN address", () => {
        const aero = expectation.hosts.find((each) => each.name === "aero")!;
        expect(aero.files.map((file) => [file.path, file.mode.toString(8), file.owner, file.check])).toEqual(
            expect.arrayContaining([
                ["/etc/nebula/config.yml", "644", "root:wheel", "content"],
                ["/etc/nebula/host.key", "600", "root:wheel", "secret"],
                ["/Library/LaunchDaemons/io.kub0.shortcircuit.nebula.plist", "644", "root:wheel", "content"],
                ["/Library/LaunchDaemons/com.tailscale.derper.plist", "644", "root:wheel", "content"],
            ]),
        );
        expect(aero.files.every((file) => file.owner === "root:wheel")).toBe(true);
        expect(aero.services.map(({ manager, name, jobFile }) => ({ manager, name, jobFile }))).toEqual([
            { manager: "launchd", name: "io.kub0.shortcircuit.nebula", jobFile: "/Library/LaunchDaemons/io.kub0.shortcircuit.nebula.plist" },
            { manager: "launchd", name: "com.tailscale.derper", jobFile: "/Library/LaunchDaemons/com.tailscale.derper.plist" },
        ]);
        expect(aero.addresses).toEqual([{ iface: "en0", address: "192.168.20.2" }]);
        expect(expectation.notes).toContain("aero: macOS names its tailnet and Nebula interfaces itself (utun<n>); only its LAN address is compared");
        // Linux hosts keep root:root.
        const linux = expectation.hosts.find((each) => each.k3s !== undefined)!;
        expect(linux.files.find((file) => file.path === "/etc/nebula/config.yml")?.owner).toBe("root:root");
    });

    it("exactly one host lists the cluster (the genesis)", () => {
        expect(expectation.hosts.filter((host) => host.kubectl)).toHaveLength(1);
    });
});

describe("the collector and the comparison", () => {
    let dir: string;
    beforeEach(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "sc-drift-unit-"));
    });
    afterEach(() => {
        fs.rmSync(dir, { recursive: true, force: true });
    });

    function host(files: { name: string; text: string; mode: number; check?: "content" | "secret" }[]): ExpectedHost {
        return {
            name: "h1",
            files: files.map((file) => ({
                path: path.join(dir, file.name),
                mode: file.mode,
                owner: `${os.userInfo().username}:${spawnSync("id", ["-gn"]).stdout.toString().trim()}`,
                check: file.check ?? "content",
                ...(file.check === "secret" ? {} : { text: file.text, sha256: sha(file.text) }),
            })),
            services: [],
            addresses: [{ iface: "lo", address: "127.0.0.1" }],
            clusterCidrs: [],
            kubectl: false,
        };
    }

    it("reads files, addresses and a clock, writes nothing, and finds no drift when they match", () => {
        fs.writeFileSync(path.join(dir, "a.conf"), "a: 1\n", { mode: 0o644 });
        fs.writeFileSync(path.join(dir, "b.key"), "secret\n", { mode: 0o600 });
        const expected = host([
            { name: "a.conf", text: "a: 1\n", mode: 0o644 },
            { name: "b.key", text: "secret\n", mode: 0o600, check: "secret" },
        ]);
        const before = fs.readdirSync(dir);
        const seen = collect(expected);
        expect(fs.readdirSync(dir)).toEqual(before);
        expect(seen.clock?.realtime).toBeGreaterThan(0);
        expect(seen.ifaces.get("lo")).toContain("127.0.0.1/8");
        expect(compareHost({}, expected, seen, { now: new Date(), diff: true })).toEqual([]);
    });

    it('an empty file planned empty is a regular file without drift (GNU stat names it "regular empty file")', () => {
        fs.writeFileSync(path.join(dir, "empty.conf"), "", { mode: 0o644 });
        const expected = host([{ name: "empty.conf", text: "", mode: 0o644 }]);
        const seen = collect(expected);
        expect(seen.files.get(path.join(dir, "empty.conf"))).toMatchObject({ present: true, type: "regular file" });
        expect(compareHost({}, expected, seen, { now: new Date(), diff: true })).toEqual([]);
    });

    it("reports missing, changed content (with a diff), mode; a secret by hash only", () => {
        fs.writeFileSync(path.join(dir, "a.conf"), "a: 2\nb: 1\n", { mode: 0o640 });
        fs.writeFileSync(path.join(dir, "b.key"), "other secret\n", { mode: 0o600 });
        const expected = host([
            { name: "a.conf", text: "a: 1\nb: 1\n", mode: 0o644 },
            { name: "b.key", text: "secret\n", mode: 0o600, check: "secret" },
            { name: "c.conf", text: "c\n", mode: 0o644 },
        ]);
        const seen = collect(expected, true);
        expect(seen.texts.has(path.join(dir, "b.key"))).toBe(false);
        const findings = compareHost({}, expected, seen, { now: new Date(), diff: true });
        expect(findings.map((finding) => `${finding.subject.slice(dir.length)}: ${finding.message}`)).toEqual([
            `/a.conf: content differs (sha256 ${sha("a: 2\nb: 1\n").slice(0, 12)} on the host, ${sha("a: 1\nb: 1\n").slice(0, 12)} planned)`,
            "/a.conf: mode 0640, planned 0644",
            "/c.conf: missing",
        ]);
        expect(findings[0].diff?.split("\n").slice(2).join("\n")).toBe("@@ -1,2 +1,2 @@\n-a: 1\n+a: 2\n b: 1\n");
    });

    it("compares a launchd job: not loaded, loaded from another job file, and an interface the host cannot read", () => {
        const job = path.join(dir, "job.plist");
        fs.writeFileSync(job, "<plist/>\n", { mode: 0o644 });
        const expected: ExpectedHost = {
            ...host([{ name: "job.plist", text: "<plist/>\n", mode: 0o644 }]),
            services: [{ manager: "launchd", name: "io.kub0.shortcircuit.nebula", files: [job], jobFile: job }],
            addresses: [{ iface: "en0", address: "192.168.20.2" }],
        };
        const seen = collect(expected);
        const loadedFrom = (sha256: string) => ({
            ...seen,
            services: new Map([["io.kub0.shortcircuit.nebula", { props: { ActiveState: "active", LoadedJobSha256: sha256 } }]]),
        });
        const messages = (observation: typeof seen): string[] =>
            compareHost({}, expected, observation, { now: new Date(), diff: false }).map((finding) => finding.message);
        // This machine has no launchctl: the job reads as not loaded.
        expect(messages(seen)).toContain("job not loaded (launchctl print finds no such service)");
        expect(messages(loadedFrom(sha("<plist/>\n")))).not.toContain(expect.stringContaining("loaded from another job file"));
        expect(messages(loadedFrom(sha("<old/>\n")))).toContain(`loaded from another job file than ${job} (bootout and bootstrap pending)`);
        expect(messages({ ...loadedFrom(sha("<plist/>\n")), unreadableIfaces: new Set(["en0"]) })).toEqual([
            "not read: the host has neither ip nor ifconfig (expected 192.168.20.2)",
        ]);
    });

    it("reads every node's annotation and cordon even where a field is empty, and tells the rollout's cordon from an operator's", () => {
        // A stand-in `k3s` that answers the collector's node list as kubectl would: an empty
        // annotation is an empty field between two separators.
        const bin = path.join(dir, "bin");
        fs.mkdirSync(bin);
        const answer = ["never-rolled||true|", "rolled|abc|true|true", "operator|abc|true|", "clean|abc||", ""].join("\n");
        fs.writeFileSync(path.join(bin, "k3s"), `#!/bin/sh\nprintf '%s' '${answer}'\n`, { mode: 0o755 });
        const expected: ExpectedHost = { ...host([]), kubectl: true };
        const result = spawnSync("bash", ["-c", collectorScript()], {
            input: collectorPayload(expected, { diff: false }),
            env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` },
            timeout: 30_000,
        });
        expect(result.status).toBe(0);
        const seen = parseCollectorOutput(result.stdout);
        expect(Object.fromEntries(seen.knodes)).toEqual({
            "never-rolled": { annotation: undefined, unschedulable: true, cordonedByRollout: false },
            rolled: { annotation: "abc", unschedulable: true, cordonedByRollout: true },
            operator: { annotation: "abc", unschedulable: true, cordonedByRollout: false },
            clean: { annotation: "abc", unschedulable: false, cordonedByRollout: false },
        });
        const k3sFindings = (name: string): string[] =>
            compareHost({}, { ...host([]), name, k3s: { unit: "k3s-agent", configSha256: "abc", configPath: path.join(dir, "none") } }, seen, {
                now: new Date(),
                diff: false,
                cluster: { nodes: seen.knodes },
            })
                .filter((finding) => finding.area === "k3s")
                .map((finding) => `${finding.severity} ${finding.message}`);
        expect(k3sFindings("rolled")).toEqual([
            "drift cordoned by a rollout that did not finish: the next up drains it again and lifts the cordon once it is healthy",
        ]);
        expect(k3sFindings("operator")).toEqual(["warning cordoned, not by a rollout: it stays so through rollouts (kubectl uncordon operator lifts it)"]);
        expect(k3sFindings("clean")).toEqual([]);
    });

    it("dates a service's start from its monotonic timestamp and the host's clock", () => {
        const clock = { realtime: 1_000_000, monotonicNs: 500 * 1e9, source: "timer_list" };
        expect(serviceStart({ ActiveEnterTimestampMonotonic: String(400 * 1e6) }, clock)).toEqual({ at: 1_000_000 - 100, tolerance: 0.05 });
        expect(serviceStart({ ActiveEnterTimestampMonotonic: "0", ActiveEnterTimestamp: "Sun 2026-11-29 12:00:00 UTC" }, clock)).toEqual({
            at: Date.parse("2026-11-29T12:00:00Z") / 1000,
            tolerance: 1,
        });
        expect(serviceStart({}, clock)).toBeUndefined();
    });
});

describe("report, diff, ssh reasons", () => {
    it("diffs with context and hunk ranges", () => {
        const before = Array.from({ length: 12 }, (_, index) => `line ${index}`).join("\n") + "\n";
        const after = before.replace("line 1\n", "").replace("line 10", "line ten");
        expect(unifiedDiff(before, after, { before: "a", after: "b" })).toBe(
            "--- a\n+++ b\n@@ -1,5 +1,4 @@\n line 0\n-line 1\n line 2\n line 3\n line 4\n@@ -8,5 +7,5 @@\n line 7\n line 8\n line 9\n-line 10\n+line ten\n line 11\n",
        );
        expect(unifiedDiff("same\n", "same\n", { before: "a", after: "b" })).toBe("");
    });

    it("names why ssh failed", () => {
        expect(unreachableReason("ssh: connect to host 10.0.0.1 port 22: Connection timed out\n")).toMatch(/^timeout: /);
        expect(unreachableReason("root@10.0.0.1: Permission denied (publickey).\n")).toMatch(/^auth: /);
        expect(unreachableReason("ssh: connect to host 10.0.0.1 port 22: No route to host\n")).toMatch(/^no route: /);
        expect(unreachableReason("ssh: connect to host 10.0.0.1 port 22: Connection refused\n")).toMatch(/^connection refused: /);
        expect(unreachableReason("Host key verification failed.\n")).toMatch(/^host key: /);
    });

    it("exits 0 when clean, 3 on drift, 4 when a host could not be read", () => {
        const report = (statuses: ("ok" | "drift" | "unreachable")[]): DriftReport => ({
            stack: "t",
            notes: [],
            hosts: statuses.map((status, index) => ({
                name: `h${index}`,
                status,
                findings: status === "drift" ? [{ area: "file", subject: "/etc/x", severity: "drift", message: "missing" }] : [],
                reason: status === "unreachable" ? "timeout: x" : undefined,
                seconds: 0,
            })),
        });
        expect(exitCode(report(["ok", "ok"]))).toBe(0);
        expect(exitCode(report(["ok", "drift"]))).toBe(3);
        expect(exitCode(report(["drift", "unreachable"]))).toBe(4);
        expect(formatText(report(["ok", "drift", "unreachable"]))).toBe(
            [
                "HOST  ADDRESS  STATUS       FINDINGS",
                "h0    -        ok",
                "h1    -        drift        1 file",
                "h2    -        unreachable  timeout: x",
                "drift t: 3 hosts, 1 ok, 1 drifted (1 finding), 1 unreachable",
                "",
                "h1:",
                "  file /etc/x: missing",
                "",
                "h2:",
                "  unreachable: timeout: x",
                "",
            ].join("\n"),
        );
    });

    it("bounds concurrency", async () => {
        let running = 0;
        let peak = 0;
        const results = await pool([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
            running++;
            peak = Math.max(peak, running);
            await new Promise((resolve) => setImmediate(resolve));
            running--;
            return n * 2;
        });
        expect(results).toEqual([2, 4, 6, 8, 10, 12, 14]);
        expect(peak).toBe(3);
    });
});

describe("shellcheck", () => {
    it("passes the collector as it runs on a host (prelude + collect.sh)", () => {
        const result = spawnSync("shellcheck", ["-s", "bash", "-"], { input: collectorScript(), encoding: "utf8", timeout: 60_000 });
        expect(result.error).toBeUndefined();
        expect({ status: result.status, output: `${result.stdout}${result.stderr}` }).toEqual({ status: 0, output: "" });
    });
});
