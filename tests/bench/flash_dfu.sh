#!/usr/bin/env bash
# bench.flash_dfu: DFU throughput for a 256 KiB image on the same simulated
# STM32 (usbsim, DfuSe, 2048-byte blocks, real libusb): mpfarm's DFU runner
# (`mpfarm flash`, without and with its read-back) next to dfu-util 0.11
# (-s ADDR:leave -D). Timed on usbsim's own event log, from claiming the
# interface to the device leaving DFU mode; the median of 3 runs each.
# Prints figures only; never fails on speed.
#   flash_dfu.sh MPFARM SRC WORK
set -euo pipefail
MPFARM=$1 SRC=$2 WORK=$3
BUILD=$(dirname "$MPFARM")
USBSIM=$BUILD/tests/sim/usb/usbsim MPSIM=$BUILD/tests/sim/mpsim
[ -x "$USBSIM" ] && [ -x "$MPSIM" ] && [ -r "$SRC/tests/sim/usb/lib.sh" ] ||
  { echo "SKIP: usbsim/mpsim not built"; exit 77; }
. "$SRC/tests/sim/usb/lib.sh"
need_usbsim dfu-util python3
RUN=$(mktemp -d /tmp/mpfarm-bdfu-XXXXXX)
"$MPSIM" --socket "$RUN/app.sock" & MP=$!
trap 'kill $MP 2>/dev/null; wait 2>/dev/null; rm -rf "$RUN"' EXIT
for _ in $(seq 100); do [ -S "$RUN/app.sock" ] && break; sleep 0.05; done
python3 - "$WORK/fw.bin" <<'PY'
import random, sys
d = bytearray(random.Random(5).getrandbits(8) for _ in range(262144))
b = b"MicroPython v1.22.0 on 2026-01-01; mpsim with simulated MCU\0"
d[0x400:0x400 + len(b)] = b
open(sys.argv[1], "wb").write(d)
PY
for v in none auto; do
  cat >"$WORK/inv-$v.yaml" <<YAML
boards:
  - id: bench-1
    port: stm32
    board: PYBV11
    mcu: stm32f405
    serial: unix:$RUN/app.sock
    flash: {method: dfu, dfu_serial: BENCH1, verify: $v}
YAML
done
DEV=a=dfuse:serial=BENCH1,location=1-2
# span LOG: ms from claiming the interface to leaving DFU mode.
span() {
  python3 - "$1" <<'PY'
import sys
t0 = t1 = None
for line in open(sys.argv[1]):
    f = line.split(" ", 2)
    if len(f) < 3: continue
    if t0 is None and "claim interface" in f[2]: t0 = int(f[0])
    if "unplug" in f[2] and "left DFU mode" in f[2]: t1 = int(f[0])
if t0 is None or t1 is None: sys.exit("no claim/leave in " + sys.argv[1])
print(t1 - t0)
PY
}
measure() { # measure NAME CLIENT... ; prints the median ms
  local name=$1; shift
  local v=()
  for i in 1 2 3; do
    usim "$name-$i" "$DEV" -- "$@" || { cat "$U/out" >&2; echo "FAIL: $name run $i" >&2; exit 1; }
    flash_check "$U/dump/a.bin" 0x08000000 0x08000000="$WORK/fw.bin" >&2
    v+=("$(span "$U/events.log")")
  done
  printf '%s\n' "${v[@]}" | sort -n | sed -n 2p
}
M0=$(measure mpfarm-noverify "$MPFARM" flash bench-1 -i "$WORK/inv-none.yaml" "$WORK/fw.bin" --format bin --base 0x08000000 -q)
M1=$(measure mpfarm-verify "$MPFARM" flash bench-1 -i "$WORK/inv-auto.yaml" "$WORK/fw.bin" --format bin --base 0x08000000 -q)
D=$(measure dfu-util dfu-util -S BENCH1 -a 0 -s 0x08000000:leave -D "$WORK/fw.bin")
python3 - "$M0" "$M1" "$D" <<'PY'
import sys
m0, m1, d = (max(1, int(x)) for x in sys.argv[1:])
n = 262144
print("bench.flash_dfu: 256 KiB through usbsim (DfuSe, 2048-byte blocks), claim to leave, median of 3")
print("  mpfarm dfu runner, no read-back : %6d ms  %9.0f bytes/s" % (m0, n * 1000 / m0))
print("  mpfarm dfu runner, read-back    : %6d ms  %9.0f bytes/s (write + verify)" % (m1, n * 1000 / m1))
print("  dfu-util 0.11 (-s ADDR:leave -D): %6d ms  %9.0f bytes/s" % (d, n * 1000 / d))
print("  ratio mpfarm / dfu-util time     : %.2f (no read-back), %.2f (with read-back)" % (m0 / d, m1 / d))
PY
