/**
 * Self-test of the lab fleet harness (scripts/lab) and its k3s test double.
 * Needs root, network namespaces and Debian's openssh-server/openssh-client/iproute2/
 * iputils-ping: without them it FAILS and says what is missing (scripts/setup.sh installs it).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { checkLabPrerequisites, cleanupStaleLab, startLabFleet } from "../../../scripts/lab";
import type { LabFleet } from "../../../scripts/lab";

jest.setTimeout(60_000);

const GENESIS = "lab-cp-01";
const WORKER_1 = "lab-wk-01";
const WORKER_2 = "lab-wk-02";
const TOKEN = "lab-fleet-self-test-token";
const READY_DELAY_MS = 1500;
const CONNECT_TIMEOUT_SEC = 2;

/** The write-and-restart script, shaped like the project's remote scripts: content on stdin. */
function writeAndRestart(unit: string): string {
    return [
        "set -euo pipefail",
        "install -d -m 0755 /etc/rancher/k3s",
        'tmp="$(mktemp /etc/rancher/k3s/.config.yaml.XXXXXX)"',
        'cat > "$tmp"',
        'chmod 0600 "$tmp"',
        'mv -f "$tmp" /etc/rancher/k3s/config.yaml',
        `systemctl restart ${unit}`,
        `systemctl is-active ${unit}`,
    ].join("\n");
}

const readyPath = `'{.status.conditions[?(@.type=="Ready")].status}'`;

const genesisConfig = YAML.stringify({
    "node-ip": ["100.67.0.1"],
    "flannel-iface": "tailscale0",
    "cluster-init": true,
    token: TOKEN,
    "tls-san": ["100.67.0.1", "10.67.0.1", "lab-cp-01.example.test"],
    "etcd-arg": ["heartbeat-interval=500", "election-timeout=5000"],
    "cluster-cidr": ["10.42.0.0/16"],
    "service-cidr": ["10.43.0.0/16"],
    "write-kubeconfig-mode": "0640",
    disable: ["servicelb"],
});

function agentConfig(tailnet: string, extra: Record<string, unknown> = {}): string {
    return YAML.stringify({
        server: "https://100.67.0.1:6443",
        token: TOKEN,
        "node-ip": [tailnet],
        "flannel-iface": "tailscale0",
        "node-label": ["shortcircuit.dev/site=aus"],
        "node-taint": ["amd.com/gpu=true:NoSchedule"],
        ...extra,
    });
}

function netnsList(): string {
    return execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
}
function linkNames(): string[] {
    return (JSON.parse(execFileSync("ip", ["-j", "link", "show"], { encoding: "utf8" })) as { ifname: string }[]).map((l) => l.ifname);
}
function pidAlive(pid: number): boolean {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        return !/^\S+ \(.*\) [ZX] /.test(stat);
    } catch {
        return false;
    }
}

function prerequisites(): string[] {
    const problems = checkLabPrerequisites();
    const hasPing = ["/usr/bin/ping", "/bin/ping"].some((p) => fs.existsSync(p));
    if (!hasPing) problems.push("`ping` not found (Debian package iputils-ping)");
    return problems;
}

describe("lab fleet harness (root, network namespaces, openssh-server)", () => {
    let fleet: LabFleet | undefined;
    let startMs = 0;

    beforeAll(async () => {
        const problems = prerequisites();
        if (problems.length > 0) {
            throw new Error(
                `lab fleet self-test cannot run here:\n  - ${problems.join("\n  - ")}\n` +
                    "scripts/setup.sh installs the Debian packages (openssh-server openssh-client iproute2 iputils-ping); run the tests as root.",
            );
        }
        const t0 = Date.now();
        fleet = await startLabFleet({
            connectTimeoutSec: CONNECT_TIMEOUT_SEC,
            hosts: [
                { name: GENESIS, role: "server", tailnetAddress: "100.67.0.1", nebulaAddress: "10.67.0.1/16" },
                { name: WORKER_1, role: "agent", tailnetAddress: "100.67.0.11", nebulaAddress: "10.67.0.11/16" },
                { name: WORKER_2, role: "agent", tailnetAddress: "100.67.0.12" },
            ],
        });
        startMs = Date.now() - t0;
    });

    afterAll(async () => {
        await fleet?.stop();
    });

    const lab = (): LabFleet => {
        if (!fleet) throw new Error("the lab fleet did not start (see beforeAll)");
        return fleet;
    };

    test("starts three hosts fast, each with its own hostname and /etc/rancher", async () => {
        const f = lab();
        expect(startMs).toBeLessThan(8000);
        expect(f.bridgeCidr).toMatch(/^198\.1[89]\.\d+\.0\/24$/);
        for (const h of f.hosts) {
            const r = await f.exec(h, "hostname; findmnt -n -o TARGET /etc/rancher; command -v k3s");
            expect(r.code).toBe(0);
            expect(r.stdout.split("\n").slice(0, 3)).toEqual([h.name, "/etc/rancher", "/usr/local/bin/k3s"]);
            expect(h.privateKeyPem).toMatch(/^-----BEGIN EC PRIVATE KEY-----/);
        }
        fs.writeFileSync(path.join(lab().host(GENESIS).etcRancherDir, "marker"), "genesis only\n");
        expect((await f.exec(GENESIS, "cat /etc/rancher/marker")).stdout).toBe("genesis only\n");
        expect((await f.exec(WORKER_1, "test -e /etc/rancher/marker")).code).toBe(1);
    });

    test("ssh sees the tailnet address on tailscale0; overlay addresses answer between hosts", async () => {
        const f = lab();
        const r = await f.ssh(GENESIS, "set -euo pipefail\nip -4 addr show tailscale0\nip -4 addr show nebula1\nhostname");
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        expect(r.stdout).toContain("inet 100.67.0.1/32");
        expect(r.stdout).toContain("inet 10.67.0.1/16");
        expect(r.stdout.trim().endsWith(GENESIS)).toBe(true);
        const ping = await f.exec(WORKER_1, "ping -c 1 -W 2 100.67.0.1 && ping -c 1 -W 2 10.67.0.1");
        expect(ping.code).toBe(0);
        const env = await f.ssh(WORKER_1, 'echo "$LAB_PROBE"', undefined, { env: { LAB_PROBE: "passed" } });
        expect(env.stdout).toBe("passed\n");
    });

    test("config.yaml written over ssh stdin, restart via the systemctl shim, Ready after the delay", async () => {
        const f = lab();
        await f.setK3sBehaviour(GENESIS, { readyDelayMs: READY_DELAY_MS });
        const t0 = Date.now();
        const w = await f.ssh(GENESIS, writeAndRestart("k3s"), genesisConfig);
        expect(w.stderr).toBe("");
        expect(w.stdout).toBe("active\n");
        expect(fs.readFileSync(f.hostPath(GENESIS, "/etc/rancher/k3s/config.yaml"), "utf8")).toBe(genesisConfig);

        // Under load an SSH round trip can outlast the delay: judge each early answer by the
        // double's own clock (when it started k3s, when the call arrived), never by wall time here.
        const early = await f.ssh(GENESIS, `k3s kubectl get node ${GENESIS} -o jsonpath=${readyPath}`);
        const etcdEarly = await f.ssh(GENESIS, "k3s kubectl get --raw /healthz/etcd");
        const readyAt = (f.k3sState(GENESIS)?.startedAt ?? Number.NaN) + READY_DELAY_MS;
        const arrivedBeforeReady = (needle: string): boolean => {
            const call = f
                .k3sInvocations(GENESIS)
                .filter((each) => each.argv.join(" ").includes(needle))
                .at(0);
            if (!call) throw new Error(`the double recorded no call with ${needle}`);
            return Date.parse(call.at) < readyAt;
        };
        expect(early.stdout).toBe(arrivedBeforeReady(".status.conditions") ? "False" : "True");
        expect(etcdEarly.code).toBe(arrivedBeforeReady("/healthz/etcd") ? 1 : 0);

        const wait = await f.ssh(GENESIS, `k3s kubectl wait --for=condition=Ready node/${GENESIS} --timeout=20s`);
        expect(wait.stdout).toBe(`node/${GENESIS} condition met\n`);
        expect(Date.now() - t0).toBeGreaterThanOrEqual(READY_DELAY_MS);
        const late = await f.ssh(GENESIS, `k3s kubectl get node ${GENESIS} -o jsonpath=${readyPath}`);
        expect(late.stdout).toBe("True");
        const etcd = await f.ssh(GENESIS, "k3s kubectl get --raw /healthz/etcd");
        expect([etcd.code, etcd.stdout]).toEqual([0, "ok"]);

        const state = f.k3sState(GENESIS);
        expect(state?.status).toBe("active");
        expect(state?.restartCount).toBe(1);
        expect(state?.config?.["node-ip"]).toEqual(["100.67.0.1"]);
        expect(state?.certSans).toEqual(expect.arrayContaining(["100.67.0.1", "lab-cp-01.example.test"]));
        const kubeconfig = fs.statSync(f.hostPath(GENESIS, "/etc/rancher/k3s/k3s.yaml"));
        expect(kubeconfig.mode & 0o777).toBe(0o640);
        // flannel.1 on tailscale0 with MTU 1280 - 50 (when the kernel has vxlan)
        if (state?.flannel?.note === undefined) {
            const link = await f.exec(GENESIS, "ip -d link show flannel.1");
            expect(link.stdout).toContain("mtu 1230");
            expect(link.stdout).toContain("dev tailscale0");
        }
    });

    test("workers join; kubectl on the genesis sees them; drain, cordon, uncordon, annotate, patch; an agent reads and watches only", async () => {
        const f = lab();
        for (const [name, ip] of [
            [WORKER_1, "100.67.0.11"],
            [WORKER_2, "100.67.0.12"],
        ] as const) {
            const r = await f.ssh(name, writeAndRestart("k3s-agent"), agentConfig(ip));
            expect([r.code, r.stderr]).toEqual([0, ""]);
        }
        const kc = (cmd: string): Promise<import("../../../scripts/lab").ExecResult> => f.ssh(GENESIS, `set -euo pipefail\nk3s kubectl ${cmd}`);
        expect((await kc("get nodes -o name")).stdout).toBe(`node/${GENESIS}\nnode/${WORKER_1}\nnode/${WORKER_2}\n`);
        expect((await kc(`wait --for=condition=Ready node/${WORKER_1} node/${WORKER_2} --timeout=10s`)).code).toBe(0);
        const taints = await kc(`get node ${WORKER_1} -o jsonpath='{.spec.taints[0].key}={.spec.taints[0].value}:{.spec.taints[0].effect}'`);
        expect(taints.stdout).toBe("amd.com/gpu=true:NoSchedule");
        const ips = await kc(`get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.status.addresses[?(@.type=="InternalIP")].address}{"\\n"}{end}'`);
        expect(ips.stdout).toBe(`${GENESIS} 100.67.0.1\n${WORKER_1} 100.67.0.11\n${WORKER_2} 100.67.0.12\n`);

        const drain = await kc(`drain ${WORKER_1} --ignore-daemonsets --delete-emptydir-data --timeout=30s`);
        expect(drain.stdout).toBe(`node/${WORKER_1} cordoned\nnode/${WORKER_1} drained\n`);
        expect((await kc(`get node ${WORKER_1} -o jsonpath='{.spec.unschedulable}'`)).stdout).toBe("true");
        expect((await kc(`cordon ${WORKER_1}`)).stdout).toBe(`node/${WORKER_1} already cordoned\n`);
        expect((await kc(`uncordon ${WORKER_1}`)).stdout).toBe(`node/${WORKER_1} uncordoned\n`);
        expect((await kc(`get node ${WORKER_1} -o jsonpath='{.spec.unschedulable}'`)).stdout).toBe("");
        const noDs = await f.ssh(GENESIS, `k3s kubectl drain ${WORKER_2}`);
        expect(noDs.code).toBe(1);
        expect(noDs.stderr).toContain("--ignore-daemonsets");
        await kc(`uncordon ${WORKER_2}`);

        // A pod whose disruption budget forbids its eviction (evictionBlocked): retried every 5 s,
        // then "global timeout reached", in kubectl v1.33.4's words (apiServer.lab has them from
        // the real API server); lifted, the drain goes through.
        await f.setK3sBehaviour(WORKER_2, { evictionBlocked: true });
        const blocked = await kc(`drain ${WORKER_2} --ignore-daemonsets --timeout=6s`);
        const error = `error when evicting pods/"guarded" -n "lab-apps": global timeout reached: 6s`;
        expect(blocked.code).toBe(1);
        // How many attempts fit in the timeout depends on the clock (one every 5 s): at least two.
        const retry = `error when evicting pods/"guarded" -n "lab-apps" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.\n`;
        const attempts = blocked.stdout.split("evicting pod lab-apps/guarded\n");
        expect({ first: attempts[0], between: attempts.slice(1).filter((each) => each !== "") }).toEqual({ first: `node/${WORKER_2} cordoned\n`, between: [] });
        expect(attempts.length - 1).toBeGreaterThanOrEqual(2);
        const warning = `Warning: ignoring DaemonSet-managed Pods: kube-system/svclb-traefik-${WORKER_2}\n`;
        const final = [
            `There are pending pods in node "${WORKER_2}" when an error occurred: ${error}`,
            "pod/guarded",
            `error: unable to drain node "${WORKER_2}" due to error: ${error}, continuing command...`,
            "There are pending nodes to be drained:",
            ` ${WORKER_2}`,
            error,
            "",
        ].join("\n");
        expect(blocked.stderr.startsWith(`${warning}${retry}`)).toBe(true);
        expect(blocked.stderr.endsWith(`${retry}${final}`)).toBe(true);
        expect(blocked.stderr.slice(warning.length, blocked.stderr.length - final.length).replaceAll(retry, "")).toBe("");
        expect((await kc(`get node ${WORKER_2} -o jsonpath='{.spec.unschedulable}'`)).stdout).toBe("true");
        await f.setK3sBehaviour(WORKER_2, { evictionBlocked: false });
        const lifted = await kc(`drain ${WORKER_2} --ignore-daemonsets --timeout=6s`);
        expect([lifted.code, lifted.stdout]).toEqual([0, `node/${WORKER_2} already cordoned\nnode/${WORKER_2} drained\n`]);
        await kc(`uncordon ${WORKER_2}`);

        const pub = `'{.metadata.annotations.flannel\\.alpha\\.coreos\\.com/public-ip}'`;
        expect((await kc(`get node ${WORKER_1} -o jsonpath=${pub}`)).stdout).toBe("100.67.0.11");
        expect((await kc(`annotate node ${WORKER_1} flannel.alpha.coreos.com/public-ip=100.67.0.99 --overwrite`)).stdout).toBe(`node/${WORKER_1} annotated\n`);
        expect((await kc(`get node ${WORKER_1} -o jsonpath=${pub}`)).stdout).toBe("100.67.0.99");
        const clash = await f.ssh(GENESIS, `k3s kubectl annotate node ${WORKER_1} flannel.alpha.coreos.com/public-ip=100.67.0.98`);
        expect(clash.code).toBe(1);
        expect(clash.stderr).toContain("--overwrite is false");
        await kc(`annotate node ${WORKER_1} example.test/marker=x`);
        await kc(`annotate node ${WORKER_1} example.test/marker-`);
        expect((await kc(`get node ${WORKER_1} -o json`)).stdout).not.toContain("example.test/marker");

        // patch --type merge, with the outputs kube-apiserver v1.33.4 and its kubectl give (checked
        // there): null removes a key, an unchanged object is "(no change)", a missing node NotFound.
        await kc(`cordon ${WORKER_1}`);
        await kc(`annotate node ${WORKER_1} flannel.alpha.coreos.com/public-ip-overwrite=192.0.2.99`);
        const patch = JSON.stringify({
            spec: { unschedulable: null },
            metadata: { annotations: { "flannel.alpha.coreos.com/public-ip": "100.67.0.11", "flannel.alpha.coreos.com/public-ip-overwrite": null } },
        });
        expect((await kc(`patch node ${WORKER_1} --type merge -p '${patch}'`)).stdout).toBe(`node/${WORKER_1} patched\n`);
        expect((await kc(`patch node ${WORKER_1} --type merge -p '${patch}'`)).stdout).toBe(`node/${WORKER_1} patched (no change)\n`);
        const patched = f.clusterNodes().find((node) => node.name === WORKER_1);
        expect(patched?.unschedulable).toBe(false);
        expect(patched?.annotations["flannel.alpha.coreos.com/public-ip"]).toBe("100.67.0.11");
        expect(patched?.annotations["flannel.alpha.coreos.com/public-ip-overwrite"]).toBeUndefined();
        const missing = await f.ssh(GENESIS, `k3s kubectl patch node no-such-node --type merge -p '${patch}'`);
        expect([missing.code, missing.stderr]).toEqual([1, 'Error from server (NotFound): nodes "no-such-node" not found\n']);
        const strategic = await f.ssh(GENESIS, `k3s kubectl patch node ${WORKER_1} -p '${patch}'`);
        expect(strategic.code).toBe(64);

        const fromAgent = await f.ssh(WORKER_1, "k3s kubectl get nodes");
        expect(fromAgent.code).toBe(1);
        expect(fromAgent.stderr).toContain("was refused");
        // With its kubelet's kubeconfig an agent reads, watches, cordons and patches its own node
        // only (Kubernetes 1.33's Node authorizer and NodeRestriction, as apiServer.lab pins them).
        const asKubelet = "k3s kubectl --kubeconfig /var/lib/rancher/k3s/agent/kubelet.kubeconfig";
        expect((await f.ssh(WORKER_1, `${asKubelet} wait --for=condition=Ready node/${WORKER_1} --timeout=10s`)).stdout).toBe(
            `node/${WORKER_1} condition met\n`,
        );
        expect((await f.ssh(WORKER_1, `${asKubelet} cordon ${WORKER_1}`)).code).toBe(0);
        expect(f.clusterNodes().find((node) => node.name === WORKER_1)?.unschedulable).toBe(true);
        expect((await f.ssh(WORKER_1, `${asKubelet} patch node ${WORKER_1} --type merge -p '${patch}'`)).code).toBe(0);
        expect(f.clusterNodes().find((node) => node.name === WORKER_1)?.unschedulable).toBe(false);
        const onlyOwn = `node '${WORKER_1}' cannot read '${WORKER_2}', only its own Node object`;
        for (const command of [`get node ${WORKER_2}`, `cordon ${WORKER_2}`, `patch node ${WORKER_2} --type merge -p '${patch}'`]) {
            const other = await f.ssh(WORKER_1, `${asKubelet} ${command}`);
            expect({ command, code: other.code, stderr: other.stderr }).toEqual({ command, code: 1, stderr: expect.stringContaining(onlyOwn) as unknown });
        }
        const list = await f.ssh(WORKER_1, `${asKubelet} get nodes`);
        expect([list.code, list.stderr]).toEqual([1, expect.stringContaining(`node '${WORKER_1}' cannot read all nodes, only its own Node object`)]);
        const selfDrain = await f.ssh(WORKER_1, `${asKubelet} drain ${WORKER_1} --ignore-daemonsets`);
        expect([selfDrain.code, selfDrain.stderr]).toEqual([1, expect.stringContaining("Forbidden")]);
    });

    test("pods: an agent lists and evicts only its own, a budget answers 429, an evicted ReplicaSet pod is back once the node is schedulable", async () => {
        const f = lab();
        const asKubelet = "k3s kubectl --request-timeout=10s --kubeconfig /var/lib/rancher/k3s/agent/kubelet.kubeconfig";
        const podNames = `-o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name} {.metadata.ownerReferences[?(@.controller==true)].kind}{"\\n"}{end}'`;
        const evict = (ns: string, name: string): string =>
            `${asKubelet} create --raw /api/v1/namespaces/${ns}/pods/${name}/eviction -f - <<<'${JSON.stringify({
                apiVersion: "policy/v1",
                kind: "Eviction",
                metadata: { name, namespace: ns },
            })}'`;
        await f.setK3sBehaviour(WORKER_1, { workloadPod: true, evictionBlocked: true, unmanagedPod: true });
        try {
            const own = await f.ssh(WORKER_1, `${asKubelet} get pods -A --field-selector spec.nodeName=${WORKER_1} ${podNames}`);
            expect([own.code, own.stdout]).toEqual([
                0,
                [
                    `kube-system/svclb-traefik-${WORKER_1} DaemonSet`,
                    `lab-apps/web-${WORKER_1} ReplicaSet`,
                    "lab-apps/guarded ReplicaSet",
                    `lab-apps/bare-${WORKER_1} `,
                    "",
                ].join("\n"),
            ]);
            // The Node authorizer lets a node list pods only by its own spec.nodeName.
            for (const selector of ["", `--field-selector spec.nodeName=${WORKER_2}`]) {
                const refused = await f.ssh(WORKER_1, `${asKubelet} get pods -A ${selector} -o name`);
                expect({ selector, code: refused.code, stderr: refused.stderr }).toEqual({
                    selector,
                    code: 1,
                    stderr: `Error from server (Forbidden): pods is forbidden: User "system:node:${WORKER_1}" cannot list resource "pods" in API group "" at the cluster scope: can only list/watch pods with spec.nodeName field selector\n`,
                });
            }
            const blocked = await f.ssh(WORKER_1, evict("lab-apps", "guarded"));
            expect([blocked.code, blocked.stderr]).toEqual([
                1,
                "Error from server (TooManyRequests): Cannot evict pod as it would violate the pod's disruption budget.\n",
            ]);
            const other = await f.ssh(WORKER_1, evict("kube-system", `svclb-traefik-${WORKER_2}`));
            expect([other.code, other.stderr]).toEqual([
                1,
                `Error from server (Forbidden): pods "svclb-traefik-${WORKER_2}" is forbidden: node ${WORKER_1} can only evict pods with spec.nodeName set to itself\n`,
            ]);
            const gone = await f.ssh(WORKER_1, evict("lab-apps", "no-such-pod"));
            expect([gone.code, gone.stderr]).toEqual([1, 'Error from server (NotFound): pods "no-such-pod" not found\n']);

            expect((await f.ssh(WORKER_1, `${asKubelet} cordon ${WORKER_1}`)).code).toBe(0);
            const evicted = await f.ssh(WORKER_1, evict("lab-apps", `web-${WORKER_1}`));
            expect([evicted.code, JSON.parse(evicted.stdout)]).toEqual([0, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", code: 201 }]);
            const listed = async (): Promise<string> =>
                (await f.ssh(GENESIS, `k3s kubectl get pods -A --field-selector spec.nodeName=${WORKER_1} -o name`)).stdout;
            expect(await listed()).not.toContain(`pod/web-${WORKER_1}`);
            expect((await f.ssh(WORKER_1, `${asKubelet} uncordon ${WORKER_1}`)).code).toBe(0);
            expect(await listed()).toContain(`pod/web-${WORKER_1}`);
        } finally {
            await f.setK3sBehaviour(WORKER_1, { workloadPod: false, evictionBlocked: false, unmanagedPod: false });
        }
    });

    test("an unknown key (or a server-only key on an agent) makes k3s fail", async () => {
        const f = lab();
        const bad = await f.ssh(WORKER_2, writeAndRestart("k3s-agent"), agentConfig("100.67.0.12", { "bogus-key": 1 }));
        expect(bad.code).toBe(1);
        expect(bad.stderr).toContain("Job for k3s-agent.service failed");
        const active = await f.ssh(WORKER_2, "systemctl is-active k3s-agent");
        expect([active.code, active.stdout]).toEqual([3, "failed\n"]);
        expect(f.k3sState(WORKER_2)?.lastError).toContain('unknown config key "bogus-key"');
        const journal = await f.ssh(WORKER_2, "journalctl -u k3s-agent -n 1 --no-pager");
        expect(journal.stdout).toContain("bogus-key");
        const seen = await f.ssh(GENESIS, `k3s kubectl get node ${WORKER_2} -o jsonpath=${readyPath}`);
        expect(seen.stdout).toBe("Unknown");

        const serverOnly = await f.ssh(WORKER_2, writeAndRestart("k3s-agent"), agentConfig("100.67.0.12", { "tls-san": ["x.example.test"] }));
        expect(serverOnly.code).toBe(1);
        expect(f.k3sState(WORKER_2)?.lastError).toContain("is a k3s server flag");

        const notLocal = await f.ssh(WORKER_2, writeAndRestart("k3s-agent"), agentConfig("100.67.0.200"));
        expect(notLocal.code).toBe(1);
        expect(f.k3sState(WORKER_2)?.lastError).toContain("not found in the host's network interfaces");

        const good = await f.ssh(WORKER_2, writeAndRestart("k3s-agent"), agentConfig("100.67.0.12"));
        expect([good.code, good.stdout]).toEqual([0, "active\n"]);
        expect(f.k3sState(WORKER_2)?.failureCount).toBe(3);
    });

    test("neverReady keeps a node NotReady; etcdUnhealthy fails the etcd health query", async () => {
        const f = lab();
        await f.setK3sBehaviour(WORKER_2, { neverReady: true });
        expect((await f.ssh(WORKER_2, "systemctl restart k3s-agent")).code).toBe(0);
        const t0 = Date.now();
        const wait = await f.ssh(GENESIS, `k3s kubectl wait --for=condition=Ready node/${WORKER_2} --timeout=1s`);
        expect(wait.code).toBe(1);
        expect(wait.stderr).toContain("timed out waiting for the condition");
        expect(Date.now() - t0).toBeLessThan(5000);
        expect((await f.ssh(GENESIS, `k3s kubectl get node ${WORKER_2} -o jsonpath=${readyPath}`)).stdout).toBe("False");
        await f.setK3sBehaviour(WORKER_2, { neverReady: false });
        expect((await f.ssh(GENESIS, `k3s kubectl wait --for=condition=Ready node/${WORKER_2} --timeout=5s`)).code).toBe(0);

        await f.setK3sBehaviour(GENESIS, { etcdUnhealthy: true });
        const sick = await f.ssh(GENESIS, "k3s kubectl get --raw /healthz/etcd");
        expect(sick.code).toBe(1);
        expect(sick.stderr).toContain("[-]etcd failed");
        await f.setK3sBehaviour(GENESIS, { etcdUnhealthy: false });
        expect((await f.ssh(GENESIS, "k3s kubectl get --raw /healthz/etcd")).stdout).toBe("ok");
    });

    test("config.yaml.d drop-ins are merged in order; `key+` appends", async () => {
        const f = lab();
        const dropIns = [
            ["10-kubelet.yaml", YAML.stringify({ "kubelet-arg": ["max-pods=50"] })],
            ["20-more.yaml", YAML.stringify({ "kubelet-arg+": ["image-gc-high-threshold=80"] })],
        ] as const;
        for (const [name, text] of dropIns) {
            const r = await f.ssh(WORKER_1, `set -euo pipefail\ninstall -d /etc/rancher/k3s/config.yaml.d\ncat > /etc/rancher/k3s/config.yaml.d/${name}`, text);
            expect(r.code).toBe(0);
        }
        expect((await f.ssh(WORKER_1, "systemctl restart k3s-agent")).code).toBe(0);
        const state = f.k3sState(WORKER_1);
        expect(state?.config?.["kubelet-arg"]).toEqual(["max-pods=50", "image-gc-high-threshold=80"]);
        expect(state?.configFiles.map((c) => path.basename(c.path))).toEqual(["config.yaml", "10-kubelet.yaml", "20-more.yaml"]);
        await f.ssh(WORKER_1, "set -euo pipefail\nrm -rf /etc/rancher/k3s/config.yaml.d\nsystemctl restart k3s-agent");
        expect(f.k3sState(WORKER_1)?.config?.["kubelet-arg"]).toBeUndefined();
    });

    test("a table-52 route is visible with ip route show table 52", async () => {
        const f = lab();
        await f.addTable52Route(WORKER_1, "10.42.0.0/16");
        const r = await f.ssh(WORKER_1, "set -euo pipefail\nip route show table 52\nip rule show");
        expect(r.stdout).toContain("10.42.0.0/16 dev tailscale0");
        expect(r.stdout).toContain("5270:");
        await f.clearTable52(WORKER_1);
        expect((await f.ssh(WORKER_1, "ip route show table 52")).stdout).toBe("");
    });

    test("an unreachable host makes ssh fail within ConnectTimeout", async () => {
        const f = lab();
        await f.setLanLink(WORKER_2, "down");
        const t0 = Date.now();
        const r = await f.ssh(WORKER_2, "true");
        const elapsed = Date.now() - t0;
        expect(r.code).toBe(255);
        expect(elapsed).toBeLessThan(CONNECT_TIMEOUT_SEC * 1000 + 2000);
        await f.setLanLink(WORKER_2, "up");
        expect((await f.ssh(WORKER_2, "hostname")).stdout).toBe(`${WORKER_2}\n`);
    });

    test("the double logs every invocation", () => {
        const f = lab();
        const calls = f.k3sInvocations(GENESIS);
        expect(calls.some((c) => c.tool === "systemctl" && c.argv.join(" ") === "restart k3s" && c.exitCode === 0)).toBe(true);
        expect(calls.some((c) => c.tool === "k3s" && c.argv[0] === "kubectl" && c.argv.includes("wait"))).toBe(true);
        expect(f.clusterNodes().map((n) => n.name)).toEqual([GENESIS, WORKER_1, WORKER_2]);
    });

    test("stop() leaves no namespaces, links, processes, mounts or files, and is idempotent", async () => {
        const f = lab();
        const namespaces = f.hosts.map((h) => h.netns);
        const pids = f.hosts.map((h) => h.pid);
        expect(netnsList()).toContain(namespaces[0]);
        await f.stop();
        const after = netnsList();
        for (const ns of namespaces) expect(after).not.toContain(ns);
        expect(linkNames().filter((l) => l.includes(f.runId))).toEqual([]);
        for (const pid of pids) expect(pidAlive(pid)).toBe(false);
        const mounts = fs.readFileSync("/proc/self/mountinfo", "utf8");
        expect(mounts).not.toContain(f.runId);
        expect(fs.existsSync(f.runDir)).toBe(false);
        await expect(f.stop()).resolves.toBeUndefined();
        await expect(f.exec(GENESIS, "true")).rejects.toThrow("already stopped");
    });
});

describe("cleanupStaleLab", () => {
    test("removes the leftovers of a run whose owner died, and leaves live runs alone", async () => {
        if (prerequisites().length > 0) throw new Error(`lab fleet prerequisites missing: ${prerequisites().join("; ")}; run scripts/setup.sh`);
        const live = await startLabFleet({
            hosts: [{ name: "live-01", role: "server", initialConfig: YAML.stringify({ "cluster-init": true }), k3sBehaviour: { readyDelayMs: 0 } }],
        });
        expect(live.k3sState("live-01")?.status).toBe("active");
        const crashed = await startLabFleet({ hosts: [{ name: "crash-01", role: "agent" }], cleanupStale: false });
        try {
            // Pretend the crashed run's owner died: its owner file names a process that is gone.
            const ownerFile = path.join(crashed.runDir, "owner.json");
            const owner = JSON.parse(fs.readFileSync(ownerFile, "utf8")) as { pidStart: string | null };
            owner.pidStart = "dead";
            fs.writeFileSync(ownerFile, JSON.stringify(owner));
            const report = await cleanupStaleLab();
            expect(report.runs).toContain(crashed.runId);
            expect(report.runs).not.toContain(live.runId);
            expect(netnsList()).not.toContain(crashed.hosts[0]?.netns);
            expect(pidAlive(crashed.hosts[0]?.pid ?? 0)).toBe(false);
            expect(fs.existsSync(crashed.runDir)).toBe(false);
            expect((await live.ssh("live-01", "hostname; k3s kubectl get nodes -o name")).stdout).toBe("live-01\nnode/live-01\n");
        } finally {
            await crashed.stop();
            await live.stop();
        }
        expect(netnsList()).not.toContain(live.hosts[0]?.netns);
    });
});
