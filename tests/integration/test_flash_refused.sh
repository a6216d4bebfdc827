#!/usr/bin/env bash
# An emulated micro:bit wired like a lab board: console on a socket, debug
# port (QEMU's gdbstub) as its probe. A corrupted HEX and an image larger than
# the flash are refused before the board is touched: the flash, read over GDB
# by gdb-multiarch before and after, is unchanged. The real image then flashes.
source "$(dirname "$0")/lib.sh" "$@"
need_microbit
need gdb-multiarch
fw=/usr/share/firmware-microbit-micropython/firmware.hex

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
qemu-system-arm -M microbit -nographic -monitor none -nodefaults \
  -chardev "socket,id=u,path=$RUN/ext-uart.sock,server=on,wait=off" -serial chardev:u \
  -gdb "tcp:127.0.0.1:$port" -device "loader,file=$fw" >"$WORK/qemu.log" 2>&1 &
qpid=$!
stop_qemu() { kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; lib_cleanup; }
trap stop_qemu EXIT
for _ in $(seq 100); do [ -S "$RUN/ext-uart.sock" ] && break; sleep 0.05; done

cat >"$WORK/lab.yaml" <<EOF
probes:
  - {id: swd-ext, kind: qemu, connection: "tcp://127.0.0.1:$port"}
boards:
  - {id: ext-1, port: nrf, board: microbit, mcu: nrf51, serial: "unix:$RUN/ext-uart.sock",
     probe: swd-ext, flash: {method: gdb}}
EOF

dump() {
  gdb-multiarch -nx -batch -ex 'set architecture arm' -ex "target remote 127.0.0.1:$port" \
    -ex "dump binary memory $1 0 0x40000" -ex detach >"$WORK/gdb.log" 2>&1 ||
    { cat "$WORK/gdb.log"; fail "gdb-multiarch could not read the flash"; }
}
dump "$WORK/before.bin"

# A corrupted record (one data digit changed: its checksum no longer adds up).
python3 - "$fw" "$WORK/corrupt.hex" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
l = lines[99]
lines[99] = l[:20] + ("0" if l[20] != "0" else "1") + l[21:]
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PY
run_expect 2 flash ext-1 -i "$WORK/lab.yaml" "$WORK/corrupt.hex"
cat "$WORK/err.txt"
grep -q "corrupt.hex: line 100" "$WORK/err.txt" || fail "the error does not name the record"
grep -q "board ext-1 was not touched" "$WORK/err.txt" || fail "no 'not touched' statement"

# An image 8 bytes past the end of the nRF51's 256 KiB flash.
python3 - "$WORK/big.hex" <<'PY'
import sys
def rec(addr, typ, data):
    b = bytes([len(data), addr >> 8 & 0xff, addr & 0xff, typ]) + data
    return ":" + (b + bytes([(-sum(b)) & 0xff])).hex().upper()
out = [rec(0, 4, b"\x00\x03")]                      # base 0x00030000
for a in range(0, 0x10000, 16):                     # 0x30000 .. 0x3ffff
    out.append(rec(a, 0, bytes(16)))
out += [rec(0, 4, b"\x00\x04"), rec(0, 0, bytes(8)), ":00000001FF"]
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY
run_expect 2 flash ext-1 -i "$WORK/lab.yaml" "$WORK/big.hex"
cat "$WORK/err.txt"
grep -q "does not fit" "$WORK/err.txt" || fail "oversize image not refused clearly"
grep -q "0x00040000" "$WORK/err.txt" || fail "the message does not name the first byte outside flash"

# The same through mpfarm run: nothing runs, exit 2.
printf 'firmware:\n  - {boards: [ext-1], file: %s}\n' "$WORK/corrupt.hex" >>"$WORK/lab.yaml"
run_expect 2 run -i "$WORK/lab.yaml" -s "$SRC/suites/smoke.yaml" -o "$WORK/r"
grep -q "no board was touched" "$WORK/err.txt" || fail "run did not refuse the plan"
[ ! -e "$WORK/r/junit.xml" ] || fail "a refused plan wrote a report"

dump "$WORK/after.bin"
cmp "$WORK/before.bin" "$WORK/after.bin" || fail "the board's flash changed although every image was refused"

# The real image flashes (reset through the probe's monitor command) and runs.
head -n -1 "$WORK/lab.yaml" | head -n -1 >"$WORK/lab2.yaml"
run_expect 0 flash ext-1 -i "$WORK/lab2.yaml" "$fw"
cat "$WORK/out.txt"
grep -q "board ext-1: flashed .* it runs .*MicroPython v1.9.2" "$WORK/out.txt" || fail "no success line"
dump "$WORK/flashed.bin"
head -c 243852 "$WORK/flashed.bin" | cmp - <(head -c 243852 "$WORK/before.bin") || fail "flash content differs from the image"
echo PASS
