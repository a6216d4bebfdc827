#!/usr/bin/env bash
# On a terminal: a live table redrawn in place, colours unless NO_COLOR is set,
# and the summary lists every failure with its reason.
source "$(dirname "$0")/lib.sh" "$@"
need_microbit
need script
unset NO_COLOR
cmd="$MPFARM run -i $HERE/data/two-boards.yaml -s $HERE/data/mixed.yaml -o $WORK/r"
script -qec "$cmd" "$WORK/tty.txt" >/dev/null || true
python3 - "$WORK/tty.txt" color <<'PY'
import sys
out = open(sys.argv[1], encoding="utf-8", errors="replace").read()
assert "\x1b[3A" in out, "the table is not redrawn in place"           # back over header + 2 rows
assert "\x1b[2K" in out and "progress" in out and "current" in out, "no live table"
assert "mb-a" in out and "10/10" in out, "progress column missing"
assert "\x1b[31m" in out, "no colour on a terminal"
assert "failures and errors:" in out and "[mb-a] mixed/wrong-output: " in out, "no failure list"
assert "test mixed/passes: PASS" not in out, "line output on a terminal"
PY
NO_COLOR=1 script -qec "$cmd" "$WORK/tty-nc.txt" >/dev/null || true
python3 - "$WORK/tty-nc.txt" <<'PY'
import sys
out = open(sys.argv[1], encoding="utf-8", errors="replace").read()
assert "\x1b[2K" in out, "no live table with NO_COLOR"
assert "\x1b[31m" not in out and "\x1b[1m" not in out, "colour despite NO_COLOR"
PY
no_leftover_qemu
echo "PASS"
