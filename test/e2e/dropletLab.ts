import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Raw } from "../support/fixtures";
import type { LabFleet, LabHost } from "../../scripts/lab";
import { CONTROL, freeBridgePrefix, startLabStack, type LabStack } from "../../scripts/lab/stack/labStack";
import { PulumiStack, type RunResult } from "../../scripts/lab/stack/engine";
import { startApiDouble } from "./digitalocean/apiDouble";

export type DoApiDouble = Awaited<ReturnType<typeof startApiDouble>>;
export type DoApiCall = DoApiDouble["calls"][number];

/*
 * The lab stack with its control server on a DigitalOcean droplet, for the adoption and
 * rebuild scenarios (test/e2e/adoption.test.ts, issue 21), on the real engine:
 *
 *   - the real Pulumi CLI/engine and language host, the DigitalOcean provider TEST DOUBLE
 *     (scripts/lab/provider-doubles/digitalocean; SHORTCIRCUIT_PULUMI_PLUGINS swaps in a real
 *     pulumi-resource-digitalocean) talking to the loopback DigitalOcean API TEST DOUBLE
 *     (test/e2e/digitalocean/apiDouble.ts), one API double per "account";
 *   - a minimal lab fleet (the genesis and CONTROL, no relay, no edge, no API server), where
 *     CONTROL is not a fleet node but the machine that PLAYS THE DROPLET: the API double's
 *     reserved-IP pool is CONTROL's LAN address, so the program's control steps reach it over
 *     real SSH at the reserved IP.
 *
 * How DigitalOcean's droplet life cycle is EMULATED on CONTROL (DropletMachine below; this is
 * our stand-in, not DigitalOcean): when the API double creates a droplet, CONTROL becomes that
 * droplet: root's authorized_keys become exactly the droplet's SSH keys (the account keys its
 * create request named, as DigitalOcean puts them into the image's root account) and the files
 * the program's SSH steps deliver are wiped (/etc/headscale, /etc/nebula, nebula's unit,
 * /var/lib/shortcircuit, /etc/shortcircuit, the /etc/fstab line, the service-manager stand-in's
 * state), so it looks like a fresh machine. Deleting the droplet CONTROL plays wipes it again
 * and leaves root no key. Kept: Headscale's and Nebula's binaries (the tool stand-ins report
 * the pinned versions) and headscale.service, as cloud-init's run of the bootstrap would have
 * installed them (user data is recorded by the API double, NOT executed), and
 * /var/lib/headscale, which stands for the volume's content. A volume's
 * /dev/disk/by-id/scsi-0DO_Volume_<name> exists on CONTROL while the volume is attached to the
 * played droplet (polled from the double's state). A seeded droplet (an operator's running
 * server) is played as CONTROL is, without a wipe.
 */

export interface DoAccount {
    api: DoApiDouble;
    /** Stack config that points the provider at this account's API double. */
    config: Record<string, string>;
    secrets: Record<string, string>;
}

export interface DropletLab {
    lab: LabStack;
    fleet: LabFleet;
    control: LabHost;
    machine: DropletMachine;
    account: DoAccount;
    /** The operator's SSH public key (the lab fleet's key; `shortcircuit:sshPrivateKey` holds its private half). */
    operatorPublicKey: string;
    /** Stops the current API double and starts a new, empty one (a second account); CONTROL keeps its files. */
    newAccount(): Promise<DoAccount>;
    /** A stack of the program for the current account (same secrets as the lab's). */
    newStack(name: string, fleet: Raw): Promise<PulumiStack>;
    /** An API call as doctl would make it (seeding, out-of-band changes); logged like every call. */
    doctl<T = Raw>(method: string, apiPath: string, body?: unknown): Promise<{ status: number; body: T }>;
    stop(): Promise<void>;
}

/** "POST /v2/volumes/<id>/actions attach": method, path and the action type, for comparing call logs. */
export function describeCall(call: DoApiCall): string {
    const type = call.body && typeof call.body === "object" && "type" in call.body ? ` ${String((call.body as { type: unknown }).type)}` : "";
    return `${call.method} ${call.path.split("?")[0]}${type}`;
}

/** Calls that change something (every method but GET/HEAD). */
export function writesOf(calls: readonly DoApiCall[]): DoApiCall[] {
    return calls.filter((call) => call.method !== "GET" && call.method !== "HEAD");
}

export async function startDropletLab(options: { readyTimeoutSeconds: number }): Promise<DropletLab> {
    const prefix = freeBridgePrefix();
    const reservedIp = `${prefix}.3`;
    // Set once the lab is up; the hooks of every account's double go to it.
    const machine: { current?: DropletMachine } = {};
    const startAccount = async (): Promise<DoAccount> => {
        const api = await startApiDouble({
            reservedIpPool: [reservedIp],
            // Awaited by the double before the droplet turns active: the machine is ready first.
            onDropletCreated: (droplet, publicKeys) => machine.current?.created(Number(droplet.id), publicKeys),
            onDropletDeleted: (droplet) => machine.current?.deleted(Number(droplet.id)),
        });
        return { api, config: { "digitalocean:apiEndpoint": api.url }, secrets: { "digitalocean:token": api.token } };
    };
    let account = await startAccount();
    let lab: LabStack;
    try {
        lab = await startLabStack({
            stack: "fresh",
            readyTimeoutSeconds: options.readyTimeoutSeconds,
            bridgePrefix: prefix,
            controlHost: "droplet",
            minimal: true,
            stackConfig: account.config,
            stackSecrets: account.secrets,
        });
    } catch (error) {
        await account.api.stop();
        throw error;
    }
    const control = lab.fleet.host(CONTROL);
    if (control.lanAddress !== reservedIp) throw new Error(`${CONTROL} is at ${control.lanAddress}, not the reserved IP ${reservedIp}`);
    const played = new DropletMachine(lab.fleet, control);
    machine.current = played;
    // A volume's device follows its attachment (the double has no hook for attach/detach): polled.
    const devices = setInterval(() => played.syncDevices(account.api.state()), 200);
    const operatorPublicKey = fs.readFileSync(`${lab.fleet.privateKeyPath}.pub`, "utf8").trim();
    return {
        lab,
        fleet: lab.fleet,
        control,
        machine: played,
        get account() {
            return account;
        },
        operatorPublicKey,
        newAccount: async () => {
            await account.api.stop();
            played.forget();
            account = await startAccount();
            return account;
        },
        newStack: async (name, fleet) => {
            const stack = new PulumiStack({
                runDir: lab.runDir,
                engine: lab.engine,
                stack: name,
                fleet,
                secrets: { ...lab.secrets, ...account.secrets },
                config: account.config,
            });
            await stack.init();
            return stack;
        },
        doctl: async (method, apiPath, body) => {
            const response = await fetch(`${account.api.url}${apiPath}`, {
                method,
                headers: { Authorization: `Bearer ${account.api.token}`, "Content-Type": "application/json", "User-Agent": "doctl (e2e operator)" },
                ...(body === undefined ? {} : { body: JSON.stringify(body) }),
            });
            const text = await response.text();
            return { status: response.status, body: (text ? JSON.parse(text) : {}) as never };
        },
        stop: async () => {
            clearInterval(devices);
            await account.api.stop();
            await lab.stop();
        },
    };
}

/** CONTROL playing a droplet (see the header). */
export class DropletMachine {
    /** The droplet CONTROL plays now (undefined: none). */
    played: number | undefined;
    /** Droplets CONTROL played, in order, with the keys they got and whether CONTROL was wiped for them. */
    readonly history: { dropletId: number; keys: string[]; wiped: boolean }[] = [];

    constructor(
        readonly fleet: LabFleet,
        readonly host: LabHost,
    ) {}

    /** A new droplet: CONTROL becomes it, a fresh machine that knows only the droplet's keys. */
    created(dropletId: number, publicKeys: readonly string[]): void {
        this.wipe();
        this.setAuthorizedKeys(publicKeys);
        this.played = dropletId;
        this.history.push({ dropletId, keys: publicKeys.map((key) => key.trim()), wiped: true });
    }

    /** A deleted droplet: when CONTROL played it, nothing is left of it there. */
    deleted(dropletId: number): void {
        if (dropletId !== this.played) return;
        this.wipe();
        this.setAuthorizedKeys([]);
        this.played = undefined;
    }

    /** An operator's running droplet (seeded in the API double): CONTROL, as it is, is that server; root knows `publicKeys`. */
    seeded(dropletId: number, publicKeys: readonly string[]): void {
        this.setAuthorizedKeys(publicKeys);
        this.played = dropletId;
        this.history.push({ dropletId, keys: publicKeys.map((key) => key.trim()), wiped: false });
    }

    /** A new account: CONTROL plays none of its droplets yet (and keeps its files). */
    forget(): void {
        this.played = undefined;
    }

    /** /dev/disk/by-id/scsi-0DO_Volume_<name> exists exactly for the volumes attached to the played droplet. */
    syncDevices(state: { volumes: { name: string; droplet_ids?: number[]; dropletIds?: number[] }[] }): void {
        const byId = this.fleet.hostPath(this.host, "/dev/disk/by-id");
        const attached = (volume: { droplet_ids?: number[]; dropletIds?: number[] }): number[] => (volume.droplet_ids ?? volume.dropletIds ?? []).map(Number);
        const wanted = new Set(
            state.volumes
                .filter((volume) => this.played !== undefined && attached(volume).includes(this.played))
                .map((volume) => `scsi-0DO_Volume_${volume.name}`),
        );
        for (const entry of fs.readdirSync(byId)) if (!wanted.has(entry)) fs.rmSync(path.join(byId, entry), { force: true });
        for (const entry of wanted) if (!fs.existsSync(path.join(byId, entry))) fs.writeFileSync(path.join(byId, entry), "");
    }

    /** root's authorized_keys on CONTROL now. */
    authorizedKeys(): string[] {
        return this.inHost("cat /root/.ssh/authorized_keys 2>/dev/null || true")
            .split("\n")
            .map((line) => line.trim())
            .filter((line) => line !== "");
    }

    private setAuthorizedKeys(keys: readonly string[]): void {
        this.inHost(
            "install -d -m 0700 /root/.ssh && cat > /root/.ssh/authorized_keys && chmod 0600 /root/.ssh/authorized_keys",
            keys.map((key) => `${key.trim()}\n`).join(""),
        );
    }

    private wipe(): void {
        for (const dir of ["/etc/headscale", "/etc/nebula", "/var/lib/shortcircuit", "/etc/shortcircuit"]) {
            const outside = this.fleet.hostPath(this.host, dir);
            for (const entry of fs.readdirSync(outside)) fs.rmSync(path.join(outside, entry), { recursive: true, force: true });
        }
        fs.rmSync(this.fleet.hostPath(this.host, "/etc/systemd/system/nebula.service"), { force: true });
        fs.rmSync(path.join(this.host.doubleStateDir, "services.json"), { force: true });
        this.inHost("sed -i '\\# /var/lib/headscale #d' /etc/fstab");
    }

    /** bash in CONTROL's mount namespace (its /etc and /root overlays), synchronously. */
    private inHost(script: string, stdin = ""): string {
        return execFileSync("nsenter", ["-t", String(this.host.pid), "-m", "-u", "--", "/bin/bash", "-c", `set -euo pipefail\n${script}`], {
            input: stdin,
            encoding: "utf8",
            timeout: 10_000,
        });
    }
}

export function expectRun(result: RunResult): void {
    if (result.code !== 0) throw new Error(`pulumi exited ${result.code}${result.timedOut ? " (timed out)" : ""}:\n${result.output.slice(-8000)}`);
}
