#!/usr/bin/env bash
# The project's one test command: type-check, lint, format check, then every jest suite.
# Prints a closing "tests: N passed, N failed" line for CI.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "${repo_root}/scripts/env.sh"
cd "${repo_root}"

echo "test: node $(node --version)"
echo "test: tsc --noEmit (strict)"
npx --no-install tsc --noEmit -p tsconfig.json
echo "test: eslint"
npx --no-install eslint .
echo "test: prettier --check"
npx --no-install prettier --check --log-level warn .

results="$(mktemp)"
trap 'rm -f "${results}"' EXIT
status=0
npx --no-install jest --ci --json --outputFile="${results}" "$@" || status=$?
# shellcheck disable=SC2016 # JavaScript, not shell: its ${...} are template literals
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`);
' "${results}" || true
exit "${status}"
