#!/usr/bin/env bash
# sim.usb_dfu_util: usbsim is faithful to the real dfu-util (the reference
# DFU host): it lists two same-VID:PID devices by serial and location,
# downloads to the one chosen by serial (the other stays erased), uploads the
# bytes back, takes a DfuSe .dfu file and a plain DFU file with a suffix, and
# the STM32L4 GETSTATUS stall during erase and an unplugged device behave as
# dfu-util expects. Asserts on usbsim's event log and dumped flash/state.
#   test_dfu_util.sh USBSIM WORKDIR
set -euo pipefail
USBSIM=$1 WORK=$2
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
need_usbsim dfu-util python3

BASE=0x08000000
A="a=dfuse:serial=AAA111,location=1-3"
B="b=dfuse:serial=BBB222,location=1-4"

# --- the file writer against the protocol notes' test vectors ---------------
printf '\x00\x01\x02\x03\x04\x05\x06\x07' >"$WORK/v8.bin"
dfu_files dfuse "$WORK/v.dfu" 0483 DF11 0x08000000="$WORK/v8.bin"
[ "$(stat -c %s "$WORK/v.dfu")" = 317 ] || fail "DfuSe vector: $(stat -c %s "$WORK/v.dfu") bytes, want 317"
[ "$(head -c 11 "$WORK/v.dfu" | hexof)" = 4466755365012d01000001 ] || fail "DfuSe vector prefix"
[ "$(tail -c 16 "$WORK/v.dfu" | hexof)" = 000011df83041a015546441047580f89 ] || fail "DfuSe vector suffix"
printf '\x01\x02\x03\x04' >"$WORK/v4.bin"
dfu_files suffix "$WORK/v4.dfu" FFFF FFFF "$WORK/v4.bin"
[ "$(hexof <"$WORK/v4.dfu")" = 01020304ffffffffffff000155464410961323a5 ] || fail "plain suffix vector"

# --- 1. two devices, same VID:PID, told apart by serial and location -------
usim list "$A" "$B" -- dfu-util -l || { cat "$U/out"; fail "dfu-util -l failed"; }
grep -c '^Found DFU: \[0483:df11\]' "$U/out" | grep -qx 2 || { cat "$U/out"; fail "want 2 DFU devices listed"; }
grep -q 'path="1-3", alt=0, name="@Internal Flash  /0x08000000/04\*016Kg,01\*064Kg,07\*128Kg", serial="AAA111"' "$U/out" ||
  { cat "$U/out"; fail "device a (1-3, AAA111) not listed with its memory map"; }
grep -q 'path="1-4", .*serial="BBB222"' "$U/out" || { cat "$U/out"; fail "device b (1-4, BBB222) not listed"; }
grep -q '^a /dev/bus/usb/001/002 1-3 0483:df11 AAA111$' "$U/info" || fail "info: $(cat "$U/info")"

# --- 2. download 256 KiB to b by serial, leave; a stays erased -------------
rand_file "$WORK/fw.bin" 262144 1
cat >"$WORK/dl.sh" <<EOF
t0=\$(date +%s.%N)
dfu-util -S BBB222 -a 0 -s $BASE:leave -D "$WORK/fw.bin" || exit 1
t1=\$(date +%s.%N)
echo "elapsed \$t0 \$t1"
EOF
usim download "$A" "$B" -- bash "$WORK/dl.sh" || { cat "$U/out"; fail "dfu-util download failed"; }
grep -q "File downloaded successfully" "$U/out" || { cat "$U/out"; fail "dfu-util did not report success"; }
flash_check "$U/dump/b.bin" $BASE $BASE="$WORK/fw.bin" rest-erased
flash_check "$U/dump/a.bin" $BASE rest-erased
state_is "$U/dump/b.state" left=1 jump=0x08000000 unplugged=1 poll_violations=0 status=OK writes=128
state_is "$U/dump/a.state" left=0 writes=0 erases=0 unplugged=0
ev_expect "$U/events.log" "b claim interface 0" "b alt 0" "b erase page 0x08000000" "b erase page 0x08004000" \
  "b erase page 0x08010000" "b erase page 0x08020000" "b set address 0x08000000" \
  "b dnload block 2 len 2048 at 0x08000000" "b set address 0x08000800" "b dnload block 2 len 2048 at 0x0803f800" \
  "b set address 0x08000000" "b manifest" "b leave -> jump 0x08000000" "b unplug /dev/bus/usb/001/003 (left DFU mode)"
ev_absent "$U/events.log" " a erase"
ev_absent "$U/events.log" " a dnload"
ev_absent "$U/events.log" "stall"
read -r _ t0 t1 < <(grep '^elapsed' "$U/out")
python3 - "$U/events.log" "$t0" "$t1" <<'PY'
import sys
ev = [l.split(" ", 2) for l in open(sys.argv[1]).read().splitlines()]
first = next(int(t) for t, d, e in ev if e.startswith("erase page"))
last = next(int(t) for t, d, e in ev if e.startswith("leave"))
wall = float(sys.argv[3]) - float(sys.argv[2])
print("figure: dfu-util 0.11 DfuSe download of 256 KiB (2048-byte transfers, poll 1 ms, erase poll 5 ms): "
      "%.2f s wall (%.0f KiB/s); first erase to leave %d ms (%.0f KiB/s)"
      % (wall, 256 / wall, last - first, 256 * 1000 / max(last - first, 1)))
PY

# --- 3. download without leave, then upload in the same session ------------
cat >"$WORK/up.sh" <<EOF
dfu-util -S AAA111 -a 0 -s $BASE -D "$WORK/fw.bin" || exit 1
rm -f "$WORK/up.bin"
dfu-util -S AAA111 -a 0 -s $BASE:262144 -U "$WORK/up.bin" || exit 2
EOF
usim upload "$A" "$B" -- bash "$WORK/up.sh" || { cat "$U/out"; fail "dfu-util download+upload failed"; }
cmp "$WORK/up.bin" "$WORK/fw.bin" || fail "uploaded bytes differ from the downloaded file"
flash_check "$U/dump/a.bin" $BASE $BASE="$WORK/fw.bin" rest-erased
flash_check "$U/dump/b.bin" $BASE rest-erased
state_is "$U/dump/a.state" left=0 unplugged=0 uploads=128 poll_violations=0
ev_expect "$U/events.log" "a dnload block 2 len 2048 at 0x0803f800" "a set address 0x08000000" "a ABORT" \
  "a upload block 2 len 2048 at 0x08000000" "a upload block 129 len 2048 at 0x0803f800"
ev_absent "$U/events.log" "leave"

# --- 4. a DfuSe .dfu file with two elements (one not page aligned) ---------
rand_file "$WORK/e1.bin" 40960 2
rand_file "$WORK/e2.bin" 10000 3
dfu_files dfuse "$WORK/fw.dfu" 0483 DF11 0x08000000="$WORK/e1.bin" 0x08020000="$WORK/e2.bin"
usim dfuse_file "$A" -- dfu-util -S AAA111 -a 0 -s :leave -D "$WORK/fw.dfu" ||
  { cat "$U/out"; fail "dfu-util .dfu download failed"; }
grep -q "Invalid DFU suffix" "$U/out" && { cat "$U/out"; fail "dfu-util rejected the suffix"; }
# element 2 is padded to 8 bytes with 0xFF (as dfu.py does): the pad is erased flash
flash_check "$U/dump/a.bin" $BASE 0x08000000="$WORK/e1.bin" 0x08020000="$WORK/e2.bin" rest-erased
ev_expect "$U/events.log" "a erase page 0x08000000" "a erase page 0x08008000" "a dnload block 2 len 2048 at 0x08009800" \
  "a erase page 0x08020000" "a dnload block 2 len 1808 at 0x08022000" "a manifest" "a leave"

# --- 5. plain DFU 1.1 with a suffix: the suffix is not sent ----------------
rand_file "$WORK/p.bin" 40000 4
dfu_files suffix "$WORK/p.dfu" 1209 2003 "$WORK/p.bin"
usim plain "p=dfu:serial=PLAIN1,size=64K,transfer=1024" -- dfu-util -S PLAIN1 -a 0 -D "$WORK/p.dfu" ||
  { cat "$U/out"; fail "dfu-util plain DFU download failed"; }
flash_check "$U/dump/p.bin" 0 0="$WORK/p.bin" rest-erased
state_is "$U/dump/p.state" state=dfuIDLE status=OK left=0 poll_violations=0
ev_expect "$U/events.log" "p erase all" "p dnload block 0 len 1024 at 0x00000000" \
  "p dnload block 39 len 64 at 0x00009c00" "p manifest" "p manifest done"

# --- 6. STM32L4: GETSTATUS stalls while an erase runs; dfu-util retries ----
usim l4 "a=dfuse:serial=L4,erase_poll=20,fault=stall-erase" -- dfu-util -S L4 -a 0 -s $BASE -D "$WORK/e1.bin" ||
  { cat "$U/out"; fail "dfu-util did not ride over the STM32L4 erase stalls"; }
flash_check "$U/dump/a.bin" $BASE $BASE="$WORK/e1.bin" rest-erased
ev_expect "$U/events.log" "a erase page 0x08000000" "a stall (fault: GETSTATUS during erase)" "a erase page 0x08004000"

# --- 7. the device vanishes mid-download: dfu-util fails, usbsim unplugs ---
if usim gone "a=dfuse:serial=G1,fault=gone@60" -- dfu-util -S G1 -a 0 -s $BASE -D "$WORK/e1.bin"; then
  cat "$U/out"; fail "dfu-util succeeded on a device that vanished"
fi
state_is "$U/dump/a.state" gone=1 unplugged=1
ev_expect "$U/events.log" "a device gone (fault, request 61)" "a unplug /dev/bus/usb/001/002 (gone (fault))"
grep -qi "LIBUSB_ERROR_NO_DEVICE\|No such device\|Error during" "$U/out" || { cat "$U/out"; fail "dfu-util did not see the unplug"; }

# --- 8./9. faults as the real libusb sees them ----------------------------
# probe.py MODE: four GETSTATUS on the simulated 0483:DF11 with a 300 ms
# timeout; "gone" also watches libusb hotplug events until the device leaves.
cat >"$WORK/probe.py" <<'PY'
import ctypes, sys, time
usb = ctypes.CDLL("libusb-1.0.so.0")
ctx = ctypes.c_void_p()
assert usb.libusb_init(ctypes.byref(ctx)) == 0
events = []
CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)
cb = CB(lambda c, dev, ev, ud: events.append(ev) or 0)
if sys.argv[1] == "gone":
    usb.libusb_hotplug_register_callback.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 5 + [
        CB, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
    h = ctypes.c_int()
    assert usb.libusb_hotplug_register_callback(ctx, 3, 1, 0x0483, 0xdf11, -1, cb, None, ctypes.byref(h)) == 0
usb.libusb_open_device_with_vid_pid.restype = ctypes.c_void_p
dh = usb.libusb_open_device_with_vid_pid(ctx, 0x0483, 0xdf11)
assert dh, "cannot open the simulated device"
usb.libusb_control_transfer.argtypes = [ctypes.c_void_p, ctypes.c_uint8, ctypes.c_uint8, ctypes.c_uint16,
                                        ctypes.c_uint16, ctypes.c_char_p, ctypes.c_uint16, ctypes.c_uint]
buf = ctypes.create_string_buffer(6)
rcs = [usb.libusb_control_transfer(dh, 0xA1, 3, 0, 0, buf, 6, 300) for _ in range(4)]
tv = (ctypes.c_long * 2)(0, 100000)
t0 = time.time()
while sys.argv[1] == "gone" and 2 not in events and time.time() - t0 < 5:
    usb.libusb_handle_events_timeout_completed(ctx, tv, None)
print("GETSTATUS results", rcs, "hotplug events", events)
want = {"gone": ([6, 6, 6, -4], [1, 2]),      # NO_DEVICE; ARRIVED (enumerated), LEFT
        "hang": ([-9, 6, -7, -7], [])}        # PIPE, ok, TIMEOUT, TIMEOUT
sys.exit(0 if (rcs, events) == want[sys.argv[1]] else 1)
PY
usim hotplug "a=dfuse:fault=gone@3" -- python3 "$WORK/probe.py" gone ||
  { cat "$U/out"; fail "libusb did not see the unplug as NO_DEVICE and a hotplug LEFT event"; }
ev_expect "$U/events.log" "a device gone (fault, request 4)" "a uevent remove sent to 1 listener(s)" "a unplug"
usim hang "a=dfuse:fault=stall@1+hang@3" -- python3 "$WORK/probe.py" hang ||
  { cat "$U/out"; fail "libusb did not see a STALL then timeouts"; }
ev_expect "$U/events.log" "a stall (fault, request 1)" "a hang (fault, request 3 never completes)" \
  "a urb discarded by the host (timeout)" "a urb discarded by the host (timeout)"
state_is "$U/dump/a.state" hung=1 stalls=1

echo "PASS: sim.usb_dfu_util"
