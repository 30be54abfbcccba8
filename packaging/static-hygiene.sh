#!/bin/sh
# static-hygiene.sh IN.a OUT.a [--strip]: the static library as C programs
# should get it. Cargo's staticlib holds Rust's std, core and alloc, the
# compiler builtins and their copies of libm functions (fmaf, fmod, sqrt...),
# all global: a program's own fmaf could bind to xent's copy, and a second
# Rust static library clashes with it (rust_eh_personality). This makes one
# relocatable object of everything the xent_* functions reach (ld -r
# --gc-sections, rooted at them), makes every other symbol it defines local,
# drops the LLVM bitcode sections, and archives that object alone. With
# --strip, debug information and unneeded local symbols go too (what `make
# install` ships). The tools are binutils' (LD, OBJCOPY, NM, AR override).
set -eu
in=$1 out=$2 strip=${3:-}
LD=${LD:-ld} OBJCOPY=${OBJCOPY:-objcopy} NM=${NM:-nm} AR=${AR:-ar}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The roots: every xent_* function the archive defines.
"$NM" -g --defined-only "$in" 2>/dev/null | awk '$2 == "T" && $3 ~ /^xent_/ {print "-u", $3}' | sort -u >"$tmp/roots"
[ -s "$tmp/roots" ] || { echo "static-hygiene: $in defines no xent_* function" >&2; exit 1; }
# shellcheck disable=SC2046
"$LD" -r --force-group-allocation --gc-sections $(cat "$tmp/roots") --whole-archive "$in" -o "$tmp/xent.o"
set -- -w --keep-global-symbol='xent_*' --remove-section=.llvmbc --remove-section=.llvmcmd
if [ "$strip" = --strip ]; then set -- "$@" --strip-unneeded; fi
"$OBJCOPY" "$@" "$tmp/xent.o" "$tmp/xent_all.o"
rm -f "$tmp/out.a"
"$AR" rcs "$tmp/out.a" "$tmp/xent_all.o"
mv "$tmp/out.a" "$out"
