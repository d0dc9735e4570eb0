# On the genesis: uncordon, point flannel's public-ip at the new address, record the applied
# config's hash, drop a stale public-ip-overwrite. Params: NODE_NAME, FLANNEL_IP, CONFIG_SHA256.
node="$(param NODE_NAME)"
# Every API call is bounded: a hanging API fails the step instead of stalling the rollout.
kc() { k3s kubectl --request-timeout=10s "$@"; }
kc uncordon "$node"
kc annotate node "$node" "flannel.alpha.coreos.com/public-ip=$(param FLANNEL_IP)" "shortcircuit.kub0.io/config-sha256=$(param CONFIG_SHA256)" --overwrite
overwrite="$(kc get node "$node" -o jsonpath='{.metadata.annotations.flannel\.alpha\.coreos\.com/public-ip-overwrite}')"
if [ -n "$overwrite" ]; then
  kc annotate node "$node" flannel.alpha.coreos.com/public-ip-overwrite-
  echo "uncordon $node: removed stale public-ip-overwrite $overwrite"
fi
