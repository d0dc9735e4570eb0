#!/usr/bin/env bash
# `npm run lab -- <command>` (scripts/labCommand.ts) with the cached Node 22 first on PATH, as
# scripts/test.sh does: the lab's stand-ins are built with Node 22's type stripping.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "${repo_root}/scripts/env.sh"
cd "${repo_root}"
exec node "${repo_root}/node_modules/ts-node/dist/bin.js" --transpile-only "${repo_root}/scripts/labCommand.ts" "$@"
