#!/usr/bin/env bash
# ssh-switch.sh <nebula|tailnet|lan> [render-dir]
#
# Points every SSH path at one network in one step: ssh, scp and Ansible through the
# generated client config, and the Pulumi program through SHORTCIRCUIT_SSH_VIA. Installs the
# three configs from a `npm run render` output dir when one is given. Idempotent.
set -euo pipefail

usage() { echo "usage: $0 <nebula|tailnet|lan> [render-dir]" >&2; exit 2; }
if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then usage; fi
path="$1"
case "${path}" in nebula|tailnet|lan) ;; *) usage ;; esac

dir="${HOME}/.ssh/shortcircuit"
mkdir -p "${dir}"
chmod 700 "${dir}"
if [ "$#" -eq 2 ]; then
  for name in nebula tailnet lan; do
    install -m 600 "$2/ssh/${name}.conf" "${dir}/${name}.conf"
  done
fi
[ -f "${dir}/${path}.conf" ] || { echo "ssh-switch: ${dir}/${path}.conf is missing; pass a render dir" >&2; exit 1; }

# Replace the symlink atomically so no ssh ever reads a half-switched config: a new link beside
# it, renamed over it (rename(2) replaces the link itself). Runs on operators' Macs too: BSD mv
# has no -T, and mv (GNU and BSD alike) moves a file into a directory it is given, following a
# link to one, so active.conf must not be a directory or a link to one.
if [ -d "${dir}/active.conf" ]; then
  echo "ssh-switch: ${dir}/active.conf is a directory (or a link to one), not the link this script keeps; remove it" >&2
  exit 1
fi
tmp="$(mktemp -u "${dir}/.active.XXXXXX")"
ln -s "${path}.conf" "${tmp}"
mv -f "${tmp}" "${dir}/active.conf"
printf 'export SHORTCIRCUIT_SSH_VIA=%s\n' "${path}" > "${dir}/env"

include="Include ${dir}/active.conf"
if ! grep -qxF "${include}" "${HOME}/.ssh/config" 2>/dev/null; then
  echo "ssh-switch: add this line at the top of ~/.ssh/config once:  ${include}" >&2
fi
echo "ssh-switch: every fleet host now resolves over ${path}"
