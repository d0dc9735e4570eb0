import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { stringify } from "yaml";
import { HEADSCALE_FILES } from "../../components/control/headscale";
import { throwawayPlan } from "../../components/planFiles";
import { nebulaCertFingerprint } from "../../components/nebula/cert";
import { remoteScript } from "../../components/remote/scripts";
import { parseFleet } from "../../stacks/validate";
import { startLabFleet, type LabFleet, type LabHostSpec } from "../lab/labFleet";
import { labStackOnBridge } from "../lab/labStack";
import type { Raw } from "../support/fixtures";

/*
 * The whole lab stack on a lab-fleet bridge for drift: the three K3s nodes of labStack.ts, the
 * relay host, and a test host standing in for the control droplet (reached with
 * --control-host). The plan's files are delivered with the program's own scripts
 * (remote/deliver-files.sh, the four K3s steps), so the fleet starts clean.
 */

export const RELAY = "lab-relay-01";
export const DROPLET = "shortcircuit-lab-sfo3";
const HEADSCALE_UID = 990;

export interface DriftLab {
    fleet: LabFleet;
    config: Raw;
    configFile: string;
    controlHost: string;
    caFingerprint: string;
    /** CLI arguments that reach the lab hosts (key, no ssh config, no known hosts). */
    sshArgs: string[];
    cleanup(): Promise<void>;
}

export async function startDriftLab(bridgePrefix: string): Promise<DriftLab> {
    const lab = labStackOnBridge(bridgePrefix, 6, true);
    const config = lab.config;
    const relay = config.nodes.find((node: Raw) => node.name === RELAY);
    relay.lan.address = `${bridgePrefix}.2`;
    const controlHost = `${bridgePrefix}.3`;
    const nebulaIface = config.overlays.nebula.interface as string;
    const hosts: LabHostSpec[] = [
        ...lab.hosts,
        { name: RELAY, role: "agent", lanAddress: relay.lan.address, tailnetAddress: relay.tailnet.address, nebulaAddress: relay.nebula.address, nebulaIface },
        { name: DROPLET, role: "agent", lanAddress: controlHost, nebulaAddress: config.controlServer.nebula.address, nebulaIface },
    ];
    const fleet = await startLabFleet({ bridgeCidr: `${bridgePrefix}.0/24`, hosts });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sc-drift-"));
    try {
        const configFile = path.join(dir, "Pulumi.drift-lab.yaml");
        fs.writeFileSync(configFile, stringify({ config: { "shortcircuit:fleet": config } }));
        const { plan } = throwawayPlan(parseFleet(config).fleet, { now: new Date() });
        const caFingerprint = nebulaCertFingerprint(plan.nebulaHosts[0].delivery.publicFiles[0].content);

        // The droplet stand-in: a headscale user in its own /etc/passwd (bind-mounted in its
        // mount namespace only) and a unit file for the service-manager stand-in.
        const passwd = path.join(fleet.runDir, "drift-passwd");
        const group = path.join(fleet.runDir, "drift-group");
        fs.writeFileSync(passwd, `${fs.readFileSync("/etc/passwd", "utf8")}headscale:x:${HEADSCALE_UID}:${HEADSCALE_UID}::/var/lib/headscale:/usr/sbin/nologin\n`);
        fs.writeFileSync(group, `${fs.readFileSync("/etc/group", "utf8")}headscale:x:${HEADSCALE_UID}:\n`);
        await fleet.exec(DROPLET, `mount --bind ${passwd} /etc/passwd && mount --bind ${group} /etc/group`, { check: true });
        fs.writeFileSync(fleet.hostPath(DROPLET, "/etc/systemd/system/headscale.service"), "[Unit]\nDescription=headscale (lab stand-in)\n[Service]\nExecStart=/usr/local/bin/headscale serve\n");

        const deliver = async (host: string, payload: string): Promise<void> => {
            const result = await fleet.ssh(host, remoteScript("remote/deliver-files.sh"), payload, { timeoutMs: 60_000 });
            if (result.code !== 0) {
                throw new Error(`delivery to ${host} failed: ${result.stderr}${result.stdout}`);
            }
        };
        for (const host of plan.nebulaHosts) {
            await deliver(host.name, host.delivery.payloads.secret);
            await deliver(host.name, host.delivery.payloads.public);
        }
        for (const relayPlan of plan.relays) {
            for (const delivery of relayPlan.deliveries) {
                await deliver(relayPlan.name, delivery.payloads.secret);
                await deliver(relayPlan.name, delivery.payloads.public);
            }
        }
        for (const delivery of plan.control.deliveries) {
            await deliver(DROPLET, delivery.payloads.secret);
            await deliver(DROPLET, delivery.payloads.public);
        }
        for (const file of [HEADSCALE_FILES.noiseKey, HEADSCALE_FILES.derpKey]) {
            const onHarness = fleet.hostPath(DROPLET, file);
            if (fs.existsSync(onHarness)) {
                fs.chownSync(onHarness, HEADSCALE_UID, HEADSCALE_UID);
            }
        }
        for (const node of plan.k3sNodes) {
            const steps: [string, string, string][] = [
                [node.name, "k3s/prepare.sh", node.payloads.prepare],
                [plan.k3sNodes[0].name, "k3s/drain.sh", node.payloads.drain],
                [node.name, "k3s/apply.sh", node.payloads.apply],
                [plan.k3sNodes[0].name, "k3s/uncordon.sh", node.payloads.uncordon],
            ];
            for (const [host, script, payload] of steps) {
                const result = await fleet.ssh(host, remoteScript(script), payload, { timeoutMs: 90_000 });
                if (result.code !== 0) {
                    throw new Error(`${script} for ${node.name} on ${host} failed: ${result.stderr}${result.stdout}`);
                }
            }
        }
        return {
            fleet,
            config,
            configFile,
            controlHost,
            caFingerprint,
            sshArgs: ["--identity", fleet.privateKeyPath, "--ssh-config", "/dev/null", "--known-hosts", "/dev/null", "--strict-host-key-checking", "no", "--connect-timeout", "2", "--timeout", "30"],
            cleanup: async () => {
                await fleet.stop();
                fs.rmSync(dir, { recursive: true, force: true });
            },
        };
    } catch (error) {
        await fleet.stop();
        fs.rmSync(dir, { recursive: true, force: true });
        throw error;
    }
}
