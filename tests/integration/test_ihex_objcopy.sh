#!/usr/bin/env bash
# The Intel HEX reader and writer against binutils: for every file, the
# contiguous runs objdump lists (bfd cuts sections at 64 KiB; adjacent ones
# are joined) must be mpfarm's segments, each run's bytes (objcopy -O binary
# -j) must be the segment's bytes, the start address must be the entry
# point, and when the file is not too sparse the whole flattening must match
# objcopy's with the same gap fill. Files: the Debian micro:bit MicroPython
# image, files objcopy writes (04 + 05 records, 02 + 03 records, CRLF), a
# sparse file, and files mpfarm writes, read back by objcopy.
source "$(dirname "$0")/lib.sh" "$@"
need objcopy objdump cmp
IMGTOOL=$(dirname "$MPFARM")/tests/tools/imgtool
[ -x "$IMGTOOL" ] || fail "imgtool not built: $IMGTOOL"
cd "$WORK"

checked=0

# runs FILE: "ADDR SIZE SECTIONS..." per contiguous run of bfd sections.
runs() {
  local idx name size vma lma rest start=-1 end=0 names=""
  while read -r idx name size vma lma rest; do
    if [ "$start" -ge 0 ] && [ $((16#$lma)) -eq "$end" ]; then
      names+=" $name"
      end=$((end + 16#$size))
      continue
    fi
    [ "$start" -lt 0 ] || printf '%08x %d %s\n' "$start" $((end - start)) "$names"
    start=$((16#$lma))
    end=$((start + 16#$size))
    names=$name
  done < <(objdump -h -I ihex "$1" | grep -E '^ *[0-9]+ \.sec')
  [ "$start" -lt 0 ] || printf '%08x %d %s\n' "$start" $((end - start)) "$names"
}

# cross_check FILE: mpfarm's reading of FILE is binutils'.
cross_check() {
  local f=$1 tag
  tag=$(basename "$f")
  rm -rf "segs-$tag" && mkdir "segs-$tag"
  "$IMGTOOL" info "$f" ihex >"info-$tag.txt" || fail "imgtool cannot read $f"
  "$IMGTOOL" segments "$f" "segs-$tag" ihex || fail "imgtool segments $f"

  # the same runs
  runs "$f" >"runs-$tag.txt"
  awk '{ print $1, $2 }' "runs-$tag.txt" >"want-$tag.txt"
  local kw a n
  while read -r kw a n; do
    [ "$kw" = segment ] && printf '%08x %d\n' $((a)) "$n"
  done <"info-$tag.txt" >"got-$tag.txt"
  if ! diff -u "want-$tag.txt" "got-$tag.txt"; then
    fail "$f: objdump's runs (want) and mpfarm's segments (got) differ"
  fi
  [ -s "got-$tag.txt" ] || fail "$f: no segments"

  # the same bytes, run by run
  local addr size names part
  while read -r addr size names; do
    : >"run.bin"
    for part in $names; do
      objcopy -I ihex -O binary -j "$part" "$f" part.bin
      cat part.bin >>run.bin
    done
    cmp run.bin "segs-$tag/$addr.bin" || fail "$f: bytes of the run at 0x$addr differ"
  done <"runs-$tag.txt"

  # the same entry point (objdump prints 0 when there is none)
  local want_entry got_entry
  want_entry=$(objdump -f -I ihex "$f" | sed -n 's/^start address //p')
  got_entry=$(sed -n 's/^entry //p' "info-$tag.txt")
  [ $((${got_entry:-0})) -eq $((want_entry)) ] ||
    fail "$f: entry point ${got_entry:-none}, objdump says $want_entry"

  # the same flattening, with both gap fills (only when the span is small)
  local lo hi last
  read -r lo _ <"want-$tag.txt"
  last=$(tail -n 1 "want-$tag.txt")
  hi=$((16#${last% *} + ${last#* }))
  lo=$((16#$lo))
  if [ $((hi - lo)) -le $((16 << 20)) ]; then
    objcopy -I ihex -O binary --gap-fill 0xff "$f" ref-ff.bin
    "$IMGTOOL" convert "$f" bin out-ff.bin --fill 0xff --format ihex
    cmp ref-ff.bin out-ff.bin || fail "$f: flattening with 0xff gaps differs from objcopy's"
    objcopy -I ihex -O binary "$f" ref-00.bin
    "$IMGTOOL" convert "$f" bin out-00.bin --fill 0 --format ihex
    cmp ref-00.bin out-00.bin || fail "$f: flattening with 0x00 gaps differs from objcopy's"
  fi
  checked=$((checked + 1))
  echo "ok: $f ($(wc -l <"got-$tag.txt") segments, entry ${got_entry:-none})"
}

# A deterministic payload: 70000 bytes of this machine's objcopy.
head -c 70000 "$(command -v objcopy)" >payload.bin

# 1. the real micro:bit image (flash at 0 and UICR words at 0x100010c0)
if [ -r /usr/share/firmware-microbit-micropython/firmware.hex ]; then
  cp /usr/share/firmware-microbit-micropython/firmware.hex microbit.hex
  cross_check microbit.hex
else
  echo "note: firmware-microbit-micropython not installed; its image is not checked"
fi

# 2. objcopy writes: 04 and 05 records, CRLF, runs crossing 64 KiB
objcopy -I binary -O ihex --change-addresses 0x0800fff0 payload.bin linear.hex
objcopy -I ihex -O ihex --set-start 0x08000189 linear.hex linear-entry.hex
cross_check linear-entry.hex
"$IMGTOOL" convert linear.hex bin flat.bin --format ihex
cmp payload.bin flat.bin || fail "linear.hex does not give back the payload"
grep -q $'\r$' linear.hex || fail "expected objcopy to write CRLF line ends"

# 3. objcopy writes: 02 and 03 records (addresses below 1 MiB)
objcopy -I binary -O ihex --change-addresses 0x12340 payload.bin segment.hex
objcopy -I ihex -O ihex --set-start 0x1a234 segment.hex segment-entry.hex
grep -q '^:02000002' segment-entry.hex || fail "expected 02 records from objcopy"
grep -q '^:04000003' segment-entry.hex || fail "expected an 03 record from objcopy"
cross_check segment-entry.hex

# 4. a sparse file: two objcopy files joined (the first one's 01 record and
#    the second one's start record dropped: --change-addresses moves the start)
head -c 3000 payload.bin >small.bin
objcopy -I binary -O ihex --change-addresses 0x08100000 small.bin far.hex
{ grep -v '^:00000001FF' linear.hex; grep -v '^:04000005' far.hex; } >sparse.hex
cross_check sparse.hex

# 5. mpfarm writes; binutils reads
for f in linear-entry.hex segment-entry.hex sparse.hex; do
  "$IMGTOOL" convert "$f" ihex "mp-$f" --format ihex
  cross_check "mp-$f"
  cmp "info-$f.txt" "info-mp-$f.txt" >/dev/null 2>&1 ||
    diff <(grep -v '^format' "info-$f.txt") <(grep -v '^format' "info-mp-$f.txt") ||
    fail "mp-$f: not the same image as $f"
done
"$IMGTOOL" convert payload.bin ihex mp-bin.hex --format bin --base 0x1000fff8
cross_check mp-bin.hex
objcopy -I ihex -O binary mp-bin.hex back.bin
cmp payload.bin back.bin || fail "objcopy does not read back mpfarm's HEX of the payload"

# 6. where the readers disagree, mpfarm refuses: a 02 and a 04 base together
printf ':020000021000EC\n:020000040800F2\n:0100000011EE\n:00000001FF\n' >mixed.hex
objdump -h -I ihex mixed.hex | grep -q ' 08010000 ' || fail "binutils no longer adds 02 and 04 bases"
if "$IMGTOOL" info mixed.hex ihex >mixed.txt 2>&1; then
  fail "mixed 02/04 bases accepted"
fi
grep -q 'tools disagree' mixed.txt || fail "unexpected message: $(cat mixed.txt)"

[ "$checked" -ge 8 ] || fail "only $checked files cross-checked"
echo "ihex_objcopy: $checked files agree with binutils"
