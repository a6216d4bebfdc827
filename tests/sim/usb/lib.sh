# Shared helpers for the USB-harness tests (sourced). Expects WORK set; makes
# it absolute (scripts it writes and clients that change directory use it).
case $WORK in /*) ;; *) WORK=$PWD/$WORK ;; esac
rm -rf "$WORK"; mkdir -p "$WORK/tmp"
# umockdev testbeds: a crash leaves them here (usbsim falls back to /tmp when
# this path is too long for the testbed's socket paths)
export TMPDIR=$WORK/tmp
export NO_COLOR=1

fail() { echo "FAIL: $*" >&2; exit 1; }

# need_usbsim [TOOL...]: skip (77) when umockdev's preload library or a tool is missing.
need_usbsim() {
  [ -r /usr/lib/x86_64-linux-gnu/libumockdev-preload.so.0 ] || ldconfig -p | grep -q libumockdev-preload ||
    { echo "SKIP: umockdev not installed (ci/install-deps installs it)"; exit 77; }
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "SKIP: $t not installed (ci/install-deps installs it)"; exit 77; }
  done
}

# usim RUN NAME=SPEC... -- CLIENT ARGS...: usbsim with one --device per SPEC,
# its log, dump and info under U=$WORK/RUN; the client's output goes to $U/out.
usim() {
  local run=$1; shift
  local args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=(--device "$1"); shift; done
  U=$WORK/$run
  mkdir -p "$U/dump"
  "$USBSIM" --log "$U/events.log" --dump "$U/dump" --info "$U/info" "${args[@]}" "$@" >"$U/out" 2>&1
}

# hexof: stdin as lower-case hex, one line.
hexof() { od -An -v -tx1 | tr -d ' \n'; }

# ev_expect LOG TEXT...: each TEXT occurs in LOG, in this order.
ev_expect() {
  python3 - "$@" <<'PY'
import sys
log = open(sys.argv[1]).read().splitlines()
pos = 0
for want in sys.argv[2:]:
    for i in range(pos, len(log)):
        if want in log[i]:
            pos = i + 1
            break
    else:
        print("event log:\n" + "\n".join(log[:60] + (["..."] + log[-30:] if len(log) > 90 else log[60:])))
        sys.exit("FAIL: event %r not found (in order) in %s" % (want, sys.argv[1]))
PY
}

# ev_absent LOG TEXT: TEXT occurs nowhere in LOG.
ev_absent() { ! grep -qF -- "$2" "$1" || fail "\"$2\" in $1: $(grep -F -- "$2" "$1" | head -3)"; }

# state_is STATEFILE key=value...: the dumped device state has these values.
state_is() {
  local f=$1; shift
  for kv in "$@"; do grep -qx -- "$kv" "$f" || fail "$f: want $kv, have: $(tr '\n' ' ' <"$f")"; done
}

# flash_check DUMP BASE [ADDR=FILE|ADDR=erased:LEN]...: the dumped memory (which
# starts at BASE) holds FILE at ADDR, and 0xFF where "erased"; every other
# byte is 0xFF too when the last argument is "rest-erased".
flash_check() {
  python3 - "$@" <<'PY'
import sys
dump = open(sys.argv[1], "rb").read()
base = int(sys.argv[2], 0)
covered = bytearray(len(dump))
rest = False
for spec in sys.argv[3:]:
    if spec == "rest-erased":
        rest = True
        continue
    addr, what = spec.split("=", 1)
    off = int(addr, 0) - base
    data = b"\xff" * int(what.split(":")[1], 0) if what.startswith("erased:") else open(what, "rb").read()
    got = dump[off:off + len(data)]
    if got != data:
        bad = next(i for i in range(len(data)) if i >= len(got) or got[i] != data[i])
        sys.exit("FAIL: %s: %s differs at 0x%x (have %s, want %s)" % (sys.argv[1], spec, base + off + bad,
                 got[bad:bad + 8].hex(), data[bad:bad + 8].hex()))
    covered[off:off + len(data)] = b"\x01" * len(data)
if rest:
    for i, b in enumerate(dump):
        if not covered[i] and b != 0xff:
            sys.exit("FAIL: %s: byte at 0x%x is 0x%02x, want erased" % (sys.argv[1], base + i, b))
PY
}

# rand_file OUT LEN SEED: deterministic pseudo-random bytes.
rand_file() {
  python3 -c 'import random,sys; r=random.Random(int(sys.argv[3])); open(sys.argv[1],"wb").write(bytes(r.getrandbits(8) for _ in range(int(sys.argv[2]))))' "$@"
}

# dfu_files: a DfuSe/DFU file writer (the format of dfu-dfuse.md: UM0391
# prefix, targets, elements; 16-byte suffix with CRC = ~zlib.crc32).
#   dfu_files dfuse OUT VID PID ADDR=FILE...   (one target, alt 0, named "ST...")
#   dfu_files suffix OUT VID PID FILE          (plain DFU: FILE + suffix)
dfu_files() {
  python3 - "$@" <<'PY'
import struct, sys, zlib
kind, out, vid, pid = sys.argv[1], sys.argv[2], int(sys.argv[3], 16), int(sys.argv[4], 16)
def suffix(body, bcd_dfu):
    bcd_dev = 0xFFFF if bcd_dfu == 0x0100 else 0   # plain: any device release
    s = body + struct.pack("<HHHH", bcd_dev, pid, vid, bcd_dfu) + b"UFD" + bytes([16])
    return s + struct.pack("<I", ~zlib.crc32(s) & 0xffffffff)
if kind == "suffix":
    data = open(sys.argv[5], "rb").read()
    open(out, "wb").write(suffix(data, 0x0100))
    sys.exit(0)
elems = b""
for spec in sys.argv[5:]:
    addr, path = spec.split("=", 1)
    data = open(path, "rb").read()
    data += b"\xff" * (-len(data) % 8)          # dfu.py pads elements to 8 bytes
    elems += struct.pack("<II", int(addr, 0), len(data)) + data
n = len(sys.argv) - 5
target = b"Target" + struct.pack("<BI", 0, 1) + b"ST...".ljust(255, b"\0") + struct.pack("<II", len(elems), n)
body = target + elems
prefix = b"DfuSe" + struct.pack("<BIB", 1, 11 + len(body), 1)
open(out, "wb").write(suffix(prefix + body, 0x011A))
PY
}
