# Shared by setup.sh and test.sh: where the cached toolchain lives, and PATH for it.
SHORTCIRCUIT_CACHE="${SHORTCIRCUIT_CACHE:-${HOME}/.cache/shortcircuit}"
SHORTCIRCUIT_NODE_VERSION="22.23.3"
SHORTCIRCUIT_NODE_DIR="${SHORTCIRCUIT_CACHE}/node-${SHORTCIRCUIT_NODE_VERSION}"
if [ -x "${SHORTCIRCUIT_NODE_DIR}/bin/node" ]; then
  export PATH="${SHORTCIRCUIT_NODE_DIR}/bin:${PATH}"
fi
# Go, where the machine has it, builds the pinned tailnet tools (scripts/tools/).
if [ -x /usr/local/go/bin/go ] && ! command -v go >/dev/null 2>&1; then
  export PATH="/usr/local/go/bin:${PATH}"
fi
