# Installs the payload's files on the host and restarts their service when one changed.
# Params: STEP (log prefix), SERVICE_MANAGER (systemd | launchd | none), SERVICE (unit or
# launchd label), PLIST (launchd job file to load, or empty), RESTART (yes | no: a secret-only
# step marks the restart pending for the step after it), CHECK_TIMEOUT (seconds), OWNER
# (user:group of every file, or empty for root: Headscale reads its keys as its own user).
#
# Each file is written beside its target and renamed into place; the previous version is kept
# as <path>.previous; an unchanged file is not rewritten (its mode is still corrected). A
# restart is pending from the first write until the service is back up and stayed active, so a
# run cut short or a failed restart is retried by the next run even though no file changes.
step="$(param STEP)"
manager="$(param SERVICE_MANAGER)"
service="$(param SERVICE)"
owner="$(param OWNER)"
log() { echo "$step: $*"; }
umask 077
stage="$(mktemp -d "${TMPDIR:-/tmp}/shortcircuit.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
read_files "$stage"
state_dir=/var/lib/shortcircuit
pending="$state_dir/restart-pending.$service"
changed=0
while read -r n mode target; do
  case "$target" in /*) ;; *) continue ;; esac
  dir="$(dirname "$target")"
  [ -d "$dir" ] || install -d -m 0755 "$dir"
  if [ -f "$target" ] && cmp -s "$stage/$n" "$target"; then
    chmod "$mode" "$target"
    if [ -n "$owner" ]; then chown "$owner" "$target"; fi
    continue
  fi
  if [ "$manager" != none ]; then
    mkdir -p "$state_dir"
    : >"$pending"
  fi
  tmp="$(mktemp "$target.shortcircuit.XXXXXX")"
  cat "$stage/$n" >"$tmp"
  chmod "$mode" "$tmp"
  if [ -n "$owner" ]; then chown "$owner" "$tmp"; fi
  if [ -f "$target" ]; then cp -p "$target" "$target.previous"; fi
  mv -f "$tmp" "$target"
  changed=1
  log "wrote $target"
done <"$stage/.manifest"

if [ "$manager" = none ] || [ "$(param RESTART)" != yes ]; then
  [ "$changed" = 1 ] || log "no change"
  exit 0
fi
if [ ! -e "$pending" ]; then
  log "no change"
  exit 0
fi
[ "$changed" = 1 ] || log "a restart of $service is pending (a key changed, or the last restart did not complete); restarting it"

active() {
  case "$manager" in
    systemd) systemctl is-active --quiet "$service" ;;
    launchd) launchctl print "system/$service" 2>/dev/null | grep 'state = running' >/dev/null ;;
  esac
}
case "$manager" in
  systemd)
    systemctl daemon-reload
    systemctl enable --quiet "$service"
    systemctl restart "$service"
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
# Active twice in a row, a second apart: a daemon that exits at once is seen as failed.
timeout="$(param CHECK_TIMEOUT)"
deadline=$((SECONDS + timeout))
streak=0
while [ "$SECONDS" -lt "$deadline" ]; do
  if active; then streak=$((streak + 1)); else streak=0; fi
  if [ "$streak" -ge 2 ]; then
    rm -f "$pending"
    log "restarted $service; it is active"
    exit 0
  fi
  sleep 1
done
echo "$step: $service is not active ${timeout}s after its restart; the restart stays pending for the next run" >&2
exit 1
