#!/usr/bin/env bash
# Fuzzing campaign for the request parser and executor (npm run fuzz:wire).
# Builds native/build/fuzz/request_fuzz (clang: libFuzzer + ASan + UBSan), runs
# it for RUNS executions (default 10,000,000) from the checked-in seeds, and
# fails on any finding. New corpus entries go to native/build/fuzz/corpus (never
# into the checked-in seeds); a crashing input is written to
# native/build/fuzz/crash-* (replay: native/build/fuzz/request_fuzz FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-10000000}"
make -s fuzz
mkdir -p build/fuzz/corpus
log="build/fuzz/last-run.log"
start=$(date +%s)
set +e
build/fuzz/request_fuzz -runs="$RUNS" -print_final_stats=1 -artifact_prefix=build/fuzz/ \
  build/fuzz/corpus fuzz/corpus 2>&1 | tee "$log" | grep -E '^(#[0-9]+\s+(INITED|DONE|pulse))|ERROR|SUMMARY|runtime error|check failed'
status=${PIPESTATUS[0]}
set -e
elapsed=$(( $(date +%s) - start ))
grep -E '^Done [0-9]+ runs|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
if [ "$status" -ne 0 ]; then
  echo "fuzz:wire: FAILED (exit $status) after ${elapsed}s; full log: native/$log" >&2
  exit 1
fi
total=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
if [ -z "$total" ] || [ "$total" -lt "$RUNS" ]; then
  echo "fuzz:wire: FAILED: only ${total:-0} of $RUNS executions" >&2
  exit 1
fi
echo "fuzz:wire: ok: $total executions, $eps exec/s, ${elapsed}s, no findings"
