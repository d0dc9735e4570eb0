/**
 * The lab fleet's private directories and service stand-ins (root, network namespaces,
 * openssh-server): files written over real SSH land in the host's private directories, never
 * on the machine's own; the service-manager stand-in (systemctl for units other than k3s) and
 * the tool stand-ins (headscale, nebula, go, curl, apt-get, dpkg, cloud-init, chown) answer
 * and record as scripts/lab and scripts/lab/service-doubles describe. No wall-clock race assertions: every
 * wait is bounded in time and count, and "later" is checked on the double's monotonic clock.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { checkLabPrerequisites, LAB_PRIVATE_DIRS, startLabFleet, type ExecResult, type LabFleet } from "../../../../scripts/lab";

jest.setTimeout(120_000);

const H1 = "svc-01";
const H2 = "svc-02";
const HEADSCALE_VERSION = "v0.29.1";
const NEBULA_VERSION = "v1.9.7";

const NEBULA_UNIT = `# test unit
[Unit]
Description=Nebula overlay (lab test)
After=network-online.target

[Service]
ExecStart=/usr/bin/env nebula -config /etc/nebula/config.yml
Restart=always

[Install]
WantedBy=multi-user.target
`;
const HEADSCALE_UNIT = NEBULA_UNIT.replace("Nebula overlay (lab test)", "Headscale (lab test)").replace(
    "nebula -config /etc/nebula/config.yml",
    "headscale serve",
);

/** Writes stdin to a file the way the program's delivery does (temp file beside it, chmod, rename). */
function writeFileScript(file: string, mode: string): string {
    return [
        "set -euo pipefail",
        `mkdir -p "$(dirname ${file})"`,
        `tmp="$(mktemp ${file}.XXXXXX)"`,
        'cat > "$tmp"',
        `chmod ${mode} "$tmp"`,
        `mv -f "$tmp" ${file}`,
    ].join("\n");
}

function netnsList(): string {
    return execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
}

/** Polls `probe` until `done`, at most `count` times and `ms` milliseconds. */
async function until(probe: () => Promise<ExecResult>, done: (r: ExecResult) => boolean, count = 50, ms = 20_000): Promise<ExecResult> {
    const deadline = Date.now() + ms;
    let r = await probe();
    for (let i = 1; i < count && !done(r) && Date.now() < deadline; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        r = await probe();
    }
    return r;
}

describe("lab fleet private directories and service stand-ins (root, network namespaces, openssh-server)", () => {
    let fleet: LabFleet | undefined;
    const realBefore = new Map<string, string[] | null>();

    beforeAll(async () => {
        const problems = checkLabPrerequisites();
        if (problems.length > 0) throw new Error(`lab fleet prerequisites missing: ${problems.join("; ")}; run scripts/setup.sh as root`);
        for (const d of LAB_PRIVATE_DIRS) realBefore.set(d, fs.existsSync(d) ? fs.readdirSync(d).sort() : null);
        fleet = await startLabFleet({
            hosts: [
                { name: H1, role: "server", tools: { headscaleVersion: HEADSCALE_VERSION, nebulaVersion: NEBULA_VERSION } },
                { name: H2, role: "agent", services: { "derper.service": { failRestarts: 1 } } },
            ],
        });
    });

    afterAll(async () => {
        await fleet?.stop();
    });

    const lab = (): LabFleet => {
        if (!fleet) throw new Error("the lab fleet did not start (see beforeAll)");
        return fleet;
    };

    test("every private directory is a bind mount of an empty per-host directory", async () => {
        const f = lab();
        for (const h of f.hosts) {
            for (const d of LAB_PRIVATE_DIRS) {
                expect(h.privateDirs[d]).toBe(path.join(h.rootDir, d));
                expect(f.hostPath(h, d)).toBe(path.join(h.rootDir, d));
                expect(fs.readdirSync(f.hostPath(h, d))).toEqual([]);
            }
            const r = await f.exec(h, `for d in ${LAB_PRIVATE_DIRS.join(" ")}; do mountpoint -q "$d" || echo "not a mount point: $d"; done; echo ok`);
            expect(r.stdout).toBe("ok\n");
        }
        expect(f.hostPath(H1, "/run/headscale/headscale.sock")).toBe(path.join(f.host(H1).rootDir, "/var/run/headscale/headscale.sock"));
        expect(f.hostPath(H1, "/usr/local/bin/derper")).toBe(path.join(f.host(H1).binDir, "derper"));
        expect(() => f.hostPath(H1, "/etc/passwd")).toThrow("not under a host's private directory");
    });

    test("files written over ssh land in the host's private directories, not on the machine's", async () => {
        const f = lab();
        const config = "pki:\n  ca: /etc/nebula/ca.crt\n";
        const r = await f.ssh(H1, writeFileScript("/etc/nebula/config.yml", "0600"), config);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        const onHost = f.hostPath(H1, "/etc/nebula/config.yml");
        expect(fs.readFileSync(onHost, "utf8")).toBe(config);
        expect(fs.statSync(onHost).mode & 0o777).toBe(0o600);
        // Elsewhere too, with a subdirectory created by the script.
        for (const file of [
            "/usr/local/sbin/shortcircuit-bootstrap",
            "/var/run/headscale/marker",
            "/usr/local/lib/derper/v1/derper",
            "/etc/shortcircuit/x/y",
        ]) {
            const w = await f.ssh(H1, writeFileScript(file, "0755"), "#!/bin/sh\n");
            expect(w.code).toBe(0);
            expect(fs.readFileSync(f.hostPath(H1, file), "utf8")).toBe("#!/bin/sh\n");
        }
        // The machine's own directories are as they were; the other host sees nothing.
        expect(fs.existsSync("/etc/nebula/config.yml")).toBe(false);
        for (const d of LAB_PRIVATE_DIRS) {
            expect(fs.existsSync(d)).toBe(true);
            expect(fs.readdirSync(d).sort()).toEqual(realBefore.get(d) ?? []);
        }
        expect((await f.exec(H2, "ls -A /etc/nebula /usr/local/sbin /var/run/headscale")).stdout).toBe(
            "/etc/nebula:\n\n/usr/local/sbin:\n\n/var/run/headscale:\n",
        );
        // The harness writes, the host reads.
        fs.writeFileSync(f.hostPath(H2, "/etc/headscale/config.yaml"), "server_url: https://hs.example.test\n");
        expect((await f.ssh(H2, "cat /etc/headscale/config.yaml")).stdout).toBe("server_url: https://hs.example.test\n");
    });

    test("systemctl stand-in: unknown units fail like systemd; enable --now, restart of several units, is-active, show", async () => {
        const f = lab();
        const missing = await f.ssh(H1, "systemctl restart nosuch.service");
        expect(missing.code).toBe(5);
        expect(missing.stderr).toContain("Unit nosuch.service not found.");
        expect((await f.ssh(H1, "systemctl is-active nosuch")).stdout).toBe("inactive\n");

        await f.ssh(H1, writeFileScript("/etc/systemd/system/nebula.service", "0644"), NEBULA_UNIT);
        await f.ssh(H1, writeFileScript("/etc/systemd/system/headscale.service", "0644"), HEADSCALE_UNIT);
        const up = await f.ssh(
            H1,
            "set -euo pipefail\nsystemctl daemon-reload\nsystemctl enable --now nebula.service headscale.service\nsystemctl restart nebula.service headscale.service\nsystemctl is-active nebula.service headscale",
        );
        expect(up.code).toBe(0);
        expect(up.stdout).toBe("active\nactive\n");
        expect(f.unitStatus(H1, "nebula")).toBe("active");
        expect((await f.ssh(H1, "systemctl is-enabled nebula.service")).stdout).toBe("enabled\n");
        const quiet = await f.ssh(H1, "systemctl disable --quiet headscale.service && systemctl enable --quiet headscale.service");
        expect([quiet.code, quiet.stdout, quiet.stderr]).toEqual([0, "", ""]);
        expect(f.serviceEvents(H1, "nebula.service").filter((e) => e.verb === "restart")).toHaveLength(1);
        expect(f.serviceEvents(H1, "headscale.service").map((e) => e.verb)).toEqual(["enable", "restart", "is-active", "disable", "enable"]);
        expect(f.serviceEvents(H1).filter((e) => e.verb === "daemon-reload")).toHaveLength(1);
        // k3s units are still the k3s double's: the server's k3s is not running.
        const k3s = await f.ssh(H1, "systemctl is-active k3s nebula");
        expect(k3s.stdout).toBe("inactive\nactive\n");
        expect(k3s.code).toBe(3);

        // When the unit last started: ActiveEnterTimestampMonotonic moves on with each restart.
        const started = async (): Promise<number> =>
            Number((await f.ssh(H1, "systemctl show -p ActiveEnterTimestampMonotonic --value nebula.service")).stdout.trim());
        const first = await started();
        expect(first).toBeGreaterThan(0);
        expect((await f.ssh(H1, "systemctl restart nebula.service")).code).toBe(0);
        const second = await started();
        expect(second).toBeGreaterThan(first);
        expect(
            f
                .serviceEvents(H1, "nebula")
                .filter((e) => e.verb === "restart")
                .map((e) => e.monoUs)[1],
        ).toBe(second);
        const show = await f.ssh(H1, "systemctl show nebula.service -p ActiveState,SubState,Result,LoadState");
        expect(show.stdout).toBe("LoadState=loaded\nActiveState=active\nSubState=running\nResult=success\n");
        const status = await f.ssh(H1, "systemctl status nebula.service");
        expect(status.code).toBe(0);
        expect(status.stdout).toContain("● nebula.service - Nebula overlay (lab test) (systemd TEST DOUBLE");
        expect((await f.ssh(H1, "journalctl -u nebula.service --no-pager")).stdout).toContain("nebula.service: Started Nebula overlay (lab test)");

        const stop = await f.ssh(H1, "systemctl stop headscale.service; systemctl is-active headscale.service");
        expect(stop.stdout).toBe("inactive\n");
        expect(stop.code).toBe(3);
        expect((await f.ssh(H1, "systemctl is-active --quiet headscale.service")).stdout).toBe("");
    });

    test("an edited unit file draws systemd's warning until daemon-reload, or an enable or disable without --no-reload", async () => {
        const f = lab();
        await f.ssh(H1, writeFileScript("/etc/systemd/system/nebula.service", "0644"), NEBULA_UNIT.replace("# test unit", "# test unit, edited"));
        const stale = await f.ssh(H1, "systemctl restart nebula.service");
        expect(stale.code).toBe(0);
        expect(stale.stderr).toContain("changed on disk. Run 'systemctl daemon-reload' to reload units.");
        expect(f.serviceEvents(H1, "nebula").at(-1)?.staleUnitFile).toBe(true);
        const fresh = await f.ssh(H1, "systemctl daemon-reload && systemctl restart nebula.service");
        expect(fresh.stderr).toBe("");
        expect(f.serviceEvents(H1, "nebula").at(-1)?.staleUnitFile).toBeUndefined();

        // `systemctl enable` reloads the manager by itself, unless --no-reload.
        const edit = (note: string): Promise<unknown> =>
            f.ssh(H1, writeFileScript("/etc/systemd/system/nebula.service", "0644"), NEBULA_UNIT.replace("# test unit", `# test unit, ${note}`));
        await edit("edited again");
        const noReload = await f.ssh(H1, "systemctl enable --quiet --no-reload nebula.service && systemctl show -p NeedDaemonReload --value nebula.service");
        expect(noReload.stdout).toBe("yes\n");
        const reloadedByEnable = await f.ssh(H1, "systemctl enable --quiet nebula.service && systemctl show -p NeedDaemonReload --value nebula.service");
        expect(reloadedByEnable.stdout).toBe("no\n");
        await edit("and again");
        const reloadedByDisable = await f.ssh(H1, "systemctl disable --quiet nebula.service && systemctl show -p NeedDaemonReload --value nebula.service");
        expect(reloadedByDisable.stdout).toBe("no\n");
        // Several units in one enable: one reload after them all leaves every one current.
        const extra = (note: string): Promise<unknown> =>
            f.ssh(H1, writeFileScript("/etc/systemd/system/lab-extra.service", "0644"), NEBULA_UNIT.replace("Nebula overlay", `lab extra, ${note}`));
        await extra("loaded");
        expect((await f.ssh(H1, "systemctl daemon-reload")).code).toBe(0);
        await edit("once more");
        await extra("edited");
        const bothStale = await f.ssh(H1, "systemctl show -p NeedDaemonReload --value nebula.service lab-extra.service");
        expect(bothStale.stdout.split("\n").filter((line) => line !== "")).toEqual(["yes", "yes"]);
        const both = await f.ssh(
            H1,
            "systemctl enable --quiet nebula.service lab-extra.service && systemctl show -p NeedDaemonReload --value nebula.service lab-extra.service",
        );
        expect(both.stdout.split("\n").filter((line) => line !== "")).toEqual(["no", "no"]);
        expect(
            (await f.ssh(H1, "systemctl disable --quiet lab-extra.service && rm /etc/systemd/system/lab-extra.service && systemctl daemon-reload")).code,
        ).toBe(0);
    });

    test("failRestarts: the next n restarts exit 1 and leave the unit failed; then it starts", async () => {
        const f = lab();
        // Cued from the start (LabHostSpec.services): derper.service on H2 fails once.
        await f.ssh(H2, writeFileScript("/etc/systemd/system/derper.service", "0644"), NEBULA_UNIT.replace("Nebula overlay", "derper"));
        const once = await f.ssh(H2, "systemctl restart derper; echo rc=$?; systemctl is-active derper; echo rc=$?");
        expect(once.stdout).toBe("rc=1\nfailed\nrc=3\n");
        expect(once.stderr).toContain("Job for derper.service failed because the control process exited with error code.");
        expect((await f.ssh(H2, "systemctl restart derper && systemctl is-active derper")).stdout).toBe("active\n");

        await f.setServiceBehaviour(H1, "nebula", { failRestarts: 2 });
        const codes: number[] = [];
        for (let i = 0; i < 3; i++) codes.push((await f.ssh(H1, "systemctl restart nebula.service")).code ?? -1);
        expect(codes).toEqual([1, 1, 0]);
        expect(f.unitStatus(H1, "nebula")).toBe("active");
        const restarts = f
            .serviceEvents(H1, "nebula")
            .filter((e) => e.verb === "restart")
            .slice(-3);
        expect(restarts.map((e) => [e.exitCode, e.result])).toEqual([
            [1, "failed"],
            [1, "failed"],
            [0, "active"],
        ]);
    });

    test("exitAtStart: restart exits 0, the unit is failed right after", async () => {
        const f = lab();
        await f.setServiceBehaviour(H1, "headscale.service", { exitAtStart: true, exitAfterMs: 60_000 });
        const r = await f.ssh(H1, "systemctl restart headscale.service && systemctl is-active headscale.service");
        expect(r.code).toBe(0);
        expect(r.stdout).toBe("active\n"); // within the cued 60 s
        await f.setServiceBehaviour(H1, "headscale.service", { exitAfterMs: 0 });
        const again = await f.ssh(H1, "systemctl restart headscale.service; echo rc=$?");
        expect(again.stdout).toBe("rc=0\n");
        const dead = await until(
            () => f.ssh(H1, "systemctl is-active headscale.service"),
            (x) => x.stdout === "failed\n",
        );
        expect(dead.stdout).toBe("failed\n");
        expect(dead.code).toBe(3);
        expect(f.unitStatus(H1, "headscale")).toBe("failed");
        expect((await f.ssh(H1, "systemctl show -p Result --value headscale.service")).stdout).toBe("exit-code\n");
        await f.setServiceBehaviour(H1, "headscale.service", { exitAtStart: false });
        expect((await f.ssh(H1, "systemctl restart headscale.service && systemctl is-active headscale.service")).stdout).toBe("active\n");
    });

    test("headscale, nebula, dpkg, cloud-init, apt-get stand-ins", async () => {
        const f = lab();
        const r = await f.ssh(
            H1,
            [
                "headscale version",
                "nebula -version",
                "dpkg --print-architecture",
                "cloud-init status --wait",
                "apt-get install -y /tmp/headscale.deb >/dev/null; echo apt=$?",
                "headscale configtest -c /etc/headscale/nosuch.yaml >/dev/null 2>&1; echo configtest-missing=$?",
                "touch /etc/headscale/config.yaml; headscale configtest -c /etc/headscale/config.yaml 2>/dev/null; echo configtest=$?",
                "headscale --help | head -1",
            ].join("\n"),
        );
        expect(r.stdout).toBe(
            `${HEADSCALE_VERSION}\nVersion: 1.9.7\namd64\nstatus: done\napt=0\nconfigtest-missing=1\nconfigtest=0\nheadscale (lab fleet TEST DOUBLE, see scripts/lab/service-doubles): not the real headscale.\n`,
        );
        await f.setToolBehaviour(H1, { headscaleConfigtestFails: "Error: bad config (cued)" });
        const bad = await f.ssh(H1, "headscale configtest -c /etc/headscale/config.yaml");
        expect(bad.code).toBe(1);
        expect(bad.stderr).toContain("bad config (cued)");
        await f.setToolBehaviour(H1, { headscaleConfigtestFails: null });
        expect(f.toolInvocations(H1, "apt-get").map((c) => c.argv)).toEqual([["install", "-y", "/tmp/headscale.deb"]]);
        expect(f.toolInvocations(H1, "headscale").length).toBeGreaterThanOrEqual(5);
    });

    test("nebula -test runs Debian's nebula on the delivered config (when installed)", async () => {
        const f = lab();
        if (!fs.existsSync("/usr/bin/nebula-cert") || !fs.existsSync("/usr/bin/nebula")) {
            throw new Error("Debian's nebula package is missing (/usr/bin/nebula, /usr/bin/nebula-cert); scripts/setup.sh installs it");
        }
        const pki = [
            "set -euo pipefail",
            "cd /etc/nebula",
            "nebula-cert ca -name lab-ca -out-crt ca.crt -out-key ca.key",
            "nebula-cert sign -name svc-01 -ip 10.67.0.1/16 -ca-crt ca.crt -ca-key ca.key -out-crt host.crt -out-key host.key",
            "printf 'pki:\\n  ca: /etc/nebula/ca.crt\\n  cert: /etc/nebula/host.crt\\n  key: /etc/nebula/host.key\\nlighthouse:\\n  am_lighthouse: true\\nlisten:\\n  host: 0.0.0.0\\n  port: 4242\\ntun:\\n  disabled: true\\n' > /etc/nebula/config.yml",
            "nebula -test -config /etc/nebula/config.yml >/dev/null; echo good=$?",
            "printf 'pki:\\n  ca: /etc/nebula/nosuch.crt\\n' > /etc/nebula/bad.yml",
            "nebula -test -config /etc/nebula/bad.yml >/dev/null 2>&1 || echo bad=$?",
        ].join("\n");
        const r = await f.ssh(H1, pki, undefined, { timeoutMs: 60_000 });
        expect(r.stdout).toBe("good=0\nbad=1\n");
        expect(fs.existsSync(f.hostPath(H1, "/etc/nebula/ca.key"))).toBe(true);
        expect(fs.existsSync("/etc/nebula/ca.key")).toBe(false);
        await f.setToolBehaviour(H1, { nebulaTestFails: "cued nebula failure" });
        expect((await f.ssh(H1, "nebula -test -config /etc/nebula/config.yml")).code).toBe(1);
        await f.setToolBehaviour(H1, { nebulaTestFails: null });
    });

    test("go install writes a stand-in derper into GOBIN and fills the caches Go would; curl fails without a cue; chown records unknown owners", async () => {
        const f = lab();
        // Without HOME, GOPATH or GOMODCACHE, Go has no module cache and refuses before writing anything.
        const homeless = await f.ssh(H1, 'env -u HOME -u GOPATH -u GOMODCACHE GOBIN=/usr/local/lib/derper/none go install "tailscale.com/cmd/derper@v1.102.5"');
        expect([homeless.code, homeless.stderr.trim()]).toEqual([1, "go: module cache not found: neither GOMODCACHE nor GOPATH is set"]);
        const noBuildCache = await f.ssh(
            H1,
            'env -u HOME -u GOCACHE -u XDG_CACHE_HOME GOMODCACHE=/usr/local/lib/derper/none GOBIN=/usr/local/lib/derper/none go install "tailscale.com/cmd/derper@v1.102.5"',
        );
        expect([noBuildCache.code, noBuildCache.stderr.trim()]).toEqual([
            1,
            "build cache is required, but could not be located: GOCACHE is not defined and neither $XDG_CACHE_HOME nor $HOME are defined",
        ]);
        expect(fs.existsSync(f.hostPath(H1, "/usr/local/lib/derper/none"))).toBe(false);

        // The caches go where the caller says (a private directory here: this host's $HOME is the machine's /root).
        const caches = "/usr/local/lib/derper/.caches";
        const install = await f.ssh(
            H1,
            [
                "set -euo pipefail",
                'target="/usr/local/lib/derper/v1.102.5/derper"',
                'mkdir -p "$(dirname "$target")"',
                `GOBIN="$(dirname "$target")" GOMODCACHE=${caches}/mod XDG_CACHE_HOME=${caches}/user go install "tailscale.com/cmd/derper@v1.102.5"`,
                'ln -sfn "$target" /usr/local/bin/derper',
                "derper -version",
            ].join("\n"),
        );
        expect(install.code).toBe(0);
        expect(install.stdout).toBe("v1.102.5 (lab fleet test double, not derper)\n");
        const bin = f.hostPath(H1, "/usr/local/lib/derper/v1.102.5/derper");
        expect(fs.statSync(bin).mode & 0o111).not.toBe(0);
        expect(fs.readlinkSync(f.hostPath(H1, "/usr/local/bin/derper"))).toBe("/usr/local/lib/derper/v1.102.5/derper");
        expect(fs.existsSync("/usr/local/lib/derper/v1.102.5")).toBe(false);
        const goCalls = f.toolInvocations(H1, "go").filter((c) => c.exitCode === 0);
        expect(goCalls.map((c) => [c.argv, c.env])).toEqual([
            [
                ["install", "tailscale.com/cmd/derper@v1.102.5"],
                { GOBIN: "/usr/local/lib/derper/v1.102.5", GOMODCACHE: `${caches}/mod`, GOCACHE: `${caches}/user/go-build` },
            ],
        ]);
        // Read-only module files, as Go leaves them without -modcacherw; the build cache's README.
        const tree = f.hostPath(H1, `${caches}/mod/tailscale.com@v1.102.5`);
        expect([(fs.statSync(tree).mode & 0o777).toString(8), (fs.statSync(path.join(tree, "go.mod")).mode & 0o777).toString(8)]).toEqual(["555", "444"]);
        expect(fs.existsSync(f.hostPath(H1, `${caches}/mod/cache/download/tailscale.com/@v/v1.102.5.info`))).toBe(true);
        expect(fs.existsSync(f.hostPath(H1, `${caches}/user/go-build/README`))).toBe(true);
        expect((await f.ssh(H1, `rm -rf ${caches}`)).code).toBe(0);

        const curl = await f.ssh(H1, "curl -fsSL --retry 5 -o /tmp/headscale.deb https://github.com/juanfont/headscale/releases/download/v0.29.1/x.deb");
        expect(curl.code).toBe(7);
        expect(curl.stderr).toContain("curl: (7) Failed to connect to github.com port 443");
        await f.setToolBehaviour(H1, { curlResponses: { "https://hs.example.test/health": { body: '{"status":"pass"}' } } });
        const health = await f.ssh(H1, 'curl -fsS -k --max-time 5 --resolve "hs.example.test:443:127.0.0.1" "https://hs.example.test/health"');
        expect([health.code, health.stdout]).toEqual([0, '{"status":"pass"}']);
        expect(f.toolInvocations(H1, "curl").map((c) => c.exitCode)).toEqual([7, 0]);

        const chown = await f.ssh(
            H1,
            "set -euo pipefail\nmkdir -p /var/lib/headscale/cache /var/run/headscale\ntouch /var/lib/headscale/noise_private.key\nchown -R headscale:headscale /var/lib/headscale /var/lib/headscale/noise_private.key /var/run/headscale\nchown root:root /etc/headscale/config.yaml\nstat -c %U /var/lib/headscale/noise_private.key",
        );
        expect(chown.code).toBe(0);
        expect(chown.stdout).toBe("root\n");
        expect(f.toolState(H1).owners).toEqual({
            "/var/lib/headscale": { owner: "headscale:headscale", recursive: true },
            "/var/lib/headscale/noise_private.key": { owner: "headscale:headscale", recursive: true },
            "/var/run/headscale": { owner: "headscale:headscale", recursive: true },
        });
        expect((await f.ssh(H1, "chown headscale /nosuch")).code).toBe(1);

        await f.setToolBehaviour(H1, { missing: ["go"] });
        expect((await f.ssh(H1, "command -v go || echo none")).stdout).toBe("none\n");
        await f.setToolBehaviour(H1, { missing: [] });
        expect((await f.ssh(H1, "command -v go")).stdout).toBe("/usr/local/bin/go\n");
    });

    test("stop() removes the hosts, their private directories and the mount points it created", async () => {
        const f = lab();
        const rootDirs = f.hosts.map((h) => h.rootDir);
        const namespaces = f.hosts.map((h) => h.netns);
        const stopAt = Date.now();
        await f.stop();
        for (const ns of namespaces) expect(netnsList()).not.toContain(ns);
        for (const d of rootDirs) expect(fs.existsSync(d)).toBe(false);
        expect(fs.readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(f.runId);
        const otherRuns = fs.existsSync("/run/sc-lab") ? fs.readdirSync("/run/sc-lab").filter((d) => d.startsWith("sc-lab-")) : [];
        if (otherRuns.length === 0) {
            // The last run out: mount points it created are gone, the machine's own are untouched.
            for (const d of LAB_PRIVATE_DIRS) {
                const before = realBefore.get(d);
                // (Other suites may create some of these on the machine; only one born after stop() is theirs.)
                if (before === null) expect(fs.existsSync(d) ? fs.statSync(d).birthtimeMs >= stopAt : true).toBe(true);
                else expect(fs.readdirSync(d).sort()).toEqual(before);
            }
        }
        await expect(f.stop()).resolves.toBeUndefined();
    });
});
