#!/usr/bin/env python3
"""Benchmark: flashing. Prints figures only, asserts nothing on time.

The GDB runner writes the 240 KB micro:bit image into a blank emulated board
through QEMU's gdbstub (`mpfarm flash`, a lab-style board whose probe is the
gdbstub); `gdb-multiarch -batch -ex 'restore firmware.hex'` writes the same
image into an identical blank board started the same way, in the same run.
Printed: mpfarm's write time and bytes/s (its own measurement of the write
step, flash.write_s), mpfarm's whole `flash` command (connect, write, verify,
reset, REPL, identity), gdb's whole process and gdb's process minus its
start-up and connection (the same gdb command without the restore), and the
ratios.

usage: flash.py MPFARM WORK_DIR   (exit 77 if QEMU or gdb-multiarch is missing)
"""
import os, re, shutil, socket, statistics, subprocess, sys, tempfile, time

mpfarm, work = sys.argv[1:3]
FW = "/usr/share/firmware-microbit-micropython/firmware.hex"
if not shutil.which("qemu-system-arm") or not os.access(FW, os.R_OK) or not shutil.which("gdb-multiarch"):
    print("SKIP: qemu-system-arm, firmware-microbit-micropython or gdb-multiarch not installed")
    sys.exit(77)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
run_dir = tempfile.mkdtemp(prefix="mpfarm-bflash-", dir="/tmp")
env = dict(os.environ, NO_COLOR="1", XDG_RUNTIME_DIR=run_dir, MPFARM_LOCK_DIR=os.path.join(work, "locks"))
ROUNDS = 5


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def blank_board(name):
    """A blank micro:bit, halted, gdbstub on a port, console on a socket."""
    port = free_port()
    sock = os.path.join(run_dir, name + ".sock")
    q = subprocess.Popen(["qemu-system-arm", "-M", "microbit", "-nographic", "-monitor", "none",
                          "-nodefaults", "-S", "-chardev", f"socket,id=u,path={sock},server=on,wait=off",
                          "-serial", "chardev:u", "-gdb", f"tcp:127.0.0.1:{port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(sock):
            break
        time.sleep(0.01)
    return q, port, sock


def gdb(port, *cmds):
    args = ["gdb-multiarch", "-nx", "-batch", "-ex", "set architecture arm",
            "-ex", f"target remote 127.0.0.1:{port}"]
    for c in cmds:
        args += ["-ex", c]
    t0 = time.monotonic()
    subprocess.run(args + ["-ex", "detach"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.monotonic() - t0


size = None
ours, ours_cmd, theirs, theirs_net = [], [], [], []
try:
    for r in range(ROUNDS):
        qa, pa, sa = blank_board(f"a{r}")
        qb, pb, _ = blank_board(f"b{r}")
        qc, pc, _ = blank_board(f"c{r}")  # a blank board left running crashes: one per gdb run
        try:
            inv = os.path.join(work, f"lab{r}.yaml")
            with open(inv, "w") as f:
                f.write(f"probes:\n  - {{id: swd, kind: qemu, connection: \"tcp://127.0.0.1:{pa}\"}}\n"
                        f"boards:\n  - {{id: a, port: nrf, board: microbit, mcu: nrf51, "
                        f"serial: \"unix:{sa}\", probe: swd, flash: {{method: gdb}}}}\n")
            t0 = time.monotonic()
            p = subprocess.run([mpfarm, "flash", "a", "-i", inv, FW], env=env, capture_output=True,
                               text=True)
            ours_cmd.append(time.monotonic() - t0)
            m = re.search(r"wrote (\d+) bytes in ([0-9.]+) s", p.stdout)
            if p.returncode != 0 or not m:
                print(p.stdout, p.stderr)
                sys.exit(1)
            size = int(m.group(1))
            ours.append(float(m.group(2)))
            base = gdb(pc)                        # start-up + connect + detach
            full = gdb(pb, f"restore {FW}")        # the same plus the image
            theirs.append(full)
            theirs_net.append(max(full - base, 1e-6))
        finally:
            for q in (qa, qb, qc):
                q.kill()
                q.wait()
finally:
    shutil.rmtree(run_dir, ignore_errors=True)

med = statistics.median
print(f"image: {FW} ({size} bytes written), {ROUNDS} rounds, medians")
print(f"mpfarm gdb runner, write step:       {med(ours):.3f} s  ({size / med(ours) / 1024:.0f} KiB/s)")
print(f"mpfarm flash command (all phases):   {med(ours_cmd):.3f} s")
print(f"gdb-multiarch restore, whole process: {med(theirs):.3f} s")
print(f"gdb-multiarch restore, minus start-up: {med(theirs_net):.3f} s  ({size / med(theirs_net) / 1024:.0f} KiB/s)")
print(f"ratio gdb (minus start-up) / mpfarm write: {med(theirs_net) / med(ours):.2f}x")
