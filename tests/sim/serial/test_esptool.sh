#!/usr/bin/env bash
# The esptool runner end to end: mpfarm run flashes an ESP32 behind a
# simulated CP2102 USB-UART bridge (/dev/ttyUSB0, real libserialport through
# umockdev), the ESP ROM loader model answering (model_esp.c). Checked on the
# model's dumped flash and its event log, never on mpfarm's claims:
#  1. a bootloader / partition table / app set (files:), deflated, at 460800
#     baud: the flash holds each file at its offset; the chip was reset into
#     download mode by DTR/RTS, switched baud after the reply, was hard-reset
#     into the app, and the smoke test ran on the app's console (mpsim);
#  2. a merged image at 0, uncompressed at 115200, with a dropped reply and a
#     corrupted data frame: the flash is still exact (blocks sent again);
#  3. a board whose flash.chip says esp32s3: refused before any write.
# Usage: test_esptool.sh SERIALSIM MPFARM MPSIM SRC WORK
set -euo pipefail
SSIM=$1 MPFARM=$2 MPSIM=$3 SRC=$4 WORK=$5
source "$SRC/tests/sim/serial/lib.sh"
need_harness

# Images: a bootloader (0xE9 header), a partition table, an app with the
# version banner the mpsim board reports; and the same merged at 0.
python3 - "$WORK" <<'PY'
import os, sys
w = sys.argv[1]
def blob(n, seed):
    x = seed * 2654435761 + 1
    out = bytearray(n)
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0xffffffff
        out[i] = (x >> 24) if i % 5 < 2 else (i >> 3) & 0xff
    return out
boot = blob(0x5a31, 1); boot[0] = 0xe9
pt = blob(0xc00, 2)
app = blob(0x31234, 3); app[0] = 0xe9
banner = b"MicroPython v1.22.0 on 2026-01-01; mpsim with ESP32\0"
app[0x400:0x400 + len(banner)] = banner
for name, d in (("bootloader.bin", boot), ("partition-table.bin", pt), ("micropython.bin", app)):
    open(os.path.join(w, name), "wb").write(d)
merged = bytearray(b"\xff" * (0x10000 + len(app)))
merged[0x1000:0x1000 + len(boot)] = boot
merged[0x8000:0x8000 + len(pt)] = pt
merged[0x10000:] = app
open(os.path.join(w, "merged.bin"), "wb").write(merged)
PY
printf 'suite: quick\ntests:\n  - name: one\n    code: print(6*7)\n    expect: "42"\n' >"$WORK/quick.yaml"

# run_case NAME MODEL_ARGS FLASH_OPTS FIRMWARE_ENTRY: mpfarm run on one board.
run_case() {
  local name=$1 args=$2 opts=$3 fw=$4
  start_mpsim "$RUN/$name-app.sock"
  cat >"$WORK/$name.yaml" <<YAML
boards:
  - id: $name
    port: esp32
    board: ESP32_GENERIC
    mcu: esp32
    serial: {path: /dev/ttyUSB0}
    flash: {method: esptool$opts}
firmware:
  - boards: [$name]
$fw
YAML
  mkdir -p "$WORK/$name-dump"
  set +e
  timeout 200 "$SSIM" --log "$WORK/$name-ev.log" --dump "$WORK/$name-dump" \
    --device esp=esp:chip=esp32,app=$RUN/$name-app.sock$args \
    -- "$MPFARM" run -i "$WORK/$name.yaml" -s "$WORK/quick.yaml" -o "$WORK/$name-report" \
    >"$WORK/$name-out.txt" 2>&1
  RC=$?
  set -e
  cat "$WORK/$name-out.txt"
}

# flash_has NAME FILE OFFSET...: the dumped flash holds each file at its offset.
flash_has() {
  python3 - "$WORK/$1-dump/esp.flash" "${@:2}" <<'PY'
import sys
flash = open(sys.argv[1], "rb").read()
args = sys.argv[2:]
for path, off in zip(args[::2], args[1::2]):
    d = open(path, "rb").read()
    o = int(off, 0)
    if flash[o:o + len(d)] != d:
        first = next(i for i in range(len(d)) if flash[o + i] != d[i])
        sys.exit(f"FAIL: flash differs from {path} at 0x{o + first:x}")
print("flash content checked:", ", ".join(args[::2]))
PY
}

# 1. a files: set, deflated, at 460800 baud; then the smoke test on the app
run_case set "" "" "    files: [{path: $WORK/bootloader.bin, offset: 0x1000},
             {path: $WORK/partition-table.bin, offset: 0x8000},
             {path: $WORK/micropython.bin, offset: 0x10000}]"
[ "$RC" = 0 ] || { cat "$WORK/set-ev.log"; fail "set: run exited $RC"; }
python3 "$SRC/tests/integration/check_junit.py" "$WORK/set-report/junit.xml" --expect set:quick:one:pass
flash_has set "$WORK/bootloader.bin" 0x1000 "$WORK/partition-table.bin" 0x8000 \
  "$WORK/micropython.bin" 0x10000
ev_expect "$WORK/set-ev.log" "esp lines dtr=1 rts=1" "esp reset: EN low" "esp boot: download mode" \
  "esp sync at 115200 baud" "esp reply 14 error 0x05" "esp change_baudrate 460800" "esp defl_begin 0x1000" \
  "esp md5 0x1000+0x5a31" "esp md5 0x8000+0xc00" "esp md5 0x10000+0x31234" "esp reset: EN low" \
  "esp boot: application" "esp app: console bridged"
grep -q "esp baud 460800" "$WORK/set-ev.log" || fail "the host did not switch its port to 460800"

# 2. a merged image, plain at 115200, with a dropped reply and a corrupted frame
run_case merged ",drop=12,corrupt=20" ", baud: 0, compress: false" \
  "    file: $WORK/merged.bin
    format: bin
    base: 0"
[ "$RC" = 0 ] || { cat "$WORK/merged-ev.log"; fail "merged: run exited $RC"; }
python3 "$SRC/tests/integration/check_junit.py" "$WORK/merged-report/junit.xml" \
  --expect merged:quick:one:pass
flash_has merged "$WORK/merged.bin" 0
ev_expect "$WORK/merged-ev.log" "esp begin 0x0" "esp fault: dropped reply 12" \
  "esp seq 6 again: acknowledged, not rewritten" "esp fault: corrupted data frame 20" \
  "esp checksum error seq" "esp md5 0x0+0x41234" "esp boot: application"
grep -q "defl_begin" "$WORK/merged-ev.log" && fail "compress: false still deflated"
grep -q "change_baudrate" "$WORK/merged-ev.log" && fail "baud: 0 still switched"

# 3. the wrong chip: nothing written
run_case wrong "" ", chip: esp32s3" "    file: $WORK/merged.bin
    format: bin
    base: 0"
[ "$RC" = 3 ] || fail "wrong chip: run exited $RC, expected 3"
grep -q "the ROM loader reports an esp32, the inventory expects an esp32s3" "$WORK/wrong-report/junit.xml" ||
  fail "the report does not name the chip mismatch"
grep -Eq "esp (begin|defl_begin)" "$WORK/wrong-ev.log" && fail "wrong chip: something was written"
python3 - "$WORK/wrong-dump/esp.flash" <<'PY'
import sys
assert set(open(sys.argv[1], "rb").read()) == {0xff}, "wrong chip: the flash was touched"
PY
echo "PASS"
