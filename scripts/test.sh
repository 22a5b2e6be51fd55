#!/usr/bin/env bash
# Quick start, command 2: the whole test suite. `.ci/run` calls exactly this. Idempotent.
#   1. setup (installs what is missing)   2. fmt, clippy (host and wasm32), docs
#   3. native tests (cargo test)          4. builds: tracker, dashboard, worker; wrangler deploy --dry-run
#   5. integration and browser tests against the real local runtime (node --test tests/)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
start=$(date +%s)
bash scripts/setup.sh
use_wasm_toolchain

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy (host)"
cargo clippy -q --workspace --all-targets -- -D warnings
step "cargo clippy (wasm32)"
# One crate per invocation: together, the worker turns on std features the no_std tracker must not see.
cargo clippy -q -p starling-edge-worker --target wasm32-unknown-unknown -- -D warnings
cargo clippy -q -p starling-tracker --target wasm32-unknown-unknown -- -D warnings
step "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc -q --no-deps -p starling-core
step "toolchain route B: Debian's rustc-web builds the worker for wasm32 (kept tested; cached in target/route-b)"
STARLING_WASM_TOOLCHAIN=debian STARLING_RECORD_TOOLCHAIN=0 bash scripts/setup.sh >/dev/null
env -u RUSTUP_TOOLCHAIN PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc CARGO_TARGET_DIR=target/route-b \
  /usr/bin/cargo build -q --release -p starling-edge-worker --target wasm32-unknown-unknown ||
  die "route B (Debian rustc-web) could not build the worker: see above; scripts/setup.sh STARLING_WASM_TOOLCHAIN=debian installs it"
step "cargo test (native)"
cargo test --workspace --exclude starling-edge-worker --exclude starling-tracker
bash scripts/test-tracker.sh

[ -f scripts/build-tracker.sh ] && bash scripts/build-tracker.sh
[ -f scripts/tracker-size.sh ] && bash scripts/tracker-size.sh
[ -f scripts/build-www.sh ] && bash scripts/build-www.sh
bash scripts/build-worker.sh
step "wrangler deploy --dry-run"
out=$(mktemp -d)
node_modules/.bin/wrangler deploy --dry-run --outdir "$out" >"$out.log" 2>&1 || { cat "$out.log" >&2; die "wrangler deploy --dry-run failed (output above)"; }
rm -rf "$out" "$out.log"

step "integration and browser tests (node --test tests/)"
node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout tests/
summary "test: all checks passed in $(($(date +%s) - start)) s"
