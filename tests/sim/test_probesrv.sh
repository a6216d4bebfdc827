#!/usr/bin/env bash
# farm/probesrv.c: the GDB server mpfarm starts for a probe, with stand-ins
# for OpenOCD and pyOCD (fake-openocd.sh, fake-pyocd.sh) that record their
# argv and serve the GDB remote protocol with gdbsim (--stdio like OpenOCD's
# "gdb_port pipe", --port N like pyOCD). Checked: the exact argv for several
# option combinations; flashing through the pipe and over TCP (on gdbsim's
# event log); no server left after close/free, nor after the parent is killed;
# what the server inherits (no stray fd, its own process group); the errors
# for a missing program and a server that exits at once; pyOCD's port retries
# (port taken, another program listening on it).
# Usage: test_probesrv.sh PROBESRV_TEST GDBSIM SIMDIR WORKDIR
set -euo pipefail
DRIVER=$1
GDBSIM=$2
SIMDIR=$3
WORK=$4
[ -x "$GDBSIM" ] || { echo "SKIP: $GDBSIM is not built"; exit 77; }
rm -rf "$WORK"
mkdir -p "$WORK/bin" "$WORK/empty"
# The stand-ins under their real names, so PATH lookup finds them.
install -m 755 "$SIMDIR/fake-openocd.sh" "$WORK/bin/openocd"
install -m 755 "$SIMDIR/fake-pyocd.sh" "$WORK/bin/pyocd"
export PATH="$WORK/bin:$PATH"
export FAKE_GDBSIM=$GDBSIM FAKE_ARGV_LOG=$WORK/argv FAKE_PID_FILE=$WORK/server.pid
export FAKE_CHECK_LOG=$WORK/checks FAKE_SIM_LOG=$WORK/sim.log
held=
# Only processes this test knows by id: the held driver, the servers' and intruders' pid files.
cleanup() {
  local f
  [ -z "$held" ] || kill -9 "$held" 2>/dev/null || true
  for f in "$FAKE_PID_FILE" "$WORK/foreign.pid" "$WORK/bound.pid"; do
    [ ! -s "$f" ] || kill -9 "$(cat "$f")" 2>/dev/null || true
  done
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
has() { grep -qF -- "$2" "$1" || { echo "--- $1"; cat "$1"; fail "$1 lacks '$2'"; }; }
hasnt() { ! grep -qF -- "$2" "$1" || { echo "--- $1"; cat "$1"; fail "$1 has '$2'"; }; }

# run NAME WANT_RC DRIVER-OPTIONS...: stdout in $WORK/NAME.out, stderr in $WORK/NAME.err;
# DRIVER_PATH: the driver's PATH (default: ours)
run() {
  local name=$1 want=$2 rc; shift 2
  rm -f "$FAKE_ARGV_LOG" "$FAKE_ARGV_LOG.starts" "$FAKE_CHECK_LOG" "$FAKE_SIM_LOG" "$FAKE_PID_FILE"
  set +e
  timeout 60 env PATH="${DRIVER_PATH:-$PATH}" "$DRIVER" --log "$WORK/$name.server.log" --pid-file "$FAKE_PID_FILE" "$@" \
    >"$WORK/$name.out" 2>"$WORK/$name.err"
  rc=$?
  set -e
  if [ "$rc" != "$want" ]; then
    echo "--- stdout"; cat "$WORK/$name.out"; echo "--- stderr"; cat "$WORK/$name.err"
    echo "--- server log"; cat "$WORK/$name.server.log" 2>/dev/null || true
    fail "$name: probesrv_test exited $rc, expected $want"
  fi
}
# expect_argv NAME FILE ARG...: FILE holds exactly these lines
expect_argv() {
  local name=$1 file=$2; shift 2
  printf '%s\n' "$@" >"$WORK/$name.want"
  diff -u "$WORK/$name.want" "$file" || fail "$name: the server's argv differs (- wanted, + got)"
}
# the argv mpfarm reports must be the one the server received
same_as_reported() {
  sed -n 's/^arg: //p' "$WORK/$1.out" >"$WORK/$1.reported"
  diff -u "$WORK/$1.reported" "$FAKE_ARGV_LOG" || fail "$1: reported argv differs from the real one"
}
inherited_nothing() {
  has "$FAKE_CHECK_LOG" "own process group"
  hasnt "$FAKE_CHECK_LOG" "inherited fd"
  hasnt "$FAKE_CHECK_LOG" "process group "
}
no_leftovers() {
  local left
  left=$(pgrep -f -- "$WORK/" || true)
  [ -z "$left" ] || { ps -o pid,pgid,args -p $left; fail "$1: processes left behind: $left"; }
}
flashed_ok() { # NAME CONNECTS: every connection flashed through gdbsim
  local k
  for k in $(seq 0 $(($2 - 1))); do has "$WORK/$1.out" "connect $k: ram and flash at"; done
  has "$FAKE_SIM_LOG" "vFlashDone -> OK"
  [ "$(grep -c 'vFlashDone -> OK' "$FAKE_SIM_LOG")" = "$2" ] || fail "$1: expected $2 vFlashDone"
  has "$WORK/$1.out" "done"
}

echo "== 1. OpenOCD: argv for names, paths, serial, speed, config; flash through the pipe"
run oo-names 0 --kind openocd --id jlink-1 --interface stlink --target stm32f4x \
  --serial 066DFF485550755187121723 --speed 4000 --connects 2
expect_argv oo-names "$FAKE_ARGV_LOG" \
  -c "gdb_port pipe" -c "tcl_port disabled" -c "telnet_port disabled" \
  -f interface/stlink.cfg -f target/stm32f4x.cfg \
  -c "adapter serial 066DFF485550755187121723" -c "adapter speed 4000"
same_as_reported oo-names
flashed_ok oo-names 2
has "$WORK/oo-names.out" "connect 0: pipe:openocd"
inherited_nothing
no_leftovers oo-names

run oo-paths 0 --kind openocd --id ocd-2 --interface interface/ftdi/olimex-arm-usb-ocd-h.cfg \
  --target "$WORK/my targets/nrf51.cfg"
expect_argv oo-paths "$FAKE_ARGV_LOG" \
  -c "gdb_port pipe" -c "tcl_port disabled" -c "telnet_port disabled" \
  -f interface/ftdi/olimex-arm-usb-ocd-h.cfg -f "$WORK/my targets/nrf51.cfg"
flashed_ok oo-paths 1

run oo-config 0 --kind openocd --id ocd-3 --config board/st_nucleo_f4.cfg
expect_argv oo-config "$FAKE_ARGV_LOG" \
  -c "gdb_port pipe" -c "tcl_port disabled" -c "telnet_port disabled" -f board/st_nucleo_f4.cfg

run oo-all 0 --kind openocd --id ocd-4 --interface cmsis-dap --target nrf52 \
  --config "$WORK/lab.cfg" --speed 1000 --argv-only
sed -n 's/^arg: //p' "$WORK/oo-all.out" >"$WORK/oo-all.args"
expect_argv oo-all "$WORK/oo-all.args" \
  -c "gdb_port pipe" -c "tcl_port disabled" -c "telnet_port disabled" \
  -f interface/cmsis-dap.cfg -f target/nrf52.cfg -f "$WORK/lab.cfg" -c "adapter speed 1000"
[ ! -e "$FAKE_ARGV_LOG" ] || fail "--argv-only started a server"

echo "== 2. pyOCD: argv, one server for several connections over TCP, gone after free"
run py 0 --kind pyocd --id st-1 --serial 0240000034544e45001b00038b5b000a --target nrf51 \
  --speed 4000 --connects 3
port=$(sed -n '/^--port$/{n;p}' "$FAKE_ARGV_LOG")
[[ $port =~ ^[0-9]+$ ]] || fail "pyocd got no port"
expect_argv py "$FAKE_ARGV_LOG" gdbserver --port "$port" --no-wait --persist \
  -O semihost_console_type=console --uid 0240000034544e45001b00038b5b000a --target nrf51 \
  --frequency 4000000
has "$WORK/py.out" "arg: PORT"
has "$WORK/py.out" "argv after start: gdbserver --port $port "
[ "$(wc -l <"$FAKE_ARGV_LOG.starts")" = 1 ] || fail "pyocd was started more than once"
has "$WORK/py.out" "connect 0: tcp://127.0.0.1:$port"
flashed_ok py 3
inherited_nothing
no_leftovers py

run py-port 0 --kind pyocd --id st-2 --gdb-port "$port" --config "$WORK/pyocd.yaml"
expect_argv py-port "$FAKE_ARGV_LOG" gdbserver --port "$port" --no-wait --persist \
  -O semihost_console_type=console --config "$WORK/pyocd.yaml"

echo "== 3. the server dies with mpfarm (PR_SET_PDEATHSIG)"
rm -f "$FAKE_PID_FILE" "$WORK/hold.out"
"$DRIVER" --kind pyocd --id st-3 --log "$WORK/hold.server.log" --hold >"$WORK/hold.out" 2>&1 &
held=$!
for _ in $(seq 500); do grep -q held "$WORK/hold.out" 2>/dev/null && break; sleep 0.02; done
has "$WORK/hold.out" held
spid=$(cat "$FAKE_PID_FILE")
kill -0 "$spid" || fail "the pyocd stand-in is not running"
kill -9 "$held"
wait "$held" 2>/dev/null || true
held=
for _ in $(seq 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.02; done
! kill -0 "$spid" 2>/dev/null || fail "the server outlived mpfarm"
no_leftovers hold

echo "== 4. a missing program"
DRIVER_PATH=$WORK/empty run oo-missing 1 --kind openocd --id jlink-1 --interface jlink --target nrf52
[ ! -e "$WORK/oo-missing.server.log" ] || fail "a log was created for a server that cannot start"
has "$WORK/oo-missing.err" \
  "probe jlink-1: openocd not found on PATH (install openocd or set server: in the probe entry)"
DRIVER_PATH=$WORK/empty run py-missing 1 --kind pyocd --id st-1
has "$WORK/py-missing.err" \
  "probe st-1: pyocd not found on PATH (install pyocd or set server: in the probe entry)"
run srv-missing 1 --kind openocd --id jlink-2 --config x.cfg --server "$WORK/nope/openocd"
has "$WORK/srv-missing.err" "probe jlink-2: server $WORK/nope/openocd: No such file or directory (fix server: in the probe entry)"
run srv-named 0 --kind openocd --id jlink-3 --config x.cfg --server "$WORK/bin/openocd"
has "$WORK/srv-named.out" "connect 0: ram and flash"

echo "== 5. a server that exits at once"
FAKE_MODE=fail run oo-fail 1 --kind openocd --id jlink-1 --interface jlink --target nrf52
has "$WORK/oo-fail.err" "probe jlink-1: openocd exited with status 1; see $WORK/oo-fail.server.log (last line: Error: unable to find a matching CMSIS-DAP device)"
no_leftovers oo-fail
FAKE_MODE=fail run py-fail 1 --kind pyocd --id st-1 --serial nope
has "$WORK/py-fail.err" "error: probe st-1: pyocd exited with status 1 before listening; see $WORK/py-fail.server.log (last line: 0000210 C No connected debug probes matching unique ID 'nope' [__main__])"
no_leftovers py-fail
FAKE_MODE=hang run py-hang 1 --kind pyocd --id st-1 --timeout 1500
has "$WORK/py-hang.err" "probe st-1: pyocd did not listen on 127.0.0.1:"
has "$WORK/py-hang.err" "within 1500 ms; see $WORK/py-hang.server.log (last line: 0000150 I Target type is nrf51 [board])"
no_leftovers py-hang

echo "== 6. pyOCD's port was taken: started again on a new port"
touch "$WORK/busy"
FAKE_BUSY_ONCE=$WORK/busy run py-busy 0 --kind pyocd --id st-1 --connects 2
[ ! -e "$WORK/busy" ] || fail "the busy stand-in did not run"
[ "$(wc -l <"$FAKE_ARGV_LOG.starts")" = 2 ] || fail "pyocd was not started exactly twice"
has "$WORK/py-busy.server.log" "Address already in use"
flashed_ok py-busy 2
no_leftovers py-busy
# with gdb_port: fixed, a taken port is an error, not a retry
touch "$WORK/busy"
FAKE_BUSY_ONCE=$WORK/busy run py-busy-fixed 1 --kind pyocd --id st-1 --gdb-port "$port"
has "$WORK/py-busy-fixed.err" "probe st-1: gdb_port: $port is in use by another program"

# a real collision: another program bound the port (not listening); no server log kept,
# so mpfarm can only tell by trying the port itself
if command -v python3 >/dev/null; then
  touch "$WORK/bound"
  FAKE_BOUND_ONCE=$WORK/bound run py-bound 0 --kind pyocd --id st-1 --log ""
  [ -s "$WORK/bound.bound" ] || fail "the intruder did not bind"
  [ "$(wc -l <"$FAKE_ARGV_LOG.starts")" = 2 ] || fail "pyocd was not started exactly twice"
  [ ! -e "$WORK/py-bound.server.log" ] || fail "a server log was written with no log path"
  flashed_ok py-bound 1
  kill "$(cat "$WORK/bound.pid")" 2>/dev/null || true
else
  echo "(python3 missing: the bound-port case is skipped)"
fi

echo "== 7. another program listens on pyOCD's port: never talked to, new port"
touch "$WORK/foreign"
FAKE_FOREIGN_ONCE=$WORK/foreign run py-foreign 0 --kind pyocd --id st-1
[ "$(wc -l <"$FAKE_ARGV_LOG.starts")" = 2 ] || fail "pyocd was not started exactly twice"
fport=$(cat "$WORK/foreign.port")
has "$WORK/foreign.log" "listening 127.0.0.1:$fport"
has "$WORK/foreign.log" "connect"
if grep -qE '^[0-9]+ ' "$WORK/foreign.log"; then
  cat "$WORK/foreign.log"; fail "mpfarm spoke GDB to a server it did not start"
fi
hasnt "$WORK/py-foreign.out" "connect 0: tcp://127.0.0.1:$fport"
flashed_ok py-foreign 1
kill "$(cat "$WORK/foreign.pid")" 2>/dev/null || true
for _ in $(seq 100); do kill -0 "$(cat "$WORK/foreign.pid")" 2>/dev/null || break; sleep 0.02; done
no_leftovers py-foreign

echo "== 8. options mpfarm refuses before starting anything"
run bad-tcl 1 --kind openocd --id o-1 --config "$WORK/x}.cfg"
has "$WORK/bad-tcl.err" "contains '}', which OpenOCD would read as Tcl"
run bad-serial 1 --kind openocd --id o-1 --config a.cfg --serial 'A B;shutdown'
has "$WORK/bad-serial.err" "has characters mpfarm does not pass to OpenOCD"
run bad-iface 1 --kind pyocd --id p-1 --interface stlink
has "$WORK/bad-iface.err" "interface: is an OpenOCD setting"
[ ! -e "$FAKE_ARGV_LOG" ] || fail "a refused probe started a server"

echo "PASS"
