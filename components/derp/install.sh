# Installs derper at the pinned version with `go install` (Tailscale's documented way to get
# derper), once per version, into a directory of its own: the relay's unit or job runs that
# path, so a new version is a changed unit or job and the delivery after this step restarts
# derper onto it. Needs Go on the host. Params: VERSION, TARGET (the plan's path for that
# version, components/derp/derper.ts: <install dir>/<version>/derper).
version="$(param VERSION)"
target="$(param TARGET)"
install_dir="$(dirname "$(dirname "$target")")"
if [ ! -x "$target" ]; then
  # An SSH session on a Mac has no Homebrew on PATH: Go is also looked for where Homebrew (Apple
  # silicon, Intel) and the go.dev installer put it.
  go_bin="$(command -v go 2>/dev/null || true)"
  for candidate in /opt/homebrew/bin/go /usr/local/go/bin/go /usr/local/bin/go; do
    if [ -z "$go_bin" ] && [ -x "$candidate" ]; then go_bin="$candidate"; fi
  done
  [ -n "$go_bin" ] || { echo "derper install: Go is not installed on $(hostname); install Go, then re-run" >&2; exit 1; }
  mkdir -p "$(dirname "$target")"
  GOBIN="$(dirname "$target")" "$go_bin" install "tailscale.com/cmd/derper@$version"
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
# derper keeps its key here (-c) and, self-signed or ACME, its certificates below it.
mkdir -p /var/lib/derper/certs
echo "derper $version at $target"
