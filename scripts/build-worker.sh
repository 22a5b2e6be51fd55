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
step "worker-build --release edge-worker"
worker-build --release edge-worker >&2
echo "$sum" >"$stamp"
summary "worker built in $(($(date +%s) - start)) s: $(wc -c <edge-worker/build/index_bg.wasm) bytes wasm"
