#!/usr/bin/env python3
"""Write the seed corpus of the image parser fuzzers: tests/fuzz/corpus/<format>/.

The seeds are small valid files built here, independently of mpfarm's own
writers, from the test vectors of /work/shared/protocols (intel-hex.md, uf2.md,
dfu-dfuse.md) plus a few variants (CRLF, 02/03 records, concatenated UF2,
the RP2350-E10 block, multi-element DfuSe, ELF32/ELF64). Run it again after
changing it; the output is deterministic."""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def out(fmt, name, data):
    d = os.path.join(HERE, "corpus", fmt)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- Intel HEX ----
def rec(t, off, data, lower=False):
    b = bytes([len(data), off >> 8, off & 255, t]) + data
    s = ":" + (b + bytes([(-sum(b)) & 255])).hex().upper()
    return s.lower() if lower else s


def hex_file(records, eol="\n"):
    return (eol.join(records) + eol).encode()


out("ihex", "vectors.hex", hex_file([
    ":020000040800F2", ":04000000DEADBEEFC4", ":10010000000102030405060708090A0B0C0D0E0F77",
    ":04FFFC0001020304F7", ":040000050800018965", ":00000001FF"]))
out("ihex", "segment_crlf.hex", hex_file([
    ":020000021000EC", ":0400000300000100F8", rec(0, 0x20, bytes(range(32)), lower=True),
    rec(0, 0x80, b"\x55" * 7), ":00000001FF"], "\r\n"))
out("ihex", "cross64k.hex", hex_file([
    ":020000040800F2", rec(0, 0xfff8, bytes(range(8))), ":020000040801F1",
    rec(0, 0, bytes(range(8, 24))), ":00000001FF", ":junk after the end"]))

# ---- UF2 ----
def uf2_block(flags, addr, payload, no, total, family):
    head = struct.pack("<8I", 0x0A324655, 0x9E5D5157, flags, addr, len(payload), no, total, family)
    data = payload + bytes(476 - len(payload))
    return head + data + struct.pack("<I", 0x0AB16F30)


page = bytes((i * 7) & 255 for i in range(512))
out("uf2", "rp2040.uf2", b"".join(
    uf2_block(0x2000, 0x10000000 + 256 * i, page[256 * i:256 * i + 256], i, 2, 0xE48BFF56)
    for i in range(2)))
out("uf2", "concatenated.uf2",
    uf2_block(0, 0x2000, page[:476], 0, 2, 0) + uf2_block(1, 0x20000000, page[:16], 1, 2, 0) +
    uf2_block(0, 0x4000, page[:100], 0, 1, 0))
out("uf2", "rp2350_e10.uf2",
    uf2_block(0x2000, 0x10FFFF00, b"\xef" * 256, 0, 2, 0xE48BFF57) +
    b"".join(uf2_block(0x2000, 0x10000000 + 256 * i, page[256 * i:256 * i + 256], i, 2,
                       0xE48BFF59) for i in range(2)))


# ---- DfuSe ----
def dfuse(elements, vid=0x0483, pid=0xDF11, alt=0, name=b"ST..."):
    body = b"".join(struct.pack("<2I", a, len(d)) + d for a, d in elements)
    target = struct.pack("<6sBI255s2I", b"Target", alt, 1, name, len(body), len(elements)) + body
    data = struct.pack("<5sBIB", b"DfuSe", 1, len(target) + 11, 1) + target
    data += struct.pack("<4H3sB", 0, pid, vid, 0x011A, b"UFD", 16)
    return data + struct.pack("<I", ~zlib.crc32(data) & 0xFFFFFFFF)


vec = dfuse([(0x08000000, bytes(range(8)))])
assert len(vec) == 317 and vec[-4:] == bytes.fromhex("47580F89")
out("dfuse", "vector.dfu", vec)
out("dfuse", "two_elements.dfu",
    dfuse([(0x08000000, page[:64]), (0x08004000, page[64:72])], 0xFFFF, 0xFFFF, 1, b"@Flash"))


# ---- ELF ----
def elf32(machine, entry, phdrs, blob, blob_off):
    eh = b"\x7fELF" + bytes([1, 1, 1]) + bytes(9)
    eh += struct.pack("<HHIIIIIHHHHHH", 2, machine, 1, entry, 52, 0, 0, 52, 32, len(phdrs), 0, 0, 0)
    ph = b"".join(struct.pack("<8I", *p) for p in phdrs)
    data = eh + ph
    return data + bytes(blob_off - len(data)) + blob


blob = bytes((i * 3) & 255 for i in range(0x54))
out("elf", "arm32.elf", elf32(40, 0x08000009, [
    (1, 0x100, 0x08000000, 0x08000000, 0x40, 0x40, 5, 4),
    (1, 0x140, 0x20000000, 0x08000040, 0x10, 0x30, 6, 4),
    (1, 0x150, 0x20000030, 0x20000030, 0, 0x100, 6, 4),
    (4, 0x150, 0, 0, 8, 8, 4, 4),
    (1, 0x150, 0x10001000, 0x10001000, 4, 4, 4, 4)], blob, 0x100))

eh = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
eh += struct.pack("<HHIQQQIHHHHHH", 2, 243, 1, 0x80000000, 64, 0, 0, 64, 56, 2, 0, 0, 0)
ph = struct.pack("<IIQQQQQQ", 1, 5, 0x100, 0x80000000, 0x80000000, 0x20, 0x20, 8)
ph += struct.pack("<IIQQQQQQ", 1, 4, 0x120, 0x80001000, 0x80001000, 0x10, 0x18, 8)
riscv = eh + ph
out("elf", "riscv64.elf", riscv + bytes(0x100 - len(riscv)) + blob[:0x30])
