#!/usr/bin/env bash
# mpfarm exec prints a board's output; tracebacks go to stderr with exit code 1.
source "$(dirname "$0")/lib.sh" "$@"
need_microbit
inv=$HERE/data/preloaded.yaml

run_expect 0 exec microbit-1 -i "$inv" 'print(6 * 7)'
[ "$(cat "$WORK/out.txt")" = "42" ] || fail "exec printed '$(cat "$WORK/out.txt")'"

run_expect 1 exec microbit-1 -i "$inv" '1/0'
grep -q ZeroDivisionError "$WORK/err.txt" || fail "no traceback on stderr"

echo 'for i in range(3): print(i)' | "$MPFARM" exec -i "$inv" microbit-2 - >"$WORK/out.txt"
[ "$(tr '\n' ' ' <"$WORK/out.txt")" = "0 1 2 " ] || fail "stdin code gave '$(cat "$WORK/out.txt")'"

run_expect 2 exec nosuchboard -i "$inv" 'print(1)'
grep -q 'no board "nosuchboard"' "$WORK/err.txt" || fail "unclear unknown-board message"

run_expect 1 exec microbit-1 -i "$inv" -t 1 'while True: pass'
grep -q "timed out" "$WORK/err.txt" || fail "no timeout message"
no_leftover_qemu
echo "PASS"

# Several emulated boards side by side: no port or socket clashes.
{
  echo "boards:"
  for i in 1 2 3 4; do echo "  - {id: mb-$i, port: nrf, board: microbit, emulator: {kind: qemu, machine: microbit}}"; done
} >"$WORK/four.yaml"
pids=()
for i in 1 2 3 4; do
  "$MPFARM" exec mb-$i -i "$WORK/four.yaml" "import time; time.sleep_ms(300); print($i * 11)" \
    >"$WORK/par-$i.txt" 2>&1 & pids+=($!)
done
for i in 1 2 3 4; do
  wait ${pids[$((i-1))]} || { cat "$WORK/par-$i.txt"; fail "parallel exec $i failed"; }
  [ "$(cat "$WORK/par-$i.txt")" = "$((i * 11))" ] || fail "parallel exec $i printed $(cat "$WORK/par-$i.txt")"
done
no_leftover_qemu
echo "PASS (parallel)"
