#!/usr/bin/env bash
# Builds the fuzzers with clang and runs each for SECONDS (default 20) over the committed seed
# corpus in tests/fuzz/corpus/<target>; new inputs go to a temp dir, not the repository.
# Usage: tests/fuzz/run.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build-fuzz}
seconds=${2:-20}
CC=clang CXX=clang++ cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in job config topic address ack; do
  mkdir -p "$work/$target"
  echo "== fuzz_$target for ${seconds}s"
  if ! "$build/fuzz_$target" "$work/$target" "$here/corpus/$target" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 >"$work/$target.log" 2>&1; then
    tail -n 60 "$work/$target.log"
    echo "fuzz_$target FAILED (crashing input saved in the current directory as crash-*)"
    exit 1
  fi
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "$work/$target.log" || true
done
echo "== fuzzers done"
