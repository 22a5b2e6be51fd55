#!/usr/bin/env bash
# Quick start, command 2: the whole test suite. `.ci/run` calls exactly this. Idempotent.
#
#   scripts/test.sh            every tier below, one after another (what CI runs)
#   scripts/test.sh fast       the inner loop: fmt, clippy (host), native tests (cargo test)
#   scripts/test.sh checks     fmt, clippy (host and wasm32), docs
#   scripts/test.sh native     native tests: pure logic, SQL on SQLite, oracles (cargo test)
#   scripts/test.sh e2e        builds, wrangler deploy --dry-run, tests/*.test.mjs against wrangler dev
#   scripts/test.sh browser    builds, Chromium tests of the tracker and dashboard against wrangler dev
#
# Several tiers may be named (`scripts/test.sh checks native`). STARLING_ROUTE_B=1 also builds the worker
# with Debian's rustc-web (toolchain route B; off by default: it builds the worker a second time).
# Every run ends with the time each tier took.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
start=$(date +%s)
tiers=("$@")
[ ${#tiers[@]} -gt 0 ] || tiers=(checks native e2e browser)
# Chromium tests: the tracker and the dashboard in a real browser. Everything else in tests/ is e2e.
browser_tests=(tests/tracker.test.mjs tests/tracker-capture.test.mjs tests/dashboard.test.mjs tests/dashboard-compare.test.mjs
  tests/dashboard-props.test.mjs)
timings=()

timed() {
  local name=$1 t0
  shift
  t0=$(date +%s)
  "$@"
  timings+=("$name $(($(date +%s) - t0)) s")
}

checks() {
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
  step "biome ci (JavaScript formatting and lint; biome.json)"
  node_modules/.bin/biome ci --colors=off . ||
    die "biome found JavaScript to format or fix (above): run 'node_modules/.bin/biome check --write .' and review"
  if [ "${STARLING_ROUTE_B:-0}" = 1 ]; then
    step "toolchain route B: Debian's rustc-web builds the worker for wasm32 (cached in target/route-b)"
    STARLING_WASM_TOOLCHAIN=debian STARLING_RECORD_TOOLCHAIN=0 bash scripts/setup.sh >/dev/null
    env -u RUSTUP_TOOLCHAIN PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc CARGO_TARGET_DIR=target/route-b \
      /usr/bin/cargo build -q --release -p starling-edge-worker --target wasm32-unknown-unknown ||
      die "route B (Debian rustc-web) could not build the worker: see above; scripts/setup.sh STARLING_WASM_TOOLCHAIN=debian installs it"
  fi
}

fast() {
  step "cargo fmt --check"
  cargo fmt --all -- --check
  step "cargo clippy (host)"
  cargo clippy -q --workspace --all-targets -- -D warnings
  step "biome ci (JavaScript)"
  node_modules/.bin/biome ci --colors=off . ||
    die "biome found JavaScript to format or fix (above): run 'node_modules/.bin/biome check --write .' and review"
  native
}

native() {
  step "cargo test (native)"
  cargo test -q --workspace --exclude starling-edge-worker --exclude starling-tracker
}

built=0
build() {
  [ "$built" = 1 ] && return
  bash scripts/build-tracker.sh
  bash scripts/tracker-size.sh
  bash scripts/build-www.sh
  bash scripts/build-worker.sh
  step "wrangler deploy --dry-run"
  local out
  out=$(mktemp -d)
  node_modules/.bin/wrangler deploy --dry-run --outdir "$out" >"$out.log" 2>&1 || { cat "$out.log" >&2; die "wrangler deploy --dry-run failed (output above)"; }
  rm -rf "$out" "$out.log"
  built=1
}

# Test files run concurrently, each against its own wrangler dev (own ports, own persisted state), since most
# of their time is spent waiting on the runtime (queue batches, retries, outages). STARLING_TEST_CONCURRENCY=1
# runs one file at a time, e.g. to read one file's output in order while debugging.
# Each run also records where its time went (tests/lib/times-reporter.mjs: each file's wall time, the
# slowest tests, the runtime starts and the longest waits); the tables are printed at the end of the run.
times_dir=$(mktemp -d)
shared_pid=
trap 'stop_shared_runtime; kill $(jobs -p) 2>/dev/null || true; rm -rf "$times_dir"' EXIT
times=()
node_tests() {
  local name=$1 status=0 t0=$SECONDS
  shift
  STARLING_TEST_TIMES="$times_dir/$name.waits" node --test --test-concurrency="${STARLING_TEST_CONCURRENCY:-4}" \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=./tests/lib/times-reporter.mjs --test-reporter-destination="$times_dir/$name.txt" "$@" || status=$?
  echo "node --test for $name: $((SECONDS - t0)) s" >>"$times_dir/$name.txt"
  times+=("$name")
  return "$status"
}

# One `wrangler dev` per tier (e2e, browser) shared by the files that allow it (startWorker({ shared: true }):
# their own tenants, no restart, no other settings), started alongside the first files; each other file
# starts its own. tests/lib/shared-runtime.mjs says more. `node --test tests/<file>` alone starts the file's
# own runtime. The two tiers' files share tenant ids (acme), hence one runtime each.
start_shared_runtime() {
  export STARLING_SHARED_RUNTIME="$times_dir/shared-runtime-$1.json"
  node tests/lib/shared-runtime.mjs "$STARLING_SHARED_RUNTIME" &
  shared_pid=$!
}
stop_shared_runtime() {
  [ -n "$shared_pid" ] || return 0
  kill "$shared_pid" 2>/dev/null || true
  wait "$shared_pid" 2>/dev/null || true # its stop() prints wrangler's output under STARLING_TEST_LOGS=1
  shared_pid=
  unset STARLING_SHARED_RUNTIME
}

# E2e files run on their own after the others: tenants.test.mjs measures a neighbour's latency under a
# flood and waits on its runtime's queue deliveries with short timeouts, which the other files' load on two
# cores made flaky (once in four full runs its local queue broker stopped delivering after the flood).
serial_tests=(tests/tenants.test.mjs)
# The two longest files (about 60 s each) run in a node --test of their own, two at a time, alongside the
# others (the remaining slots): node --test sorts its files, and started security.test.mjs among the last,
# so the tier ended 25 s after every other file.
long_tests=(tests/ingest-durability.test.mjs tests/security.test.mjs)

e2e() {
  build
  step "integration tests against wrangler dev (tests/*.test.mjs, ${long_tests[*]} alongside; ${serial_tests[*]} on its own after)"
  local files=() f b skip concurrency=${STARLING_TEST_CONCURRENCY:-4} pid status=0 long=0
  for f in tests/*.test.mjs; do
    skip=0
    for b in "${browser_tests[@]}" "${serial_tests[@]}" "${long_tests[@]}"; do [ "$f" = "$b" ] && skip=1; done
    [ "$skip" = 1 ] || files+=("$f")
  done
  start_shared_runtime e2e
  if [ "$concurrency" -le 2 ]; then
    node_tests e2e "${long_tests[@]}" "${files[@]}" || die "e2e tests failed (output above)"
  else
    STARLING_TEST_CONCURRENCY=2 node_tests e2e-long "${long_tests[@]}" >"$times_dir/e2e-long.out" 2>&1 &
    pid=$!
    STARLING_TEST_CONCURRENCY=$((concurrency - 2)) node_tests e2e "${files[@]}" || status=$?
    wait "$pid" || long=$?
    times+=(e2e-long) # recorded in the background subshell, not here
    cat "$times_dir/e2e-long.out"
    [ "$long" = 0 ] || die "e2e tests failed: ${long_tests[*]} (output above)"
    [ "$status" = 0 ] || die "e2e tests failed (output above)"
  fi
  stop_shared_runtime
  e2e_serial
}

e2e_serial() {
  step "integration tests that run alone: ${serial_tests[*]}"
  STARLING_TEST_CONCURRENCY=1 node_tests e2e-serial "${serial_tests[@]}"
}

browser() {
  build
  if [ "${STARLING_TEST_CONCURRENCY:-}" = 1 ]; then
    bash scripts/test-tracker.sh # the tracker's decisions under wasm-bindgen-test in headless Chromium
    step "browser tests: Chromium against wrangler dev (${browser_tests[*]})"
    start_shared_runtime browser
    local status=0
    node_tests browser "${browser_tests[@]}" || status=$?
    stop_shared_runtime
    return "$status"
  fi
  # scripts/test-tracker.sh (the tracker's decisions under wasm-bindgen-test in headless Chromium) runs
  # alongside the browser tests; its output follows theirs.
  step "browser tests: Chromium against wrangler dev (${browser_tests[*]}), and scripts/test-tracker.sh alongside"
  local log pid status=0 tracker=0
  log=$(mktemp)
  bash scripts/test-tracker.sh >"$log" 2>&1 &
  pid=$!
  start_shared_runtime browser
  node_tests browser "${browser_tests[@]}" || status=$?
  stop_shared_runtime
  wait "$pid" || tracker=$?
  cat "$log"
  rm -f "$log"
  [ "$tracker" = 0 ] || die "scripts/test-tracker.sh failed (output above)"
  [ "$status" = 0 ] || die "browser tests failed (output above)"
}

timed setup bash scripts/setup.sh
use_wasm_toolchain
for tier in "${tiers[@]}"; do
  case "$tier" in
    fast | checks | native | e2e | browser) timed "$tier" "$tier" ;;
    *) die "unknown test tier '$tier': use fast, checks, native, e2e or browser (or none for all)" ;;
  esac
done
for name in "${times[@]}"; do
  step "where the time went: $name"
  cat "$times_dir/$name.txt" 2>/dev/null || true
done
summary "test: ${tiers[*]} passed in $(($(date +%s) - start)) s ($(IFS=,; echo "${timings[*]}" | sed 's/,/, /g'))"
