import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { delivery, plainValues, type PlannedFile, type ServiceManager } from "../../../components/hostPlan";
import { PayloadError, framedPayload } from "../../../components/remote/payload";
import { remoteScript } from "../../../components/remote/scripts";
import { NEBULA_LAUNCHD_LOG, renderNebulaPlist } from "../../../components/nebula/service";

/*
 * Runs the exact delivery script (remote/prelude.sh + remote/deliver-files.sh) with bash, as
 * root, inside a private mount namespace where /etc/nebula, /etc/systemd/system and
 * /var/lib/shortcircuit are fresh tmpfs mounts, and `systemctl`/`launchctl` are recording
 * shims. Nothing outside the namespace is touched.
 */

let work: string;
let shims: string;
let state: string;

beforeAll(() => {
    if (process.getuid?.() !== 0) {
        throw new Error("the file delivery tests need root for a private mount namespace (CI runs as root)");
    }
});

beforeEach(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "sc-filesync-"));
    shims = path.join(work, "bin");
    state = path.join(work, "state");
    fs.mkdirSync(shims);
    fs.mkdirSync(state);
    for (const tool of ["systemctl"]) {
        // Queries (is-active, print, show) are not recorded. `show` answers from the shim's
        // state: UnitFileState enabled once `enable` ran, NeedDaemonReload from the
        // stale-unit cue. Cues: fail-restart (a restart fails), dead (never active), dead-on (not
        // active while config.yml holds that text), exits-on (while config.yml holds that text,
        // active only at the first look after a restart: a daemon that exits at once),
        // die-on-restart (the restart kills the delivery, as a dropped session would),
        // stale-unit (systemd's copy of the unit is older than its file: NeedDaemonReload=yes
        // until a daemon-reload), not-loaded (systemd has no unit loaded under the name),
        // show-fails (`show` fails, as without a bus).
        fs.writeFileSync(
            path.join(shims, tool),
            [
                "#!/bin/bash",
                `dead() { [ -e "${work}/dead" ] || { [ -e "${work}/dead-on" ] && grep -qF "$(cat "${work}/dead-on")" /etc/nebula/config.yml 2>/dev/null; }; }`,
                `exits() { [ -e "${work}/exits-on" ] && grep -qF "$(cat "${work}/exits-on")" /etc/nebula/config.yml 2>/dev/null; }`,
                'case "$1" in',
                `  is-active) if exits; then [ ! -e "${work}/looked" ] || exit 3; : >"${work}/looked"; fi; ! dead; exit $? ;;`,
                '  print) dead || echo "state = running"; exit 0 ;;',
                `  show) [ ! -e "${work}/show-fails" ] || exit 1; echo "LoadState=$([ -e "${work}/not-loaded" ] && echo not-found || echo loaded)"; echo "UnitFileState=$([ -e "${work}/enabled" ] && echo enabled || echo disabled)"; echo "NeedDaemonReload=$([ -e "${work}/stale-unit" ] && echo yes || echo no)"; exit 0 ;;`,
                "esac",
                `echo "${tool} $*" >> "${work}/calls.log"`,
                `if [[ "$*" == *restart* ]]; then rm -f "${work}/looked"; fi`,
                `case "$1" in enable) : >"${work}/enabled" ;; daemon-reload) rm -f "${work}/stale-unit" ;; esac`,
                `if [ -e "${work}/die-on-restart" ] && [[ "$*" == *restart* || "$*" == *kickstart* ]]; then rm -f "${work}/die-on-restart"; kill -9 "$PPID"; fi`,
                `[ ! -e "${work}/fail-restart" ]`,
                "",
            ].join("\n"),
            { mode: 0o755 },
        );
    }
    // launchd, as far as the script sees it: loaded jobs are files under <work>/launchd (label →
    // job file); bootstrap of a loaded job fails as launchd's does, bootout/kickstart/kill of an
    // unloaded one too. Cues as above, plus fail-bootstrap. Queries (print) are not recorded.
    fs.writeFileSync(
        path.join(shims, "launchctl"),
        [
            "#!/bin/bash",
            `jobs="${work}/launchd"; mkdir -p "$jobs"`,
            `dead() { [ -e "${work}/dead" ] || { [ -e "${work}/dead-on" ] && grep -qF "$(cat "${work}/dead-on")" /etc/nebula/config.yml 2>/dev/null; }; }`,
            `label_of() { tr '\\n' ' ' <"$1" | sed -n 's#.*<key>Label</key>[[:space:]]*<string>\\([^<]*\\)</string>.*#\\1#p'; }`,
            'if [ "$1" = print ]; then',
            '  [ -e "$jobs/${2#system/}" ] || { echo "Could not find service \\"${2#system/}\\" in domain for system" >&2; exit 113; }',
            '  dead || echo "state = running"; exit 0',
            "fi",
            `echo "launchctl $*" >> "${work}/calls.log"`,
            // The step, not the $(…) subshell launchctl may run in: the topmost of the chain of
            // parents that share the step's command line.
            `if [ -e "${work}/die-on-restart" ] && [[ "$*" == *bootstrap* || "$*" == *kickstart* ]]; then`,
            `  rm -f "${work}/die-on-restart"; step=$PPID`,
            '  for _ in 1 2 3 4; do up="$(ps -o ppid= -p "$step" | tr -d " ")"; cmp -s "/proc/$up/cmdline" "/proc/$step/cmdline" || break; step=$up; done',
            '  kill -9 "$step" "$PPID"; exit 1',
            "fi",
            'case "$1" in',
            `  bootstrap) [ ! -e "${work}/fail-bootstrap" ] || { echo "Bootstrap failed: 5: Input/output error" >&2; exit 5; }`,
            '    label="$(label_of "$3")"; [ ! -e "$jobs/$label" ] || { echo "Bootstrap failed: 5: Input/output error" >&2; exit 5; }',
            '    echo "$3" >"$jobs/$label" ;;',
            '  bootout) [ -e "$jobs/${2#system/}" ] || { echo "Boot-out failed: 3: No such process" >&2; exit 3; }; rm -f "$jobs/${2#system/}" ;;',
            '  kickstart | kill) [ -e "$jobs/${3#system/}" ] || { echo "Could not find service" >&2; exit 113; } ;;',
            "esac",
            `[ ! -e "${work}/fail-restart" ]`,
            "",
        ].join("\n"),
        { mode: 0o755 },
    );
    fs.writeFileSync(path.join(shims, "nebula"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
});

afterEach(() => {
    fs.rmSync(work, { recursive: true, force: true });
});

interface Delivery {
    status: number | null;
    stdout: string;
    stderr: string;
    calls: string[];
}

/**
 * Delivers `files` with the script; the tmpfs contents are persisted to `state` between
 * deliveries so a second run sees what the first wrote.
 */
/** Extra delivery settings (reload paths) for the cases that need them. */
type DeliveryExtras = { reloadPaths?: string[]; nebulaCert?: { path: string; networks: string[] }; etcNebulaSize?: string };

function deliver(
    service: ServiceManager | "none",
    files: readonly PlannedFile<string>[],
    restart = true,
    secretFiles: readonly PlannedFile<string>[] = [],
    extras: DeliveryExtras = {},
): Delivery {
    fs.rmSync(path.join(work, "calls.log"), { force: true });
    const { etcNebulaSize, ...deliveryExtras } = extras;
    // A size limit on /etc/nebula makes the disk fill up mid-install.
    const tmpfs = etcNebulaSize === undefined ? "tmpfs" : `tmpfs -o size=${etcNebulaSize}`;
    const inner = [
        "set -euo pipefail",
        `mount -t ${tmpfs} tmpfs /etc/nebula 2>/dev/null || { mkdir -p /etc/nebula && mount -t ${tmpfs} tmpfs /etc/nebula; }`,
        "mount -t tmpfs tmpfs /etc/systemd/system",
        "mkdir -p /var/lib/shortcircuit && mount -t tmpfs tmpfs /var/lib/shortcircuit",
        `cp -a "${state}/." / 2>/dev/null || true`,
        "status=0",
        `PATH="${shims}:$PATH" bash -c "$SCRIPT" < "${work}/payload" || status=$?`,
        `rm -rf "${state}" && mkdir -p "${state}/etc" && cp -a /etc/nebula "${state}/etc/" && mkdir -p "${state}/etc/systemd" && cp -a /etc/systemd/system "${state}/etc/systemd/" && mkdir -p "${state}/var/lib" && cp -a /var/lib/shortcircuit "${state}/var/lib/"`,
        "exit $status",
    ].join("\n");
    fs.writeFileSync(path.join(work, "payload"), payloadFor(service, files, restart, secretFiles, deliveryExtras));
    const result = spawnSync("unshare", ["-m", "--propagation", "private", "bash", "-c", inner], {
        env: { ...process.env, SCRIPT: remoteScript("remote/deliver-files.sh") },
        encoding: "utf8",
        timeout: 30000,
    });
    const log = path.join(work, "calls.log");
    return {
        status: result.status,
        stdout: result.stdout,
        stderr: result.stderr,
        calls: fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : [],
    };
}

/** The payload the plan builds for these files: the public step's, or the secret step's. */
function payloadFor(
    service: ServiceManager | "none",
    files: readonly PlannedFile<string>[],
    restart: boolean,
    secretFiles: readonly PlannedFile<string>[] = [],
    extras: DeliveryExtras = {},
): string {
    if (service === "none") {
        return framedPayload(
            { STEP: "test", SERVICE_MANAGER: "none", SERVICE: "none", PLIST: "", RESTART: "no", CHECK_TIMEOUT: "5", OWNER: "" },
            files.map((file) => ({ target: file.path, mode: file.mode, content: file.content })),
        );
    }
    const planned = delivery(plainValues, {
        role: "nebula",
        service,
        secretFiles: restart ? [...secretFiles] : [...files],
        publicFiles: restart ? [...files] : [],
        checkTimeoutSeconds: 5,
        ...extras,
    });
    return restart ? planned.payloads.public : planned.payloads.secret;
}

const delivered = (file: string): string => path.join(state, file);

const config: PlannedFile<string> = { path: "/etc/nebula/config.yml", content: "tun:\n  mtu: 1300\n", mode: 0o644 };
const key: PlannedFile<string> = {
    path: "/etc/nebula/host.key",
    content: "-----BEGIN NEBULA X25519 PRIVATE KEY-----\nAAAA\n-----END NEBULA X25519 PRIVATE KEY-----\n",
    mode: 0o600,
};
const unit: PlannedFile<string> = { path: "/etc/systemd/system/nebula.service", content: "[Service]\nExecStart=/usr/bin/env nebula\n", mode: 0o644 };
const systemd: ServiceManager = { kind: "systemd", unit: "nebula.service" };
// The job files live on the suite's tmpfs (/etc/systemd/system), not /Library/LaunchDaemons: the
// script looks for other jobs beside the planned one, wherever that is.
const LABEL = "io.kub0.shortcircuit.nebula";
const PLIST = `/etc/systemd/system/${LABEL}.plist`;
const OPERATOR_PLIST = "/etc/systemd/system/homebrew.mxcl.nebula.plist";
const launchdNebula = (adoptLabel?: string, program = path.join(shims, "nebula")): ServiceManager => ({
    kind: "launchd",
    label: LABEL,
    plist: PLIST,
    program,
    programField: "fleet.nodes[0].macos.nebulaBinary",
    takeover: { program: "nebula", field: "fleet.nodes[0].macos.adoptNebulaLabel", ...(adoptLabel !== undefined ? { adoptLabel } : {}) },
});
const nebulaPlist = (logPath?: string): PlannedFile<string> => {
    const content = renderNebulaPlist(path.join(shims, "nebula"));
    return { path: PLIST, mode: 0o644, content: logPath === undefined ? content : content.split(NEBULA_LAUNCHD_LOG).join(logPath) };
};
const loadedJobs = (): string[] => (fs.existsSync(path.join(work, "launchd")) ? fs.readdirSync(path.join(work, "launchd")).sort() : []);

/** A restart after a unit file was written, or with nothing known: enabled without the reload `systemctl enable` does by itself, one reload, the restart. */
const ENABLE_RELOAD_RESTART = ["systemctl enable --quiet --no-reload nebula.service", "systemctl daemon-reload", "systemctl restart nebula.service"];

describe("the file delivery script", () => {
    it("writes every file with its mode and restarts once on first delivery", () => {
        const result = deliver(systemd, [config, key, unit]);
        expect(result.status).toBe(0);
        expect(fs.readFileSync(delivered("etc/nebula/config.yml"), "utf8")).toBe(config.content);
        expect(fs.statSync(delivered("etc/nebula/host.key")).mode & 0o777).toBe(0o600);
        expect(fs.statSync(delivered("etc/nebula/config.yml")).mode & 0o777).toBe(0o644);
        // Enabled without the reload `systemctl enable` does by itself, then one reload for both.
        expect(result.calls).toEqual(ENABLE_RELOAD_RESTART);
        expect(result.stdout).toContain("nebula: wrote /etc/nebula/config.yml");
        expect(result.stdout).toContain("nebula: restarted nebula.service; it is active");
        // Command output lands in Pulumi state and logs: it names files, never their content.
        expect(`${result.stdout}${result.stderr}`).not.toContain("PRIVATE KEY");
        expect(`${result.stdout}${result.stderr}`).not.toContain("AAAA");
    });

    it("touches nothing and restarts nothing when every file is unchanged", () => {
        deliver(systemd, [config, key, unit]);
        const before = fs.statSync(delivered("etc/nebula/config.yml")).mtimeMs;
        const result = deliver(systemd, [config, key, unit]);
        expect(result.status).toBe(0);
        expect(result.stdout.trim()).toBe("nebula: no change");
        expect(result.calls).toEqual([]);
        expect(fs.statSync(delivered("etc/nebula/config.yml")).mtimeMs).toBe(before);
        expect(fs.existsSync(delivered("etc/nebula/config.yml.previous"))).toBe(false);
    });

    it("rewrites only the changed file, keeps its previous version, and restarts once", () => {
        deliver(systemd, [config, key, unit]);
        const changed = { ...config, content: "tun:\n  mtu: 1280\n" };
        const result = deliver(systemd, [changed, key, unit]);
        expect(result.status).toBe(0);
        expect(result.stdout).toContain("wrote /etc/nebula/config.yml");
        expect(result.stdout).not.toContain("wrote /etc/nebula/host.key");
        expect(fs.readFileSync(delivered("etc/nebula/config.yml"), "utf8")).toBe(changed.content);
        expect(fs.readFileSync(delivered("etc/nebula/config.yml.previous"), "utf8")).toBe(config.content);
        expect(result.calls.filter((call) => call.startsWith("systemctl restart"))).toHaveLength(1);
        expect(fs.readdirSync(delivered("etc/nebula")).filter((name) => name.includes(".shortcircuit."))).toEqual([]);
    });

    it("reloads systemd once, only when a unit file changed or systemd's copy is stale, and enables only then or when the unit is not enabled", () => {
        expect(deliver(systemd, [config, unit]).status).toBe(0);
        // Only the config changed: the unit is enabled and systemd's copy current, so a restart is all.
        const mtu = (value: number): PlannedFile<string> => ({ ...config, content: `tun:\n  mtu: ${value}\n` });
        expect(deliver(systemd, [mtu(1280), unit]).calls).toEqual(["systemctl restart nebula.service"]);
        // The unit file changed: one reload, after an enable without its own reload (no `show`:
        // the reload is needed anyway, and enabling an enabled unit changes nothing).
        const newUnit = { ...unit, content: `${unit.content}Restart=always\n` };
        expect(deliver(systemd, [mtu(1280), newUnit]).calls).toEqual(ENABLE_RELOAD_RESTART);
        // A run that wrote the unit and stopped before its reload left systemd's copy stale: reloaded.
        fs.writeFileSync(path.join(work, "stale-unit"), "");
        expect(deliver(systemd, [mtu(1300), newUnit]).calls).toEqual(["systemctl daemon-reload", "systemctl restart nebula.service"]);
        // systemd has not loaded the unit (it held a lookup that found no file): reloaded.
        fs.writeFileSync(path.join(work, "not-loaded"), "");
        expect(deliver(systemd, [mtu(1310), newUnit]).calls).toEqual(["systemctl daemon-reload", "systemctl restart nebula.service"]);
        fs.rmSync(path.join(work, "not-loaded"));
        // Disabled by hand: enabled again, then reloaded.
        fs.rmSync(path.join(work, "enabled"));
        expect(deliver(systemd, [mtu(1320), newUnit]).calls).toEqual(ENABLE_RELOAD_RESTART);
        // systemctl show failing: enable and reload, as when nothing is known.
        fs.writeFileSync(path.join(work, "show-fails"), "");
        const blind = deliver(systemd, [mtu(1340), newUnit]);
        expect(blind.status).toBe(0);
        expect(blind.calls).toEqual(ENABLE_RELOAD_RESTART);
    });

    it("carries content verbatim: quotes, $(…), backslashes and no trailing newline never reach a shell", () => {
        const tricky = { path: "/etc/nebula/notes.txt", content: "a 'quote' \"dq\" $(touch /tmp/pwned) `id` \\n\nlast line", mode: 0o644 };
        const result = deliver("none", [tricky]);
        expect(result.status).toBe(0);
        expect(fs.readFileSync(delivered("etc/nebula/notes.txt"), "utf8")).toBe(tricky.content);
        expect(fs.existsSync("/tmp/pwned")).toBe(false);
    });

    it("retries a restart a run cut short never finished, though no file changes", () => {
        fs.writeFileSync(path.join(work, "die-on-restart"), "");
        const cut = deliver(systemd, [config, unit]);
        expect(cut.status).not.toBe(0);
        // Killed between its write and its restart: the file is new, the restart pending, and
        // the lock it held names a dead process.
        expect(fs.readFileSync(delivered("etc/nebula/config.yml"), "utf8")).toBe(config.content);
        expect(fs.existsSync(delivered("var/lib/shortcircuit/restart-pending.nebula.service"))).toBe(true);
        const rerun = deliver(systemd, [config, unit]);
        expect(rerun.status).toBe(0);
        expect(rerun.stdout).toContain("a restart of nebula.service is pending (a key changed, or the last restart did not complete)");
        expect(rerun.calls).toContain("systemctl restart nebula.service");
        expect(deliver(systemd, [config, unit]).calls).toEqual([]);
    });

    /** The step failed because the service was unhealthy on the new files, and the previous ones are back. */
    const expectPutBack = (result: { status: number | null; stderr: string }): void => {
        expect(result.status).not.toBe(0);
        expect(result.stderr).toContain(
            "nebula.service is not healthy 5s after its restart on the new files; put the previous files back and nebula.service is healthy on them",
        );
        expect(fs.readFileSync(delivered("etc/nebula/config.yml"), "utf8")).toBe(config.content);
    };

    it("puts the previous files back when the service is not healthy on the new ones, and fails", () => {
        expect(deliver(systemd, [config, unit]).status).toBe(0);
        const broken = { ...config, content: "tun:\n  mtu: 9999 # broken\n" };
        fs.writeFileSync(path.join(work, "dead-on"), "broken");
        const result = deliver(systemd, [broken, unit]);
        expectPutBack(result);
        expect(result.calls.filter((call) => call === "systemctl restart nebula.service")).toHaveLength(2);
        // The wanted files are not in place: every later run tries them again, and fails again.
        expect(deliver(systemd, [broken, unit]).status).not.toBe(0);
    });

    it("does not take a service that is up at the first look after its restart and gone at the next for healthy", () => {
        expect(deliver(systemd, [config, unit]).status).toBe(0);
        const exitsAtOnce = { ...config, content: "tun:\n  mtu: 1300 # exits at once\n" };
        fs.writeFileSync(path.join(work, "exits-on"), "exits at once");
        const result = deliver(systemd, [exitsAtOnce, unit]);
        expectPutBack(result);
    });

    it("a disk that fills up mid-install: the step fails, nothing half-written is left or installed, nothing restarts; with space again the rerun installs", () => {
        expect(deliver(systemd, [config, unit]).status).toBe(0);
        const before = fs.readdirSync(delivered("etc/nebula")).sort();
        // 64 KiB of config on a 16 KiB /etc/nebula: the write runs out of space.
        const large = { ...config, content: `tun:\n  mtu: 1300\n# ${"x".repeat(64 * 1024)}\n` };
        const full = deliver(systemd, [large, unit], true, [], { etcNebulaSize: "16k" });
        expect(full.status).not.toBe(0);
        expect(full.stderr).toMatch(/No space left on device/);
        expect(fs.readFileSync(delivered("etc/nebula/config.yml"), "utf8")).toBe(config.content);
        expect(fs.readdirSync(delivered("etc/nebula")).sort()).toEqual(before);
        expect(full.calls.filter((call) => call.startsWith("systemctl restart"))).toEqual([]);

        const rerun = deliver(systemd, [large, unit]);
        expect(rerun.status).toBe(0);
        expect(fs.readFileSync(delivered("etc/nebula/config.yml"), "utf8")).toBe(large.content);
        expect(rerun.calls).toContain("systemctl restart nebula.service");
        expect(deliver(systemd, [large, unit]).calls).toEqual([]);
    });

    it("fails when the service never comes up, and leaves the restart pending", () => {
        fs.writeFileSync(path.join(work, "dead"), "");
        const result = deliver(systemd, [config]);
        expect(result.status).not.toBe(0);
        expect(result.stderr).toContain(
            "nebula.service is not healthy 5s after its restart on the new files; put the previous files back, but nebula.service is not healthy on them either",
        );
        expect(fs.existsSync(delivered("var/lib/shortcircuit/restart-pending.nebula.service"))).toBe(true);
    });

    it("stages a changed key and switches it in with the public files, dropping the old key once healthy", () => {
        deliver(systemd, [key], false);
        expect(deliver(systemd, [config, unit], true, [key]).status).toBe(0);
        expect(fs.readFileSync(delivered("etc/nebula/host.key"), "utf8")).toBe(key.content);
        const rotated = { ...key, content: key.content.replace("AAAA", "BBBB") };
        const secrets = deliver(systemd, [rotated], false);
        expect(secrets.status).toBe(0);
        expect(secrets.calls).toEqual([]);
        expect(secrets.stdout).toContain("staged /etc/nebula/host.key");
        // Not live yet: the key goes in with the certificate and config, never alone.
        expect(fs.readFileSync(delivered("etc/nebula/host.key"), "utf8")).toBe(key.content);
        const files = deliver(systemd, [config, unit], true, [rotated]);
        expect(files.calls).toContain("systemctl restart nebula.service");
        expect(fs.readFileSync(delivered("etc/nebula/host.key"), "utf8")).toBe(rotated.content);
        expect(fs.statSync(delivered("etc/nebula/host.key")).mode & 0o777).toBe(0o600);
        expect(fs.existsSync(delivered("etc/nebula/host.key.previous"))).toBe(false);
        expect(fs.existsSync(delivered("etc/nebula/host.key.shortcircuit-staged"))).toBe(false);
    });

    it("reloads instead of restarting when only the CA, certificate or key changed, unless the certificate's addresses moved", () => {
        // Real certificates from nebula-cert; the plan passes the networks each was issued for, and
        // the script compares them with the record of what the running certificate carries.
        const pki = fs.mkdtempSync(path.join(work, "pki-"));
        const nebulaCert = (args: string[]): void => {
            const result = spawnSync("nebula-cert", args, { cwd: pki, encoding: "utf8", timeout: 30_000 });
            expect(result.status).toBe(0);
        };
        nebulaCert(["ca", "-name", "reload-test", "-out-crt", "ca.crt", "-out-key", "ca.key"]);
        nebulaCert(["sign", "-name", "a", "-ip", "10.9.0.2/16", "-out-crt", "a.crt", "-out-key", "a.key"]);
        nebulaCert(["sign", "-name", "a", "-ip", "10.9.0.2/16", "-groups", "new", "-out-crt", "a2.crt", "-out-key", "a2.key"]);
        nebulaCert(["sign", "-name", "a", "-ip", "10.9.0.9/16", "-out-crt", "moved.crt", "-out-key", "moved.key"]);
        nebulaCert(["sign", "-name", "a", "-ip", "10.9.0.9/16", "-groups", "new", "-out-crt", "moved2.crt", "-out-key", "moved2.key"]);
        const file = (target: string, name: string): PlannedFile<string> => ({
            path: target,
            content: fs.readFileSync(path.join(pki, name), "utf8"),
            mode: 0o644,
        });
        const ca = file("/etc/nebula/ca.crt", "ca.crt");
        const reloadPaths = ["/etc/nebula/ca.crt", "/etc/nebula/host.crt", "/etc/nebula/host.key"];
        const extras: DeliveryExtras = { reloadPaths, nebulaCert: { path: "/etc/nebula/host.crt", networks: ["10.9.0.2/16"] } };
        const movedExtras: DeliveryExtras = { reloadPaths, nebulaCert: { path: "/etc/nebula/host.crt", networks: ["10.9.0.9/16"] } };
        expect(deliver(systemd, [config, unit, ca, file("/etc/nebula/host.crt", "a.crt")], true, [], extras).status).toBe(0);
        expect(fs.readFileSync(delivered("etc/nebula/host.crt.shortcircuit-networks"), "utf8")).toBe("10.9.0.2/16\n");

        const reloaded = deliver(systemd, [config, unit, ca, file("/etc/nebula/host.crt", "a2.crt")], true, [], extras);
        expect(reloaded.status).toBe(0);
        expect(reloaded.calls).toEqual(["systemctl reload nebula.service"]);
        expect(reloaded.stdout).toContain("reloaded nebula.service (only files it re-reads changed); it is active and answering");

        // Nebula refuses a certificate whose address moved on reload: that takes a restart.
        const moved = deliver(systemd, [config, unit, ca, file("/etc/nebula/host.crt", "moved.crt")], true, [], movedExtras);
        expect(moved.calls).toContain("systemctl restart nebula.service");
        expect(moved.calls).not.toContain("systemctl reload nebula.service");
        expect(fs.readFileSync(delivered("etc/nebula/host.crt.shortcircuit-networks"), "utf8")).toBe("10.9.0.9/16\n");

        // Any other file (the config) takes a restart too.
        const reconfiguredConfig = { ...config, content: "tun:\n  mtu: 1280\n" };
        const reconfigured = deliver(systemd, [reconfiguredConfig, unit, ca, file("/etc/nebula/host.crt", "moved.crt")], true, [], movedExtras);
        expect(reconfigured.calls).toContain("systemctl restart nebula.service");

        // No record of what the running certificate carries (a host from before it was kept): a restart.
        fs.rmSync(delivered("etc/nebula/host.crt.shortcircuit-networks"));
        const unrecorded = deliver(systemd, [reconfiguredConfig, unit, ca, file("/etc/nebula/host.crt", "moved2.crt")], true, [], movedExtras);
        expect(unrecorded.calls).toContain("systemctl restart nebula.service");
        expect(unrecorded.calls).not.toContain("systemctl reload nebula.service");
        expect(fs.readFileSync(delivered("etc/nebula/host.crt.shortcircuit-networks"), "utf8")).toBe("10.9.0.9/16\n");
    });

    describe("under launchd (macOS)", () => {
        it("loads a new job with bootstrap, restarts a loaded one with kickstart, and leaves an unchanged one alone", () => {
            const first = deliver(launchdNebula(), [config, nebulaPlist()]);
            expect(first.stderr).toBe("");
            expect(first.status).toBe(0);
            expect(first.calls).toEqual([`launchctl bootstrap system ${PLIST}`]);
            expect(first.stdout).toContain(`nebula: restarted ${LABEL}; it is active and answering`);
            expect(loadedJobs()).toEqual([LABEL]);
            expect(fs.readFileSync(delivered(`var/lib/shortcircuit/launchd-loaded.${LABEL}`), "utf8")).toBe(nebulaPlist().content);

            const again = deliver(launchdNebula(), [config, nebulaPlist()]);
            expect(again.stdout.trim()).toBe("nebula: no change");
            expect(again.calls).toEqual([]);

            const reconfigured = deliver(launchdNebula(), [{ ...config, content: "tun:\n  mtu: 1280\n" }, nebulaPlist()]);
            expect(reconfigured.status).toBe(0);
            expect(reconfigured.calls).toEqual([`launchctl kickstart -k system/${LABEL}`]);
        });

        it("boots a loaded job out before loading its changed job file (launchd refuses bootstrap of a loaded job)", () => {
            expect(deliver(launchdNebula(), [config, nebulaPlist()]).status).toBe(0);
            const changed = deliver(launchdNebula(), [config, nebulaPlist("/var/log/nebula-other.log")]);
            expect(changed.status).toBe(0);
            expect(changed.calls).toEqual([`launchctl bootout system/${LABEL}`, `launchctl bootstrap system ${PLIST}`]);
            expect(fs.readFileSync(delivered(`etc/systemd/system/${LABEL}.plist.previous`), "utf8")).toBe(nebulaPlist().content);
        });

        it("reloads with launchctl kill HUP when only a file Nebula re-reads changed", () => {
            const ca: PlannedFile<string> = { path: "/etc/nebula/ca.crt", mode: 0o644, content: "ca one\n" };
            const extras: DeliveryExtras = { reloadPaths: ["/etc/nebula/ca.crt", "/etc/nebula/host.crt", "/etc/nebula/host.key"] };
            expect(deliver(launchdNebula(), [config, ca, nebulaPlist()], true, [], extras).status).toBe(0);
            const reloaded = deliver(launchdNebula(), [config, { ...ca, content: "ca two\n" }, nebulaPlist()], true, [], extras);
            expect(reloaded.status).toBe(0);
            expect(reloaded.calls).toEqual([`launchctl kill HUP system/${LABEL}`]);
            expect(reloaded.stdout).toContain(`reloaded ${LABEL} (only files it re-reads changed)`);
            // A reload needs the job loaded from the job file in place: after a job-file change, a restart.
            const both = deliver(launchdNebula(), [config, { ...ca, content: "ca three\n" }, nebulaPlist("/var/log/x.log")], true, [], extras);
            expect(both.calls).toEqual([`launchctl bootout system/${LABEL}`, `launchctl bootstrap system ${PLIST}`]);
        });

        it("fails on a bootstrap error instead of swallowing it, unloads a job that was new, and a rerun converges", () => {
            fs.writeFileSync(path.join(work, "fail-bootstrap"), "");
            const failed = deliver(launchdNebula(), [config, nebulaPlist()]);
            expect(failed.status).not.toBe(0);
            expect(failed.stderr).toContain(`launchctl bootstrap system ${PLIST} failed: Bootstrap failed: 5: Input/output error`);
            expect(failed.stderr).toContain(`put the previous files back: ${LABEL} was new and is unloaded`);
            expect(fs.existsSync(delivered(`etc/systemd/system/${LABEL}.plist`))).toBe(false);
            expect(fs.existsSync(delivered("etc/nebula/config.yml"))).toBe(false);
            expect(loadedJobs()).toEqual([]);
            fs.rmSync(path.join(work, "fail-bootstrap"));
            const rerun = deliver(launchdNebula(), [config, nebulaPlist()]);
            expect(rerun.status).toBe(0);
            expect(rerun.calls).toEqual([`launchctl bootstrap system ${PLIST}`]);
            expect(deliver(launchdNebula(), [config, nebulaPlist()]).calls).toEqual([]);
        });

        it("puts the previous files and job back when the new ones are not healthy, and fails", () => {
            expect(deliver(launchdNebula(), [config, nebulaPlist()]).status).toBe(0);
            fs.writeFileSync(path.join(work, "dead-on"), "broken");
            const broken = { ...config, content: "tun:\n  mtu: 9999 # broken\n" };
            const result = deliver(launchdNebula(), [broken, nebulaPlist("/var/log/new.log")]);
            expect(result.status).not.toBe(0);
            expect(result.stderr).toContain(
                `${LABEL} is not healthy 5s after its restart on the new files; put the previous files back and ${LABEL} is healthy on them`,
            );
            expect(result.calls).toEqual([
                `launchctl bootout system/${LABEL}`,
                `launchctl bootstrap system ${PLIST}`,
                `launchctl bootout system/${LABEL}`,
                `launchctl bootstrap system ${PLIST}`,
            ]);
            expect(fs.readFileSync(delivered("etc/nebula/config.yml"), "utf8")).toBe(config.content);
            expect(fs.readFileSync(delivered(`etc/systemd/system/${LABEL}.plist`), "utf8")).toBe(nebulaPlist().content);
            // The job launchd holds is the previous one again.
            expect(fs.readFileSync(delivered(`var/lib/shortcircuit/launchd-loaded.${LABEL}`), "utf8")).toBe(nebulaPlist().content);
            expect(fs.existsSync(delivered(`var/lib/shortcircuit/restart-pending.${LABEL}`))).toBe(false);
            expect(deliver(launchdNebula(), [broken, nebulaPlist("/var/log/new.log")]).status).not.toBe(0);
            fs.rmSync(path.join(work, "dead-on"));
            expect(deliver(launchdNebula(), [config, nebulaPlist()]).calls).toEqual([]);
        });

        it("retries the load a run cut short never finished", () => {
            fs.writeFileSync(path.join(work, "die-on-restart"), "");
            expect(deliver(launchdNebula(), [config, nebulaPlist()]).status).not.toBe(0);
            expect(loadedJobs()).toEqual([]);
            expect(fs.existsSync(delivered(`var/lib/shortcircuit/restart-pending.${LABEL}`))).toBe(true);
            const rerun = deliver(launchdNebula(), [config, nebulaPlist()]);
            expect(rerun.status).toBe(0);
            expect(rerun.calls).toEqual([`launchctl bootstrap system ${PLIST}`]);
            expect(deliver(launchdNebula(), [config, nebulaPlist()]).calls).toEqual([]);
        });

        it("refuses, before changing anything, a host whose program is missing", () => {
            const result = deliver(launchdNebula(undefined, "/opt/homebrew/bin/nebula-missing"), [config, nebulaPlist()]);
            expect(result.status).not.toBe(0);
            expect(result.stderr.trim()).toBe(
                "nebula: /opt/homebrew/bin/nebula-missing is not an executable on this host; install it there or set fleet.nodes[0].macos.nebulaBinary to where it is; nothing changed",
            );
            expect(fs.existsSync(delivered("etc/nebula/config.yml"))).toBe(false);
            expect(result.calls).toEqual([]);
        });

        describe("an operator's own Nebula job", () => {
            const operatorJob = (): void => {
                const job = renderNebulaPlist("/opt/homebrew/opt/nebula/bin/nebula").split(LABEL).join("homebrew.mxcl.nebula");
                fs.mkdirSync(path.join(state, "etc/systemd/system"), { recursive: true });
                fs.writeFileSync(path.join(state, OPERATOR_PLIST), job);
                fs.mkdirSync(path.join(work, "launchd"), { recursive: true });
                fs.writeFileSync(path.join(work, "launchd/homebrew.mxcl.nebula"), OPERATOR_PLIST);
            };

            it("stops both steps before anything changes, naming its file and the field to set", () => {
                operatorJob();
                const line = `nebula: ${OPERATOR_PLIST} (launchd job homebrew.mxcl.nebula) runs nebula; set fleet.nodes[0].macos.adoptNebulaLabel: homebrew.mxcl.nebula to have it taken over, or remove it; nothing changed`;
                const secrets = deliver(launchdNebula(), [key], false);
                expect(secrets.status).not.toBe(0);
                expect(secrets.stderr.trim()).toBe(line.replace("nebula: ", "nebula secrets: "));
                const files = deliver(launchdNebula(), [config, nebulaPlist()]);
                expect(files.status).not.toBe(0);
                expect(files.stderr.trim()).toBe(line);
                expect(files.calls).toEqual([]);
                expect(fs.readdirSync(delivered("etc/nebula"))).toEqual([]);
                expect(fs.existsSync(delivered(`var/lib/shortcircuit/restart-pending.${LABEL}`))).toBe(false);
                expect(loadedJobs()).toEqual(["homebrew.mxcl.nebula"]);
            });

            it("is taken over when the stack names it: booted out, its file moved aside, the program's job loaded; a rerun converges", () => {
                operatorJob();
                fs.writeFileSync(path.join(work, "die-on-restart"), "");
                const cut = deliver(launchdNebula("homebrew.mxcl.nebula"), [config, nebulaPlist()]);
                expect(cut.status).not.toBe(0);
                expect(cut.calls).toEqual(["launchctl bootout system/homebrew.mxcl.nebula", `launchctl bootstrap system ${PLIST}`]);
                expect(fs.existsSync(delivered("etc/systemd/system/homebrew.mxcl.nebula.plist"))).toBe(false);
                expect(fs.existsSync(delivered("etc/systemd/system/homebrew.mxcl.nebula.plist.shortcircuit-adopted"))).toBe(true);
                expect(loadedJobs()).toEqual([]);

                const rerun = deliver(launchdNebula("homebrew.mxcl.nebula"), [config, nebulaPlist()]);
                expect(rerun.status).toBe(0);
                expect(rerun.calls).toEqual([`launchctl bootstrap system ${PLIST}`]);
                expect(loadedJobs()).toEqual([LABEL]);
                expect(deliver(launchdNebula("homebrew.mxcl.nebula"), [config, nebulaPlist()]).calls).toEqual([]);
            });

            it("is put back when the program's new job is not healthy", () => {
                operatorJob();
                fs.writeFileSync(path.join(work, "dead-on"), "broken");
                const result = deliver(launchdNebula("homebrew.mxcl.nebula"), [{ ...config, content: "# broken\n" }, nebulaPlist()]);
                expect(result.status).not.toBe(0);
                expect(result.stderr).toContain(`${LABEL} was new and is unloaded, the job it took over (homebrew.mxcl.nebula) is back`);
                expect(result.calls).toEqual([
                    "launchctl bootout system/homebrew.mxcl.nebula",
                    `launchctl bootstrap system ${PLIST}`,
                    `launchctl bootout system/${LABEL}`,
                    `launchctl bootstrap system ${OPERATOR_PLIST}`,
                ]);
                expect(loadedJobs()).toEqual(["homebrew.mxcl.nebula"]);
                expect(fs.existsSync(delivered("etc/systemd/system/homebrew.mxcl.nebula.plist"))).toBe(true);
                expect(fs.existsSync(delivered(`etc/systemd/system/${LABEL}.plist`))).toBe(false);
            });
        });
    });

    it("refuses a cut-short payload before writing anything", () => {
        const payload = payloadFor(systemd, [config], true);
        fs.writeFileSync(path.join(work, "payload"), payload.slice(0, payload.length - 5));
        const inner = `mount -t tmpfs tmpfs /etc/nebula && mkdir -p /var/lib/shortcircuit && mount -t tmpfs tmpfs /var/lib/shortcircuit && PATH="${shims}:$PATH" bash -c "$SCRIPT" < "${work}/payload"; echo "status=$?"; ls /etc/nebula`;
        const result = spawnSync("unshare", ["-m", "--propagation", "private", "bash", "-c", inner], {
            env: { ...process.env, SCRIPT: remoteScript("remote/deliver-files.sh") },
            encoding: "utf8",
            timeout: 30000,
        });
        expect(result.stdout).toContain("status=2");
        expect(result.stdout).not.toContain("config.yml");
        expect(result.stderr).toContain("payload cut short");
    });

    it("refuses targets that are relative or climb out, and unit names a shell would split", () => {
        expect(() => framedPayload({}, [{ target: "etc/x", content: "", mode: 0o644 }])).toThrow(PayloadError);
        expect(() => framedPayload({}, [{ target: "/etc/a b", content: "", mode: 0o644 }])).toThrow(PayloadError);
        expect(() => framedPayload({}, [{ target: "/etc/../x", content: "", mode: 0o644 }])).toThrow(PayloadError);
        expect(() => delivery(plainValues, { role: "x", service: { kind: "systemd", unit: "nebula; reboot" }, secretFiles: [], publicFiles: [] })).toThrow(
            "not a plain name",
        );
    });
});
