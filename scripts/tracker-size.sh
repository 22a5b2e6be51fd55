#!/usr/bin/env bash
# Prints what a page downloads to track, raw / gzip -9 / brotli (quality 11, node's zlib): Starling's
# t.js + its wasm module (also inlined, and with each opt-in feature), against flock.js from node_modules (as published, and re-minified with
# esbuild). Writes bench-output/tracker-size.json. Run scripts/build-tracker.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
[ -f www/dist/t.js ] || die "www/dist/t.js is missing: run scripts/build-tracker.sh first"
flock=node_modules/@tinybirdco/flock.js/dist/index.js
[ -f "$flock" ] || die "$flock is missing: run npm ci"
mkdir -p bench-output
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node_modules/.bin/esbuild "$flock" --minify --log-level=warning --outfile="$tmp/flock.min.js"
step "tracker sizes (bytes)"
node - "$flock" "$tmp/flock.min.js" <<'JS'
const { readFileSync, writeFileSync } = require('node:fs');
const { gzipSync, brotliCompressSync, constants } = require('node:zlib');
const [flock, flockMin] = process.argv.slice(2);
const size = (files) => {
  const r = { raw: 0, gzip: 0, brotli: 0 };
  for (const f of files) {
    const b = readFileSync(f);
    r.raw += b.length;
    r.gzip += gzipSync(b, { level: 9 }).length;
    r.brotli += brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
  }
  return r;
};
const js = readFileSync('www/dist/t.js', 'utf8');
const h = js.match(/t\/([0-9a-f]{16})/)?.[1];
if (!h) throw new Error('t.js names no build');
const t = (x) => `www/dist/t/${h}${x}`;
const version = JSON.parse(readFileSync('node_modules/@tinybirdco/flock.js/package.json', 'utf8')).version;
const base = ['www/dist/t.js', t('.wasm')];
// An opt-in capture: t.js fetches the extended module instead of the default one.
const ext = ['www/dist/t.js', t('.x.wasm')];
const rows = {
  'starling t.js (loader)': size(['www/dist/t.js']),
  [`starling t/${h}.wasm (default module)`]: size([t('.wasm')]),
  '**default page hit: t.js + module**': size(base),
  'same, module inlined in t.js (base64, one request)': size(['tracker/pkg/t.inline.js']),
  [`t/${h}.x.wasm (extended module)`]: size([t('.x.wasm')]),
  'opt-in storage: + .s.js': size([t('.s.js')]),
  'opt-in data-hash or data-404: t.js + extended module': size(ext),
  'opt-in web vitals: + extended + .w.js': size([...ext, t('.w.js')]),
  'opt-in outbound links: + extended + .o.js': size([...ext, t('.o.js')]),
  'opt-in file downloads: + extended + .f.js': size([...ext, t('.f.js')]),
  'opt-in engagement: + extended + .e.js': size([...ext, t('.e.js')]),
  'every opt-in at once': size([...ext, ...['s', 'w', 'o', 'f', 'e'].map((c) => t(`.${c}.js`))]),
  [`flock.js ${version} dist/index.js`]: size([flock]),
  [`flock.js ${version} esbuild --minify`]: size([flockMin]),
};
const w = Math.max(...Object.keys(rows).map((k) => k.length));
console.log(`${'file'.padEnd(w)}  ${'raw'.padStart(7)}  ${'gzip -9'.padStart(7)}  ${'brotli'.padStart(7)}`);
for (const [k, r] of Object.entries(rows)) console.log(`${k.padEnd(w)}  ${String(r.raw).padStart(7)}  ${String(r.gzip).padStart(7)}  ${String(r.brotli).padStart(7)}`);
writeFileSync('bench-output/tracker-size.json', JSON.stringify({ measured_at: new Date().toISOString(), build: h, flock_version: version, sizes: rows }, null, 2) + '\n');
const d = rows['**default page hit: t.js + module**'];
const f = rows[`flock.js ${version} esbuild --minify`];
process.stdout.write(`\u001b[1mstarling tracker ${d.gzip} B gzip (${d.brotli} B brotli) for a page hit, flock.js ${version} ${f.gzip} B gzip; target <= 2000 B gzip\u001b[0m\n`);
JS
