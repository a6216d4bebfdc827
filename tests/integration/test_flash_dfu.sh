#!/usr/bin/env bash
# The DFU runner end to end: `mpfarm flash` through the real libusb against
# usbsim's simulated STM32s in DFU mode (tests/sim/usb, umockdev), the app's
# console afterwards an mpsim board. Checked on usbsim's event log, dumped
# flash and final device state, never on mpfarm's claims alone:
#  1. a .dfu to the board's device chosen by flash.dfu_serial while an
#     identical one (other serial) is plugged in: flash exact, only the
#     covered sectors erased, read back, left (jump), the other untouched;
#  2. a raw .bin (--base) to the device at flash.location, with a backup
#     first: the backup is read before anything is erased;
#  3. no serial/location and two devices: an error naming both, nothing written;
#  4. errPROG, a stalled request, a vanished device and a hung request: each
#     a precise error, exit 3, within a bounded time.
source "$(dirname "$0")/lib.sh" "$@"
BUILD=$(dirname "$MPFARM")
USBSIM=$BUILD/tests/sim/usb/usbsim MPSIM=$BUILD/tests/sim/mpsim
[ -x "$USBSIM" ] && [ -x "$MPSIM" ] && [ -r "$SRC/tests/sim/usb/lib.sh" ] ||
  { echo "SKIP: usbsim/mpsim not built (umockdev missing?)"; exit 77; }
# shellcheck source=/dev/null
. "$SRC/tests/sim/usb/lib.sh"
need_usbsim python3
mkdir -p "$WORK/backup"
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; lib_cleanup; }
trap cleanup EXIT
"$MPSIM" --socket "$RUN/app.sock" & PIDS+=($!)
for _ in $(seq 100); do [ -S "$RUN/app.sock" ] && break; sleep 0.05; done

BASE=0x08000000
A=a=dfuse:serial=AAA111,location=1-3
B=b=dfuse:serial=BBB222,location=1-4
# A 256 KiB image with the version banner mpsim reports, as .dfu; a 100 KiB raw .bin.
python3 - "$WORK" <<'PY'
import random, sys
r = random.Random(3)
d = bytearray(r.getrandbits(8) for _ in range(262144))
banner = b"MicroPython v1.22.0 on 2026-01-01; mpsim with simulated MCU\0"
d[0x400:0x400 + len(banner)] = banner
open(sys.argv[1] + "/fw.bin", "wb").write(d)
open(sys.argv[1] + "/small.bin", "wb").write(d[:100 * 1024])
PY
dfu_files dfuse "$WORK/fw.dfu" 0483 DF11 $BASE="$WORK/fw.bin"

# inventory NAME FLASH_OPTS
inventory() {
  cat >"$WORK/$1.yaml" <<YAML
boards:
  - id: pyb-1
    port: stm32
    board: PYBV11
    mcu: stm32f405
    serial: unix:$RUN/app.sock
    flash: {method: dfu$2}
YAML
}
# flash RUN INVENTORY FILE [ARGS...] -- DEVICES...: mpfarm flash under usbsim; RC, elapsed S.
flash() {
  local run=$1 inv=$2 file=$3; shift 3
  local args=()
  while [ "$1" != -- ]; do args+=("$1"); shift; done
  shift
  local t0=$SECONDS
  set +e
  usim "$run" "$@" -- timeout 120 "$MPFARM" flash pyb-1 -i "$WORK/$inv.yaml" "$file" "${args[@]}"
  RC=$?
  set -e
  S=$((SECONDS - t0))
  echo "--- $run: exit $RC in ${S}s"; cat "$U/out"
}

# 1. .dfu by serial, an identical device beside it (traced: request numbers for the faults)
inventory byserial ", dfu_serial: AAA111"
flash dfuse byserial "$WORK/fw.dfu" -- "$A,trace=1" "$B"
[ "$RC" = 0 ] || { tail -40 "$U/events.log"; fail "flash by serial exited $RC"; }
grep -q "board pyb-1: flashed .*fw.dfu; it runs MicroPython v1.22.0" "$U/out" || fail "no success line"
flash_check "$U/dump/a.bin" $BASE $BASE="$WORK/fw.bin" rest-erased
flash_check "$U/dump/b.bin" $BASE rest-erased
state_is "$U/dump/a.state" left=1 jump=0x08000000 unplugged=1 poll_violations=0 status=OK writes=128 \
  erases=6 uploads=128
state_is "$U/dump/b.state" left=0 writes=0 erases=0 uploads=0 requests=0
ev_expect "$U/events.log" "a claim interface 0" "a erase page 0x08000000" "a erase page 0x0800c000" \
  "a erase page 0x08010000" "a erase page 0x08020000" "a dnload block 2 len 2048 at 0x08000000" \
  "a dnload block 129 len 2048 at 0x0803f800" "a upload block 2 len 2048 at 0x08000000" \
  "a set address 0x08000000" "a leave -> jump 0x08000000" "a unplug"
ev_absent "$U/events.log" "a erase page 0x08040000"
ev_absent "$U/events.log" "b claim"
# the request that writes block 4 (wValue 6, 0x08002000), for the faults below
REQ=$(grep -E ' a req [0-9]+ 21 01 0006 0000 0800' "$U/events.log" | head -1 | awk '{print $4}')
[ -n "$REQ" ] || fail "no DNLOAD of block 4 in the trace"

# 2. raw .bin by location, backup first
inventory byloc ", location: 1-4, backup: $WORK/backup"
flash bin byloc "$WORK/small.bin" --format bin --base 0x08008000 -- "$A" "$B"
[ "$RC" = 0 ] || { tail -40 "$U/events.log"; fail "flash by location exited $RC"; }
flash_check "$U/dump/b.bin" $BASE 0x08008000="$WORK/small.bin" rest-erased
flash_check "$U/dump/a.bin" $BASE rest-erased
state_is "$U/dump/b.state" left=1 jump=0x08008000 unplugged=1 poll_violations=0
ev_expect "$U/events.log" "b upload block 2 len 2048 at 0x08000000" "b erase page 0x08008000" \
  "b erase page 0x0800c000" "b erase page 0x08010000" "b erase page 0x08020000" \
  "b dnload block 2 len 2048 at 0x08008000" "b leave -> jump 0x08008000"
ev_absent "$U/events.log" "b erase page 0x08000000"
ev_absent "$U/events.log" "b erase page 0x08004000"
ev_absent "$U/events.log" "b erase page 0x08040000"
ev_absent "$U/events.log" "a claim"
[ "$(stat -c %s "$WORK/backup/pyb-1-dfu-backup-0x08000000.bin")" = 1048576 ] || fail "no 1 MiB backup"

# 3. ambiguous: two devices, no serial, no location
inventory ambiguous ""
flash ambiguous ambiguous "$WORK/fw.dfu" -- "$A" "$B"
[ "$RC" = 3 ] || fail "ambiguous match exited $RC, expected 3"
grep -q "2 devices match 0483:df11: 0483:df11 at 1-3 serial AAA111; 0483:df11 at 1-4 serial BBB222" "$U/out" ||
  fail "the ambiguity error does not name both candidates"
grep -q "flash.dfu_serial or flash.location" "$U/out" || fail "the ambiguity error does not say what to set"
state_is "$U/dump/a.state" requests=0
state_is "$U/dump/b.state" requests=0

# 4. faults: each a precise error, exit 3, bounded time, the device not left
fault() { # fault NAME SPEC OPTS WANT
  inventory "$1" ", dfu_serial: AAA111$3"
  flash "$1" "$1" "$WORK/fw.dfu" -- "$A,fault=$2" "$B"
  [ "$RC" = 3 ] || fail "$1: exit $RC, expected 3"
  [ "$S" -lt 30 ] || fail "$1: took ${S}s"
  grep -qF -- "$4" "$U/out" || fail "$1: no \"$4\" in the error"
  state_is "$U/dump/b.state" requests=0
}
fault errprog errprog@0x08004000-0x08004800 "" \
  "DFU errPROG at 0x08004000 while writing block 8: programming failed (device state dfuERROR); the sector may be write-protected"
ev_expect "$U/events.log" "a errPROG at 0x08004000 (fault)" "a CLRSTATUS"
state_is "$U/dump/a.state" left=0 state=dfuIDLE
fault stall "stall@$REQ" "" \
  "DFU request DNLOAD stalled at 0x08002000 while writing block 4 (device state dfuDNLOAD-IDLE): the device refuses it"
ev_expect "$U/events.log" "a stall (fault, request $REQ)"
fault gone "gone@$REQ" "" \
  "DFU device gone at 0x08002000 while writing block 4: it left the USB bus during GETSTATUS"
ev_expect "$U/events.log" "a device gone (fault, request $((REQ + 1)))"
fault hang "hang@$REQ" ", usb_timeout: 1000" \
  "DFU timeout at 0x08002000 while writing block 4: no answer to DNLOAD within 1000 ms; the bootloader hung"
ev_expect "$U/events.log" "a hang (fault, request $REQ never completes)"
echo PASS
