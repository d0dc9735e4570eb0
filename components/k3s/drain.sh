# On the genesis server: drain the node before its restart. A node the API does not know yet
# is skipped; so is an unreachable API on a genesis that has never been configured (the
# cluster is being bootstrapped). Any other unreachable API fails the node.
# Params: NODE_NAME, CONFIG_SHA256, DRAIN_TIMEOUT, CORDON_MARKER (present while the rollout
# holds the node cordoned: only then does uncordon.sh make it schedulable again), GENESIS_UNIT
# and GENESIS_CONFIG_PATH (the genesis's own k3s unit and config.yaml, from the plan).
node="$(param NODE_NAME)"
marker="$(param CORDON_MARKER)"
# Every API call is bounded: a hanging API fails the step instead of stalling the rollout.
kc() { k3s kubectl --request-timeout=10s "$@"; }
# Read by structure, not by kubectl's error text: with --ignore-not-found a node the API does not
# know prints nothing and exits 0, so a failure is always an API that did not answer, and the
# node's own name leads the answer when it is registered (the other fields may be empty).
if ! out="$(kc get node "$node" --ignore-not-found -o jsonpath='{.metadata.name}{"|"}{.spec.unschedulable}{"|"}{.metadata.annotations.shortcircuit\.kub0\.io/config-sha256}' 2>&1)"; then
  # Nothing answers on a genesis that has never been configured and whose k3s is not running:
  # the cluster is being bootstrapped.
  if [ ! -f "$(param GENESIS_CONFIG_PATH)" ] && ! systemctl is-active --quiet "$(param GENESIS_UNIT)"; then
    echo "drain $node: the genesis has no config yet (bootstrap); nothing to drain"
    exit 0
  fi
  echo "drain $node: the API on the genesis did not answer: $out" >&2
  exit 1
fi
if [ -z "$out" ]; then
  echo "drain $node: not registered yet"
  exit 0
fi
IFS='|' read -r name cordoned applied <<<"$out"
if [ "$name" != "$node" ]; then
  echo "drain $node: unexpected answer from the API: $out" >&2
  exit 1
fi
# A re-run (a new SSH path, lost state) must not drain a node that already runs this config.
if [ "$applied" = "$(param CONFIG_SHA256)" ]; then
  echo "drain $node: already runs this config; not drained"
  exit 0
fi
# A node cordoned by someone else stays cordoned after its rollout; one this rollout cordoned
# (the marker, written before the drain cordons it, so a drain cut short is still ours) is
# made schedulable again by uncordon.sh.
if [ "$cordoned" = true ] && [ ! -f "$marker" ]; then
  echo "drain $node: already cordoned, not by a rollout: it stays cordoned after this one"
else
  mkdir -p "$(dirname "$marker")"
  : >"$marker"
fi
kc drain "$node" --ignore-daemonsets --delete-emptydir-data --timeout="$(param DRAIN_TIMEOUT)s"
