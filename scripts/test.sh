#!/usr/bin/env bash
# THE test command, for developers and CI alike:
#
#   bash scripts/test.sh                 # every test of the workspace
#   bash scripts/test.sh --test e2e python   # extra arguments go to cargo test
#
# Installs what the tests need when it is missing (PostgreSQL, MariaDB, Redis
# and cc through scripts/test-deps.sh; python3 with venv support for the
# Python example's test), then runs cargo test on the whole workspace.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/test-deps.sh

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi
# examples/python/run.sh (run by tests/e2e/python.rs) builds a virtualenv.
# Probe with a real venv: Debian's python3 without python3-venv fails only
# when ensurepip runs.
venv_probe="$(mktemp -d)"
if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv "$venv_probe/venv" >/dev/null 2>&1; then
  echo "test.sh: installing python3 and python3-venv"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends python3 python3-venv
fi
rm -rf "$venv_probe"

if [ "$#" -gt 0 ]; then
  # A narrowed run (`bash scripts/test.sh --test e2e python`): just that.
  exec cargo test --workspace --locked "$@"
fi
cargo test --workspace --locked
# The criterion benchmarks: built, and each run once in test mode, so they
# cannot rot (the measured runs are `cargo bench`, see docs/performance.md).
exec cargo test --workspace --locked --benches
