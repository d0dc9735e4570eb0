import { Document } from "yaml";
import { addressOn, flannelPath, interfaceOn, nodeIp, type K3sNode } from "../../stacks/fleet";
import type { Fleet } from "../../stacks/schema";
import { K3S_CONFIG_PATH, renderK3sConfigYaml, renderedConfigSha256, serverTlsSans } from "./config";

/*
 * The scripts a K3s node's rollout runs, and what they read on stdin. Every script is fixed
 * text, the same for every node; per-node values and file contents arrive on stdin as a block
 * of `KEY=value` lines, a blank line, then files framed as `@file <name> <bytes>` followed by
 * exactly that many bytes. File content is never spliced into a shell string, and a preview
 * shows the changed file as readable text.
 */

export const K3S_DIR = "/etc/rancher/k3s";
/** What the last successful rollout applied: lets the next one see what moved. */
export const ROLLOUT_RECORD_PATH = `${K3S_DIR}/shortcircuit-rollout.env`;
/** The first pass of a node-ip move adds the new SANs here, with the old node-ip still in place. */
export const SAN_DROPIN_PATH = `${K3S_DIR}/config.yaml.d/50-shortcircuit-tls-san.yaml`;
export const AGENT_KUBELET_KUBECONFIG = "/var/lib/rancher/k3s/agent/kubelet.kubeconfig";
/** Set on a node once its config is applied and healthy: sha256 of that config.yaml. */
export const CONFIG_ANNOTATION = "shortcircuit.kub0.io/config-sha256";
const CONFIG_ANNOTATION_JSONPATH = CONFIG_ANNOTATION.replace(/\./g, "\\.");

export type Params = Record<string, string>;

export interface FramedFile {
    name: string;
    content: string;
}

const PARAM_KEY = /^[A-Z][A-Z0-9_]*$/;

/** `KEY=value` lines, a blank line, then framed files. */
export function rolloutPayload(params: Params, files: readonly FramedFile[] = []): string {
    const lines = Object.entries(params).map(([key, value]) => {
        if (!PARAM_KEY.test(key) || /[\n\r]/.test(value)) {
            throw new Error(`rollout parameter ${key} must be an upper-case name with a single-line value`);
        }
        return `${key}=${value}\n`;
    });
    const framed = files.map((file) => {
        if (!/^[A-Za-z0-9._-]+$/.test(file.name)) {
            throw new Error(`framed file name ${JSON.stringify(file.name)} must be a plain file name`);
        }
        return `@file ${file.name} ${Buffer.byteLength(file.content, "utf8")}\n${file.content}`;
    });
    return `${lines.join("")}\n${framed.join("")}`;
}

/** Shared by every script: strict mode, byte semantics, and the stdin readers. */
export const SCRIPT_PRELUDE = `set -euo pipefail
export LC_ALL=C
declare -A P=()
while IFS= read -r line && [ -n "$line" ]; do
  P["\${line%%=*}"]="\${line#*=}"
done
param() { [ -n "\${P[$1]+set}" ] || { echo "shortcircuit: missing parameter $1" >&2; exit 2; }; printf '%s' "\${P[$1]}"; }
# Reads framed files into directory $1: "@file <name> <bytes>" then exactly <bytes> bytes.
read_files() {
  local header name size content
  while IFS= read -r header; do
    [ -n "$header" ] || continue
    read -r _ name size <<<"$header"
    case "$name" in */*|.*|"") echo "shortcircuit: bad file name in payload" >&2; exit 2;; esac
    content=""
    if [ "$size" -gt 0 ]; then IFS= read -r -d '' -N "$size" content || true; fi
    printf '%s' "$content" > "$1/$name"
  done
}
`;

/**
 * Pre-flight, on the node, before anything is written: k3s is installed, the node's live
 * addresses match the model, and Tailscale's table 52 routes nothing into the cluster or
 * service CIDR (the table-52 incident), nor does the node accept subnet routes.
 */
export const PREFLIGHT_SCRIPT = `${SCRIPT_PRELUDE}node="$(param NODE_NAME)"
fail() { echo "preflight $node: $*" >&2; exit 1; }
command -v k3s >/dev/null 2>&1 || fail "k3s is not installed"
for pair in $(param EXPECT_ADDRESSES); do
  iface="\${pair%%=*}"; want="\${pair#*=}"
  actual="$(ip -4 -o addr show dev "$iface" 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | tr '\\n' ' ')"
  actual="\${actual% }"
  [ -n "$actual" ] || fail "$iface has no IPv4 address, expected $want"
  case " $actual " in *" $want "*) ;; *) fail "$iface has $actual, expected $want" ;; esac
done
ip2int() { local IFS=.; local a b c d; read -r a b c d <<<"$1"; echo $(( (a << 24) | (b << 16) | (c << 8) | d )); }
overlaps() {
  local n1="\${1%/*}" n2="\${2%/*}" l1=32 l2=32
  [ "$1" = "$n1" ] || l1="\${1#*/}"
  [ "$2" = "$n2" ] || l2="\${2#*/}"
  local l=$(( l1 < l2 ? l1 : l2 ))
  local mask=$(( l == 0 ? 0 : (0xFFFFFFFF << (32 - l)) & 0xFFFFFFFF ))
  [ $(( $(ip2int "$n1") & mask )) -eq $(( $(ip2int "$n2") & mask )) ]
}
while read -r first second _; do
  case "$first" in
    ""|throw|unreachable|prohibit|blackhole|local|broadcast|anycast|multicast|nat) continue ;;
    unicast) dest="$second" ;;
    default) dest=0.0.0.0/0 ;;
    *) dest="$first" ;;
  esac
  case "$dest" in *[!0-9./]*) continue ;; esac
  for cidr in $(param CLUSTER_CIDRS); do
    if overlaps "$dest" "$cidr"; then
      fail "Tailscale table 52 routes $dest, which covers cluster range $cidr: an accepted subnet route would steal pod or service traffic (run tailscale set --accept-routes=false and remove the route)"
    fi
  done
done < <(ip -4 route show table 52 2>/dev/null || true)
if command -v tailscale >/dev/null 2>&1; then
  case "$(tailscale debug prefs 2>/dev/null || true)" in
    *'"RouteAll": true'*) fail "tailscale accepts subnet routes (--accept-routes); the fleet runs with --accept-routes=false" ;;
  esac
fi
echo "preflight $node: ok"
`;

/**
 * On the genesis server: drain the node before its restart. A node the API does not know yet
 * is skipped; so is an unreachable API on a genesis that has never been configured (the
 * cluster is being bootstrapped). Any other unreachable API fails the node.
 */
export const DRAIN_SCRIPT = `${SCRIPT_PRELUDE}node="$(param NODE_NAME)"
if ! out="$(k3s kubectl get node "$node" -o jsonpath='{.metadata.annotations.${CONFIG_ANNOTATION_JSONPATH}}' 2>&1)"; then
  case "$out" in
    *NotFound*|*"not found"*) echo "drain $node: not registered yet"; exit 0 ;;
    *refused*) if [ ! -f ${K3S_CONFIG_PATH} ]; then echo "drain $node: the genesis has no config yet (bootstrap); nothing to drain"; exit 0; fi ;;
  esac
  echo "drain $node: the API on the genesis did not answer: $out" >&2
  exit 1
fi
# A re-run (a new SSH path, lost state) must not drain a node that already runs this config.
if [ "$out" = "$(param CONFIG_SHA256)" ]; then
  echo "drain $node: already runs this config; not drained"
  exit 0
fi
k3s kubectl drain "$node" --ignore-daemonsets --delete-emptydir-data --timeout="$(param DRAIN_TIMEOUT)s"
`;

/**
 * On the node: write config.yaml atomically (previous kept as config.yaml.previous) only
 * when it changed, restart, and wait for health instead of sleeping; roll back on failure.
 * A server whose recorded tls-san lacks its new node-ip is rolled twice: first the new SANs
 * with the old node-ip, then the move. A changed flannel iface or node-ip deletes flannel.1
 * first so flannel rebuilds it on the new parent.
 */
export const APPLY_SCRIPT = `${SCRIPT_PRELUDE}node="$(param NODE_NAME)"; role="$(param ROLE)"; unit="$(param UNIT)"; timeout="$(param READY_TIMEOUT)"
dir=${K3S_DIR}; cfg=${K3S_CONFIG_PATH}; rec=${ROLLOUT_RECORD_PATH}; dropin=${SAN_DROPIN_PATH}
log() { echo "rollout $node: $*"; }
mkdir -p "$dir" "$(dirname "$dropin")"
stage="$(mktemp -d "$dir/.shortcircuit.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
read_files "$stage"
for want in config.yaml rollout.env tls-san.yaml; do [ -f "$stage/$want" ] || { echo "rollout $node: payload lacks $want" >&2; exit 2; }; done
if [ -f "$cfg" ] && cmp -s "$stage/config.yaml" "$cfg" && [ ! -e "$dropin" ]; then
  if [ ! -f "$rec" ] || ! cmp -s "$stage/rollout.env" "$rec"; then
    install -m 600 "$stage/rollout.env" "$rec"
  fi
  log "config.yaml unchanged; nothing written, nothing restarted"
  exit 0
fi
recorded() { if [ -f "$rec" ]; then sed -n "s/^$1=//p" "$rec" | head -n 1; fi; }
wanted() { sed -n "s/^$1=//p" "$stage/rollout.env" | head -n 1; }
kube() {
  if [ "$role" = server ]; then k3s kubectl "$@"; else k3s kubectl --kubeconfig ${AGENT_KUBELET_KUBECONFIG} "$@"; fi
}
healthy() {
  [ "$(kube get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] || return 1
  [ "$role" != server ] || [ "$(k3s kubectl get --raw /healthz/etcd 2>/dev/null)" = ok ]
}
wait_healthy() {
  local deadline=$(( SECONDS + timeout )) polls=0
  while [ "$SECONDS" -lt "$deadline" ] && [ "$polls" -lt 100000 ]; do
    if healthy; then return 0; fi
    polls=$(( polls + 1 ))
    sleep 1
  done
  return 1
}
install_file() {
  local tmp; tmp="$(mktemp "$2.shortcircuit.XXXXXX")"
  cat "$1" > "$tmp"; chmod 600 "$tmp"; mv -f "$tmp" "$2"
}
fresh=0; [ -f "$cfg" ] || fresh=1
# The genesis skips the drain of a node the cluster records as running this config; if the
# file on disk still differs (edited by hand), a restart now would hit an undrained node.
if [ "$fresh" = 0 ]; then
  if unschedulable="$(kube get node "$node" -o jsonpath='{.spec.unschedulable}' 2>&1)"; then
    if [ "$unschedulable" != true ]; then
      echo "rollout $node: config.yaml on disk differs from the config the cluster records as applied, and the node is not drained (edited by hand?); refusing to restart it undrained. Drain it (k3s kubectl drain $node --ignore-daemonsets) and run again." >&2
      exit 1
    fi
  else
    case "$unschedulable" in
      *NotFound*|*"not found"*) ;;
      *) echo "rollout $node: cannot read its node from the API: $unschedulable" >&2; exit 1 ;;
    esac
  fi
fi
ip_moved=0; [ "$(recorded NODE_IP)" = "$(wanted NODE_IP)" ] || ip_moved=1
iface_moved=0; [ "$(recorded FLANNEL_IFACE)" = "$(wanted FLANNEL_IFACE)" ] || iface_moved=1
rm -f "$cfg.previous" "$rec.previous"
if [ "$fresh" = 0 ]; then cp -p "$cfg" "$cfg.previous"; fi
if [ -f "$rec" ]; then cp -p "$rec" "$rec.previous"; fi
rollback() {
  log "$1; restoring the previous config"
  rm -f "$dropin"
  if [ -f "$rec.previous" ]; then install_file "$rec.previous" "$rec"; else rm -f "$rec"; fi
  if [ "$fresh" = 1 ]; then
    rm -f "$cfg"
    systemctl stop "$unit" || true
  else
    install_file "$cfg.previous" "$cfg"
    if systemctl restart "$unit" && wait_healthy; then
      log "back on its previous config and healthy"
    else
      log "previous config restored, but the node is still not healthy"
    fi
  fi
  echo "rollout $node failed: $1. It is on its previous config and stays cordoned; the rollout stops here." >&2
  exit 1
}
if [ "$role" = server ] && [ "$fresh" = 0 ] && [ "$ip_moved" = 1 ]; then
  case " $(recorded TLS_SANS) " in
    *" $(wanted NODE_IP) "*) ;;
    *)
      log "pass 1 of 2: tls-san lacks $(wanted NODE_IP); adding the new SANs with the old node-ip"
      install_file "$stage/tls-san.yaml" "$dropin"
      systemctl restart "$unit" || rollback "k3s did not restart with the new SANs"
      wait_healthy || rollback "not healthy within \${timeout}s after adding the new SANs"
      log "pass 1 of 2 done: certificates cover $(wanted NODE_IP)"
      ;;
  esac
fi
if { [ "$ip_moved" = 1 ] || [ "$iface_moved" = 1 ]; } && ip link show flannel.1 >/dev/null 2>&1; then
  ip link delete flannel.1
  log "deleted flannel.1: flannel-iface or node-ip moved"
fi
install_file "$stage/config.yaml" "$cfg"
rm -f "$dropin"
log "wrote $cfg"
systemctl restart "$unit" || rollback "k3s did not restart with the new config"
wait_healthy || rollback "not healthy within \${timeout}s"
install_file "$stage/rollout.env" "$rec"
log "restarted $unit and healthy"
`;

/** On the genesis: uncordon, point flannel's public-ip at the new address, drop a stale overwrite. */
export const UNCORDON_SCRIPT = `${SCRIPT_PRELUDE}node="$(param NODE_NAME)"
k3s kubectl uncordon "$node"
k3s kubectl annotate node "$node" "flannel.alpha.coreos.com/public-ip=$(param FLANNEL_IP)" "${CONFIG_ANNOTATION}=$(param CONFIG_SHA256)" --overwrite
overwrite="$(k3s kubectl get node "$node" -o jsonpath='{.metadata.annotations.flannel\\.alpha\\.coreos\\.com/public-ip-overwrite}')"
if [ -n "$overwrite" ]; then
  k3s kubectl annotate node "$node" flannel.alpha.coreos.com/public-ip-overwrite-
  echo "uncordon $node: removed stale public-ip-overwrite $overwrite"
fi
`;

export function unitFor(node: K3sNode): "k3s" | "k3s-agent" {
    return node.role === "server" ? "k3s" : "k3s-agent";
}

/** `KEY=value` record of what a rollout applied; read back by the next one. */
export function renderRolloutRecord(fleet: Fleet, node: K3sNode): string {
    const sans = node.role === "server" ? serverTlsSans(fleet, node).join(" ") : "";
    return [
        "# Managed by shortcircuit: what the last rollout applied.",
        `NODE_IP=${nodeIp(fleet, node)}`,
        `FLANNEL_IFACE=${interfaceOn(fleet, node, flannelPath(fleet, node))}`,
        `TLS_SANS=${sans}`,
        "",
    ].join("\n");
}

/** Pass 1 of a node-ip move: append the new SANs, leaving every other key as it is. */
export function renderSanDropIn(fleet: Fleet, node: K3sNode): string {
    const document = new Document({ "tls-san+": node.role === "server" ? serverTlsSans(fleet, node) : [] });
    document.commentBefore = " Managed by shortcircuit: first pass of a node-ip move; removed by the second.";
    return document.toString({ lineWidth: 0 });
}

/** Addresses pre-flight expects on the node's interfaces, as `iface=address` pairs. */
export function expectedAddresses(fleet: Fleet, node: K3sNode): string {
    const pairs: string[] = [];
    for (const path of ["tailnet", "nebula", "lan"] as const) {
        const address = addressOn(node, path);
        if (address !== undefined) {
            pairs.push(`${interfaceOn(fleet, node, path)}=${address}`);
        }
    }
    return pairs.join(" ");
}

export interface NodeRolloutPayloads {
    preflight: string;
    drain: string;
    apply: string;
    uncordon: string;
}

/** Everything one node's rollout sends, as plain text: the component feeds it to commands. */
export function nodeRolloutPayloads(fleet: Fleet, node: K3sNode): NodeRolloutPayloads {
    const cluster = fleet.cluster;
    // Every step carries the config, so each re-runs exactly when the node's config changed.
    const config: FramedFile = { name: "config.yaml", content: renderK3sConfigYaml(fleet, node) };
    const configSha256 = renderedConfigSha256(config.content);
    return {
        preflight: rolloutPayload(
            {
                NODE_NAME: node.name,
                EXPECT_ADDRESSES: expectedAddresses(fleet, node),
                CLUSTER_CIDRS: `${cluster.clusterCidr} ${cluster.serviceCidr}`,
            },
            [config],
        ),
        drain: rolloutPayload({ NODE_NAME: node.name, DRAIN_TIMEOUT: String(cluster.readyTimeoutSeconds), CONFIG_SHA256: configSha256 }, [config]),
        apply: rolloutPayload(
            { NODE_NAME: node.name, ROLE: node.role, UNIT: unitFor(node), READY_TIMEOUT: String(cluster.readyTimeoutSeconds) },
            [config, { name: "rollout.env", content: renderRolloutRecord(fleet, node) }, { name: "tls-san.yaml", content: renderSanDropIn(fleet, node) }],
        ),
        uncordon: rolloutPayload(
            { NODE_NAME: node.name, FLANNEL_IP: addressOn(node, flannelPath(fleet, node)) ?? nodeIp(fleet, node), CONFIG_SHA256: configSha256 },
            [config],
        ),
    };
}
