#!/usr/bin/env bash
# mpfarm's GDB remote client (farm/rsp.c), driven by rsp_client_test:
# (1) against gdbsim in every profile: flash through the memory map and vFlash,
#     X and M writes, verify with m and qCRC, monitor commands, server errors;
# (2) against gdbsim's faults: the client recovers (nak, corrupt reply, lost
#     ack) or fails with a clear message within its timeout (disconnect
#     mid-flash, stalls, error replies) - never hangs;
# (3) against QEMU's real gdbstub (micro:bit): the 240 KB MicroPython image
#     written and read back, timed against gdb-multiarch's restore.
# Results are checked on gdbsim's flash dump and event log.
# Usage: test_rsp_client.sh GDBSIM RSP_CLIENT_TEST WORKDIR
set -euo pipefail
SIM=$1
CLIENT=$2
WORK=$3
rm -rf "$WORK"
mkdir -p "$WORK"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

start_sim() { # start_sim NAME [gdbsim options...] -> PORT, SIMPID
  local name=$1; shift
  "$SIM" --port 0 --port-file "$WORK/$name.port" --log "$WORK/$name.log" --dump "$WORK/$name.dump" \
    "$@" >"$WORK/$name.out" 2>&1 &
  pids+=($!)
  SIMPID=$!
  for _ in $(seq 200); do [ -s "$WORK/$name.port" ] && break; sleep 0.02; done
  [ -s "$WORK/$name.port" ] || { cat "$WORK/$name.out"; fail "gdbsim $name did not start"; }
  PORT=$(cat "$WORK/$name.port")
}
stop_sim() { kill "$SIMPID"; wait "$SIMPID" || fail "gdbsim exited with $?"; }

# client NAME WANT_RC [--timeout MS ...] STEPS...: run the client against 127.0.0.1:$PORT
client() {
  local name=$1 want=$2; shift 2
  local opts=()
  while [ $# -gt 0 ] && [[ $1 == --* ]]; do opts+=("$1" "$2"); shift 2; done
  local t0 t1 rc
  t0=$(date +%s%N)
  set +e
  timeout 60 "$CLIENT" "${opts[@]}" "tcp://127.0.0.1:$PORT" "$@" >"$WORK/$name.stdout" 2>"$WORK/$name.stderr"
  rc=$?
  set -e
  t1=$(date +%s%N)
  ELAPSED_MS=$(( (t1 - t0) / 1000000 ))
  if [ "$rc" != "$want" ]; then
    echo "--- stdout"; cat "$WORK/$name.stdout"; echo "--- stderr"; cat "$WORK/$name.stderr"
    fail "$name: client exited $rc, expected $want"
  fi
}
same_at() { # same_at DUMP OFFSET FILE
  local n; n=$(stat -c %s "$3")
  cmp -s <(tail -c +$(($2 + 1)) "$1" | head -c "$n") "$3" || fail "$1 at offset $2 does not hold $3"
}
erased() { # erased DUMP OFFSET LEN
  cmp -s <(tail -c +$(($2 + 1)) "$1" | head -c "$3") <(head -c "$3" /dev/zero | tr '\0' '\377') ||
    fail "$1: $3 bytes at offset $2 are not erased"
}
has() { grep -qE -- "$2" "$1" || { echo "--- $1"; tail -c 3000 "$1"; fail "$1 lacks /$2/"; }; }
hasnt() { ! grep -qE -- "$2" "$1" || { echo "--- $1"; tail -c 3000 "$1"; fail "$1 has /$2/"; }; }
seq_of() { # seq_of LOG PATTERN K: packet number of the K-th log line matching PATTERN
  grep -E -- "$2" "$1" | sed -n "${3}p" | cut -d' ' -f1
}

head -c 100000 /dev/urandom >"$WORK/img.bin"
printf '#$}*#$}*\x03' >>"$WORK/img.bin"
IMGLEN=$(stat -c %s "$WORK/img.bin")
head -c 3000 /dev/urandom >"$WORK/small.bin"
head -c 1024 /dev/zero | tr '\0' '\125' >"$WORK/k1.bin"
head -c 4096 /dev/zero | tr '\0' '\377' >"$WORK/ff4k.bin"

echo "== 1. flash through the memory map, every profile; verify with m and qCRC"
for prof in openocd pyocd bmp; do
  start_sim "$prof" --profile "$prof"
  client "$prof" 0 info flash "$WORK/img.bin" 0x2000 verify "$WORK/img.bin" 0x2000 \
    crc "$WORK/img.bin" 0x2000 monitor "reset halt"
  stop_sim
  out=$WORK/$prof.stdout log=$WORK/$prof.log
  has "$out" "region flash 0x00000000 0x40000 blocksize=0x400"
  has "$out" "region ram 0x20000000 0x4000"
  has "$out" "erased 0x00002000-0x0001a7ff"
  has "$log" "vFlashErase addr=0x00002000 len=100352 -> OK"
  has "$log" "vFlashDone -> OK"
  has "$log" "qRcmd -> .*cmd='reset halt'"
  hasnt "$log" "overlong|bad checksum|nak"
  same_at "$WORK/$prof.dump" $((0x2000)) "$WORK/img.bin"
  erased "$WORK/$prof.dump" 0 $((0x2000))
  erased "$WORK/$prof.dump" $((0x2000 + IMGLEN)) $((0x40000 - 0x2000 - IMGLEN))
done
has "$WORK/openocd.log" "vFlashDone -> OK programmed=$IMGLEN"  # programmed at done
has "$WORK/pyocd.log" "vFlashDone -> OK programmed=$IMGLEN"
has "$WORK/openocd.stdout" "packet_size=0x4000 no_ack=1 memory_map=1"
has "$WORK/pyocd.stdout" "packet_size=0x800 no_ack=1"
has "$WORK/bmp.stdout" "packet_size=0x400 no_ack=0"
has "$WORK/openocd.stdout" "crc ok"
has "$WORK/bmp.stdout" "crc ok"
has "$WORK/pyocd.stdout" "crc unsupported"
has "$WORK/openocd.stdout" "monitor ok: target halted due to debug-request"
has "$WORK/pyocd.stdout" "monitor ok: Successfully halted"
# packets as large as PacketSize allows, each within it (gdbsim logs overlong ones)
[ "$(grep -c 'vFlashWrite' "$WORK/openocd.log")" -le 7 ] || fail "openocd: vFlashWrite packets too small"
[ "$(grep -c 'vFlashWrite' "$WORK/bmp.log")" -le 110 ] || fail "bmp: vFlashWrite packets too small"
[ "$(grep -c '^[0-9]* qCRC' "$WORK/pyocd.log")" = 1 ] || fail "pyocd: qCRC asked more than once"

echo "== 2. memory writes: X on a plain stub, M when X is refused; run-length encoded reads"
start_sim plain --profile plain --rle on
client plain 1 --wire "$WORK/plain.wire" write "$WORK/img.bin" 0x1000 verify "$WORK/img.bin" 0x1000 \
  verify "$WORK/ff4k.bin" 0 \
  write "$WORK/small.bin" 0x20000100 verify "$WORK/small.bin" 0x20000100 crc "$WORK/img.bin" 0x1000 \
  monitor "reset"
stop_sim
has "$WORK/plain.stdout" "wrote \(X\) $IMGLEN bytes"
has "$WORK/plain.log" "^[0-9]+ X addr=0x00001000 len=0 -> OK"
[ "$(grep -c ' X addr=.* -> OK' "$WORK/plain.log")" -le 30 ] || fail "X packets too small"
hasnt "$WORK/plain.log" " M addr="
has "$WORK/plain.wire" '^r \+\$f\*~f\*~'  # run-length encoded erased flash in the m replies
same_at "$WORK/plain.dump" $((0x1000)) "$WORK/img.bin"
has "$WORK/plain.stderr" "monitor commands are not supported"
start_sim plainm --profile plain --x off
client plainm 0 write "$WORK/img.bin" 0x1000 verify "$WORK/img.bin" 0x1000
stop_sim
has "$WORK/plainm.stdout" "wrote \(M\) $IMGLEN bytes"
has "$WORK/plainm.log" "X addr=0x00001000 len=0 -> \(empty\)"
[ "$(grep -c ' X addr=' "$WORK/plainm.log")" = 1 ] || fail "X probed more than once"
[ "$(grep -c ' M addr=.* -> OK' "$WORK/plainm.log")" -le 60 ] || fail "M packets too small"
same_at "$WORK/plainm.dump" $((0x1000)) "$WORK/img.bin"
# flash is not writable with M/X through a flash-driver server (OpenOCD)
start_sim noram --profile openocd
client noram 1 write "$WORK/small.bin" 0x1000
stop_sim
has "$WORK/noram.stderr" "GDB server tcp://127.0.0.1:$PORT: X at 0x00001000 \(3000 bytes\): E0E"

echo "== 3. the server's flash rules, reported with the packet in flight"
start_sim rules --profile openocd
client r-unaligned 1 erase 0x100 0x400
has "$WORK/r-unaligned.stderr" "vFlashErase at 0x00000100 \(1024 bytes\): E05"
client r-outside 1 erase 0 0x400 fwrite "$WORK/k1.bin" 0x40000
has "$WORK/r-outside.stderr" "vFlashWrite at 0x00040000 \(1024 bytes\): E.memtype"
client r-overlap 1 erase 0 0x800 fwrite "$WORK/k1.bin" 0x400 fwrite "$WORK/k1.bin" 0
has "$WORK/r-overlap.stderr" "vFlashWrite at 0x00000000 \(1024 bytes\): E05"
client r-done 0 done
client r-unerased 1 fwrite "$WORK/k1.bin" 0x800 done fwrite "$WORK/k1.bin" 0x800 done
has "$WORK/r-unerased.stderr" "GDB server tcp://127.0.0.1:$PORT: vFlashDone: E05"
client r-monitor 1 monitor "reset halt" monitor "frobnicate"
has "$WORK/r-monitor.stderr" "monitor command 'frobnicate' failed: E01"
stop_sim
has "$WORK/rules.log" "vFlashDone -> E05 unerased at 0x00000800"
has "$WORK/rules.log" "overlapping or decreasing"
same_at "$WORK/rules.dump" $((0x800)) "$WORK/k1.bin"  # the first group was programmed
start_sim rules-bmp --profile bmp
client b-unerased 1 fwrite "$WORK/k1.bin" 0x800 fwrite "$WORK/k1.bin" 0xc00 done fwrite "$WORK/k1.bin" 0x800
has "$WORK/b-unerased.stderr" "vFlashWrite at 0x00000800 \(1004 bytes\): EFF"  # PacketSize 0x400: a part of it
stop_sim

echo "== 4. faults the client recovers from: nak, corrupt reply, lost ack"
start_sim probe --profile bmp
client probe 0 flash "$WORK/img.bin" 0x2000
stop_sim
W3=$(seq_of "$WORK/probe.log" "vFlashWrite" 3)
W5=$(seq_of "$WORK/probe.log" "vFlashWrite" 5)
W7=$(seq_of "$WORK/probe.log" "vFlashWrite" 7)
start_sim rec --profile bmp --fault "nak:$W3" --fault "corrupt:$W5" --fault "drop-ack:$W7"
client rec 0 flash "$WORK/img.bin" 0x2000 verify "$WORK/img.bin" 0x2000
stop_sim
has "$WORK/rec.log" "^$W3 fault nak"
has "$WORK/rec.log" "\[fault corrupt\]"
has "$WORK/rec.log" "nak: resending the last reply"
has "$WORK/rec.log" "\[fault drop-ack\]"
same_at "$WORK/rec.dump" $((0x2000)) "$WORK/img.bin"

echo "== 5. faults the client reports within its timeout"
start_sim probe2 --profile openocd
client probe2 0 flash "$WORK/img.bin" 0x2000
stop_sim
W2=$(seq_of "$WORK/probe2.log" "vFlashWrite" 2)
WADDR=$(grep -E "^$W2 vFlashWrite" "$WORK/probe2.log" | sed 's/.*addr=0x\([0-9a-f]*\).*/\1/')
DONE=$(seq_of "$WORK/probe2.log" "vFlashDone" 1)
# the connection dropped mid-flash
start_sim disc --profile openocd --fault "disconnect-after:$W2"
client disc 1 --timeout 2000 flash "$WORK/img.bin" 0x2000
stop_sim
has "$WORK/disc.stderr" "GDB server tcp://127.0.0.1:$PORT closed the connection during vFlashWrite at 0x$WADDR"
[ "$ELAPSED_MS" -lt 2000 ] || fail "disconnect noticed after $ELAPSED_MS ms"
has "$WORK/disc.log" "fault disconnect-after"
erased "$WORK/disc.dump" 0 $((0x40000))  # erased, never programmed: no vFlashDone
# a packet never answered
start_sim stall --profile openocd --fault "stall:$W2"
client stall 1 --timeout 500 flash "$WORK/img.bin" 0x2000
stop_sim
has "$WORK/stall.stderr" "no reply to vFlashWrite at 0x$WADDR \([0-9]+ bytes\) within 500 ms"
[ "$ELAPSED_MS" -lt 3000 ] || fail "stall reported after $ELAPSED_MS ms"
# a packet never answered, in ack mode: not even acknowledged
start_sim stall-ack --profile bmp --fault "stall:$W5"
client stall-ack 1 --timeout 500 flash "$WORK/img.bin" 0x2000
stop_sim
has "$WORK/stall-ack.stderr" "no acknowledgement of vFlashWrite at 0x[0-9a-f]+ \([0-9]+ bytes\) within 500 ms"
# vFlashDone slower than the done timeout, then within it
start_sim slow --profile openocd --fault stall-done:1500
client slow 1 --done-timeout 400 flash "$WORK/img.bin" 0x2000
has "$WORK/slow.stderr" "no reply to vFlashDone within 400 ms"
[ "$ELAPSED_MS" -lt 1400 ] || fail "slow vFlashDone reported after $ELAPSED_MS ms"
stop_sim
start_sim slow-ok --profile openocd --fault stall-done:800
client slow-ok 0 --timeout 300 --done-timeout 5000 flash "$WORK/img.bin" 0x2000
[ "$ELAPSED_MS" -ge 800 ] || fail "vFlashDone stall not applied"
stop_sim
same_at "$WORK/slow-ok.dump" $((0x2000)) "$WORK/img.bin"
# an error reply mid-flash
start_sim err --profile bmp --fault "error:$W3"
client err 1 flash "$WORK/img.bin" 0x2000
stop_sim
has "$WORK/err.stderr" "GDB server tcp://127.0.0.1:$PORT: vFlashWrite at 0x[0-9a-f]{8} \([0-9]+ bytes\): EFF"
# a server that never answers anything; nothing listening at all
start_sim mute --profile openocd --fault stall:1
client mute 1 --timeout 300 info
has "$WORK/mute.stderr" "no acknowledgement of qSupported within 300 ms"
stop_sim
client refused 1 --timeout 300 info  # $PORT is closed now
has "$WORK/refused.stderr" "tcp://127.0.0.1:$PORT"
# every packet number in a whole flash, one run each: never a hang
start_sim probe3 --profile pyocd
client probe3 0 flash "$WORK/small.bin" 0x400 verify "$WORK/small.bin" 0x400
stop_sim
detach=$(seq_of "$WORK/probe3.log" " D -> " 1) # a failed detach at close is not an error
for n in $(seq 1 $((detach - 1))); do
  for f in disconnect-after stall; do
    start_sim "each-$f-$n" --profile pyocd --fault "$f:$n"
    client "each-$f-$n" 1 --timeout 300 --done-timeout 300 flash "$WORK/small.bin" 0x400 \
      verify "$WORK/small.bin" 0x400
    stop_sim
    [ "$ELAPSED_MS" -lt 3000 ] || fail "$f:$n took $ELAPSED_MS ms"
    grep -qE "closed the connection|no reply|no acknowledgement" "$WORK/each-$f-$n.stderr" ||
      { cat "$WORK/each-$f-$n.stderr"; fail "$f:$n: unclear error"; }
  done
done

echo "== 6. QEMU's gdbstub (micro:bit): the MicroPython image written and read back"
FW=/usr/share/firmware-microbit-micropython/firmware.hex
if ! command -v qemu-system-arm >/dev/null || [ ! -r "$FW" ]; then
  echo "SKIP (part 6 only): qemu-system-arm or firmware-microbit-micropython not installed"
  echo "sim.rsp_client: ok"
  exit 0
fi
# The flash part of the image, flattened (the UICR record at 0x10001000 is left out).
objcopy -I ihex -O binary -R .sec5 "$FW" "$WORK/fw.bin"
FWLEN=$(stat -c %s "$WORK/fw.bin")
qemu_port() { # start QEMU halted with its gdbstub on a free port -> PORT, QPID
  for _ in $(seq 20); do
    PORT=$((20000 + RANDOM % 30000))
    qemu-system-arm -M microbit -nographic -monitor none -serial null -S \
      -gdb "tcp:127.0.0.1:$PORT" >"$WORK/qemu.out" 2>&1 &
    QPID=$!
    pids+=($QPID)
    for _ in $(seq 100); do
      ss -ltnH "sport = :$PORT" 2>/dev/null | grep -q . && return 0
      kill -0 "$QPID" 2>/dev/null || break
      sleep 0.02
    done
    kill "$QPID" 2>/dev/null || true
    wait "$QPID" 2>/dev/null || true
  done
  fail "QEMU did not start"
}
qemu_stop() { kill "$QPID" 2>/dev/null || true; wait "$QPID" 2>/dev/null || true; }
qemu_port
client qemu 0 --timeout 500 info write "$WORK/fw.bin" 0 verify "$WORK/fw.bin" 0 read 0 "$FWLEN" "$WORK/qemu.read" \
  crc "$WORK/fw.bin" 0 monitor "info version" interrupt ping 200
qemu_stop
cmp -s "$WORK/qemu.read" "$WORK/fw.bin" || fail "QEMU: read back differs"
# the HEX file itself through mpfarm's reader: the flash segments written and
# read back on a fresh board (the UICR record is skipped: QEMU acknowledges
# debug writes there but drops them)
qemu_port
client qemu-hex 0 image "$FW" 0x40000 verify "$WORK/fw.bin" 0
qemu_stop
has "$WORK/qemu-hex.stdout" "skipped segment 0x100010c0 \(28 bytes\)"
has "$WORK/qemu-hex.stdout" "image written and read back: $FWLEN bytes"
has "$WORK/qemu.stdout" "packet_size=0x1000 no_ack=0 memory_map=0 regions=0"
has "$WORK/qemu.stdout" "wrote \(M\) $FWLEN bytes"
has "$WORK/qemu.stdout" "crc unsupported"
has "$WORK/qemu.stdout" "monitor ok: [0-9]+\.[0-9]+"
CLIENT_MS=$(sed -n 's/^wrote (M) [0-9]* bytes in \([0-9]*\) ms.*/\1/p' "$WORK/qemu.stdout")
grep -E "^(wrote|verified|round trip)" "$WORK/qemu.stdout"
[ "$CLIENT_MS" -lt 2000 ] || fail "writing $FWLEN bytes into QEMU took $CLIENT_MS ms"
if command -v gdb-multiarch >/dev/null; then
  # gdb-multiarch's restore of the same bytes on a fresh board, timed inside
  # GDB (its start-up and connection are not counted).
  qemu_port
  timeout 60 gdb-multiarch -batch -nx -ex 'set architecture arm' -ex "target remote 127.0.0.1:$PORT" \
    -ex 'shell date +@@%s%N' -ex "restore $WORK/fw.bin binary 0" -ex 'shell date +@@%s%N' \
    >"$WORK/gdb-qemu.out" 2>&1 || { cat "$WORK/gdb-qemu.out"; fail "gdb-multiarch against QEMU failed"; }
  # the same board after GDB's session: QEMU announces a stop on connect and,
  # left in multiprocess mode, refuses a plain D (the client then sends D;1)
  client qemu-after-gdb 0 --wire "$WORK/qemu-after-gdb.wire" verify "$WORK/fw.bin" 0
  qemu_stop
  has "$WORK/qemu-after-gdb.wire" '^w \$D;1#b0'
  mapfile -t stamps < <(sed -n 's/^@@//p' "$WORK/gdb-qemu.out")
  [ "${#stamps[@]}" = 2 ] || { cat "$WORK/gdb-qemu.out"; fail "no timestamps from gdb"; }
  echo "gdb-multiarch restore of the same $FWLEN bytes: $(( (stamps[1] - stamps[0]) / 1000000 )) ms"
fi
echo "sim.rsp_client: ok"
