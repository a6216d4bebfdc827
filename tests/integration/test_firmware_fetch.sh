#!/usr/bin/env bash
# Firmware downloaded over HTTP from a local server (tests/tools/httpd.py on
# 127.0.0.1) and file://, checksum-verified, format-checked, cached: good and
# bad checksums, a 404, a server too slow for the timeout, a truncated body
# resumed, a file that is not an image; a second run sends no request; then
# a run flashes the fetched image and the board must report its version.
source "$(dirname "$0")/lib.sh" "$@"
need_microbit

WWW=$WORK/www
mkdir -p "$WWW"
python3 "$SRC/tests/integration/data/fwrepo/tools/mkfw.py" \
  /usr/share/firmware-microbit-micropython/firmware.hex "$WWW/MICROBIT.hex" 00000fe7c >/dev/null
echo "not firmware" >"$WWW/notes.txt"
GOOD=$(sha256sum "$WWW/MICROBIT.hex" | cut -d' ' -f1)
BAD=$(printf '0%.0s' $(seq 64))

python3 "$SRC/tests/tools/httpd.py" --root "$WWW" --port-file "$WORK/port" --log "$WORK/requests.log" \
  --max-seconds 600 --slow-delay 0.5 --slow-chunk 64 &
HTTPD=$!
trap 'kill $HTTPD 2>/dev/null; lib_cleanup' EXIT
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.05; done
PORT=$(cat "$WORK/port")
U=http://127.0.0.1:$PORT

cat >"$WORK/inv.yaml" <<EOF
farm: firmware-fetch
boards:
  - &mb
    id: mb-1
    port: nrf
    board: MICROBIT
    mcu: nrf51
    emulator: {kind: qemu, machine: microbit, blank: true}
    flash: {method: gdb}
  - {<<: *mb, id: mb-2}
  - {<<: *mb, id: mb-bad}
  - {<<: *mb, id: mb-404, board: NOPE}
  - {<<: *mb, id: mb-slow}
  - {<<: *mb, id: mb-trunc}
  - {<<: *mb, id: mb-file}
  - {<<: *mb, id: mb-text}
firmware:
  - boards: [mb-1, mb-2, mb-404]
    fetch: {url: "$U/{board}.hex", sha256: $GOOD}
  - boards: [mb-bad]
    fetch: {url: "$U/MICROBIT.hex", sha256: $BAD, retries: 0}
  - boards: [mb-slow]
    fetch: {url: "$U/slow/MICROBIT.hex", sha256: $GOOD, timeout: 1, retries: 1}
  - boards: [mb-trunc]
    fetch: {url: "$U/truncate/MICROBIT.hex", sha256: $GOOD}
  - boards: [mb-file]
    fetch: {url: "file://$WWW/MICROBIT.hex", sha256: $GOOD}
  - boards: [mb-text]
    fetch: {url: "$U/notes.txt", sha256_waived: true}
EOF
fw() { run_expect "$1" firmware -i "$WORK/inv.yaml" "${@:2}"; }
requests() { grep -c "$1" "$WORK/requests.log" || true; }

echo "== good checksum: two boards, one download; a truncated body resumed; file://"
fw 0 --boards mb-1,mb-2,mb-trunc,mb-file
[ "$(requests '^GET /MICROBIT.hex ')" = 1 ] || fail "expected one download: $(cat "$WORK/requests.log")"
[ "$(requests '^GET /truncate/MICROBIT.hex - 200')" = 1 ] || fail "no truncated first answer"
grep -q '^GET /truncate/MICROBIT.hex bytes=[1-9][0-9]*- 206' "$WORK/requests.log" ||
  fail "the truncated download was not resumed with a Range request: $(cat "$WORK/requests.log")"
grep -q "mb-trunc .*fetched" "$WORK/out.txt" || fail "mb-trunc not fetched: $(cat "$WORK/out.txt")"
for f in "$XDG_CACHE_HOME"/mpfarm/images/*; do
  [ "$(sha256sum "$f" | cut -d' ' -f1).ihex" = "$(basename "$f")" ] || fail "cache file $f is not its sha256"
done

echo "== the same boards again: no request at all"
n=$(wc -l <"$WORK/requests.log")
fw 0 --boards mb-1,mb-2,mb-trunc,mb-file
[ "$(wc -l <"$WORK/requests.log")" = "$n" ] || fail "a cached run sent requests: $(tail -3 "$WORK/requests.log")"
grep -q "0 downloads, 0 builds, 4 boards from the cache" "$WORK/out.txt" || fail "not cached: $(cat "$WORK/out.txt")"

echo "== bad checksum, 404, not an image: failures of those boards only"
fw 1 --boards mb-bad,mb-1
grep -q "mb-bad .*FAILED" "$WORK/out.txt" || fail "bad checksum accepted: $(cat "$WORK/out.txt")"
grep -q "$GOOD" "$WORK/out.txt" || fail "the checksum message does not give the file's sha256"
grep -q "mb-1 .*cached" "$WORK/out.txt" || fail "mb-1 did not carry on"
fw 1 --boards mb-404
grep -q "404" "$WORK/out.txt" || fail "404 not reported: $(cat "$WORK/out.txt")"
[ "$(requests '^GET /NOPE.hex')" = 1 ] || fail "a 404 was retried"
fw 1 --boards mb-text
grep -q "not a usable image" "$WORK/out.txt" || fail "a text file was accepted: $(cat "$WORK/out.txt")"

echo "== a server too slow for the timeout: an infrastructure error, bounded attempts"
fw 3 --boards mb-slow
grep -qi "timed out\|timeout" "$WORK/out.txt" || fail "timeout not reported: $(cat "$WORK/out.txt")"
[ "$(requests '^GET /slow/MICROBIT.hex')" -le 2 ] || fail "more attempts than retries: 1 allows"

echo "== --offline: cached boards are fine, others fail without a request"
n=$(wc -l <"$WORK/requests.log")
fw 1 --boards mb-1,mb-bad --offline
grep -q "mb-bad .*FAILED" "$WORK/out.txt" && grep -q "offline forbids downloading" "$WORK/out.txt" || fail "offline download attempted: $(cat "$WORK/out.txt")"
[ "$(wc -l <"$WORK/requests.log")" = "$n" ] || fail "--offline sent requests"

echo "== mpfarm run flashes the fetched image; the board reports its version"
run_expect 0 run -i "$WORK/inv.yaml" -s "$SRC/suites/smoke.yaml" -o "$WORK/report" --boards mb-1
python3 "$HERE/check_junit.py" "$WORK/report/junit.xml" --expect mb-1:firmware:fetch:pass \
  --expect mb-1:smoke:arithmetic:pass
grep -q 'v1.9.2-34-g00000fe7c' "$WORK/report/junit.xml" || fail "the board does not run the fetched image"
grep -q "<property name=\"sha256\" value=\"$GOOD\"/>" "$WORK/report/junit.xml" || fail "sha256 property"
grep -q '<property name="cached" value="yes"/>' "$WORK/report/junit.xml" || fail "cached property"
no_leftover_qemu
echo "PASS"
