#!/usr/bin/env bash
# Every board runs in its own worker process: a worker SIGKILLed mid-test keeps
# its results and reports the rest as errors naming the signal and phase, while
# the other board is unaffected; a board deadline stops a board that runs over.
source "$(dirname "$0")/lib.sh" "$@"
need_microbit
cat >"$WORK/w.yaml" <<'YAML'
suite: w
tests:
  - name: first
    code: print("first")
    expect: "first\n"
  - name: spins
    code: |
      while True:
          pass
    timeout: 8
  - name: last
    code: print("last")
    expect: "last\n"
YAML
"$MPFARM" run -i "$HERE/data/two-boards.yaml" -s "$WORK/w.yaml" -o "$WORK/report" >"$WORK/out.txt" 2>&1 &
pid=$!
wait_lines "$WORK/out.txt" "test w/first" 2
sleep 0.3
# the worker of mb-a: a child of mpfarm whose board log is being written
victim=""
for c in $(pgrep -P $pid); do
  if tr '\0' ' ' </proc/$c/cmdline | grep -q mpfarm && ls -l /proc/$c/fd 2>/dev/null | grep -q "logs/mb-a.log"; then
    victim=$c
  fi
done
[ -n "$victim" ] || { cat "$WORK/out.txt"; fail "no worker found for mb-a"; }
kill -KILL "$victim"
wait_rc $pid
cat "$WORK/out.txt"
[ $RC = 3 ] || fail "exit code $RC, expected 3 (infrastructure error)"
check_junit "$WORK/report/junit.xml" --expect mb-a:w:first:pass --expect mb-a:w:spins:error \
  --expect mb-a:w:last:error --expect mb-b:w:first:pass --expect mb-b:w:spins:failure \
  --expect mb-b:w:last:pass
grep -q "killed by signal 9" "$WORK/report/junit.xml" || fail "the error does not name the signal"
emulators_gone "after its worker was killed"

# Board deadline: the whole board gets 3 s; the spinning test would take 8.
run_expect 3 run -i "$HERE/data/two-boards.yaml" --boards mb-a -s "$WORK/w.yaml" -o "$WORK/r2" \
  --board-timeout 3
cat "$WORK/out.txt"
check_junit "$WORK/r2/junit.xml" --expect mb-a:w:first:pass --expect mb-a:w:spins:error \
  --expect mb-a:w:last:error
grep -q "board deadline of 3.0 s exceeded during phase" "$WORK/r2/junit.xml" || fail "no deadline reason"
no_leftover_qemu

# The parent's watchdog: a worker that stops making progress (here: SIGSTOPped)
# is declared hung and stopped; its tests are errors saying so.
cat >"$WORK/stall.yaml" <<'YAML'
suite: stall
tests:
  - name: spins
    code: |
      while True:
          pass
    timeout: 2
  - name: after
    code: print("after")
    expect: "after\n"
YAML
"$MPFARM" run -i "$HERE/data/two-boards.yaml" --boards mb-a -s "$WORK/stall.yaml" -o "$WORK/r4" \
  --timeout stall=4 >"$WORK/out4.txt" 2>&1 &
pid=$!
wait_lines "$WORK/out4.txt" "identify:"
worker=$(pgrep -P $pid -f mpfarm | head -1)
[ -n "$worker" ] || { cat "$WORK/out4.txt"; fail "no worker to stop"; }
kill -STOP "$worker"
wait_rc $pid
cat "$WORK/out4.txt"
[ $RC = 3 ] || fail "exit code $RC with a hung worker, expected 3"
check_junit "$WORK/r4/junit.xml" --expect mb-a:stall:spins:error --expect mb-a:stall:after:error
grep -q "no progress for 4.0 s during phase" "$WORK/r4/junit.xml" || fail "no watchdog reason"
emulators_gone "after the watchdog"

# --timeout test=S beats the board's default test timeout (the suite sets none here).
printf 'suite: t\ntests:\n  - name: spins\n    code: "while True: pass"\n' >"$WORK/t.yaml"
run_expect 1 run -i "$HERE/data/two-boards.yaml" --boards mb-b -s "$WORK/t.yaml" -o "$WORK/r5" \
  --timeout test=1.5
grep -q "timed out after 1.5 s" "$WORK/r5/junit.xml" || fail "--timeout test=1.5 not applied"
run_expect 2 run -i "$HERE/data/two-boards.yaml" -s "$WORK/t.yaml" --timeout tset=1

# --jobs 1 runs the boards one after another and gets the same results.
run_expect 0 run -i "$HERE/data/two-boards.yaml" -s "$SRC/suites/smoke.yaml" -o "$WORK/r3" --jobs 1 -q
check_junit "$WORK/r3/junit.xml" --min-tests 26
no_leftover_qemu
echo "PASS"
