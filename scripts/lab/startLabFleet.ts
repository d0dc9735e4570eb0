/**
 * startLabFleet: the composition. Claims a run directory, picks a bridge network, builds the
 * doubles, makes the bridge, starts every host (files, network namespace, sshd) in parallel and
 * returns the fleet handle. Whatever fails on the way tears the whole run down before the error
 * is rethrown; a process `exit` hook tears it down if a test never calls stop().
 */
import type { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { DEFAULT_BASE_DIR, DEFAULT_K3S_VERSION, DOUBLE_SCRIPT, MACOS_TOOLS_SCRIPT, SERVICE_DOUBLES_SCRIPT } from "./constants";
import { buildDouble } from "./doubleBuild";
import { fleetHandle } from "./fleetHandle";
import { layOutHost, type HostLayoutContext } from "./hostLayout";
import { planHosts, type PlannedHost } from "./hostPlan";
import { systemToolBindTargets } from "./hostTools";
import { intToIp, parseCidr } from "./ipv4";
import { chooseBridgeCidr, createBridge, createHostNetwork } from "./network";
import { assertPrerequisites, tool } from "./prerequisites";
import { runOk, sleep } from "./processes";
import { claimMountPoints, createRunDir, writeOwner } from "./runDir";
import { startSshd } from "./sshd";
import { cleanupStaleLab, teardownSync } from "./teardown";
import type { LabFleet, LabFleetOptions, LabHost } from "./types";

/** Anything under /tmp would be hidden by a host's private /tmp; then the hosts share the real one. */
function canHavePrivateTmp(runDir: string): boolean {
    return [runDir, DOUBLE_SCRIPT, process.execPath, path.dirname(require.resolve("yaml"))].every((p) => !(p === "/tmp" || p.startsWith("/tmp/")));
}

/** The run's client key (ECDSA P-256, PEM: what the command provider reads), authorized on every host. */
async function makeClientKey(sshKeygen: string, runId: string, runDir: string): Promise<{ keyPath: string; privateKeyPem: string }> {
    const keyPath = path.join(runDir, "id_lab");
    await runOk(sshKeygen, ["-q", "-t", "ecdsa", "-b", "256", "-m", "PEM", "-N", "", "-C", `sc-lab-${runId}`, "-f", keyPath]);
    fs.chmodSync(keyPath, 0o600);
    fs.copyFileSync(`${keyPath}.pub`, path.join(runDir, "authorized_keys"));
    return { keyPath, privateKeyPem: fs.readFileSync(keyPath, "utf8") };
}

export async function startLabFleet(opts: LabFleetOptions): Promise<LabFleet> {
    assertPrerequisites();
    if (opts.cleanupStale !== false) await cleanupStaleLab(opts.baseDir !== undefined ? { baseDir: opts.baseDir } : {});
    const tools = { ip: tool("ip"), sshKeygen: tool("ssh-keygen"), ssh: tool("ssh"), nsenter: tool("nsenter"), unshare: tool("unshare"), sshd: tool("sshd") };
    const { ip } = tools;
    const baseDir = opts.baseDir ?? DEFAULT_BASE_DIR;
    const { runId, runDir, owner } = createRunDir(baseDir);
    const bridge = owner.bridge;

    let stopped: Promise<void> | null = null;
    const liveChildren = new Set<ChildProcess>();
    const pending = new Set<ChildProcess>();
    const sshdPids: number[] = [];
    const exitHook = (): void => {
        teardownSync(runId, runDir, sshdPids);
    };
    process.on("exit", exitHook);
    const teardown = async (): Promise<void> => {
        process.removeListener("exit", exitHook);
        for (const c of pending) c.kill("SIGKILL");
        for (const c of liveChildren) c.kill("SIGTERM");
        teardownSync(runId, runDir, sshdPids);
        await sleep(0);
    };

    try {
        const bridgeCidr = chooseBridgeCidr(runId, opts.bridgeCidr);
        const cidr = parseCidr(bridgeCidr);
        const gatewayAddress = intToIp(cidr.network + 1);
        const planned = planHosts(opts, runId, runDir, bridgeCidr);
        const clusterDir = path.join(runDir, "cluster");
        fs.mkdirSync(path.join(clusterDir, "nodes"), { recursive: true });
        claimMountPoints(
            owner,
            runDir,
            baseDir,
            opts.hosts.some((h) => h.machine === true),
            opts.hosts.some((h) => h.os === "macos"),
        );

        const doubleBuild = buildDouble(runDir);
        const serviceDoublesBuild = buildDouble(runDir, SERVICE_DOUBLES_SCRIPT);
        const macosToolsBuild = opts.hosts.some((h) => h.os === "macos") ? buildDouble(runDir, MACOS_TOOLS_SCRIPT) : Promise.resolve(null);
        const { keyPath, privateKeyPem } = await makeClientKey(tools.sshKeygen, runId, runDir);

        // Recorded before it exists: a crash in between still leaves teardown its name.
        owner.links.push(bridge);
        writeOwner(runDir, owner);
        await createBridge(ip, bridge, gatewayAddress, cidr.prefix);

        const layoutContext: HostLayoutContext = {
            runId,
            runDir,
            clusterDir,
            k3sVersion: opts.k3sVersion ?? DEFAULT_K3S_VERSION,
            ip,
            sshKeygen: tools.sshKeygen,
            origUsrLocalBin: fs.existsSync("/usr/local/bin") ? fs.readdirSync("/usr/local/bin") : [],
            doubleScript: await doubleBuild,
            serviceDoublesScript: await serviceDoublesBuild,
            macosToolsScript: await macosToolsBuild,
        };
        const privateTmp = canHavePrivateTmp(runDir);
        const bindTargets = systemToolBindTargets();

        const startHost = async (h: PlannedHost): Promise<LabHost> => {
            const layout = await layOutHost(layoutContext, h);
            owner.netns.push(h.netns);
            owner.links.push(h.veth);
            writeOwner(runDir, owner);
            await createHostNetwork(ip, h, planned, bridge, cidr.prefix, opts.overlayPeerRoutes !== false);
            const child = await startSshd(
                tools.ip,
                tools.unshare,
                tools.sshd,
                h,
                { ...layout, privateTmp, bindTargets: h.spec.os === "macos" ? [] : bindTargets },
                (c) => {
                    liveChildren.add(c);
                    c.on("exit", () => liveChildren.delete(c));
                    if (c.pid !== undefined) sshdPids.push(c.pid);
                },
            );
            return {
                name: h.spec.name,
                role: layout.role,
                unit: layout.unit,
                sshHost: h.lan,
                sshPort: 22,
                user: "root",
                privateKeyPem,
                hostPublicKey: fs.readFileSync(path.join(h.hostDir, "ssh_host_ed25519_key.pub"), "utf8").trim(),
                rootDir: h.rootDir,
                privateDirs: layout.privateDirs,
                binDir: layout.binDir,
                etcRancherDir: layout.etcDir,
                varLibRancherDir: layout.varDir,
                doubleStateDir: layout.stateDir,
                netns: h.netns,
                lanAddress: h.lan,
                tailnetAddress: h.tailnet?.address ?? null,
                nebulaAddress: h.nebula?.address ?? null,
                nebulaIface: h.spec.nebulaIface ?? "nebula1",
                pid: child.pid ?? 0,
                machine: h.spec.machine === true,
                os: h.spec.os ?? "linux",
            };
        };
        // allSettled, not all: every host has finished (or failed) before a failure tears the run down.
        const settled = await Promise.allSettled(planned.map(startHost));
        const failedHost = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
        if (failedHost) throw failedHost.reason;
        const hosts = settled.map((r) => (r as PromiseFulfilledResult<LabHost>).value);
        writeOwner(runDir, owner);

        const fleet = fleetHandle({
            runId,
            runDir,
            bridge,
            bridgeCidr,
            gatewayAddress,
            clusterDir,
            keyPath,
            hosts,
            connectTimeoutSec: opts.connectTimeoutSec ?? 3,
            serviceDoublesScript: layoutContext.serviceDoublesScript,
            tools,
            pending,
            stop: () => {
                stopped ??= teardown();
                return stopped;
            },
            stopped: () => stopped !== null,
        });

        // Seed initial configs and start k3s where asked.
        for (const h of hosts) {
            const initialConfig = opts.hosts.find((s) => s.name === h.name)?.initialConfig;
            if (initialConfig === undefined) continue;
            fs.writeFileSync(path.join(h.etcRancherDir, "k3s", "config.yaml"), initialConfig, { mode: 0o600 });
            const r = await fleet.exec(h, `systemctl start ${h.unit}`, { timeoutMs: 30_000 });
            if (r.code !== 0)
                throw new Error(`lab fleet: ${h.name}: initial k3s start failed:\n${r.stderr}\n${r.stdout}\n${JSON.stringify(fleet.k3sState(h)?.lastError)}`);
        }
        return fleet;
    } catch (e) {
        await teardown();
        throw e;
    }
}
