# Shared helpers for the serial-harness tests (sourced). Expects SRC, WORK set.
RUN=$(mktemp -d /tmp/mpfarm-ssim-XXXXXX)
rm -rf "$WORK"; mkdir -p "$WORK"
export TMPDIR=$WORK         # umockdev testbeds: a crash leaves them here
export XDG_RUNTIME_DIR=$RUN XDG_CACHE_HOME=$WORK/cache MPFARM_LOCK_DIR=$WORK/locks NO_COLOR=1
SSIM_PIDS=()
ssim_cleanup() {
  for p in "${SSIM_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$RUN"
}
trap ssim_cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
need_harness() {
  [ -r /usr/lib/x86_64-linux-gnu/libumockdev-preload.so.0 ] || ldconfig -p | grep -q libumockdev-preload ||
    { echo "SKIP: umockdev not installed (ci/install-deps installs it)"; exit 77; }
}
need_microbit() {
  command -v qemu-system-arm >/dev/null && [ -r /usr/share/firmware-microbit-micropython/firmware.hex ] ||
    { echo "SKIP: qemu-system-arm / firmware-microbit-micropython not installed"; exit 77; }
}
# start_microbit SOCK: a preloaded emulated micro:bit with its console on SOCK.
start_microbit() {
  qemu-system-arm -M microbit -nographic -monitor none -display none \
    -device loader,file=/usr/share/firmware-microbit-micropython/firmware.hex \
    -chardev socket,id=s0,path="$1",server=on,wait=off -serial chardev:s0 >"$WORK/qemu.log" 2>&1 &
  SSIM_PIDS+=($!)
  for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.05; done
  fail "emulator did not start"
}
# start_mpsim SOCK [ARGS...]: an mpsim board on SOCK.
start_mpsim() {
  local sock=$1; shift
  "$MPSIM" --socket "$sock" "$@" &
  SSIM_PIDS+=($!)
  for _ in $(seq 100); do [ -S "$sock" ] && return 0; sleep 0.05; done
  fail "mpsim did not start"
}
# ev_expect LOG TEXT...: each TEXT occurs in LOG, in this order.
ev_expect() {
  python3 - "$@" <<'PY'
import sys
log = open(sys.argv[1]).read().splitlines()
pos = 0
for want in sys.argv[2:]:
    for i in range(pos, len(log)):
        if want in log[i]:
            pos = i + 1
            break
    else:
        print("event log:\n" + "\n".join(log))
        sys.exit("FAIL: event %r not found (in order) in %s" % (want, sys.argv[1]))
PY
}
