#!/usr/bin/env bash
# `make test-install`: installs xent into a temporary prefix, then builds and
# runs C programs against it with pkg-config (shared and static library) and
# C++ programs with CMake (the installed CMake package, and pkg-config from
# CMake). A missing pkg-config or cmake skips its part, saying so.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
lib="$prefix/lib"
make --no-print-directory install PREFIX="$prefix"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
soname="libxent.so.$(echo "$version" | cut -d. -f1-2)"
for f in include/xent.h lib/libxent.a lib/libxent.so "lib/$soname" "lib/libxent.so.$version" \
         lib/pkgconfig/xent.pc lib/cmake/xent/xentConfig.cmake lib/cmake/xent/xentConfigVersion.cmake; do
  [ -e "$prefix/$f" ] || { echo "test-install: $f was not installed"; exit 1; }
done
if ! grep -q "Library soname: \[$soname\]" <<<"$(readelf -d "$lib/libxent.so.$version")"; then
  echo "test-install: the installed library's soname is not $soname"; readelf -d "$lib/libxent.so.$version" | grep -i soname || true
  exit 1
fi

# Installed libraries carry no debug information (and the archive only the
# xent_* symbols as globals: c_tests/packaging/run.sh checks that).
for f in "$lib/libxent.so.$version" "$lib/libxent.a"; do
  if grep -q '\.debug_' <<<"$(readelf -S "$f")"; then echo "test-install: $f is not stripped"; exit 1; fi
done

# Checks that a program needs the installed soname (shared) or no libxent at all (static).
needs() { grep -q "Shared library: \[$2\]" <<<"$(readelf -d "$1")"; }

if command -v pkg-config >/dev/null; then
  export PKG_CONFIG_PATH="$lib/pkgconfig"
  [ "$(pkg-config --modversion xent)" = "$version" ] || { echo "test-install: pkg-config reports $(pkg-config --modversion xent)"; exit 1; }
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Wextra -Werror c_tests/install/check.c $(pkg-config --cflags --libs xent) -lm -o "$tmp/check_shared"
  needs "$tmp/check_shared" "$soname" || { echo "test-install: check_shared does not need $soname"; exit 1; }
  LD_LIBRARY_PATH="$lib" "$tmp/check_shared"
  # Static: the archive by name, then what pkg-config --static says it needs.
  static_libs=$(pkg-config --static --libs-only-l xent | sed 's/-lxent //')
  # shellcheck disable=SC2046,SC2086
  cc -std=c11 -Wall -Wextra -Werror c_tests/install/check.c $(pkg-config --cflags xent) -L"$lib" -l:libxent.a $static_libs -o "$tmp/check_static"
  if grep -q 'Shared library: \[libxent' <<<"$(readelf -d "$tmp/check_static")"; then
    echo "test-install: check_static links libxent dynamically"; exit 1
  fi
  "$tmp/check_static"
  # The README's two pkg-config lines, as a user would run them in $HOME/.local.
  cp c_tests/install/check.c "$tmp/app.c"
  grep -E "^cc app\.c .*pkg-config" README.md | sed -e 's/ *#.*$//' -e "s|\$HOME/.local|$prefix|g" >"$tmp/readme_cc.sh"
  [ "$(wc -l <"$tmp/readme_cc.sh")" -eq 2 ] || { echo "test-install: README.md should have two pkg-config cc lines"; exit 1; }
  while read -r line; do
    (cd "$tmp" && eval "$line" && LD_LIBRARY_PATH="$lib" ./app)
  done <"$tmp/readme_cc.sh"
else
  echo "test-install: pkg-config not found, skipping the pkg-config builds (apt-get install pkg-config)"
fi

if command -v cmake >/dev/null; then
  cmake -S c_tests/install -B "$tmp/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >"$tmp/cmake.log" 2>&1 \
    || { cat "$tmp/cmake.log"; exit 1; }
  cmake --build "$tmp/build" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
  needs "$tmp/build/check_cmake" "$soname" || { echo "test-install: check_cmake does not need $soname"; exit 1; }
  for p in check_cmake check_cmake_static check_pkgconfig; do
    LD_LIBRARY_PATH="$lib" "$tmp/build/$p"
  done
  # The README's CMake block, as a user would copy it.
  mkdir -p "$tmp/readme"
  # The README's cmake block that uses find_package.
  awk '/^```cmake$/ {on = 1; block = ""; next} /^```$/ && on {on = 0; if (block ~ /find_package/) {printf "%s", block; exit}} on {block = block $0 "\n"}' \
    README.md >"$tmp/readme/CMakeLists.txt"
  grep -q find_package "$tmp/readme/CMakeLists.txt" || { echo "test-install: no CMake block in README.md"; exit 1; }
  cp c_tests/install/check.cpp "$tmp/readme/app.cpp"
  cmake -S "$tmp/readme" -B "$tmp/readme/build" -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/cmake.log" 2>&1 \
    || { cat "$tmp/cmake.log"; exit 1; }
  cmake --build "$tmp/readme/build" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
  LD_LIBRARY_PATH="$lib" "$tmp/readme/build/app"
else
  echo "test-install: cmake not found, skipping the C++/CMake builds (apt-get install cmake)"
fi
# A moved prefix: pkg-config and CMake find everything relative to their files.
moved="$tmp/moved"
mv "$prefix" "$moved"
if command -v pkg-config >/dev/null; then
  PKG_CONFIG_PATH="$moved/lib/pkgconfig"
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Wextra -Werror c_tests/install/check.c $(PKG_CONFIG_PATH=$PKG_CONFIG_PATH pkg-config --cflags --libs xent) -lm -o "$tmp/check_moved"
  LD_LIBRARY_PATH="$moved/lib" "$tmp/check_moved"
fi
if command -v cmake >/dev/null; then
  rm -rf "$tmp/build"
  cmake -S c_tests/install -B "$tmp/build" -DCMAKE_PREFIX_PATH="$moved" >"$tmp/cmake.log" 2>&1 \
    || { cat "$tmp/cmake.log"; echo "test-install: CMake cannot use the moved prefix"; exit 1; }
  PKG_CONFIG_PATH="$moved/lib/pkgconfig" cmake --build "$tmp/build" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
  LD_LIBRARY_PATH="$moved/lib" "$tmp/build/check_cmake"
  LD_LIBRARY_PATH="$moved/lib" "$tmp/build/check_cmake_static"
fi
mv "$moved" "$prefix"

# Uninstall removes every file install put, and the directories it made.
make --no-print-directory uninstall PREFIX="$prefix"
left=$(find "$prefix" -mindepth 1 -not -type d)
[ -z "$left" ] || { echo "test-install: make uninstall left $left"; exit 1; }
echo "test-install: ok"
