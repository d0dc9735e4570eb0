import { Writable } from "node:stream";
import type { Raw } from "../support/fixtures";
import { runDriftCommand } from "../../scripts/drift";
import { CONTROL, GENESIS, RELAY, startLabStack, type LabStack } from "../../scripts/lab/stack/labStack";
import type { RunResult } from "../../scripts/lab/stack/engine";

/*
 * The privilege model on the real engine (issue 22): the lab stack with EVERY host reached as
 * the non-root user `admin` (so `ssh.become` defaults to sudo), each lab host holding that user
 * in its own /etc and the runbook's sudoers rule, run by Debian's REAL sudo. File delivery, the
 * derper install, the control server's bootstrap and health, the K3s steps (on the node and on
 * the genesis) and the kubeconfig read all run through `sudo -n /bin/bash`; drift's collector
 * too. Then one host loses its sudo rule: the run stops at that host's first step with the
 * one line, and nothing on it or behind it changes.
 *
 * REAL: Pulumi CLI + engine, Node.js language host, kubernetes provider, kube-apiserver + etcd,
 * sshd and sudo on every host. TEST DOUBLES: the command and tls providers, k3s and the
 * service stand-ins (see test/e2e/realUp.test.ts).
 */

const PER_TEST_MS = 15 * 60_000;
jest.setTimeout(PER_TEST_MS);
const UP_TIMEOUT_MS = 12 * 60_000;
const USER = "admin";
const DOUBLE_STATE = "/var/lib/rancher/k3s-test-double/";

let lab: LabStack;

function expectOk(result: RunResult): void {
    if (result.code !== 0) throw new Error(`pulumi exited ${result.code}${result.timedOut ? " (timed out)" : ""}:\n${result.output.slice(-6000)}`);
}

async function inHost(host: string, command: string): Promise<string> {
    return (await lab.fleet.exec(host, command, { check: true })).stdout;
}

/** sudo's log on a host, one line per entry (sudo wraps long entries onto indented lines). */
async function sudoCommands(host: string): Promise<string[]> {
    const log = (await inHost(host, "cat /var/log/sudo.log 2>/dev/null || true")).replace(/\n\s+/g, " ");
    return log
        .split("\n")
        .filter((line) => line.includes("COMMAND="))
        .map((line) => line.slice(line.indexOf("COMMAND=") + "COMMAND=".length));
}

function sink(): { stream: Writable; text: () => string } {
    const chunks: Buffer[] = [];
    const stream = new Writable({
        write(chunk: Buffer, _encoding, callback) {
            chunks.push(Buffer.from(chunk));
            callback();
        },
    });
    return { stream, text: () => Buffer.concat(chunks).toString("utf8") };
}

beforeAll(async () => {
    lab = await startLabStack({ stack: "sudo", loginUser: USER, readyTimeoutSeconds: 10 });
}, PER_TEST_MS);

afterAll(async () => {
    await lab?.stop();
}, 120_000);

describe("a real pulumi up with every host reached as admin through sudo", () => {
    it("0. the derived stack reaches every host as admin, and every lab host has admin with the NOPASSWD rule", async () => {
        for (const node of lab.config.nodes) expect({ node: node.name, user: node.ssh?.user }).toEqual({ node: node.name, user: USER });
        for (const host of lab.hosts) {
            expect(lab.fleet.host(host).login).toEqual({ user: USER, sudo: "nopasswd" });
            expect(await inHost(host, `id -u ${USER}`)).not.toBe("0\n");
        }
    });

    it("1. preview and up succeed: every step ran through sudo, the files are root's, sudo ran only the launcher's short reader", async () => {
        expectOk(await lab.stack.preview());
        expectOk(await lab.stack.up(UP_TIMEOUT_MS));
        const outputs = await lab.stack.outputs();
        expect([...(outputs.rollout as string[])].sort()).toEqual([...lab.k3sNodes].sort());
        for (const host of lab.nebulaMembers) {
            expect({ host, stat: await inHost(host, "stat -c '%U:%G %a' /etc/nebula/host.key /etc/nebula/config.yml") }).toEqual({
                host,
                stat: "root:root 600\nroot:root 644\n",
            });
        }
        for (const node of lab.k3sNodes) {
            expect({ node, stat: await inHost(node, "stat -c '%U:%G %a' /etc/rancher/k3s/config.yaml") }).toEqual({ node, stat: "root:root 600\n" });
        }
        expect(await inHost(CONTROL, "stat -c '%a' /etc/headscale/noise_private.key")).toBe("600\n");
        const scripts = new Set<string>();
        for (const host of lab.hosts) {
            const commands = await sudoCommands(host);
            expect({ host, ran: commands.length > 0 }).toEqual({ host, ran: true });
            for (const command of commands) {
                const match =
                    /^\/bin\/bash -c (?::|'script="\$\(\{ dd bs=(\d+) count=1 iflag=fullblock \|\| dd bs=1 count=\1; \} 2>\/dev\/null \| base64 --decode \| gzip -dc\)" && exec bash -c "\$script" "\$0" "\$1"' (\S+) (?:stdoutAndStderr|none))$/.exec(
                        command,
                    );
                expect({ host, command, launcher: match !== null }).toEqual({ host, command, launcher: true });
                if (match?.[2]) scripts.add(match[2]);
            }
        }
        // Every kind of step went through sudo: delivery, derper, control, K3s pre-flight and apply, the kubeconfig.
        expect([...scripts].sort()).toEqual(
            [
                "control/bootstrap.sh",
                "control/health.sh",
                "derp/install.sh",
                "edge/read-kubeconfig.sh",
                "k3s/apply.sh",
                "k3s/prepare.sh",
                "remote/deliver-files.sh",
            ].sort(),
        );
        const state = JSON.stringify(await lab.stack.exportState());
        expect(state).not.toContain(lab.fleet.hosts[0].privateKeyPem.split("\n")[1]);
        expect(RELAY).toBeDefined();
    });

    it("2. no-op up: unchanged, and drift (through sudo on every host) reads every host", async () => {
        const result = await lab.stack.up(UP_TIMEOUT_MS);
        expectOk(result);
        expect(result.output).not.toMatch(/\b\d+ (created|updated|replaced|deleted)\b/);
        const out = sink();
        const err = sink();
        await runDriftCommand(
            [
                "--config-file",
                lab.stack.stackFile,
                "--identity",
                lab.fleet.privateKeyPath,
                "--ssh-config",
                "/dev/null",
                "--known-hosts",
                "/dev/null",
                "--strict-host-key-checking",
                "no",
                "--json",
            ],
            out.stream,
            err.stream,
            {},
        );
        const report = JSON.parse(out.text()) as { hosts: { name: string; status: string; reason?: string }[] };
        const read = report.hosts.filter((host) => lab.hosts.includes(host.name));
        expect(read.map((host) => host.name).sort()).toEqual([...lab.hosts].sort());
        for (const host of read) expect({ host: host.name, reason: host.reason }).toEqual({ host: host.name, reason: undefined });
        for (const host of lab.hosts) expect((await sudoCommands(host)).some((command) => command.includes(" drift/collect.sh none"))).toBe(true);
    });

    it("3. a host that lost its sudo rule: the run stops at its first step with the one line; it and every node behind it keep their files", async () => {
        const rollout = (await lab.stack.outputs()).rollout as string[];
        const broken = rollout.find((node) => node !== GENESIS) ?? "";
        const behind = rollout.slice(rollout.indexOf(broken) + 1);
        for (const name of rollout) {
            const node = (lab.config as Raw).nodes.find((each: Raw) => each.name === name);
            node.labels = { ...(node.labels ?? {}), "shortcircuit.e2e/sudo": "gone" };
        }
        lab.stack.setFleet(lab.config);
        await inHost(broken, "rm /etc/sudoers.d/lab-login");
        const previous = Object.fromEntries([broken, ...behind].map((node) => [node, lab.read(node, "/etc/rancher/k3s/config.yaml")]));
        const stamps = lab.fileStamps();
        const failed = await lab.stack.up(UP_TIMEOUT_MS);
        expect(failed.code).not.toBe(0);
        expect(failed.output).toMatch(
            new RegExp(
                `shortcircuit: ${broken}: cannot become root: sudo -n /bin/bash as ${USER} failed \\(sudo: a password is required\\); fix: on that host add the line "${USER} ALL=\\(root\\) NOPASSWD: /bin/bash"`,
            ),
        );
        const changed = lab.changedFiles(stamps);
        for (const node of [broken, ...behind]) {
            expect(lab.read(node, "/etc/rancher/k3s/config.yaml")).toBe(previous[node]);
            expect({ node, changed: changed[node].filter((file) => !file.startsWith(DOUBLE_STATE)) }).toEqual({ node, changed: [] });
        }
        // The rule back, a plain rerun finishes the rollout.
        await inHost(broken, `printf '%s ALL=(root) NOPASSWD: /bin/bash\\n' ${USER} > /etc/sudoers.d/lab-login && chmod 0440 /etc/sudoers.d/lab-login`);
        expectOk(await lab.stack.up(UP_TIMEOUT_MS));
        for (const node of rollout) expect(lab.read(node, "/etc/rancher/k3s/config.yaml")).toContain("shortcircuit.e2e/sudo=gone");
    });
});
