/**
 * The `ip` side of the lab: listing and removing what a run made in the root namespace, picking
 * a free bridge network, the bridge itself, and each host's links, overlay stand-ins and routes.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { LAB_RANGE } from "./constants";
import { cidrOverlaps, intToIp, parseCidr, type Cidr } from "./ipv4";
import type { PlannedHost } from "./hostPlan";
import { which } from "./prerequisites";
import { runOk } from "./processes";

export function ipPath(): string {
    return which("ip") ?? "ip";
}

export function netnsPids(ns: string): number[] {
    try {
        return execFileSync(ipPath(), ["netns", "pids", ns], { encoding: "utf8", timeout: 5000, stdio: ["ignore", "pipe", "ignore"] })
            .split(/\s+/)
            .filter((s) => /^\d+$/.test(s))
            .map(Number);
    } catch {
        return [];
    }
}

export function listNetns(): string[] {
    try {
        return execFileSync(ipPath(), ["netns", "list"], { encoding: "utf8", timeout: 5000, stdio: ["ignore", "pipe", "ignore"] })
            .split("\n")
            .map((l) => l.split(" ")[0] ?? "")
            .filter((s) => s !== "");
    } catch {
        return [];
    }
}

export function listLinks(): string[] {
    try {
        const raw = JSON.parse(execFileSync(ipPath(), ["-j", "link", "show"], { encoding: "utf8", timeout: 5000 })) as { ifname?: string }[];
        return raw.map((l) => l.ifname ?? "").filter((s) => s !== "");
    } catch {
        return [];
    }
}

export function quiet(args: string[]): void {
    try {
        execFileSync(ipPath(), args, { timeout: 5000, stdio: "ignore" });
    } catch {
        // already gone
    }
}

/**
 * The requested bridge CIDR (checked: inside LAB_RANGE, no clash with any route on this
 * machine) or a free /24 of LAB_RANGE, tried from a place derived from the run id so parallel
 * runs rarely pick the same one.
 */
export function chooseBridgeCidr(runId: string, requested: string | undefined): string {
    const range = parseCidr(LAB_RANGE);
    const taken: Cidr[] = [];
    try {
        const routes = JSON.parse(execFileSync(ipPath(), ["-j", "-4", "route", "show", "table", "all"], { encoding: "utf8", timeout: 5000 })) as {
            dst?: string;
        }[];
        for (const r of routes) {
            if (r.dst === undefined || r.dst === "default") continue;
            try {
                taken.push(parseCidr(r.dst.includes("/") ? r.dst : `${r.dst}/32`));
            } catch {
                // not IPv4
            }
        }
    } catch {
        // no routes to compare against
    }
    if (requested !== undefined) {
        const c = parseCidr(requested);
        if (c.network < range.network || c.network + c.size > range.network + range.size) {
            throw new Error(`lab fleet: bridgeCidr ${requested} must lie inside ${LAB_RANGE} (the bridge lives in the root namespace)`);
        }
        if (c.prefix < 16 || c.prefix > 29) throw new Error(`lab fleet: bridgeCidr ${requested}: prefix must be 16..29`);
        const clash = taken.find((t) => cidrOverlaps(t, c));
        if (clash) {
            throw new Error(
                `lab fleet: bridgeCidr ${requested} overlaps an existing route ${intToIp(clash.network)}/${clash.prefix} (another lab run? cleanupStaleLab() removes dead ones)`,
            );
        }
        return `${intToIp(c.network)}/${c.prefix}`;
    }
    const count = range.size / 256;
    const start = parseInt(runId, 16) % count;
    for (let i = 0; i < count; i++) {
        const net = range.network + ((start + i) % count) * 256;
        const c: Cidr = { network: net, prefix: 24, size: 256 };
        if (!taken.some((t) => cidrOverlaps(t, c))) return `${intToIp(net)}/24`;
    }
    throw new Error(`lab fleet: no free /24 left in ${LAB_RANGE}`);
}

/** The run's bridge in the root namespace, holding the gateway address (IPv6 off: no autoconf noise). */
export async function createBridge(ip: string, bridge: string, gatewayAddress: string, prefix: number): Promise<void> {
    await runOk(ip, ["link", "add", bridge, "type", "bridge"]);
    try {
        fs.writeFileSync(`/proc/sys/net/ipv6/conf/${bridge}/disable_ipv6`, "1");
    } catch {
        // IPv6 disabled already
    }
    await runOk(ip, ["addr", "add", `${gatewayAddress}/${prefix}`, "dev", bridge]);
    await runOk(ip, ["link", "set", bridge, "up"]);
}

/**
 * The host's network namespace: a veth into the bridge (eth0 inside), tun devices standing in
 * for tailscale0 and the Nebula interface, and host routes to the peers' overlay addresses via
 * their LAN address, so overlay addresses answer between hosts without any overlay running.
 */
export async function createHostNetwork(
    ip: string,
    h: PlannedHost,
    planned: readonly PlannedHost[],
    bridge: string,
    prefix: number,
    peerRoutes: boolean,
): Promise<void> {
    const nebulaIface = h.spec.nebulaIface ?? "nebula1";
    await runOk(ip, ["netns", "add", h.netns]);
    await runOk(ip, ["link", "add", h.veth, "mtu", String(h.spec.lanMtu ?? 1500), "type", "veth", "peer", "name", "eth0", "netns", h.netns]);
    try {
        fs.writeFileSync(`/proc/sys/net/ipv6/conf/${h.veth}/disable_ipv6`, "1");
    } catch {
        // fine
    }
    await runOk(ip, ["link", "set", h.veth, "master", bridge, "up"]);
    const batch: string[] = ["link set lo up", `addr add ${h.lan}/${prefix} dev eth0`, `link set eth0 mtu ${h.spec.lanMtu ?? 1500} up`];
    if (h.tailnet) {
        batch.push(
            "tuntap add dev tailscale0 mode tun",
            `addr add ${h.tailnet.address}/${h.tailnet.prefix} dev tailscale0`,
            `link set tailscale0 mtu ${h.spec.tailnetMtu ?? 1280} up`,
        );
    }
    if (h.nebula) {
        batch.push(
            `tuntap add dev ${nebulaIface} mode tun`,
            `addr add ${h.nebula.address}/${h.nebula.prefix} dev ${nebulaIface}`,
            `link set ${nebulaIface} mtu ${h.spec.nebulaMtu ?? 1300} up`,
        );
    }
    if (peerRoutes) {
        for (const peer of planned) {
            if (peer === h) continue;
            if (peer.tailnet) batch.push(`route add ${peer.tailnet.address}/32 via ${peer.lan} dev eth0${h.tailnet ? ` src ${h.tailnet.address}` : ""}`);
            if (peer.nebula) batch.push(`route add ${peer.nebula.address}/32 via ${peer.lan} dev eth0${h.nebula ? ` src ${h.nebula.address}` : ""}`);
        }
    }
    await runOk(ip, ["-n", h.netns, "-batch", "-"], batch.join("\n") + "\n");
}
