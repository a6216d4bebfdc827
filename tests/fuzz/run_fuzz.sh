#!/usr/bin/env bash
# Run one libFuzzer target: first every seed alone, each of which must parse
# (so the round trips are reached), then -runs=20000 capped at 20 s over a
# copy of the seeds (new inputs never land in the source tree). Fails on a
# crash, a leak, or when the fuzzer executed too few inputs to mean anything.
# Usage: run_fuzz.sh FUZZER SEED_DIR WORK_DIR
set -euo pipefail
fuzzer=$1 seeds=$2 work=$3
rm -rf "$work"
mkdir -p "$work/corpus"
cp "$seeds"/* "$work/corpus/"
nseeds=$(find "$work/corpus" -type f | wc -l)
[ "$nseeds" -gt 0 ] || { echo "FAIL: no seeds in $seeds"; exit 1; }

if ! MPFARM_FUZZ_REQUIRE_OK=1 "$fuzzer" "$work"/corpus/* >"$work/seeds.log" 2>&1; then
  cat "$work/seeds.log"; echo "FAIL: a seed does not parse or does not survive the round trips"; exit 1
fi

set +e
t0=$(date +%s.%N)
"$fuzzer" -runs=20000 -max_total_time=20 -max_len=4096 -print_final_stats=1 \
  -artifact_prefix="$work/" "$work/corpus" >"$work/fuzz.log" 2>&1
rc=$?
t1=$(date +%s.%N)
set -e
if [ $rc -ne 0 ]; then
  tail -n 60 "$work/fuzz.log"; ls "$work"/crash-* "$work"/leak-* 2>/dev/null || true
  echo "FAIL: fuzzer exited $rc"; exit 1
fi
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log")
cov=$(grep -o 'cov: [0-9]*' "$work/fuzz.log" | tail -n 1 | awk '{print $2}')
if [ -z "$runs" ] || [ "$runs" -lt 2000 ]; then
  tail -n 20 "$work/fuzz.log"; echo "FAIL: only '${runs:-no}' inputs executed"; exit 1
fi
speed=$(awk -v r="$runs" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", r / (b - a) }')
echo "$(basename "$fuzzer"): $nseeds seeds, $runs runs in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s" \
  "($speed execs/s), coverage $cov edges"
