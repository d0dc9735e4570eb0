#!/usr/bin/env bash
# Builds the pinned tailnet tools -- headscale, tailscaled, tailscale, derper -- from the Go
# module proxy with plain go commands, into a cache outside the clone:
#
#   ${SHORTCIRCUIT_CACHE:-$HOME/.cache/shortcircuit}/tailnet-<headscale>-<tailscale>/bin/
#
# GOMODCACHE and GOCACHE live under the same cache root, so a rebuild (or a new pin that
# shares dependencies) is incremental. Each binary carries a stamp recording exactly what it
# was built from; a run that finds all four binaries with matching stamps builds nothing and
# takes well under a second. Every build is bounded by a timeout.
#
# tailscaled, tailscale and derper: `go install tailscale.com/cmd/<name>@<tailscale version>`.
# headscale: `go install github.com/juanfont/headscale/cmd/headscale` inside the wrapper module
# scripts/tools/headscale (go.mod/go.sum that only require the release, with exactly the
# release's dependency versions, no replace directives). Plain `go install ...@<version>` is not
# used for it because go then fetches the module's version list for a deprecation check, and a
# proxy that refuses that list (this machine's answers 403) fails the whole install. The wrapper
# must require the pinned version; the script refuses to build from a stale one.
#
# Versions come from components/versions.ts (headscale, tailscale); HEADSCALE_VERSION and
# TAILSCALE_VERSION override them (e.g. to try a candidate pin without editing the file).
#
# Other knobs:
#   SHORTCIRCUIT_GO_BUILD_TIMEOUT  seconds per binary (default 1800)
#   SHORTCIRCUIT_GOTOOLCHAIN       GOTOOLCHAIN for the builds (default: the machine's
#                                  `go env GOTOOLCHAIN`). A tailscale.com release whose go.mod
#                                  asks for a newer Go than the local one only builds with
#                                  `auto`, which makes go fetch golang.org/toolchain from the
#                                  module proxy into the cache.
#
# Progress goes to stderr; the last line on stdout is `export PATH="<bin>:$PATH"`, so
#   eval "$(scripts/tools/build-tailnet-tools.sh)"
# puts the tools on PATH.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
versions_file="${repo_root}/components/versions.ts"

log() { printf 'build-tailnet-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=scripts/tools/go-build-env.sh
source "${repo_root}/scripts/tools/go-build-env.sh"

headscale_version="${HEADSCALE_VERSION:-$(pin_from_versions_ts "${versions_file}" headscale)}"
tailscale_version="${TAILSCALE_VERSION:-$(pin_from_versions_ts "${versions_file}" tailscale)}"
[ -n "${headscale_version}" ] || die "no headscale version in ${versions_file} (or HEADSCALE_VERSION)"
[ -n "${tailscale_version}" ] || die "no tailscale version in ${versions_file} (or TAILSCALE_VERSION)"

cache_root="${SHORTCIRCUIT_CACHE:-${HOME}/.cache/shortcircuit}"
tools_dir="${cache_root}/tailnet-${headscale_version}-${tailscale_version}"
bin_dir="${tools_dir}/bin"
stamp_dir="${tools_dir}/stamps"
build_timeout="${SHORTCIRCUIT_GO_BUILD_TIMEOUT:-1800}"

# name -> package@version, in build order (the three tailscale.com binaries share one module,
# so the second and third reuse most of the first one's compiled packages from GOCACHE).
headscale_wrapper="${repo_root}/scripts/tools/headscale"
names=(headscale tailscaled tailscale derper)
declare -A packages=(
  [headscale]="github.com/juanfont/headscale/cmd/headscale"
  [tailscaled]="tailscale.com/cmd/tailscaled@${tailscale_version}"
  [tailscale]="tailscale.com/cmd/tailscale@${tailscale_version}"
  [derper]="tailscale.com/cmd/derper@${tailscale_version}"
)

# Static, path-independent binaries: they also run inside test namespaces / chroots.
build_flags=(-trimpath)
cgo_enabled=0
# tailscale.com's version package reports "<x.y.z>-ERR-BuildInfo" for a module-proxy build (no
# VCS info); stamp the release version the way its build_dist.sh does, so `tailscale version`,
# the client's Hostinfo and the CLI/daemon version check all see the plain release number.
ts_stamp="${tailscale_version#v}"
ts_ldflags="-X tailscale.com/version.longStamp=${ts_stamp} -X tailscale.com/version.shortStamp=${ts_stamp}"
ldflags_for() { [ "$1" = headscale ] || printf '%s' "${ts_ldflags}"; }

# What a binary's stamp must say for it to count as built. Deliberately excludes the local
# Go version: a Go upgrade on the machine does not invalidate working binaries.
recipe_for() {
  local source="${packages[$1]}"
  if [ "$1" = headscale ]; then
    # The wrapper's go.mod/go.sum pin every dependency; a change to them means a rebuild.
    source="${source}@${headscale_version} wrapper=$(cat "${headscale_wrapper}/go.mod" "${headscale_wrapper}/go.sum" | sha256sum | cut -c1-16)"
  fi
  printf '%s CGO_ENABLED=%s flags=%s ldflags=%s\n' "${source}" "${cgo_enabled}" "${build_flags[*]}" "$(ldflags_for "$1")"
}

wrapper_version="$(sed -n -E 's/^[[:space:]]*(require[[:space:]]+)?github\.com\/juanfont\/headscale[[:space:]]+(v[^[:space:]]+).*/\2/p' "${headscale_wrapper}/go.mod" | head -n 1)"
if [ "${wrapper_version}" != "${headscale_version}" ]; then
  die "${headscale_wrapper}/go.mod requires headscale ${wrapper_version:-<none>}, the pin is ${headscale_version}; regenerate it:
  (cd ${headscale_wrapper} && go mod edit -require=github.com/juanfont/headscale@${headscale_version} && go mod tidy)"
fi

is_current() {
  [ -x "${bin_dir}/$1" ] && [ -f "${stamp_dir}/$1" ] && [ "$(cat "${stamp_dir}/$1")" = "$(recipe_for "$1")" ]
}

# shellcheck disable=SC2016 # $PATH is for the shell that evaluates this line
print_path() { printf 'export PATH="%s:$PATH"\n' "${bin_dir}"; }

# Fast path: everything present, no go invocation, no lock.
all_current=1
for name in "${names[@]}"; do is_current "${name}" || { all_current=0; break; }; done
if [ "${all_current}" -eq 1 ]; then
  log "up to date: headscale ${headscale_version}, tailscale ${tailscale_version} in ${bin_dir}"
  print_path
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH (Go >= the version in the modules' go.mod is needed)"
mkdir -p "${bin_dir}" "${stamp_dir}"

take_build_lock "${tools_dir}" "$((build_timeout * ${#names[@]}))"
use_go_caches "${cache_root}" "${cgo_enabled}"

staging="$(mktemp -d "${tools_dir}/.staging.XXXXXX")"
trap 'rm -rf "${staging}"' EXIT

failed=()
for name in "${names[@]}"; do
  if is_current "${name}"; then
    log "${name}: up to date"
    continue
  fi
  pkg="${packages[$name]}"
  # `go install pkg@version` ignores any go.mod around it: run it from the empty staging dir.
  # The headscale build runs inside the wrapper module, -mod=readonly so it never rewrites it.
  dir="${staging}" goflags=""
  [ "${name}" = headscale ] && dir="${headscale_wrapper}" goflags="-mod=readonly"
  ldflags="$(ldflags_for "${name}")"
  log "${name}: (cd ${dir} && GOFLAGS=${goflags} go install ${build_flags[*]} -ldflags='${ldflags}' ${pkg}) (timeout ${build_timeout}s)"
  start="$(date +%s.%N)"
  status=0
  (cd "${dir}" && GOFLAGS="${goflags}" GOBIN="${staging}" timeout --kill-after=30 "${build_timeout}" \
    go install "${build_flags[@]}" -ldflags="${ldflags}" "${pkg}") || status=$?
  elapsed="$(awk -v s="${start}" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')"
  if [ "${status}" -ne 0 ]; then
    if [ "${status}" -eq 124 ] || [ "${status}" -eq 137 ]; then
      log "${name}: FAILED: timed out after ${elapsed}s (SHORTCIRCUIT_GO_BUILD_TIMEOUT=${build_timeout})"
    else
      log "${name}: FAILED (exit ${status}) after ${elapsed}s"
    fi
    failed+=("${name}")
    continue
  fi
  [ -x "${staging}/${name}" ] || die "${name}: go install succeeded but ${staging}/${name} is missing"
  mv -f "${staging}/${name}" "${bin_dir}/${name}"
  recipe_for "${name}" >"${stamp_dir}/${name}"
  log "${name}: built in ${elapsed}s"
done

if [ "${#failed[@]}" -gt 0 ]; then
  log "failed: ${failed[*]}"
  log "hints: 'requires go >= X (running go Y; GOTOOLCHAIN=local)': the pinned module needs a newer Go; pin an"
  log "       older release or rerun with SHORTCIRCUIT_GOTOOLCHAIN=auto (go fetches golang.org/toolchain from the proxy)."
  log "       '403 Forbidden ... This module version is not available': the proxy does not serve a dependency of the"
  log "       pinned release; pin a release whose whole dependency set it serves."
  exit 1
fi

for name in "${names[@]}"; do
  # e.g. "derper: tailscale.com@v1.104.5, go1.27.3" (headscale: the dep line, not the wrapper's)
  log "${name}: $(go version -m "${bin_dir}/${name}" | awk '
    NR == 1 { g = $2 }
    ($1 == "mod" && m == "") || ($1 == "dep" && $2 == "github.com/juanfont/headscale") { m = $2 "@" $3 }
    END { print m ", " g }')"
done
print_path
