#!/usr/bin/env bash
# Board selection: --port, --tags, --shard K/N (deterministic, balanced, every
# board in exactly one shard, an empty shard is not an error).
source "$(dirname "$0")/lib.sh" "$@"
need_microbit
cat >"$WORK/inv.yaml" <<'YAML'
farm: selection
boards:
  - {id: c-board, port: nrf, board: microbit, tags: [x], emulator: {kind: qemu, machine: microbit}}
  - {id: a-board, port: nrf, board: microbit, tags: [y], emulator: {kind: qemu, machine: microbit}}
  - {id: b-board, port: nrf, board: microbit, tags: [x], emulator: {kind: qemu, machine: microbit}}
  - {id: far-esp, port: esp32, board: ESP32_GENERIC, serial: /dev/serial/by-id/none-such}
YAML
printf 'suite: q\ntests:\n  - name: one\n    code: print(1)\n    expect: "1"\n' >"$WORK/q.yaml"
boards() { python3 -c 'import sys,xml.etree.ElementTree as E; print(" ".join(sorted(s.get("name") for s in E.parse(sys.argv[1]).getroot().iter("testsuite"))))' "$1"; }

run_expect 0 run -i "$WORK/inv.yaml" -s "$WORK/q.yaml" -o "$WORK/p" --port nrf -q
[ "$(boards "$WORK/p/junit.xml")" = "a-board b-board c-board" ] || fail "--port nrf chose $(boards "$WORK/p/junit.xml")"
run_expect 0 run -i "$WORK/inv.yaml" -s "$WORK/q.yaml" -o "$WORK/t" --tags x -q
[ "$(boards "$WORK/t/junit.xml")" = "b-board c-board" ] || fail "--tags x chose $(boards "$WORK/t/junit.xml")"

# --port nrf in 2 shards: sorted ids a, b, c -> shard 1 = a, c; shard 2 = b
run_expect 0 run -i "$WORK/inv.yaml" -s "$WORK/q.yaml" -o "$WORK/s1" --port nrf --shard 1/2 -q
run_expect 0 run -i "$WORK/inv.yaml" -s "$WORK/q.yaml" -o "$WORK/s2" --port nrf --shard 2/2 -q
[ "$(boards "$WORK/s1/junit.xml")" = "a-board c-board" ] || fail "shard 1/2 chose $(boards "$WORK/s1/junit.xml")"
[ "$(boards "$WORK/s2/junit.xml")" = "b-board" ] || fail "shard 2/2 chose $(boards "$WORK/s2/junit.xml")"
# more shards than boards: an empty shard succeeds without a report of boards
run_expect 0 run -i "$WORK/inv.yaml" -s "$WORK/q.yaml" -o "$WORK/s5" --port nrf --shard 5/5
grep -q "has no board" "$WORK/out.txt" || fail "empty shard not explained"
run_expect 2 run -i "$WORK/inv.yaml" -s "$WORK/q.yaml" --shard 3/2
run_expect 2 run -i "$WORK/inv.yaml" -s "$WORK/q.yaml" --port stm32
no_leftover_qemu
echo "PASS"
