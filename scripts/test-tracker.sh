#!/usr/bin/env bash
# The tracker's checks that `cargo clippy/test --workspace` does not cover, called by scripts/test.sh:
#   1. clippy and native tests of starling-beacon's `ext` feature (the opt-in capture decisions) and
#      wasm32 clippy of the extended tracker module;
#   2. the decisions (default and `ext`) compiled to wasm32 and run with wasm-bindgen-test in headless
#      Chromium (Debian's chromium + chromium-driver, installed by setup.sh): the same tests `cargo
#      test` runs natively, in the browser's wasm engine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
use_wasm_toolchain
runner="$STARLING_CACHE/bin/wasm-bindgen-test-runner"
[ -x "$runner" ] || die "wasm-bindgen-test-runner is missing: run scripts/setup.sh"
[ -x /usr/bin/chromedriver ] || die "chromedriver is missing: run scripts/setup.sh (apt chromium-driver)"
step "starling-beacon --features ext: clippy, native tests; wasm32 clippy of the extended module"
cargo clippy -q -p starling-beacon --all-targets --features ext -- -D warnings
cargo clippy -q -p starling-tracker --features ext --target wasm32-unknown-unknown -- -D warnings
cargo test -q -p starling-beacon --features ext
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER="$runner" CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=60
for features in "" "--features ext"; do
  step "wasm-bindgen-test in headless Chromium: starling-beacon $features"
  # No -q: with the wasm runner it hides the result line.
  cargo test -p starling-beacon --target wasm32-unknown-unknown $features
done
