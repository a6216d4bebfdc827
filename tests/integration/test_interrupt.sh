#!/usr/bin/env bash
# Ctrl-C (SIGINT) mid-run: exit 130, a complete valid report with the unfinished
# tests skipped, and no emulator left running. A SIGKILLed mpfarm leaves none either.
source "$(dirname "$0")/lib.sh" "$@"
need_microbit
cat >"$WORK/slow.yaml" <<'YAML'
suite: slow
tests:
  - name: first
    code: print(1)
    expect: "1\n"
  - name: spins
    # a loop that only an interrupt ends (the emulated nRF51 timer is not a
    # reliable clock, so no sleep() here)
    code: |
      while True:
          pass
    timeout: 120
  - name: never-reached
    code: print(2)
YAML
"$MPFARM" run -i "$HERE/data/two-boards.yaml" -s "$WORK/slow.yaml" -o "$WORK/report" >"$WORK/out.txt" 2>&1 &
pid=$!
wait_lines "$WORK/out.txt" "test slow/first"
sleep 0.5
kill -INT $pid
wait_rc $pid
cat "$WORK/out.txt"
[ $RC = 130 ] || fail "exit code $RC after SIGINT, expected 130"
check_junit "$WORK/report/junit.xml" --expect mb-a:slow:first:pass --expect mb-a:slow:spins:skipped \
  --expect mb-a:slow:never-reached:skipped --expect mb-b:slow:never-reached:skipped
grep -q 'run interrupted' "$WORK/report/junit.xml" || fail "no 'run interrupted' reason"
no_leftover_qemu

# A second Ctrl-C kills the workers at once, and the report is still written.
"$MPFARM" run -i "$HERE/data/two-boards.yaml" -s "$WORK/slow.yaml" -o "$WORK/report3" >"$WORK/out3.txt" 2>&1 &
pid=$!
wait_lines "$WORK/out3.txt" "test slow/first" 2
kill -INT $pid; kill -INT $pid 2>/dev/null || true
wait_rc $pid
cat "$WORK/out3.txt"
[ $RC = 130 ] || fail "exit code $RC after two SIGINTs, expected 130"
check_junit "$WORK/report3/junit.xml" --expect mb-a:slow:first:pass --expect mb-a:slow:never-reached:skipped \
  --expect mb-b:slow:never-reached:skipped
emulators_gone "after a second Ctrl-C"

# SIGKILL: nothing can be cleaned up by mpfarm itself; the emulator must still die.
"$MPFARM" run -i "$HERE/data/two-boards.yaml" -s "$WORK/slow.yaml" -o "$WORK/report2" >"$WORK/out2.txt" 2>&1 &
pid=$!
wait_lines "$WORK/out2.txt" "test slow/first"
kill -KILL $pid
wait_rc $pid
emulators_gone "after mpfarm was SIGKILLed"
echo "PASS"
