#!/usr/bin/env bash
# The uf2 runner end to end against uf2sim, a UF2 bootloader drive in FUSE:
#  1. mpfarm run flashes Debian's micro:bit MicroPython (.hex, converted to
#     UF2 by mpfarm) onto the drive found by its Board-ID; the simulator
#     takes every block, dumps its flash and "reboots" into an emulated
#     micro:bit (QEMU) booted from that flash; mpfarm reconnects to its UART
#     and runs suites/smoke.yaml. Asserted on the simulator's log, its flash
#     dump (= the image, byte for byte) and the JUnit report;
#  2. the same with a .uf2 file, copied as is;
#  3. a UF2 file of another family is refused before any copy (no create in
#     the simulator's log, the drive still there);
#  4. two drives with the same Board-ID and no pin: an error naming both,
#     nothing written; pinned with flash: mount, only that drive is written;
#  5. a drive that never appears: a bounded wait, then an error;
#  6. a drive that vanishes after 100 blocks: an error naming the count.
# Usage: test_uf2.sh UF2SIM MPFARM IMGTOOL SOURCE_DIR WORKDIR
set -euo pipefail
SIM=$1
MPFARM=$2
IMGTOOL=$3
SRC=$4
WORK=$5
FW=/usr/share/firmware-microbit-micropython/firmware.hex
fail() { echo "FAIL: $*" >&2; exit 1; }

[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse on this machine"; exit 77; }
[ -r "$FW" ] || { echo "SKIP: firmware-microbit-micropython is not installed"; exit 77; }
command -v qemu-system-arm >/dev/null || { echo "SKIP: qemu-system-arm is not installed"; exit 77; }

rm -rf "$WORK"
mkdir -p "$WORK"
RUN=$(mktemp -d /tmp/uf2-test-XXXXXX) # unix socket paths are limited to 107 bytes
pids=()
mounts=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for m in "${mounts[@]}"; do
    if grep -q " $m " /proc/self/mountinfo; then umount -l "$m" 2>/dev/null || fusermount3 -u -z "$m" || true; fi
  done
  rm -rf "$RUN"
}
trap cleanup EXIT

# start_sim NAME [uf2sim options...]: mount $RUN/NAME, log $WORK/NAME.log, dump $WORK/NAME.dump
start_sim() {
  local name=$1; shift
  mkdir -p "$RUN/$name" "$WORK/$name.dump"
  mounts+=("$RUN/$name")
  "$SIM" --mount "$RUN/$name" --log "$WORK/$name.log" --dump "$WORK/$name.dump" \
    --ready "$RUN/$name.ready" "$@" 2>"$WORK/$name.err" &
  local pid=$!
  pids+=($pid)
  for _ in $(seq 200); do
    [ -e "$RUN/$name.ready" ] && return 0
    if ! kill -0 $pid 2>/dev/null; then
      wait $pid && rc=0 || rc=$?
      [ "$rc" = 77 ] && { echo "SKIP: FUSE cannot mount here: $(cat "$WORK/$name.err")"; exit 77; }
      fail "uf2sim $name exited with $rc: $(cat "$WORK/$name.err")"
    fi
    sleep 0.02
  done
  fail "uf2sim $name did not mount"
}
mounted() { grep -q " $1 " /proc/self/mountinfo; }

# The flash dump holds every byte of the image (python: an independent reader of the HEX).
check_dump() {
  python3 - "$1" "$2" <<'PY'
import sys
hexfile, dump = sys.argv[1], sys.argv[2]
regions = {"flash": (0x0, 256 * 1024), "uicr": (0x10001000, 1024)}
mem = {n: open(f"{dump}/{n}.bin", "rb").read() for n in regions}
upper, n, bad = 0, 0, []
for line in open(hexfile):
    line = line.strip()
    if not line.startswith(":"):
        continue
    b = bytes.fromhex(line[1:])
    ln, addr, typ, data = b[0], b[1] << 8 | b[2], b[3], b[4:4 + b[0]]
    if typ == 4:
        upper = (data[0] << 8 | data[1]) << 16
    elif typ == 0:
        a = upper + addr
        for name, (start, size) in regions.items():
            if start <= a and a + ln <= start + size:
                if mem[name][a - start:a - start + ln] != data:
                    bad.append(hex(a))
                n += ln
                break
        else:
            bad.append(f"{a:#x} outside the model")
if bad or n == 0:
    sys.exit(f"flash dump differs from the image at {bad[:5]} ({n} bytes compared)")
print(f"flash dump equals the image ({n} bytes)")
PY
}

# inventory FILE BOARD_YAML FIRMWARE
inventory() {
  cat >"$1" <<EOF
farm: uf2-sim
boards:
$2
firmware:
  - match: {port: nrf}
    file: $3
  - match: {port: rp2}
    file: $WORK/rp2.uf2
EOF
}

# microbit FILE SOCKET FLASH_OPTIONS FIRMWARE: an inventory with one micro:bit flashed by uf2
microbit() {
  inventory "$1" "  - id: microbit-uf2
    port: nrf
    board: microbit
    mcu: nrf51
    serial: unix:$2
    flash: {method: uf2, $3}" "$4"
}

blocks_of() { echo $(( $(stat -c %s "$1") / 512 )); }

# The UF2 mpfarm's conversion makes (256-byte pages, no family: nRF51 has none).
"$IMGTOOL" convert "$FW" uf2 "$WORK/fw.uf2"
NBLK=$(blocks_of "$WORK/fw.uf2")

echo "== 1. mpfarm run: .hex converted, drive found by Board-ID, smoke suite on the booted micro:bit"
start_sim a --uart "$RUN/a.sock"
microbit "$WORK/a.yaml" "$RUN/a.sock" "board_id: NRF51-microbit-v1, wait: 5" "$FW"
rc=0
"$MPFARM" run -i "$WORK/a.yaml" -s "$SRC/suites/smoke.yaml" -o "$WORK/rep-a" >"$WORK/run-a.out" 2>&1 || rc=$?
cat "$WORK/run-a.out"
[ $rc = 0 ] || fail "mpfarm run exited $rc"
grep -q "complete $NBLK blocks" "$WORK/a.log" || fail "the simulator did not get all $NBLK blocks"
grep -Eq "file NEW.UF2: [0-9]+ bytes, $NBLK blocks accepted, 0 ignored" "$WORK/a.log" ||
  fail "blocks ignored or missing: $(grep file "$WORK/a.log")"
grep -q "reboot: unmounted" "$WORK/a.log" || fail "no reboot in the simulator log"
grep -q "qemu pid" "$WORK/a.log" || fail "the emulated micro:bit did not start"
! grep -Eq "^[0-9]+ ignored " "$WORK/a.log" || fail "a block was ignored: $(grep -E "^[0-9]+ ignored " "$WORK/a.log" | head -3)"
mounted "$RUN/a" && fail "the drive is still mounted after the flash"
check_dump "$FW" "$WORK/a.dump"
python3 - "$WORK/rep-a/junit.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = root.findall("testsuite")
assert len(suites) == 1, "one board"
s = suites[0]
props = {p.get("name"): p.get("value") for p in s.iter("property")}
t, f, e = int(s.get("tests")), int(s.get("failures")), int(s.get("errors"))
assert t >= 3 and f == 0 and e == 0, f"tests={t} failures={f} errors={e}"
assert props.get("flash.method") == "uf2", props.get("flash.method")
assert props.get("flash.result") == "flashed", props.get("flash.result")
print(f"junit: {t} tests passed on the micro:bit booted from the UF2 flash")
PY
grep -q "uf2: drive $RUN/a gone" "$WORK/rep-a/logs/microbit-uf2.log" || fail "board log lacks the drive vanishing"

echo "== 2. a .uf2 file is checked and copied as is"
start_sim b --uart "$RUN/b.sock"
microbit "$WORK/b.yaml" "$RUN/b.sock" "model: 'BBC micro:bit (simulated)'" "$WORK/fw.uf2"
rc=0
"$MPFARM" run -i "$WORK/b.yaml" -s "$SRC/suites/smoke.yaml" -o "$WORK/rep-b" >"$WORK/run-b.out" 2>&1 || rc=$?
[ $rc = 0 ] || { cat "$WORK/run-b.out"; fail "mpfarm run with a .uf2 exited $rc"; }
grep -q "complete $NBLK blocks" "$WORK/b.log" || fail "the .uf2 was not taken whole"
grep -q "copied as is" "$WORK/rep-b/logs/microbit-uf2.log" || fail "the .uf2 was not copied as is"
check_dump "$FW" "$WORK/b.dump"

echo "== 3. another family's UF2: refused before any copy"
"$IMGTOOL" convert "$FW" uf2 "$WORK/nrf52.uf2" --family 0x1b57745f
start_sim c
microbit "$WORK/c.yaml" "$RUN/c.sock" "mount: $RUN/c, wait: 2" "$WORK/nrf52.uf2"
rc=0
"$MPFARM" flash microbit-uf2 -i "$WORK/c.yaml" "$WORK/nrf52.uf2" >"$WORK/run-c.out" 2>&1 || rc=$?
cat "$WORK/run-c.out"
[ $rc -ne 0 ] || fail "a wrong-family UF2 was flashed"
grep -q "UF2 family 0x1b57745f, the board's MCU nrf51 has no UF2 family id" "$WORK/run-c.out" ||
  fail "the error does not name the family"
grep -q "create" "$WORK/c.log" && fail "the simulator saw a file although the image was refused"
mounted "$RUN/c" || fail "the drive went away although nothing was copied"

echo "== 4. two drives with the same Board-ID: an error naming both; a pinned one is written"
head -c 8192 /dev/urandom >"$WORK/rp2.bin"
"$IMGTOOL" convert "$WORK/rp2.bin" uf2 "$WORK/rp2.uf2" --format bin --base 0x10000000 --family 0xe48bff56
start_sim d1 --mcu rp2040
start_sim d2 --mcu rp2040
RP2="  - id: pico
    port: rp2
    board: pico
    mcu: rp2040
    serial: unix:$RUN/pico.sock"
inventory "$WORK/d.yaml" "$RP2
    flash: {method: uf2, board_id: RPI-RP2, wait: 2}" "$FW"
rc=0
"$MPFARM" flash pico -i "$WORK/d.yaml" "$WORK/rp2.uf2" >"$WORK/run-d.out" 2>&1 || rc=$?
cat "$WORK/run-d.out"
[ $rc = 3 ] || fail "two matching drives: exit $rc, expected 3"
grep -q "2 UF2 drives match Board-ID RPI-RP2" "$WORK/run-d.out" || fail "the error does not say two drives match"
grep -q "$RUN/d1 (" "$WORK/run-d.out" && grep -q "$RUN/d2 (" "$WORK/run-d.out" ||
  fail "the error does not name both drives"
grep -q create "$WORK/d1.log" "$WORK/d2.log" && fail "a drive was written although the choice was ambiguous"
inventory "$WORK/d2.yaml" "$RP2
    flash: {method: uf2, board_id: RPI-RP2, mount: $RUN/d2, wait: 2}" "$FW"
rc=0
"$MPFARM" flash pico -i "$WORK/d2.yaml" "$WORK/rp2.uf2" >"$WORK/run-d2.out" 2>&1 || rc=$?
grep -q "complete 32 blocks" "$WORK/d2.log" || { cat "$WORK/run-d2.out"; fail "the pinned drive was not written"; }
grep -q create "$WORK/d1.log" && fail "the other drive was written"
cmp <(head -c 8192 "$WORK/d2.dump/flash.bin") "$WORK/rp2.bin" || fail "rp2040 flash dump differs from the image"
mounted "$RUN/d1" || fail "the other drive went away"

echo "== 5. a drive that never appears: bounded wait"
inventory "$WORK/e.yaml" "$RP2
    flash: {method: uf2, board_id: RP2-NOT-THERE, wait: 1}" "$FW"
rc=0
start=$(date +%s)
"$MPFARM" flash pico -i "$WORK/e.yaml" "$WORK/rp2.uf2" >"$WORK/run-e.out" 2>&1 || rc=$?
cat "$WORK/run-e.out"
[ $rc = 3 ] || fail "no drive: exit $rc, expected 3"
grep -q "no UF2 drive with Board-ID RP2-NOT-THERE" "$WORK/run-e.out" || fail "the error does not say which drive"
grep -q "still after 1000 ms" "$WORK/run-e.out" || fail "the error does not give the wait"
[ $(( $(date +%s) - start )) -lt 60 ] || fail "the wait was not bounded"

echo "== 6. the drive vanishes after 100 blocks"
start_sim f --vanish-after 100
microbit "$WORK/f.yaml" "$RUN/f.sock" "mount: $RUN/f, wait: 2" "$FW"
rc=0
"$MPFARM" flash microbit-uf2 -i "$WORK/f.yaml" "$FW" >"$WORK/run-f.out" 2>&1 || rc=$?
cat "$WORK/run-f.out"
[ $rc = 3 ] || fail "a vanished drive: exit $rc, expected 3"
grep -q "vanish after 100 blocks" "$WORK/f.log" || fail "the fault was not injected"
grep -Eq "vanished after [0-9]+ of $NBLK blocks" "$WORK/run-f.out" || fail "the error does not give the count"

cleanup
trap - EXIT
if grep -l "Sanitizer\|runtime error" "$WORK"/*.err; then fail "uf2sim: sanitizer report (above files)"; fi
echo "PASS"
