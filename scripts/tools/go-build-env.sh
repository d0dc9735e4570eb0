# shellcheck shell=bash
# Sourced by the Go build scripts (build-pulumi.sh, build-tailnet-tools.sh): the parts every
# cached Go build shares. The caller defines log and die first.

# pin_from_versions_ts FILE KEY: a pin of components/versions.ts (`    headscale: "v0.29.1",` -> v0.29.1).
pin_from_versions_ts() {
  sed -n -E "s/^[[:space:]]*$2:[[:space:]]*\"([^\"]+)\".*/\\1/p" "$1" | head -n 1
}

# take_build_lock DIR SECONDS: one builder per output directory at a time (parallel test workers
# may call a build script together); holds the lock on fd 9 until the script exits.
take_build_lock() {
  exec 9>"$1/.lock"
  flock -w "$2" 9 || die "timed out waiting for another build of $1"
}

# use_go_caches CACHE_ROOT CGO_ENABLED: module and build caches under the project's cache root, so
# a rebuild (or a new pin sharing dependencies) is incremental; no workspace or GOFLAGS from the
# caller's environment leaks into a pinned build. GOPROXY is the machine's proxy without the
# `direct`/`off` fallbacks: a module the proxy does not serve fails the build instead of being
# fetched from its origin.
use_go_caches() {
  local default_goproxy
  default_goproxy="$(go env GOPROXY | tr ',|' '[\n*]' | { grep -v -x -E 'direct|off' || true; } | paste -sd, -)"
  export GOMODCACHE="$1/go/mod"
  export GOCACHE="$1/go/build"
  export GOTOOLCHAIN="${SHORTCIRCUIT_GOTOOLCHAIN:-$(go env GOTOOLCHAIN)}"
  export GOPROXY="${SHORTCIRCUIT_GOPROXY:-${default_goproxy:-https://proxy.golang.org}}"
  export CGO_ENABLED="$2"
  export GO111MODULE=on GOWORK=off GOFLAGS=
  mkdir -p "${GOMODCACHE}" "${GOCACHE}"
  log "$(go version) (GOTOOLCHAIN=${GOTOOLCHAIN}); GOPROXY=${GOPROXY}; GOMODCACHE=${GOMODCACHE} GOCACHE=${GOCACHE}"
}
