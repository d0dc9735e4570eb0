import * as ipaddr from "ipaddr.js";

/** An IPv4 network as parsed once, so overlap and membership checks don't re-parse strings. */
export interface Ipv4Network {
    readonly cidr: string;
    readonly base: ipaddr.IPv4;
    readonly prefixLength: number;
}

export function isIpv4Address(value: string): boolean {
    return ipaddr.IPv4.isValidFourPartDecimal(value);
}

export function isIpv4Cidr(value: string): boolean {
    return ipaddr.IPv4.isValidCIDRFourPartDecimal(value);
}

/** True when the CIDR names its network address (10.42.0.0/16, not 10.42.1.0/16). */
export function isNetworkAddress(cidr: string): boolean {
    const [base] = ipaddr.IPv4.parseCIDR(cidr);
    return ipaddr.IPv4.networkAddressFromCIDR(cidr).toString() === base.toString();
}

export function parseIpv4Network(cidr: string): Ipv4Network {
    const [base, prefixLength] = ipaddr.IPv4.parseCIDR(cidr);
    return { cidr, base, prefixLength };
}

export function networkContainsAddress(network: Ipv4Network, address: string): boolean {
    return ipaddr.IPv4.parse(address).match(network.base, network.prefixLength);
}

/** Two networks overlap exactly when the shorter prefix contains the other's base address. */
export function networksOverlap(a: Ipv4Network, b: Ipv4Network): boolean {
    const shorter = a.prefixLength <= b.prefixLength ? a : b;
    const longer = shorter === a ? b : a;
    return longer.base.match(shorter.base, shorter.prefixLength);
}

/** True when `inner` lies wholly inside `outer`. */
export function networkWithin(inner: Ipv4Network, outer: Ipv4Network): boolean {
    return inner.prefixLength >= outer.prefixLength && inner.base.match(outer.base, outer.prefixLength);
}

/** The network's address or broadcast address: never a host's address. */
export function isNetworkOrBroadcast(network: Ipv4Network, address: string): boolean {
    if (network.prefixLength >= 31) {
        return false;
    }
    return ipaddr.IPv4.networkAddressFromCIDR(network.cidr).toString() === address || ipaddr.IPv4.broadcastAddressFromCIDR(network.cidr).toString() === address;
}

/** `10.67.1.5` in `10.67.0.0/16` → `10.67.1.5/16`: the address with its network's mask, as Nebula wants it. */
export function addressWithPrefix(address: string, network: Ipv4Network): string {
    return `${address}/${network.prefixLength}`;
}

/** 100.64.0.0/10: the CGNAT range every Tailscale/Headscale IPv4 prefix must sit inside. */
export const TAILNET_SUPERNET = parseIpv4Network("100.64.0.0/10");
