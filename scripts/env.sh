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
# The Node.js language host type-checks the program on every preview and up (about 10 s of a
# no-op preview); the test command runs a strict tsc instead, so the engine only transpiles.
export PULUMI_NODEJS_TRANSPILE_ONLY="${PULUMI_NODEJS_TRANSPILE_ONLY:-true}"
