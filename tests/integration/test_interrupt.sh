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
for _ in $(seq 100); do grep -q "test slow/first" "$WORK/out.txt" && break; sleep 0.1; done
grep -q "test slow/first" "$WORK/out.txt" || { cat "$WORK/out.txt"; fail "run did not start"; }
sleep 0.5
kill -INT $pid
set +e
wait $pid
rc=$?
set -e
cat "$WORK/out.txt"
[ $rc = 130 ] || fail "exit code $rc after SIGINT, expected 130"
check_junit "$WORK/report/junit.xml" --expect mb-a:slow:first:pass --expect mb-a:slow:spins:skipped \
  --expect mb-a:slow:never-reached:skipped --expect mb-b:slow:never-reached:skipped
grep -q 'run interrupted' "$WORK/report/junit.xml" || fail "no 'run interrupted' reason"
no_leftover_qemu

# A second Ctrl-C kills the workers at once, and the report is still written.
"$MPFARM" run -i "$HERE/data/two-boards.yaml" -s "$WORK/slow.yaml" -o "$WORK/report3" >"$WORK/out3.txt" 2>&1 &
pid=$!
for _ in $(seq 100); do [ "$(grep -c 'test slow/first' "$WORK/out3.txt")" = 2 ] && break; sleep 0.1; done
kill -INT $pid; kill -INT $pid 2>/dev/null || true
set +e
wait $pid
rc=$?
set -e
cat "$WORK/out3.txt"
[ $rc = 130 ] || fail "exit code $rc after two SIGINTs, expected 130"
check_junit "$WORK/report3/junit.xml" --expect mb-a:slow:first:pass --expect mb-a:slow:never-reached:skipped \
  --expect mb-b:slow:never-reached:skipped
for _ in $(seq 50); do pgrep -f "qemu-system-arm.*$RUN" >/dev/null || break; sleep 0.1; done
left=$(pgrep -f "qemu-system-arm.*$RUN" || true)
[ -z "$left" ] || fail "emulator left after a second Ctrl-C: $left"
rm -rf "$RUN"/mpfarm-emu-*   # killed workers could not remove their socket dirs

# SIGKILL: nothing can be cleaned up by mpfarm itself; the emulator must still die.
"$MPFARM" run -i "$HERE/data/two-boards.yaml" -s "$WORK/slow.yaml" -o "$WORK/report2" >"$WORK/out2.txt" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q "test slow/first" "$WORK/out2.txt" && break; sleep 0.1; done
kill -KILL $pid
wait $pid 2>/dev/null || true
for _ in $(seq 50); do pgrep -f "qemu-system-arm.*$RUN" >/dev/null || break; sleep 0.1; done
left=$(pgrep -f "qemu-system-arm.*$RUN" || true)
[ -z "$left" ] || fail "emulator $left outlived a SIGKILLed mpfarm"
echo "PASS"
