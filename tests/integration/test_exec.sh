#!/usr/bin/env bash
# mpfarm exec prints a board's output; tracebacks go to stderr with exit code 1.
source "$(dirname "$0")/lib.sh" "$@"
need_microbit
inv=$SRC/inventories/emulated.yaml

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
