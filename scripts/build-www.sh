#!/usr/bin/env bash
# Builds the tenant dashboard and its embed element unless their inputs are unchanged:
#   www/src/main.js + styles.css (+ uPlot) → www/dist/dashboard/ (index.html, assets/app.<hash>.{js,css})
#   www/src/embed.js → www/dist/embed/starling-dashboard.js; www/embed/* (sample host page) → www/dist/embed/
#   www/dist/_headers: CSP and security headers for /dashboard/* and /embed/*, plus the tracker's cache rules.
# Only these files are touched in www/dist: the tracker build writes t.js and t/*.wasm there too.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
esbuild=node_modules/.bin/esbuild
[ -x "$esbuild" ] && [ -f node_modules/uplot/dist/uPlot.esm.js ] || die "esbuild/uplot are missing: run scripts/setup.sh (npm ci)"
mkdir -p www/dist
stamp=www/dist/dashboard/.inputs
sum=$( (cat package-lock.json scripts/build-www.sh; cat www/dist/_headers.tracker 2>/dev/null || true
  find www/src www/embed -type f | LC_ALL=C sort | while read -r f; do echo "$f"; cat "$f"; done) | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && [ -f www/dist/dashboard/index.html ] &&
  [ -f www/dist/embed/starling-dashboard.js ] && [ -f www/dist/_headers ]; then
  echo "dashboard build up to date" >&2
  exit 0
fi
start=$(date +%s)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/dashboard/assets" "$tmp/embed"

step "esbuild dashboard (www/src/main.js, styles.css + uPlot)"
"$esbuild" www/src/main.js --bundle --minify --format=iife --target=es2020 --legal-comments=none \
  --log-level=warning --outfile="$tmp/app.js" >&2
"$esbuild" www/src/styles.css --bundle --minify --target=chrome100,firefox100,safari15 --legal-comments=none \
  --log-level=warning --outfile="$tmp/app.css" >&2
js="assets/app.$(sha256sum "$tmp/app.js" | cut -c1-12).js"
css="assets/app.$(sha256sum "$tmp/app.css" | cut -c1-12).css"
cp "$tmp/app.js" "$tmp/dashboard/$js"
cp "$tmp/app.css" "$tmp/dashboard/$css"
cp www/src/logo.svg "$tmp/dashboard/assets/logo.svg"
sed -e "s#__APP_JS__#$js#" -e "s#__APP_CSS__#$css#" www/src/index.html >"$tmp/dashboard/index.html"
grep -q "$js" "$tmp/dashboard/index.html" && grep -q "$css" "$tmp/dashboard/index.html" ||
  die "www/src/index.html must reference __APP_JS__ and __APP_CSS__"

step "esbuild embed element (www/src/embed.js → embed/starling-dashboard.js) and sample page"
"$esbuild" www/src/embed.js --bundle --minify --format=iife --target=es2020 --legal-comments=none \
  --log-level=warning --outfile="$tmp/embed/starling-dashboard.js" >&2
cp www/embed/* "$tmp/embed/"

step "www/dist/_headers"
{
  cat <<'HEADERS'
/dashboard/*
  Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'
  X-Content-Type-Options: nosniff
  Referrer-Policy: no-referrer
  Permissions-Policy: camera=(), microphone=(), geolocation=()
/dashboard/assets/*
  Cache-Control: public, max-age=31536000, immutable
/embed/*
  Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; frame-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'
  X-Content-Type-Options: nosniff
  Referrer-Policy: no-referrer
/embed/starling-dashboard.js
  Cache-Control: public, max-age=300
  Access-Control-Allow-Origin: *
HEADERS
  if [ -f www/dist/_headers.tracker ]; then
    cat www/dist/_headers.tracker
  else
    printf '/t.js\n  Cache-Control: public, max-age=300\n/t/*\n  Cache-Control: public, max-age=31536000, immutable\n'
  fi
} >"$tmp/_headers"

# Replace only our own outputs.
rm -rf www/dist/dashboard www/dist/embed
mv "$tmp/dashboard" www/dist/dashboard
mv "$tmp/embed" www/dist/embed
mv "$tmp/_headers" www/dist/_headers
echo "$sum" >"$stamp"
jsb=$(wc -c <"www/dist/dashboard/$js")
cssb=$(wc -c <"www/dist/dashboard/$css")
gz=$(( $(gzip -9c "www/dist/dashboard/$js" | wc -c) + $(gzip -9c "www/dist/dashboard/$css" | wc -c) ))
summary "dashboard built in $(($(date +%s) - start)) s: $js $jsb B + $css $cssb B ($gz B gzip -9), embed $(wc -c <www/dist/embed/starling-dashboard.js) B"
