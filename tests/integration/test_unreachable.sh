#!/usr/bin/env bash
# A board whose serial device does not exist, and one behind a closed TCP port,
# are reported as <error> per test with the reason; the working board is not held up.
source "$(dirname "$0")/lib.sh" "$@"
need_microbit

run_expect 3 run -i "$HERE/data/unreachable.yaml" -s "$SRC/suites/smoke.yaml" -o "$WORK/report"
cat "$WORK/out.txt"
check_junit "$WORK/report/junit.xml" \
  --expect ghost:smoke:identity:error --expect ghost:smoke:unicode:error \
  --expect gone-tcp:smoke:arithmetic:error \
  --expect mb-ok:smoke:identity:pass --expect mb-ok:smoke:unicode:pass
python3 - "$WORK/report/junit.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
s = [s for s in root.iter("testsuite") if s.get("name") == "ghost"][0]
err = s.find("testcase").find("error")
assert "does-not-exist" in err.get("message"), err.attrib
PY
grep -q "\[ghost\] connect: FAILED" "$WORK/out.txt" || fail "no connect failure line for ghost"
no_leftover_qemu
echo "PASS"
