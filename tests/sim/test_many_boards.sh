#!/usr/bin/env bash
# 64 simulated boards in one run on a 2-core machine: every board in its own
# worker, every result in the report, nothing left running.
set -euo pipefail
MPSIM=$1 MPFARM=$2 SRC=$3 WORK=$4
N=${MPFARM_SIM_BOARDS:-64}
rm -rf "$WORK"; mkdir -p "$WORK"
RUN=$(mktemp -d /tmp/mpfarm-sim-XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$RUN"; }
trap cleanup EXIT
{
  echo "farm: sim-$N"
  echo "boards:"
  for i in $(seq -w 1 $N); do
    v=1.22.0; [ $((10#$i % 2)) = 0 ] && v=1.9.2   # half with raw-paste, half old firmware
    "$MPSIM" --socket "$RUN/b$i.sock" --version $v >/dev/null 2>&1 & pids+=($!)
    echo "  - {id: sim-$i, port: unix, board: mpsim, tags: [sim], serial: unix:$RUN/b$i.sock}"
  done
} >"$WORK/inv.yaml"
for i in $(seq -w 1 $N); do
  for _ in $(seq 100); do [ -S "$RUN/b$i.sock" ] && break; sleep 0.05; done
done
set +e
MPFARM_LOCK_DIR=$WORK/locks NO_COLOR=1 "$MPFARM" run -i "$WORK/inv.yaml" \
  -s "$SRC/tests/integration/data/sim-smoke.yaml" -o "$WORK/report" -q >"$WORK/out.txt" 2>&1
rc=$?
set -e
tail -5 "$WORK/out.txt"
[ $rc = 0 ] || { cat "$WORK/out.txt"; echo "FAIL: mpfarm exited $rc"; exit 1; }
python3 "$SRC/tests/integration/check_junit.py" "$WORK/report/junit.xml" --min-tests $((N * 4))
python3 - "$WORK/report/junit.xml" "$N" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = list(root.iter("testsuite"))
assert len(suites) == int(sys.argv[2]), len(suites)
paste = {s.get("name"): {p.get("name"): p.get("value") for p in s.iter("property")}["repl.raw_paste"]
         for s in suites}
assert list(paste.values()).count("yes") == int(sys.argv[2]) // 2, paste
print("all", len(suites), "simulated boards passed; raw-paste on", list(paste.values()).count("yes"))
PY
echo "PASS"
