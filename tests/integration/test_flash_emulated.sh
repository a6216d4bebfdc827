#!/usr/bin/env bash
# Blank emulated micro:bits are flashed through their debug port (QEMU's
# gdbstub, GDB remote protocol) with the real MicroPython image, then the
# smoke suite passes; the report records the flash; --reflash=changed skips a
# board that already runs the target and flashes one that runs another build.
source "$(dirname "$0")/lib.sh" "$@"
need_microbit
need python3
fw=/usr/share/firmware-microbit-micropython/firmware.hex

# The runner table.
run_expect 0 runners --mcus
grep -qE '^gdb +.*ihex.* yes' "$WORK/out.txt" || { cat "$WORK/out.txt"; fail "runners does not list gdb as available"; }
grep -qE '^nrf51 +- +0x00000000-0x0003ffff 0x10001000-0x100013ff' "$WORK/out.txt" || { cat "$WORK/out.txt"; fail "no nrf51 flash map"; }

# 1. The shipped inventory: blank boards, flashed, then tested.
run_expect 0 run -i "$SRC/inventories/emulated.yaml" -s "$SRC/suites/smoke.yaml" -o "$WORK/r1" \
  --json-events "$WORK/r1.jsonl"
cat "$WORK/out.txt"
grep -q "microbit-1\] flash: gdb: writing" "$WORK/out.txt" || fail "no flash phase line"
grep -qE "microbit-1\] write: 100% \(24388[0-9] of 24388[0-9] bytes\)" "$WORK/out.txt" || fail "no progress lines"
check_junit "$WORK/r1/junit.xml" --min-tests 26 --expect microbit-1:smoke:identity:pass \
  --expect microbit-2:smoke:identity:pass
python3 - "$WORK/r1/junit.xml" "$WORK/r1.jsonl" "$fw" <<'PY'
import hashlib, json, sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
for s in root.iter("testsuite"):
    p = {x.get("name"): x.get("value") for x in s.iter("property")}
    assert p.get("flash.result") == "flashed", p
    assert p.get("flash.method") == "gdb", p
    assert p.get("flash.bytes") == "243880", p
    assert p.get("flash.identity") == "v1.9.2-34-gd64154c73 on 2017-09-01", p
    assert p["flash.identity"] in p.get("firmware", ""), p
    assert p.get("emulator.firmware") == "(blank)", p
ev = [json.loads(l) for l in open(sys.argv[2])]
prog = [e for e in ev if e["event"] == "progress" and e["board"] == "microbit-1"]
assert prog and prog[-1]["done"] == prog[-1]["total"] == 243880, prog[-3:]
assert {e["step"] for e in prog} >= {"write", "verify"}, {e["step"] for e in prog}
PY
grep -q "gdb: verified 243880 bytes" "$WORK/r1/logs/microbit-1.log" || fail "board log lacks the verify line"
no_leftover_qemu

# 2. A board that already runs the target firmware is not reflashed with
#    --reflash=changed; one running another build is.
python3 - "$fw" "$WORK/other.hex" <<'PY'
# The same firmware with another build date in its version banner: a different build.
import sys
out = []
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    b = bytearray.fromhex(line[1:])
    b[4:-1] = bytes(b[4:-1]).replace(b"2017-09-01", b"2017-09-02")
    b[-1] = (-sum(b[:-1])) & 0xff
    out.append(":" + b.hex().upper())
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
grep -c 2017-09-02 "$WORK/other.hex" >/dev/null || true
cat >"$WORK/preloaded.yaml" <<EOF
boards:
  - {id: same, port: nrf, board: microbit, mcu: nrf51, flash: {method: gdb},
     emulator: {kind: qemu, machine: microbit, firmware: $fw}}
  - {id: older, port: nrf, board: microbit, mcu: nrf51, flash: {method: gdb},
     emulator: {kind: qemu, machine: microbit, firmware: $WORK/other.hex}}
firmware:
  - {match: {board: microbit}, file: $fw}
EOF
run_expect 0 run -i "$WORK/preloaded.yaml" -s "$SRC/suites/smoke.yaml" -o "$WORK/r2" --reflash changed
cat "$WORK/out.txt"
grep -q "\[same\] flash: skipped: the board already runs v1.9.2-34-gd64154c73 on 2017-09-01" "$WORK/out.txt" ||
  fail "the board running the target was not skipped"
grep -q "\[older\] identify: the board runs .*2017-09-02.*: flashing" "$WORK/out.txt" || fail "older build not detected"
python3 - "$WORK/r2/junit.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
p = {s.get("name"): {x.get("name"): x.get("value") for x in s.iter("property")} for s in root.iter("testsuite")}
assert p["same"]["flash.result"].startswith("skipped"), p["same"]
assert p["older"]["flash.result"] == "flashed", p["older"]
assert "2017-09-01" in p["older"]["firmware"], p["older"]     # it now runs the target build
assert "2017-09-01" in p["same"]["firmware"], p["same"]
PY

# 3. Without --reflash=changed the board running the target is flashed anyway.
run_expect 0 run -i "$WORK/preloaded.yaml" -s "$SRC/suites/smoke.yaml" -o "$WORK/r3" --boards same
grep -q 'name="flash.result" value="flashed"' "$WORK/r3/junit.xml" || fail "default is not reflash=always"

# 4. A flash that does not take: the board's firmware is not what was
#    written (identity: says another build) -> every test is an <error>.
sed "s|file: $fw}|file: $fw, identity: \"v9.9.9 on 2030-01-01\"}|" "$WORK/preloaded.yaml" >"$WORK/wrongid.yaml"
run_expect 3 run -i "$WORK/wrongid.yaml" -s "$SRC/suites/smoke.yaml" -o "$WORK/r4" --boards older
check_junit "$WORK/r4/junit.xml" --expect older:smoke:identity:error
grep -q 'flash failed: the board runs' "$WORK/r4/junit.xml" || fail "identity mismatch not reported"
no_leftover_qemu
echo PASS
