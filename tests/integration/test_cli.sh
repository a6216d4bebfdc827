#!/usr/bin/env bash
# The CLI's exit codes and messages for good and bad input (no boards needed).
source "$(dirname "$0")/lib.sh" "$@"

run_expect 0 --version
grep -q "^mpfarm [0-9]" "$WORK/out.txt" || fail "--version"
run_expect 0 --help
for c in run inventory exec; do
  run_expect 0 "$c" --help
  grep -q "usage:" "$WORK/out.txt" || fail "$c --help has no usage"
done
run_expect 2 frobnicate
grep -q 'did you mean' "$WORK/err.txt" || true
run_expect 2 rnu
grep -q 'did you mean "run"' "$WORK/err.txt" || fail "no did-you-mean for rnu"
run_expect 2 run
run_expect 2 run -i "$SRC/inventories/emulated.yaml"

for inv in "$SRC"/inventories/*.yaml; do
  run_expect 0 inventory check "$inv"
done

cat >"$WORK/bad.yaml" <<'YAML'
farm: broken
boards:
  - id: a
    port: rp3
    board: PICO
    serial: {path: /dev/ttyACM0, baudrate: 115200}
  - id: a
    port: nrf
YAML
run_expect 2 inventory check "$WORK/bad.yaml"
cat "$WORK/err.txt"
grep -q "bad.yaml:4:11:" "$WORK/err.txt" || fail "no position for the bad port"
grep -q 'did you mean "rp2"' "$WORK/err.txt" || fail "no did-you-mean for rp3"
grep -q 'baud' "$WORK/err.txt" || fail "no hint for baudrate"
grep -q "bad.yaml:7:" "$WORK/err.txt" || fail "duplicate id not reported at line 7"

printf 'boards: [\x00\xff\xfe' >"$WORK/garbage.yaml"
run_expect 2 inventory check "$WORK/garbage.yaml"
run_expect 2 inventory check "$WORK/does-not-exist.yaml"
grep -q "does-not-exist.yaml" "$WORK/err.txt" || fail "missing file not named"

# A bad suite is bad input too, found before any board is touched.
printf 'suite: s\ntests:\n  - name: x\n    code: print(1)\n    expect: "1"\n    expect_error: E\n' >"$WORK/bad-suite.yaml"
run_expect 2 run -i "$SRC/inventories/emulated.yaml" -s "$WORK/bad-suite.yaml" -o "$WORK/r"
grep -q "bad-suite.yaml:" "$WORK/err.txt" || fail "suite error without position"
run_expect 2 run -i "$SRC/inventories/emulated.yaml" -s "$SRC/suites/smoke.yaml" --boards microbit-9
grep -q 'did you mean "microbit-1"' "$WORK/err.txt" || fail "no did-you-mean for --boards"
echo "PASS"
