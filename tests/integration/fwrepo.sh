# Source repositories for the firmware build tests, made with the git CLI:
#   $1/nrfx         the submodule (a tag v2.0)
#   $1/micropython  ports/nrf/Makefile, mpy-cross/Makefile, tools/mkfw.py,
#                   VERSION, lib/nrfx as a submodule; branch master, tag v1.0,
#                   branch feature, a pull/7/head ref
# Sourced by test scripts (needs git). fwrepo_commit DIR VERSION adds a
# commit on master that changes VERSION.
fwrepo_git() {
  git -c user.name=mpfarm-test -c user.email=test@mpfarm.invalid -c init.defaultBranch=master \
      -c protocol.file.allow=always -c advice.detachedHead=false "$@"
}

fwrepo_make() {
  local root=$1 data=$SRC/tests/integration/data/fwrepo
  mkdir -p "$root/nrfx" "$root/micropython"
  (cd "$root/nrfx" && fwrepo_git init -q && echo '#define NRFX_VERSION 2' >nrfx.h &&
     fwrepo_git add nrfx.h && fwrepo_git commit -qm "nrfx 2.0" && fwrepo_git tag v2.0)
  (cd "$root/micropython" && fwrepo_git init -q &&
     cp -r "$data/ports" "$data/tools" "$data/mpy-cross" . &&
     echo 0000000a1 >VERSION &&
     fwrepo_git submodule add -q "$root/nrfx" lib/nrfx &&
     fwrepo_git add -A && fwrepo_git commit -qm "first" && fwrepo_git tag v1.0 &&
     fwrepo_git checkout -qb feature && echo 0000000f1 >VERSION &&
     fwrepo_git commit -qam "feature" &&
     fwrepo_git update-ref refs/pull/7/head HEAD &&
     fwrepo_git checkout -q master)
}

fwrepo_commit() {
  (cd "$1" && echo "$2" >VERSION && fwrepo_git commit -qam "version $2")
}
