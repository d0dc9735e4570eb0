import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import type { DropletHostPlan } from "./plan";

/*
 * The control server's DigitalOcean objects: reserved IP, Headscale volume, the program's SSH
 * key, the droplet (built or adopted), the volume attachment, the IP assignment and the firewall.
 * What the droplet boots with (its cloud-init) comes from the plan; nothing here reaches the host
 * over SSH (ControlServer does that).
 *
 * Identity that must outlive any droplet is kept apart and protected: the reserved IP and the
 * volume holding Headscale's database. The droplet, its SSH key, firewall and attachments are
 * replaceable.
 *
 * These objects were children of ControlServer before this component existed. They keep their
 * names (`<name>-ip`, `<name>-droplet`, …: ControlServer gives this component its own name) and
 * each carries an alias to its old parent, so an existing stack's URNs move here with no
 * replacement and no delete (a replace would hit the protected IP and volume, and an adopted
 * droplet that still carries its import id cannot be replaced at all).
 */

export interface ControlDropletArgs {
    /** The droplet, volume, firewall and adoption ids, from the plan (controlHost). */
    host: DropletHostPlan;
    /** The droplet's user data (secret: it carries the keys), rendered by the plan. */
    cloudInit: pulumi.Input<string>;
    /**
     * The ControlServer these objects were children of before the split: each child aliases
     * itself to the same name and type under it, so existing state migrates in place.
     */
    formerParent: pulumi.Resource;
}

export class ControlDroplet extends pulumi.ComponentResource {
    /** The reserved IP's address: how the program and every host reach the control server. */
    public readonly publicIp: pulumi.Output<string>;
    public readonly dropletId: pulumi.Output<string>;
    /** The program's own SSH key: a droplet it builds knows it; an adopted one learns it (control-authorize). */
    public readonly sshPrivateKey: pulumi.Output<string>;
    public readonly sshPublicKey: pulumi.Output<string>;
    /** The volume is attached and the IP assigned: the droplet answers on its address with its data. */
    public readonly ready: pulumi.Resource[];

    constructor(name: string, args: ControlDropletArgs, opts?: pulumi.ComponentResourceOptions) {
        super("shortcircuit:control:ControlDroplet", name, {}, opts);
        const { host } = args;
        // Every child: parented here, aliased to where an older program put it.
        const child = (extra: pulumi.CustomResourceOptions = {}): pulumi.CustomResourceOptions => ({
            parent: this,
            aliases: [{ parent: args.formerParent }],
            ...extra,
        });
        // Adopting a running server: the first `up` imports these objects, after index.ts read
        // them and refused any difference from the stack file (adoption.ts). Once imported, delete
        // `adopt`: a resource that still carries an import id can never be replaced, and a lost
        // one would be imported again instead of rebuilt.
        const adopt = host.adopt;
        // Identity: protected, never replaced with the droplet. The assignment owns which droplet
        // the address points at: the IP's own droplet_id, which an import reads back, must never
        // be "removed" (that unassigns the running server's address).
        const reservedIp = new digitalocean.ReservedIp(
            `${name}-ip`,
            { region: host.region },
            child({ protect: true, ignoreChanges: ["dropletId"], ...(adopt ? { import: adopt.reservedIp } : {}) }),
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
            child({
                protect: true,
                // Chosen at creation and never read back (an imported volume has neither): a
                // difference here must not replace the database volume.
                ignoreChanges: ["initialFilesystemType", "description"],
                ...(adopt ? { import: adopt.volumeId } : {}),
            }),
        );

        // Replaceable: the machine and how it is reached.
        const sshKey = new tls.PrivateKey(`${name}-ssh-key`, { algorithm: "ED25519" }, child());
        const doSshKey = new digitalocean.SshKey(`${name}-ssh-key`, { name: `${host.name}-pulumi`, publicKey: sshKey.publicKeyOpenssh }, child());
        const machine = new digitalocean.Droplet(
            `${name}-droplet`,
            {
                name: host.name,
                region: host.region,
                size: host.size,
                image: host.image,
                sshKeys: [doSshKey.fingerprint],
                userData: pulumi.secret(args.cloudInit),
                monitoring: true,
                ipv6: true,
            },
            child({
                // These apply when a droplet is built (a rebuilt one gets every one of them) and
                // each would force a new droplet: cloud-init changes arrive over SSH, and an
                // adopted droplet was built with other keys and options. The image is not among
                // them: adoption refuses a differing one.
                ignoreChanges: ["userData", "sshKeys", "monitoring", "ipv6"],
                ...(adopt ? { import: adopt.dropletId } : {}),
                // The Headscale volume attaches to one droplet at a time: a replacement created
                // before the old droplet is deleted cannot take it ("Volume is already attached to
                // another droplet") and leaves two droplets. Deleting first detaches the volume and
                // unassigns the IP, then the new one takes both.
                deleteBeforeReplace: true,
            }),
        );
        const dropletId = machine.id.apply(Number);
        // Not importable; creating it over an attachment already in place changes nothing (the
        // provider attaches only a volume that is not on this droplet).
        const attachment = new digitalocean.VolumeAttachment(
            `${name}-data-attachment`,
            { dropletId, volumeId: volume.id },
            child({ deleteBeforeReplace: true }),
        );
        const assignment = new digitalocean.ReservedIpAssignment(
            `${name}-ip-assignment`,
            { ipAddress: reservedIp.ipAddress, dropletId },
            child({ deleteBeforeReplace: true, ...(adopt ? { import: `${adopt.reservedIp},${adopt.dropletId}` } : {}) }),
        );
        new digitalocean.Firewall(
            `${name}-firewall`,
            {
                name: `${host.name}-fw`,
                dropletIds: [dropletId],
                inboundRules: host.inbound.map((rule) => ({ protocol: rule.protocol, portRange: rule.portRange, sourceAddresses: rule.addresses })),
                outboundRules: host.outbound.map((rule) => ({ protocol: rule.protocol, portRange: rule.portRange, destinationAddresses: rule.addresses })),
            },
            child(adopt?.firewallId ? { import: adopt.firewallId } : {}),
        );
        this.publicIp = reservedIp.ipAddress;
        this.dropletId = machine.id;
        this.sshPrivateKey = sshKey.privateKeyOpenssh;
        this.sshPublicKey = sshKey.publicKeyOpenssh;
        this.ready = [attachment, assignment];
        this.registerOutputs({ publicIp: this.publicIp, dropletId: this.dropletId });
    }
}
