# Pre-flight and token, on the node, before the drain: k3s is installed, the node's live
# addresses match the model, and Tailscale's table 52 routes nothing into the cluster or
# service CIDR (the table-52 incident), nor does the node accept subnet routes. Only then is
# the join token file written (it takes effect at the next restart).
# Params: NODE_NAME, EXPECT_ADDRESSES (iface=address …), CLUSTER_CIDRS, TOKEN_PATH,
# CONFIG_SHA256 (re-runs the step when the node's config changes). Files: the token file.
node="$(param NODE_NAME)"
fail() { echo "preflight $node: $*" >&2; exit 1; }
command -v k3s >/dev/null 2>&1 || fail "k3s is not installed"
expect_addresses=(); param_words EXPECT_ADDRESSES expect_addresses
cluster_cidrs=(); param_words CLUSTER_CIDRS cluster_cidrs
for pair in ${expect_addresses[@]+"${expect_addresses[@]}"}; do
  iface="${pair%%=*}"; want="${pair#*=}"
  actual="$(ip -4 -o addr show dev "$iface" 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | tr '\n' ' ')"
  actual="${actual% }"
  [ -n "$actual" ] || fail "$iface has no IPv4 address, expected $want"
  case " $actual " in *" $want "*) ;; *) fail "$iface has $actual, expected $want" ;; esac
done
ip2int() { local IFS=.; local a b c d; read -r a b c d <<<"$1"; echo $(( (a << 24) | (b << 16) | (c << 8) | d )); }
overlaps() {
  local n1="${1%/*}" n2="${2%/*}" l1=32 l2=32
  [ "$1" = "$n1" ] || l1="${1#*/}"
  [ "$2" = "$n2" ] || l2="${2#*/}"
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
  for cidr in ${cluster_cidrs[@]+"${cluster_cidrs[@]}"}; do
    if overlaps "$dest" "$cidr"; then
      fail "Tailscale table 52 routes $dest, which covers cluster range $cidr: an accepted subnet route would steal pod or service traffic (run tailscale set --accept-routes=false and remove the route)"
    fi
  done
done < <(ip -4 route show table 52 2>/dev/null || true)
if command -v tailscale >/dev/null 2>&1; then
  case "$(tailscale_accept_routes)" in
    yes) fail "tailscale accepts subnet routes (--accept-routes); the fleet runs with --accept-routes=false" ;;
  esac
fi
echo "preflight $node: ok"
umask 077
stage="$(mktemp -d "${TMPDIR:-/tmp}/shortcircuit.XXXXXX")"
cleanup_paths+=("$stage")
read_files "$stage"
token_path="$(param TOKEN_PATH)"
token="$(staged "$stage" "$token_path")" || fail "payload lacks $token_path"
if [ -f "$token_path" ] && cmp -s "$token" "$token_path"; then
  chmod 600 "$token_path"
else
  mkdir -p "$(dirname "$token_path")"
  write_atomically "$token" "$token_path" 600
  echo "preflight $node: wrote $token_path"
fi
