#!/usr/bin/env bash
# Consoles reached over tcp:// (as ser2net raw mode serves them) and unix: run
# the smoke suite on boards mpfarm did not start. A board that crashes is
# recovered through its reset method (QMP for emulated boards); a board without
# one turns its remaining tests into <error>s instead of hanging the run.
source "$(dirname "$0")/lib.sh" "$@"
need_microbit
fw=/usr/share/firmware-microbit-micropython/firmware.hex
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; lib_cleanup; }
trap cleanup EXIT
qemu-system-arm -M microbit -nographic -monitor none -nodefaults -device loader,file=$fw \
  -serial tcp:127.0.0.1:$port,server=on,wait=off >"$WORK/qemu-tcp.log" 2>&1 & pids+=($!)
qemu-system-arm -M microbit -nographic -monitor none -nodefaults -device loader,file=$fw \
  -chardev socket,id=s0,path=$RUN/uart.sock,server=on,wait=off -serial chardev:s0 \
  >"$WORK/qemu-unix.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do [ -S "$RUN/uart.sock" ] && break; sleep 0.1; done
# ...and the TCP console listening (a run started before it would be refused)
for _ in $(seq 50); do grep -q ":$(printf '%04X' "$port") 00000000:0000 0A" /proc/net/tcp && break; sleep 0.1; done
cat >"$WORK/net.yaml" <<YAML
farm: network
boards:
  - id: over-tcp
    port: nrf
    board: microbit
    serial: tcp://127.0.0.1:$port
  - id: over-unix
    port: nrf
    board: microbit
    serial: unix:$RUN/uart.sock
YAML
run_expect 0 run -i "$WORK/net.yaml" -s "$SRC/suites/smoke.yaml" -o "$WORK/report"
cat "$WORK/out.txt"
check_junit "$WORK/report/junit.xml" --min-tests 26 --expect over-tcp:smoke:identity:pass \
  --expect over-unix:smoke:long-output:pass

# No reset method: the crash is an infrastructure error, later tests are not run.
run_expect 3 run -i "$WORK/net.yaml" --boards over-tcp -s "$HERE/data/crash.yaml" -o "$WORK/report-crash"
cat "$WORK/out.txt"
check_junit "$WORK/report-crash/junit.xml" --expect over-tcp:crash:before:pass \
  --expect over-tcp:crash:hard-fault:error --expect over-tcp:crash:after:error
grep -q "could not be recovered" "$WORK/report-crash/junit.xml" || fail "no recovery failure reason"

# Emulated board: mpfarm resets it through QMP and carries on.
run_expect 1 run -i "$SRC/inventories/emulated.yaml" --boards microbit-1 -s "$HERE/data/crash.yaml" \
  -o "$WORK/report-qmp"
cat "$WORK/out.txt"
check_junit "$WORK/report-qmp/junit.xml" --expect microbit-1:crash:before:pass \
  --expect microbit-1:crash:hard-fault:failure --expect microbit-1:crash:after:pass
grep -q 'name="repl.hard_resets" value="1"' "$WORK/report-qmp/junit.xml" || fail "no QMP reset recorded"
echo "PASS"
