#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ one after another:
#
#   bash scripts/fuzz.sh                      # every target, 600 s each
#   bash scripts/fuzz.sh 60                   # every target, 60 s each
#   bash scripts/fuzz.sh 600 rpc_request jwt  # these targets
#
# Installs cargo-fuzz when it is missing (from crates.io) and a C compiler
# (the rpc_request target builds the C example plugin). cargo-fuzz needs
# nightly compiler flags (-Zsanitizer=address); RUSTC_BOOTSTRAP=1 lets the
# stable toolchain take them. Each target runs as one libFuzzer process on
# one core, starting from fuzz/seeds/<target> and growing fuzz/corpus/<target>;
# a crash stops the run and its input lands in fuzz/artifacts/<target>.
# The last lines of each run (executions, exec/s, peak RSS) are printed and
# kept in fuzz/logs/<target>.log.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-600}"
shift || true

if ! command -v cc >/dev/null 2>&1; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
  fi
  echo "fuzz.sh: installing a C compiler"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends gcc g++ libc6-dev
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

export RUSTC_BOOTSTRAP=1
# One leak is by design (see fuzz/lsan.supp); LeakSanitizer reports any other.
export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
cd fuzz
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

mkdir -p logs
status=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "seeds/$target"
  echo "fuzz.sh: $target for ${seconds}s"
  # -a: debug assertions and overflow checks on, so an overflow is a crash.
  if cargo fuzz run -a "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"logs/$target.log" 2>&1; then
    result="no crash"
  else
    result="FAILED (see fuzz/logs/$target.log and fuzz/artifacts/$target)"
    status=1
  fi
  grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' \
    "logs/$target.log" || tail -n 20 "logs/$target.log"
  echo "fuzz.sh: $target: $result"
done
exit "$status"
