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
for _ in $(seq 100); do [ "$(grep -c 'test w/first' "$WORK/out.txt")" = 2 ] && break; sleep 0.1; done
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
set +e
wait $pid
rc=$?
set -e
cat "$WORK/out.txt"
[ $rc = 3 ] || fail "exit code $rc, expected 3 (infrastructure error)"
check_junit "$WORK/report/junit.xml" --expect mb-a:w:first:pass --expect mb-a:w:spins:error \
  --expect mb-a:w:last:error --expect mb-b:w:first:pass --expect mb-b:w:spins:failure \
  --expect mb-b:w:last:pass
grep -q "killed by signal 9" "$WORK/report/junit.xml" || fail "the error does not name the signal"
for _ in $(seq 50); do pgrep -f "qemu-system-arm.*$RUN" >/dev/null || break; sleep 0.1; done
left=$(pgrep -f "qemu-system-arm.*$RUN" || true)
[ -z "$left" ] || fail "emulator left running after its worker was killed: $left"
rm -rf "$RUN"/mpfarm-emu-*   # the killed worker could not remove its socket dir

# Board deadline: the whole board gets 3 s; the spinning test would take 8.
run_expect 3 run -i "$HERE/data/two-boards.yaml" --boards mb-a -s "$WORK/w.yaml" -o "$WORK/r2" \
  --board-timeout 3
cat "$WORK/out.txt"
check_junit "$WORK/r2/junit.xml" --expect mb-a:w:first:pass --expect mb-a:w:spins:error \
  --expect mb-a:w:last:error
grep -q "board deadline of 3.0 s exceeded during phase" "$WORK/r2/junit.xml" || fail "no deadline reason"
no_leftover_qemu

# --jobs 1 runs the boards one after another and gets the same results.
run_expect 0 run -i "$HERE/data/two-boards.yaml" -s "$SRC/suites/smoke.yaml" -o "$WORK/r3" --jobs 1 -q
check_junit "$WORK/r3/junit.xml" --min-tests 26
no_leftover_qemu
echo "PASS"
