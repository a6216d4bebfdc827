#!/usr/bin/env bash
# Two mpfarm runs on the same inventory never drive one board: without
# --wait-lock the second skips the busy board naming the holder; with it, it
# waits and then runs. A killed run leaves no lock behind.
source "$(dirname "$0")/lib.sh" "$@"
need_microbit
cat >"$WORK/hold.yaml" <<'YAML'
suite: hold
tests:
  - name: spins
    code: |
      while True:
          pass
    timeout: 4
YAML
printf 'suite: quick\ntests:\n  - name: one\n    code: print(1)\n    expect: "1"\n' >"$WORK/quick.yaml"
inv=$SRC/inventories/emulated.yaml

"$MPFARM" run -i "$inv" --boards microbit-1 -s "$WORK/hold.yaml" -o "$WORK/r1" >"$WORK/first.txt" 2>&1 &
first=$!
wait_lines "$WORK/first.txt" "identify:"

run_expect 0 run -i "$inv" -s "$WORK/quick.yaml" -o "$WORK/r2"
cat "$WORK/out.txt"
check_junit "$WORK/r2/junit.xml" --expect microbit-1:quick:one:skipped --expect microbit-2:quick:one:pass
grep -qE "board busy: locked by pid [0-9]+ \(run [0-9TZ]+-$first" "$WORK/r2/junit.xml" || { grep -o "board busy[^\"]*" "$WORK/r2/junit.xml"; fail "busy reason does not name the holder"; }

run_expect 3 exec microbit-1 -i "$inv" 'print(1)'
grep -q "board microbit-1 is busy: locked by pid" "$WORK/err.txt" || fail "exec did not respect the lock"

run_expect 0 run -i "$inv" --boards microbit-1 -s "$WORK/quick.yaml" -o "$WORK/r3" --wait-lock 60
check_junit "$WORK/r3/junit.xml" --expect microbit-1:quick:one:pass
wait $first || true   # the first run ends with its timeout failure

# A SIGKILLed holder leaves the board free.
"$MPFARM" run -i "$inv" --boards microbit-1 -s "$WORK/hold.yaml" -o "$WORK/r4" >"$WORK/fourth.txt" 2>&1 &
pid=$!
wait_lines "$WORK/fourth.txt" "identify:"
kill -KILL $pid
wait_rc $pid
# Its worker stops cleanly (SIGTERM on its parent's death) and then frees the board.
run_expect 0 run -i "$inv" --boards microbit-1 -s "$WORK/quick.yaml" -o "$WORK/r5" --wait-lock 30
check_junit "$WORK/r5/junit.xml" --expect microbit-1:quick:one:pass
emulators_gone "after a SIGKILLed run"
echo "PASS"
