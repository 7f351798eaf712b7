#!/usr/bin/env bash
# Runs tests/browser/forms.cjs in the system Chromium (Debian's `chromium`,
# installed by scripts/test-deps.sh). Installs playwright-core and axe-core
# (pinned in package.json) under the target directory when missing or
# changed; nothing is written into the source tree but the screenshots the
# script is asked to take. Input comes as JSON in CONNVAULT_BROWSER_INPUT.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
modules="${CARGO_TARGET_DIR:-$root/target}/browser-node"
mkdir -p "$modules"
exec 9>"$modules.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi
if [ ! -d "$modules/node_modules/playwright-core" ] || ! cmp -s "$here/package.json" "$modules/package.json"; then
  echo "run.sh: installing the browser test packages into $modules" >&2
  cp "$here/package.json" "$modules/package.json"
  (cd "$modules" && npm install --no-audit --no-fund --silent >&2)
fi
flock -u 9 2>/dev/null || true
exec 9>&-
NODE_PATH="$modules/node_modules" exec node "$here/forms.cjs"
