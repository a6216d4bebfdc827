#!/usr/bin/env bash
# gdbsim, the fake GDB server, proven faithful against the real gdb-multiarch:
# GDB's `restore` through X and M packets (plain profile, as QEMU's gdbstub),
# GDB's `load` of an ELF through the memory map and vFlashErase/Write/Done
# (openocd, pyocd, bmp; several flash banks; over a pipe with --stdio), GDB's
# `compare-sections` (qCRC), `dump memory` (m, run-length encoded replies),
# `monitor` (qRcmd in both output styles), and the nak/corrupt faults, which GDB
# must survive. Every check is on gdbsim's flash dump and event log.
# Usage: test_gdbsim.sh GDBSIM WORKDIR
set -euo pipefail
SIM=$1
WORK=$2
command -v gdb-multiarch >/dev/null || { echo "SKIP: gdb-multiarch not installed (ci/install-deps installs it)"; exit 77; }
rm -rf "$WORK"
mkdir -p "$WORK"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# start_sim NAME [gdbsim options...]: log $WORK/NAME.log, flash dump $WORK/NAME.dump, port in PORT
start_sim() {
  local name=$1; shift
  rm -f "$WORK/$name.port"
  "$SIM" --port 0 --port-file "$WORK/$name.port" --log "$WORK/$name.log" --dump "$WORK/$name.dump" \
    "$@" >"$WORK/$name.out" 2>&1 &
  pids+=($!)
  SIMPID=$!
  for _ in $(seq 200); do [ -s "$WORK/$name.port" ] && break; sleep 0.02; done
  [ -s "$WORK/$name.port" ] || { cat "$WORK/$name.out"; fail "gdbsim $name did not start"; }
  PORT=$(cat "$WORK/$name.port")
  grep -q "gdbsim listening on 127.0.0.1:$PORT" "$WORK/$name.out" || fail "$name: no 'listening' line"
}
# stop_sim: SIGTERM, wait; the dump is written at exit
stop_sim() {
  kill "$SIMPID"
  wait "$SIMPID" || fail "gdbsim exited with $? on SIGTERM"
}

# gdb NAME COMMANDS...: gdb-multiarch -batch against 127.0.0.1:$PORT, output in $WORK/NAME.gdb
gdb_run() {
  local name=$1; shift
  local args=(-batch -nx -ex 'set architecture arm' -ex 'set remotetimeout 5' -ex "target remote 127.0.0.1:$PORT")
  for c in "$@"; do args+=(-ex "$c"); done
  if ! timeout 120 gdb-multiarch "${args[@]}" >"$WORK/$name.gdb" 2>&1; then
    cat "$WORK/$name.gdb"; fail "gdb-multiarch ($name) failed"
  fi
}

# same_at DUMP OFFSET FILE: FILE's bytes are in DUMP at OFFSET
same_at() {
  local n
  n=$(stat -c %s "$3")
  cmp -s <(tail -c +$(($2 + 1)) "$1" | head -c "$n") "$3" || fail "$1 at offset $2 does not hold $3"
}
# erased DUMP OFFSET LEN: all 0xff
erased() {
  cmp -s <(tail -c +$(($2 + 1)) "$1" | head -c "$3") <(head -c "$3" /dev/zero | tr '\0' '\377') ||
    fail "$1: $3 bytes at offset $2 are not erased"
}
clean_log() {
  ! grep -E "overlong|bad checksum" "$1" || fail "$1: overlong packets or bad checksums from gdb"
}

le16() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))"; }
le32() { le16 $(($1 & 0xffff)); le16 $(($1 >> 16 & 0xffff)); }
mkelf() { # mkelf BIN ADDR OUT: minimal ELF32 LE ARM executable, one .text section at ADDR
  local addr=$(($2)) len off_shstr off_sh
  len=$(stat -c %s "$1")
  off_shstr=$((84 + len))
  off_sh=$(( (off_shstr + 17 + 3) & ~3 ))
  {
    printf '\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00'
    le16 2; le16 40; le32 1; le32 $addr; le32 52; le32 $off_sh; le32 0x05000000
    le16 52; le16 32; le16 1; le16 40; le16 3; le16 2
    le32 1; le32 84; le32 $addr; le32 $addr; le32 $len; le32 $len; le32 5; le32 4
    cat "$1"
    printf '\0.text\0.shstrtab\0'
    head -c $((off_sh - off_shstr - 17 + 40)) /dev/zero
    le32 1; le32 1; le32 6; le32 $addr; le32 84; le32 $len; le32 0; le32 0; le32 4; le32 0
    le32 7; le32 3; le32 0; le32 0; le32 $off_shstr; le32 17; le32 0; le32 0; le32 1; le32 0
  } >"$3"
}

# Test data: random bytes with every escaped character in them.
head -c 100000 /dev/urandom >"$WORK/img.bin"
printf '#$}*#$}*\x03' >>"$WORK/img.bin"
IMGLEN=$(stat -c %s "$WORK/img.bin")
mkelf "$WORK/img.bin" 0x2000 "$WORK/img.elf"
head -c 196608 /dev/urandom >"$WORK/big.bin"
mkelf "$WORK/big.bin" 0x08000000 "$WORK/big.elf"

echo "== 1. restore through X (plain profile, like a gdbstub without vFlash)"
start_sim plain-x --profile plain
gdb_run plain-x "restore $WORK/img.bin binary 0x1000" "detach"
stop_sim
same_at "$WORK/plain-x.dump" $((0x1000)) "$WORK/img.bin"
erased "$WORK/plain-x.dump" 0 $((0x1000))
grep -q "^[0-9]* X addr=0x00001000 len=0 -> OK" "$WORK/plain-x.log" || fail "no X probe seen"
[ "$(grep -c ' X addr=.* -> OK' "$WORK/plain-x.log")" -gt 20 ] || fail "restore did not use X"
clean_log "$WORK/plain-x.log"

echo "== 2. restore through M when X is refused (QEMU 7.2)"
start_sim plain-m --profile plain --x off
gdb_run plain-m "restore $WORK/img.bin binary 0x1000" "detach"
stop_sim
same_at "$WORK/plain-m.dump" $((0x1000)) "$WORK/img.bin"
grep -q " X addr=0x00001000 len=0 -> (empty)" "$WORK/plain-m.log" || fail "X not probed"
[ "$(grep -c ' M addr=.* -> OK' "$WORK/plain-m.log")" -gt 40 ] || fail "restore did not use M"
clean_log "$WORK/plain-m.log"

echo "== 3. GDB load through the memory map and vFlash, every flash profile"
for prof in openocd pyocd bmp; do
  start_sim "load-$prof" --profile "$prof"
  gdb_run "load-$prof" "load $WORK/img.elf" "detach"
  stop_sim
  log=$WORK/load-$prof.log
  grep -q "qXfer:memory-map:read" "$log" || fail "$prof: GDB did not read the memory map"
  # GDB erases whole blocks (0x400) covering the section, then writes, then done
  grep -q "vFlashErase addr=0x00002000 len=100352 -> OK" "$log" || { cat "$log"; fail "$prof: erase"; }
  [ "$(grep -c 'vFlashWrite addr=.* -> OK' "$log")" -ge 1 ] || fail "$prof: no vFlashWrite"
  grep -q "vFlashDone -> OK" "$log" || fail "$prof: no vFlashDone"
  same_at "$WORK/load-$prof.dump" $((0x2000)) "$WORK/img.bin"
  erased "$WORK/load-$prof.dump" 0 $((0x2000))
  clean_log "$log"
  grep -q "Transfer rate" "$WORK/load-$prof.gdb" || fail "$prof: GDB did not report the load"
done
grep -q "QStartNoAckMode -> OK" "$WORK/load-openocd.log" || fail "openocd: no-ack not negotiated by GDB"
grep -q "QStartNoAckMode" "$WORK/load-bmp.log" && fail "bmp: no-ack offered"
grep -q "programmed=$IMGLEN" "$WORK/load-openocd.log" || fail "openocd: not programmed at vFlashDone"
grep -q "vFlashErase .* -> OK deferred" "$WORK/load-pyocd.log" || fail "pyocd: erase not deferred"

echo "== 4. several flash banks with different sector sizes (STM32F4 style)"
F4=(--flash 0x08000000:0x10000:0x4000 --flash 0x08010000:0x10000:0x10000
    --flash 0x08020000:0x60000:0x20000 --ram 0x20000000:0x20000)
start_sim f4 --profile openocd "${F4[@]}"
gdb_run f4 "info mem" "load $WORK/big.elf" "detach"
stop_sim
grep -q "blocksize 0x20000" "$WORK/f4.gdb" || { cat "$WORK/f4.gdb"; fail "GDB did not see the 128 KiB sectors"; }
same_at "$WORK/f4.dump" 0 "$WORK/big.bin"
# GDB sends one erase across the banks, ending on a 128 KiB sector boundary
grep -q "vFlashErase addr=0x08000000 len=262144 -> OK" "$WORK/f4.log" || fail "f4: erase across banks"
erased "$WORK/f4.dump" $((0x30000)) $((0x50000))
clean_log "$WORK/f4.log"

echo "== 5. --stdio, as OpenOCD's gdb_port pipe"
timeout 120 gdb-multiarch -batch -nx -ex 'set architecture arm' \
  -ex "target remote | $SIM --stdio --profile openocd --log $WORK/stdio.log --dump $WORK/stdio.dump" \
  -ex "load $WORK/img.elf" -ex detach >"$WORK/stdio.gdb" 2>&1 || { cat "$WORK/stdio.gdb"; fail "gdb over --stdio"; }
for _ in $(seq 100); do grep -q "^exit" "$WORK/stdio.log" 2>/dev/null && break; sleep 0.05; done
same_at "$WORK/stdio.dump" $((0x2000)) "$WORK/img.bin"

echo "== 6. qCRC against GDB's compare-sections; m reads (run-length encoded) against dump memory"
for prof in openocd bmp; do
  start_sim "crc-$prof" --profile "$prof" --rle on
  gdb_run "crc-$prof" "file $WORK/img.elf" "load" "compare-sections" \
    "dump binary memory $WORK/crc-$prof.read 0x1000 $((0x2000 + IMGLEN))" "detach"
  stop_sim
  grep -q "Section .text, range 0x2000 -- 0x$(printf %x $((0x2000 + IMGLEN))): matched" "$WORK/crc-$prof.gdb" ||
    { cat "$WORK/crc-$prof.gdb"; fail "$prof: compare-sections did not match"; }
  grep -q "qCRC addr=0x00002000 len=$IMGLEN -> C" "$WORK/crc-$prof.log" || fail "$prof: no qCRC"
  # 4 KiB of erased flash (RLE in every reply) then the image
  erased "$WORK/crc-$prof.read" 0 4096
  same_at "$WORK/crc-$prof.read" 4096 "$WORK/img.bin"
done

echo "== 7. monitor commands (console packets and hex replies)"
start_sim mon-openocd --profile openocd
gdb_run mon-openocd "monitor reset halt" "monitor reset" "detach"
stop_sim
grep -q "target halted due to debug-request" "$WORK/mon-openocd.gdb" || { cat "$WORK/mon-openocd.gdb"; fail "openocd monitor output"; }
start_sim mon-pyocd --profile pyocd
gdb_run mon-pyocd "monitor reset halt" "detach"
stop_sim
grep -q "Successfully halted device on reset" "$WORK/mon-pyocd.gdb" || { cat "$WORK/mon-pyocd.gdb"; fail "pyocd monitor output"; }
start_sim mon-bad --profile openocd
timeout 60 gdb-multiarch -batch -nx -ex 'set architecture arm' -ex "target remote 127.0.0.1:$PORT" \
  -ex "monitor frobnicate" >"$WORK/mon-bad.gdb" 2>&1 || true
stop_sim
grep -q 'invalid command name "frobnicate"' "$WORK/mon-bad.gdb" || { cat "$WORK/mon-bad.gdb"; fail "no error text"; }
grep -q "Protocol error with Rcmd" "$WORK/mon-bad.gdb" || fail "an E reply to qRcmd is GDB's 'Protocol error with Rcmd'"

echo "== 8. faults GDB recovers from: a nak, a corrupt reply"
start_sim nak --profile plain --fault nak:20 --fault corrupt:25
gdb_run nak "restore $WORK/img.bin binary 0x1000" "detach"
stop_sim
same_at "$WORK/nak.dump" $((0x1000)) "$WORK/img.bin"
grep -q "^20 fault nak" "$WORK/nak.log" || fail "nak not injected"
grep -q "^25 .*\[fault corrupt\]" "$WORK/nak.log" || fail "corrupt not injected"
grep -q "nak: resending the last reply" "$WORK/nak.log" || fail "GDB did not ask for the corrupt reply again"

echo "== 9. several clients in sequence, state kept in a file"
rm -f "$WORK/state.bin"
start_sim seq1 --profile openocd --state "$WORK/state.bin"
gdb_run seq1a "load $WORK/img.elf" "detach"
gdb_run seq1b "monitor reset halt" "detach"
stop_sim
[ "$(grep -c '^connect' "$WORK/seq1.log")" = 2 ] || fail "two clients expected"
same_at "$WORK/state.bin" $((0x2000)) "$WORK/img.bin"
start_sim seq2 --profile openocd --state "$WORK/state.bin"
gdb_run seq2 "dump binary memory $WORK/seq2.read 0x2000 $((0x2000 + IMGLEN))" "detach"
stop_sim
cmp -s "$WORK/seq2.read" "$WORK/img.bin" || fail "state not loaded from --state"

echo "sim.gdbsim: ok"
