#!/usr/bin/env bash
# Shared resources: boards that share a hub are never flashed at the same
# time (their flash phases never interleave in the event stream), boards that
# list the same resources in opposite orders do not deadlock, and a resource
# held by another process (flock) makes the board's tests skipped, naming it.
source "$(dirname "$0")/lib.sh" "$@"
need_microbit
need flock
fw=/usr/share/firmware-microbit-micropython/firmware.hex

cat >"$WORK/farm.yaml" <<EOF
x-mb: &mb {port: nrf, board: microbit, mcu: nrf51, flash: {method: gdb},
           emulator: {kind: qemu, machine: microbit, blank: true}}
boards:
  - {<<: *mb, id: r1, resources: [hub-1]}
  - {<<: *mb, id: r2, resources: [hub-1, hub-2]}
  - {<<: *mb, id: r3, resources: [hub-2, hub-1]}
  - {<<: *mb, id: r4, resources: [hub-2]}
  - {<<: *mb, id: r5, resources: [hub-9]}
firmware:
  - {match: {board: microbit}, file: $fw}
EOF
printf 'suite: quick\ntests:\n  - name: one\n    code: print(1)\n    expect: "1"\n' >"$WORK/quick.yaml"

for round in 1 2 3; do
  run_expect 0 run -i "$WORK/farm.yaml" -s "$WORK/quick.yaml" -o "$WORK/r$round" --json-events "$WORK/ev$round.jsonl"
  check_junit "$WORK/r$round/junit.xml" --expect r1:quick:one:pass --expect r2:quick:one:pass \
    --expect r3:quick:one:pass --expect r4:quick:one:pass --expect r5:quick:one:pass
  python3 - "$WORK/ev$round.jsonl" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
res = {"r1": {"hub-1"}, "r2": {"hub-1", "hub-2"}, "r3": {"hub-1", "hub-2"}, "r4": {"hub-2"}, "r5": {"hub-9"}}
span = {}
for i, e in enumerate(ev):
    if e["event"] != "phase" or e["phase"] != "flash":
        continue
    m = e["message"]
    if m.startswith("waiting for"):
        assert m.startswith("waiting for resource:"), m
    if m.startswith("gdb: writing"):
        span.setdefault(e["board"], [None, None])[0] = i
    if m.startswith("wrote "):
        span.setdefault(e["board"], [None, None])[1] = i
assert set(span) == set(res), span
for a in res:
    for b in res:
        if a < b and res[a] & res[b]:
            (s1, e1), (s2, e2) = span[a], span[b]
            assert e1 < s2 or e2 < s1, f"{a} and {b} share {res[a] & res[b]} but flashed at once: {span}"
props = {}
for e in ev:
    if e["event"] == "prop" and e["name"] == "flash.resource_wait_s":
        props[e["board"]] = float(e["value"])
assert set(props) == set(res), props
print("flash order:", sorted(span, key=lambda b: span[b][0]), "waits:", props)
PY
done

# Another process holds hub-9 (a flock on its lock file): r5 is skipped, naming it.
mkdir -p "$MPFARM_LOCK_DIR"
flock -x "$MPFARM_LOCK_DIR/resource-hub-9.lock" sleep 30 &
holder=$!
sleep 0.3
run_expect 0 run -i "$WORK/farm.yaml" -s "$WORK/quick.yaml" -o "$WORK/busy" --boards r5,r1
kill $holder 2>/dev/null || true
check_junit "$WORK/busy/junit.xml" --expect r5:quick:one:skipped --expect r1:quick:one:pass
grep -q "resource hub-9 is busy" "$WORK/busy/junit.xml" || fail "the skip does not name the busy resource"
no_leftover_qemu
echo PASS
