#!/usr/bin/env bash
# A suite that includes a directory of MicroPython-style scripts runs on the
# emulated board: .exp files, expectations produced by the host's python3
# (cached: a second load needs no python3), and scripts that print SKIP.
source "$(dirname "$0")/lib.sh" "$@"
need_microbit
inv=$SRC/inventories/emulated.yaml
run_expect 0 run -i "$inv" --boards microbit-1 -s "$HERE/data/scripts-suite.yaml" -o "$WORK/report"
cat "$WORK/out.txt"
check_junit "$WORK/report/junit.xml" --expect microbit-1:scripts:scripts/arith:pass \
  --expect microbit-1:scripts:scripts/impl:pass --expect microbit-1:scripts:scripts/dict_order:pass \
  --expect microbit-1:scripts:scripts/needs_thread:skipped
ls "$XDG_CACHE_HOME"/mpfarm/exp/*.exp >/dev/null || fail "no cached expectations"

# Second run: expectations come from the cache even without a python3 on PATH.
mkdir -p "$WORK/nopy"
ln -sf "$(command -v qemu-system-arm)" "$WORK/nopy/qemu-system-arm"
PATH=$WORK/nopy run_expect 0 run -i "$inv" --boards microbit-1 -s "$HERE/data/scripts-suite.yaml" \
  -o "$WORK/report2"
check_junit "$WORK/report2/junit.xml" --expect microbit-1:scripts:scripts/arith:pass
no_leftover_qemu
echo "PASS"
