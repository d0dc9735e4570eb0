# On the genesis: uncordon the node, point flannel's public-ip at its new address, record the
# applied config's hash and drop a stale public-ip-overwrite, in one JSON merge patch: one API
# write, so the node is never schedulable without its new annotations. Params: NODE_NAME and
# NODE_PATCH (the patch, k3s/rollout.ts).
node="$(param NODE_NAME)"
# Every API call is bounded: a hanging API fails the step instead of stalling the rollout.
kc() { k3s kubectl --request-timeout=10s "$@"; }
# Read before the patch removes it, so the log says which overwrite went.
overwrite="$(kc get node "$node" -o jsonpath='{.metadata.annotations.flannel\.alpha\.coreos\.com/public-ip-overwrite}')"
kc patch node "$node" --type merge -p "$(param NODE_PATCH)"
if [ -n "$overwrite" ]; then
  echo "uncordon $node: removed stale public-ip-overwrite $overwrite"
fi
