#!/usr/bin/env bash
# Builds the browser tracker unless its inputs are unchanged:
#   cargo (wasm32, release) → wasm-bindgen --target web → wasm-opt -Oz → esbuild bundle of the loader
# and writes www/dist/t.js (short cache; names the module by hash) and www/dist/t/<sha256-16>.wasm
# (immutable), plus www/dist/_headers.tracker (cache rules to merge into _headers).
# Only these files are touched in www/dist: the dashboard writes there too.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
use_wasm_toolchain
out=tracker/pkg
stamp=$out/.inputs
sum=$( (cat Cargo.lock Cargo.toml core/Cargo.toml tracker/Cargo.toml core/src/beacon.rs scripts/build-tracker.sh
  find tracker/src tracker/js -type f | sort | xargs cat) | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(head -1 "$stamp")" = "$sum" ] && [ -f www/dist/t.js ] && [ -f "www/dist/$(sed -n 2p "$stamp")" ]; then
  echo "tracker build up to date" >&2
  exit 0
fi
[ -x "$STARLING_CACHE/bin/wasm-bindgen" ] || die "wasm-bindgen is missing: run scripts/setup.sh first"
[ -x node_modules/.bin/esbuild ] && [ -x node_modules/.bin/wasm-opt ] || die "esbuild/wasm-opt are missing: run npm ci"
start=$(date +%s)
mkdir -p "$out" www/dist/t

step "cargo build -p starling-tracker (wasm32, release)"
cargo build -q -p starling-tracker --target wasm32-unknown-unknown --release >&2
wasm=target/wasm32-unknown-unknown/release/starling_tracker.wasm

step "wasm-bindgen --target web"
rm -rf "$out/snippets"
"$STARLING_CACHE/bin/wasm-bindgen" --target web --no-typescript --out-dir "$out" "$wasm" >&2

step "wasm-opt -Oz"
node_modules/.bin/wasm-opt -Oz --strip-debug --strip-producers --strip-target-features \
  "$out/starling_tracker_bg.wasm" -o "$out/t.wasm" >&2
hash=$(sha256sum "$out/t.wasm" | cut -c1-16)
name="t/$hash.wasm"

# t.js always calls initSync({ module }): drop the glue's warning for the deprecated call form (a no-op
# if a future wasm-bindgen words it differently).
sed -i "s/console\.warn('using deprecated parameters for \`initSync()\`; pass a single object instead')/0/" "$out/starling_tracker.js"

step "esbuild t.js → $name"
node_modules/.bin/esbuild tracker/js/main.js --bundle --minify --format=iife --target=es2020 \
  --define:WASM_PATH="\"$name\"" --legal-comments=none --log-level=warning --log-override:empty-import-meta=silent --outfile="$out/t.js" >&2

# Replace only our own files; keep the previous module for pages that still cache the old t.js.
prev=$(sed -n 2p "$stamp" 2>/dev/null || true)
for f in www/dist/t/*.wasm; do
  [ -e "$f" ] || continue
  case "www/dist/${f#www/dist/}" in "www/dist/$name" | "www/dist/$prev") ;; *) rm -f "$f" ;; esac
done
cp "$out/t.wasm" "www/dist/$name"
cp "$out/t.js" www/dist/t.js
cat >www/dist/_headers.tracker <<'HEADERS'
/t.js
  Cache-Control: public, max-age=300
  Access-Control-Allow-Origin: *
/t/*
  Cache-Control: public, max-age=31536000, immutable
  Access-Control-Allow-Origin: *
HEADERS
printf '%s\n%s\n' "$sum" "$name" >"$stamp"
js=$(wc -c <www/dist/t.js)
wb=$(wc -c <"www/dist/$name")
gz=$(( $(gzip -9c www/dist/t.js | wc -c) + $(gzip -9c "www/dist/$name" | wc -c) ))
summary "tracker built in $(($(date +%s) - start)) s: t.js $js B + $name $wb B = $((js + wb)) B raw, $gz B gzip -9"
