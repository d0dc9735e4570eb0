# Installs one service's files on the host and restarts it when one changed.
# Params: STEP (log prefix), SERVICE_MANAGER (systemd | launchd | none), SERVICE (unit or
# launchd label), PLIST (launchd job file to load, or empty), RESTART (yes: the public step |
# no: the secret step, which only stages), CHECK_TIMEOUT (seconds), OWNER (user:group of every
# file, or empty for root: Headscale reads its keys as its own user), SECRET_PATHS (the secret
# step's files, switched in by the public step), PRECHECK_NEBULA_CONFIG (the attachment holding
# the Nebula config to pass `nebula -test` with the new files before anything is installed, or
# empty), CHECK_PORT (a
# local TCP port the service must answer on, or empty), CHECK_INTERFACE (a link the service
# must bring up, or empty), RELOAD_PATHS (files the service re-reads on reload: when only these
# changed it is reloaded, not restarted), NEBULA_CERT (a certificate among them whose addresses
# must not have moved for a reload) and NEBULA_CERT_NETWORKS (the networks the plan issued it
# for).
#
# Keys never go live alone: the secret step stages them beside their target
# (<path>.shortcircuit-staged) and the public step switches keys, certificates and config in
# together, so a host never pairs a new key with an old certificate. Each file is written and
# fsynced beside its target, then renamed into place (prelude's write_atomically, which runs
# with set -e's checks even where bash drops them); the previous version is kept as
# <path>.previous until the service is healthy on the new files (a previous key is then
# deleted). A restart is pending from the first write until the service is back up, active and
# answering, so a run cut short or a failed restart is retried by the next run even though no
# file changes. If the service is not healthy on the new files, the previous ones are put back
# (a key it switched in is staged again) and the service restarted on them; the step fails
# either way. One run at a time per service.
step="$(param STEP)"
manager="$(param SERVICE_MANAGER)"
service="$(param SERVICE)"
owner="$(param OWNER)"
restart="$(param RESTART)"
log() { echo "$step: $*"; }
umask 077
state_dir=/var/lib/shortcircuit
mkdir -p "$state_dir"
pending="$state_dir/restart-pending.$service"
take_lock "$state_dir/lock.$service"
stage="$(mktemp -d "${TMPDIR:-/tmp}/shortcircuit.XXXXXX")"
cleanup_paths+=("$stage")
read_files "$stage"

# Notes $1 as changed by this run.
wrote() {
  echo "$1" >>"$stage/.changed"
  log "wrote $1"
}
# Renames a staged key $1 over $2, keeping what was there as $2.previous.
switch_in() {
  rename_into_place "$1" "$2" keep-previous
  wrote "$2"
}
same_and_fixed() {
  if [ ! -f "$2" ] || ! cmp -s "$1" "$2"; then return 1; fi
  chmod "$3" "$2"
  if [ -n "$owner" ]; then chown "$owner" "$2"; fi
}
mark_pending() { if [ "$manager" != none ]; then : >"$pending"; fi; }

if [ "$restart" != yes ]; then
  # The secret step: stage every changed key for the public step (or, with no service to
  # restart, install it now).
  staged_any=0
  while read -r n mode target; do
    case "$target" in /*) ;; *) continue ;; esac
    [ -d "$(dirname "$target")" ] || install -d -m 0755 "$(dirname "$target")"
    if same_and_fixed "$stage/$n" "$target" "$mode"; then
      rm -f "$target.shortcircuit-staged"
      continue
    fi
    if [ "$manager" = none ]; then
      write_atomically "$stage/$n" "$target" "$mode" "$owner" keep-previous
      wrote "$target"
    else
      mark_pending
      write_atomically "$stage/$n" "$target.shortcircuit-staged" "$mode" "$owner"
      log "staged $target"
    fi
    staged_any=1
  done <"$stage/.manifest"
  [ "$staged_any" = 1 ] || log "no change"
  exit 0
fi

# The public step. Before anything is installed: a Nebula config must pass `nebula -test`
# with the certificates and keys it will run with.
secret_paths=(); param_words SECRET_PATHS secret_paths
nebula_config="$(param PRECHECK_NEBULA_CONFIG)"
if [ -n "$nebula_config" ]; then
  if command -v nebula >/dev/null 2>&1; then
    mirror="$stage/precheck"
    rewrite=()
    while read -r n _ target; do
      case "$target" in /*) ;; *) continue ;; esac
      mkdir -p "$mirror$(dirname "$target")"
      cp "$stage/$n" "$mirror$target"
      rewrite+=(-e "s#${target//./\\.}#$mirror$target#g")
    done <"$stage/.manifest"
    for secret in ${secret_paths[@]+"${secret_paths[@]}"}; do
      source_file="$secret.shortcircuit-staged"
      [ -f "$source_file" ] || source_file="$secret"
      [ -f "$source_file" ] || continue
      mkdir -p "$mirror$(dirname "$secret")"
      cp "$source_file" "$mirror$secret"
      rewrite+=(-e "s#${secret//./\\.}#$mirror$secret#g")
    done
    precheck="$(staged "$stage" "$nebula_config")" || { echo "$step: payload lacks $nebula_config" >&2; exit 2; }
    sed "${rewrite[@]}" "$precheck" >"$mirror/nebula-precheck.yml"
    if ! out="$(nebula -test -config "$mirror/nebula-precheck.yml" 2>&1)"; then
      echo "$step: nebula -test refused the new files; nothing installed: $out" >&2
      exit 1
    fi
  else
    log "nebula is not on this host's PATH; its config is not pre-tested"
  fi
fi

# What networks the running Nebula certificate carries is not read from the certificate:
# nebula-cert's print format (text or -json) is not stable across releases (1.6 prints "ips",
# later ones "networks"), and a JSON reader (python3, jq) is not on every host. The plan knows
# them exactly (it issued the certificate for NEBULA_CERT_NETWORKS): once the service is healthy
# on a certificate, that list is recorded beside it as <cert>.shortcircuit-networks. A new
# certificate drops the record before it goes in, so the record never outlives the certificate
# it describes; no record means no reload, a restart.
cert="$(param NEBULA_CERT)"
cert_networks="$(param NEBULA_CERT_NETWORKS)"
running_networks=''
if [ -n "$cert" ]; then
  if [ -f "$cert.shortcircuit-networks" ]; then running_networks="$(cat "$cert.shortcircuit-networks")"; fi
  new_cert="$(staged "$stage" "$cert")" || new_cert=''
  if [ -n "$new_cert" ] && ! cmp -s "$new_cert" "$cert"; then rm -f "$cert.shortcircuit-networks"; fi
fi
: >"$stage/.changed"
while read -r n mode target; do
  case "$target" in /*) ;; *) continue ;; esac
  [ -d "$(dirname "$target")" ] || install -d -m 0755 "$(dirname "$target")"
  same_and_fixed "$stage/$n" "$target" "$mode" && continue
  mark_pending
  write_atomically "$stage/$n" "$target" "$mode" "$owner" keep-previous
  wrote "$target"
done <"$stage/.manifest"
for secret in ${secret_paths[@]+"${secret_paths[@]}"}; do
  if [ -f "$secret.shortcircuit-staged" ]; then
    mark_pending
    switch_in "$secret.shortcircuit-staged" "$secret"
  fi
done

if [ "$manager" = none ]; then
  [ -s "$stage/.changed" ] || log "no change"
  exit 0
fi
if [ ! -e "$pending" ]; then
  log "no change"
  exit 0
fi
[ -s "$stage/.changed" ] || log "a restart of $service is pending (a key changed, or the last restart did not complete); restarting it"

restart_service() {
  case "$manager" in
    systemd)
      # Chained: set -e does not apply inside a function called from `&&` (below).
      systemctl daemon-reload && systemctl enable --quiet "$service" && systemctl restart "$service"
      ;;
    launchd)
      plist="$(param PLIST)"
      if [ -n "$plist" ]; then launchctl bootstrap system "$plist" 2>/dev/null || true; fi
      launchctl kickstart -k "system/$service"
      ;;
    *)
      echo "$step: unknown service manager $manager" >&2
      exit 2
      ;;
  esac
}
active() {
  case "$manager" in
    systemd) systemctl is-active --quiet "$service" ;;
    launchd) launchctl print "system/$service" 2>/dev/null | grep 'state = running' >/dev/null ;;
  esac
}
port="$(param CHECK_PORT)"
iface="$(param CHECK_INTERFACE)"
answering() {
  if [ -n "$port" ] && ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 1; fi
  if [ -n "$iface" ] && command -v ip >/dev/null 2>&1 && ! ip link show "$iface" >/dev/null 2>&1; then return 1; fi
  return 0
}
# Healthy: active twice in a row a second apart (a daemon that exits at once is caught), and
# answering on its port or link; bounded by CHECK_TIMEOUT.
healthy() {
  local deadline=$((SECONDS + $(param CHECK_TIMEOUT))) streak=0
  while [ "$SECONDS" -lt "$deadline" ]; do
    if active && answering; then streak=$((streak + 1)); else streak=0; fi
    if [ "$streak" -ge 2 ]; then return 0; fi
    sleep 1
  done
  return 1
}

# A reload (the unit's ExecReload: SIGHUP) is enough when every changed file is one the daemon
# re-reads: Nebula takes a new CA bundle, certificate and key without dropping a tunnel (a
# restart drops them all for a moment, mid CA rotation on every host in turn). Not when the
# certificate's addresses moved: Nebula refuses such a certificate on reload and runs on with
# the old one, looking healthy.
reload_is_enough() {
  local reloadable path
  reloadable=" $(param RELOAD_PATHS) "
  [ "$manager" = systemd ] && [ "$reloadable" != "  " ] && [ -s "$stage/.changed" ] || return 1
  while read -r path; do
    case "$reloadable" in *" $path "*) ;; *) return 1 ;; esac
  done <"$stage/.changed"
  systemctl is-active --quiet "$service" || return 1
  if [ -n "$cert" ] && grep -qxF "$cert" "$stage/.changed"; then
    [ -n "$cert_networks" ] && [ "$running_networks" = "$cert_networks" ] || return 1
  fi
}
healthy_on_new_files() {
  if [ -n "$cert" ] && [ -n "$cert_networks" ] && [ -f "$cert" ]; then
    printf '%s\n' "$cert_networks" >"$stage/cert-networks"
    if ! cmp -s "$stage/cert-networks" "$cert.shortcircuit-networks"; then
      # A record that cannot be written is removed: the next certificate change then restarts.
      write_atomically "$stage/cert-networks" "$cert.shortcircuit-networks" 0644 || rm -f "$cert.shortcircuit-networks"
    fi
  fi
  rm -f "$pending"
  for secret in ${secret_paths[@]+"${secret_paths[@]}"}; do rm -f "$secret.previous"; done
  log "$1"
  exit 0
}
if reload_is_enough; then
  if systemctl reload "$service" && healthy; then healthy_on_new_files "reloaded $service (only files it re-reads changed); it is active and answering"; fi
  log "$service is not healthy after its reload; restarting it"
fi
if restart_service && healthy; then healthy_on_new_files "restarted $service; it is active and answering"; fi
reason="$service is not healthy $(param CHECK_TIMEOUT)s after its restart on the new files"
if [ -s "$stage/.changed" ]; then
  secrets=" $(param SECRET_PATHS) "
  while read -r path; do
    # A key switched in by this run is staged again: the next run switches it in with its files.
    case "$secrets" in *" $path "*) cp -p "$path" "$path.shortcircuit-staged" ;; esac
    if [ -f "$path.previous" ]; then
      cp -p "$path.previous" "$path.shortcircuit-restore"
      mv -f "$path.shortcircuit-restore" "$path"
    else
      rm -f "$path"
    fi
  done <"$stage/.changed"
  if restart_service && healthy; then
    rm -f "$pending"
    echo "$step: $reason; put the previous files back and $service is healthy on them" >&2
  else
    echo "$step: $reason; put the previous files back, but $service is not healthy on them either" >&2
  fi
else
  echo "$step: $reason; the restart stays pending for the next run" >&2
fi
exit 1
