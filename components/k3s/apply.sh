# On the node: drain itself (k3s/self-drain.sh, sourced before this file), write config.yaml
# atomically (previous kept as config.yaml.previous) only when it changed, restart, wait for health
# instead of sleeping, and uncordon itself; roll back on failure. A server whose recorded tls-san
# lacks its new node-ip is rolled twice: first the new SANs with the old node-ip, then the move. A
# changed flannel iface or node-ip deletes flannel.1 first so flannel rebuilds it on the new parent.
# An apply is pending from its first write until the node is healthy on the new file (or rolled
# back): a run cut short (a dropped session, a killed step) leaves the marker, and the next run
# drains, restarts onto the file and gates on health again instead of taking "unchanged" for
# success. An unchanged file on a stopped k3s is started the same way; on a running one, the step
# succeeds only once the node is healthy, and finishes what an interrupted run left (its cordon).
# Every wait is bounded: kubectl by --request-timeout, the restart by READY_TIMEOUT, the drain by
# DRAIN_TIMEOUT.
# Params: NODE_NAME, ROLE (server | agent), UNIT, READY_TIMEOUT, DRAIN_TIMEOUT, NODE_STATE_JSONPATH,
# CORDON_PATCH, UNCORDON_PATCH, KEEP_CORDON_PATCH (k3s/rollout.ts), and every path it touches (the
# plan's K3sNodePaths): CONFIG_PATH, RECORD_PATH (the rollout record), SAN_DROPIN_PATH,
# PENDING_PATH, LOCK_PATH, KUBECONFIG (for its own kubectl calls; empty: k3s's admin kubeconfig).
# Files: config.yaml and the rollout record at their paths, and the attachment tls-san.yaml (the
# first pass's drop-in).
node="$(param NODE_NAME)"; role="$(param ROLE)"; unit="$(param UNIT)"; timeout="$(param READY_TIMEOUT)"
cfg="$(param CONFIG_PATH)"; rec="$(param RECORD_PATH)"; dropin="$(param SAN_DROPIN_PATH)"
pending="$(param PENDING_PATH)"; kubeconfig="$(param KUBECONFIG)"; drain_timeout="$(param DRAIN_TIMEOUT)"
node_state_jsonpath="$(param NODE_STATE_JSONPATH)"; cordon_patch="$(param CORDON_PATCH)"
uncordon_patch="$(param UNCORDON_PATCH)"; keep_cordon_patch="$(param KEEP_CORDON_PATCH)"
dir="$(dirname "$cfg")"
log() { echo "rollout $node: $*"; }
mkdir -p "$dir" "$(dirname "$rec")" "$(dirname "$dropin")" "$(dirname "$pending")"
# One apply at a time on a node: a second run waits instead of interleaving .previous files.
take_lock "$(param LOCK_PATH)"
stage="$(mktemp -d "$dir/.shortcircuit.XXXXXX")"
cleanup_paths+=("$stage")
read_files "$stage"
lacks() { echo "rollout $node: payload lacks $1" >&2; exit 2; }
new_cfg="$(staged "$stage" "$cfg")" || lacks "$cfg"
new_rec="$(staged "$stage" "$rec")" || lacks "$rec"
new_san="$(staged "$stage" tls-san.yaml)" || lacks tls-san.yaml
recorded() { if [ -f "$rec" ]; then sed -n "s/^$1=//p" "$rec" | head -n 1; fi; }
wanted() { sed -n "s/^$1=//p" "$new_rec" | head -n 1; }
# k3s's unit is Type=notify with TimeoutStartSec=0: a start that never notifies would block here.
restart_unit() { timeout --kill-after=10 "$timeout" systemctl restart "$unit"; }
# Healthy: the node Ready and, on a server, etcd healthy. `kubectl wait` watches the node, so
# the gate passes the moment Ready turns True instead of at the next poll; while the API does
# not answer (a server's own API restarting) it fails at once and is retried after a pause.
# Its own timeout is the time left (at least 1 s: 0 would mean "check once"); kube's 10 s
# request timeout bounds each request, and kubectl renews its watch past it (checked against
# kube-apiserver v1.33.4: a 3 s request timeout, Ready at 6 s, wait succeeds at 6 s).
wait_healthy() {
  local deadline=$(( SECONDS + timeout )) tries=0 left
  while [ "$SECONDS" -lt "$deadline" ] && [ "$tries" -lt 100000 ]; do
    tries=$(( tries + 1 ))
    left=$(( deadline - SECONDS )); [ "$left" -ge 1 ] || left=1
    if kube wait --for=condition=Ready "node/$node" --timeout="${left}s" >/dev/null 2>&1; then
      if [ "$role" != server ] || [ "$(kube get --raw /healthz/etcd 2>/dev/null)" = ok ]; then return 0; fi
    fi
    sleep 0.25
  done
  return 1
}
# Every file this step writes is root's, mode 600 (prelude's write_atomically).
install_file() { write_atomically "$1" "$2" 600; }
rollback() {
  log "$1; restoring the previous config"
  rm -f "$dropin"
  if [ -f "$rec.previous" ]; then install_file "$rec.previous" "$rec"; else rm -f "$rec"; fi
  if [ "$fresh" = 1 ]; then
    rm -f "$cfg"
    systemctl stop "$unit" || true
  else
    install_file "$cfg.previous" "$cfg"
    if restart_unit && wait_healthy; then
      log "back on its previous config and healthy"
    else
      log "previous config restored, but the node is still not healthy"
    fi
  fi
  rm -f "$pending"
  echo "rollout $node failed: $1. It is on its previous config and stays cordoned; the rollout stops here." >&2
  exit 1
}
# The file in place is the wanted one: restart onto it, gate on health (rolling back if not),
# record it, end the pending apply, and uncordon.
restart_onto_config() {
  restart_unit || rollback "k3s did not restart with the new config"
  wait_healthy || rollback "not healthy within ${timeout}s"
  install_file "$new_rec" "$rec"
  rm -f "$pending"
  finish_node
  log "restarted $unit and healthy"
}
if [ -f "$cfg" ] && cmp -s "$new_cfg" "$cfg" && [ ! -e "$dropin" ]; then
  if [ -e "$pending" ]; then
    # This file went in, but no run saw the node healthy on it: finish that apply now.
    fresh=0; [ -f "$cfg.previous" ] || fresh=1
    log "an earlier run wrote this config.yaml but did not see the node healthy on it; restarting onto it"
    drain_self
    restart_onto_config
    exit 0
  fi
  done_what="config.yaml unchanged; nothing written, nothing restarted"
  if ! systemctl is-active --quiet "$unit"; then
    # Stopped on the wanted file: there is nothing to drain or roll back; start it and gate.
    log "config.yaml unchanged, but $unit is not running; starting it"
    restart_unit || { echo "rollout $node failed: $unit did not start on its unchanged config" >&2; exit 1; }
    done_what="config.yaml unchanged; started $unit"
  fi
  if [ ! -f "$rec" ] || ! cmp -s "$new_rec" "$rec"; then
    install_file "$new_rec" "$rec"
  fi
  if ! wait_healthy; then
    echo "rollout $node failed: config.yaml is unchanged, but the node is not healthy within ${timeout}s" >&2
    exit 1
  fi
  finish_node
  log "$done_what"
  exit 0
fi
fresh=0; [ -f "$cfg" ] || fresh=1
drain_self
ip_moved=0; [ "$(recorded NODE_IP)" = "$(wanted NODE_IP)" ] || ip_moved=1
iface_moved=0; [ "$(recorded FLANNEL_IFACE)" = "$(wanted FLANNEL_IFACE)" ] || iface_moved=1
rm -f "$cfg.previous" "$rec.previous"
if [ "$fresh" = 0 ]; then cp -p "$cfg" "$cfg.previous"; fi
if [ -f "$rec" ]; then cp -p "$rec" "$rec.previous"; fi
: >"$pending"
if [ "$role" = server ] && [ "$fresh" = 0 ] && [ "$ip_moved" = 1 ]; then
  case " $(recorded TLS_SANS) " in
    *" $(wanted NODE_IP) "*) ;;
    *)
      log "pass 1 of 2: tls-san lacks $(wanted NODE_IP); adding the new SANs with the old node-ip"
      install_file "$new_san" "$dropin"
      restart_unit || rollback "k3s did not restart with the new SANs"
      wait_healthy || rollback "not healthy within ${timeout}s after adding the new SANs"
      log "pass 1 of 2 done: certificates cover $(wanted NODE_IP)"
      ;;
  esac
fi
if { [ "$ip_moved" = 1 ] || [ "$iface_moved" = 1 ]; } && ip link show flannel.1 >/dev/null 2>&1; then
  ip link delete flannel.1
  log "deleted flannel.1: flannel-iface or node-ip moved"
fi
install_file "$new_cfg" "$cfg"
rm -f "$dropin"
log "wrote $cfg"
restart_onto_config
