# Shared helpers for integration tests: sourced by test_*.sh.
# Usage in a test: source "$(dirname "$0")/lib.sh" "$@"
set -euo pipefail
MPFARM=$1
SRC=$2
WORK=$3
HERE=$SRC/tests/integration
rm -rf "$WORK"
mkdir -p "$WORK"
# Emulator sockets go under a short private directory (unix socket paths are
# limited to 107 bytes), so leftovers of this test can be found.
RUN=$(mktemp -d /tmp/mpfarm-it-XXXXXX)
ln -s "$RUN" "$WORK/run"
lib_cleanup() { rm -rf "$RUN"; }
trap lib_cleanup EXIT
export XDG_RUNTIME_DIR=$RUN
export XDG_CACHE_HOME=$WORK/cache
# Board locks are per test: tests running side by side reuse board ids.
export MPFARM_LOCK_DIR=$WORK/locks
export NO_COLOR=1

need() {
  for c in "$@"; do
    command -v "$c" >/dev/null || { echo "SKIP: $c not installed (ci/install-deps installs it)"; exit 77; }
  done
}
need_microbit() {
  need qemu-system-arm python3
  [ -r /usr/share/firmware-microbit-micropython/firmware.hex ] ||
    { echo "SKIP: firmware-microbit-micropython not installed"; exit 77; }
}

fail() { echo "FAIL: $*" >&2; exit 1; }

# Run mpfarm, capture output, check its exit code.
run_expect() {
  local want=$1; shift
  set +e
  "$MPFARM" "$@" >"$WORK/out.txt" 2>"$WORK/err.txt"
  local rc=$?
  set -e
  if [ "$rc" != "$want" ]; then
    echo "--- stdout"; cat "$WORK/out.txt"; echo "--- stderr"; cat "$WORK/err.txt"
    fail "mpfarm $* exited $rc, expected $want"
  fi
}

# No emulator of this test may outlive the run.
no_leftover_qemu() {
  local left
  left=$(pgrep -f "qemu-system-arm.*$RUN" || true)
  [ -z "$left" ] || { ps -o pid,args -p $left; fail "emulator processes left behind: $left"; }
  local dirs
  dirs=$(find "$RUN" -maxdepth 1 -name 'mpfarm-emu-*' 2>/dev/null || true)
  [ -z "$dirs" ] || fail "emulator socket dirs left behind: $dirs"
}

# wait_lines FILE PATTERN [COUNT]: wait (up to 10 s) until PATTERN occurs COUNT times (default 1).
wait_lines() {
  local want=${3:-1}
  for _ in $(seq 200); do
    [ "$(grep -c -- "$2" "$1" 2>/dev/null || true)" -ge "$want" ] && return 0
    sleep 0.05
  done
  cat "$1"; fail "timed out waiting for '$2' in $1"
}

# wait_rc PID: wait for a background job and put its exit code in RC.
wait_rc() {
  set +e
  wait "$1"
  RC=$?
  set -e
}

# emulators_gone WHAT: the emulators of this test die soon (killed runs rely on PDEATHSIG);
# then the socket dirs a killed run could not remove are cleared.
emulators_gone() {
  for _ in $(seq 50); do pgrep -f "qemu-system-arm.*$RUN" >/dev/null || break; sleep 0.1; done
  local left
  left=$(pgrep -f "qemu-system-arm.*$RUN" || true)
  [ -z "$left" ] || fail "emulator left running $1: $left"
  rm -rf "$RUN"/mpfarm-emu-*
}

check_junit() {
  python3 "$HERE/check_junit.py" "$@"
}
