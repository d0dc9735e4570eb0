#!/usr/bin/env bash
# Builds the pinned Litestream (Headscale's SQLite replicator on the control host) from the Go
# module proxy with plain `go install`, into a cache outside the clone:
#
#   ${SHORTCIRCUIT_CACHE:-$HOME/.cache/shortcircuit}/litestream-<version>/bin/litestream
#
# (The S3 server its lab test replicates to, versitygw, is scripts/tools/build-versitygw.sh's.)
#
# Litestream is pure Go (modernc.org/sqlite), so CGO_ENABLED=0 gives a static binary that also
# runs inside test namespaces. The binary carries a stamp recording what it was built from; a run
# that finds it stamped builds nothing. Every build is bounded by a timeout.
#
# Version: components/versions.ts (LITESTREAM_VERSION overrides).
#
# Progress goes to stderr; the last line on stdout is `export PATH="<bins>:$PATH"`.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
versions_file="${repo_root}/components/versions.ts"

log() { printf 'build-litestream: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=scripts/tools/go-build-env.sh
source "${repo_root}/scripts/tools/go-build-env.sh"

litestream_version="${LITESTREAM_VERSION:-$(pin_from_versions_ts "${versions_file}" litestream)}"
[ -n "${litestream_version}" ] || die "no litestream version in ${versions_file} (or LITESTREAM_VERSION)"

cache_root="${SHORTCIRCUIT_CACHE:-${HOME}/.cache/shortcircuit}"
build_timeout="${SHORTCIRCUIT_GO_BUILD_TIMEOUT:-1800}"
cgo_enabled=0
build_flags=(-trimpath)

names=(litestream)
declare -A tool_dirs=(
  [litestream]="${cache_root}/litestream-${litestream_version}"
)
declare -A packages=(
  [litestream]="github.com/benbjohnson/litestream/cmd/litestream@${litestream_version}"
)
# litestream's main reads its version from a -X stamp (main.Version); without it, `litestream
# version` prints "(development build)".
declare -A ldflags=(
  [litestream]="-X main.Version=${litestream_version}"
)

# What a binary's stamp must say for it to count as built (not the local Go version: a Go
# upgrade does not invalidate working binaries).
recipe_for() {
  printf '%s CGO_ENABLED=%s flags=%s ldflags=%s\n' "${packages[$1]}" "${cgo_enabled}" "${build_flags[*]}" "${ldflags[$1]}"
}
is_current() {
  local dir="${tool_dirs[$1]}"
  [ -x "${dir}/bin/$1" ] && [ -f "${dir}/stamps/$1" ] && [ "$(cat "${dir}/stamps/$1")" = "$(recipe_for "$1")" ]
}
is_present() { is_current "$1"; }

# shellcheck disable=SC2016 # $PATH is for the shell that evaluates this line
print_path() { printf 'export PATH="%s:$PATH"\n' "${tool_dirs[litestream]}/bin"; }

all_present=1
for name in "${names[@]}"; do is_present "${name}" || { all_present=0; break; }; done
if [ "${all_present}" -eq 1 ]; then
  log "up to date: litestream ${litestream_version}"
  print_path
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH"
use_go_caches "${cache_root}" "${cgo_enabled}"

for name in "${names[@]}"; do
  dir="${tool_dirs[$name]}"
  mkdir -p "${dir}/bin" "${dir}/stamps"
  # One builder per output directory; the lock is released when the subshell below exits.
  (
    take_build_lock "${dir}" "${build_timeout}"
    if is_present "${name}"; then
      log "${name}: up to date"
      exit 0
    fi
    staging="$(mktemp -d "${dir}/.staging.XXXXXX")"
    trap 'rm -rf "${staging}"' EXIT
    log "${name}: go install ${build_flags[*]} -ldflags='${ldflags[$name]}' ${packages[$name]} (timeout ${build_timeout}s)"
    start="$(date +%s)"
    # `go install pkg@version` ignores any go.mod around it: run it from the empty staging dir.
    (cd "${staging}" && GOBIN="${staging}" timeout --kill-after=30 "${build_timeout}" \
      go install "${build_flags[@]}" -ldflags="${ldflags[$name]}" "${packages[$name]}") ||
      die "${name}: go install failed (exit $?) after $(($(date +%s) - start))s"
    [ -x "${staging}/${name}" ] || die "${name}: go install succeeded but ${staging}/${name} is missing"
    mv -f "${staging}/${name}" "${dir}/bin/${name}"
    recipe_for "${name}" >"${dir}/stamps/${name}"
    log "${name}: built in $(($(date +%s) - start))s"
  )
done
print_path
