#!/usr/bin/env bash
# mpsim, the simulated MicroPython board: (1) its bytes against the raw-REPL
# test vectors and a fuzzed raw REPL, its CPU and memory cost, its exits;
# (2) the real mpfarm against three simulated boards (raw-paste, raw-paste
# refused, firmware older than raw-paste).
# Usage: test_mpsim.sh MPSIM MPFARM WORKDIR
set -euo pipefail
SIM=$1
MPFARM=$2
WORK=$3
HERE=$(cd "$(dirname "$0")" && pwd)
rm -rf "$WORK"
mkdir -p "$WORK"
RUN=$(mktemp -d /tmp/mpsim-test-XXXXXX) # unix socket paths are limited to 107 bytes
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$RUN"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# start_sim NAME [mpsim options...]: socket $RUN/NAME.sock, log $WORK/NAME.log
start_sim() {
  local name=$1; shift
  "$SIM" --socket "$RUN/$name.sock" --log "$WORK/$name.log" "$@" &
  pids+=($!)
  eval "pid_${name//-/_}=$!"
  for _ in $(seq 100); do [ -S "$RUN/$name.sock" ] && return 0; sleep 0.02; done
  fail "mpsim $name did not create its socket"
}

echo "== 1. protocol vectors"
start_sim v122
start_sim off --raw-paste off
start_sim old --version 1.9.2
start_sim w32 --window 32
cat >"$WORK/vectors.py" <<'PY'
import os, random, re, socket, sys, time

RUN, PID = sys.argv[1], int(sys.argv[2])
RAW = b"raw REPL; CTRL-B to exit\r\n"
TB = b'Traceback (most recent call last):\r\n  File "<stdin>", line 1, in <module>\r\n'
KBD = b"\x04" + TB + b"KeyboardInterrupt: \r\n\x04>"
problems = []

def banner(v):
    return (b"MicroPython v" + v + b" on 2026-01-01; mpsim with simulated MCU\r\n"
            b'Type "help()" for more information.\r\n>>> ')

class Board:
    def __init__(self, name):
        self.name = name
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(f"{RUN}/{name}.sock")

    def read(self, n, timeout=3.0):
        data, end = b"", time.monotonic() + timeout
        while len(data) < n and time.monotonic() < end:
            self.s.settimeout(max(0.01, end - time.monotonic()))
            try:
                d = self.s.recv(n - len(data))
            except socket.timeout:
                break
            if not d:
                break
            data += d
        return data

    def quiet(self, t=0.1):
        self.s.settimeout(t)
        try:
            return self.s.recv(4096)
        except socket.timeout:
            return b""

    def expect(self, send, want, what, timeout=3.0):
        if send:
            self.s.sendall(send)
        got = self.read(len(want), timeout)
        got += self.quiet()
        if got != want:
            problems.append(f"{self.name}: {what}:\n    want {want!r}\n    got  {got!r}")
        return got == want

    def close(self):
        self.s.close()

def cpu_ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])

def raw_paste(b, code, window):
    """A correct raw-paste host; returns (number of 01 grants, output after the ack)."""
    remaining, off, grants = 2 * window, 0, 0
    while off < len(code):
        if remaining == 0:
            c = b.read(1)
            if c != b"\x01":
                problems.append(f"{b.name}: raw-paste: expected 01, got {c!r}")
                return grants, b""
            grants += 1
            remaining += window
        k = min(remaining, len(code) - off)
        b.s.sendall(code[off:off + k])
        off += k
        remaining -= k
    b.s.sendall(b"\x04")
    while True:
        c = b.read(1)
        if c == b"\x01":
            grants += 1
        elif c == b"\x04":
            break
        else:
            problems.append(f"{b.name}: raw-paste: no acknowledgement ({c!r})")
            return grants, b""
    return grants, b.read(1 << 20, 0.5)

# The "Full raw-paste session" vector, then plain raw exec and soft reset.
b = Board("v122")
b.expect(b"", banner(b"1.22.0"), "banner on connect")
b.expect(b"\x01", b"\r\n" + RAW + b">", "enter raw REPL from the friendly prompt")
b.expect(b"\x05A\x01", b"R\x01\x80\x00\x01", "raw-paste accepted, W=128")
b.expect(b"print(123)\x04", b"\x04123\r\n\x04\x04>", "raw-paste print(123)")
b.expect(b"1/0\x04", b"OK\x04" + TB + b"ZeroDivisionError: divide by zero\r\n\x04>", "raw exec 1/0")
b.expect(b"\x04", b"OK\r\nMPY: soft reboot\r\n" + RAW + b">", "soft reset from the raw REPL")
b.expect(b"\x01", RAW + b">", "Ctrl-A while raw")
b.expect(b"garbage\x03print(7)\x04", b"OK7\r\n\x04\x04>", "Ctrl-C clears the raw buffer")
# Flow control: 1000 bytes of code, one 01 per 128 bytes consumed.
code = b"".join(b"print(%d)\n" % i for i in range(120))[:1000].rsplit(b"\n", 1)[0] + b"\n"
b.s.sendall(b"\x05A\x01")
if b.read(5) != b"R\x01\x80\x00\x01":
    problems.append("v122: second raw-paste request refused")
grants, out = raw_paste(b, code, 128)
if grants != len(code) // 128:
    problems.append(f"v122: raw-paste of {len(code)} bytes: {grants} window grants, want {len(code) // 128}")
want = b"".join(b"%d\r\n" % i for i in range(code.count(b"\n"))) + b"\x04\x04>"
if out != want:
    problems.append(f"v122: raw-paste output: {out[:80]!r}...")
# A program that runs forever: no CPU, interrupted by Ctrl-C (the exact vector).
b.expect(b"while True: pass\x04", b"OK", "while True starts")
t0 = cpu_ticks(PID)
time.sleep(1.5)
busy = cpu_ticks(PID) - t0
if busy > 2:
    problems.append(f"v122: {busy} CPU ticks in 1.5 s of while True")
b.expect(b"\x03", KBD, "Ctrl-C interrupts while True")
b.expect(b"while True:\n    pass\x04", b"OK", "two-line while True starts")
b.expect(b"\r\x03", KBD, "Ctrl-C interrupts it")
# time.sleep: a timer, interruptible.
b.s.sendall(b"import time\ntime.sleep_ms(300)\nprint('slept')\x04")
t0 = time.monotonic()
got = b.read(len(b"OKslept\r\n\x04\x04>"))
dt = time.monotonic() - t0
if got != b"OKslept\r\n\x04\x04>" or not 0.25 <= dt < 2:
    problems.append(f"v122: time.sleep_ms(300): {got!r} after {dt:.2f} s")
b.expect(b"import time\ntime.sleep(5)\x04", b"OK", "time.sleep(5) starts")
b.expect(b"\x03", KBD.replace(b"line 1", b"line 2"), "Ctrl-C interrupts time.sleep")
b.expect(b"import sys, foo\x04", b"OK\x04" + TB + b"ImportError: no module named 'foo'\r\n\x04>", "ImportError")
b.expect(b"raise ValueError('bad')\x04", b"OK\x04" + TB + b"ValueError: bad\r\n\x04>", "raise")
b.expect(b"print(x)\x04", b"OK\x04" + TB + b"NameError: name 'x' isn't defined\r\n\x04>", "NameError")
b.expect(b"print(1,\x04", b'OK\x04Traceback (most recent call last):\r\n  File "<stdin>", line 1\r\n'
         b"SyntaxError: invalid syntax\r\n\x04>", "SyntaxError")
b.expect(b'print("a;b\\n", -7 // 2, 7 % -3, 2 * -512, (1 + 2) * 3)\x04',
         b"OKa;b\r\n -4 -2 -1024 9\r\n\x04\x04>", "print and arithmetic")
# mpfarm's identity query.
ident = (b"def _mpf_id():\n import sys\n i=sys.implementation\n print('impl',i.name)\n_mpf_id()\ndel _mpf_id\n")
b.expect(ident + b"\x04", b"OKimpl micropython 1.22.0\r\nplatform mpsim\r\n"
         b"build MicroPython v1.22.0 on 2026-01-01; mpsim with simulated MCU\r\n"
         b"machine mpsim with simulated MCU\r\n\x04\x04>", "identity query")
# State survives a reconnect: still raw, nothing sent on connect.
b.close()
b = Board("v122")
b.expect(b"", b"", "nothing on reconnect in raw mode")
b.expect(b"print(5)\x04", b"OK5\r\n\x04\x04>", "raw exec after reconnect")
# mpfarm's echo-paste upload: friendly paste mode, then exec() from the raw REPL.
b.expect(b"\r\x02", b"\r\n" + banner(b"1.22.0"), "Ctrl-B to the friendly REPL")
b.expect(b"\x05", b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ", "paste mode")
line = b"_mpf=b'print(6 * 7)\\nprint(\"x\\\\\\\\y\")\\nraise OSError(\\'e\\')'"
b.expect(line, line, "paste mode echo")
b.expect(b"\x04", b"\r\n>>> ", "paste mode Ctrl-D")
b.expect(b"\x01", b"\r\n" + RAW + b">", "back to raw")
b.expect(b"exec(globals().pop('_mpf'))\x04", b"OK42\r\nx\\y\r\n\x04" + TB +
         b'  File "<string>", line 3, in <module>\r\nOSError: e\r\n\x04>', "exec of the stored code")
b.expect(b"exec(globals().pop('_mpf'))\x04", b"OK\x04" + TB + b"KeyError: _mpf\r\n\x04>", "popped once")
# Friendly REPL.
b.expect(b"\x02", b"\r\n" + banner(b"1.22.0"), "friendly again")
b.expect(b"print(4)\r", b"print(4)\r\n4\r\n>>> ", "friendly line")
b.expect(b"1/0\r", b"1/0\r\n" + TB + b"ZeroDivisionError: divide by zero\r\n>>> ", "friendly traceback")
b.expect(b"abc\x03", b"abc\r\n>>> ", "friendly Ctrl-C")
b.expect(b"\x05print(1)\rprint(2)\x03", b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== "
         b"print(1)\r\n=== print(2)\r\n>>> ", "paste mode cancelled")
b.expect(b"\x04", b"\r\nMPY: soft reboot\r\n" + banner(b"1.22.0"), "friendly soft reset")
b.expect(b"\x01", b"\r\n" + RAW + b">", "raw for the fuzz")
# Fuzz: whatever the code, the reply is one well-formed frame and mpsim lives.
rng = random.Random(1)
toks = [b"print", b"(", b")", b"'", b'"', b"1", b"0", b"/", b"//", b"*", b"**", b"-", b"%", b",", b";",
        b"\n", b" ", b"import", b"raise", b"exec", b"b'", b"=", b"x", b"\\", b"#", b"globals().pop(",
        b"gc.collect()", b"99999999999999999999", b"(" * 300, b"-" * 300, b"\xff", b"\x00"]
frame = re.compile(rb"^OK[^\x04]*\x04[^\x04]*\x04>$", re.S)
for i in range(300):
    if i % 2:
        code = b"".join(rng.choice(toks) for _ in range(rng.randint(1, 40)))
    else:
        code = bytes(rng.choice([c for c in range(256) if c not in (1, 2, 3, 4, 5)])
                     for _ in range(rng.randint(1, 200)))
    b.s.sendall(code + b"\x04")
    got = b.read(3)
    while got[-1:] != b">" or got.count(b"\x04") < 2:
        d = b.read(1, 3.0)
        if not d:
            break
        got += d
    if not frame.match(got):
        problems.append(f"fuzz: {code!r} -> {got!r}")
        break
b.expect(b"print(1)\x04", b"OK1\r\n\x04\x04>", "alive after the fuzz")
# Code over 64 KiB: a MemoryError, plain raw and raw-paste alike; the window keeps flowing.
big = b"print(1)\n" * 7500
b.expect(big + b"\x04", b"OK\x04" + TB + b"MemoryError: memory allocation failed, code over 65536 bytes\r\n\x04>",
         "75000 bytes of raw code")
b.s.sendall(b"\x05A\x01")
b.read(5)
grants, out = raw_paste(b, big, 128)
if grants != len(big) // 128 or b"MemoryError" not in out:
    problems.append(f"v122: 75000 bytes of raw-paste: {grants} grants, {out[:100]!r}")
# Chaos: any bytes in any mode, then mpfarm's way back to the raw REPL.
chaos = [bytes([c]) for c in b"\x01\x02\x03\x04\x05A\r\n p(1)/0'"] + [b"\x05A\x01", b"\x01\x05A\x01", b"print(1)"]
for i in range(2000):  # (mpsim stops reading while its output is not taken: read as we go)
    b.s.settimeout(5)
    b.s.sendall(b"".join(rng.choice(chaos) for _ in range(rng.randint(1, 30))))
    b.quiet(0.001)
b.s.sendall(b"\r\x03\x03")
while b.quiet(0.2):
    pass
b.s.sendall(b"\r\x01")
got = b.read(1 << 16, 0.5)
if not got.endswith(RAW + b">"):
    problems.append(f"chaos: no raw prompt: {got[-80:]!r}")
b.expect(b"print(1)\x04", b"OK1\r\n\x04\x04>", "alive after the chaos")
b.close()

b = Board("off")
b.expect(b"", banner(b"1.22.0"), "banner")
b.expect(b"\r\x03\x03\r\x01", b"\r\n>>> " * 4 + b"\r\n" + RAW + b">", "mpfarm's raw entry")
b.expect(b"\x05A\x01", b"R\x00", "raw-paste refused (--raw-paste off)")
b.expect(b"print(1)\x04", b"OK1\r\n\x04\x04>", "still at the raw prompt")
b.close()

b = Board("old")
b.expect(b"", banner(b"1.9.2"), "banner")
b.expect(b"\x01", b"\r\n" + RAW + b">", "raw")
b.expect(b"\x05A\x01", RAW + b">", "old firmware: 01 restarts the raw REPL")
b.expect(b"print(1)\x04", b"OK1\r\n\x04\x04>", "buffer cleared by the restart")
b.close()

b = Board("w32")
b.expect(b"", banner(b"1.22.0"), "banner")
b.expect(b"\x01", b"\r\n" + RAW + b">", "raw")
b.expect(b"\x05A\x01", b"R\x01\x20\x00\x01", "--window 32")
grants, out = raw_paste(b, b"print(1)\n" * 20, 32)
if grants != 180 // 32 or out != b"1\r\n" * 20 + b"\x04\x04>":
    problems.append(f"w32: {grants} grants, output {out[:40]!r}")
b.close()

rss = [l for l in open(f"/proc/{PID}/status") if l.startswith("VmRSS")][0].split()[1]
print(f"one mpsim: VmRSS {rss} kB")
for p in problems:
    print("PROBLEM:", p)
sys.exit(1 if problems else 0)
PY
python3 "$WORK/vectors.py" "$RUN" "$pid_v122" || fail "protocol vectors (above)"

echo "== 1b. idle cost, 64 boards, exits"
t0=$(awk '{print $14 + $15}' "/proc/$pid_v122/stat")
sleep 2
t1=$(awk '{print $14 + $15}' "/proc/$pid_v122/stat")
[ $((t1 - t0)) -le 1 ] || fail "idle mpsim used $((t1 - t0)) CPU ticks in 2 s"
echo "idle mpsim: $((t1 - t0)) CPU ticks in 2 s"
for i in $(seq 64); do
  "$SIM" --socket "$RUN/many-$i.sock" & pids+=($!)
done
python3 - "$RUN" <<'PY' || fail "64 boards"
import socket, sys, time
run, t0, socks = sys.argv[1], time.monotonic(), []
for i in range(1, 65):
    for _ in range(200):
        try:
            s = socket.socket(socket.AF_UNIX); s.connect(f"{run}/many-{i}.sock"); break
        except OSError:
            s.close(); time.sleep(0.01)
    else:
        sys.exit(f"board {i} never listened")
    socks.append(s)
for i, s in enumerate(socks):
    s.sendall(b"\x01print(%d * 2)\x04" % i)
for i, s in enumerate(socks):
    want, got = b"OK%d\r\n\x04\x04>" % (i * 2), b""
    s.settimeout(5)
    while not got.endswith(want):
        d = s.recv(4096)
        if not d:
            sys.exit(f"board {i}: {got!r}")
        got += d
print(f"64 boards answered in {time.monotonic() - t0:.2f} s")
PY
total=0
for p in "${pids[@]: -64}"; do total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); done
echo "64 mpsims: VmRSS total $total kB"
# SIGTERM: exits 0, socket removed.
kill -TERM "$pid_w32"
wait "$pid_w32" || fail "mpsim exited $? on SIGTERM"
[ ! -e "$RUN/w32.sock" ] || fail "socket left after SIGTERM"
# Parent death: the board goes with the process that started it.
( "$SIM" --socket "$RUN/orphan.sock" & echo $! >"$RUN/orphan.pid"; wait ) & parent=$!
for _ in $(seq 100); do [ -S "$RUN/orphan.sock" ] && break; sleep 0.02; done
kill -KILL "$parent"
wait "$parent" 2>/dev/null || true
for _ in $(seq 100); do kill -0 "$(cat "$RUN/orphan.pid")" 2>/dev/null || break; sleep 0.02; done
! kill -0 "$(cat "$RUN/orphan.pid")" 2>/dev/null || fail "mpsim outlived its parent"
[ ! -e "$RUN/orphan.sock" ] || fail "socket left after the parent died"

echo "== 2. mpfarm against three simulated boards"
start_sim b1 --version 1.22.0 --raw-paste on
start_sim b2 --raw-paste off
start_sim b3 --version 1.9.2
cat >"$WORK/inv.yaml" <<YAML
farm: sim
boards:
  - {id: sim-paste, port: unix, board: mpsim, serial: "unix:$RUN/b1.sock"}
  - {id: sim-nopaste, port: unix, board: mpsim, serial: "unix:$RUN/b2.sock"}
  - {id: sim-old, port: unix, board: mpsim, serial: "unix:$RUN/b3.sock"}
YAML
cat >"$WORK/suite.yaml" <<'YAML'
suite: sim
defaults:
  timeout: 5
tests:
  - name: print
    code: print("hello", 42)
    expect: "hello 42\n"
  - name: arithmetic
    code: print(1 + 2 * 3, 7 // 2, -7 // 2, 7 % 3, -(2 - 1026))
    expect: "7 3 -4 1 1024\n"
  - name: divide-by-zero
    code: print(1 // 0)
    expect_error: ZeroDivisionError
  - name: hang
    code: "while True: pass"
    timeout: 1
  - name: after-hang
    code: print("alive")
    expect: "alive\n"
  - name: long-code
    code: |
      import time, gc
      # over 64 bytes of code: sent with raw-paste or echo-paste
      print('one; two', 6 * 7)
      time.sleep_ms(20)
      gc.collect()
      print("it's", (100 - 1) // 9 % 7, 'done')
    expect: |
      one; two 42
      it's 4 done
  - name: long-error
    code: |
      # a long test that raises: the traceback comes from exec()'d code
      print("before")
      raise ValueError("from the long test")
    expect_error: ValueError
YAML
set +e
MPFARM_LOCK_DIR=$WORK/locks NO_COLOR=1 "$MPFARM" run -i "$WORK/inv.yaml" -s "$WORK/suite.yaml" \
  -o "$WORK/r" >"$WORK/out.txt" 2>"$WORK/err.txt"
rc=$?
set -e
cat "$WORK/out.txt" "$WORK/err.txt"
[ "$rc" = 1 ] || fail "mpfarm run exited $rc, expected 1 (the hang fails)"
python3 - "$WORK/r/junit.xml" <<'PY' || fail "junit.xml (above)"
import sys, xml.etree.ElementTree as ET
want = {"print": "pass", "arithmetic": "pass", "divide-by-zero": "pass", "hang": "fail",
        "after-hang": "pass", "long-code": "pass", "long-error": "pass"}
paste = {"sim-paste": "yes", "sim-nopaste": "no", "sim-old": "no"}
fw = {"sim-paste": "1.22.0", "sim-nopaste": "1.22.0", "sim-old": "1.9.2"}
bad, seen = [], set()
for ts in ET.parse(sys.argv[1]).getroot().iter("testsuite"):
    board = ts.get("name")
    seen.add(board)
    props = {p.get("name"): p.get("value") for p in ts.iter("property")}
    if props.get("repl.raw_paste") != paste.get(board):
        bad.append(f"{board}: repl.raw_paste={props.get('repl.raw_paste')}, want {paste.get(board)}")
    if props.get("firmware") != f"MicroPython v{fw.get(board)} on 2026-01-01; mpsim with simulated MCU":
        bad.append(f"{board}: firmware={props.get('firmware')!r}")
    got = {}
    for tc in ts.iter("testcase"):
        kind = [c.tag for c in tc if c.tag in ("failure", "error", "skipped")]
        got[tc.get("name")] = {"failure": "fail", "error": "error", "skipped": "skip"}.get(
            kind[0] if kind else None, "pass")
        if kind and got[tc.get("name")] != want.get(tc.get("name")):
            bad.append(f"{board}:{tc.get('name')}: {ET.tostring(tc, encoding='unicode')[:600]}")
    if got != want:
        bad.append(f"{board}: verdicts {got}")
if seen != set(paste):
    bad.append(f"boards in the report: {sorted(seen)}")
print("\n".join(bad) or "junit.xml: all verdicts and properties as expected")
sys.exit(1 if bad else 0)
PY
if [ -r "$HERE/../integration/check_junit.py" ]; then
  python3 "$HERE/../integration/check_junit.py" "$WORK/r/junit.xml" --expect sim-old:sim:hang:fail
fi
grep -qx "mode raw-paste" "$WORK/b1.log" || fail "b1 never used raw-paste"
for b in b2 b3; do
  ! grep -qx "mode raw-paste" "$WORK/$b.log" || fail "$b entered raw-paste"
  grep -qx "mode paste" "$WORK/$b.log" || fail "$b: no echo-paste upload"
done
grep -qx "exec 16 exception KeyboardInterrupt" "$WORK/b1.log" || fail "b1: the hang was not interrupted"
# Every board exits cleanly on SIGTERM (under the sanitizers a leak would make it fail).
for name in v122 off old b1 b2 b3; do
  pid=$(eval echo "\$pid_$name")
  kill -TERM "$pid"
  wait "$pid" || fail "mpsim $name exited $? on SIGTERM"
done
echo "PASS"
