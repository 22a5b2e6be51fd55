#!/usr/bin/env bash
# Builds the edge worker (worker-build → edge-worker/build/) unless its inputs are unchanged.
# Called by wrangler's [build] step and by the other scripts. Needs scripts/setup.sh to have run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
use_wasm_toolchain
mkdir -p www/dist
stamp=edge-worker/build/.inputs
sum=$( (cat Cargo.lock Cargo.toml core/Cargo.toml edge-worker/Cargo.toml; find core/src edge-worker/src edge-worker/openapi.json -type f | sort | xargs cat) | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && [ -f edge-worker/build/index.js ]; then
  echo "worker build up to date" >&2
  exit 0
fi
[ -x "$STARLING_CACHE/bin/worker-build" ] || die "worker-build is missing: run scripts/setup.sh first"
start=$(date +%s)

# A content-addressed cache of finished builds (a fresh clone of a commit this machine already built, or
# a branch switched back to, skips the ~100 s build, most of it wasm-opt): keyed on the sources above and
# everything else that shapes the output (the compiler and the wasm target's std with it, worker-build,
# wasm-bindgen, wasm-opt, esbuild, RUSTFLAGS and this script). A machine without the cache builds.
tools=$(rustc -vV && worker-build --version && "$WASM_BINDGEN_BIN" --version && "$WASM_OPT_BIN" --version &&
  "$ESBUILD_BIN" --version && echo "RUSTFLAGS=${RUSTFLAGS:-}" && cat scripts/build-worker.sh) ||
  die "a build tool did not answer --version: run scripts/setup.sh"
key=$(printf '%s\n%s\n' "$sum" "$tools" | sha256sum | cut -c1-16)
cache="$STARLING_CACHE/worker-builds/$key"
if [ -f "$cache/index.js" ] && [ -f "$cache/index_bg.wasm" ]; then
  rm -rf edge-worker/build && mkdir -p edge-worker/build && cp -a "$cache/." edge-worker/build/
  echo "$sum" >"$stamp"
  summary "worker restored from the build cache ($cache): $(wc -c <edge-worker/build/index_bg.wasm) bytes wasm"
  exit 0
fi

step "worker-build --release edge-worker"
worker-build --release edge-worker >&2
echo "$sum" >"$stamp"
# Store the build (written aside, then renamed: a reader never sees half an entry); keep the newest 6.
mkdir -p "$STARLING_CACHE/worker-builds"
tmp=$(mktemp -d "$STARLING_CACHE/worker-builds/.new.XXXXXX")
cp -a edge-worker/build/. "$tmp/" && rm -f "$tmp/.inputs" && rm -rf "$cache" && mv "$tmp" "$cache" || rm -rf "$tmp"
ls -1dt "$STARLING_CACHE"/worker-builds/*/ 2>/dev/null | tail -n +7 | xargs -r rm -rf
summary "worker built in $(($(date +%s) - start)) s: $(wc -c <edge-worker/build/index_bg.wasm) bytes wasm"
