#!/usr/bin/env bash
# --json-events: every line is a JSON object; the case events agree with the
# JUnit report; with "-" stdout carries only JSON and people read stderr.
source "$(dirname "$0")/lib.sh" "$@"
need_microbit
run_expect 3 run -i "$HERE/data/two-boards.yaml" -s "$HERE/data/mixed.yaml" -o "$WORK/r" \
  --json-events "$WORK/events.jsonl"
python3 - "$WORK/events.jsonl" "$WORK/r/junit.xml" <<'PY'
import json, sys, xml.etree.ElementTree as ET
events = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
cases = {(e["board"], e["suite"], e["name"]): e["verdict"] for e in events if e["event"] == "case"}
want = {}
for s in ET.parse(sys.argv[2]).getroot().iter("testsuite"):
    for c in s.iter("testcase"):
        v = "pass"
        for tag, name in (("failure", "fail"), ("error", "error"), ("skipped", "skip")):
            if c.find(tag) is not None:
                v = name
        want[(s.get("name"), c.get("classname").split(".")[0], c.get("name"))] = v
assert len(cases) == len(want) == 20, (len(cases), len(want))
for k, v in want.items():
    assert cases[k].startswith(v), (k, cases[k], v)
ends = [e for e in events if e["event"] == "end"]
assert sorted(e["board"] for e in ends) == ["mb-a", "mb-b"], ends
assert all(e["time"].endswith("Z") for e in events)
print("json events agree with the report:", len(events), "events")
PY
"$MPFARM" run -i "$HERE/data/two-boards.yaml" --boards mb-a -s "$SRC/suites/smoke.yaml" -o "$WORK/r2" \
  --json-events - >"$WORK/stdout.jsonl" 2>"$WORK/stderr.txt"
python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$WORK/stdout.jsonl" || fail "stdout is not pure JSON Lines"
grep -q "^total" "$WORK/stderr.txt" || fail "no summary on stderr"
no_leftover_qemu
echo "PASS"
