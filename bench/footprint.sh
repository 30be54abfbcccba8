#!/usr/bin/env bash
# Footprint per target (BENCHMARKS.md section 9): libxent built in release
# without debug info, then
#  - the shared library stripped (strip -s), where the target has one;
#  - what the whole C API pulls out of the static library: rust-lld links it
#    with every xent_* function as a root and --gc-sections, so only code and
#    data reachable from the API count (core, libm and, with std, the parts of
#    libstd it uses); printed as the bytes of allocated sections (ELF) or the
#    module size (wasm), and the undefined symbols left for the C library.
# Needs the rustup targets it builds (missing ones are skipped, saying so).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin
lld=$bin/rust-lld
dir=target/footprint
mkdir -p "$dir"
mapfile -t api < <(grep -o 'xent_[a-z0-9_]*(' include/xent.h | tr -d '(' | sort -u)

# Bytes of SHF_ALLOC sections of an ELF file.
alloc_bytes() {
  python3 - "$1" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
is64 = d[4] == 2
end = '<' if d[5] == 1 else '>'
if is64:
    shoff, = struct.unpack_from(end + 'Q', d, 0x28); shentsize, shnum = struct.unpack_from(end + 'HH', d, 0x3A)
else:
    shoff, = struct.unpack_from(end + 'I', d, 0x20); shentsize, shnum = struct.unpack_from(end + 'HH', d, 0x2E)
total = 0
for i in range(shnum):
    o = shoff + i * shentsize
    if is64:
        _, typ, flags, _, _, size = struct.unpack_from(end + 'IIQQQQ', d, o)
    else:
        _, typ, flags, _, _, size = struct.unpack_from(end + 'IIIIII', d, o)
    if flags & 2 and typ != 8:  # SHF_ALLOC, not NOBITS (.bss takes no file bytes)
        total += size
print(total)
PY
}

echo "| target | build | shared library, stripped | whole C API linked from the static library | left undefined |"
echo "|---|---|---|---|---|"
row() { # target, label, strip tool or -, environment (VAR=value,...), cargo args...
  local target=$1 label=$2 strip=$3 vars=$4; shift 4
  if ! rustup target list --installed | grep -qx "$target"; then
    echo "| $target | $label | (target not installed) | | |"
    return
  fi
  local td=$dir/${label//[^a-z0-9_]/_}
  # shellcheck disable=SC2086
  env ${vars//,/ } CARGO_PROFILE_RELEASE_DEBUG=0 cargo rustc -q --release --lib --crate-type cdylib,staticlib --target "$target" --target-dir "$td" "$@" 2>/dev/null
  local out=$td/$target/release so="-"
  if [ "$strip" != - ] && [ -f "$out/libxent.so" ]; then
    "$strip" -s -o "$td.so" "$out/libxent.so"
    so="$(stat -c %s "$td.so") B"
  fi
  local roots=() linked undefined
  if [ "${target%%-*}" = wasm32 ]; then
    for f in "${api[@]}"; do roots+=("--export=$f"); done
    "$lld" -flavor wasm --gc-sections --no-entry --allow-undefined "${roots[@]}" -o "$td.wasm" "$out/libxent.a"
    linked="$(stat -c %s "$td.wasm") B (module)"
    undefined=$(python3 -c "
import sys
d=open(sys.argv[1],'rb').read(); i=8; names=[]
def leb(i):
    r=s=0
    while True:
        b=d[i]; i+=1; r|=(b&0x7f)<<s; s+=7
        if b<0x80: return r,i
while i<len(d):
    sid=d[i]; n,i=leb(i+1); body=i; i+=n
    if sid==2:
        c,j=leb(body)
        for _ in range(c):
            l,j=leb(j); j+=l; l,j=leb(j); names.append(d[j:j+l].decode()); j+=l
            k=d[j]; j+=1
            if k==0: _,j=leb(j)
            elif k==1: j+=1; f=d[j]; j+=1; _,j=leb(j); j=leb(j)[1] if f&1 else j
            elif k==2: f=d[j]; j+=1; _,j=leb(j); j=leb(j)[1] if f&1 else j
            else: j+=2
names=sorted(set(names))
print(len(names), 'imports' + (': ' + ' '.join(names) if len(names) <= 6 else ' (C library, pthreads)'))
" "$td.wasm")
  else
    for f in "${api[@]}"; do roots+=("-u" "$f"); done
    "$lld" -flavor gnu --gc-sections --unresolved-symbols=ignore-all -e 0 "${roots[@]}" -o "$td.elf" "$out/libxent.a"
    linked="$(alloc_bytes "$td.elf") B"
    undefined=$(nm -u "$td.elf" 2>/dev/null | awk '{print $2}' | sed 's/@.*//' | sort -u | tr '\n' ' ')
    local n
    n=$(echo "$undefined" | wc -w)
    if [ "$n" -le 6 ]; then undefined="$n: $undefined"; else undefined="$n (C library, unwinder, pthreads)"; fi
  fi
  echo "| $target | $label | $so | $linked | $undefined |"
}
nostd=(--no-default-features --features panic-handler)
row x86_64-unknown-linux-gnu std strip XENT_FOOTPRINT=1
row x86_64-unknown-linux-gnu no_std - CARGO_PROFILE_RELEASE_PANIC=abort "${nostd[@]}"
row aarch64-unknown-linux-gnu std aarch64-linux-gnu-strip CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
row wasm32-wasip1 std+simd128 - RUSTFLAGS=-Ctarget-feature=+simd128
row thumbv7em-none-eabihf no_std - CARGO_PROFILE_RELEASE_PANIC=abort "${nostd[@]}"
row thumbv7em-none-eabihf no_std,opt-level=s - CARGO_PROFILE_RELEASE_PANIC=abort,CARGO_PROFILE_RELEASE_OPT_LEVEL=s "${nostd[@]}"
