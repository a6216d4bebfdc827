#!/usr/bin/env bash
# The serial harness itself, through mpfarm's real libserialport path:
#  1. an emulated micro:bit (QEMU) bridged to a simulated USB CDC port runs
#     the shipped smoke suite, the board found by its /dev/serial/by-id link;
#     the device saw the port opened, set to 115200 and closed (HUPCL);
#  2. a Pico model answers a 1200-baud touch (stty, as people do it by hand)
#     by leaving the bus and coming back as its BOOTSEL bootloader, then as
#     MicroPython on a new ttyACM; mpfarm finds it by USB serial number.
# (stty cannot make the touch here: it dup2()s the port onto stdin, and
# umockdev does not follow the duplicate.)
# Usage: test_harness.sh SERIALSIM MPFARM MPSIM SRC WORK
set -euo pipefail
SSIM=$1 MPFARM=$2 MPSIM=$3 SRC=$4 WORK=$5
source "$SRC/tests/sim/serial/lib.sh"
need_harness
need_microbit

# 1. smoke suite over libserialport on the bridged emulated micro:bit
start_microbit "$RUN/mb.sock"
serial=9900000000000000000000009d1f0b34
cat >"$WORK/mb.yaml" <<YAML
boards:
  - id: mb-usb
    port: nrf
    board: microbit
    serial: {path: /dev/serial/by-id/usb-ARM_BBC_micro:bit_CMSIS-DAP_${serial}-if00}
YAML
set +e
"$SSIM" --log "$WORK/ev1.log" --info "$WORK/info1.txt" \
  --device mb=mpy:sock=$RUN/mb.sock,vid=0x0d28,pid=0x0204,serial=$serial,manufacturer=ARM,product=BBC_micro:bit_CMSIS-DAP \
  -- "$MPFARM" run -i "$WORK/mb.yaml" -s "$SRC/suites/smoke.yaml" -o "$WORK/report1" >"$WORK/out1.txt" 2>&1
rc=$?
set -e
cat "$WORK/out1.txt"
[ "$rc" = 0 ] || { cat "$WORK/ev1.log"; fail "smoke over the simulated port exited $rc"; }
grep -q "^mb /dev/ttyACM0 1-1 0d28:0204 $serial\$" "$WORK/info1.txt" || { cat "$WORK/info1.txt"; fail "info file"; }
python3 "$SRC/tests/integration/check_junit.py" "$WORK/report1/junit.xml" --min-tests 10 \
  --expect mb-usb:smoke:identity:pass --expect mb-usb:smoke:arithmetic:pass \
  --expect mb-usb:smoke:long-output:pass
# What the device saw: opened (DTR/RTS raised by the open), 115200 baud, closed with HUPCL.
ev_expect "$WORK/ev1.log" "mb open (1)" "mb lines dtr=1 rts=1 (open)" "mb bridge to " "mb baud 115200" \
  "mb lines dtr=0 rts=0 (close with HUPCL)"
[ "$(grep -c ' mb open (1)' "$WORK/ev1.log")" -ge 1 ] || fail "no open"

# 2. 1200-baud touch by hand, re-enumeration, found again by USB serial
start_mpsim "$RUN/pico.sock"
cat >"$WORK/pico.yaml" <<YAML
boards:
  - {id: pico, port: rp2, board: RPI_PICO, serial: {usb_serial: E6614103E7425C2F}}
YAML
cat >"$WORK/client2.sh" <<SH
set -e
"$MPFARM" exec pico -i "$WORK/pico.yaml" 'print(6*7)'
# The touch as arduino-cli does it: open at 1200 baud, drop DTR, close.
python3 - <<'PY'
import fcntl, os, struct, termios
fd = os.open("/dev/ttyACM0", os.O_RDWR | os.O_NOCTTY)
a = termios.tcgetattr(fd)
a[4] = a[5] = termios.B1200
termios.tcsetattr(fd, termios.TCSANOW, a)
fcntl.ioctl(fd, termios.TIOCMBIC, struct.pack("I", termios.TIOCM_DTR))
os.close(fd)
PY
for i in \$(seq 100); do [ -e "\$UMOCKDEV_DIR/dev/ttyACM1" ] && break; sleep 0.05; done
"$MPFARM" exec pico -i "$WORK/pico.yaml" 'print(6*9)'
SH
set +e
"$SSIM" --log "$WORK/ev2.log" --device pico=rp2040:sock=$RUN/pico.sock,gap_ms=200,back_ms=300 \
  -- bash "$WORK/client2.sh" >"$WORK/out2.txt" 2>&1
rc=$?
set -e
cat "$WORK/out2.txt"
[ "$rc" = 0 ] || { cat "$WORK/ev2.log"; fail "touch/reopen client exited $rc"; }
[ "$(cat "$WORK/out2.txt")" = "$(printf '42\n54')" ] || fail "unexpected output"
ev_expect "$WORK/ev2.log" "pico baud 1200" "pico lines dtr=0 rts=1 (TIOCMBIC)" \
  "pico touch: 1200 baud and DTR low" "pico unplug /dev/ttyACM0" \
  "pico plug 2e8a:0003 serial=E6614103E7425C2F location=1-1 (no tty)" \
  "pico plug 2e8a:0005 serial=E6614103E7425C2F location=1-1 /dev/ttyACM1" "pico open (1)"
echo "PASS"
