# Sourced before k3s/apply.sh (remote/scripts.ts): the node drains and uncordons itself, inside its
# own apply step, with its own credentials: k3s's admin kubeconfig on a server, the kubelet's on
# an agent. Under those (Kubernetes 1.33's Node authorizer and NodeRestriction, pinned on the real
# API server in test/scripts/lab/stack/apiServer.lab.test.ts) a node may read and patch its own
# Node object, list the pods bound to it and evict them, but may not read a DaemonSet: so
# `kubectl drain` itself fails on every K3s node (ServiceLB's svclb pods), and this is drain's
# own logic, written against those rights (docs/reference/k3s-rollout.md):
#   cordon (with the rollout's annotation, so only a cordon the rollout made is lifted);
#   leave DaemonSet, mirror and finished pods; refuse a pod no controller would recreate (as
#   drain does without --force); evict the rest, retrying a disruption budget's 429 every 5 s
#   until the drain timeout; wait until they are gone.
# Reads: node, unit, kubeconfig (empty: k3s's admin kubeconfig), drain_timeout, node_state_jsonpath
# (name|unschedulable|rollout cordon annotation|public-ip-overwrite) and the patches cordon_patch,
# uncordon_patch and keep_cordon_patch (all built in k3s/rollout.ts); calls log.

# Every API call is bounded: a hanging API fails the step instead of stalling the rollout.
kube() {
  if [ -z "$kubeconfig" ]; then
    k3s kubectl --request-timeout=10s "$@"
  else
    k3s kubectl --request-timeout=10s --kubeconfig "$kubeconfig" "$@"
  fi
}

# The node as the API has it, into node_known (0: not registered), node_cordoned,
# node_cordoned_by_rollout and node_overwrite. Read by structure, never by kubectl's words: with
# --ignore-not-found an unknown node prints nothing and exits 0, so a failure is an API that did
# not answer, and the node's own name leads the answer when it is registered.
read_node() {
  local out name
  if ! out="$(kube get node "$node" --ignore-not-found -o "jsonpath=$node_state_jsonpath" 2>&1)"; then
    echo "rollout $node: cannot read its node from the API: $out" >&2
    exit 1
  fi
  node_known=0 node_cordoned='' node_cordoned_by_rollout='' node_overwrite=''
  [ -n "$out" ] || return 0
  IFS='|' read -r name node_cordoned node_cordoned_by_rollout node_overwrite <<<"$out"
  if [ "$name" != "$node" ]; then
    echo "rollout $node: unexpected answer from the API: $out" >&2
    exit 1
  fi
  node_known=1
}

drain_failed() {
  echo "rollout $node failed: $1. This run wrote and restarted nothing; the node stays cordoned, and the rollout stops here." >&2
  exit 1
}

# Evicts one pod until the API takes it or the drain's deadline passes. The eviction API's
# answers are told apart by the status reason kubectl prints in brackets ("Error from server
# (TooManyRequests): …"), the API's own constant, not its message: 429 is a disruption budget
# that allows no eviction now (retried, as drain does), NotFound a pod already gone.
evict_pod() {
  local namespace="$1" name="$2" deadline="$3" out reason tries=0
  while [ "$tries" -lt 10000 ]; do
    tries=$((tries + 1))
    if out="$(kube create --raw "/api/v1/namespaces/$namespace/pods/$name/eviction" -f - 2>&1 <<<"{\"apiVersion\":\"policy/v1\",\"kind\":\"Eviction\",\"metadata\":{\"name\":\"$name\",\"namespace\":\"$namespace\"}}")"; then
      log "evicted pod $namespace/$name"
      return 0
    fi
    case "$out" in
      *"(NotFound)"*) return 0 ;;
      *"(TooManyRequests)"*)
        reason="pod $namespace/$name may not be evicted now (${out#Error from server (TooManyRequests): })"
        [ "$SECONDS" -lt "$deadline" ] || drain_failed "the drain timed out after ${drain_timeout}s: $reason"
        log "$reason; retrying in 5s"
        sleep 5
        ;;
      *) drain_failed "the eviction of pod $namespace/$name failed: $out" ;;
    esac
  done
  drain_failed "gave up evicting pod $namespace/$name"
}

# The pods bound to the node into pods, one a line: namespace|name|phase|controller kind|mirror
# annotation.
list_pods() {
  pods="$(kube get pods --all-namespaces --field-selector "spec.nodeName=$node" \
    -o 'jsonpath={range .items[*]}{.metadata.namespace}{"|"}{.metadata.name}{"|"}{.status.phase}{"|"}{.metadata.ownerReferences[?(@.controller==true)].kind}{"|"}{.metadata.annotations.kubernetes\.io/config\.mirror}{"\n"}{end}' 2>&1)" ||
    drain_failed "cannot list its pods: $pods"
}

# Cordons and drains the node before its restart. A node whose k3s is not running has nothing
# running to drain (and, on an agent, no way to the API); neither has a node not registered yet.
drain_self() {
  local deadline=$((SECONDS + drain_timeout)) out pods namespace name phase controller mirror i tries=0 still
  local evict=() unmanaged=()
  if ! systemctl is-active --quiet "$unit"; then
    log "$unit is not running: nothing runs on the node to drain"
    return 0
  fi
  read_node
  if [ "$node_known" = 0 ]; then
    log "not registered yet: nothing to drain"
    return 0
  fi
  if [ "$node_cordoned" = true ] && [ -z "$node_cordoned_by_rollout" ]; then
    log "already cordoned, not by a rollout: it stays cordoned after this one"
  elif [ "$node_cordoned" != true ]; then
    out="$(kube patch node "$node" --type merge -p "$cordon_patch" 2>&1)" || drain_failed "cannot cordon it: $out"
    node_cordoned=true node_cordoned_by_rollout=true
    log "cordoned"
  fi
  list_pods
  while IFS='|' read -r namespace name phase controller mirror; do
    [ -n "$name" ] || continue
    case "$phase" in Succeeded | Failed) continue ;; esac
    [ -z "$mirror" ] || continue
    case "$controller" in
      DaemonSet) ;;
      '') unmanaged+=("$namespace/$name") ;;
      *) evict+=("$namespace" "$name") ;;
    esac
  done <<<"$pods"
  if [ "${#unmanaged[@]}" -gt 0 ]; then
    drain_failed "pods no controller would recreate run on it: ${unmanaged[*]}; move or delete them (kubectl drain would need --force)"
  fi
  for ((i = 0; i < ${#evict[@]}; i += 2)); do
    evict_pod "${evict[i]}" "${evict[i + 1]}" "$deadline"
  done
  # Gone, not only evicted: a pod terminates in its own grace period. Read through the same list
  # (a node may list its own pods; the list is all this waits on).
  while [ "${#evict[@]}" -gt 0 ] && [ "$tries" -lt 100000 ]; do
    tries=$((tries + 1))
    list_pods
    still=''
    for ((i = 0; i < ${#evict[@]}; i += 2)); do
      case $'\n'"$pods" in *$'\n'"${evict[i]}|${evict[i + 1]}|"*) still="${evict[i]}/${evict[i + 1]}" ;; esac
    done
    [ -n "$still" ] || break
    if [ "$SECONDS" -ge "$deadline" ]; then
      drain_failed "pod $still was evicted but is not gone within the drain timeout (${drain_timeout}s)"
    fi
    sleep 1
  done
  log "drained"
}

# Once healthy on its config: record the config's hash and flannel's address on the node, drop a
# stale public-ip-overwrite, and make it schedulable again only when the rollout cordoned it, in
# one merge patch (one API write: the node is never schedulable without its new annotations).
finish_node() {
  local patch="$keep_cordon_patch" out
  [ "${node_known:-}" = 1 ] || read_node
  if [ "$node_known" = 0 ]; then
    echo "rollout $node failed: healthy, yet the API does not know the node" >&2
    exit 1
  fi
  [ -z "$node_cordoned_by_rollout" ] || patch="$uncordon_patch"
  if ! out="$(kube patch node "$node" --type merge -p "$patch" 2>&1)"; then
    echo "rollout $node failed: healthy on its config, but its Node object could not be patched: $out. The next up finishes it." >&2
    exit 1
  fi
  if [ -n "$node_cordoned_by_rollout" ]; then
    log "uncordoned"
  elif [ "$node_cordoned" = true ]; then
    log "left cordoned: it was cordoned before its rollout, not by it (kubectl uncordon $node to schedule on it again)"
  fi
  if [ -n "$node_overwrite" ]; then
    log "removed stale public-ip-overwrite $node_overwrite"
  fi
}
