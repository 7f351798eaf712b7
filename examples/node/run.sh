#!/usr/bin/env bash
# Runs the Node.js example client against a connvault server.
#
#   CONNVAULT_TOKEN=... examples/node/run.sh localhost:50051
#
# Installs the locked dependencies (package-lock.json, `npm ci`) under
# target/node-example when missing or when the lock changed, and runs
# client.js from there. Nothing is written into the source tree.
set -euo pipefail

if [ "$#" -ne 1 ]; then
  echo "usage: $0 HOST:PORT" >&2
  exit 2
fi
address="$1"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="${CONNVAULT_NODE_DIR:-${CARGO_TARGET_DIR:-$root/target}/node-example}"

mkdir -p "$work"
# One installer at a time (parallel test runs share the directory).
exec 9>"$work.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi
if [ ! -d "$work/node_modules" ] || ! cmp -s "$here/package-lock.json" "$work/package-lock.json"; then
  echo "run.sh: installing the example's dependencies into $work" >&2
  cp "$here/package.json" "$here/package-lock.json" "$work/"
  (cd "$work" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
fi
flock -u 9 2>/dev/null || true
exec 9>&-

cp "$here/client.js" "$work/client.js"
CONNVAULT_PROTO_ROOT="$root/proto" exec node "$work/client.js" "$address"
