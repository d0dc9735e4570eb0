import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { stringify } from "yaml";
import type { Delivery } from "../../components/hostPlan";
import { throwawayPlan } from "../../scripts/render/throwawayPlan";
import { nebulaCertFingerprint } from "../../stacks/nebulaCert";
import { remoteScript } from "../../components/remote/scripts";
import { parseFleet } from "../../stacks/validate";
import { startLabFleet, type LabFleet, type LabHostSpec } from "../../scripts/lab";
import { labStackOnBridge } from "./labStack";
import type { Raw } from "./fixtures";

/*
 * The whole lab stack on a lab-fleet bridge for drift: the three K3s nodes of labStack.ts, the
 * relay host, and a test host standing in for the control droplet (reached with
 * --control-host). The plan's files (throwaway identities) are written into the hosts with their
 * planned modes and owners and each service restarted once on them; the K3s nodes are rolled
 * with the program's own four steps (k3s/*.sh, bootstrap order). So the fleet starts clean.
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
        fs.writeFileSync(
            passwd,
            `${fs.readFileSync("/etc/passwd", "utf8")}headscale:x:${HEADSCALE_UID}:${HEADSCALE_UID}::/var/lib/headscale:/usr/sbin/nologin\n`,
        );
        fs.writeFileSync(group, `${fs.readFileSync("/etc/group", "utf8")}headscale:x:${HEADSCALE_UID}:\n`);
        await fleet.exec(DROPLET, `mount --bind ${passwd} /etc/passwd && mount --bind ${group} /etc/group`, { check: true });
        fs.writeFileSync(
            fleet.hostPath(DROPLET, "/etc/systemd/system/headscale.service"),
            "[Unit]\nDescription=headscale (lab stand-in)\n[Service]\nExecStart=/usr/local/bin/headscale serve\n",
        );

        // Every planned file written as delivery leaves it (content, mode; Headscale's keys
        // owned by its user), then each service (re)started once on its files.
        const deliver = async (host: string, delivery: Delivery<string>): Promise<void> => {
            for (const file of [...delivery.publicFiles, ...delivery.secretFiles]) {
                const onHarness = fleet.hostPath(host, file.path);
                fs.mkdirSync(path.dirname(onHarness), { recursive: true });
                fs.writeFileSync(onHarness, file.content);
                fs.chmodSync(onHarness, file.mode);
                if (delivery.secretOwner !== undefined && delivery.secretFiles.includes(file)) {
                    fs.chownSync(onHarness, HEADSCALE_UID, HEADSCALE_UID);
                }
            }
            const unit = delivery.service.kind === "systemd" ? delivery.service.unit : delivery.service.label;
            await fleet.exec(host, `systemctl daemon-reload && systemctl enable --quiet ${unit} && systemctl restart ${unit}`, { check: true });
        };
        for (const host of plan.nebulaHosts) {
            await deliver(host.name, host.delivery);
        }
        for (const relayPlan of plan.relays) {
            for (const delivery of relayPlan.deliveries) {
                await deliver(relayPlan.name, delivery);
            }
        }
        for (const delivery of plan.control.deliveries) {
            await deliver(DROPLET, delivery);
        }
        for (const node of plan.k3sNodes) {
            const steps: [string, string][] = [
                ["k3s/prepare.sh", node.payloads.prepare],
                ["k3s/apply.sh", node.payloads.apply],
            ];
            for (const [script, payload] of steps) {
                const result = await fleet.ssh(node.name, remoteScript(script), payload, { timeoutMs: 90_000 });
                if (result.code !== 0) {
                    throw new Error(`${script} on ${node.name} failed: ${result.stderr}${result.stdout}`);
                }
            }
        }
        return {
            fleet,
            config,
            configFile,
            controlHost,
            caFingerprint,
            sshArgs: [
                "--identity",
                fleet.privateKeyPath,
                "--ssh-config",
                "/dev/null",
                "--known-hosts",
                "/dev/null",
                "--strict-host-key-checking",
                "no",
                "--connect-timeout",
                "2",
                "--timeout",
                "30",
            ],
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
