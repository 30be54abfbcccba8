#!/usr/bin/env bash
# Part of `make test-windows`: `make install-windows` into a temporary prefix,
# then C programs built with MinGW through pkg-config (the DLL's import
# library, and the static library) and C++ programs built by CMake
# cross-compiling for Windows (the installed CMake package, and pkg-config
# from CMake), all run under Wine with only the prefix's bin/ on the path;
# then a CMake project that adds the source tree (add_subdirectory) while
# cross-compiling, with XENT_CARGO_TARGET (cargo's tree shared with
# build-windows: $2).
set -euo pipefail
cd "$(dirname "$0")/../.."
stub=$1
cargo_dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
make --no-print-directory install-windows PREFIX="$prefix" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
for f in bin/xent.dll lib/libxent.dll.a lib/libxent.a include/xent.h lib/pkgconfig/xent.pc \
         lib/cmake/xent/xentConfig.cmake lib/cmake/xent/xentConfigVersion.cmake; do
  [ -e "$prefix/$f" ] || { echo "install-windows: $f was not installed"; exit 1; }
done
if grep -q '\.debug_' <<<"$(x86_64-w64-mingw32-objdump -h "$prefix/bin/xent.dll")"; then
  echo "install-windows: xent.dll is not stripped"; exit 1
fi
run() { WINEDEBUG=-all WINEPATH="$stub;$prefix/bin" wine "$@"; }
uses_dll() { grep -q 'DLL Name: xent.dll' <<<"$(x86_64-w64-mingw32-objdump -p "$1")"; }

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cc=x86_64-w64-mingw32-gcc
# shellcheck disable=SC2046
$cc -std=c11 -Wall -Wextra -Werror c_tests/install/check.c $(pkg-config --cflags --libs xent) -o "$tmp/check_dll.exe"
uses_dll "$tmp/check_dll.exe" || { echo "install-windows: check_dll.exe does not import xent.dll"; exit 1; }
run "$tmp/check_dll.exe"
static_libs=$(pkg-config --static --libs-only-l xent | sed 's/-lxent //')
# shellcheck disable=SC2046,SC2086
$cc -std=c11 -Wall -Wextra -Werror c_tests/install/check.c $(pkg-config --cflags xent) "$prefix/lib/libxent.a" $static_libs -o "$tmp/check_static.exe"
if uses_dll "$tmp/check_static.exe"; then echo "install-windows: check_static.exe imports xent.dll"; exit 1; fi
run "$tmp/check_static.exe"

if command -v cmake >/dev/null; then
  cmake -S c_tests/install -B "$tmp/build" -DCMAKE_SYSTEM_NAME=Windows \
    -DCMAKE_C_COMPILER=x86_64-w64-mingw32-gcc -DCMAKE_CXX_COMPILER=x86_64-w64-mingw32-g++ \
    -DCMAKE_EXE_LINKER_FLAGS="-static-libgcc -static-libstdc++" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; exit 1; }
  cmake --build "$tmp/build" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
  uses_dll "$tmp/build/check_cmake.exe" || { echo "install-windows: check_cmake.exe does not import xent.dll"; exit 1; }
  for p in check_cmake check_cmake_static check_pkgconfig; do
    run "$tmp/build/$p.exe"
  done
  mkdir -p "$tmp/consumer"
  cp c_tests/packaging/cmake/CMakeLists.txt "$tmp/consumer/"
  cp c_tests/install/check.c "$tmp/consumer/app.c"
  cp c_tests/install/check.cpp "$tmp/consumer/app.cpp"
  cmake -S "$tmp/consumer" -B "$tmp/consumer/build" -DCMAKE_SYSTEM_NAME=Windows \
    -DCMAKE_C_COMPILER=x86_64-w64-mingw32-gcc -DCMAKE_CXX_COMPILER=x86_64-w64-mingw32-g++ \
    -DCMAKE_EXE_LINKER_FLAGS="-static-libgcc -static-libstdc++" -DXENT_SOURCE_DIR="$PWD" \
    -DXENT_CARGO_TARGET=x86_64-pc-windows-gnu -DXENT_CARGO_TARGET_DIR="$cargo_dir" >"$tmp/cmake.log" 2>&1 ||
    { cat "$tmp/cmake.log"; exit 1; }
  cmake --build "$tmp/consumer/build" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
  uses_dll "$tmp/consumer/build/app_shared.exe" || { echo "add_subdirectory: app_shared.exe does not import xent.dll"; exit 1; }
  WINEDEBUG=-all WINEPATH="$stub;$tmp/consumer/build/xent/lib" wine "$tmp/consumer/build/app_shared.exe"
  if uses_dll "$tmp/consumer/build/app_static.exe"; then echo "add_subdirectory: app_static.exe imports xent.dll"; exit 1; fi
  run "$tmp/consumer/build/app_static.exe"
else
  echo "install-windows: cmake not found, skipping the CMake builds (apt-get install cmake)"
fi
echo "install-windows: ok"
