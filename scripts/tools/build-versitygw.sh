#!/usr/bin/env bash
# Builds the S3 server the state-backend suite (test/e2e/stateBackend.test.ts) stores Pulumi's
# DIY backend in: versitygw, the Versity S3 gateway, from the Go module proxy with a plain
# `go install`, into a cache outside the clone:
#
#   ${SHORTCIRCUIT_CACHE:-$HOME/.cache/shortcircuit}/versitygw-<version>/bin/versitygw
#
# Why versitygw: it is a real S3 server (SigV4 auth, path-style buckets, ListObjectsV2, the
# conditional and multipart calls Pulumi's gocloud.dev blob driver makes) that serves a plain
# directory (`versitygw posix DIR`: a bucket is a subdirectory, an object a file), so the test
# can start one on loopback in a second and read what it stored. `go install
# github.com/versity/versitygw/cmd/versitygw@<version>` builds from the module proxy as it is.
# SeaweedFS, the other S3 server the proxy serves, has replace directives in its go.mod, so
# `go install …@version` refuses it (it would need a wrapper module copying them).
#
# The version is pinned here, once (VERSITYGW_VERSION overrides it to try a candidate). The
# binary carries a stamp recording what it was built from; a run that finds it current runs no
# go command. Shares GOMODCACHE/GOCACHE and the build lock with the other Go tools
# (go-build-env.sh). First build about 2 minutes on 2 cores (a 61 MB static binary).
#
# Knobs: SHORTCIRCUIT_CACHE, SHORTCIRCUIT_GO_BUILD_TIMEOUT (seconds, default 1800),
# SHORTCIRCUIT_GOTOOLCHAIN, SHORTCIRCUIT_GOPROXY (as in go-build-env.sh).
#   --check   build nothing: exit 3 unless the binary is current
# stdout carries only the line `export SHORTCIRCUIT_VERSITYGW="<path of the binary>"`:
#   eval "$(bash scripts/tools/build-versitygw.sh)"
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
check_only=0
[ "${1:-}" = "--check" ] && check_only=1

log() { printf 'build-versitygw: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=scripts/tools/go-build-env.sh
source "${repo_root}/scripts/tools/go-build-env.sh"

versitygw_version="${VERSITYGW_VERSION:-v1.8.0}"
package="github.com/versity/versitygw/cmd/versitygw@${versitygw_version}"

cache_root="${SHORTCIRCUIT_CACHE:-${HOME}/.cache/shortcircuit}"
tools_dir="${cache_root}/versitygw-${versitygw_version}"
bin="${tools_dir}/bin/versitygw"
stamp="${tools_dir}/stamp"
build_timeout="${SHORTCIRCUIT_GO_BUILD_TIMEOUT:-1800}"
build_flags=(-trimpath)
cgo_enabled=0
# The version stamp its Makefile sets (a module-proxy build otherwise reports "Version : git").
ldflags="-X main.Version=${versitygw_version} -X main.Build=module-proxy"
recipe="${package} CGO_ENABLED=${cgo_enabled} flags=${build_flags[*]} ldflags=${ldflags}"

is_current() { [ -x "${bin}" ] && [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "${recipe}" ]; }
print_export() { printf 'export SHORTCIRCUIT_VERSITYGW="%s"\n' "${bin}"; }

if is_current; then
  log "up to date: versitygw ${versitygw_version} at ${bin}"
  print_export
  exit 0
fi
if [ "${check_only}" -eq 1 ]; then
  log "versitygw ${versitygw_version} is not built (--check builds nothing): run bash scripts/setup.sh"
  exit 3
fi

command -v go >/dev/null || die "go is not on PATH"
mkdir -p "${tools_dir}/bin"
take_build_lock "${tools_dir}" "${build_timeout}"
if is_current; then
  log "built meanwhile by another run: ${bin}"
  print_export
  exit 0
fi
use_go_caches "${cache_root}" "${cgo_enabled}"

staging="$(mktemp -d "${tools_dir}/.staging.XXXXXX")"
trap 'rm -rf "${staging}"' EXIT
log "(cd <staging> && CGO_ENABLED=${cgo_enabled} go install ${build_flags[*]} -ldflags='${ldflags}' ${package}) (timeout ${build_timeout}s)"
start="$(date +%s)"
status=0
# `go install pkg@version` ignores any go.mod around it: run it from the empty staging dir.
(cd "${staging}" && GOBIN="${staging}" timeout --kill-after=30 "${build_timeout}" \
  go install "${build_flags[@]}" -ldflags="${ldflags}" "${package}") >&2 || status=$?
if [ "${status}" -ne 0 ]; then
  [ "${status}" -eq 124 ] || [ "${status}" -eq 137 ] && die "timed out after $(($(date +%s) - start))s (SHORTCIRCUIT_GO_BUILD_TIMEOUT=${build_timeout})"
  die "go install ${package} exited ${status}"
fi
[ -x "${staging}/versitygw" ] || die "go install succeeded but ${staging}/versitygw is missing"
mv -f "${staging}/versitygw" "${bin}"
printf '%s\n' "${recipe}" >"${stamp}"
log "built in $(($(date +%s) - start))s: $(go version -m "${bin}" | awk '$1 == "mod" { print $2 "@" $3 }')"
print_export
