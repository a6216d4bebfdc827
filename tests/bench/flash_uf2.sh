#!/usr/bin/env bash
# UF2 flashing throughput: mpfarm flashes a 256 KiB image (random bytes, an
# RP2040 at 0x10000000, converted to UF2 with its family: 1024 blocks, a
# 512 KiB file) onto uf2sim's FUSE drive, five times. Prints, per run and as
# the median: the copy rate the simulated bootloader saw (first block to the
# last, image bytes per second) and mpfarm's whole flash step (conversion,
# finding the drive, copy, fsync, waiting for the drive to vanish) as mpfarm
# reports it. The board's console after the reboot is an mpsim board.
# Never asserts on time; fails only when a flash fails.
# Usage: flash_uf2.sh UF2SIM MPFARM MPSIM WORKDIR
set -euo pipefail
SIM=$1
MPFARM=$2
MPSIM=$3
WORK=$4
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse on this machine"; exit 77; }
rm -rf "$WORK"
mkdir -p "$WORK"
RUN=$(mktemp -d /tmp/uf2-bench-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for m in "$RUN"/drive*; do
    if grep -q " $m " /proc/self/mountinfo; then umount -l "$m" 2>/dev/null || fusermount3 -u -z "$m" || true; fi
  done
  rm -rf "$RUN"
}
trap cleanup EXIT

SIZE=$((256 * 1024))
head -c $SIZE /dev/urandom >"$WORK/image.bin"
"$MPSIM" --socket "$RUN/pico.sock" >/dev/null 2>&1 &
pids+=($!)
cat >"$WORK/inv.yaml" <<YAML
farm: uf2-bench
boards:
  - id: pico
    port: rp2
    board: pico
    mcu: rp2040
    serial: unix:$RUN/pico.sock
    flash: {method: uf2, board_id: RPI-RP2, wait: 5}
YAML
sim_rates=() farm_rates=()
for i in 1 2 3 4 5; do
  mkdir -p "$RUN/drive$i"
  "$SIM" --mount "$RUN/drive$i" --mcu rp2040 --log "$WORK/sim$i.log" --ready "$RUN/ready$i" 2>"$WORK/sim$i.err" &
  pid=$!
  pids+=($pid)
  for _ in $(seq 200); do [ -e "$RUN/ready$i" ] && break; sleep 0.02; done
  if [ ! -e "$RUN/ready$i" ]; then
    wait $pid && rc=0 || rc=$?
    [ "$rc" = 77 ] && { echo "SKIP: FUSE cannot mount here"; exit 77; }
    fail "uf2sim did not mount: $(cat "$WORK/sim$i.err")"
  fi
  "$MPFARM" flash pico -i "$WORK/inv.yaml" "$WORK/image.bin" --format bin --base 0x10000000 \
    >"$WORK/flash$i.out" 2>&1 || { cat "$WORK/flash$i.out"; fail "flash $i failed"; }
  us=$(sed -n 's/.*complete 1024 blocks, \([0-9]*\) us after the first.*/\1/p' "$WORK/sim$i.log")
  [ -n "$us" ] || fail "the simulator did not get all 1024 blocks (run $i)"
  [ "$us" -gt 0 ] || us=1
  s=$(sed -n 's/.*wrote [0-9]* bytes in \([0-9.]*\) s.*/\1/p' "$WORK/flash$i.out" | head -1)
  sim_rates+=($((SIZE * 1000000 / us)))
  farm_rates+=($(python3 -c "print(int($SIZE / max(float('$s'), 1e-6)))"))
  echo "run $i: copy ${us} us in the bootloader = ${sim_rates[-1]} B/s; mpfarm flash step ${s} s = ${farm_rates[-1]} B/s"
  kill $pid; wait $pid 2>/dev/null || true
done
median() { printf '%s\n' "$@" | sort -n | sed -n 3p; }
echo "uf2 (simulator) 256 KiB image: copy $(median "${sim_rates[@]}") B/s (median of 5, as the bootloader received it)"
echo "uf2 (simulator) 256 KiB image: mpfarm flash step $(median "${farm_rates[@]}") B/s (median of 5, conversion + copy + fsync + drive gone)"
