import {
    addressOn,
    flannelPath,
    generatedCaPolicy,
    generatedCaValidity,
    generatedNebulaCaGenerations,
    isK3sNode,
    nebulaCaLabel,
    nebulaCaPlan,
    nebulaCaRefEquals,
    nodeIpPath,
    sshPath,
} from "./fleet";
import {
    TAILNET_SUPERNET,
    isIpv4Address,
    isNetworkOrBroadcast,
    networkContainsAddress,
    networksOverlap,
    networkWithin,
    parseIpv4Network,
    type Ipv4Network,
} from "./net";
import type { Fleet, NetworkPath } from "./schema";

/*
 * Cross-field guards, run on a fleet that already passed the schema. Each guard turns one
 * incident from ../shared/background into an error (or a warning) naming the config path.
 */

export interface Problem {
    /** Config path such as `fleet.nodes[3].nebula.address`. */
    path: string;
    message: string;
    severity: "error" | "warning";
}

/** Collects problems; guards push into it instead of throwing so every problem is reported at once. */
class ProblemList {
    readonly items: Problem[] = [];
    error(path: string, message: string): void {
        this.items.push({ path, message, severity: "error" });
    }
    warning(path: string, message: string): void {
        this.items.push({ path, message, severity: "warning" });
    }
}

const ROOT = "fleet";
/** The systems the control server's bootstrap (dpkg, apt-get, systemd) can serve. */
const DEBIAN_FAMILY: ReadonlySet<string> = new Set(["debian", "ubuntu", "raspios"]);
const MTU_FLOOR = 1280;

function nodePath(index: number, suffix?: string): string {
    return `${ROOT}.nodes[${index}]${suffix ? `.${suffix}` : ""}`;
}

/** A top-level section of the fleet config; the schema can pass or fail each on its own. */
export type FleetSection = keyof Fleet;

export interface GuardOptions {
    /** The clock for date guards (the CA's issue date); defaults to now. */
    now?: Date;
}

/**
 * The sections of a fleet that passed the schema, each with its parsed data. When one section
 * fails, the guards that read only the others still report in the same run.
 */
export type FleetSections = Partial<Fleet>;

/** A guard runs only when every section it reads is present. */
type Guard = (fleet: FleetSections, problems: ProblemList, now: Date) => void;

function hasSections<S extends FleetSection>(fleet: FleetSections, reads: readonly S[]): fleet is FleetSections & Pick<Fleet, S> {
    return reads.every((section) => fleet[section] !== undefined);
}

/**
 * A guard that is handed exactly the sections it lists: `check` takes `Pick<Fleet, S>`, so
 * reading a section it does not list does not compile (NoInfer: the list alone sets S).
 */
function guard<const S extends FleetSection>(reads: readonly S[], check: (fleet: Pick<Fleet, NoInfer<S>>, problems: ProblemList, now: Date) => void): Guard {
    return (fleet, problems, now) => {
        if (hasSections(fleet, reads)) {
            check(fleet, problems, now);
        }
    };
}

const GUARDS: readonly Guard[] = [
    guard(["sites", "nodes"], checkNamesAndReferences),
    guard(["overlays", "nodes", "derpRelays", "controlServer"], checkMtus),
    guard(["overlays", "cluster", "sites"], checkNetworks),
    guard(["overlays", "sites", "nodes", "controlServer"], checkAddresses),
    guard(["nodes", "cluster", "access"], checkNodePaths),
    guard(["nodes", "cluster"], checkEtcd),
    guard(["controlServer", "derpRelays", "nodes"], checkControlAndRelays),
    guard(["edge", "nodes", "cluster"], checkEdge),
    guard(["overlays", "nodes", "controlServer"], checkNebula),
    guard(["overlays"], checkNebulaDates),
    guard(["controlServer", "nodes"], checkFieldAgreement),
];

/** Runs every guard whose sections are all present (a whole fleet runs them all). */
export function runGuards(fleet: FleetSections, options: GuardOptions = {}): Problem[] {
    const problems = new ProblemList();
    const now = options.now ?? new Date();
    for (const check of GUARDS) {
        check(fleet, problems, now);
    }
    return problems.items;
}

function firstIndexByKey<T>(items: readonly T[], key: (item: T) => string, onDuplicate: (index: number, firstIndex: number) => void): Map<string, number> {
    const seen = new Map<string, number>();
    items.forEach((item, index) => {
        const value = key(item);
        const first = seen.get(value);
        if (first === undefined) {
            seen.set(value, index);
        } else {
            onDuplicate(index, first);
        }
    });
    return seen;
}

function checkNamesAndReferences(fleet: Pick<Fleet, "sites" | "nodes">, problems: ProblemList): void {
    const siteNames = firstIndexByKey(
        fleet.sites,
        (site) => site.name,
        (index) => problems.error(`${ROOT}.sites[${index}].name`, `site "${fleet.sites[index].name}" is declared twice`),
    );
    firstIndexByKey(
        fleet.nodes,
        (node) => node.name,
        (index, first) => problems.error(nodePath(index, "name"), `duplicate node name "${fleet.nodes[index].name}" (also fleet.nodes[${first}])`),
    );
    fleet.nodes.forEach((node, index) => {
        if (!siteNames.has(node.site)) {
            problems.error(nodePath(index, "site"), `unknown site "${node.site}"; declared sites: ${[...siteNames.keys()].join(", ")}`);
        }
    });
}

function checkMtus(fleet: Pick<Fleet, "overlays" | "nodes" | "derpRelays" | "controlServer">, problems: ProblemList): void {
    const floor = (path: string, mtu: number | undefined): void => {
        if (mtu !== undefined && mtu < MTU_FLOOR) {
            problems.error(path, `MTU ${mtu} is below the ${MTU_FLOOR} floor: SSH and TLS packets stop fitting (the Nebula MTU 1200 lockout)`);
        }
    };
    floor(`${ROOT}.overlays.tailnet.mtu`, fleet.overlays.tailnet.mtu);
    floor(`${ROOT}.overlays.nebula.mtu`, fleet.overlays.nebula.mtu);

    const relayHosts = new Set(fleet.derpRelays.map((relay) => relay.host));
    const agree = (path: string, who: string, mtu: number | undefined, overlay: "tailnet" | "nebula"): void => {
        const overlayMtu = fleet.overlays[overlay].mtu;
        floor(path, mtu);
        if (mtu !== undefined && mtu !== overlayMtu) {
            problems.error(
                path,
                `${who} has ${overlay} MTU ${mtu} but the ${overlay} runs at ${overlayMtu}: one MTU per overlay (a relay at 1300 under a 1350 mesh silently dropped TLS certificates)`,
            );
        }
    };
    fleet.nodes.forEach((node, index) => {
        const who = relayHosts.has(node.name) ? `relay host ${node.name}` : node.name;
        agree(nodePath(index, "tailnet.mtu"), who, node.tailnet?.mtu, "tailnet");
        agree(nodePath(index, "nebula.mtu"), who, node.nebula?.mtu, "nebula");
        floor(nodePath(index, "lan.mtu"), node.lan.mtu);
    });
    agree(`${ROOT}.controlServer.nebula.mtu`, "the control server", fleet.controlServer.nebula.mtu, "nebula");
}

interface NamedNetwork {
    path: string;
    label: string;
    network: Ipv4Network;
}

function checkNetworks(fleet: Pick<Fleet, "overlays" | "cluster" | "sites">, problems: ProblemList): void {
    const tailnet = parseIpv4Network(fleet.overlays.tailnet.prefix);
    if (!networkWithin(tailnet, TAILNET_SUPERNET)) {
        problems.error(`${ROOT}.overlays.tailnet.prefix`, `${tailnet.cidr} is outside 100.64.0.0/10, the only range Headscale hands out`);
    }
    const cluster: NamedNetwork[] = [
        { path: `${ROOT}.cluster.clusterCidr`, label: "cluster CIDR", network: parseIpv4Network(fleet.cluster.clusterCidr) },
        { path: `${ROOT}.cluster.serviceCidr`, label: "service CIDR", network: parseIpv4Network(fleet.cluster.serviceCidr) },
    ];
    const underlays: NamedNetwork[] = [
        { path: `${ROOT}.overlays.tailnet.prefix`, label: "the tailnet prefix", network: tailnet },
        { path: `${ROOT}.overlays.nebula.network`, label: "the Nebula network", network: parseIpv4Network(fleet.overlays.nebula.network) },
        ...fleet.sites.map((site, index) => ({
            path: `${ROOT}.sites[${index}].lan`,
            label: `the ${site.name} LAN`,
            network: parseIpv4Network(site.lan),
        })),
    ];
    // tailscaled's netfilter rules drop any packet from 100.64.0.0/10 that did not arrive on
    // tailscale0, whatever the configured prefix: pods, services, the mesh or a LAN there lose traffic.
    // (An overlap with the prefix itself is reported below, with the table 52 reason.)
    for (const other of [...cluster, ...underlays.slice(1)]) {
        if (networksOverlap(other.network, TAILNET_SUPERNET) && !networksOverlap(other.network, tailnet)) {
            problems.error(
                other.path,
                `${other.network.cidr} overlaps 100.64.0.0/10: tailscaled drops every packet from that range that does not arrive on the tailnet interface, whatever the tailnet prefix`,
            );
        }
    }
    if (networksOverlap(cluster[0].network, cluster[1].network)) {
        problems.error(cluster[1].path, `${cluster[1].network.cidr} overlaps the cluster CIDR ${cluster[0].network.cidr}`);
    }
    for (const inside of cluster) {
        for (const other of underlays) {
            if (networksOverlap(inside.network, other.network)) {
                problems.error(
                    inside.path,
                    `${inside.label} ${inside.network.cidr} overlaps ${other.label} ${other.network.cidr} (${other.path}): routes for it would shadow pod or service traffic (the table 52 incident)`,
                );
            }
        }
    }
    // The overlays and LANs must not overlap each other either, or a node cannot tell which link a peer is on.
    for (let i = 0; i < underlays.length; i++) {
        for (let j = i + 1; j < underlays.length; j++) {
            if (networksOverlap(underlays[i].network, underlays[j].network)) {
                problems.error(
                    underlays[j].path,
                    `${underlays[j].network.cidr} overlaps ${underlays[i].label} ${underlays[i].network.cidr} (${underlays[i].path})`,
                );
            }
        }
    }
}

interface AddressClaim {
    path: string;
    owner: string;
    address: string;
}

function checkAddresses(fleet: Pick<Fleet, "overlays" | "sites" | "nodes" | "controlServer">, problems: ProblemList): void {
    const tailnet = parseIpv4Network(fleet.overlays.tailnet.prefix);
    const nebula = parseIpv4Network(fleet.overlays.nebula.network);
    const siteLans = new Map(fleet.sites.map((site) => [site.name, parseIpv4Network(site.lan)]));

    const inside = (path: string, address: string, network: Ipv4Network, label: string): void => {
        if (!networkContainsAddress(network, address)) {
            problems.error(path, `${address} is outside ${label} ${network.cidr}`);
        } else if (isNetworkOrBroadcast(network, address)) {
            problems.error(path, `${address} is the network or broadcast address of ${label} ${network.cidr}`);
        }
    };

    const claims: Record<NetworkPath, AddressClaim[]> = { tailnet: [], nebula: [], lan: [] };
    fleet.nodes.forEach((node, index) => {
        if (node.tailnet) {
            inside(nodePath(index, "tailnet.address"), node.tailnet.address, tailnet, "the tailnet prefix");
            claims.tailnet.push({ path: nodePath(index, "tailnet.address"), owner: node.name, address: node.tailnet.address });
        }
        if (node.nebula) {
            inside(nodePath(index, "nebula.address"), node.nebula.address, nebula, "the Nebula network");
            claims.nebula.push({ path: nodePath(index, "nebula.address"), owner: node.name, address: node.nebula.address });
        }
        const lan = siteLans.get(node.site);
        if (lan) {
            inside(nodePath(index, "lan.address"), node.lan.address, lan, `the ${node.site} LAN`);
        }
        claims.lan.push({ path: nodePath(index, "lan.address"), owner: node.name, address: node.lan.address });
    });
    fleet.overlays.nebula.admins.forEach((admin, index) => {
        const path = `${ROOT}.overlays.nebula.admins[${index}].address`;
        inside(path, admin.address, nebula, "the Nebula network");
        claims.nebula.push({ path, owner: `admin ${admin.name}`, address: admin.address });
    });
    const control = fleet.controlServer;
    inside(`${ROOT}.controlServer.nebula.address`, control.nebula.address, nebula, "the Nebula network");
    claims.nebula.push({ path: `${ROOT}.controlServer.nebula.address`, owner: "the control server", address: control.nebula.address });

    for (const list of Object.values(claims)) {
        firstIndexByKey(
            list,
            (claim) => claim.address,
            (index, first) => problems.error(list[index].path, `${list[index].address} is a duplicate of ${list[first].owner} (${list[first].path})`),
        );
    }
}

function checkNodePaths(fleet: Pick<Fleet, "nodes" | "cluster" | "access">, problems: ProblemList): void {
    fleet.nodes.forEach((node, index) => {
        const needs = (path: NetworkPath, why: string, configPath: string): void => {
            if (addressOn(node, path) === undefined) {
                problems.error(configPath, `${node.name} takes ${why} from the ${path} but has no ${path} address (set ${nodePath(index, `${path}.address`)})`);
            }
        };
        if (isK3sNode(node)) {
            const ipPath = nodeIpPath(fleet, node);
            const ifacePath = flannelPath(fleet, node);
            needs(ipPath, "its node-ip", nodePath(index, node.nodeIpFrom ? "nodeIpFrom" : ipPath));
            needs(ifacePath, "its flannel interface", nodePath(index, node.flannelIfaceFrom ? "flannelIfaceFrom" : ifacePath));
        }
        if (node.ssh.host === undefined) {
            needs(sshPath(fleet, node), "its SSH address", nodePath(index, "ssh.via"));
        }
        if (node.nebula?.lighthouse && !node.nebula.publicEndpoint) {
            problems.error(nodePath(index, "nebula.publicEndpoint"), `lighthouse ${node.name} needs a public host:port other hosts can dial`);
        }
        if (node.genesis && node.role !== "server") {
            problems.error(nodePath(index, "genesis"), `${node.name} is the genesis but its role is ${node.role}; only a server can run cluster-init`);
        }
        if (isK3sNode(node) && node.os === "macos") {
            problems.error(
                nodePath(index, "os"),
                `${node.name} is a K3s ${node.role} on macOS: k3s and its rollout scripts (systemd, /etc/rancher) run only on Linux; make it standalone`,
            );
        }
        if (node.macos !== undefined && node.os !== "macos") {
            problems.error(nodePath(index, "macos"), `${node.name} runs ${node.os}; macos settings apply only to os: macos hosts`);
        } else if (node.macos?.adoptNebulaLabel !== undefined && node.nebula === undefined) {
            problems.error(
                nodePath(index, "macos.adoptNebulaLabel"),
                `${node.name} has no nebula membership, so the program runs no Nebula there to take over with`,
            );
        } else if (node.macos?.nebulaBinary !== undefined && node.nebula === undefined) {
            problems.error(nodePath(index, "macos.nebulaBinary"), `${node.name} has no nebula membership, so the program runs no Nebula there`);
        }
        if (node.role === "standalone" && (node.nodeIpFrom || node.flannelIfaceFrom || node.taints.length > 0)) {
            problems.error(nodePath(index, "role"), `${node.name} is standalone (not a K3s node) but sets node-ip, flannel or taint options`);
        }
    });
}

function checkEtcd(fleet: Pick<Fleet, "nodes" | "cluster">, problems: ProblemList): void {
    const serverCount = fleet.nodes.filter((node) => node.role === "server").length;
    const genesisCount = fleet.nodes.filter((node) => node.genesis).length;
    if (genesisCount === 0) {
        problems.error(`${ROOT}.nodes`, "no genesis server: exactly one server must set genesis: true (it runs cluster-init)");
    } else if (genesisCount > 1) {
        const names = fleet.nodes.filter((node) => node.genesis).map((node) => node.name);
        problems.error(`${ROOT}.nodes`, `${genesisCount} genesis servers (${names.join(", ")}): exactly one may run cluster-init`);
    }
    if (serverCount > 0 && serverCount % 2 === 0) {
        problems.warning(
            `${ROOT}.nodes`,
            `${serverCount} etcd servers: an even member count tolerates no more failures than ${serverCount - 1} and adds a vote that can split`,
        );
    }
    const { heartbeatIntervalMs, electionTimeoutMs } = fleet.cluster.etcd;
    if (electionTimeoutMs < 5 * heartbeatIntervalMs) {
        problems.error(
            `${ROOT}.cluster.etcd.electionTimeoutMs`,
            `${electionTimeoutMs} ms is under 5 × the ${heartbeatIntervalMs} ms heartbeat; etcd refuses to start`,
        );
    }
}

function checkControlAndRelays(fleet: Pick<Fleet, "controlServer" | "derpRelays" | "nodes">, problems: ProblemList): void {
    const control = fleet.controlServer;
    const regions = [
        { path: `${ROOT}.controlServer.derp`, regionId: control.derp.regionId, regionCode: control.derp.regionCode },
        ...fleet.derpRelays.map((relay, index) => ({ path: `${ROOT}.derpRelays[${index}]`, regionId: relay.regionId, regionCode: relay.regionCode })),
    ];
    firstIndexByKey(
        regions,
        (region) => String(region.regionId),
        (index, first) =>
            problems.error(`${regions[index].path}.regionId`, `DERP region id ${regions[index].regionId} is already used by ${regions[first].path}`),
    );
    firstIndexByKey(
        regions,
        (region) => region.regionCode,
        (index, first) =>
            problems.error(`${regions[index].path}.regionCode`, `DERP region code "${regions[index].regionCode}" is already used by ${regions[first].path}`),
    );
    const serverHost = control.hostname;
    if (serverHost === control.magicDnsBaseDomain || serverHost.endsWith(`.${control.magicDnsBaseDomain}`)) {
        problems.error(
            `${ROOT}.controlServer.magicDnsBaseDomain`,
            `${control.magicDnsBaseDomain} contains the Headscale server name ${serverHost}: MagicDNS would shadow it and clients lose the control server`,
        );
    }
    if (control.host.kind === "droplet" && control.host.adminCidrs.length === 0) {
        problems.error(
            `${ROOT}.controlServer.host.adminCidrs`,
            "list the CIDRs the program and operators SSH from: the droplet's firewall admits SSH only from these and the overlays, and a rebuilt droplet is reached over its public IP",
        );
    }
    if (control.host.kind === "existing") {
        const hostName = control.host.host;
        const host = fleet.nodes.find((node) => node.name === hostName);
        if (!host) {
            problems.error(`${ROOT}.controlServer.host.host`, `unknown fleet host "${hostName}"`);
        } else if (host.role !== "standalone") {
            problems.error(`${ROOT}.controlServer.host.host`, `${hostName} is a K3s ${host.role}; the control server must run on a standalone host`);
        } else if (!DEBIAN_FAMILY.has(host.os)) {
            problems.error(
                `${ROOT}.controlServer.host.host`,
                `${hostName} runs ${host.os}; the control server's bootstrap installs Headscale with dpkg/apt-get and runs it under systemd, so it needs debian, ubuntu or raspios`,
            );
        }
    }
    const controlHost = control.host.kind === "existing" ? control.host.host : undefined;
    fleet.derpRelays.forEach((relay, index) => {
        const host = fleet.nodes.find((node) => node.name === relay.host);
        const first = fleet.derpRelays.findIndex((other) => other.host === relay.host);
        if (!host) {
            problems.error(`${ROOT}.derpRelays[${index}].host`, `unknown fleet host "${relay.host}"`);
        } else if (first < index) {
            problems.error(
                `${ROOT}.derpRelays[${index}].host`,
                `${relay.host} already runs ${ROOT}.derpRelays[${first}]'s derper: one relay per host (both would be its one derper unit or job, on its ports)`,
            );
        } else if (relay.host === controlHost) {
            problems.error(
                `${ROOT}.derpRelays[${index}].host`,
                `${relay.host} is the control server's host, whose Headscale serves DERP region ${control.derp.regionId} itself: a relay there adds no path and would contend for its ports`,
            );
        } else if (relay.serviceManager === "launchd" && host.os !== "macos") {
            problems.error(`${ROOT}.derpRelays[${index}].serviceManager`, `launchd needs a macOS host; ${host.name} runs ${host.os}`);
        } else if (relay.serviceManager === "systemd" && host.os === "macos") {
            problems.error(`${ROOT}.derpRelays[${index}].serviceManager`, `systemd needs a Linux host; ${host.name} runs macOS (use launchd)`);
        }
        if (relay.adoptDerperLabel !== undefined && relay.serviceManager !== "launchd") {
            problems.error(
                `${ROOT}.derpRelays[${index}].adoptDerperLabel`,
                "only a launchd relay takes over an operator's job; under systemd the program writes its own unit in place",
            );
        }
    });
}

function checkEdge(fleet: Pick<Fleet, "edge" | "nodes" | "cluster">, problems: ProblemList): void {
    const known = new Set(fleet.nodes.map((node) => node.name));
    const edge = fleet.edge;
    edge.serviceLbNodes.forEach((name, index) => {
        if (!known.has(name)) {
            problems.error(`${ROOT}.edge.serviceLbNodes[${index}]`, `unknown fleet host "${name}"`);
        }
    });
    // Two objects with one kind, namespace and name are one Kubernetes object: the second would
    // silently replace (or be dropped in favour of) the first.
    const unique = <T extends { name: string; namespace: string }>(items: readonly T[], list: string, kindOf: (item: T) => string): void => {
        firstIndexByKey(
            items,
            (item) => `${kindOf(item)}/${item.namespace}/${item.name}`,
            (index, first) =>
                problems.error(
                    `${ROOT}.edge.${list}[${index}].name`,
                    `${kindOf(items[index])} ${items[index].namespace}/${items[index].name} is already declared by ${ROOT}.edge.${list}[${first}]`,
                ),
        );
    };
    unique(edge.middlewares, "middlewares", () => "Middleware");
    unique(edge.externalServices, "externalServices", () => "Service");
    unique(edge.workloads, "workloads", (workload) => workload.kind);
    edge.middlewares.forEach((middleware, index) => {
        const kinds = (["stripPrefix", "forwardAuth", "headers"] as const).filter((kind) => middleware[kind] !== undefined);
        if (kinds.length !== 1) {
            problems.error(
                `${ROOT}.edge.middlewares[${index}]`,
                `a middleware sets exactly one of stripPrefix, forwardAuth, headers; ${middleware.name} sets ${kinds.length === 0 ? "none" : kinds.join(", ")}`,
            );
        }
    });
    edge.externalServices.forEach((service, index) => {
        const path = `${ROOT}.edge.externalServices[${index}]`;
        if (service.type === "ExternalName" && !service.externalName) {
            problems.error(`${path}.externalName`, "an ExternalName service needs externalName");
        }
        if (service.type === "headless" && service.hosts.length === 0) {
            problems.error(`${path}.hosts`, "a headless service needs at least one fleet host behind it");
        }
        service.hosts.forEach((name, hostIndex) => {
            const host = fleet.nodes.find((node) => node.name === name);
            if (!host) {
                problems.error(`${path}.hosts[${hostIndex}]`, `unknown fleet host "${name}"`);
            } else if (addressOn(host, fleet.cluster.nodeIpFrom) === undefined) {
                problems.error(
                    `${path}.hosts[${hostIndex}]`,
                    `${name} has no ${fleet.cluster.nodeIpFrom} address: endpoints live on the overlay the cluster uses, so it would be an endpoint outside every overlay the cluster reaches`,
                );
            }
        });
        service.ports.forEach((port, portIndex) => {
            if (!port.name) {
                problems.error(
                    `${path}.ports[${portIndex}].name`,
                    "every port needs a name that the Service and EndpointSlice share (unnamed ports gave Traefik 'no available server')",
                );
            }
        });
    });
    edge.workloads.forEach((workload, index) => {
        if (workload.hostNetwork && /tailscale/i.test(workload.image)) {
            problems.error(
                `${ROOT}.edge.workloads[${index}].hostNetwork`,
                `${workload.name} would run Tailscale with hostNetwork: it rewrites the node's routes and iptables and took nodes off the network`,
            );
        }
    });
}

function checkNebula(fleet: Pick<Fleet, "overlays" | "nodes" | "controlServer">, problems: ProblemList): void {
    const nebula = fleet.overlays.nebula;
    const pki = nebula.pki;
    const pkiPath = `${ROOT}.overlays.nebula.pki`;
    const cas = nebulaCaPlan(pki);
    const generated = generatedNebulaCaGenerations(pki);
    if (cas.trusted.length === 2 && nebulaCaRefEquals(cas.trusted[0], cas.trusted[1])) {
        const target = pki.ca === "existing" ? 'ca "existing"' : `caGeneration ${pki.caGeneration}`;
        problems.error(`${pkiPath}.rotation.from`, `is the CA the rotation goes to (${target}): name the CA being retired, and the new one in ca/caGeneration`);
    }
    for (const key of ["fromCaIssuedOn", "fromCaValidityDays"] as const) {
        if (pki.rotation?.from === "existing" && pki.rotation[key] !== undefined) {
            problems.error(`${pkiPath}.rotation.${key}`, "applies only when rotation.from is a generation: the existing CA's dates come from its certificate");
        }
    }
    if (generated.length > 0 && pki.caIssuedOn === undefined) {
        problems.error(
            `${pkiPath}.caIssuedOn`,
            `required while the program makes a CA (ca "generated", or rotation.from a generation number): it is that CA certificate's notBefore`,
        );
    }
    if (generated.length > 0 && pki.certValidityDays > pki.caValidityDays) {
        problems.error(
            `${ROOT}.overlays.nebula.pki.certValidityDays`,
            `${pki.certValidityDays} days is longer than the CA's ${pki.caValidityDays}: a host certificate must expire before its CA`,
        );
    }
    if (pki.renewBeforeDays >= pki.certValidityDays) {
        problems.error(
            `${ROOT}.overlays.nebula.pki.renewBeforeDays`,
            `${pki.renewBeforeDays} days is not shorter than the ${pki.certValidityDays}-day certificate lifetime: every run would reissue`,
        );
    }
    // Group names are checked by the schema (NebulaGroupSchema), with the certificate encoder's rule.
    const nodeNames = new Set(fleet.nodes.map((node) => node.name));
    nebula.admins.forEach((admin, index) => {
        if (nodeNames.has(admin.name)) {
            problems.error(`${ROOT}.overlays.nebula.admins[${index}].name`, `"${admin.name}" is already a fleet node; Nebula names must be unique`);
        }
    });
    const control = fleet.controlServer;
    if (control.host.kind === "droplet" && nodeNames.has(control.host.name)) {
        problems.error(`${ROOT}.controlServer.host.name`, `"${control.host.name}" is already a fleet node; Nebula names must be unique`);
    }
    if (control.host.kind === "existing") {
        const hostName = control.host.host;
        const index = fleet.nodes.findIndex((node) => node.name === hostName);
        if (index >= 0 && fleet.nodes[index].nebula) {
            problems.error(
                nodePath(index, "nebula"),
                `${hostName} runs the control server, whose Nebula identity is fleet.controlServer.nebula; remove the node's own nebula section`,
            );
        }
    }
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** Clock skew and time zones: a CA issued "today" somewhere may be tomorrow in UTC. */
const FUTURE_GRACE_DAYS = 1;
/** Nebula, Go and ISO 8601 all handle four-digit years; past 9999 dates stop round-tripping. */
const LAST_REPRESENTABLE = Date.UTC(9999, 11, 31, 23, 59, 59);

function checkNebulaDates(fleet: Pick<Fleet, "overlays">, problems: ProblemList, now: Date): void {
    const pki = fleet.overlays.nebula.pki;
    const path = `${ROOT}.overlays.nebula.pki`;
    if (pki.caIssuedOn === undefined) {
        return;
    }
    const issued = Date.parse(`${pki.caIssuedOn}T00:00:00Z`);
    if (issued > now.getTime() + FUTURE_GRACE_DAYS * DAY_MS) {
        problems.error(
            `${path}.caIssuedOn`,
            `${pki.caIssuedOn} is in the future: Nebula rejects a CA before its notBefore, so no host could connect until then; use today's date or earlier`,
        );
    }
    if (issued + pki.caValidityDays * DAY_MS > LAST_REPRESENTABLE) {
        problems.error(
            `${path}.caValidityDays`,
            `${pki.caValidityDays} days from ${pki.caIssuedOn} ends after the year 9999, which certificates cannot express`,
        );
        return;
    }
    // The signing CA's certificate is a function of its key and these dates, so its expiry is
    // known here, before any resource: an expired signer fails the run (the operator's own CA
    // is checked the same way when its secret is read, stacks/load.ts).
    const signer = nebulaCaPlan(pki).signer;
    const policy = signer.kind === "generated" ? generatedCaPolicy(pki, signer.generation) : undefined;
    if (signer.kind === "generated" && policy) {
        const { notAfter } = generatedCaValidity(policy);
        if (notAfter.getTime() <= now.getTime()) {
            const retiring = pki.rotation?.from === signer.generation;
            problems.error(
                retiring && pki.rotation?.fromCaIssuedOn !== undefined ? `${path}.rotation.fromCaIssuedOn` : `${path}.caIssuedOn`,
                `the signing Nebula CA (${nebulaCaLabel(signer)}) expired at ${notAfter.toISOString()}: no certificate it signs is valid. Make a new CA sign: caGeneration ${signer.generation + 1} (docs/runbooks/rotating-the-nebula-ca.md); moving these dates would re-sign this CA under a new fingerprint and split the mesh`,
            );
        }
    }
}

/** The host part of `host:port` when it is an IPv4 literal. */
function ipv4HostOf(hostPort: string): string | undefined {
    const host = hostPort.slice(0, hostPort.lastIndexOf(":"));
    return isIpv4Address(host) ? host : undefined;
}

/**
 * Fields that state one fact twice: where both are set they must agree, or one of them would be
 * used somewhere and the other elsewhere (an address in one file and another on the wire).
 */
function checkFieldAgreement(fleet: Pick<Fleet, "controlServer" | "nodes">, problems: ProblemList): void {
    const control = fleet.controlServer;
    const publicIpPath = `${ROOT}.controlServer.publicIp`;
    // publicIp is the lighthouse address every host's static_host_map dials; adopt.reservedIp is
    // the address the droplet really answers on.
    if (control.host.kind === "droplet" && control.host.adopt && control.publicIp !== undefined && control.publicIp !== control.host.adopt.reservedIp) {
        problems.error(
            publicIpPath,
            `${control.publicIp} is not the adopted reserved IP ${control.host.adopt.reservedIp} (${ROOT}.controlServer.host.adopt.reservedIp): every Nebula host would dial the lighthouse at an address it does not answer on; set both to the reserved IP`,
        );
    }
    if (control.host.kind === "existing") {
        const hostName = control.host.host;
        const index = fleet.nodes.findIndex((node) => node.name === hostName);
        const externalIp = index >= 0 ? fleet.nodes[index].externalIp : undefined;
        if (externalIp !== undefined && control.publicIp !== undefined && control.publicIp !== externalIp) {
            problems.error(
                publicIpPath,
                `${control.publicIp} is not ${hostName}'s public address ${externalIp} (${nodePath(index, "externalIp")}), and the control server runs there; set both to the address it answers on`,
            );
        }
    }
    fleet.nodes.forEach((node, index) => {
        const endpointIp = node.nebula?.publicEndpoint ? ipv4HostOf(node.nebula.publicEndpoint) : undefined;
        if (endpointIp !== undefined && node.externalIp !== undefined && endpointIp !== node.externalIp) {
            problems.error(
                nodePath(index, "nebula.publicEndpoint"),
                `dials ${endpointIp}, but ${node.name}'s public address is ${node.externalIp} (${nodePath(index, "externalIp")}); set both to the address it answers on`,
            );
        }
        if (node.ssh.become === "none" && node.ssh.user !== "root") {
            problems.error(
                nodePath(index, "ssh.become"),
                `is none, but ${node.ssh.user} is not root: every step writes root's files (/etc, the service manager); use sudo (the default for a non-root user) or log in as root`,
            );
        }
        if (node.ssh.host !== undefined && node.ssh.via !== undefined) {
            problems.error(nodePath(index, "ssh.via"), `is unused: ssh.host (${node.ssh.host}) names the SSH address outright; remove one of the two`);
        }
    });
}
