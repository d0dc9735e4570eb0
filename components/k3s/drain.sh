# On the genesis server: drain the node before its restart. A node the API does not know yet
# is skipped; so is an unreachable API on a genesis that has never been configured (the
# cluster is being bootstrapped). Any other unreachable API fails the node.
# Params: NODE_NAME, CONFIG_SHA256, DRAIN_TIMEOUT, GENESIS_UNIT and GENESIS_CONFIG_PATH (the
# genesis's own k3s unit and config.yaml, from the plan).
node="$(param NODE_NAME)"
# Every API call is bounded: a hanging API fails the step instead of stalling the rollout.
kc() { k3s kubectl --request-timeout=10s "$@"; }
# Read by structure, not by kubectl's error text: with --ignore-not-found a node the API does not
# know prints nothing and exits 0, so a failure is always an API that did not answer, and the
# node's own name leads the answer when it is registered (its annotation may be empty).
if ! out="$(kc get node "$node" --ignore-not-found -o jsonpath='{.metadata.name}{" "}{.metadata.annotations.shortcircuit\.kub0\.io/config-sha256}' 2>&1)"; then
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
if [ "${out%% *}" != "$node" ]; then
  echo "drain $node: unexpected answer from the API: $out" >&2
  exit 1
fi
# A re-run (a new SSH path, lost state) must not drain a node that already runs this config.
if [ "${out#* }" = "$(param CONFIG_SHA256)" ]; then
  echo "drain $node: already runs this config; not drained"
  exit 0
fi
kc drain "$node" --ignore-daemonsets --delete-emptydir-data --timeout="$(param DRAIN_TIMEOUT)s"
