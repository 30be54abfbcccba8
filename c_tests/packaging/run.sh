#!/usr/bin/env bash
# `make test-packaging`: xent as each ecosystem takes it, from this checkout.
#   1. the static archive defines no global symbol but xent_*: a program's own
#      fmaf/fmod and libm's stay its own, and a second Rust static library
#      links beside it;
#   2. CMake: add_subdirectory and FetchContent build it with cargo into the
#      consumer's build tree (shared and static targets);
#   3. CARGO_TARGET_DIR: `make demo` and the Python loader use it;
#   4. pip: a wheel (tagged py3-none-<platform>) installed in a new venv,
#      imported from another directory;
#   5. a Rust program depending on xent by path builds neither cbindgen nor
#      the C libraries;
#   6. LuaJIT's FFI on the preprocessed header.
# A missing cmake, python3-venv or luajit skips its part, saying so (CI
# installs them all). Expects `make build` to have run (the Makefile does).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
release=$target_dir/release
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say() { echo "test-packaging: $*"; }
fail() { echo "test-packaging: FAILED: $*" >&2; exit 1; }
t0=$SECONDS
lap() { say "$1 ($((SECONDS - t0)) s)"; t0=$SECONDS; }

# 1. The static archive.
lib=$release/libxent.a
others=$(nm -g --defined-only "$lib" | awk 'NF == 3 && $3 !~ /^xent_/ {print $2, $3}')
[ -z "$others" ] || fail "$lib defines global symbols other than xent_*: $(echo "$others" | head -20)"
nm -g --defined-only "$lib" | awk 'NF == 3 {print $3}' | sort >"$tmp/clean.syms"
nm -g --defined-only "$release/deps/libxent.a" 2>/dev/null | awk 'NF == 3 && $3 ~ /^xent_/ {print $3}' | sort -u >"$tmp/raw.syms"
cmp -s "$tmp/clean.syms" "$tmp/raw.syms" || fail "the clean archive's xent_* functions differ from cargo's: $(diff "$tmp/raw.syms" "$tmp/clean.syms")"
cc_c() { cc -std=c11 -Wall -Wextra -Werror -O2 -I include "$@"; }
static_deps=(-lgcc_s -lutil -lrt -lpthread -lm -ldl)
# -fno-builtin: the calls must be calls, for the linker to bind.
cc_c -fno-builtin c_tests/packaging/own_libm.c "$lib" "${static_deps[@]}" -o "$tmp/own_libm"
"$tmp/own_libm"
cat >"$tmp/libm_user.c" <<'EOF'
#include <math.h>
#include <stdio.h>
#include "xent.h"
int main(void) {
    volatile float a = 2.0f, b = 3.0f, c = 1.0f;
    const float z[3] = {0.0f, 0.0f, 0.0f};
    const int32_t y[1] = {0};
    float loss = 0.0f;
    if (xent_forward(z, 1, 3, 3, y, NULL, &loss, NULL, NULL) != XENT_STATUS_OK) return 1;
    printf("%g %g\n", (double)fmaf(a, b, c), (double)loss);
    return 0;
}
EOF
cc_c -fno-builtin "$tmp/libm_user.c" "$lib" "${static_deps[@]}" -Wl,--trace-symbol=fmaf -o "$tmp/libm_user" 2>"$tmp/trace"
grep -q "libm.*: definition of fmaf" "$tmp/trace" ||
  fail "a program's fmaf did not bind to libm's: $(grep fmaf "$tmp/trace")"
"$tmp/libm_user" >/dev/null
# Another vendor's Rust static library (its own std); Rust static libraries
# are linked with --gc-sections (rustc does so itself).
rustc --edition 2024 --crate-type staticlib -O -o "$tmp/libother_rust.a" c_tests/packaging/other_rust.rs
cc_c c_tests/packaging/two_rust.c "$lib" "$tmp/libother_rust.a" -Wl,--gc-sections "${static_deps[@]}" -o "$tmp/two_rust"
RUST_BACKTRACE=0 "$tmp/two_rust" 2>/dev/null
lap "static archive: only xent_* global ($(wc -l <"$tmp/clean.syms") functions), own fmaf/fmod, libm's fmaf, a second Rust library: ok"

# 2. CMake, building xent from source into the consumer's build tree.
cargo_dir=
if command -v cmake >/dev/null; then
  mkdir -p "$tmp/consumer"
  cp c_tests/packaging/cmake/CMakeLists.txt "$tmp/consumer/"
  cp c_tests/install/check.c "$tmp/consumer/app.c"
  cp c_tests/install/check.cpp "$tmp/consumer/app.cpp"
  build=$tmp/consumer/build
  cmake -S "$tmp/consumer" -B "$build" -DXENT_SOURCE_DIR="$root" >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; fail "cmake configure (add_subdirectory)"; }
  cmake --build "$build" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "cmake build (add_subdirectory)"; }
  cargo_dir=$build/xent/cargo
  [ -f "$cargo_dir/release/libxent.so" ] || fail "cargo did not build into the CMake build tree ($cargo_dir)"
  "$build/app_shared" && "$build/app_static"
  grep -q 'Shared library: \[libxent' <<<"$(readelf -d "$build/app_static")" && fail "app_static links libxent dynamically"
  # FetchContent, sharing the cargo tree just built (a fresh tree is the
  # add_subdirectory case above).
  cmake -S "$tmp/consumer" -B "$tmp/fc" -DXENT_VIA=fetchcontent -DFETCHCONTENT_SOURCE_DIR_XENT="$root" \
    -DXENT_CARGO_TARGET_DIR="$cargo_dir" >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; fail "cmake configure (FetchContent)"; }
  cmake --build "$tmp/fc" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "cmake build (FetchContent)"; }
  "$tmp/fc/app_shared" && "$tmp/fc/app_static"
  lap "CMake add_subdirectory and FetchContent: ok"
else
  say "cmake not found: SKIPPED the CMake consumer (apt-get install cmake)"
fi

# 3. CARGO_TARGET_DIR: another target directory (the CMake build's cargo
# tree when there is one, so nothing is built twice).
other=${cargo_dir:-$tmp/cargo-target}
touch "$tmp/marker"
CARGO_TARGET_DIR=$other make --no-print-directory demo >"$tmp/demo.log" 2>&1 || { cat "$tmp/demo.log"; fail "make demo with CARGO_TARGET_DIR"; }
[ "$other/release/train_digits" -nt "$tmp/marker" ] || fail "make demo did not build in \$CARGO_TARGET_DIR/release"
if [ -e "$release/train_digits" ] && [ "$release/train_digits" -nt "$tmp/marker" ]; then
  fail "make demo with CARGO_TARGET_DIR wrote $release"
fi
found=$(cd "$tmp" && CARGO_TARGET_DIR=$other PYTHONPATH=$root/python python3 -c 'import xent; print(xent.library_path)')
[ "$found" = "$other/release/libxent.so" ] || fail "the Python loader found $found, not \$CARGO_TARGET_DIR/release/libxent.so"
lap "CARGO_TARGET_DIR: make demo and the Python loader use it: ok"

# 4. pip: a wheel, installed into a new virtual environment.
if python3 -m venv "$tmp/venv" >/dev/null 2>&1; then
  # From a copy of the source files (tracked and new, not ignored), so that
  # setuptools' build/ and egg-info stay out of the checkout and a file the
  # build needs but git does not hold shows; cargo's tree is shared (only the
  # cdylib is compiled anew).
  mkdir -p "$tmp/src"
  git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
  done | tar -c --null -T - | tar -x -C "$tmp/src"
  (cd "$tmp/src" && CARGO_TARGET_DIR=$other "$tmp/venv/bin/pip" wheel --no-deps -q -w "$tmp/wheels" .) >"$tmp/pip.log" 2>&1 ||
    { cat "$tmp/pip.log"; fail "pip wheel ."; }
  wheel=$(ls "$tmp/wheels"/xent-*.whl)
  case $(basename "$wheel") in
    xent-*-py3-none-linux_$(uname -m).whl) ;;
    *) fail "the wheel's tag is not py3-none-linux_$(uname -m): $(basename "$wheel")" ;;
  esac
  "$tmp/venv/bin/pip" install -q "$wheel" >"$tmp/pip.log" 2>&1 || { cat "$tmp/pip.log"; fail "pip install the wheel"; }
  mkdir -p "$tmp/elsewhere"
  (cd "$tmp/elsewhere" && env -u XENT_LIBRARY -u CARGO_TARGET_DIR "$tmp/venv/bin/python" - <<'EOF'
import array, math, os, sys
import xent
here = os.path.dirname(xent.__file__)
assert xent.library_path == os.path.join(here, "libxent.so"), xent.library_path
assert sys.prefix in here, (sys.prefix, here)
z = array.array("f", [1, 2, 3, -1, 0.5, 4])
loss, grad = xent.cross_entropy_forward_backward(z, array.array("i", [2, 0]), classes=3)
lse = lambda r: max(r) + math.log(sum(math.exp(v - max(r)) for v in r))
want = ((lse([1, 2, 3]) - 3) + (lse([-1, 0.5, 4]) + 1)) / 2
assert abs(loss - want) < 1e-6, (loss, want)
print(f"test-packaging: pip-installed xent {xent.version()} from {here}: loss {loss:.6f}")
EOF
  ) || fail "import xent from the pip-installed wheel"
  lap "pip wheel + install into a new venv, import from elsewhere: ok ($(du -k "$wheel" | cut -f1) KiB wheel)"
else
  say "python3 -m venv failed: SKIPPED the pip install (apt-get install python3-venv)"
fi

# 5. A Rust program depending on xent by path.
# A copy outside the checkout, pointing at it, with xent's lock file.
dep=$tmp/rust_dependent_src
cp -r c_tests/packaging/rust_dependent "$dep"
sed -i "s|path = \"../../..\"|path = \"$root\"|" "$dep/Cargo.toml"
cp Cargo.lock "$dep/Cargo.lock"
# Its main is the README's Rust example, with a check of its result.
mkdir -p "$dep/src"
{
  echo 'fn main() -> Result<(), xent::loss::Error> {'
  awk '/^```rust$/ {on = 1; next} /^```$/ && on {exit} on' README.md
  echo '    assert!((loss[0] - 2.721_938).abs() < 1e-5, "loss {}", loss[0]);'
  echo '    assert!(grad[..3].iter().sum::<f32>().abs() < 1e-6);'
  echo '    println!("rust dependent (the README example): loss {:.6}", loss[0]);'
  echo '    Ok(())'
  echo '}'
} >"$dep/src/main.rs"
grep -q forward_backward "$dep/src/main.rs" || fail "no Rust example in README.md"
tree=$(cargo tree --manifest-path "$dep/Cargo.toml" -e normal,build --prefix none)
if grep -q cbindgen <<<"$tree"; then fail "a Rust dependent's tree holds cbindgen: $tree"; fi
dep_target=$tmp/rust_dependent
cargo run -q --manifest-path "$dep/Cargo.toml" --target-dir "$dep_target" >"$tmp/dep.out" || fail "the Rust dependent does not build or run"
cat "$tmp/dep.out"
if grep -q . <<<"$(find "$dep_target" -name 'libxent.so' -o -name 'libxent.a')"; then
  fail "building a Rust dependent made the C libraries: $(find "$dep_target" -name 'libxent.*')"
fi
lap "Rust path dependency: no cbindgen, no C libraries: ok"

# 6. LuaJIT's FFI.
if command -v luajit >/dev/null; then
  grep -v '^#include' include/xent.h | cc -E -P - >"$tmp/xent_cdef.h"
  luajit c_tests/packaging/xent.lua "$tmp/xent_cdef.h" "$release/libxent.so"
  lap "LuaJIT ffi.cdef: ok"
else
  say "luajit not found: SKIPPED the LuaJIT FFI test (apt-get install luajit)"
fi
say "ok"
