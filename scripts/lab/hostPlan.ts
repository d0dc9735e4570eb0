/** Turns the test's host specs into names, addresses and directories, rejecting bad specs before anything is created. */
import * as path from "node:path";
import { RUN_PREFIX, VETH_PREFIX } from "./constants";
import { cidrContains, intToIp, ipToInt, parseCidr, splitAddress } from "./ipv4";
import type { LabFleetOptions, LabHostSpec } from "./types";

export interface PlannedHost {
    spec: LabHostSpec;
    index: number;
    netns: string;
    veth: string;
    lan: string;
    tailnet: { address: string; prefix: number } | null;
    nebula: { address: string; prefix: number } | null;
    hostDir: string;
    rootDir: string;
}

/** LAN addresses are .11, .12, ... of the bridge network unless given; every address is unique across the fleet. */
export function planHosts(opts: LabFleetOptions, runId: string, runDir: string, bridgeCidr: string): PlannedHost[] {
    const cidr = parseCidr(bridgeCidr);
    const gateway = cidr.network + 1;
    const names = new Set<string>();
    const used = new Set<number>([gateway]);
    const overlay = new Set<string>();
    if (opts.hosts.length === 0) throw new Error("lab fleet: no hosts");
    for (const h of opts.hosts) if (h.lanAddress !== undefined) used.add(ipToInt(h.lanAddress));
    let next = cidr.network + 11;
    return opts.hosts.map((spec, index) => {
        if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(spec.name)) throw new Error(`lab fleet: bad host name ${JSON.stringify(spec.name)}`);
        if (names.has(spec.name)) throw new Error(`lab fleet: duplicate host name ${spec.name}`);
        names.add(spec.name);
        if (spec.role !== "server" && spec.role !== "agent") throw new Error(`lab fleet: ${spec.name}: role must be server or agent`);
        let lan: string;
        if (spec.lanAddress !== undefined) {
            const n = ipToInt(spec.lanAddress);
            if (!cidrContains(cidr, n) || n === cidr.network || n === cidr.network + cidr.size - 1 || n === gateway) {
                throw new Error(
                    `lab fleet: ${spec.name}: lanAddress ${spec.lanAddress} must be a host address of ${bridgeCidr} other than the gateway ${intToIp(gateway)}`,
                );
            }
            lan = spec.lanAddress;
        } else {
            while (used.has(next)) next++;
            if (next >= cidr.network + cidr.size - 1) throw new Error(`lab fleet: ${bridgeCidr} has no room for ${opts.hosts.length} hosts`);
            used.add(next);
            lan = intToIp(next);
        }
        const tailnet = spec.tailnetAddress !== undefined ? splitAddress(spec.tailnetAddress, 32) : null;
        const nebula = spec.nebulaAddress !== undefined ? splitAddress(spec.nebulaAddress, 16) : null;
        for (const a of [lan, tailnet?.address, nebula?.address]) {
            if (a === undefined) continue;
            if (overlay.has(a)) throw new Error(`lab fleet: address ${a} used twice`);
            overlay.add(a);
        }
        if (spec.nebulaIface !== undefined && !/^[a-z][a-z0-9]{0,14}$/.test(spec.nebulaIface))
            throw new Error(`lab fleet: bad nebulaIface ${spec.nebulaIface}`);
        if (spec.login !== undefined) {
            if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(spec.login.user) || spec.login.user === "root")
                throw new Error(`lab fleet: ${spec.name}: login.user must be a POSIX user name other than root`);
            if (!["nopasswd", "password", "refused", "missing"].includes(spec.login.sudo))
                throw new Error(`lab fleet: ${spec.name}: login.sudo must be nopasswd, password, refused or missing`);
        }
        const hostDir = path.join(runDir, "hosts", spec.name);
        return {
            spec,
            index,
            netns: `${RUN_PREFIX}${runId}-${spec.name}`,
            veth: `${VETH_PREFIX}${runId}-${index}`,
            lan,
            tailnet,
            nebula,
            hostDir,
            rootDir: path.join(hostDir, "root"),
        };
    });
}
