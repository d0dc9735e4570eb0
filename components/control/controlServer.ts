import type * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { connectionArgs, type SshCredentials, type StepConnection } from "../remote/connection";
import { deliverFiles } from "../remote/fileDelivery";
import { framedPayload } from "../remote/payload";
import { remoteStep } from "../remote/remoteCommand";
import { controlDeliveryPart, stepId } from "../order";
import type { StepGate } from "../stepWaits";
import { ControlDroplet } from "./controlDroplet";
import { isDropletPlan, type ControlPlan } from "./plan";

/*
 * Headscale with its embedded DERP relay (region 900) and the SFO3 Nebula lighthouse: the steps
 * that reach the host over SSH. On a droplet, its DigitalOcean objects are a ControlDroplet child.
 *
 * Identity that must outlive any droplet is kept apart and protected: the reserved IP, the
 * volume holding Headscale's database (both in ControlDroplet), and (as stack secrets) the noise
 * and DERP keys and the lighthouse's Nebula key. The droplet, its SSH key, firewall and
 * attachments are replaceable: a rebuilt droplet boots from the same cloud-init (the plan's),
 * mounts the same volume, answers on the same IP with the same keys, so no node re-enrolls. The
 * same files are delivered over SSH, so a config change updates the running server instead of
 * replacing it, and a rebuilt droplet's files are checked again by those steps (they re-run on a
 * new droplet id).
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

        let connection: StepConnection;
        let machineReady: pulumi.Resource[] = [];
        if (isDropletPlan(plan)) {
            const host = plan.host;
            // Its DigitalOcean objects, under the same name: they keep their names and URNs.
            const droplet = new ControlDroplet(name, { host, cloudInit: plan.cloudInit, formerParent: this }, { parent: this });
            this.publicIp = droplet.publicIp;
            this.dropletId = droplet.dropletId;
            // Every step reaches the droplet with the program's key, adopted or built, so dropping
            // `adopt` after adoption changes no step. A droplet the program built knows that key;
            // an adopted one learns it first, over the operator's own key.
            connection = connectionArgs({ ...host.ssh, host: droplet.publicIp }, { privateKey: droplet.sshPrivateKey });
            machineReady = [...droplet.ready];
            if (host.adopt) {
                machineReady.push(
                    remoteStep(`${name}-authorize`, this, {
                        connection: connectionArgs({ ...host.ssh, host: droplet.publicIp }, args.credentials),
                        script: "control/authorize.sh",
                        stdin: droplet.sshPublicKey.apply((key) => framedPayload({ PUBLIC_KEY: key.trim() })),
                        after: droplet.ready,
                    }),
                );
            }
        } else {
            connection = connectionArgs(plan.host.ssh, args.credentials);
            this.publicIp = pulumi.output(plan.host.ssh.host);
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
            order.finish(step, deliverFiles(`${name}-${delivery.role}`, this, { connection, delivery, after: order.before(step), triggers: rebuilt }).files);
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
