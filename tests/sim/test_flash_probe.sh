#!/usr/bin/env bash
# The GDB runner against probe servers with flash drivers (gdbsim playing
# OpenOCD, pyOCD and a Black Magic Probe: memory map, vFlashErase/Write/Done),
# each board's console a simulated MicroPython board (mpsim). Checked on the
# simulator's flash content and packet log, never on mpfarm's claims:
#  - the image lands in flash, erased per block, committed at vFlashDone;
#  - a server that drops the connection mid-flash: a clear error naming the
#    packet, the board's tests are <error>s, the run ends (no hang);
#  - a vFlashDone that never ends: the flash deadline stops the board.
# Usage: test_flash_probe.sh GDBSIM MPSIM MPFARM WORKDIR
set -euo pipefail
GDBSIM=$1
SIM=$2
MPFARM=$3
WORK=$4
HERE=$(cd "$(dirname "$0")" && pwd)
rm -rf "$WORK"
mkdir -p "$WORK"
RUN=$(mktemp -d /tmp/mpfarm-fp-XXXXXX)
export XDG_RUNTIME_DIR=$RUN MPFARM_LOCK_DIR=$WORK/locks NO_COLOR=1
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$RUN"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# A 40 KiB image for an nRF52 at 0x1000 (one partial block at the end), with
# the version banner mpsim reports.
python3 - "$WORK/fw.hex" "$WORK/fw.bin" <<'PY'
import sys
data = bytearray((i * 7 + 3) & 0xff for i in range(40 * 1024 + 100))
banner = b"MicroPython v1.22.0 on 2026-01-01; mpsim with nRF52\0"
data[0x200:0x200 + len(banner)] = banner
open(sys.argv[2], "wb").write(data)
def rec(addr, typ, d):
    b = bytes([len(d), addr >> 8 & 0xff, addr & 0xff, typ]) + d
    return ":" + (b + bytes([(-sum(b)) & 0xff])).hex().upper()
out = []
for i in range(0, len(data), 16):
    a = 0x1000 + i
    if i == 0 or (a & 0xffff) == 0:
        out.append(rec(0, 4, (a >> 16).to_bytes(2, "big")))
    out.append(rec(a & 0xffff, 0, bytes(data[i:i + 16])))
out.append(":00000001FF")
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY

# start_probe NAME PROFILE [gdbsim options]: a probe server; its port in PORT_NAME
start_probe() {
  local name=$1 profile=$2; shift 2
  "$GDBSIM" --port 0 --port-file "$WORK/$name.port" --profile "$profile" \
    --flash 0:0x80000:0x1000 --ram 0x20000000:0x10000 --dump "$WORK/$name.dump" \
    --log "$WORK/$name.log" "$@" >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$WORK/$name.port" ] && break; sleep 0.02; done
  [ -s "$WORK/$name.port" ] || fail "gdbsim $name did not start"
}
start_board() {
  "$SIM" --socket "$RUN/$1.sock" --log "$WORK/$1-console.log" &
  pids+=($!)
  for _ in $(seq 100); do [ -S "$RUN/$1.sock" ] && return 0; sleep 0.02; done
  fail "mpsim $1 did not start"
}
probe_entry() { echo "  - {id: $1, kind: $2, connection: \"tcp://127.0.0.1:$(cat "$WORK/$1.port")\"}"; }
board_entry() {
  echo "  - {id: $1, port: nrf, board: PCA10040, mcu: nrf52, serial: \"unix:$RUN/$1.sock\", probe: $2, flash: {method: gdb}}"
}

for profile in openocd pyocd bmp; do
  start_probe "p-$profile" "$profile"
  start_board "b-$profile"
done
start_probe p-drop openocd --fault disconnect-after:6
start_board b-drop
start_probe p-stall openocd --fault stall-done:60000
start_board b-stall
# A probe whose GDB server mpfarm starts itself: OpenOCD in pipe mode (a
# stand-in that records its argv and serves the protocol with gdbsim).
start_board b-spawn
export FAKE_GDBSIM=$GDBSIM FAKE_ARGV_LOG=$WORK/spawn.argv FAKE_SIM_STATE=$WORK/p-spawn.dump
{
  echo "probes:"
  probe_entry p-openocd openocd; probe_entry p-pyocd pyocd; probe_entry p-bmp blackmagic
  probe_entry p-drop openocd; probe_entry p-stall openocd
  echo "  - {id: p-spawn, kind: openocd, interface: cmsis-dap, target: nrf52, serial_number: E6614C311B7E, server: $HERE/fake-openocd.sh}"
  echo "boards:"
  board_entry b-spawn p-spawn
  board_entry b-openocd p-openocd; board_entry b-pyocd p-pyocd; board_entry b-bmp p-bmp
  board_entry b-drop p-drop
  echo "  - {id: b-stall, port: nrf, board: PCA10040, mcu: nrf52, serial: \"unix:$RUN/b-stall.sock\", probe: p-stall, flash: {method: gdb}, timeouts: {flash: 3}}"
  echo "firmware:"
  echo "  - {match: {board: PCA10040}, file: $WORK/fw.hex}"
} >"$WORK/farm.yaml"
printf 'suite: quick\ntests:\n  - name: one\n    code: print(1)\n    expect: "1"\n' >"$WORK/quick.yaml"

set +e
timeout 120 "$MPFARM" run -i "$WORK/farm.yaml" -s "$WORK/quick.yaml" -o "$WORK/r" >"$WORK/out.txt" 2>&1
rc=$?
set -e
cat "$WORK/out.txt"
[ $rc = 3 ] || fail "run exited $rc, expected 3 (two boards could not be flashed)"
python3 "$HERE/../integration/check_junit.py" "$WORK/r/junit.xml" \
  --expect b-openocd:quick:one:pass --expect b-pyocd:quick:one:pass --expect b-bmp:quick:one:pass \
  --expect b-drop:quick:one:error --expect b-stall:quick:one:error --expect b-spawn:quick:one:pass
[ "$(tr '\n' ' ' <"$WORK/spawn.argv")" = '-c gdb_port pipe -c tcl_port disabled -c telnet_port disabled -f interface/cmsis-dap.cfg -f target/nrf52.cfg -c adapter serial E6614C311B7E ' ] ||
  fail "the OpenOCD argv was $(tr '\n' ' ' <"$WORK/spawn.argv")"
pgrep -f "gdbsim --stdio.*$WORK" >/dev/null && fail "the probe server outlived the run"

# Stop the servers: they dump their flash on exit.
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()

python3 - "$WORK" <<'PY'
import os, re, sys, xml.etree.ElementTree as ET
work = sys.argv[1]
img = open(os.path.join(work, "fw.bin"), "rb").read()
for profile in ("openocd", "pyocd", "bmp", "spawn"):
    dump = open(os.path.join(work, f"p-{profile}.dump"), "rb").read()
    assert dump[0x1000:0x1000 + len(img)] == img, f"{profile}: flash content differs from the image"
    end = 0x1000 + len(img)
    assert dump[:0x1000] == b"\xff" * 0x1000, f"{profile}: bytes before the image were touched"
    if profile == "spawn":
        continue
    log = open(os.path.join(work, f"p-{profile}.log")).read()
    erases = re.findall(r"vFlashErase addr=0x([0-9a-f]+) len=(\d+) -> OK", log)
    assert erases, f"{profile}: no vFlashErase in {log[:400]}"
    for a, n in erases:
        assert int(a, 16) % 0x1000 == 0 and int(n) % 0x1000 == 0, (profile, a, n)
    assert "vFlashDone" in log, profile
root = ET.parse(os.path.join(work, "r", "junit.xml")).getroot()
cases = {s.get("name"): s.find("testcase") for s in root.iter("testsuite")}
drop = cases["b-drop"].find("error")
assert drop.get("type") == "flash" and "closed the connection" in drop.get("message"), drop.attrib
stall = cases["b-stall"].find("error")
assert "vFlashDone" in stall.get("message") or "flash deadline" in stall.get("message"), stall.attrib
print("flash content and packet logs check out")
PY
echo PASS
