#!/usr/bin/env bash
# The openmv runner end to end through the serial harness (real
# libserialport, umockdev): a simulated OpenMV Cam H7 whose app console is an
# mpsim board.
#  1. mpfarm run, fast mode: USBDBG reset at the debug baud rate, the
#     bootloader found by USB serial 000000000011 at the cam's location and
#     opened inside its 1 s window, FLASH_LAYOUT, erase of the firmware
#     sectors only, 60-byte WRITE records, RESET, the app back; the model's
#     dumped flash equals the image; the smoke suite passes on the app.
#  2. mpfarm flash, safe mode (2 s per erase, 1 ms per packet), a small image
#     covering one sector.
#  3. a bootloader that leaves its window at once: the flash fails with an
#     error naming the step, nothing is erased.
# Usage: test_openmv.sh SERIALSIM MPFARM MPSIM SRC WORK
set -euo pipefail
SSIM=$1 MPFARM=$2 MPSIM=$3 SRC=$4 WORK=$5
source "$SRC/tests/sim/serial/lib.sh"
need_harness

APP_SERIAL=3473365C3036
BANNER="MicroPython v1.22.0 on 2026-01-01; mpsim with simulated MCU"
start_mpsim "$RUN/cam.sock"

# An image with MicroPython's banner inside (its identity), not a multiple of
# the packet or endpoint size, spanning firmware sectors 2 and 3.
mkfw() {
  python3 - "$1" "$2" "$BANNER" <<'PY'
import random, sys
out, size, banner = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
r = random.Random(size)
b = bytearray(r.getrandbits(8) for _ in range(size))
b[1000:1000 + len(banner) + 1] = banner + b"\0"
open(out, "wb").write(b)
PY
}
mkfw "$WORK/fw.bin" 200003
mkfw "$WORK/small.bin" 30001

inventory() { # FILE MODE IMAGE
  cat >"$1" <<YAML
boards:
  - id: cam
    port: stm32
    board: OPENMV4
    mcu: stm32h7
    serial: {usb_serial: $APP_SERIAL}
    flash: {method: openmv, layout: OPENMV4, mode: $2}
firmware:
  - boards: [cam]
    file: $3
    format: bin
    base: 0x08040000
YAML
}

# check_flash DUMP IMAGE: the image at the app base, then erased bytes to the
# end of the last sector written.
check_flash() {
  python3 - "$1" "$2" <<'PY'
import sys
flash, img = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
assert len(flash) == 14 * 128 * 1024, "dump is %d bytes" % len(flash)
assert flash[:len(img)] == img, "image differs at offset %d" % next(
    i for i in range(len(img)) if flash[i] != img[i])
end = -(-len(img) // (128 * 1024)) * 128 * 1024
assert flash[len(img):end] == b"\xff" * (end - len(img)), "padding is not erased flash"
print("flash ok: %d bytes at 0x08040000, erased to 0x%08x" % (len(img), 0x08040000 + end))
PY
}

# no_events LOG TEXT...: none of TEXT occurs in LOG.
no_events() {
  local log=$1; shift
  for t in "$@"; do
    if grep -F -- "$t" "$log"; then fail "unexpected event '$t' in $log"; fi
  done
}

# ---- 1. mpfarm run, fast mode, then a REPL smoke suite on the app ----
# (mpsim runs a subset of Python: print, integer arithmetic, exceptions.)
cat >"$WORK/suite.yaml" <<'YAML'
suite: smoke
defaults:
  timeout: 5
tests:
  - name: print
    code: print("openmv", 42)
    expect: "openmv 42\n"
  - name: arithmetic
    code: print(1 + 2 * 3, 7 // 2, -7 // 2, 7 % 3)
    expect: "7 3 -4 1\n"
  - name: exception
    code: print(1 // 0)
    expect_error: ZeroDivisionError
YAML
inventory "$WORK/fast.yaml" fast "$WORK/fw.bin"
mkdir -p "$WORK/dump1"
set +e
"$SSIM" --log "$WORK/ev1.log" --dump "$WORK/dump1" \
  --device cam=openmv:board=OPENMV4,app=$RUN/cam.sock,app_serial=$APP_SERIAL,erase_ms=400 \
  -- "$MPFARM" run -i "$WORK/fast.yaml" -s "$WORK/suite.yaml" -o "$WORK/report1" --reflash always \
  >"$WORK/out1.txt" 2>&1
rc=$?
set -e
cat "$WORK/out1.txt"
[ "$rc" = 0 ] || { cat "$WORK/ev1.log"; cat "$WORK/report1/logs/cam.log" 2>/dev/null || true; fail "run exited $rc"; }
python3 "$SRC/tests/integration/check_junit.py" "$WORK/report1/junit.xml" --min-tests 3 \
  --expect cam:smoke:print:pass --expect cam:smoke:arithmetic:pass --expect cam:smoke:exception:pass
ev_expect "$WORK/ev1.log" "cam app: baud 12000000: USBDBG mode" "cam app: USBDBG SYS_RESET (30 0C)" \
  "cam unplug (USBDBG reset)" "cam plug bootloader v3 (serial 000000000011" "cam START " \
  "cam QUERY -> {1, 2, 15}" "cam ERASE sector 2 (0x08040000, 128 KiB)" "cam QUERY -> {1, 2, 15}" \
  "cam ERASE sector 3 (0x08060000, 128 KiB)" "cam WRITE 56 bytes -> 0x08040000" \
  "cam RESET: programmed 0x08040000-0x08070d7f" "cam plug app (serial $APP_SERIAL)" \
  "cam bridge to " "cam.flash: firmware sectors 2-15 at 0x08040000-0x081fffff (1835008 bytes); sector 0 intact; filesystem sectors 1-1 intact"
no_events "$WORK/ev1.log" FATAL VIOLATION "jumping to the app" "ERASE sector 0" "ERASE sector 1 " \
  "ERASE sector 4" "no board bridged"
# Opened within the bootloader's window, and every WRITE record of 60 bytes.
python3 - "$WORK/ev1.log" <<'PY'
import re, sys
log = open(sys.argv[1]).read()
m = re.search(r"START (\d+) ms after the plug", log)
assert m, "no first START"
assert int(m.group(1)) < 1000, "START %s ms after the plug: outside the window" % m.group(1)
sizes = set(re.findall(r"WRITE (\d+) bytes", log))
assert sizes == {"56"}, "WRITE data sizes %s" % sizes
n = len(re.findall(r"WRITE 56 bytes", log))
assert n == -(-200003 // 56), "%d WRITE records" % n
print("window: first START %s ms after the plug; %d WRITE records of 4+56 bytes" % (m.group(1), n))
PY
check_flash "$WORK/dump1/cam.flash" "$WORK/fw.bin"

# ---- 2. mpfarm flash, safe mode ----
inventory "$WORK/safe.yaml" safe "$WORK/small.bin"
mkdir -p "$WORK/dump2"
set +e
"$SSIM" --log "$WORK/ev2.log" --dump "$WORK/dump2" \
  --device cam=openmv:board=OPENMV4,app=$RUN/cam.sock,app_serial=$APP_SERIAL,erase_ms=400 \
  -- "$MPFARM" flash cam -i "$WORK/safe.yaml" "$WORK/small.bin" --format bin --base 0x08040000 \
  >"$WORK/out2.txt" 2>&1
rc=$?
set -e
cat "$WORK/out2.txt"
[ "$rc" = 0 ] || { cat "$WORK/ev2.log"; fail "flash (safe mode) exited $rc"; }
ev_expect "$WORK/ev2.log" "cam app: USBDBG SYS_RESET (30 0C)" "cam START " "cam ERASE sector 2 " \
  "cam WRITE 56 bytes -> 0x08040000" "cam RESET: programmed" "cam plug app"
no_events "$WORK/ev2.log" FATAL VIOLATION "ERASE sector 3" "ERASE sector 1 "
check_flash "$WORK/dump2/cam.flash" "$WORK/small.bin"

# ---- 3. the window missed: an error naming the step, nothing erased ----
inventory "$WORK/late.yaml" fast "$WORK/small.bin"
set +e
"$SSIM" --log "$WORK/ev3.log" \
  --device cam=openmv:board=OPENMV4,app=$RUN/cam.sock,app_serial=$APP_SERIAL,window_ms=1,gap_ms=300 \
  -- "$MPFARM" flash cam -i "$WORK/late.yaml" "$WORK/small.bin" --format bin --base 0x08040000 \
  >"$WORK/out3.txt" 2>&1
rc=$?
set -e
cat "$WORK/out3.txt"
[ "$rc" = 3 ] || { cat "$WORK/ev3.log"; fail "flash with a missed window exited $rc, expected 3"; }
grep -Eq "START|did not|bootloader" "$WORK/out3.txt" || fail "the error does not name the step"
ev_expect "$WORK/ev3.log" "cam app: USBDBG SYS_RESET (30 0C)" "cam plug bootloader" \
  "no START within 1 ms of the plug: jumping to the app"
no_events "$WORK/ev3.log" "cam ERASE" "cam WRITE" "cam START"
echo "PASS"
