#!/usr/bin/env bash
# Bootloader entry through the serial harness, with mpfarm's entry code
# (runners/entry*.c via entry_test, as a flash runner calls it):
#  1. touch1200 on the RP2040 model: the device sees 1200 baud, then DTR
#     (and RTS) low, leaves the bus and comes back as 2e8a:0003 BOOTSEL; the
#     entry reports that device at the board's USB location.
#  2. repl: machine.bootloader() over the raw REPL (the mpsim board behind
#     the model drops its console; the model re-enumerates as BOOTSEL);
#     "manual, touch1200": manual fails at once (no person), the touch
#     follows and works.
#  3. a bootloader that flaps once (appears, vanishes, appears) with a
#     settle time: entry still ends on the BOOTSEL device.
#  4. manual without a person: fails at once naming BOOTSEL; the port is
#     never opened.
# Usage: test_touch1200.sh SERIALSIM ENTRY_TEST MPSIM SRC WORK
set -euo pipefail
SSIM=$1 ENTRY=$2 MPSIM=$3 SRC=$4 WORK=$5
source "$SRC/tests/sim/serial/lib.sh"
need_harness
start_mpsim "$RUN/pico.sock"

run_entry() { # LOGNAME MODEL_ARGS ENTRY_ARGS...
  local log=$1 margs=$2; shift 2
  set +e
  "$SSIM" --log "$WORK/$log.log" --info "$WORK/$log.info" --device pico=rp2040:sock=$RUN/pico.sock$margs \
    -- "$ENTRY" "$@" >"$WORK/$log.out" 2>&1
  local rc=$?
  set -e
  cat "$WORK/$log.out"
  return $rc
}

# 1. the touch
run_entry touch ",serial=E6614103E7425C2F,gap_ms=300" touch1200 /dev/ttyACM0 --want 2e8a:0003 --settle 300 ||
  { cat "$WORK/touch.log"; fail "touch1200 entry failed"; }
loc=$(awk '{print $3}' "$WORK/touch.info")
grep -q "^before: 2e8a:0005 location=$loc\$" "$WORK/touch.out" || fail "board not found before entry"
grep -q "^OK method=touch1200 port=- dev=2e8a:0003 location=$loc serial=E6614103E7425C2F\$" "$WORK/touch.out" ||
  fail "entry did not report BOOTSEL at $loc"
ev_expect "$WORK/touch.log" "pico open (1)" "pico baud 1200" "pico lines dtr=0" \
  "pico touch: 1200 baud and DTR low" "pico unplug /dev/ttyACM0" \
  "pico plug 2e8a:0003 serial=E6614103E7425C2F location=$loc (no tty)"
# The touch itself: no byte was written to the board.
! grep -q "pico rx" "$WORK/touch.log" || fail "the touch wrote data"

# 2. repl: machine.bootloader() over the raw REPL; the port vanishing is the end
run_entry repl "" repl /dev/ttyACM0 --want 2e8a:0003 ||
  { cat "$WORK/repl.log"; fail "repl entry failed"; }
grep -q "^OK method=repl " "$WORK/repl.out" || fail "repl: no BOOTSEL"
ev_expect "$WORK/repl.log" "pico open (1)" "pico bridge to " "pico bridge: board closed the connection" \
  "pico machine.bootloader() from the REPL" "pico unplug /dev/ttyACM0" "pico plug 2e8a:0003"

# 2b. fallback: a method that fails (manual, nobody there) is followed by the touch
run_entry fallback "" "manual, touch1200" /dev/ttyACM0 --want 2e8a:0003 ||
  { cat "$WORK/fallback.log"; fail "manual, touch1200 entry failed"; }
grep -q "^log: entry: manual failed: " "$WORK/fallback.out" || { cat "$WORK/fallback.out"; fail "manual did not fail first"; }
grep -q "^OK method=touch1200 " "$WORK/fallback.out" || fail "the touch did not follow"
ev_expect "$WORK/fallback.log" "pico open (1)" "pico baud 1200" \
  "pico touch: 1200 baud and DTR low" "pico plug 2e8a:0003"

# 3. a flapping bootloader and a settle time
run_entry flap ",flap=1,gap_ms=200" touch1200 /dev/ttyACM0 --want 2e8a:0003 --settle 400 ||
  { cat "$WORK/flap.log"; fail "entry with a flapping bootloader failed"; }
grep -q "^OK method=touch1200 port=- dev=2e8a:0003 " "$WORK/flap.out" || fail "flap: no BOOTSEL"
[ "$(grep -c 'pico plug 2e8a:0003' "$WORK/flap.log")" -ge 2 ] || { cat "$WORK/flap.log"; fail "the model did not flap"; }

# 4. manual in CI
if run_entry manual "" manual /dev/ttyACM0 --want 2e8a:0003 --timeout 600000; then
  fail "manual entry succeeded without a person"
fi
grep -q "^FAIL board sim-board: could not enter the bootloader: manual: .*BOOTSEL" "$WORK/manual.out" ||
  fail "manual: message does not say what to press"
! grep -q "pico open" "$WORK/manual.log" || fail "manual opened the port"
echo "PASS"
