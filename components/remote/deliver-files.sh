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
# for). A launchd delivery also has PROGRAM (the executable its job runs: it must be there
# before anything is installed), PROGRAM_FIELD (the config path naming it, or empty),
# CONFLICT_PROGRAM (another job running a program of this name is refused, or empty),
# ADOPT_LABEL (that other job's label, when the stack says to take it over, or empty) and
# ADOPT_FIELD (the config path naming ADOPT_LABEL).
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
#
# launchd (macOS) keeps the same rules, with launchd's own: the job file (PLIST, among the
# files) is loaded with `launchctl bootstrap`, which launchd refuses for a job already loaded,
# so a loaded job is booted out first when the file it was loaded from (recorded in
# /var/lib/shortcircuit/launchd-loaded.<label>) differs from the one in place, and otherwise
# restarted with `kickstart -k`; a reload is `launchctl kill HUP`. Healthy means `launchctl
# print` says running. A rollback puts the previous job file back and loads it (or, when the job
# was new, unloads it and loads again the operator's job this run took over). Other job files
# beside PLIST that run CONFLICT_PROGRAM stop both steps before anything changes, unless one is
# ADOPT_LABEL's: just before the program's own job is loaded, that one is booted out and its
# file renamed to <file>.shortcircuit-adopted (launchd loads only *.plist), so a rerun after an
# interruption finds it done.
step="$(param STEP)"
manager="$(param SERVICE_MANAGER)"
service="$(param SERVICE)"
owner="$(param OWNER)"
restart="$(param RESTART)"
log() { echo "$step: $*"; }
umask 077
state_dir=/var/lib/shortcircuit
mkdir -p "$state_dir"
pending="$(restart_pending_marker "$service")"
take_lock "$state_dir/lock.$service"
stage="$(mktemp -d "${TMPDIR:-/tmp}/shortcircuit.XXXXXX")"
cleanup_paths+=("$stage")
read_files "$stage"

if [ "$manager" = launchd ]; then
  plist="$(param PLIST)"
  program="$(param PROGRAM)"
  program_field="$(param PROGRAM_FIELD)"
  conflict_program="$(param CONFLICT_PROGRAM)"
  adopt_label="$(param ADOPT_LABEL)"
  adopt_field="$(param ADOPT_FIELD)"
  if [ "$adopt_label" = "$service" ]; then adopt_label=''; fi
  loaded_record="$state_dir/launchd-loaded.$service"
fi
# A job file as XML (plutil reads binary ones too; without it, as it is).
plist_text() { plutil -convert xml1 -o - "$1" 2>/dev/null || cat "$1"; }
plist_label() { plist_text "$1" | tr '\n' ' ' | sed -n 's#.*<key>Label</key>[[:space:]]*<string>\([^<]*\)</string>.*#\1#p'; }
# Whether job file $1 runs program $2 (any argument that is `$2` or ends in `/$2`).
plist_runs() { plist_text "$1" | grep -Eq "<string>([^<]*/)?$2</string>"; }
loaded() { launchctl print "system/$1" >/dev/null 2>&1; }
# Before anything changes: the job's program is there, and no other job runs it (but the one to
# take over, whose file is noted as adopt_plist).
adopt_plist=''
launchd_preflight() {
  local job label hint=''
  if [ ! -x "$program" ] || [ -d "$program" ]; then
    if [ -n "$program_field" ]; then hint="; install it there or set $program_field to where it is"; fi
    echo "$step: $program is not an executable on this host$hint; nothing changed" >&2
    exit 1
  fi
  [ -n "$conflict_program" ] || return 0
  for job in "$(dirname "$plist")"/*.plist; do
    if [ ! -f "$job" ] || [ "$job" = "$plist" ]; then continue; fi
    label="$(plist_label "$job")"
    if [ "$label" = "$service" ]; then continue; fi
    if [ -n "$adopt_label" ] && { [ "$label" = "$adopt_label" ] || [ "$job" = "$(dirname "$plist")/$adopt_label.plist" ]; }; then
      adopt_plist="$job"
      continue
    fi
    if plist_runs "$job" "$conflict_program"; then
      echo "$step: $job (launchd job ${label:-without a label}) runs $conflict_program; set $adopt_field: ${label:-<its label>} to have it taken over, or remove it; nothing changed" >&2
      exit 1
    fi
  done
}
if [ "$manager" = launchd ]; then launchd_preflight; fi

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
  # Under launchd the job's own binary (macOS's SSH sessions do not have Homebrew on PATH).
  nebula_bin=nebula
  if [ "$manager" = launchd ]; then nebula_bin="$program"; fi
  if command -v "$nebula_bin" >/dev/null 2>&1; then
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
    if ! out="$("$nebula_bin" -test -config "$mirror/nebula-precheck.yml" 2>&1)"; then
      echo "$step: nebula -test refused the new files; nothing installed: $out" >&2
      exit 1
    fi
  else
    log "$nebula_bin is not on this host; its config is not pre-tested"
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
# A job still to take over is a restart to do, files changed or not.
adoption_outstanding() { [ -n "$adopt_label" ] && { loaded "$adopt_label" || [ -n "$adopt_plist" ]; }; }
if [ "$manager" = launchd ] && adoption_outstanding; then mark_pending; fi
if [ ! -e "$pending" ]; then
  log "no change"
  exit 0
fi
[ -s "$stage/.changed" ] || log "a restart of $service is pending (a key changed, or the last restart did not complete); restarting it"

# launchd: unloads job $1, waiting (bounded) until launchd has let it go. bootout's own status is
# not the test (it can report an error while the job is on its way out): whether it is gone is.
bootout_job() {
  local out polls=0
  out="$(launchctl bootout "system/$1" 2>&1)" || true
  while loaded "$1"; do
    if [ "$polls" -ge 20 ]; then
      echo "$step: launchctl bootout system/$1 left it loaded: $out" >&2
      return 1
    fi
    sleep 0.5
    polls=$((polls + 1))
  done
  log "booted out $1"
}
# Loads job file $1 (refused by launchd for a loaded job: callers boot it out first).
bootstrap_job() {
  local out
  if ! out="$(launchctl bootstrap system "$1" 2>&1)"; then
    echo "$step: launchctl bootstrap system $1 failed: $out" >&2
    return 1
  fi
  log "loaded $1"
}
# The operator's job this run took over (its file renamed), and whether it was loaded.
adopted_now=''
adopted_was_loaded=no
adopt_job() {
  if loaded "$adopt_label"; then
    bootout_job "$adopt_label" || return 1
    adopted_was_loaded=yes
  fi
  if [ -n "$adopt_plist" ] && [ -f "$adopt_plist" ]; then
    mv -f "$adopt_plist" "$adopt_plist.shortcircuit-adopted" || return 1
    log "took over $adopt_label: moved $adopt_plist aside to $adopt_plist.shortcircuit-adopted"
    adopted_now="$adopt_plist"
    adopt_plist=''
  fi
}
# Whether the loaded job runs from the job file in place.
launchd_current() { loaded "$service" && [ -f "$loaded_record" ] && cmp -s "$plist" "$loaded_record"; }
launchd_restart() {
  if [ -n "$adopt_label" ]; then adopt_job || return 1; fi
  if launchd_current; then
    launchctl kickstart -k "system/$service" || return 1
    return 0
  fi
  if loaded "$service"; then bootout_job "$service" || return 1; fi
  rm -f "$loaded_record"
  bootstrap_job "$plist" || return 1
  cp "$plist" "$loaded_record" || return 1
}
# systemd reads unit files again only on daemon-reload, a reload of every unit, and `systemctl
# enable` does one by itself unless told --no-reload (systemd's systemctl-enable.c). So the
# manager reloads once per restart at most, and only when something needs it. When this run
# wrote (or put back) a file under a systemd directory, it reloads, after an enable that changes
# nothing if the unit is enabled already. Otherwise `systemctl show` says whether systemd's copy
# is stale (NeedDaemonReload: a run that wrote the unit stopped before reloading), the unit is
# not loaded, or it is not enabled (by hand); a `show` that fails enables and reloads.
systemd_restart() {
  local props line reload=no enabled=no
  if grep -Eq '^(/etc|/run|/lib|/usr/lib)/systemd/' "$stage/.changed"; then
    reload=yes
  else
    props="$(systemctl show -p LoadState -p UnitFileState -p NeedDaemonReload "$service" 2>/dev/null)" || props='LoadState=unknown'
    while IFS= read -r line; do
      case "$line" in
        UnitFileState=enabled) enabled=yes ;;
        NeedDaemonReload=yes) reload=yes ;;
        LoadState=loaded) ;;
        LoadState=*) reload=yes ;;
      esac
    done <<<"$props"
  fi
  if [ "$enabled" = no ]; then
    systemctl enable --quiet --no-reload "$service" || return 1
    reload=yes
  fi
  if [ "$reload" = yes ]; then systemctl daemon-reload || return 1; fi
  systemctl restart "$service"
}
restart_service() {
  case "$manager" in
    systemd) systemd_restart ;;
    launchd) launchd_restart ;;
    *)
      echo "$step: unknown service manager $manager" >&2
      exit 2
      ;;
  esac
}
reload_service() {
  case "$manager" in
    systemd) systemctl reload "$service" ;;
    launchd) launchctl kill HUP "system/$service" ;;
    *)
      echo "$step: unknown service manager $manager" >&2
      exit 2
      ;;
  esac
}
# launchd: running, and the same process as at the last look (launchd_pid): a KeepAlive job that
# keeps dying is started again by launchd and would read "running" now and then.
launchd_pid=''
active() {
  local job pid
  case "$manager" in
    systemd) systemctl is-active --quiet "$service" ;;
    launchd)
      job="$(launchctl print "system/$service" 2>/dev/null)" || return 1
      case "$job" in *'state = running'*) ;; *) return 1 ;; esac
      pid="$(printf '%s\n' "$job" | sed -n 's/^[[:space:]]*pid = \([0-9][0-9]*\)$/\1/p')"
      if [ -n "$launchd_pid" ] && [ "$pid" != "$launchd_pid" ]; then
        launchd_pid="$pid"
        return 1
      fi
      launchd_pid="$pid"
      ;;
    *)
      echo "$step: unknown service manager $manager" >&2
      exit 2
      ;;
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
# answering on its port or link; bounded by CHECK_TIMEOUT. Until the first good look it looks
# every 0.2 s (a service comes up in well under a second: each host's turn in the Nebula wave
# waits for this), then once more a second later.
healthy() {
  local deadline=$((SECONDS + $(param CHECK_TIMEOUT))) streak=0
  launchd_pid=''
  while [ "$SECONDS" -lt "$deadline" ]; do
    # Its port or link first: that look is a builtin or `ip`, while a service comes up.
    if answering && active; then streak=$((streak + 1)); else streak=0; fi
    if [ "$streak" -ge 2 ]; then return 0; fi
    if [ "$streak" -eq 1 ]; then sleep 1; else sleep 0.2; fi
  done
  return 1
}

# A reload (SIGHUP: the unit's ExecReload, `launchctl kill HUP`) is enough when every changed file is one the daemon
# re-reads: Nebula takes a new CA bundle, certificate and key without dropping a tunnel (a
# restart drops them all for a moment, mid CA rotation on every host in turn). Not when the
# certificate's addresses moved: Nebula refuses such a certificate on reload and runs on with
# the old one, looking healthy.
reload_is_enough() {
  local reloadable path
  reloadable=" $(param RELOAD_PATHS) "
  [ "$reloadable" != "  " ] && [ -s "$stage/.changed" ] || return 1
  while read -r path; do
    case "$reloadable" in *" $path "*) ;; *) return 1 ;; esac
  done <"$stage/.changed"
  # launchd: only a job loaded from the file in place, with nothing to take over, is reloaded.
  if [ "$manager" = launchd ]; then
    launchd_current && ! adoption_outstanding || return 1
  fi
  active || return 1
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
  if reload_service && healthy; then healthy_on_new_files "reloaded $service (only files it re-reads changed); it is active and answering"; fi
  log "$service is not healthy after its reload; restarting it"
fi
if restart_service && healthy; then healthy_on_new_files "restarted $service; it is active and answering"; fi
# The operator's job this run took over, back in place and loaded as it was.
restore_adopted() {
  [ -n "$adopted_now" ] || return 0
  mv -f "$adopted_now.shortcircuit-adopted" "$adopted_now" || return 1
  if [ "$adopted_was_loaded" = yes ]; then bootstrap_job "$adopted_now" || return 1; fi
}
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
  if [ "$manager" = launchd ] && [ ! -f "$plist" ]; then
    # The job itself was new: back to no job of ours and, if this run took one over, the
    # operator's job as it was.
    if { ! loaded "$service" || bootout_job "$service"; } && restore_adopted; then
      rm -f "$pending" "$loaded_record"
      back=''
      if [ -n "$adopted_now" ]; then back=", the job it took over ($adopt_label) is back"; fi
      echo "$step: $reason; put the previous files back: $service was new and is unloaded$back" >&2
    else
      echo "$step: $reason; put the previous files back, but could not unload $service or put back the job it took over" >&2
    fi
  elif restart_service && healthy; then
    rm -f "$pending"
    echo "$step: $reason; put the previous files back and $service is healthy on them" >&2
  else
    echo "$step: $reason; put the previous files back, but $service is not healthy on them either" >&2
  fi
else
  echo "$step: $reason; the restart stays pending for the next run" >&2
fi
exit 1
