#!/usr/bin/env python3
"""Benchmark: parallel worker processes. Prints figures only, asserts nothing on time.

1. Wall time of `mpfarm run` of the smoke suite on 6 emulated micro:bits with
   --jobs 1 and with all jobs at once, and their ratio.
2. With 64 simulated boards (tests/sim/mpsim): the parent's peak RSS (VmHWM)
   and its own CPU time (utime + stime, sampled from /proc just before exit).

usage: parallel.py MPFARM MPSIM SOURCE_DIR WORK_DIR    (exit 77 if QEMU is missing)
"""
import os, shutil, subprocess, sys, tempfile, time

mpfarm, mpsim, src, work = sys.argv[1:5]
FW = "/usr/share/firmware-microbit-micropython/firmware.hex"
if not shutil.which("qemu-system-arm") or not os.access(FW, os.R_OK):
    print("SKIP: qemu-system-arm or firmware-microbit-micropython not installed")
    sys.exit(77)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
run_dir = tempfile.mkdtemp(prefix="mpfarm-bench-", dir="/tmp")
env = dict(os.environ, NO_COLOR="1", XDG_RUNTIME_DIR=run_dir, MPFARM_LOCK_DIR=os.path.join(work, "locks"))


def run(args):
    """Run mpfarm; return (wall seconds, peak RSS kB, own CPU seconds, exit code)."""
    t0 = time.monotonic()
    p = subprocess.Popen([mpfarm] + args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hwm, cpu, tick = 0, 0.0, os.sysconf("SC_CLK_TCK")
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]))
            with open(f"/proc/{p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / tick
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
        time.sleep(0.02)
    return time.monotonic() - t0, hwm, cpu, p.returncode


try:
    inv = os.path.join(work, "six.yaml")
    with open(inv, "w") as f:
        f.write("farm: bench\nboards:\n")
        for i in range(6):
            f.write(f"  - {{id: mb-{i}, port: nrf, board: microbit, emulator: {{kind: qemu, machine: microbit}}}}\n")
    smoke = os.path.join(src, "suites", "smoke.yaml")
    serial, _, _, rc1 = run(["run", "-i", inv, "-s", smoke, "-o", os.path.join(work, "r1"), "-q", "--jobs", "1"])
    para, _, _, rc2 = run(["run", "-i", inv, "-s", smoke, "-o", os.path.join(work, "r2"), "-q"])
    print(f"6 emulated boards, smoke suite: --jobs 1 {serial:.2f} s, all jobs {para:.2f} s, "
          f"ratio {serial / para:.2f}x (exit codes {rc1}, {rc2})")

    sims, lines = [], ["farm: bench-sim", "boards:"]
    for i in range(64):
        sock = os.path.join(run_dir, f"s{i}.sock")
        sims.append(subprocess.Popen([mpsim, "--socket", sock, "--version", "1.22.0"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        lines.append(f"  - {{id: sim-{i:02d}, port: unix, board: mpsim, serial: 'unix:{sock}'}}")
    for i in range(64):
        sock = os.path.join(run_dir, f"s{i}.sock")
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.01)
    inv64 = os.path.join(work, "sim64.yaml")
    with open(inv64, "w") as f:
        f.write("\n".join(lines) + "\n")
    suite = os.path.join(src, "tests", "integration", "data", "sim-smoke.yaml")
    wall, hwm, cpu, rc3 = run(["run", "-i", inv64, "-s", suite, "-o", os.path.join(work, "r3"), "-q"])
    for s in sims:
        s.terminate()
    for s in sims:
        s.wait()
    print(f"64 simulated boards, 4 tests each: wall {wall:.2f} s, parent peak RSS {hwm / 1024:.1f} MiB, "
          f"parent CPU time {cpu:.2f} s (exit code {rc3})")
finally:
    shutil.rmtree(run_dir, ignore_errors=True)
