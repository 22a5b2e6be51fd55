#!/usr/bin/env bash
# Builds the browser tracker unless its inputs are unchanged:
#   cargo (wasm32, release; default and `ext` modules) → wasm-metadce, wasm-opt -Oz → esbuild for the
#   loader and the opt-in scripts
# and writes, all named by one content hash H of everything below:
#   www/dist/t.js               the loader (short cache)
#   www/dist/t/H.wasm           the default module
#   www/dist/t/H.x.wasm         the extended module (the default one's answers and the captures':
#                               web vitals, links, engagement, hash routing, 404), fetched by t.js
#                               instead of H.wasm when the tag enables an opt-in capture
#   www/dist/t/H.{s,w,o,f,e}.js the opt-in scripts: storage, web vitals, outbound links, file downloads,
#                               engagement
# plus www/dist/_headers.tracker (cache rules to merge into _headers). Only these files are touched in
# www/dist: the dashboard writes there too. tracker/pkg/ keeps copies and t.inline.js (the module
# inlined as base64, measured by scripts/tracker-size.sh, not served).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
use_wasm_toolchain
out=tracker/pkg
stamp=$out/.inputs
sum=$( (cat Cargo.lock Cargo.toml beacon/Cargo.toml tracker/Cargo.toml scripts/build-tracker.sh
  find beacon/src tracker/src tracker/js -type f | sort | xargs cat) | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(head -1 "$stamp")" = "$sum" ] && [ -f www/dist/t.js ] && [ -f "www/dist/t/$(sed -n 2p "$stamp").wasm" ]; then
  echo "tracker build up to date" >&2
  exit 0
fi
[ -x node_modules/.bin/esbuild ] && [ -x node_modules/.bin/wasm-opt ] || die "esbuild/wasm-opt are missing: run npm ci"
start=$(date +%s)
rm -rf "$out"
mkdir -p "$out" www/dist/t
wasm=${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/starling_tracker.wasm
# opt OUT EXPORT…: keeps only the module's own exports (rustc also exports `__data_end` and
# `__heap_base`, 44 B gzip that no loader reads) with wasm-metadce, then wasm-opt -Oz.
opt() {
  local o=$1 e
  shift
  e=$(printf '"%s",' "$@" m)
  printf '[{"name":"root","root":true,"reaches":[%s]},%s]' "${e%,}" \
    "$(for x in "$@" m; do printf '{"name":"%s","export":"%s"},' "$x" "$x"; done | sed 's/,$//')" >"$out/graph.json"
  node_modules/.bin/wasm-metadce "$wasm" --graph-file "$out/graph.json" -o "$out/dce.wasm" >/dev/null
  node_modules/.bin/wasm-opt -Oz --converge --strip-debug --strip-producers --strip-target-features "$out/dce.wasm" -o "$o" >&2
  rm "$out/graph.json" "$out/dce.wasm"
}

# Link arguments: the memory is exported as `m` (wasm-ld's default name is `memory`: 5 bytes more in the
# module and twice in the loader); a 2 KiB stack instead of 1 MiB puts the data and the buffers at low
# addresses, whose constants take 2 bytes instead of 3 in the code (-16 B gzip), and the module needs 2
# pages of memory instead of 18. All stack frames of both modules add up to under 900 B (the only
# recursion, the extended module's decimal writer, is at most 10 digits deep); an overflow would trap
# (the stack is first in memory, so it runs below address 0), which turns the tracker off.
build() {
  cargo rustc -q -p starling-tracker --target wasm32-unknown-unknown --release "$@" -- \
    -C link-arg=--export-memory=m -C link-arg=-zstack-size=2048 >&2
}
step "cargo rustc -p starling-tracker (wasm32, release): default module"
build
opt "$out/m.wasm" b c k q t
step "cargo rustc -p starling-tracker --features ext (wasm32, release): extended module"
build --features ext
opt "$out/m.x.wasm" b c k q t e h

# The opt-in scripts are wrapped in a function (--format=iife); the loader needs no wrapper (3 B gzip):
# its top level is one `try` block, so its declarations stay in that block, out of the page's scope.
es() { node_modules/.bin/esbuild "$1" --minify --target=es2020 --legal-comments=none --log-level=warning "${@:3}" --outfile="$2" >&2; }
step "esbuild: opt-in scripts"
es tracker/js/storage.js "$out/m.s.js" --format=iife
es tracker/js/vitals.js "$out/m.w.js" --format=iife
es tracker/js/links.js "$out/m.o.js" --define:WHICH=1 --format=iife
es tracker/js/links.js "$out/m.f.js" --define:WHICH=2 --format=iife
es tracker/js/engagement.js "$out/m.e.js" --format=iife
hash=$(cat "$out"/m.* tracker/js/main.js | sha256sum | cut -c1-16)
step "esbuild: t.js (build $hash)"
es tracker/js/main.js "$out/t.js" --define:H="\"$hash\"" --define:INLINE=0
# The same loader with the default module inlined (base64), for the size comparison only.
b64=$(base64 -w0 "$out/m.wasm")
es tracker/js/main.js "$out/t.inline.js" --define:H="\"$hash\"" --define:INLINE="\"$b64\""

# Replace only our own files; keep the previous build for pages that still cache the old t.js.
prev=$(sed -n 2p "$stamp" 2>/dev/null || true)
for f in www/dist/t/*; do
  [ -e "$f" ] || continue
  case "$(basename "$f")" in "$hash".* | "$prev".*) ;; *) rm -f "$f" ;; esac
done
for f in "$out"/m.*; do cp "$f" "www/dist/t/$hash.${f#"$out"/m.}"; done
cp "$out/t.js" www/dist/t.js
cat >www/dist/_headers.tracker <<'HEADERS'
/t.js
  Cache-Control: public, max-age=300
  Access-Control-Allow-Origin: *
/t/*
  Cache-Control: public, max-age=31536000, immutable
  Access-Control-Allow-Origin: *
HEADERS
printf '%s\n%s\n' "$sum" "$hash" >"$stamp"
js=$(wc -c <www/dist/t.js)
wb=$(wc -c <"www/dist/t/$hash.wasm")
gz=$(( $(gzip -9c www/dist/t.js | wc -c) + $(gzip -9c "www/dist/t/$hash.wasm" | wc -c) ))
summary "tracker built in $(($(date +%s) - start)) s: t.js $js B + t/$hash.wasm $wb B = $((js + wb)) B raw, $gz B gzip -9"
