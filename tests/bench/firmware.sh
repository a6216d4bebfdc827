#!/usr/bin/env bash
# Benchmark: the firmware phase (mpfarm firmware) for 8 boards sharing 2
# build targets, cold (empty cache: mirror, checkout, submodule, mpy-cross,
# two builds) and warm (everything cached). Prints figures; asserts nothing
# about time.  Usage: firmware.sh MPFARM SOURCE_DIR WORK_DIR
set -euo pipefail
MPFARM=$1 SRC=$2 WORK=$3
command -v git >/dev/null && command -v make >/dev/null || { echo "SKIP: git/make missing"; exit 77; }
[ -r /usr/share/firmware-microbit-micropython/firmware.hex ] || { echo "SKIP: no micro:bit firmware"; exit 77; }
rm -rf "$WORK" && mkdir -p "$WORK"
source "$SRC/tests/integration/fwrepo.sh"
fwrepo_make "$WORK/src"
export XDG_CACHE_HOME=$WORK/cache NO_COLOR=1 MPFARM_TEST_BUILDS=$WORK/builds.log
{
  echo "farm: bench-firmware"
  echo "boards:"
  for i in 1 2 3 4 5 6 7 8; do
    b=MICROBIT; [ $((i % 2)) = 0 ] && b=CALLIOPE
    echo "  - {id: b-$i, port: nrf, board: $b, mcu: nrf51, emulator: {kind: qemu, machine: microbit, blank: true}, flash: {method: gdb}}"
  done
  echo "firmware:"
  echo "  - match: {port: nrf}"
  echo "    build: {repo: $WORK/src/micropython, ref: master}"
} >"$WORK/inv.yaml"

phase() {
  local t0 t1
  t0=$(date +%s.%N)
  "$MPFARM" firmware -i "$WORK/inv.yaml" --build-jobs 2 >"$WORK/$1.txt" 2>&1
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.3f}')"
}
cold=$(phase cold)
warm=$(phase warm)
builds=$(grep -c -v '^mpy-cross' "$WORK/builds.log")
echo "firmware phase, 8 boards, 2 targets (local git repository, make):"
echo "  cold (empty cache): ${cold} s  ($(tail -n +1 "$WORK/cold.txt" | grep '^firmware:' | sed 's/^firmware: //'))"
echo "  warm (all cached):  ${warm} s  ($(grep '^firmware:' "$WORK/warm.txt" | sed 's/^firmware: //'))"
echo "  builds run in total: $builds"
