#!/usr/bin/env bash
# Two emulated boards run the shipped smoke suite and a suite of deliberate
# failures; the report says exactly what happened on which board.
source "$(dirname "$0")/lib.sh" "$@"
need_microbit

# prints-eot is an <error> (broken output frame), so the exit code is 3.
run_expect 3 run -i "$HERE/data/two-boards.yaml" -s "$SRC/suites/smoke.yaml" -s "$HERE/data/mixed.yaml" \
  -o "$WORK/report"
cat "$WORK/out.txt"
report=$WORK/report/junit.xml

expect=()
for b in mb-a mb-b; do
  for t in identity identity-version arithmetic bigint float strings collections exception-raised \
           exception-caught generators-and-closures gc-memory long-output unicode; do
    expect+=(--expect "$b:smoke:$t:pass")
  done
  expect+=(--expect "$b:mixed:passes:pass" --expect "$b:mixed:wrong-output:failure"
           --expect "$b:mixed:unexpected-exception:failure" --expect "$b:mixed:hangs:failure"
           --expect "$b:mixed:after-hang:pass" --expect "$b:mixed:needs-wifi:skipped"
           --expect "$b:mixed:wrong-port:skipped" --expect "$b:mixed:control-bytes:pass"
           --expect "$b:mixed:prints-eot:error" --expect "$b:mixed:after-eot:pass")
done
check_junit "$report" --min-tests 46 "${expect[@]}"

python3 - "$report" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = {s.get("name"): s for s in root.iter("testsuite")}
assert set(suites) == {"mb-a", "mb-b"}, suites.keys()
for name, s in suites.items():
    props = {p.get("name"): p.get("value") for p in s.iter("property")}
    assert props.get("port") == "nrf", props
    assert "MicroPython v1.9.2" in props.get("firmware", ""), props
    assert props.get("firmware.impl", "").startswith("micropython 1.9.2"), props
    assert props.get("firmware.platform") == "microbit", props
    cases = {c.get("name"): c for c in s.iter("testcase")}
    wrong = cases["wrong-output"].find("failure")
    assert "43" in wrong.text and "42" in wrong.text, wrong.text      # expected vs actual
    exc = cases["unexpected-exception"].find("failure")
    assert "KeyError" in exc.get("message") + exc.text, exc.text
    hang = cases["hangs"].find("failure")
    assert hang.get("type") == "timeout", hang.attrib
    assert cases["identity"].get("classname") == "smoke." + name
    out = cases["control-bytes"].find("system-out").text
    assert "a\u2407b\u2401c\u241b" in out, repr(out)                  # controls made visible
    eot = cases["prints-eot"].find("error")
    assert "not retried" in eot.get("message"), eot.attrib
    assert "\u2404" in s.find("system-out").text                        # raw REPL framing bytes
    assert s.find("system-out") is not None and "raw REPL" in s.find("system-out").text
    assert float(cases["hangs"].get("time")) >= 1.4
print("report content ok")
PY
[ -s "$WORK/report/logs/mb-a.log" ] || fail "board log missing"
grep -q "test smoke/identity: PASS" "$WORK/out.txt" || fail "no per-test line"
grep -q "^total" "$WORK/out.txt" || fail "no summary table"

# Failures without infrastructure errors: exit code 1.
printf 'suite: f\ntests:\n  - name: wrong\n    code: print(1)\n    expect: "2"\n' >"$WORK/fails.yaml"
run_expect 1 run -i "$HERE/data/two-boards.yaml" --boards mb-b -s "$WORK/fails.yaml" -o "$WORK/report1"
check_junit "$WORK/report1/junit.xml" --expect mb-b:f:wrong:failure
no_leftover_qemu
echo "PASS"
