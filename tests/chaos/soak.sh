#!/usr/bin/env bash
# Long chaos soak, for a person to run (not part of CI): the chaos suite with many more jobs and
# the whole fault set (3x kill -9 of the daemon, nats-server restart, PostgreSQL outage, mosquitto
# restart) injected several times over. Prints the fault timeline, per-sink duplicates and the
# verdict of each run.
#
#   tests/chaos/soak.sh [BUILD_DIR]          default build dir: build
#   CHAOS_JOBS=200000 CHAOS_ROUNDS=6 CHAOS_GAP_MS=4000 SOAK_RUNS=3 tests/chaos/soak.sh
#   CHAOS_SEED=1234 tests/chaos/soak.sh      repeat one fault schedule
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
bin=$build/bin/chaos_suite_tests
if [[ ! -x $bin ]]; then
  echo "missing $bin: cmake --build $build --target chaos_suite_tests route-delivery scripted" >&2
  exit 2
fi
export CHAOS_JOBS=${CHAOS_JOBS:-200000}
export CHAOS_ROUNDS=${CHAOS_ROUNDS:-6}
export CHAOS_GAP_MS=${CHAOS_GAP_MS:-4000}
runs=${SOAK_RUNS:-1}
for ((run = 1; run <= runs; run++)); do
  echo "== soak run $run/$runs: $CHAOS_JOBS jobs, $CHAOS_ROUNDS rounds of faults"
  "$bin" --gtest_filter='Chaos.*' --gtest_color=no
done
echo "== soak passed"
