#!/usr/bin/env bash
# A 1 kB script run 200 times on an emulated board while both cores are busy:
# every run must give the right answer (lost input is detected and retried,
# never executed or reported as a test failure).
source "$(dirname "$0")/lib.sh" "$@"
need_microbit
python3 - "$WORK/stress.yaml" <<'PY'
import json, random, sys
rnd = random.Random(1234)
alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;-+*/=()[]{}<>!?#"
text = "".join(rnd.choice(alphabet) for _ in range(880))
code = ("s = %r\n" % text +
        "h = 0\n"
        "for c in s:\n"
        "    h = (h * 31 + ord(c)) & 0xffffff\n"
        "print(len(s), h)\n")
h = 0
for c in text:
    h = (h * 31 + ord(c)) & 0xffffff
assert 950 <= len(code) <= 1100, len(code)
with open(sys.argv[1], "w") as f:
    f.write("suite: stress\ntests:\n")
    for i in range(200):
        f.write("  - name: run-%03d\n    code: %s\n    expect: \"%d %d\\n\"\n"
                % (i, json.dumps(code), len(text), h))
PY
# Both cores busy for the whole run.
busy=()
for _ in 1 2; do ( while :; do :; done ) & busy+=($!); done
trap 'kill ${busy[*]} 2>/dev/null || true; lib_cleanup' EXIT
run_expect 0 run -i "$SRC/inventories/emulated.yaml" --boards microbit-1 -s "$WORK/stress.yaml" \
  -o "$WORK/report" -q
cat "$WORK/out.txt"
check_junit "$WORK/report/junit.xml" --min-tests 200
python3 - "$WORK/report/junit.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.get("failures") == "0" and root.get("errors") == "0", root.attrib
props = {p.get("name"): p.get("value") for p in root.iter("property")}
print("transport faults detected and retried:", props.get("repl.transport_faults"),
      "; uploads retried after gc.collect():", props.get("repl.memory_retries"))
PY
no_leftover_qemu
echo "PASS"
