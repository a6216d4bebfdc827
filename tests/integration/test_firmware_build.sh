#!/usr/bin/env bash
# Firmware built from a git checkout (libgit2 mirror, checkout, submodule)
# with the port's make, once per target, cached; then flashed to emulated
# micro:bits that must boot it (its version string carries the commit's
# VERSION file) and pass the smoke suite.
source "$(dirname "$0")/lib.sh" "$@"
need_microbit
need git make
source "$HERE/fwrepo.sh"

fwrepo_make "$WORK/src"
MP=$WORK/src/micropython
export MPFARM_TEST_BUILDS=$WORK/builds.log
: >"$MPFARM_TEST_BUILDS"

cat >"$WORK/inv.yaml" <<EOF
farm: firmware-build
boards:
  - &mb
    id: mb-1
    port: nrf
    board: MICROBIT
    mcu: nrf51
    emulator: {kind: qemu, machine: microbit, blank: true}
    flash: {method: gdb}
  - {<<: *mb, id: mb-2}
  - {<<: *mb, id: mb-3}
  - {<<: *mb, id: mb-broken, board: BROKEN}
  - {<<: *mb, id: mb-slow, board: SLOW}
  - {<<: *mb, id: mb-lost, board: LOST}
firmware:
  - match: {port: nrf}
    build: {repo: $MP, ref: master}
  - boards: [mb-lost]
    build: {repo: $WORK/src/no-such-repo, ref: master}
EOF
fw() { run_expect "$1" firmware -i "$WORK/inv.yaml" "${@:2}"; }
builds() { grep -c "^$1 " "$MPFARM_TEST_BUILDS" || true; }

echo "== three boards of one target: one build; a broken board fails alone"
fw 1 --boards mb-1,mb-2,mb-3,mb-broken --build-jobs 2
[ "$(builds MICROBIT)" = 1 ] || fail "expected one MICROBIT build: $(cat "$MPFARM_TEST_BUILDS")"
[ "$(grep -c '^mpy-cross' "$MPFARM_TEST_BUILDS")" = 1 ] || fail "mpy-cross not built once"
grep -q "mb-2 .*build  built" "$WORK/out.txt" || fail "mb-2 not built: $(cat "$WORK/out.txt")"
grep -q "mb-broken .*FAILED" "$WORK/out.txt" || fail "mb-broken did not fail"
grep -q "error: 'MICROPY_HW_LED' undeclared" "$WORK/out.txt" || fail "the build error line is not shown"
CO=$(find "$XDG_CACHE_HOME"/mpfarm/src -mindepth 1 -maxdepth 1 -type d -name 'micropython-*' | head -1)
[ -f "$CO/lib/nrfx/nrfx.h" ] || fail "submodule lib/nrfx not checked out in $CO"
[ -z "$(git -C "$CO" status --porcelain --untracked-files=no)" ] || fail "checkout not clean"
ls "$XDG_CACHE_HOME"/mpfarm/git/ | grep -q '^nrfx-.*\.git$' || fail "the submodule has no mirror of its own"

echo "== the same targets again: nothing downloaded, nothing built"
fw 1 --boards mb-1,mb-2,mb-3,mb-broken
[ "$(builds MICROBIT)" = 1 ] || fail "rebuilt a cached target"
grep -q "0 builds, 3 boards from the cache" "$WORK/out.txt" || fail "not from the cache: $(cat "$WORK/out.txt")"
grep -q "mirror up to date" "$WORK/out.txt" || fail "the mirror fetch received objects"

echo "== a new commit on the branch: one rebuild"
fwrepo_commit "$MP" 00000b222
fw 0 --boards mb-1,mb-2
[ "$(builds MICROBIT)" = 2 ] || fail "no rebuild after a new commit"
grep -q "^MICROBIT 00000b222" "$MPFARM_TEST_BUILDS" || fail "the new commit was not built"

echo "== --ref: a tag (cached: same commit as before), a PR head, a branch (same commit)"
fw 0 --boards mb-1 --ref v1.0
[ "$(builds MICROBIT)" = 2 ] || fail "the tag of a cached commit was rebuilt"
fw 0 --boards mb-1 --ref pull/7/head
grep -q "^MICROBIT 0000000f1" "$MPFARM_TEST_BUILDS" || fail "pull/7/head not built"
fw 0 --boards mb-1 --ref feature
[ "$(builds MICROBIT)" = 3 ] || fail "feature (= pull/7/head) rebuilt"

echo "== an unknown ref and an unknown repository are clear errors for their boards"
fw 1 --boards mb-1 --ref no-such-branch
grep -q "no-such-branch" "$WORK/out.txt" || fail "unknown ref not named: $(cat "$WORK/out.txt")"
fw 1 --boards mb-lost,mb-1
grep -q "mb-lost .*FAILED" "$WORK/out.txt" || fail "unknown repository not reported"
grep -q "no-such-repo" "$WORK/out.txt" || fail "unknown repository not named"
grep -q "mb-1 .*build  cached" "$WORK/out.txt" || fail "mb-1 did not carry on"

echo "== a build past its deadline is stopped"
fw 1 --boards mb-slow --timeout 2
grep -q "timed out after" "$WORK/out.txt" || fail "slow build not stopped: $(cat "$WORK/out.txt")"
pgrep -f "sleep 60" >/dev/null && pkill -f "sleep 60" && fail "the slow build's sleep outlived it"

echo "== two mpfarm processes at once on a new commit: one build"
fwrepo_commit "$MP" 00000c333
run_bg() { "$MPFARM" firmware -i "$WORK/inv.yaml" --boards "$1" >"$WORK/par-$1.txt" 2>&1; }
run_bg mb-1 & p1=$!
run_bg mb-2 & p2=$!
wait $p1 || fail "first parallel run failed: $(cat "$WORK/par-mb-1.txt")"
wait $p2 || fail "second parallel run failed: $(cat "$WORK/par-mb-2.txt")"
[ "$(grep -c '^MICROBIT 00000c333' "$MPFARM_TEST_BUILDS")" = 1 ] ||
  fail "two processes built the same target: $(cat "$MPFARM_TEST_BUILDS")"

echo "== mpfarm run: build, flash, boot the built image, smoke tests; the broken board is skipped"
fwrepo_commit "$MP" 00000d444
run_expect 1 run -i "$WORK/inv.yaml" -s "$SRC/suites/smoke.yaml" -o "$WORK/report" \
  --boards mb-1,mb-2,mb-3,mb-broken --build-jobs 2
[ "$(grep -c '^MICROBIT 00000d444' "$MPFARM_TEST_BUILDS")" = 1 ] || fail "run did not build once"
R=$WORK/report/junit.xml
python3 "$HERE/check_junit.py" "$R" \
  --expect mb-1:firmware:build:pass --expect mb-2:firmware:build:pass \
  --expect mb-broken:firmware:build:fail --expect mb-broken:smoke:arithmetic:skip \
  --expect mb-3:smoke:arithmetic:pass
grep -q 'v1.9.2-34-g00000d444' "$R" || fail "the boards do not report the built version"
grep -q '<property name="commit" value="[0-9a-f]\{40\}"/>' "$R" || fail "no commit property"
grep -q '<property name="sha256" value="[0-9a-f]\{64\}"/>' "$R" || fail "no sha256 property"
grep -q "skipped message=\"no firmware: build failed" "$R" || fail "skip reason missing"

echo "== cache list and prune"
run_expect 0 cache list
grep -q "build .* ihex .*micropython @" "$WORK/out.txt" || fail "cache list: $(cat "$WORK/out.txt")"
n_before=$(ls "$XDG_CACHE_HOME"/mpfarm/images | wc -l)
[ "$n_before" -ge 4 ] || fail "expected at least 4 cached images, have $n_before"
run_expect 0 cache prune --keep-days 1
grep -q "0 entries, 0 images" "$WORK/out.txt" || fail "prune removed fresh entries: $(cat "$WORK/out.txt")"
touch -d "3 days ago" "$XDG_CACHE_HOME"/mpfarm/index/* "$XDG_CACHE_HOME"/mpfarm/src/*
run_expect 0 cache prune --keep-days 2
[ -z "$(ls "$XDG_CACHE_HOME"/mpfarm/images)" ] || fail "prune left images behind"
[ -z "$(find "$XDG_CACHE_HOME"/mpfarm/src -mindepth 1 -maxdepth 1 -type d)" ] || fail "prune left checkouts"
ls "$XDG_CACHE_HOME"/mpfarm/git/ | grep -q '^micropython-' || fail "prune removed the mirror"
echo "PASS"
