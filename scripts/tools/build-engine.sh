#!/usr/bin/env bash
# Everything the end-to-end suite (test/e2e) runs besides the lab fleet, built with plain go
# commands from the Go module proxy (and our own code), cached outside the clone under
# ${SHORTCIRCUIT_CACHE:-$HOME/.cache/shortcircuit}:
#
#   pulumi-<cli>/           scripts/tools/build-pulumi.sh: the Pulumi CLI, the Node.js language
#                           host, its shims and the kubernetes resource plugin (see there)
#   kubernetes-<release>/   bin/kube-apiserver, bin/kubectl: `go build k8s.io/kubernetes/cmd/...`
#                           in the wrapper module scripts/tools/kubernetes (requires
#                           k8s.io/kubernetes at the release, every staging module replaced by its
#                           published v0.<minor>.<patch>), version stamped into the binaries
#   provider-doubles-<sha>/ pulumi-resource-command, pulumi-resource-tls,
#                           pulumi-resource-digitalocean: the project's TEST DOUBLES of those
#                           three providers (scripts/lab/provider-doubles, our own code; <sha> is a
#                           hash of its files), plugin versions = package.json pins
#   etcd comes from Debian's etcd-server package (scripts/setup.sh installs it).
#
# A run that finds everything current runs no go command and takes about a second.
# Knobs: those of build-pulumi.sh, plus
#   --check       build nothing; exit 3 if anything is missing (the suite uses this)
# stdout carries only `export ...` lines: eval "$(bash scripts/tools/build-engine.sh)"
#   PATH (CLI, host, kube-apiserver, kubectl), PULUMI_HOME (holds the kubernetes plugin),
#   PULUMI_SKIP_UPDATE_CHECK, PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION,
#   SHORTCIRCUIT_KUBE_BIN, SHORTCIRCUIT_PROVIDER_DOUBLES (the double binaries' directory)
# Exit status: 0 everything there; 3 (--check) something missing; 1 a build failed.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
check_only=0
[ "${1:-}" = "--check" ] && check_only=1

log() { printf 'build-engine: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s; }

cache_root="${SHORTCIRCUIT_CACHE:-${HOME}/.cache/shortcircuit}"
kube_wrapper="${repo_root}/scripts/tools/kubernetes"
doubles_src="${repo_root}/scripts/lab/provider-doubles"
package_json="${repo_root}/package.json"
build_timeout="${SHORTCIRCUIT_GO_BUILD_TIMEOUT:-2400}"

npm_pin() { sed -n -E "s#^[[:space:]]*\"@pulumi/$1\":[[:space:]]*\"([^\"]*)\".*#\\1#p" "${package_json}" | head -n 1; }
wrapper_hash() { cat "$1/go.mod" "$1/go.sum" | sha256sum | cut -c1-16; }

# 1. CLI, language host, shims, kubernetes plugin.
status=0
pulumi_exports="$(SHORTCIRCUIT_PULUMI_CHECK_ONLY="${check_only}" bash "${repo_root}/scripts/tools/build-pulumi.sh")" || status=$?
if [ "${status}" -ne 0 ]; then
  [ "${status}" -eq 3 ] && exit 3
  die "scripts/tools/build-pulumi.sh exited ${status}"
fi

# 2. kube-apiserver and kubectl.
kube_release="$(sed -n -E 's#^[[:space:]]*(require[[:space:]]+)?k8s\.io/kubernetes[[:space:]]+(v[0-9.]+)([[:space:]].*)?$#\2#p' "${kube_wrapper}/go.mod" | head -n 1)"
[ -n "${kube_release}" ] || die "${kube_wrapper}/go.mod does not require k8s.io/kubernetes"
kube_dir="${cache_root}/kubernetes-${kube_release}"
minor="$(echo "${kube_release}" | cut -d. -f2)"
kube_ldflags="-X k8s.io/component-base/version.gitVersion=${kube_release} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/client-go/pkg/version.gitVersion=${kube_release} -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${minor}"
kube_recipe="k8s.io/kubernetes@${kube_release} wrapper=$(wrapper_hash "${kube_wrapper}") CGO_ENABLED=0 flags=-trimpath ldflags=${kube_ldflags}"

# 3. The provider doubles.
doubles_hash="$(cd "${doubles_src}" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)"
doubles_dir="${cache_root}/provider-doubles-${doubles_hash}"
command_pin="$(npm_pin command)" tls_pin="$(npm_pin tls)" digitalocean_pin="$(npm_pin digitalocean)"
doubles_recipe="scripts/lab/provider-doubles sha=${doubles_hash} command=${command_pin} tls=${tls_pin} digitalocean=${digitalocean_pin} CGO_ENABLED=0 flags=-trimpath"

current() { [ -f "$1/stamp" ] && [ "$(cat "$1/stamp")" = "$2" ]; }

if ! current "${kube_dir}" "${kube_recipe}" || ! current "${doubles_dir}" "${doubles_recipe}"; then
  [ "${check_only}" -eq 1 ] && { log "kube-apiserver/kubectl or the provider doubles are not built: run bash scripts/setup.sh"; exit 3; }
  command -v go >/dev/null || die "go is not on PATH"
  default_goproxy="$(go env GOPROXY | tr ',|' '[\n*]' | { grep -v -x -E 'direct|off' || true; } | paste -sd, -)"
  export GOMODCACHE="${cache_root}/go/mod" GOCACHE="${cache_root}/go/build"
  export GOTOOLCHAIN="${SHORTCIRCUIT_GOTOOLCHAIN:-$(go env GOTOOLCHAIN)}"
  export GOPROXY="${SHORTCIRCUIT_GOPROXY:-${default_goproxy:-https://proxy.golang.org}}"
  export CGO_ENABLED=0 GO111MODULE=on GOWORK=off GOFLAGS=
  mkdir -p "${cache_root}"
  exec 9>"${cache_root}/.build-engine.lock"
  flock -w "$((build_timeout * 3))" 9 || die "timed out waiting for another build-engine run"
fi

build_into() { # <out dir> <recipe> <src dir> "<file>|<package>|<ldflags>"...
  local out="$1" recipe="$2" src="$3" start staging entry file pkg ldflags
  shift 3
  current "${out}" "${recipe}" && { log "$(basename "${out}"): up to date"; return 0; }
  staging="$(mktemp -d "${cache_root}/.staging.XXXXXX")"
  for entry in "$@"; do
    IFS='|' read -r file pkg ldflags <<<"${entry}"
    start="$(now)"
    log "$(basename "${out}"): (cd ${src} && CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags '${ldflags}' -o ${file} ${pkg}) (timeout ${build_timeout}s)"
    if ! (cd "${src}" && timeout --kill-after=30 "${build_timeout}" go build -mod=readonly -trimpath -ldflags "${ldflags}" -o "${staging}/${file}" "${pkg}") >"${staging}.log" 2>&1; then
      tail -n 20 "${staging}.log" | sed 's/^/    /' >&2
      rm -rf "${staging}" "${staging}.log"
      die "building ${pkg} failed"
    fi
    log "  ${file}: built in $(($(now) - start))s"
  done
  rm -rf "${out}" && mkdir -p "$(dirname "${out}")" && mv "${staging}" "${out}" && rm -f "${staging}.log"
  echo "${recipe}" >"${out}/stamp"
}

build_into "${kube_dir}" "${kube_recipe}" "${kube_wrapper}" \
  "bin/kube-apiserver|k8s.io/kubernetes/cmd/kube-apiserver|${kube_ldflags}" \
  "bin/kubectl|k8s.io/kubernetes/cmd/kubectl|${kube_ldflags}"
# Plugin binaries carry the names `pulumi plugin install --file` expects.
build_into "${doubles_dir}" "${doubles_recipe}" "${doubles_src}" \
  "pulumi-resource-command|./command|-X main.Version=${command_pin}" \
  "pulumi-resource-tls|./tls|-X main.Version=${tls_pin}" \
  "pulumi-resource-digitalocean|./digitalocean|-X main.Version=${digitalocean_pin}"
for f in "${kube_dir}/bin/kube-apiserver" "${kube_dir}/bin/kubectl" "${doubles_dir}/pulumi-resource-command" "${doubles_dir}/pulumi-resource-tls" "${doubles_dir}/pulumi-resource-digitalocean"; do
  [ -x "${f}" ] || { [ "${check_only}" -eq 1 ] && exit 3; die "${f} is missing"; }
done

printf '%s\n' "${pulumi_exports}"
# shellcheck disable=SC2016 # $PATH is for the shell that evaluates this line
printf 'export PATH="%s:$PATH"\n' "${kube_dir}/bin"
printf 'export SHORTCIRCUIT_KUBE_BIN="%s"\n' "${kube_dir}/bin"
printf 'export SHORTCIRCUIT_PROVIDER_DOUBLES="%s"\n' "${doubles_dir}"
log "ready: $(printf '%s' "${pulumi_exports}" | sed -n 's/^export PATH="\([^:]*\):.*/\1/p'), ${kube_dir}/bin, ${doubles_dir}"
