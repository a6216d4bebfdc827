#!/usr/bin/env bash
# Stand-in for openocd (tests/sim/test_probesrv.sh): records its arguments,
# then serves the GDB remote protocol on stdin/stdout with gdbsim, as OpenOCD
# does with -c "gdb_port pipe".
# Environment:
#   FAKE_GDBSIM      the gdbsim binary (required)
#   FAKE_ARGV_LOG    receives "$@", one argument per line (required)
#   FAKE_PID_FILE    receives the server's pid (optional)
#   FAKE_CHECK_LOG   one line per check of what the server inherited (optional)
#   FAKE_SIM_LOG, FAKE_SIM_STATE   gdbsim --log / --state (optional)
#   FAKE_MODE        empty: serve; "fail": an OpenOCD-like error on stderr, exit 1
set -u
printf '%s\n' "$@" >"${FAKE_ARGV_LOG:?}"
[ -z "${FAKE_PID_FILE:-}" ] || echo $$ >"$FAKE_PID_FILE"
if [ -n "${FAKE_CHECK_LOG:-}" ]; then
  [ ! -e /proc/$$/fd/37 ] || echo "inherited fd 37" >>"$FAKE_CHECK_LOG"
  read -r stat </proc/$$/stat
  read -r _state _ppid pgrp _rest <<<"${stat##*) }"
  if [ "$pgrp" = $$ ]; then echo "own process group" >>"$FAKE_CHECK_LOG"
  else echo "process group $pgrp, not $$" >>"$FAKE_CHECK_LOG"; fi
fi
if [ "${FAKE_MODE:-}" = fail ]; then
  echo "Open On-Chip Debugger 0.12.0 (stand-in)" >&2
  echo "Error: unable to find a matching CMSIS-DAP device" >&2
  exit 1
fi
exec "${FAKE_GDBSIM:?}" --stdio --profile openocd ${FAKE_SIM_LOG:+--log "$FAKE_SIM_LOG"} \
  ${FAKE_SIM_STATE:+--state "$FAKE_SIM_STATE"} ${FAKE_SIM_STATE:+--dump "$FAKE_SIM_STATE"}
