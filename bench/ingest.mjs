#!/usr/bin/env node
// Ingest benchmark: drives the local worker (wrangler dev, workerd) and a trivial baseline worker in the
// same run with (1) NDJSON batches from concurrent clients, (2) single beacons at fixed rates.
//   node bench/ingest.mjs [--seconds 15] [--batch 100] [--concurrency 8] [--rates 100,250,500]
// Beacons are sent open-loop (a new request every 1/rate s, whatever the answers), so queueing in the
// server shows up in the latencies. Prints a table and writes bench-output/ingest.json.
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { gzipSync } from 'node:zlib';
import { startWorker, ROOT } from '../tests/lib/worker.mjs';

const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const SECONDS = Number(args.seconds ?? 15), BATCH = Number(args.batch ?? 100), CONC = Number(args.concurrency ?? 8);
const RATES = String(args.rates ?? args.rate ?? '100,250,500').split(',').map(Number);
const UA = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

function line(i) {
  const payload = JSON.stringify({ 'user-agent': UA, locale: 'en-US', referrer: 'https://www.google.com/', pathname: `/p/${i % 50}`, href: `https://bench.example/p/${i % 50}?utm_source=b` });
  return JSON.stringify({ timestamp: new Date().toISOString(), action: 'page_hit', version: '1', session_id: `s-${i % 5000}`, tenant_id: 'bench', domain: 'bench.example', payload });
}
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN; };
const countError = (errors, key) => { errors[key] = (errors[key] ?? 0) + 1; };

async function batched(url) {
  const body = Array.from({ length: BATCH }, (_, i) => line(i)).join('\n');
  const lat = []; const errors = {}; let events = 0;
  const end = Date.now() + SECONDS * 1000;
  await Promise.all(Array.from({ length: CONC }, async () => {
    while (Date.now() < end) {
      const t = performance.now();
      const r = await fetch(url, { method: 'POST', body, headers: { 'Content-Type': 'text/plain' } }).catch((e) => ({ status: e.cause?.code ?? 'network' }));
      const j = r.json ? await r.json().catch(() => ({})) : {};
      lat.push(performance.now() - t);
      if (r.status === 202) events += j.successful_rows; else countError(errors, r.status);
    }
  }));
  return { events_per_s: Math.round(events / SECONDS), p50_ms: pct(lat, 50), p99_ms: pct(lat, 99), requests: lat.length, errors };
}

async function beacons(url, rate) {
  const lat = []; const errors = {};
  const total = rate * SECONDS, start = performance.now();
  const inflight = [];
  for (let i = 0; i < total; i++) {
    const wait = start + (i * 1000) / rate - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    inflight.push((async () => {
      const t = performance.now();
      const r = await fetch(url, { method: 'POST', body: line(i), headers: { 'Content-Type': 'text/plain' } }).catch((e) => ({ status: e.cause?.code ?? 'network' }));
      if (r.arrayBuffer) await r.arrayBuffer();
      lat.push(performance.now() - t);
      if (r.status !== 202) countError(errors, r.status);
    })());
  }
  const sentIn = (performance.now() - start) / 1000;
  await Promise.all(inflight);
  return { rate, achieved_rps: Math.round(total / sentIn), p50_ms: pct(lat, 50), p99_ms: pct(lat, 99), requests: total, errors };
}

async function measure(name, w, token) {
  const url = `${w.base}/v0/events?name=analytics_events${token ? `&token=${token}` : ''}`;
  process.stderr.write(`==> ${name}: warm-up\n`);
  for (let i = 0; i < 50; i++) await (await fetch(url, { method: 'POST', body: line(i) })).arrayBuffer();
  process.stderr.write(`==> ${name}: ${CONC} clients x ${BATCH}-event batches for ${SECONDS} s\n`);
  const b = await batched(url);
  await new Promise((r) => setTimeout(r, 3000)); // let the queue consumer drain
  const s = [];
  for (const rate of RATES) {
    process.stderr.write(`==> ${name}: single beacons at ${rate}/s for ${SECONDS} s\n`);
    s.push(await beacons(url, rate));
    await new Promise((r) => setTimeout(r, 3000));
  }
  return { name, batched: b, beacons: s };
}

const results = [];
const starling = await startWorker();
try { results.push(await measure('starling', starling, starling.token('bench'))); } finally { await starling.stop(); }
const baseline = await startWorker({ config: `${ROOT}/bench/baseline/wrangler.toml` });
try { results.push(await measure('baseline', baseline)); } finally { await baseline.stop(); }

const f = (x) => (typeof x === 'number' ? (Number.isInteger(x) ? String(x) : x.toFixed(1)) : String(x));
const errs = (e) => Object.entries(e).map(([k, v]) => `${v}×${k}`).join(' ') || '0';
console.log('\nNDJSON batches');
console.log(`| worker | events/s | p50 ms | p99 ms | requests | errors |`);
console.log(`|---|---|---|---|---|---|`);
for (const r of results) console.log(`| ${r.name} | ${f(r.batched.events_per_s)} | ${f(r.batched.p50_ms)} | ${f(r.batched.p99_ms)} | ${r.batched.requests} | ${errs(r.batched.errors)} |`);
console.log('\nSingle beacons (open loop)');
console.log(`| worker | rate/s | p50 ms | p99 ms | requests | errors |`);
console.log(`|---|---|---|---|---|---|`);
for (const r of results) for (const s of r.beacons) console.log(`| ${r.name} | ${s.rate} | ${f(s.p50_ms)} | ${f(s.p99_ms)} | ${s.requests} | ${errs(s.errors)} |`);

const wasm = `${ROOT}/edge-worker/build/index_bg.wasm`;
const size = existsSync(wasm) ? { raw: readFileSync(wasm).length, gzip: gzipSync(readFileSync(wasm), { level: 9 }).length } : null;
mkdirSync(`${ROOT}/bench-output`, { recursive: true });
writeFileSync(`${ROOT}/bench-output/ingest.json`, JSON.stringify({ date: new Date().toISOString(), cpus: cpus().length, cpu: cpus()[0]?.model, seconds: SECONDS, batch: BATCH, concurrency: CONC, rates: RATES, worker_wasm_bytes: size, results }, null, 2));
const s = results[0];
const at500 = s.beacons.find((b) => b.rate === 500) ?? s.beacons.at(-1);
console.log(`bench: starling ${s.batched.events_per_s} events/s batched (target >= 5000); beacon p99 ${f(at500.p99_ms)} ms at ${at500.rate}/s (target < 50 ms at 500/s; baseline ${f(results[1].beacons.find((b) => b.rate === at500.rate)?.p99_ms)} ms)`);
