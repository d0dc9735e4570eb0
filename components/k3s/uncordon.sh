# On the genesis: record the applied config's hash on the node, point flannel's public-ip at its
# new address and drop a stale public-ip-overwrite, in one JSON merge patch: one API write, so
# the node is never schedulable without its new annotations. The same patch uncordons the node
# only when this rollout cordoned it (CORDON_MARKER, written by drain.sh): a node someone else
# cordoned stays cordoned. Params: NODE_NAME, CORDON_MARKER, NODE_PATCH (uncordons) and
# NODE_PATCH_KEEP_CORDON (the same without the uncordon; both built in k3s/rollout.ts).
node="$(param NODE_NAME)"
marker="$(param CORDON_MARKER)"
# Every API call is bounded: a hanging API fails the step instead of stalling the rollout.
kc() { k3s kubectl --request-timeout=10s "$@"; }
# Read before the patch: whether the node is cordoned, and the overwrite the patch removes (for the log).
out="$(kc get node "$node" -o jsonpath='{.spec.unschedulable}{"|"}{.metadata.annotations.flannel\.alpha\.coreos\.com/public-ip-overwrite}')"
IFS='|' read -r cordoned overwrite <<<"$out"
if [ -f "$marker" ]; then
  kc patch node "$node" --type merge -p "$(param NODE_PATCH)"
  rm -f "$marker"
else
  kc patch node "$node" --type merge -p "$(param NODE_PATCH_KEEP_CORDON)"
  if [ "$cordoned" = true ]; then
    echo "uncordon $node: left cordoned: it was cordoned before its rollout, not by it (kubectl uncordon $node to schedule on it again)"
  fi
fi
if [ -n "$overwrite" ]; then
  echo "uncordon $node: removed stale public-ip-overwrite $overwrite"
fi
