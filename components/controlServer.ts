import * as command from "@pulumi/command";
import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { connectionArgs, type SshConnection } from "./remote/connection";
import { fileSyncPayload, fileSyncScript } from "./remote/fileSync";
import {
    BOOTSTRAP_PATH,
    CONTROL_BOOTSTRAP_SCRIPT,
    controlServerPublicFiles,
    controlServerSecretFiles,
    digitalOceanVolumeDevice,
    headscaleVolumeName,
    renderCloudInit,
    type LighthouseFiles,
} from "./render/controlServer";
import { headscaleServerUrl, renderDerpMapYaml } from "./render/headscale";
import { versions } from "./versions";
import type { Fleet } from "../stacks/schema";

/*
 * Headscale with its embedded DERP relay (region 900) and the SFO3 Nebula lighthouse.
 *
 * Identity that must outlive any droplet is kept apart and protected: the reserved IP, the
 * volume holding Headscale's database, and (as stack secrets) the noise and DERP keys and the
 * lighthouse's Nebula key. The droplet, its SSH key, firewall and attachments are replaceable:
 * a rebuilt droplet boots from the same cloud-init, mounts the same volume, answers on the
 * same IP with the same keys, so no node re-enrolls. Files are also delivered over SSH, so a
 * config change updates the running server instead of replacing it.
 */

export interface ControlServerArgs {
    fleet: Fleet;
    /** `privkey:<64 hex>` (secret). */
    noiseKey: pulumi.Input<string>;
    /** `privkey:<64 hex>` (secret), different from the noise key. */
    derpKey: pulumi.Input<string>;
    /** The lighthouse's Nebula files; keyPem is secret. */
    nebula: { [K in keyof LighthouseFiles]: pulumi.Input<string> };
    /** Relay host → `sha256-raw:<hex>` pin for self-signed relays. */
    derpCertNames: pulumi.Input<Record<string, string | undefined>>;
    /** For `host.kind: existing`: how the program reaches that host. */
    existingHost?: SshConnection;
}

const ADMIN_SSH_PORT = "22";

/**
 * A value spliced into a root shell line must be one inert word. The device path comes from
 * the droplet name and the health check carries the hostname; the schema already limits both
 * to DNS labels/names, and this refuses anything else rather than trusting every caller.
 */
function shellWord(what: string, value: string): string {
    if (!/^[A-Za-z0-9_./:+-]+$/.test(value)) {
        throw new Error(`${what} ${JSON.stringify(value)} is not a plain shell word`);
    }
    return value;
}

export class ControlServer extends pulumi.ComponentResource {
    public readonly publicIp: pulumi.Output<string>;
    public readonly headscaleUrl: string;
    public readonly derpMapYaml: pulumi.Output<string>;
    /** The droplet's id, or undefined for an existing host. */
    public readonly dropletId: pulumi.Output<string | undefined>;
    /** Succeeds once Headscale answers /health; dependents wait for it. */
    public readonly ready: command.remote.Command;

    constructor(name: string, args: ControlServerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("shortcircuit:control:ControlServer", name, {}, opts);
        const { fleet } = args;
        const control = fleet.controlServer;
        this.headscaleUrl = headscaleServerUrl(fleet);

        this.derpMapYaml = pulumi.output(args.derpCertNames).apply((names) =>
            renderDerpMapYaml(fleet, Object.fromEntries(Object.entries(names).filter((entry): entry is [string, string] => entry[1] !== undefined))),
        );
        const publicFiles = pulumi
            .all([this.derpMapYaml, args.nebula.configYaml, args.nebula.caCertPem, args.nebula.certPem])
            .apply(([derpMapYaml, configYaml, caCertPem, certPem]) => controlServerPublicFiles(fleet, derpMapYaml, { configYaml, caCertPem, certPem }));
        const secretFiles = pulumi
            .all([args.noiseKey, args.derpKey, args.nebula.keyPem])
            .apply(([noiseKey, derpKey, keyPem]) => controlServerSecretFiles({ noiseKey, derpKey }, keyPem));

        let connection: command.types.input.remote.ConnectionArgs;
        let bootstrapDevice: string;
        let bootstrapAfter: pulumi.Resource[];
        if (control.host.kind === "droplet") {
            const droplet = control.host;
            // Identity: protected, never replaced with the droplet.
            const reservedIp = new digitalocean.ReservedIp(`${name}-ip`, { region: droplet.region }, { parent: this, protect: true });
            const volumeName = headscaleVolumeName(droplet.name);
            const volume = new digitalocean.Volume(
                `${name}-data`,
                {
                    name: volumeName,
                    region: droplet.region,
                    size: droplet.volumeSizeGb,
                    initialFilesystemType: "ext4",
                    description: "Headscale database (/var/lib/headscale)",
                },
                { parent: this, protect: true },
            );

            // Replaceable: the machine and how it is reached.
            const sshKey = new tls.PrivateKey(`${name}-ssh-key`, { algorithm: "ED25519" }, { parent: this });
            const doSshKey = new digitalocean.SshKey(`${name}-ssh-key`, { name: `${droplet.name}-pulumi`, publicKey: sshKey.publicKeyOpenssh }, { parent: this });
            bootstrapDevice = digitalOceanVolumeDevice(volumeName);
            const userData = pulumi.secret(
                pulumi.all([publicFiles, secretFiles]).apply(([pub, sec]) => renderCloudInit([...pub, ...sec], bootstrapDevice)),
            );
            const machine = new digitalocean.Droplet(
                `${name}-droplet`,
                {
                    name: droplet.name,
                    region: droplet.region,
                    size: droplet.size,
                    image: droplet.image,
                    sshKeys: [doSshKey.fingerprint],
                    userData,
                    monitoring: true,
                    ipv6: true,
                },
                // Cloud-init only matters at (re)build; later changes arrive over SSH below, so
                // a config edit must not replace the droplet.
                { parent: this, ignoreChanges: ["userData"] },
            );
            const attachment = new digitalocean.VolumeAttachment(`${name}-data-attachment`, { dropletId: machine.id.apply(Number), volumeId: volume.id }, { parent: this });
            const assignment = new digitalocean.ReservedIpAssignment(
                `${name}-ip-assignment`,
                { ipAddress: reservedIp.ipAddress, dropletId: machine.id.apply(Number) },
                { parent: this },
            );
            const overlays = [fleet.overlays.tailnet.prefix, fleet.overlays.nebula.network];
            const world = ["0.0.0.0/0", "::/0"];
            new digitalocean.Firewall(
                `${name}-firewall`,
                {
                    name: `${droplet.name}-fw`,
                    dropletIds: [machine.id.apply(Number)],
                    inboundRules: [
                        { protocol: "tcp", portRange: "443", sourceAddresses: world },
                        { protocol: "tcp", portRange: "80", sourceAddresses: world },
                        { protocol: "udp", portRange: String(control.derp.stunPort), sourceAddresses: world },
                        { protocol: "udp", portRange: String(fleet.overlays.nebula.listenPort), sourceAddresses: world },
                        { protocol: "tcp", portRange: ADMIN_SSH_PORT, sourceAddresses: [...droplet.adminCidrs, ...overlays] },
                        { protocol: "icmp", sourceAddresses: world },
                    ],
                    outboundRules: [
                        { protocol: "tcp", portRange: "1-65535", destinationAddresses: world },
                        { protocol: "udp", portRange: "1-65535", destinationAddresses: world },
                        { protocol: "icmp", destinationAddresses: world },
                    ],
                },
                { parent: this },
            );
            this.publicIp = reservedIp.ipAddress;
            this.dropletId = machine.id;
            connection = { host: reservedIp.ipAddress, user: "root", privateKey: sshKey.privateKeyOpenssh, perDialTimeout: fleet.access.sshTimeoutSeconds, dialErrorLimit: 10 };
            bootstrapAfter = [attachment, assignment];
        } else {
            if (!args.existingHost) {
                throw new Error("an existing control host needs its SSH connection");
            }
            connection = connectionArgs(args.existingHost);
            this.publicIp = pulumi.output(args.existingHost.host);
            this.dropletId = pulumi.output(undefined);
            bootstrapDevice = "none";
            bootstrapAfter = [];
        }

        // The same files over SSH: the first run after a (re)build finds them in place and
        // changes nothing; a config change later lands here without touching the droplet.
        const keyScript = fileSyncScript({ manager: "none" });
        const keys = new command.remote.Command(
            `${name}-keys`,
            { connection, create: keyScript, update: keyScript, stdin: pulumi.secret(secretFiles.apply(fileSyncPayload)), logging: "stdoutAndStderr" },
            { parent: this, dependsOn: bootstrapAfter, additionalSecretOutputs: ["stdin"] },
        );
        const bootstrapArgs = [bootstrapDevice, versions.headscale, versions.nebula].map((arg) => shellWord("bootstrap argument", arg)).join(" ");
        const installScript = `set -euo pipefail\ninstall -m 0755 /dev/stdin ${BOOTSTRAP_PATH}\n${BOOTSTRAP_PATH} ${bootstrapArgs}\n`;
        const install = new command.remote.Command(
            `${name}-bootstrap`,
            { connection, create: installScript, update: installScript, stdin: CONTROL_BOOTSTRAP_SCRIPT, logging: "stdoutAndStderr" },
            { parent: this, dependsOn: [keys] },
        );
        const filesScript = fileSyncScript({ manager: "systemd", unit: "headscale.service" });
        const files = new command.remote.Command(
            `${name}-files`,
            { connection, create: filesScript, update: filesScript, stdin: publicFiles.apply(fileSyncPayload), logging: "stdoutAndStderr" },
            { parent: this, dependsOn: [install] },
        );
        // Bounded wait (60 × 5 s) for Headscale's /health on this host, whatever the ACME state.
        const hostname = shellWord("control server hostname", control.hostname);
        const healthScript = `set -euo pipefail\nfor _ in $(seq 1 60); do\n  if curl -fsS -k --max-time 5 --resolve "${hostname}:443:127.0.0.1" "https://${hostname}/health"; then echo; exit 0; fi\n  sleep 5\ndone\necho "headscale did not answer /health within 300 s" >&2\nexit 1\n`;
        this.ready = new command.remote.Command(
            `${name}-health`,
            { connection, create: healthScript, update: healthScript, triggers: [this.dropletId, publicFiles.apply(fileSyncPayload)], logging: "stdoutAndStderr" },
            { parent: this, dependsOn: [files] },
        );
        this.registerOutputs({ publicIp: this.publicIp, headscaleUrl: this.headscaleUrl, derpMapYaml: this.derpMapYaml, dropletId: this.dropletId });
    }
}
