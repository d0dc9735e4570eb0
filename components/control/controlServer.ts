import type * as command from "@pulumi/command";
import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { connectionArgs, type SshCredentials } from "../remote/connection";
import { deliverFiles } from "../remote/fileDelivery";
import { framedPayload } from "../remote/payload";
import { remoteStep } from "../remote/remoteCommand";
import { controlDeliveryPart, stepId } from "../order";
import type { StepGate } from "../stepWaits";
import type { ControlPlan } from "./plan";

/*
 * Headscale with its embedded DERP relay (region 900) and the SFO3 Nebula lighthouse.
 *
 * Identity that must outlive any droplet is kept apart and protected: the reserved IP, the
 * volume holding Headscale's database, and (as stack secrets) the noise and DERP keys and the
 * lighthouse's Nebula key. The droplet, its SSH key, firewall and attachments are replaceable:
 * a rebuilt droplet boots from the same cloud-init, mounts the same volume, answers on the
 * same IP with the same keys, so no node re-enrolls. The same files are delivered over SSH, so
 * a config change updates the running server instead of replacing it, and a rebuilt droplet's
 * files are checked again by those steps (they re-run on a new droplet id).
 */

export interface ControlServerArgs {
    plan: ControlPlan<pulumi.Output<string>>;
    /** SSH credentials for an existing or adopted host (a droplet the program builds gets a key of its own). */
    credentials: SshCredentials;
    /** The plan's order: what each of the control server's steps waits for, within it and outside. */
    order: StepGate;
}

export class ControlServer extends pulumi.ComponentResource {
    public readonly publicIp: pulumi.Output<string>;
    public readonly headscaleUrl: string;
    public readonly derpMapYaml: pulumi.Output<string>;
    /** The droplet's id; undefined for an existing host. */
    public readonly dropletId?: pulumi.Output<string>;
    /** Succeeds once Headscale answers /health; dependents wait for it. */
    public readonly ready: command.remote.Command;

    constructor(name: string, args: ControlServerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("shortcircuit:control:ControlServer", name, {}, opts);
        const { plan } = args;
        this.headscaleUrl = plan.headscaleUrl;
        this.derpMapYaml = plan.derpMapYaml;

        let connection: command.types.input.remote.ConnectionArgs;
        let machineReady: pulumi.Resource[] = [];
        const host = plan.host;
        switch (host.kind) {
            case "droplet": {
                // Adopting a running server: the first `up` imports these objects, after index.ts
                // read them and refused any difference from the stack file (adoption.ts). Once
                // imported, delete `adopt`: a resource that still carries an import id can never be
                // replaced, and a lost one would be imported again instead of rebuilt.
                const adopt = host.adopt;
                // Identity: protected, never replaced with the droplet. The assignment owns which
                // droplet the address points at: the IP's own droplet_id, which an import reads
                // back, must never be "removed" (that unassigns the running server's address).
                const reservedIp = new digitalocean.ReservedIp(
                    `${name}-ip`,
                    { region: host.region },
                    { parent: this, protect: true, ignoreChanges: ["dropletId"], ...(adopt ? { import: adopt.reservedIp } : {}) },
                );
                const volume = new digitalocean.Volume(
                    `${name}-data`,
                    {
                        name: host.volumeName,
                        region: host.region,
                        size: host.volumeSizeGb,
                        initialFilesystemType: "ext4",
                        description: "Headscale database (/var/lib/headscale)",
                    },
                    {
                        parent: this,
                        protect: true,
                        // Chosen at creation and never read back (an imported volume has neither): a
                        // difference here must not replace the database volume.
                        ignoreChanges: ["initialFilesystemType", "description"],
                        ...(adopt ? { import: adopt.volumeId } : {}),
                    },
                );

                // Replaceable: the machine and how it is reached.
                const sshKey = new tls.PrivateKey(`${name}-ssh-key`, { algorithm: "ED25519" }, { parent: this });
                const doSshKey = new digitalocean.SshKey(
                    `${name}-ssh-key`,
                    { name: `${host.name}-pulumi`, publicKey: sshKey.publicKeyOpenssh },
                    { parent: this },
                );
                if (!plan.cloudInit) {
                    throw new pulumi.ResourceError("a droplet control server needs its cloud-init in the plan", this);
                }
                const machine = new digitalocean.Droplet(
                    `${name}-droplet`,
                    {
                        name: host.name,
                        region: host.region,
                        size: host.size,
                        image: host.image,
                        sshKeys: [doSshKey.fingerprint],
                        userData: pulumi.secret(plan.cloudInit),
                        monitoring: true,
                        ipv6: true,
                    },
                    {
                        parent: this,
                        // These apply when a droplet is built (a rebuilt one gets every one of them)
                        // and each would force a new droplet: cloud-init changes arrive over SSH, and
                        // an adopted droplet was built with other keys and options. The image is
                        // not among them: adoption refuses a differing one.
                        ignoreChanges: ["userData", "sshKeys", "monitoring", "ipv6"],
                        ...(adopt ? { import: adopt.dropletId } : {}),
                        // The Headscale volume attaches to one droplet at a time: a replacement
                        // created before the old droplet is deleted cannot take it ("Volume is
                        // already attached to another droplet") and leaves two droplets. Deleting
                        // first detaches the volume and unassigns the IP, then the new one takes both.
                        deleteBeforeReplace: true,
                    },
                );
                const dropletId = machine.id.apply(Number);
                // Not importable; creating it over an attachment already in place changes nothing
                // (the provider attaches only a volume that is not on this droplet).
                const attachment = new digitalocean.VolumeAttachment(
                    `${name}-data-attachment`,
                    { dropletId, volumeId: volume.id },
                    { parent: this, deleteBeforeReplace: true },
                );
                const assignment = new digitalocean.ReservedIpAssignment(
                    `${name}-ip-assignment`,
                    { ipAddress: reservedIp.ipAddress, dropletId },
                    { parent: this, deleteBeforeReplace: true, ...(adopt ? { import: `${adopt.reservedIp},${adopt.dropletId}` } : {}) },
                );
                new digitalocean.Firewall(
                    `${name}-firewall`,
                    {
                        name: `${host.name}-fw`,
                        dropletIds: [dropletId],
                        inboundRules: host.inbound.map((rule) => ({ protocol: rule.protocol, portRange: rule.portRange, sourceAddresses: rule.addresses })),
                        outboundRules: host.outbound.map((rule) => ({
                            protocol: rule.protocol,
                            portRange: rule.portRange,
                            destinationAddresses: rule.addresses,
                        })),
                    },
                    { parent: this, ...(adopt?.firewallId ? { import: adopt.firewallId } : {}) },
                );
                this.publicIp = reservedIp.ipAddress;
                this.dropletId = machine.id;
                // Every step reaches the droplet with the program's key, adopted or built, so dropping
                // `adopt` after adoption changes no step. A droplet the program built knows that key;
                // an adopted one learns it first, over the operator's own key.
                connection = connectionArgs({ ...host.ssh, host: reservedIp.ipAddress }, { privateKey: sshKey.privateKeyOpenssh });
                machineReady = [attachment, assignment];
                if (adopt) {
                    machineReady.push(
                        remoteStep(`${name}-authorize`, this, {
                            connection: connectionArgs({ ...host.ssh, host: reservedIp.ipAddress }, args.credentials),
                            script: "control/authorize.sh",
                            stdin: sshKey.publicKeyOpenssh.apply((key) => framedPayload({ PUBLIC_KEY: key.trim() })),
                            after: [attachment, assignment],
                        }),
                    );
                }
                break;
            }
            case "existing":
                connection = connectionArgs(host.ssh, args.credentials);
                this.publicIp = pulumi.output(host.ssh.host);
                break;
        }

        // On a new droplet every step re-runs: cloud-init already laid the files down, so they
        // change nothing there, but they prove it and (re)start what cloud-init could not.
        const rebuilt = this.dropletId ? [this.dropletId] : [];
        const { order } = args;
        const bootstrap = remoteStep(`${name}-bootstrap`, this, {
            connection,
            script: "control/bootstrap.sh",
            stdin: plan.bootstrapPayload,
            triggers: rebuilt,
            after: [...machineReady, ...order.before(stepId.control("bootstrap"))],
        });
        order.finish(stepId.control("bootstrap"), bootstrap);
        for (const delivery of plan.deliveries) {
            const step = stepId.control(controlDeliveryPart(delivery.role));
            order.finish(step, deliverFiles(`${name}-${delivery.role}`, this, connection, delivery, order.before(step), rebuilt).files);
        }
        this.ready = remoteStep(`${name}-health`, this, {
            connection,
            script: "control/health.sh",
            stdin: plan.healthPayload,
            triggers: [...rebuilt, ...plan.deliveries.map((delivery) => delivery.payloads.public)],
            after: order.before(stepId.control("health")),
        });
        order.finish(stepId.control("health"), this.ready);
        this.registerOutputs({ publicIp: this.publicIp, headscaleUrl: this.headscaleUrl, derpMapYaml: this.derpMapYaml });
    }
}
