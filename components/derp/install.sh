# Installs derper at the pinned version with `go install` (Tailscale's documented way to get
# derper), once per version, into a directory of its own: the relay's unit or job runs that
# path, so a new version is a changed unit or job and the delivery after this step restarts
# derper onto it. Needs Go on the host. Params: VERSION, TARGET (the plan's path for that
# version, components/derp/derper.ts: <install dir>/<version>/derper), SERVICE_FILE (the
# relay's unit or job file), SYSTEMD_UNIT (the relay's own unit under systemd; empty under
# launchd, where the delivery checks for another derper job itself).
version="$(param VERSION)"
target="$(param TARGET)"
service_file="$(param SERVICE_FILE)"
own_unit="$(param SYSTEMD_UNIT)"
install_dir="$(dirname "$(dirname "$target")")"
# The step removes other versions' directories beside the target's, so it takes only the plan's
# shape of path: <a directory named derper>/<version>/derper.
if [ "$(basename "$install_dir")" != derper ] || [ "$target" != "$install_dir/$version/derper" ]; then
  echo "shortcircuit: TARGET must be <dir>/derper/$version/derper, not $target" >&2
  exit 2
fi

# Another systemd unit that runs derper holds the DERP and STUN ports: the relay's own unit
# would not come up on them. Stop before anything changes, naming each such unit that is active
# or enabled, and how to retire it. A unit file under the relay's own name is the program's to
# replace. Template units (name@.service) and drop-ins that replace ExecStart are not read.
if [ -n "$own_unit" ]; then
  # Each unit's file from the first directory that has one, as systemd searches them.
  seen=' '
  unit_files=()
  for file in /etc/systemd/system/*.service /run/systemd/system/*.service /usr/local/lib/systemd/system/*.service \
    /lib/systemd/system/*.service /usr/lib/systemd/system/*.service; do
    unit="${file##*/}"
    case "$seen" in *" $unit "*) continue ;; esac
    [ -f "$file" ] || continue
    seen="$seen$unit "
    [ "$unit" = "$own_unit" ] || unit_files+=("$file")
  done
  conflicts=0
  # One grep for all of them: the files whose ExecStart runs a program named derper.
  while IFS= read -r file; do
    unit="${file##*/}"
    active="$(systemctl is-active "$unit" </dev/null 2>/dev/null || true)"
    enabled="$(systemctl is-enabled "$unit" </dev/null 2>/dev/null || true)"
    # Running (a derper crash-looping under Restart= is "activating"), or started at boot.
    case "$active/$enabled" in active/* | activating/* | reloading/* | deactivating/* | */enabled*) ;; *) continue ;; esac
    echo "derper install: $file (systemd unit $unit: ${active:-unknown}, ${enabled:-unknown}) runs derper; the relay's $own_unit needs its ports: stop and disable it (systemctl disable --now $unit), then re-run; nothing changed" >&2
    conflicts=$((conflicts + 1))
  done < <(if [ "${#unit_files[@]}" -gt 0 ]; then
    grep -lE '^[[:space:]]*ExecStart[[:space:]]*=[[:space:]]*[-@:+!]*([^[:space:]]*/)?derper([[:space:]]|$)' -- "${unit_files[@]}" || true
  fi)
  [ "$conflicts" -eq 0 ] || exit 1
fi
if [ ! -x "$target" ]; then
  # An SSH session on a Mac has no Homebrew on PATH: Go is also looked for where Homebrew (Apple
  # silicon, Intel) and the go.dev installer put it.
  go_bin="$(command -v go 2>/dev/null || true)"
  for candidate in /opt/homebrew/bin/go /usr/local/go/bin/go /usr/local/bin/go; do
    if [ -z "$go_bin" ] && [ -x "$candidate" ]; then go_bin="$candidate"; fi
  done
  [ -n "$go_bin" ] || { echo "derper install: Go is not installed on $(hostname); install Go, then re-run" >&2; exit 1; }
  # Go keeps its module and build caches under $HOME, and a Mac's sudo keeps the login user's
  # HOME (macOS's /etc/sudoers: env_keep += "HOME MAIL"): this root `go install` would leave
  # root-owned caches in the operator's home, where their own `go` then cannot write. The caches
  # live in a directory of this step's own instead, removed when it ends (one left by an
  # interrupted run goes first). -modcacherw: Go leaves module files read-only otherwise.
  mkdir -p "$install_dir"
  rm -rf "$install_dir"/.go-install.*
  go_work="$(mktemp -d "$install_dir/.go-install.XXXXXX")"
  cleanup_paths+=("$go_work")
  GOBIN="$go_work/bin" GOPATH="$go_work/gopath" GOMODCACHE="$go_work/mod" GOCACHE="$go_work/build" GOFLAGS=-modcacherw \
    "$go_bin" install "tailscale.com/cmd/derper@$version"
  # go install copies the binary into GOBIN in place (cmd/go opens it with O_TRUNC and copies),
  # so one cut short would leave part of a derper at the target, which the check above would then
  # take for installed. It is built beside the caches and moved to the target in one rename.
  mkdir -p "$(dirname "$target")"
  mv -f "$go_work/bin/derper" "$target"
fi
# /usr/local/bin/derper is only a convenience for a shell on the host. It is set where it is
# missing or already one of this script's links; an operator's own derper there (a file, or a
# link elsewhere) is left as it is, since their running job may use it.
link=/usr/local/bin/derper
link_target="$(readlink "$link" 2>/dev/null || true)"
if { [ ! -e "$link" ] && [ ! -L "$link" ]; } || [ "${link_target#"$install_dir"/}" != "$link_target" ]; then
  # A fresh Mac has no /usr/local/bin.
  [ -d /usr/local/bin ] || mkdir -p /usr/local/bin
  ln -sfn "$target" "$link"
else
  echo "derper install: left $link as it is (not a link this step made); the relay runs $target"
fi
# Versions no longer wanted go, so the relay keeps at most two: the one installed here and the
# one its unit or job runs now, which the delivery after this step puts back if the new one is
# not healthy.
for dir in "$install_dir"/*/; do
  dir="${dir%/}"
  if [ ! -d "$dir" ] || [ "$dir" = "$(dirname "$target")" ]; then continue; fi
  if [ -f "$service_file" ] && grep -qF -- "$dir/" "$service_file"; then continue; fi
  rm -rf "$dir"
  echo "derper install: removed $dir (neither the pinned version nor the one $service_file runs)"
done
# derper keeps its key here (-c) and, self-signed or ACME, its certificates below it.
mkdir -p /var/lib/derper/certs
echo "derper $version at $target"
