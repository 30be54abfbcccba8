#!/usr/bin/env bash
# Runs every fuzz target (or those named) for FUZZ_SECONDS each, starting
# from the committed seeds (fuzz/seeds/<target>.tar.gz, a corpus minimised
# with `cargo fuzz cmin`, unpacked into the local corpus fuzz/corpus/<target>,
# which is not committed), and prints each target's execution count. A
# finding stops the run with libFuzzer's report and the input in
# fuzz/artifacts/<target>/. Needs cargo-fuzz and a nightly toolchain
# (`.ci/run` installs both).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-600}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(loss half linear shard)
if ! command -v cargo-fuzz >/dev/null; then
  echo "cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
  exit 1
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "no nightly toolchain: rustup toolchain install nightly --profile minimal" >&2
  exit 1
fi
cargo=(cargo +nightly)
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  tar -C "corpus/$t" -xzf "seeds/$t.tar.gz"
  echo "== fuzz $t for ${seconds}s"
  log=$(mktemp)
  # -O: optimised with debug assertions and overflow checks (Cargo.toml);
  # AddressSanitizer is cargo-fuzz's default.
  if ! "${cargo[@]}" fuzz run -O "$t" "corpus/$t" -- \
      -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 80 "$log"
    echo "fuzz target $t failed: a build error, or a finding (input in fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  echo "fuzz $t: ${runs:-?} executions in ${seconds}s, no finding"
  rm -f "$log"
done
