/*
 * A synthetic fleet of any size, shaped like prod (three servers, GPU-tainted agents,
 * standalone relay), with unique addresses on every overlay. Used by the benchmark; a
 * test keeps it valid so the benchmark never measures a rejected config.
 */

const SITES = ["toa", "aus", "lax", "hnd", "sea", "ord", "jfk", "ams"] as const;

function octets(index: number): [number, number] {
    return [Math.floor(index / 250), (index % 250) + 2];
}

export function syntheticRawFleet(nodeCount: number): Record<string, unknown> {
    if (nodeCount < 4 || nodeCount > 60000) {
        throw new Error(`synthetic fleet size ${nodeCount} is outside 4..60000`);
    }
    const sites = SITES.map((name, index) => ({ name, lan: `172.${16 + index}.0.0/16` }));
    const nodes = Array.from({ length: nodeCount }, (_, index) => {
        const siteIndex = index % SITES.length;
        const [high, low] = octets(index);
        const isRelay = index === nodeCount - 1;
        const role = isRelay ? "standalone" : index < 3 ? "server" : "agent";
        return {
            name: `${SITES[siteIndex]}-node-${String(index).padStart(5, "0")}`,
            site: SITES[siteIndex],
            role,
            genesis: index === 0,
            arch: index % 3 === 0 ? "amd64" : "arm64",
            os: "debian",
            lan: { interface: "eth0", address: `172.${16 + siteIndex}.${high}.${low}` },
            tailnet: { address: `100.67.${high}.${low}` },
            nebula: isRelay
                ? { address: `10.67.${high}.${low}`, lighthouse: true, publicEndpoint: "relay.example.net:4242" }
                : { address: `10.67.${high}.${low}` },
            taints: role === "agent" && index % 5 === 0 ? ["amd.com/gpu=true:NoSchedule"] : [],
            labels: { "topology.kubernetes.io/region": SITES[siteIndex] },
        };
    });
    const relay = nodes[nodes.length - 1];
    return {
        sites,
        overlays: {
            tailnet: { prefix: "100.67.0.0/16", mtu: 1280 },
            nebula: { network: "10.67.0.0/16", mtu: 1300, pki: { caIssuedOn: "2026-11-01" } },
        },
        cluster: { name: "synthetic", nodeIpFrom: "tailnet", flannelIfaceFrom: "tailnet", apiDnsNames: ["k3s.example.net"] },
        nodes,
        controlServer: {
            hostname: "hs.example.net",
            magicDnsBaseDomain: "ts.example.net",
            derp: { regionId: 900, regionCode: "sfo3", regionName: "SFO3" },
            nebula: { address: "10.67.255.1" },
            host: { kind: "droplet", name: "synthetic-sfo3", region: "sfo3", size: "s-1vcpu-1gb", image: "debian-12-x64", adminCidrs: ["198.51.100.10/32"] },
        },
        derpRelays: [
            {
                host: relay.name,
                hostname: "relay.example.net",
                regionId: 901,
                regionCode: "relay",
                regionName: "Relay",
                serviceManager: "systemd",
                certMode: "self-signed",
            },
        ],
    };
}
