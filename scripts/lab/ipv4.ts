/** IPv4 arithmetic for picking bridge networks and host addresses (no dependency for a few lines). */

export function ipToInt(ip: string): number {
    const parts = ip.split(".");
    if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) throw new Error(`not an IPv4 address: ${ip}`);
    return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function intToIp(n: number): string {
    return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}

export interface Cidr {
    network: number;
    prefix: number;
    size: number;
}

export function parseCidr(cidr: string): Cidr {
    const [addr, len, extra] = cidr.split("/");
    if (addr === undefined || len === undefined || extra !== undefined || !/^\d+$/.test(len) || Number(len) > 32) {
        throw new Error(`not an IPv4 CIDR: ${cidr}`);
    }
    const prefix = Number(len);
    const size = 2 ** (32 - prefix);
    const network = Math.floor(ipToInt(addr) / size) * size;
    return { network, prefix, size };
}

export function cidrContains(c: Cidr, ip: number): boolean {
    return ip >= c.network && ip < c.network + c.size;
}

export function cidrOverlaps(a: Cidr, b: Cidr): boolean {
    return a.network < b.network + b.size && b.network < a.network + a.size;
}

/** "10.67.0.1/16" or "10.67.0.1" (then defaultPrefix) as address and prefix. */
export function splitAddress(value: string, defaultPrefix: number): { address: string; prefix: number } {
    const [address = "", len] = value.split("/");
    ipToInt(address);
    const prefix = len === undefined ? defaultPrefix : Number(len);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new Error(`bad prefix in ${value}`);
    return { address, prefix };
}
