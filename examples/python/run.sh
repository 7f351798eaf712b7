#!/usr/bin/env bash
# Runs the Python example client against a connvault server.
#
#   examples/python/run.sh localhost:50051            # client.py
#   CONNVAULT_HTTP=http://127.0.0.1:8080 examples/python/run.sh localhost:50051 embed.py
#
# Creates a virtualenv under target/python-venv when missing (or when
# requirements.txt changed), generates Python stubs from proto/ into a temp
# dir, and runs client.py with them on the path. Nothing is written into the
# source tree.
set -euo pipefail

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
  echo "usage: $0 HOST:PORT [SCRIPT.py]" >&2
  exit 2
fi
address="$1"
script="${2:-client.py}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${CONNVAULT_PYTHON_VENV:-${CARGO_TARGET_DIR:-$root/target}/python-venv}"
python="${PYTHON:-python3}"

mkdir -p "$(dirname "$venv")"
# One installer at a time (parallel test runs share the venv).
exec 9>"$venv.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$venv/.requirements.txt"; then
  echo "run.sh: creating $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/.requirements.txt"
fi
flock -u 9 2>/dev/null || true
exec 9>&-

stubs="$(mktemp -d)"
trap 'rm -rf "$stubs"' EXIT
# grpc_tools ships the well-known types (google/protobuf/*.proto) in _proto;
# the google.api.http option the services carry (proto/google/api) is
# generated with the API.
wkt="$("$venv/bin/python" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"
"$venv/bin/python" -m grpc_tools.protoc \
  -I "$root/proto" -I "$wkt" \
  --python_out="$stubs" --grpc_python_out="$stubs" \
  "$root"/proto/google/api/*.proto "$root"/proto/connvault/v1/*.proto

PYTHONPATH="$stubs" "$venv/bin/python" "$here/$script" "$address"
