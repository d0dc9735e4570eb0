# Installs derper at the pinned version with `go install` (Tailscale's documented way to get
# derper), once per version; needs Go on the host. Params: VERSION.
version="$(param VERSION)"
target="/usr/local/lib/derper/$version/derper"
if [ ! -x "$target" ]; then
  command -v go >/dev/null 2>&1 || { echo "derper install: Go is not installed on $(hostname); install Go, then re-run" >&2; exit 1; }
  mkdir -p "$(dirname "$target")"
  GOBIN="$(dirname "$target")" go install "tailscale.com/cmd/derper@$version"
fi
ln -sfn "$target" /usr/local/bin/derper
# derper keeps its key here (-c) and, self-signed or ACME, its certificates below it.
mkdir -p /var/lib/derper/certs
echo "derper $version at $target"
