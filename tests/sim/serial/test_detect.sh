#!/usr/bin/env bash
# `mpfarm detect` through the serial harness (real libserialport, sysfs and
# by-id links from the umockdev testbed):
#  1. three simulated USB devices: a Pico running MicroPython (2e8a:0005,
#     an mpsim console), a CP2102 bridge to another MicroPython board and a
#     Black Magic Probe (its first port is a GDB server). The JSON lines name
#     each port with the VID:PID, serial and location the simulator gave it,
#     the known-id role, and for both MicroPython boards the firmware version
#     the board reported. The probe was never opened; the boards saw only
#     the kernel's open/close line changes (no DTR/RTS toggling).
#  2. --no-repl opens no port; --exclude leaves the named port alone.
#  3. --inventory writes a skeleton that `mpfarm inventory check` accepts,
#     with the Pico's by-id path, USB serial and location.
# Usage: test_detect.sh SERIALSIM MPFARM MPSIM SRC WORK
set -euo pipefail
SSIM=$1 MPFARM=$2 MPSIM=$3 SRC=$4 WORK=$5
source "$SRC/tests/sim/serial/lib.sh"
need_harness

start_mpsim "$RUN/pico.sock" --version 1.23.4
start_mpsim "$RUN/esp.sock" --version 1.21.0
start_mpsim "$RUN/bmp.sock"
DEVS=(--device pico=rp2040:sock=$RUN/pico.sock,serial=E6614103E7425C2F
      --device esp=mpy:sock=$RUN/esp.sock,vid=0x10c4,pid=0xea60,serial=0001,manufacturer=Silicon_Labs,product=CP2102_USB_to_UART
      --device bmp=mpy:sock=$RUN/bmp.sock,vid=0x1d50,pid=0x6018,serial=7BB180B4,manufacturer=Black_Sphere,product=Black_Magic_Probe)

# 1. JSON lines
"$SSIM" --log "$WORK/ev1.log" --info "$WORK/info1.txt" "${DEVS[@]}" \
  -- "$MPFARM" detect --json --timeout 3000 >"$WORK/out1.json" 2>"$WORK/err1.txt" ||
  { cat "$WORK/err1.txt" "$WORK/ev1.log"; fail "detect --json exited $?"; }
cat "$WORK/out1.json"
python3 - "$WORK/out1.json" "$WORK/info1.txt" <<'PY' || { cat "$WORK/ev1.log"; exit 1; }
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
info = {}
for line in open(sys.argv[2]):
    name, node, loc, vidpid, serial = line.split()
    info[name] = dict(node=node, loc=loc, vidpid=vidpid, serial=serial)
by_port = {r["port"]: r for r in rows}
def check(name, role, version, mpy_port):
    i = info[name]
    r = by_port.get(i["node"])
    assert r, "no row for %s (%s): %r" % (name, i["node"], rows)
    assert "%s:%s" % (r["vid"], r["pid"]) == i["vidpid"], (name, r)
    assert r["serial"] == i["serial"], (name, r)
    assert r["location"] == i["loc"], (name, r)
    assert r["by_id"] and r["by_id"].startswith("/dev/serial/by-id/usb-"), (name, r)
    assert r["role"] == role, (name, r)
    if version:
        assert r["repl"] == "ok", (name, r)
        assert r["firmware"]["impl"] == "micropython" and r["firmware"]["version"] == version, (name, r)
    else:
        assert r["repl"].startswith("skipped"), (name, r)
        assert "firmware" not in r, (name, r)
    assert r["mpy_port"] == mpy_port, (name, r)
check("pico", "app", "1.23.4", "rp2")
check("esp", "usb-uart", "1.21.0", None)
check("bmp", "probe", None, None)
print("json ok")
PY
# The boards saw the kernel's open and close only; the probe saw nothing.
for d in pico esp; do
  ev_expect "$WORK/ev1.log" "$d open (1)" "$d lines dtr=1 rts=1 (open)" "$d lines dtr=0 rts=0 (close with HUPCL)"
  bad=$(grep " $d lines " "$WORK/ev1.log" | grep -v -e "(open)" -e "(close with HUPCL)" || true)
  [ -z "$bad" ] || fail "detect toggled $d's modem lines: $bad"
done
! grep -q " bmp open" "$WORK/ev1.log" || fail "detect opened the probe's GDB port"

# The table names the same things.
"$SSIM" --log "$WORK/ev2.log" --info "$WORK/info2.txt" "${DEVS[@]}" \
  -- "$MPFARM" detect --no-repl >"$WORK/out2.txt" 2>&1 || { cat "$WORK/out2.txt"; fail "detect --no-repl"; }
cat "$WORK/out2.txt"
grep -E "^/dev/ttyACM[0-9]+ +2e8a:0005 +E6614103E7425C2F +1-[0-9]+ +app +rp2 " "$WORK/out2.txt" >/dev/null ||
  fail "table row of the Pico"
grep -q "skipped: --no-repl" "$WORK/out2.txt" || fail "--no-repl not shown"
# 2. --no-repl: no port opened at all.
! grep -q " open (" "$WORK/ev2.log" || { cat "$WORK/ev2.log"; fail "--no-repl opened a port"; }

esp_node=$(awk '$1 == "esp" {print $2}' "$WORK/info1.txt")
"$SSIM" --log "$WORK/ev3.log" "${DEVS[@]}" \
  -- "$MPFARM" detect --exclude "$esp_node" >"$WORK/out3.txt" 2>&1 || { cat "$WORK/out3.txt"; fail "detect --exclude"; }
! grep -q " esp open" "$WORK/ev3.log" || fail "--exclude $esp_node still opened it"
grep -q " pico open" "$WORK/ev3.log" || fail "--exclude kept the Pico from being queried"

# 3. inventory skeleton, checked by mpfarm itself inside the same testbed.
"$SSIM" --log "$WORK/ev4.log" "${DEVS[@]}" \
  -- bash -c '"$1" detect --inventory "$2" >/dev/null && "$1" inventory check "$2"' _ "$MPFARM" "$WORK/inv.yaml" \
  >"$WORK/out4.txt" 2>&1 || { cat "$WORK/out4.txt" "$WORK/inv.yaml"; fail "inventory skeleton"; }
cat "$WORK/inv.yaml"
grep -q "2 boards" "$WORK/out4.txt" || { cat "$WORK/out4.txt"; fail "inventory check did not see 2 boards"; }
python3 - "$WORK/inv.yaml" "$WORK/info1.txt" <<'PY'
import sys
text = open(sys.argv[1]).read()
info = {l.split()[0]: l.split() for l in open(sys.argv[2])}
blocks = text.split("\n  - id: ")[1:]
pico = [b for b in blocks if 'usb_serial: "E6614103E7425C2F"' in b]
assert len(pico) == 1, text
assert "\n    port: rp2" in pico[0], pico[0]
assert '\n      location: "%s"' % info["pico"][2] in pico[0], pico[0]
assert '\n      path: "/dev/serial/by-id/usb-' in pico[0], pico[0]
assert not [b for b in blocks if "7BB180B4" in b], "the probe became a board"
print("inventory ok")
PY
echo "PASS"
