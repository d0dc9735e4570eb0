import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { delivery, plainValues, type Delivery, type PlannedSsh } from "../../../components/hostPlan";
import { stepLauncher, stepStdin } from "../../../components/remote/remoteCommand";
import { remoteScript } from "../../../components/remote/scripts";
import { runDrift } from "../../../scripts/drift/run";
import type { ExpectedHost } from "../../../scripts/drift/expect";
import { checkLabPrerequisites, startLabFleet, type LabFleet, type LabSudo } from "../../../scripts/lab";
import { MACOS_RUNTIME } from "../../../scripts/lab/macos/types";
import { throwawayPlan } from "../../../scripts/render/throwawayPlan";
import type { RelayPlan } from "../../../components/derp/plan";
import { parsePayload } from "../../../components/remote/payload";
import { versions } from "../../../components/versions";
import type { Fleet } from "../../../stacks/schema";
import { validateFleet } from "../../../stacks/validate";
import { rawFleet, type Raw } from "../../support/fixtures";

/*
 * The privilege model (ssh.become, components/remote/remoteCommand.ts) on lab hosts reached as a
 * non-root user `admin`, with Debian's REAL sudo inside each host (scripts/lab: the user and its
 * sudoers rule live in the host's own /etc): the exact delivery script over real SSH through the
 * program's launcher, and drift's collector through the same launcher. One host has the
 * runbook's NOPASSWD rule; the others show the three ways sudo fails: it would ask for a
 * password, it has no rule for the user, it is not installed. A failing host fails at once with
 * one line and keeps every file as it was.
 */

jest.setTimeout(180_000);

const USER = "admin";
const HOSTS: Record<LabSudo, string> = { nopasswd: "sudo-ok", password: "sudo-password", refused: "sudo-refused", missing: "sudo-missing" };
const KEY = `-----BEGIN NEBULA X25519 PRIVATE KEY-----\n${randomBytes(32).toString("base64")}\n-----END NEBULA X25519 PRIVATE KEY-----\n`;
const CONFIG = "pki:\n  key: /etc/nebula/host.key\nlisten:\n  port: 4242\n";
const UNIT = "[Unit]\nDescription=nebula (lab)\n[Service]\nExecStart=/usr/local/bin/nebula -config /etc/nebula/config.yml\n";
const ONE_LINE =
    /^shortcircuit: (\S+): cannot become root: sudo -n \/bin\/bash as admin failed \((.+)\); fix: on that host add the line "admin ALL=\(root\) NOPASSWD: \/bin\/bash" with visudo -f \/etc\/sudoers.d\/shortcircuit$/;

/** A macOS-shaped host (scripts/lab/macos) reached as admin, whose login shell is zsh as a Mac's is. */
const MAC = "sudo-mac";
/** The program's derper LaunchDaemon. */
const DERPER_LABEL = "com.tailscale.derper";
const NOW = new Date();

/** The lab stack's relay played as prod's Austin relay: a Mac, derper under launchd. */
function macRelay(): RelayPlan<string> {
    const raw: Raw = rawFleet("lab");
    const relayNode = raw.nodes.find((node: Raw) => node.name === "lab-relay-01");
    relayNode.os = "macos";
    relayNode.macos = { nebulaBinary: "/usr/bin/nebula" };
    raw.derpRelays[0].serviceManager = "launchd";
    const result = validateFleet(raw, { now: NOW });
    expect(result.problems.filter((problem) => problem.severity === "error")).toEqual([]);
    return throwawayPlan(result.fleet as Fleet, { now: NOW, pkiSeedHex: "5c".repeat(32) }).plan.relays[0];
}

let fleet: LabFleet;
const plan: Delivery<string> = delivery(plainValues, {
    role: "nebula",
    service: { kind: "systemd", unit: "nebula" },
    secretFiles: [{ path: "/etc/nebula/host.key", mode: 0o600, content: KEY }],
    publicFiles: [
        { path: "/etc/nebula/config.yml", mode: 0o644, content: CONFIG },
        { path: "/etc/systemd/system/nebula.service", mode: 0o644, content: UNIT },
    ],
    checkTimeoutSeconds: 20,
});

interface StepRun {
    code: number | null;
    stdout: string;
    stderr: string;
}

/** One step as the command provider runs it: `create` (the launcher) as admin over SSH, script and payload on stdin. */
function step(host: string, payload: string, script = remoteScript("remote/deliver-files.sh"), name = "remote/deliver-files.sh"): Promise<StepRun> {
    const launcher = stepLauncher(name, script, "stdoutAndStderr", "sudo");
    const argv = fleet.sshArgv(host).map((arg) => (arg === "root" ? USER : arg));
    return new Promise((resolve, reject) => {
        const child = spawn("ssh", [...argv, launcher], { stdio: ["pipe", "pipe", "pipe"] });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
        child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
        child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
        child.on("error", reject);
        child.on("close", (code) => {
            clearTimeout(timer);
            resolve({ code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") });
        });
        child.stdin.end(stepStdin(script, payload));
    });
}

async function inHost(host: string, command: string): Promise<string> {
    return (await fleet.exec(host, command, { check: true })).stdout;
}

function expectedHost(host: string): ExpectedHost {
    const lab = fleet.host(host);
    const ssh: PlannedSsh = { host: lab.sshHost, user: USER, port: lab.sshPort, timeoutSeconds: 5, dialAttempts: 1, become: "sudo" };
    return {
        name: host,
        ssh,
        files: [
            { path: "/etc/nebula/host.key", mode: 0o600, owner: "root:root", check: "secret", sha256: createHash("sha256").update(KEY).digest("hex") },
            {
                path: "/etc/nebula/config.yml",
                mode: 0o644,
                owner: "root:root",
                check: "content",
                text: CONFIG,
                sha256: createHash("sha256").update(CONFIG).digest("hex"),
            },
        ],
        services: [],
        addresses: [],
        clusterCidrs: [],
        kubectl: false,
    };
}

beforeAll(async () => {
    const missing = checkLabPrerequisites();
    if (missing.length > 0) throw new Error(`the lab fleet needs: ${missing.join("; ")}`);
    const derpPort = macRelay().deliveries[0].checkPort;
    fleet = await startLabFleet({
        hosts: [
            ...(Object.keys(HOSTS) as LabSudo[]).map((sudo) => ({ name: HOSTS[sudo], role: "agent" as const, login: { user: USER, sudo } })),
            {
                name: MAC,
                role: "agent",
                os: "macos",
                login: { user: USER, sudo: "nopasswd" },
                // derper's job: a listener on the relay's port (the `go` stand-in's derper serves nothing).
                launchd: {
                    [DERPER_LABEL]: {
                        program: [
                            `${MACOS_RUNTIME}/node/bin/node`,
                            "-e",
                            `require("net").createServer((socket) => socket.destroy()).listen(${derpPort}, "127.0.0.1")`,
                        ],
                    },
                },
            },
        ],
    });
}, 120_000);

afterAll(async () => {
    await fleet?.stop();
});

describe("steps on a host reached as a non-root user, through the real sudo", () => {
    it("with the NOPASSWD rule: both delivery steps run as root, the files are root's with the planned modes, the unit restarts", async () => {
        const host = HOSTS.nopasswd;
        expect(await inHost(host, `id -u ${USER}`)).not.toBe("0\n");
        const secrets = await step(host, plan.payloads.secret);
        expect(secrets.stderr).toBe("");
        expect(secrets.code).toBe(0);
        const files = await step(host, plan.payloads.public);
        expect(files.stderr).toBe("");
        expect(files.code).toBe(0);
        expect(files.stdout).toMatch(/restarted nebula/);
        expect(await inHost(host, "stat -c '%U:%G %a %n' /etc/nebula/host.key /etc/nebula/config.yml")).toBe(
            "root:root 600 /etc/nebula/host.key\nroot:root 644 /etc/nebula/config.yml\n",
        );
        expect(await inHost(host, "cat /etc/nebula/host.key")).toBe(KEY);
        expect(fleet.serviceEvents(host, "nebula").some((event) => event.verb === "restart")).toBe(true);
    });

    it("sudo ran only the launcher's short reader: no script text and no secret in sudo's log (argv), none left in a file others can read", async () => {
        const host = HOSTS.nopasswd;
        // sudo wraps a long entry onto indented lines; joined, each entry is one line again.
        const log = (await inHost(host, "cat /var/log/sudo.log")).replace(/\n\s+/g, " ");
        const commands = log
            .split("\n")
            .filter((line) => line.includes("COMMAND="))
            .map((line) => line.slice(line.indexOf("COMMAND=") + "COMMAND=".length));
        expect(commands.length).toBeGreaterThanOrEqual(4);
        for (const command of commands) {
            expect(command).toMatch(
                /^\/bin\/bash -c (:|'script="\$\(\{ dd bs=(\d+) count=1 iflag=fullblock \|\| dd bs=1 count=\2; \} 2>\/dev\/null \| base64 --decode \| gzip -dc\)" && exec bash -c "\$script" "\$0" "\$1"' remote\/deliver-files\.sh stdoutAndStderr)$/,
            );
        }
        const keyLine = KEY.split("\n")[1];
        expect(log).not.toContain(keyLine);
        // Anything another user could read in the places a step stages or leaves files.
        const readable = await inHost(
            host,
            `find /tmp /var/tmp /etc/nebula /home -type f -perm -004 -exec grep -l -F -e '${keyLine}' {} + 2>/dev/null || true`,
        );
        expect(readable).toBe("");
    });

    it("drift's collector reads the root-only key through the same launcher: the host is clean", async () => {
        const report = await runDrift(
            { hosts: [expectedHost(HOSTS.nopasswd)], notes: [] },
            {
                stack: "become-lab",
                concurrency: 1,
                diff: false,
                now: new Date(),
                ssh: {
                    identity: fleet.privateKeyPath,
                    configFile: "/dev/null",
                    knownHostsFile: "/dev/null",
                    strictHostKeyChecking: "no",
                    hostTimeoutSeconds: 60,
                },
            },
        );
        const result = report.hosts[0];
        expect(result.reason).toBeUndefined();
        expect(result.findings).toEqual([]);
        expect(result.status).toBe("ok");
    });

    it("on a macOS-shaped host whose login shell is zsh: the launcher reaches bash (3.2-shaped: no mapfile) as root through sudo, and drift reads the host", async () => {
        expect(await inHost(MAC, `grep "^${USER}:" /etc/passwd | cut -d: -f7`)).toBe("/bin/zsh\n");
        const script = '# shellcheck shell=bash\nprintf "%s %s %s %s\\n" "$(id -un)" "$0" "$(type -t mapfile || echo no-mapfile)" "$HOME"\ncat\n';
        const result = await step(MAC, "PAYLOAD=1\n\n", script, "test/whoami.sh");
        expect(result.stderr).toBe("");
        expect(result.code).toBe(0);
        // Root, with the login user's HOME: macOS's sudoers keeps it (env_keep += "HOME MAIL").
        expect(result.stdout).toBe(`root test/whoami.sh no-mapfile /home/${USER}\nPAYLOAD=1\n\n`);
        const report = await runDrift(
            { hosts: [{ ...expectedHost(MAC), files: [] }], notes: [] },
            {
                stack: "become-lab",
                concurrency: 1,
                diff: false,
                now: new Date(),
                ssh: {
                    identity: fleet.privateKeyPath,
                    configFile: "/dev/null",
                    knownHostsFile: "/dev/null",
                    strictHostKeyChecking: "no",
                    hostTimeoutSeconds: 60,
                },
            },
        );
        expect(report.hosts[0].reason).toBeUndefined();
        expect(report.hosts[0].status).toBe("ok");
    });

    it("prod's relay shape, a Mac reached as admin: derper's install leaves nothing of root's in admin's home (sudo keeps it as HOME); its LaunchDaemon is root's, loaded and answering; a rerun changes nothing", async () => {
        const owner = (file: string) => {
            const stat = fs.statSync(fleet.hostPath(MAC, file));
            return { uid: stat.uid, gid: stat.gid, mode: (stat.mode & 0o7777).toString(8) };
        };
        const relay = macRelay();
        const target = parsePayload(relay.installPayload).params.TARGET;
        const goBefore = fleet.toolInvocations(MAC, "go").length;
        const install = await step(MAC, relay.installPayload, remoteScript("derp/install.sh"), "derp/install.sh");
        expect(install.code).toBe(0);
        expect(install.stdout).toContain(`derper ${versions.tailscale} at ${target}`);
        expect(await inHost(MAC, `find /home/${USER} -uid 0 -print`)).toBe("");
        const [goCall] = fleet.toolInvocations(MAC, "go").slice(goBefore);
        expect(goCall.env?.GOMODCACHE).toMatch(/^\/usr\/local\/lib\/derper\/\.go-install\.[^/]+\/mod$/);
        expect(await inHost(MAC, "ls -A /usr/local/lib/derper")).toBe(`${versions.tailscale}\n`);
        expect(owner(target)).toEqual({ uid: 0, gid: 0, mode: "755" });

        const [derper] = relay.deliveries;
        for (const payload of [derper.payloads.secret, derper.payloads.public]) {
            const result = await step(MAC, payload);
            expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
        }
        const job = fleet.launchdState(MAC).jobs[DERPER_LABEL];
        expect(job.pid).not.toBeNull();
        expect(job.programArguments[0]).toBe(target);
        expect(owner(`/Library/LaunchDaemons/${DERPER_LABEL}.plist`)).toEqual({ uid: 0, gid: 0, mode: "644" });

        // The next `up`: the install finds its version, the delivery nothing to change.
        const again = await step(MAC, relay.installPayload, remoteScript("derp/install.sh"), "derp/install.sh");
        expect(again.code).toBe(0);
        expect(fleet.toolInvocations(MAC, "go").length).toBe(goBefore + 1);
        const secrets = await step(MAC, derper.payloads.secret);
        const files = await step(MAC, derper.payloads.public);
        expect([secrets.code, files.code]).toEqual([0, 0]);
        expect(files.stdout).toContain("derper: no change");
        expect(fleet.launchdEvents(MAC, DERPER_LABEL).filter((event) => event.verb === "bootstrap")).toHaveLength(1);
    });

    it.each([
        ["password" as const, /^sudo: a password is required$/],
        ["refused" as const, /^sudo: a password is required$/],
        ["missing" as const, /sudo: (command )?not found|not found: sudo/],
    ])("where sudo %s: the step fails at once with one line naming the host and the fix; nothing is written", async (kind, reason) => {
        const host = HOSTS[kind];
        const before = await inHost(host, "find /etc/nebula /var/lib/shortcircuit -mindepth 1 | sort");
        const result = await step(host, plan.payloads.secret);
        expect(result.code).toBe(1);
        expect(result.stdout).toBe("");
        const lines = result.stderr.trimEnd().split("\n");
        expect(lines).toHaveLength(1);
        const match = ONE_LINE.exec(lines[0]);
        expect(match).not.toBeNull();
        expect(match?.[1]).toBe(host);
        expect(match?.[2]).toMatch(reason);
        expect(await inHost(host, "find /etc/nebula /var/lib/shortcircuit -mindepth 1 | sort")).toBe(before);
        expect(fleet.serviceEvents(host)).toEqual([]);

        const report = await runDrift(
            { hosts: [expectedHost(host)], notes: [] },
            {
                stack: "become-lab",
                concurrency: 1,
                diff: false,
                now: new Date(),
                ssh: {
                    identity: fleet.privateKeyPath,
                    configFile: "/dev/null",
                    knownHostsFile: "/dev/null",
                    strictHostKeyChecking: "no",
                    hostTimeoutSeconds: 60,
                },
            },
        );
        expect(report.hosts[0].status).toBe("unreachable");
        expect(report.hosts[0].reason).toMatch(/cannot become root: sudo -n \/bin\/bash as admin failed/);
    });
});
