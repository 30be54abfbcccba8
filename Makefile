# xent: the two commands a fresh machine needs are `make demo` and `make test`.
CC ?= cc
CFLAGS_C = -std=c11 -Wall -Wextra -Wpedantic -Werror -O2 -I include
# Cargo's target directory: $CARGO_TARGET_DIR when set (relative to here, as
# cargo takes it), else target/.
TARGET_DIR := $(abspath $(or $(CARGO_TARGET_DIR),target))
RELEASE = $(TARGET_DIR)/release
HARNESS = $(TARGET_DIR)/tmp/harness_shared
SAN_HARNESS = $(TARGET_DIR)/tmp/harness_asan
# The C libraries: the crate's own type is rlib only (Cargo.toml says why).
CLIBS = cargo rustc --release --lib --crate-type cdylib,staticlib
# `make test` and `make lint` regenerate the header (build.rs with cbindgen).
HEADER = --features header

.PHONY: all build demo test uninstall build-windows test-windows install-windows test-packaging test-rust test-valgrind test-asan test-mpi test-install test-python install lint bench bench-linear bench-percall bench-compare clean fuzz miri test-cross isa-ratio-cross test-wasm build-embedded test-embedded test-targets footprint

all: build

# libxent.so and libxent.a in $(RELEASE). The archive is cargo's with every
# symbol but the xent_* functions made local (packaging/static-hygiene.sh):
# Rust's std, its libm copies and compiler builtins stay inside it. Cargo
# rewrites $(RELEASE)/libxent.a on each run, so this runs every time (0.5 s).
build:
	$(CLIBS)
	packaging/static-hygiene.sh $(RELEASE)/deps/libxent.a $(RELEASE)/libxent.a

# Build the library and header, compile the C examples against the shared
# library, and train on the bundled digits: softmax regression on logits the
# trainer computes, then a two-layer network whose head is the fused linear call.
demo: build
	$(CC) $(CFLAGS_C) examples/train_digits.c -L $(RELEASE) -lxent -lm -Wl,-rpath,$(RELEASE) -o $(RELEASE)/train_digits
	$(RELEASE)/train_digits examples/data/digits.csv
	$(CC) $(CFLAGS_C) examples/train_digits_mlp.c -L $(RELEASE) -lxent -lm -Wl,-rpath,$(RELEASE) -o $(RELEASE)/train_digits_mlp
	$(RELEASE)/train_digits_mlp examples/data/digits.csv

# Every test: the Rust suites (reference, golden, paths, threads, header,
# C harness against the shared and static library), then the C harness under
# valgrind (if installed) and under AddressSanitizer + UBSan, the MPI example,
# and programs built against an installed copy.
test: test-rust test-valgrind test-asan test-mpi test-install test-python test-packaging
	@echo "make test: passed. Not part of it (each needs its own tools; CI runs them all):" \
		"make test-cross (aarch64, qemu), test-wasm (Node.js), test-embedded (Cortex-M, qemu)," \
		"test-windows (MinGW-w64, Wine), fuzz, miri"

test-rust:
	cargo test $(HEADER)

test-valgrind: test-rust
	@if command -v valgrind >/dev/null; then \
		valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite --show-possibly-lost=no -q $(HARNESS); \
	else echo "valgrind not installed: skipping the valgrind run (ASan still runs)"; fi

test-asan: test-rust
	$(CC) $(CFLAGS_C) -g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer c_tests/harness.c \
		-L $(RELEASE) -lxent -lpthread -lm -Wl,-rpath,$(RELEASE) -o $(SAN_HARNESS)
	ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1 $(SAN_HARNESS)

# The sharded example on 2 and 3 ranks (shards of unequal size), against the
# release library the C tests of `cargo test` built (tests/cross: c_lib_dir); skipped, saying why, when MPI is not installed.
MPI_SHARDED = $(TARGET_DIR)/tmp/mpi_sharded
test-mpi: test-rust
	@if command -v mpicc >/dev/null && command -v mpiexec >/dev/null; then \
		mpicc $(CFLAGS_C) examples/mpi_sharded.c -L $(RELEASE) -lxent -lm -Wl,-rpath,$(RELEASE) -o $(MPI_SHARDED) && \
		mpiexec -n 2 $(MPI_SHARDED) && mpiexec -n 3 $(MPI_SHARDED); \
	else echo "test-mpi skipped: mpicc/mpiexec not found (apt-get install mpich libmpich-dev)"; fi

# The Rust suites and the C harness built for aarch64 and run under
# qemu-aarch64 (the NEON path): needs `rustup target add
# aarch64-unknown-linux-gnu` and Debian's gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross and qemu-user. Emulation is slow: the stress run is
# cut to 5 s and the huge-input test (billions of emulated loads) skipped.
CROSS = aarch64-unknown-linux-gnu
CROSS_RUN = qemu-aarch64 -L /usr/aarch64-linux-gnu
test-cross:
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
	CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$(CROSS_RUN)" \
	XENT_TEST_RUNNER="$(CROSS_RUN)" XENT_STRESS_SECONDS=5 \
	cargo test --no-fail-fast --target $(CROSS) -- --skip three_rows_of_800_million_classes

# The wasm32-wasip1 build with the simd128 path, its Rust suites run under
# Node.js's WASI (tests/wasi_runner.mjs): needs `rustup target add
# wasm32-wasip1` and Node.js. Suites that start processes or threads of their
# own, compile C or use 64-bit sizes (bad_input, huge, stress, the C ones)
# stay native; the scalar path is compared with simd128 inside each run.
WASM = wasm32-wasip1
WASM_TESTS = --test core --test exp --test golden --test half --test shard --test linear
test-wasm:
	RUSTFLAGS="-C target-feature=+simd128" \
	CARGO_TARGET_WASM32_WASIP1_RUNNER="node $(CURDIR)/tests/wasi_runner.mjs" \
	cargo test --no-fail-fast --target $(WASM) --target-dir $(TARGET_DIR)/wasm $(WASM_TESTS)

# The no_std library for a bare-metal Cortex-M4F (no allocator, no threads,
# no libstd; panics halt): needs `rustup target add thumbv7em-none-eabihf`.
# (`make test` checks the no_std build's results on this machine.)
EMBEDDED = thumbv7em-none-eabihf
build-embedded:
	CARGO_PROFILE_RELEASE_PANIC=abort cargo rustc --release --lib --crate-type staticlib --no-default-features \
		--features panic-handler --target $(EMBEDDED)

# The no_std library on an emulated Cortex-M4F (embedded/: qemu-system-arm,
# board mps2-an386, semihosting): embedded/src/workload.rs's calls there and
# on this machine (std build) must print the same bits. Needs Debian's
# qemu-system-arm and the thumbv7em-none-eabihf target.
test-embedded: build-embedded
	cd embedded && cargo run --release --locked > $(TARGET_DIR)/embedded_workload.cortex-m4f
	cargo run --release --example embedded_workload > $(TARGET_DIR)/embedded_workload.host
	diff $(TARGET_DIR)/embedded_workload.host $(TARGET_DIR)/embedded_workload.cortex-m4f
	@echo "the Cortex-M4F run printed the host's bits ($$(wc -l < $(TARGET_DIR)/embedded_workload.host) lines)"

# Windows (x86-64), cross-built with MinGW-w64 and tested under Wine: needs
# `rustup target add x86_64-pc-windows-gnu` and Debian's gcc-mingw-w64-x86-64
# and wine64. build-windows leaves xent.dll, its import library
# libxent.dll.a and the static libxent.a in $(WIN_DIR).
WIN = x86_64-pc-windows-gnu
WIN_CC = x86_64-w64-mingw32-gcc
WIN_DIR = $(TARGET_DIR)/$(WIN)/release
WIN_ENV = CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=$(WIN_CC) CC_x86_64_pc_windows_gnu=$(WIN_CC) \
	AR_x86_64_pc_windows_gnu=x86_64-w64-mingw32-ar
# What the static library needs from Windows (rustc --print native-static-libs).
WIN_STATIC_LIBS = -lws2_32 -luserenv -lntdll -ldbghelp -lkernel32
# C as the project holds it, with MinGW's C99 printf (%zu).
WIN_CFLAGS = -std=c11 -Wall -Wextra -Wpedantic -Werror -O2 -I include -D__USE_MINGW_ANSI_STDIO=1
# The harness's own threads: MinGW's winpthreads, linked in (no DLL to ship).
WIN_PTHREAD = -Wl,-Bstatic -lpthread -Wl,-Bdynamic
WINE ?= wine
# Wine 8 lacks bcryptprimitives.dll (Rust's std imports ProcessPrng from it;
# Windows 10+ has it): a stand-in for the test runs only, found via WINEPATH,
# as is xent.dll. WINEDEBUG=-all keeps Wine's own messages out of the logs.
WIN_STUB = $(TARGET_DIR)/wine-stub
WIN_RUN = WINEDEBUG=-all WINEPATH="$(WIN_STUB);$(WIN_DIR)" $(WINE)
# cargo's runner for the target: Wine with the stand-in on its path.
WIN_CARGO = $(WIN_ENV) CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="env WINEDEBUG=-all WINEPATH=$(WIN_STUB) $(WINE)"
# The Rust suites that run there (the others start compilers, other
# targets' builds or billions of loads; the C harness runs below instead).
WIN_TESTS = --lib --test core --test exp --test golden --test half --test shard --test linear \
	--test trainer --test bad_input --test isa
WIN_TMP = $(TARGET_DIR)/$(WIN)/tmp

build-windows:
	$(WIN_ENV) cargo rustc --release --lib --crate-type cdylib,staticlib --target $(WIN)

$(WIN_STUB)/bcryptprimitives.dll: c_tests/windows/bcryptprimitives.c
	mkdir -p $(WIN_STUB)
	$(WIN_CC) -O2 -shared -o $@ $< -ladvapi32

# The Rust suites under Wine; the C harness built with MinGW against the DLL
# (through its import library) and against the static library, a C++
# program against the DLL, the demo, an installed prefix (pkg-config and
# CMake), all run under Wine; and the embedded workload's printout of every
# result's bits, which must equal the Linux build's.
test-windows: build-windows $(WIN_STUB)/bcryptprimitives.dll
	$(WIN_CARGO) cargo test --no-fail-fast --target $(WIN) $(WIN_TESTS)
	mkdir -p $(WIN_TMP)
	$(WIN_CC) $(WIN_CFLAGS) c_tests/harness.c -L $(WIN_DIR) -lxent $(WIN_PTHREAD) -o $(WIN_TMP)/harness_dll.exe
	objdump -p $(WIN_TMP)/harness_dll.exe | grep -q 'DLL Name: xent.dll'
	$(WIN_RUN) $(WIN_TMP)/harness_dll.exe
	$(WIN_CC) $(WIN_CFLAGS) c_tests/harness.c $(WIN_DIR)/libxent.a $(WIN_STATIC_LIBS) $(WIN_PTHREAD) -o $(WIN_TMP)/harness_static.exe
	! objdump -p $(WIN_TMP)/harness_static.exe | grep -q 'DLL Name: xent.dll'
	$(WIN_RUN) $(WIN_TMP)/harness_static.exe
	x86_64-w64-mingw32-g++ -std=c++17 -Wall -Wextra -Werror -O2 -static-libgcc -static-libstdc++ -I include \
		c_tests/install/check.cpp -L $(WIN_DIR) -lxent \
		-o $(WIN_TMP)/check_cpp.exe
	$(WIN_RUN) $(WIN_TMP)/check_cpp.exe
	$(WIN_CC) $(WIN_CFLAGS) examples/train_digits.c -L $(WIN_DIR) -lxent -o $(WIN_TMP)/train_digits.exe
	$(WIN_RUN) $(WIN_TMP)/train_digits.exe examples/data/digits.csv
	c_tests/windows/install.sh $(WIN_STUB) $(TARGET_DIR)
	$(WIN_CARGO) cargo run -q --release --target $(WIN) --example embedded_workload | tr -d '\r' > $(WIN_TMP)/embedded_workload.windows
	cargo run -q --release --example embedded_workload > $(WIN_TMP)/embedded_workload.host
	diff $(WIN_TMP)/embedded_workload.host $(WIN_TMP)/embedded_workload.windows
	@echo "test-windows: the Windows build printed this machine's Linux bits ($$(wc -l < $(WIN_TMP)/embedded_workload.host) lines of results)"

# Every other target: aarch64 under qemu, wasm32 under Node.js, Cortex-M.
test-targets: test-cross test-wasm test-embedded

# Stripped sizes of the static and shared libraries per target (BENCHMARKS.md).
footprint:
	bench/footprint.sh

# NEON against the portable path on one emulated run (the ratio is what
# emulation leaves meaningful).
isa-ratio-cross:
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
	cargo build --release --target $(CROSS) --example isa_ratio
	$(CROSS_RUN) $(TARGET_DIR)/$(CROSS)/release/examples/isa_ratio 64 4096

# Fuzzing (cargo-fuzz, libFuzzer, AddressSanitizer; needs nightly): every
# target for FUZZ_SECONDS each from the committed seeds (fuzz/seeds/), e.g.
# `make fuzz FUZZ_SECONDS=60` as CI does, or `make fuzz FUZZ_TARGETS=loss`.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?=
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh $(FUZZ_TARGETS)

# Miri (nightly with the miri component) on the C functions and the portable
# kernels: the small calls of tests/miri.rs and every bad-input case.
miri:
	MIRIFLAGS="-Zmiri-strict-provenance" cargo +nightly miri test --test miri --test bad_input

# Install: the shared library (with a soname, built in its own target
# directory), the static library, the header, a pkg-config file and a CMake
# package. `make install PREFIX=/opt/xent`; DESTDIR is honoured for staging.
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
SYSTEM = linux
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
MAJOR := $(word 1,$(subst ., ,$(VERSION)))
MINOR := $(word 2,$(subst ., ,$(VERSION)))
# Before 1.0 a minor release may break the ABI: the soname carries major.minor.
SONAME = libxent.so.$(MAJOR).$(MINOR)
INSTALL_BUILD = $(TARGET_DIR)/install
# What the static library needs besides itself (rustc --print native-static-libs).
STATIC_LIBS = -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
# The pkg-config and CMake files name the prefix, include and library
# directories relative to their own place, so a moved prefix still works.
rel = $(shell realpath -m --relative-to=$(1) $(2))
SUBST = sed -e 's|@PC_PREFIX@|$${pcfiledir}/$(call rel,$(LIBDIR)/pkgconfig,$(PREFIX))|g' \
	-e 's|@PC_LIBDIR@|$${pcfiledir}/..|g' \
	-e 's|@PC_INCLUDEDIR@|$${pcfiledir}/$(call rel,$(LIBDIR)/pkgconfig,$(INCLUDEDIR))|g' \
	-e 's|@CMAKE_LIBDIR@|$(call rel,$(LIBDIR)/cmake/xent,$(LIBDIR))|g' \
	-e 's|@CMAKE_INCLUDEDIR@|$(call rel,$(LIBDIR)/cmake/xent,$(INCLUDEDIR))|g' \
	-e 's|@CMAKE_BINDIR@|$(call rel,$(LIBDIR)/cmake/xent,$(BINDIR))|g' -e 's|@SYSTEM@|$(SYSTEM)|g' \
	-e 's|@VERSION@|$(VERSION)|g' -e 's|@MAJOR@|$(MAJOR)|g' -e 's|@MINOR@|$(MINOR)|g' -e 's|@SONAME@|$(SONAME)|g' \
	-e 's|@STATIC_LIBS@|$(STATIC_LIBS)|g' -e 's|@STATIC_LIBS_CMAKE@|$(subst $(eval) ,;,$(patsubst -l%,%,$(STATIC_LIBS)))|g'
INSTALLED = $(INCLUDEDIR)/xent.h $(LIBDIR)/libxent.so.$(VERSION) $(LIBDIR)/$(SONAME) $(LIBDIR)/libxent.so \
	$(LIBDIR)/libxent.a $(LIBDIR)/pkgconfig/xent.pc $(LIBDIR)/cmake/xent/xentConfig.cmake \
	$(LIBDIR)/cmake/xent/xentConfigVersion.cmake

# The libraries are stripped: no debug information, no local symbols.
install:
	XENT_SONAME=$(SONAME) $(CLIBS) --target-dir $(INSTALL_BUILD)
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(LIBDIR)/cmake/xent $(DESTDIR)$(INCLUDEDIR)
	install -m 644 include/xent.h $(DESTDIR)$(INCLUDEDIR)/xent.h
	install -m 755 $(INSTALL_BUILD)/release/libxent.so $(DESTDIR)$(LIBDIR)/libxent.so.$(VERSION)
	strip --strip-unneeded $(DESTDIR)$(LIBDIR)/libxent.so.$(VERSION)
	ln -sf libxent.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libxent.so
	packaging/static-hygiene.sh $(INSTALL_BUILD)/release/deps/libxent.a $(DESTDIR)$(LIBDIR)/libxent.a --strip
	chmod 644 $(DESTDIR)$(LIBDIR)/libxent.a
	$(SUBST) packaging/xent.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/xent.pc
	$(SUBST) packaging/xentConfig.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/xent/xentConfig.cmake
	$(SUBST) packaging/xentConfigVersion.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/xent/xentConfigVersion.cmake

# Removes what `make install` put (same PREFIX, LIBDIR, INCLUDEDIR, DESTDIR),
# and the directories it made if they are left empty.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(DESTDIR)$(LIBDIR)/cmake/xent $(DESTDIR)$(LIBDIR)/cmake $(DESTDIR)$(LIBDIR)/pkgconfig 2>/dev/null

# The Windows build (see test-windows) installed for MinGW and MSVC users:
# xent.dll in BINDIR; its import library libxent.dll.a and the static
# libxent.a (stripped) in LIBDIR; the header, pkg-config and CMake files as
# above, naming Windows' system libraries for a static link.
install-windows: SYSTEM = windows
install-windows: STATIC_LIBS = $(WIN_STATIC_LIBS)
install-windows: build-windows
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(LIBDIR)/cmake/xent $(DESTDIR)$(INCLUDEDIR)
	install -m 644 include/xent.h $(DESTDIR)$(INCLUDEDIR)/xent.h
	install -m 755 $(WIN_DIR)/xent.dll $(DESTDIR)$(BINDIR)/xent.dll
	x86_64-w64-mingw32-strip --strip-unneeded $(DESTDIR)$(BINDIR)/xent.dll
	install -m 644 $(WIN_DIR)/libxent.dll.a $(DESTDIR)$(LIBDIR)/libxent.dll.a
	install -m 644 $(WIN_DIR)/libxent.a $(DESTDIR)$(LIBDIR)/libxent.a
	# (strip refuses the empty split-debug members rustc leaves in the archive)
	x86_64-w64-mingw32-ar t $(DESTDIR)$(LIBDIR)/libxent.a | grep '\.dwo$$' | \
		xargs -r x86_64-w64-mingw32-ar d $(DESTDIR)$(LIBDIR)/libxent.a
	x86_64-w64-mingw32-strip --strip-debug $(DESTDIR)$(LIBDIR)/libxent.a
	$(SUBST) packaging/xent.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/xent.pc
	$(SUBST) packaging/xentConfig.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/xent/xentConfig.cmake
	$(SUBST) packaging/xentConfigVersion.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/xent/xentConfigVersion.cmake

# Installs into a temporary prefix, then builds and runs a C program with
# pkg-config (shared and static) and a C++ program with CMake against it,
# moves the prefix and does it again, and uninstalls.
test-install:
	c_tests/install/run.sh

# xent as each ecosystem takes it (c_tests/packaging/run.sh): the static
# archive's symbols, CMake add_subdirectory/FetchContent, CARGO_TARGET_DIR,
# pip, a Rust dependent, LuaJIT's FFI.
test-packaging: build
	c_tests/packaging/run.sh

# The Python binding against the release library the C tests built (standard
# library only; the NumPy and PyTorch tests skip, saying so, without them).
test-python: test-rust
	XENT_LIBRARY=$(RELEASE)/libxent.so python3 -m unittest discover -s python/tests -v

lint:
	cargo fmt --check
	cargo clippy --all-targets $(HEADER) -- -D warnings
	git diff --exit-code -- include/xent.h

# Benchmarks are not tests: run them on a quiet machine.
bench:
	cargo bench --bench xent

# The fused linear call: criterion beside the three plain products, the
# alternated comparison, and the process's peak memory (issue 4's shape).
bench-linear:
	cargo bench --bench linear
	cargo run --release --example linear_vs_gemms -- 4096 1024 32000 7
	cargo run --release --example linear_peak_memory -- 4096 1024 32000 1

# Time per call from C against the static library (tiny calls), beside a
# plain C loop in the same rounds.
bench-percall: build
	$(CC) -O2 -std=c11 -I include bench/percall.c $(RELEASE)/libxent.a -Wl,--gc-sections -lpthread -lm -ldl -o $(TARGET_DIR)/xent_percall
	for s in "1 10" "64 10" "4096 10"; do taskset -c 0 $(TARGET_DIR)/xent_percall $$s || $(TARGET_DIR)/xent_percall $$s; done

bench-compare: build
	python3 bench/compare.py
	python3 bench/compare.py --linear 4096x1024x32000 --reps 3

clean:
	cargo clean
