#!/usr/bin/env bash
# Provides the Pulumi engine for real `pulumi up` runs: the CLI, the Node.js language host, the
# Node.js runtime shims and the provider plugins, built from the Go module proxy with plain go
# commands into a cache outside the clone:
#
#   ${SHORTCIRCUIT_CACHE:-$HOME/.cache/shortcircuit}/pulumi-<cli version>/
#     bin/                 pulumi, pulumi-language-nodejs, pulumi-resource-pulumi-nodejs,
#                          pulumi-analyzer-policy, pulumi-resource-<provider> (those that built)
#     pulumi-home/         PULUMI_HOME with the built providers installed as plugins
#     stamps/ logs/        per-component recipe stamps, failure records and go output
#     VERSIONS             what is in bin/ and where it came from
#     build-report.txt     per component: status, the exact command, seconds, the error if any
#
# Components and how they are built (GOMODCACHE/GOCACHE under <cache>/go/, shared with
# build-tailnet-tools.sh; CGO_ENABLED=0, -trimpath):
#   pulumi                  go build in the wrapper module scripts/tools/pulumi-cli, which
#                           requires github.com/pulumi/pulumi/pkg/v3 and sdk/v3 at one release
#                           (the newest whose pkg/v3 zip the module proxy serves: later ones are
#                           refused with 403 "This module version is not available").
#   pulumi-language-nodejs  go build in the wrapper module scripts/tools/pulumi-language-nodejs:
#                           github.com/pulumi/pulumi/sdk/v3 v3.68.0, the last release whose
#                           sdk/v3 module still contains sdk/nodejs/cmd/pulumi-language-nodejs
#                           (later hosts are a separate, untagged module the proxy refuses).
#   shims                   pulumi-resource-pulumi-nodejs (dynamic providers) and
#                           pulumi-analyzer-policy, the sh scripts shipped in the same sdk/v3
#                           module (nodejs/dist); they run the project's own @pulumi/pulumi.
#   pulumi-resource-<name>  the resource plugins the module proxy serves, installed as plugins at
#                           the versions pinned in package.json: today only kubernetes (required).
#                           command and tls are not served: the end-to-end suite uses project-written
#                           TEST DOUBLES of them (scripts/lab/provider-doubles, built by build-engine.sh);
#                           digitalocean is not built (the droplet path is not run end to end).
#                           With a wrapper scripts/tools/pulumi-resource-<name>/go.mod that requires
#                           the provider module, the plugin's main package is copied from the
#                           downloaded module (cmd/pulumi-resource-<name>/*.go, *.json) next to a
#                           copy of the wrapper's go.mod/go.sum in a staging directory, its
#                           generate.go is run (VERSION=<pin>) and `go build` builds it there;
#                           nothing of upstream's source is kept in the clone. Without a wrapper:
#                           `go install <module>/cmd/pulumi-resource-<name>@v<pin>` from an empty
#                           directory. Each attempt is bounded by a timeout; a failure is recorded
#                           (build-report.txt) and not retried on later runs with the same recipe
#                           unless SHORTCIRCUIT_PULUMI_RETRY=1 (a timed-out attempt is always retried).
#
# Every built file has a stamp recording exactly what it was built from; a run that finds all
# components current (or failed before with the same recipe) and the plugins installed runs no
# go command and takes well under a second.
#
# Knobs:
#   SHORTCIRCUIT_CACHE             cache root (default ~/.cache/shortcircuit)
#   SHORTCIRCUIT_GO_BUILD_TIMEOUT  seconds per component (default 2400)
#   SHORTCIRCUIT_GOTOOLCHAIN       GOTOOLCHAIN for the builds (default: `go env GOTOOLCHAIN`)
#   SHORTCIRCUIT_GOPROXY           GOPROXY for the builds (default: `go env GOPROXY` without
#                                  `direct`/`off`, so nothing but the module proxy is asked)
#   SHORTCIRCUIT_PULUMI_RETRY=1    retry components whose last attempt failed
#   SHORTCIRCUIT_PULUMI_CHECK_ONLY=1  build nothing: exit 3 unless everything is current
#
# Progress and timings go to stderr. stdout carries only `export ...` lines:
#   eval "$(scripts/tools/build-pulumi.sh)"
# Exit status: 0 when the CLI, the language host, the shims and every required provider are
# there; 2 when the CLI, host and shims are there but a required provider is not (the export
# lines are still printed); 1 otherwise.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cli_wrapper="${repo_root}/scripts/tools/pulumi-cli"
host_wrapper="${repo_root}/scripts/tools/pulumi-language-nodejs"
package_json="${repo_root}/package.json"

log() { printf 'build-pulumi: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=scripts/tools/go-build-env.sh
source "${repo_root}/scripts/tools/go-build-env.sh"

# `	github.com/pulumi/pulumi/pkg/v3 v3.259.0` (or `require <mod> <v>`) in a wrapper go.mod.
wrapper_requires() {
  sed -n -E "s#^[[:space:]]*(require[[:space:]]+)?$2[[:space:]]+(v[^[:space:]]+)([[:space:]].*)?\$#\\2#p" "$1/go.mod" | head -n 1
}
# `"@pulumi/command": "1.2.1",` in package.json -> 1.2.1 (exact pins only).
npm_pin() {
  sed -n -E "s#^[[:space:]]*\"@pulumi/$1\":[[:space:]]*\"([^\"]*)\".*#\\1#p" "${package_json}" | head -n 1
}
wrapper_hash() { cat "$1/go.mod" "$1/go.sum" | sha256sum | cut -c1-16; }
now() { date +%s.%N; }
since() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }

cli_version="$(wrapper_requires "${cli_wrapper}" 'github\.com/pulumi/pulumi/pkg/v3')"
cli_sdk_version="$(wrapper_requires "${cli_wrapper}" 'github\.com/pulumi/pulumi/sdk/v3')"
host_version="$(wrapper_requires "${host_wrapper}" 'github\.com/pulumi/pulumi/sdk/v3')"
[ -n "${cli_version}" ] || die "${cli_wrapper}/go.mod does not require github.com/pulumi/pulumi/pkg/v3"
[ "${cli_version}" = "${cli_sdk_version}" ] ||
  die "${cli_wrapper}/go.mod requires pkg/v3 ${cli_version} but sdk/v3 ${cli_sdk_version:-<none>}: they must be one release"
[ -n "${host_version}" ] || die "${host_wrapper}/go.mod does not require github.com/pulumi/pulumi/sdk/v3"

# Providers: name -> npm pin, module path (major version suffix from the pin), required or not.
providers=(kubernetes)
declare -A provider_required=([kubernetes]=1)
declare -A provider_version provider_module
for p in "${providers[@]}"; do
  pin="$(npm_pin "${p}")"
  [[ "${pin}" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
    die "package.json must pin @pulumi/${p} to an exact version (found '${pin:-<none>}'): the plugin is built at that version"
  provider_version[$p]="${pin}"
  major="${pin%%.*}"
  module="github.com/pulumi/pulumi-${p}/provider"
  [ "${major}" -ge 2 ] && module="${module}/v${major}"
  provider_module[$p]="${module}"
done

cache_root="${SHORTCIRCUIT_CACHE:-${HOME}/.cache/shortcircuit}"
out_dir="${cache_root}/pulumi-${cli_version#v}"
bin_dir="${out_dir}/bin"
stamp_dir="${out_dir}/stamps"
log_dir="${out_dir}/logs"
pulumi_home="${out_dir}/pulumi-home"
report="${out_dir}/build-report.txt"
build_timeout="${SHORTCIRCUIT_GO_BUILD_TIMEOUT:-2400}"
retry_failed="${SHORTCIRCUIT_PULUMI_RETRY:-0}"

build_flags=(-trimpath)
cgo_enabled=0
shims=(pulumi-resource-pulumi-nodejs pulumi-analyzer-policy)
components=(pulumi pulumi-language-nodejs shims "${providers[@]}")

binary_of() {
  case "$1" in
    pulumi | pulumi-language-nodejs) echo "$1" ;;
    shims) echo "${shims[0]}" ;;
    *) echo "pulumi-resource-$1" ;;
  esac
}
version_of() {
  case "$1" in
    pulumi) echo "${cli_version}" ;;
    pulumi-language-nodejs | shims) echo "${host_version}" ;;
    *) echo "v${provider_version[$1]}" ;;
  esac
}
provider_wrapper() { echo "${repo_root}/scripts/tools/pulumi-resource-$1"; }

# What a component's stamp must say for it to count as built (deliberately not the local Go
# version: a Go upgrade on the machine does not invalidate working binaries).
recipe_for() {
  case "$1" in
    pulumi)
      printf 'github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@%s wrapper=%s CGO_ENABLED=%s flags=%s\n' \
        "${cli_version}" "$(wrapper_hash "${cli_wrapper}")" "${cgo_enabled}" "${build_flags[*]}" ;;
    pulumi-language-nodejs)
      printf 'github.com/pulumi/pulumi/sdk/v3/nodejs/cmd/pulumi-language-nodejs@%s wrapper=%s CGO_ENABLED=%s flags=%s\n' \
        "${host_version}" "$(wrapper_hash "${host_wrapper}")" "${cgo_enabled}" "${build_flags[*]}" ;;
    shims)
      printf 'github.com/pulumi/pulumi/sdk/v3@%s nodejs/dist/{%s}\n' "${host_version}" "${shims[*]}" ;;
    *)
      local w wrapper_part=""
      w="$(provider_wrapper "$1")"
      [ -f "${w}/go.mod" ] &&
        wrapper_part=" module=$(wrapper_requires "${w}" "${provider_module[$1]//./\\.}") wrapper=$(wrapper_hash "${w}")"
      printf '%s/cmd/pulumi-resource-%s@v%s%s CGO_ENABLED=%s flags=%s\n' "${provider_module[$1]}" "$1" \
        "${provider_version[$1]}" "${wrapper_part}" "${cgo_enabled}" "${build_flags[*]}" ;;
  esac
}

is_current() {
  local b
  b="$(binary_of "$1")"
  if [ "$1" = shims ]; then
    for b in "${shims[@]}"; do [ -x "${bin_dir}/${b}" ] || return 1; done
  else
    [ -x "${bin_dir}/${b}" ] || return 1
  fi
  [ -f "${stamp_dir}/$1" ] && [ "$(cat "${stamp_dir}/$1")" = "$(recipe_for "$1")" ]
}
# A failure recorded for the same recipe (not a timeout), and no retry asked for.
failed_before() {
  [ "${retry_failed}" != 1 ] && [ -f "${stamp_dir}/$1.failed" ] &&
    [ "$(head -n 1 "${stamp_dir}/$1.failed")" = "$(recipe_for "$1")" ]
}
is_provider() { [ -n "${provider_required[$1]+x}" ]; }
plugin_path() { echo "${pulumi_home}/plugins/resource-$1-v${provider_version[$1]}/pulumi-resource-$1"; }
plugin_installed() { [ -f "$(plugin_path "$1")" ] && cmp -s "$(plugin_path "$1")" "${bin_dir}/pulumi-resource-$1"; }

print_exports() {
  # shellcheck disable=SC2016 # $PATH is for the shell that evaluates this line
  printf 'export PATH="%s:$PATH"\n' "${bin_dir}"
  printf 'export PULUMI_HOME="%s"\n' "${pulumi_home}"
  # No update check and no plugin downloads: both would go to hosts this toolchain never needs.
  printf 'export PULUMI_SKIP_UPDATE_CHECK=true\n'
  printf 'export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true\n'
}
# 0: everything required is there; 2: only a required provider is missing; 1: worse.
final_status() {
  local c
  for c in pulumi pulumi-language-nodejs shims; do is_current "${c}" || return 1; done
  for c in "${providers[@]}"; do
    if [ "${provider_required[$c]}" = 1 ] && ! { is_current "${c}" && plugin_installed "${c}"; }; then
      return 2
    fi
  done
  return 0
}
finish() {
  local status=0
  final_status || status=$?
  if [ "${status}" -ne 1 ]; then
    print_exports
  fi
  if [ "${status}" -eq 2 ]; then
    local missing=() c
    for c in "${providers[@]}"; do
      [ "${provider_required[$c]}" = 1 ] && ! is_current "${c}" && missing+=("pulumi-resource-${c}")
    done
    log "required provider plugin(s) missing: ${missing[*]} (see ${report}); exit 2"
  fi
  exit "${status}"
}

# Fast path: everything current or settled, plugins installed; no go invocation, no lock.
settled() {
  if is_current "$1"; then
    ! is_provider "$1" || plugin_installed "$1"
  else
    is_provider "$1" && failed_before "$1"
  fi
}
all_settled=1
for c in "${components[@]}"; do settled "${c}" || { all_settled=0; break; }; done
if [ "${all_settled}" -eq 1 ]; then
  log "up to date: pulumi ${cli_version}, pulumi-language-nodejs ${host_version} in ${bin_dir} (report: ${report})"
  for p in "${providers[@]}"; do
    if is_current "${p}"; then
      log "  pulumi-resource-${p} v${provider_version[$p]}: built, installed in ${pulumi_home}"
    else
      log "  pulumi-resource-${p} v${provider_version[$p]}: failed before, not retried (SHORTCIRCUIT_PULUMI_RETRY=1 retries)"
    fi
  done
  finish
fi

if [ "${SHORTCIRCUIT_PULUMI_CHECK_ONLY:-0}" = 1 ]; then
  log "not built yet (SHORTCIRCUIT_PULUMI_CHECK_ONLY=1: nothing is built): run bash scripts/setup.sh"
  exit 3
fi
command -v go >/dev/null || die "go is not on PATH"
mkdir -p "${bin_dir}" "${stamp_dir}" "${log_dir}" "${pulumi_home}"

take_build_lock "${out_dir}" "$((build_timeout * ${#components[@]}))"
use_go_caches "${cache_root}" "${cgo_enabled}"

staging="$(mktemp -d "${out_dir}/.staging.XXXXXX")"
trap 'rm -rf "${staging}"' EXIT

declare -A result_status result_command result_seconds

# Runs one go build/install for a component; the binary lands in ${staging}.
build_component() {
  local name="$1" bin dir pkg version ldflags cmd_text status=0 start w
  bin="$(binary_of "${name}")"
  version="$(version_of "${name}")"
  case "${name}" in
    pulumi)
      dir="${cli_wrapper}" pkg="github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
      ldflags="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=${version}" ;;
    pulumi-language-nodejs)
      dir="${host_wrapper}" pkg="github.com/pulumi/pulumi/sdk/v3/nodejs/cmd/pulumi-language-nodejs"
      ldflags="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=${version}" ;;
    *)
      pkg="${provider_module[$name]}/cmd/${bin}"
      ldflags="-X ${provider_module[$name]}/pkg/version.Version=${version}"
      w="$(provider_wrapper "${name}")"
      if [ -f "${w}/go.mod" ]; then
        # The plugin's main package (with its generated, embedded files) from the downloaded
        # module, next to the wrapper's go.mod/go.sum.
        local module_version module_dir
        module_version="$(wrapper_requires "${w}" "${provider_module[$name]//./\\.}")"
        dir="${staging}/src-${name}" pkg="."
        mkdir -p "${dir}"
        cp "${w}/go.mod" "${w}/go.sum" "${dir}/"
        module_dir="$(cd "${dir}" && timeout 600 go mod download -json "${provider_module[$name]}@${module_version}" |
          sed -n -E 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p')" || module_dir=""
        if [ -z "${module_dir}" ] || ! cp "${module_dir}/cmd/${bin}/"*.go "${module_dir}/cmd/${bin}/"*.json "${dir}/" 2>"${log_dir}/${name}.log"; then
          echo "could not copy ${provider_module[$name]}@${module_version}/cmd/${bin} from the module cache" >>"${log_dir}/${name}.log"
          result_seconds[$name]=0 result_status[$name]="FAILED"
          log "${name}: FAILED: $(tail -n 1 "${log_dir}/${name}.log")"
          return 1
        fi
        chmod u+w "${dir}"/*
        if [ -f "${dir}/generate.go" ]; then
          log "${name}: (cd <staging>/src-${name} && VERSION=${version#v} go run generate.go)"
          if ! (cd "${dir}" && VERSION="${version#v}" timeout "${build_timeout}" go run -mod=readonly generate.go) >"${log_dir}/${name}.log" 2>&1; then
            result_seconds[$name]=0 result_status[$name]="FAILED"
            log "${name}: generate.go FAILED:"
            sed 's/^/    /' "${log_dir}/${name}.log" | tail -n 12 >&2
            return 1
          fi
          rm -f "${dir}/generate.go"
        fi
      else
        dir="${staging}" pkg="${pkg}@${version}"
      fi ;;
  esac
  local go_cmd
  if [ "${dir}" = "${staging}" ]; then
    # `go install pkg@version` ignores any go.mod around it: run it from the empty staging dir.
    go_cmd=(go install "${build_flags[@]}" -ldflags "${ldflags}" "${pkg}")
  else
    go_cmd=(go build -mod=readonly "${build_flags[@]}" -ldflags "${ldflags}" -o "${staging}/${bin}" "${pkg}")
  fi
  # The command as it can be pasted (staging dir shown as <staging>).
  cmd_text="$(printf '%q ' "${go_cmd[@]}")"
  cmd_text="(cd ${dir} && CGO_ENABLED=${cgo_enabled} ${cmd_text% })"
  cmd_text="${cmd_text//${staging}/<staging>}"
  result_command[$name]="${cmd_text}"
  log "${name}: ${cmd_text} (timeout ${build_timeout}s)"
  start="$(now)"
  (cd "${dir}" && GOBIN="${staging}" timeout --kill-after=30 "${build_timeout}" "${go_cmd[@]}") \
    >"${log_dir}/${name}.log" 2>&1 || status=$?
  result_seconds[$name]="$(since "${start}")"
  if [ "${status}" -eq 0 ] && [ -x "${staging}/${bin}" ]; then
    mv -f "${staging}/${bin}" "${bin_dir}/${bin}"
    recipe_for "${name}" >"${stamp_dir}/${name}"
    rm -f "${stamp_dir}/${name}.failed"
    printf 'seconds=%s built_at=%s\n' "${result_seconds[$name]}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
      >"${stamp_dir}/${name}.built"
    result_status[$name]="built"
    log "${name}: built in ${result_seconds[$name]}s"
    return 0
  fi
  if [ "${status}" -eq 124 ] || [ "${status}" -eq 137 ]; then
    printf 'timed out after %ss (SHORTCIRCUIT_GO_BUILD_TIMEOUT=%s)\n' "${result_seconds[$name]}" \
      "${build_timeout}" >>"${log_dir}/${name}.log"
    rm -f "${stamp_dir}/${name}.failed" # a time-out is retried next run
  else
    [ "${status}" -ne 0 ] || echo "go exited 0 but ${staging}/${bin} is missing" >>"${log_dir}/${name}.log"
    if is_provider "${name}"; then
      # Why the module itself is not to be had, in go's words (the install error names the
      # package path, which hides e.g. a 403 on the module or a module without the package).
      printf -- '--- go mod download -json %s@%s:\n' "${provider_module[$name]}" "${version}" >>"${log_dir}/${name}.log"
      (cd "${staging}" && timeout 120 go mod download -json "${provider_module[$name]}@${version}" 2>&1 |
        sed -n -E 's/^[[:space:]]*"Error": "(.*)",?$/\1/p' | sed 's/\\n/\n/g; s/\\t/\t/g') >>"${log_dir}/${name}.log" || true
    fi
    { recipe_for "${name}"; printf 'exit=%s seconds=%s at=%s\n' "${status}" "${result_seconds[$name]}" \
      "$(date -u +%Y-%m-%dT%H:%M:%SZ)"; } >"${stamp_dir}/${name}.failed"
  fi
  result_status[$name]="FAILED"
  log "${name}: FAILED after ${result_seconds[$name]}s:"
  sed 's/^/    /' "${log_dir}/${name}.log" | tail -n 12 >&2
  return 1
}

copy_shims() {
  local start dist s
  result_command[shims]="cp <GOMODCACHE>/github.com/pulumi/pulumi/sdk/v3@${host_version}/nodejs/dist/{${shims[*]}} ${bin_dir}/"
  start="$(now)"
  dist="$(cd "${host_wrapper}" && go mod download github.com/pulumi/pulumi/sdk/v3 &&
    go list -mod=readonly -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)/nodejs/dist" || dist=""
  for s in "${shims[@]}"; do
    if [ -z "${dist}" ] || [ ! -f "${dist}/${s}" ]; then
      result_seconds[shims]="$(since "${start}")" result_status[shims]="FAILED"
      echo "${dist:-<sdk/v3 module dir not found>}/${s} is missing" >"${log_dir}/shims.log"
      log "shims: FAILED: $(cat "${log_dir}/shims.log")"
      return 1
    fi
    install -m 0755 "${dist}/${s}" "${bin_dir}/${s}"
  done
  recipe_for shims >"${stamp_dir}/shims"
  result_seconds[shims]="$(since "${start}")" result_status[shims]="built"
  printf 'seconds=%s built_at=%s\n' "${result_seconds[shims]}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"${stamp_dir}/shims.built"
  log "shims: copied in ${result_seconds[shims]}s"
}

install_plugin() {
  local name="$1" start status=0 version="${provider_version[$1]}"
  plugin_installed "${name}" && return 0
  start="$(now)"
  PULUMI_HOME="${pulumi_home}" PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true \
    "${bin_dir}/pulumi" plugin install resource "${name}" "${version}" --reinstall \
    --file "${bin_dir}/pulumi-resource-${name}" >"${log_dir}/${name}.plugin-install.log" 2>&1 || status=$?
  if [ "${status}" -ne 0 ] || ! plugin_installed "${name}"; then
    log "${name}: pulumi plugin install resource ${name} ${version} --file ... FAILED:"
    sed 's/^/    /' "${log_dir}/${name}.plugin-install.log" >&2
    result_status[$name]="${result_status[$name]:-up to date}, plugin install FAILED"
    return 1
  fi
  log "${name}: installed as plugin resource ${name} ${version} into ${pulumi_home} in $(since "${start}")s"
}

total_start="$(now)"
for c in "${components[@]}"; do
  if is_current "${c}"; then
    result_status[$c]="up to date"
    log "${c}: up to date"
    continue
  fi
  if is_provider "${c}" && failed_before "${c}"; then
    result_status[$c]="FAILED before (not retried; SHORTCIRCUIT_PULUMI_RETRY=1 retries)"
    log "${c}: failed before with the same recipe, not retried (see ${log_dir}/${c}.log)"
    continue
  fi
  case "${c}" in
    pulumi | pulumi-language-nodejs) build_component "${c}" || true ;;
    shims) copy_shims || true ;;
    *) build_component "${c}" || true ;;
  esac
done

# Providers into PULUMI_HOME (needs the CLI).
if is_current pulumi; then
  for p in "${providers[@]}"; do
    if is_current "${p}"; then install_plugin "${p}" || true; fi
  done
fi

# VERSIONS and build-report.txt, from the stamps (so they also describe components that were
# already up to date in this run).
{
  printf '# written by scripts/tools/build-pulumi.sh at %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for c in "${components[@]}"; do
    if is_current "${c}"; then
      if [ "${c}" = shims ]; then b="${shims[*]}"; else b="$(binary_of "${c}")"; fi
      printf '%s %s %s\n' "${b}" "$(version_of "${c}")" "$(recipe_for "${c}")"
    fi
  done
} >"${out_dir}/VERSIONS"

{
  printf 'build-pulumi report, %s, %s, GOPROXY=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(go version)" "${GOPROXY}"
  printf 'cache: %s\n\n' "${out_dir}"
  for c in "${components[@]}"; do
    req=""
    is_provider "${c}" && { [ "${provider_required[$c]}" = 1 ] && req=" (required)" || req=" (optional)"; }
    printf '== %s %s%s: %s\n' "${c}" "$(version_of "${c}")" "${req}" "${result_status[$c]:-?}"
    printf '   recipe: %s\n' "$(recipe_for "${c}")"
    [ -n "${result_command[$c]:-}" ] && printf '   command: %s\n' "${result_command[$c]}"
    [ -n "${result_seconds[$c]:-}" ] && printf '   seconds (this run): %s\n' "${result_seconds[$c]}"
    [ -f "${stamp_dir}/${c}.built" ] && is_current "${c}" && printf '   last build: %s\n' "$(cat "${stamp_dir}/${c}.built")"
    if is_provider "${c}" && is_current "${c}"; then
      if plugin_installed "${c}"; then printf '   plugin: installed in %s\n' "${pulumi_home}"; else printf '   plugin: NOT installed\n'; fi
    fi
    if ! is_current "${c}" && [ -f "${log_dir}/${c}.log" ]; then
      printf '   error (%s):\n' "${log_dir}/${c}.log"
      tail -n 20 "${log_dir}/${c}.log" | sed 's/^/     | /'
    fi
  done
} >"${report}"

log "done in $(since "${total_start}")s; report: ${report}"
for c in "${components[@]}"; do
  log "  ${c} $(version_of "${c}"): ${result_status[$c]:-?}${result_seconds[$c]:+ (${result_seconds[$c]}s)}"
done
finish
