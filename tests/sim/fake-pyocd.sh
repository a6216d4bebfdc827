#!/usr/bin/env bash
# Stand-in for pyocd (tests/sim/test_probesrv.sh): records its arguments, then
# serves the GDB remote protocol on 127.0.0.1:PORT (from --port PORT) with
# gdbsim, as `pyocd gdbserver --port PORT` does.
# Environment:
#   FAKE_GDBSIM      the gdbsim binary (required)
#   FAKE_ARGV_LOG    receives "$@", one argument per line (required);
#                    FAKE_ARGV_LOG.starts gets one line per start
#   FAKE_PID_FILE    receives the server's pid (optional)
#   FAKE_CHECK_LOG   one line per check of what the server inherited (optional)
#   FAKE_SIM_LOG     gdbsim --log (optional)
#   FAKE_MODE        empty: serve; "fail": a pyOCD-like error, exit 1; "hang": never listen
#   FAKE_BUSY_ONCE   if this file exists: remove it, fail as pyOCD does when the
#                    port is taken ("Address already in use"), exit 1
#   FAKE_BOUND_ONCE  if this file exists: remove it, let another program (python3,
#                    its own session) bind the port without listening, then try it
#                    (gdbsim fails with "Address already in use"); its pid: FILE.pid
#   FAKE_FOREIGN_ONCE  if this file exists: remove it, let another program (a
#                    gdbsim in its own session) take the port first, then try it
#                    (gdbsim fails with "Address already in use"); the intruder's
#                    pid goes to FILE.pid, its event log to FILE.log
set -u
printf '%s\n' "$@" >"${FAKE_ARGV_LOG:?}"
echo "start $$" >>"$FAKE_ARGV_LOG.starts"
[ -z "${FAKE_PID_FILE:-}" ] || echo $$ >"$FAKE_PID_FILE"
if [ -n "${FAKE_CHECK_LOG:-}" ]; then
  [ ! -e /proc/$$/fd/37 ] || echo "inherited fd 37" >>"$FAKE_CHECK_LOG"
  read -r stat </proc/$$/stat
  read -r _state _ppid pgrp _rest <<<"${stat##*) }"
  if [ "$pgrp" = $$ ]; then echo "own process group" >>"$FAKE_CHECK_LOG"
  else echo "process group $pgrp, not $$" >>"$FAKE_CHECK_LOG"; fi
fi
port= prev=
for a in "$@"; do
  [ "$prev" != --port ] || port=$a
  prev=$a
done
[ -n "$port" ] || { echo "fake-pyocd: no --port" >&2; exit 2; }
echo "0000150 I Target type is nrf51 [board]"
case "${FAKE_MODE:-}" in
  fail)
    echo "0000210 C No connected debug probes matching unique ID 'nope' [__main__]" >&2
    exit 1 ;;
  hang)
    exec sleep 600 ;;
esac
if [ -n "${FAKE_BUSY_ONCE:-}" ] && [ -e "$FAKE_BUSY_ONCE" ]; then
  rm -f "$FAKE_BUSY_ONCE"
  echo "0000300 C [Errno 98] Address already in use [__main__]" >&2
  echo "OSError: [Errno 98] Address already in use" >&2
  exit 1
fi
if [ -n "${FAKE_BOUND_ONCE:-}" ] && [ -e "$FAKE_BOUND_ONCE" ]; then
  rm -f "$FAKE_BOUND_ONCE"
  setsid python3 -c 'import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
open(sys.argv[2], "w").write("bound\n")
time.sleep(60)' "$port" "$FAKE_BOUND_ONCE.bound" </dev/null >/dev/null 2>&1 &
  echo $! >"$FAKE_BOUND_ONCE.pid"
  for _ in $(seq 250); do [ -s "$FAKE_BOUND_ONCE.bound" ] && break; sleep 0.02; done
fi
if [ -n "${FAKE_FOREIGN_ONCE:-}" ] && [ -e "$FAKE_FOREIGN_ONCE" ]; then
  rm -f "$FAKE_FOREIGN_ONCE"
  setsid "$FAKE_GDBSIM" --port "$port" --port-file "$FAKE_FOREIGN_ONCE.port" \
    --log "$FAKE_FOREIGN_ONCE.log" </dev/null >/dev/null 2>&1 &
  echo $! >"$FAKE_FOREIGN_ONCE.pid"
  for _ in $(seq 250); do [ -s "$FAKE_FOREIGN_ONCE.port" ] && break; sleep 0.02; done
  sleep 1 # "python start-up": mpfarm connects meanwhile
fi
exec "${FAKE_GDBSIM:?}" --port "$port" --profile pyocd ${FAKE_SIM_LOG:+--log "$FAKE_SIM_LOG"}
