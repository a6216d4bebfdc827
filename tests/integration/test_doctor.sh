#!/usr/bin/env bash
# mpfarm doctor over a fake sysfs + /dev tree (--sys/--dev): devices of known
# ids whose /dev/bus/usb node or serial port this user cannot open read-write
# are named with the fix; unknown devices are not listed. Run as an
# unprivileged user (setpriv) when the test runs as root. Also checks that
# ci/udev/70-mpfarm.rules covers every id of the known-id table
# (farm/usbids.c) with MODE 0660, GROUP plugdev and TAG+="uaccess".
source "$(dirname "$0")/lib.sh" "$@"
need python3
F=$RUN/fake
chmod 755 "$RUN"
dev() { # dev LOC VID PID DEVNUM NODE_MODE [TTY TTY_MODE]
  local d=$F/sys/bus/usb/devices/$1
  mkdir -p "$d" "$F/dev/bus/usb/001"
  printf '%s\n' "$2" >"$d/idVendor"; printf '%s\n' "$3" >"$d/idProduct"
  printf '00\n' >"$d/bDeviceClass"; printf '1\n' >"$d/busnum"; printf '%s\n' "$4" >"$d/devnum"
  local node=$F/dev/bus/usb/001/$(printf '%03d' "$4")
  : >"$node"; chmod "$5" "$node"
  if [ -n "${6:-}" ]; then
    mkdir -p "$d/$1:1.0/tty/$6"; : >"$F/dev/$6"; chmod "$7" "$F/dev/$6"
  fi
}
dev 1-1 0483 df11 5 600
dev 1-2 2e8a 0005 6 666 ttyACM0 666
dev 1-3 1234 5678 7 600
dev 1-4 10c4 ea60 8 666 ttyACM1 600
chmod -R a+rX "$F/sys"; chmod a+rx "$F" "$F/dev" "$F/dev/bus" "$F/dev/bus/usb" "$F/dev/bus/usb/001"

run_expect 0 doctor --sys "$F/sys" --dev "$F/dev"
cat "$WORK/out.txt"
grep -q "1234:5678" "$WORK/out.txt" && fail "an unknown device was listed"
grep -q "^ok   0483:df11 at 1-1" "$WORK/out.txt" || fail "the DFU device is not listed"

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  set +e
  setpriv --reuid=65534 --regid=65534 --clear-groups "$MPFARM" doctor --sys "$F/sys" --dev "$F/dev" \
    >"$WORK/nobody.txt" 2>&1
  rc=$?
  set -e
  cat "$WORK/nobody.txt"
  [ "$rc" = 1 ] || fail "doctor as an unprivileged user exited $rc, expected 1"
  grep -q "^FIX  0483:df11 at 1-1" "$WORK/nobody.txt" || fail "the DFU device's node was not flagged"
  grep -q "cannot open $F/dev/bus/usb/001/005 read-write (mode 0600, owner root:root)" "$WORK/nobody.txt" ||
    fail "the reason does not name the node, its mode and owner"
  grep -q "^ok   2e8a:0005 at 1-2" "$WORK/nobody.txt" || fail "an accessible board was flagged"
  grep -q "^FIX  10c4:ea60 at 1-4" "$WORK/nobody.txt" || fail "an unreadable serial port was not flagged"
  grep -q "cannot open $F/dev/ttyACM1 read-write" "$WORK/nobody.txt" || fail "the tty is not named"
  grep -q "cannot open 2 of 3 devices" "$WORK/nobody.txt" || fail "no summary"
  grep -q "sudo install -m 644 ci/udev/70-mpfarm.rules /etc/udev/rules.d/" "$WORK/nobody.txt" ||
    fail "the fix is not printed"
  grep -q "usermod -aG plugdev,dialout" "$WORK/nobody.txt" || fail "the group fix is not printed"
else
  echo "not root: the unprivileged case is not run"
fi

# The rules cover every known id, each with the same access.
python3 - "$SRC/ci/udev/70-mpfarm.rules" "$SRC/farm/usbids.c" <<'PY'
import re, sys
rules = [l for l in open(sys.argv[1]) if l.startswith("ATTRS{idVendor}")]
cover = []
for l in rules:
    for want in ('MODE="0660"', 'GROUP="plugdev"', 'TAG+="uaccess"'):
        if want not in l:
            sys.exit("FAIL: rule without %s: %s" % (want, l.strip()))
    v = re.search(r'idVendor}=="([0-9a-f]{4})"', l).group(1)
    p = re.search(r'idProduct}=="([0-9a-f|]+)"', l)
    cover.append((v, p.group(1).split("|") if p else None))
ids = re.findall(r'\{ 0x([0-9A-Fa-f]{4}), (0x[0-9A-Fa-f]{4}|ANY),', open(sys.argv[2]).read())
missing = []
for v, p in ids:
    v = v.lower(); p = None if p == "ANY" else p[2:].lower()
    ok = any(cv == v and (cp is None or (p is not None and p in cp)) for cv, cp in cover)
    if not ok:
        missing.append("%s:%s" % (v, p or "*"))
if missing:
    sys.exit("FAIL: ci/udev/70-mpfarm.rules misses known ids: " + ", ".join(missing))
print("udev rules cover all %d known ids" % len(ids))
PY
echo PASS
