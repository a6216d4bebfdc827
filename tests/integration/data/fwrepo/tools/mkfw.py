#!/usr/bin/env python3
"""Test-repository build step: make a bootable micro:bit MicroPython HEX.

mkfw.py IN.hex OUT.hex ID

Copies Debian's MicroPython v1.9.2 image for the BBC micro:bit and writes ID
(9 lower-case hex digits) over the git hash in its version string
("v1.9.2-34-gd64154c73"), wherever it occurs, so the built firmware reports
v1.9.2-34-g<ID> in its banner and os.uname().version. Records and their
layout are kept; each changed record gets its checksum recomputed.
"""
import re
import sys

OLD = b"d64154c73"


def records(lines):
    base = 0
    for n, line in enumerate(lines):
        line = line.strip()
        if not line:
            continue
        if not line.startswith(":"):
            sys.exit(f"{n + 1}: not an Intel HEX record")
        raw = bytes.fromhex(line[1:])
        count, addr, kind = raw[0], int.from_bytes(raw[1:3], "big"), raw[3]
        data = raw[4:4 + count]
        if sum(raw) & 0xFF:
            sys.exit(f"{n + 1}: bad checksum")
        yield n, kind, base + addr, data
        if kind == 4:
            base = int.from_bytes(data, "big") << 16
        elif kind == 2:
            base = int.from_bytes(data, "big") << 4


def main():
    src, dst, ident = sys.argv[1], sys.argv[2], sys.argv[3].encode()
    if not re.fullmatch(rb"[0-9a-f]{9}", ident):
        sys.exit("ID must be 9 lower-case hex digits")
    lines = open(src).read().splitlines()
    mem = {}
    for _, kind, addr, data in records(lines):
        if kind == 0:
            for i, b in enumerate(data):
                mem[addr + i] = b
    # find the old hash in the flat memory and overwrite it
    addrs = sorted(mem)
    flat = bytes(mem[a] for a in addrs)
    hits = 0
    for m in re.finditer(re.escape(OLD), flat):
        for i in range(len(OLD)):
            mem[addrs[m.start() + i]] = ident[i]
        hits += 1
    if not hits:
        sys.exit("version string not found in the input image")
    out = []
    rec = list(records(lines))
    for n, kind, addr, data in rec:
        line = lines[n].strip()
        if kind == 0:
            new = bytes(mem[addr + i] for i in range(len(data)))
            if new != data:
                raw = bytearray.fromhex(line[1:-2])
                raw[4:4 + len(new)] = new
                raw.append((-sum(raw)) & 0xFF)
                line = ":" + raw.hex().upper()
        out.append(line)
    with open(dst, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"mkfw: {hits} version string(s) set to {ident.decode()}")


if __name__ == "__main__":
    main()
