#!/usr/bin/env node
// Ingest benchmark: drives the local worker (wrangler dev, workerd) and a trivial baseline worker in the
// same run with (1) NDJSON batches from concurrent clients, (2) single beacons at a fixed rate.
//   node bench/ingest.mjs [--seconds 15] [--batch 100] [--concurrency 8] [--rate 500]
// Prints a table and writes bench-output/ingest.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { startWorker, ROOT } from '../tests/lib/worker.mjs';

const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const SECONDS = Number(args.seconds ?? 15), BATCH = Number(args.batch ?? 100), CONC = Number(args.concurrency ?? 8), RATE = Number(args.rate ?? 500);
const UA = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

function line(i) {
  const payload = JSON.stringify({ 'user-agent': UA, locale: 'en-US', referrer: 'https://www.google.com/', pathname: `/p/${i % 50}`, href: `https://bench.example/p/${i % 50}?utm_source=b` });
  return JSON.stringify({ timestamp: new Date().toISOString(), action: 'page_hit', version: '1', session_id: `s-${i % 5000}`, tenant_id: 'bench', domain: 'bench.example', payload });
}
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN; };

async function batched(url) {
  const body = Array.from({ length: BATCH }, (_, i) => line(i)).join('\n');
  const lat = []; let events = 0, errors = 0;
  const end = Date.now() + SECONDS * 1000;
  await Promise.all(Array.from({ length: CONC }, async () => {
    while (Date.now() < end) {
      const t = performance.now();
      const r = await fetch(url, { method: 'POST', body, headers: { 'Content-Type': 'text/plain' } });
      const j = await r.json().catch(() => ({}));
      lat.push(performance.now() - t);
      if (r.status === 202) events += j.successful_rows; else errors++;
    }
  }));
  return { events_per_s: Math.round(events / SECONDS), p50_ms: pct(lat, 50), p99_ms: pct(lat, 99), requests: lat.length, errors };
}

async function beacons(url) {
  const lat = []; let errors = 0, sent = 0;
  const total = RATE * SECONDS, start = performance.now();
  const inflight = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    sent++;
    inflight.push((async () => {
      const t = performance.now();
      const r = await fetch(url, { method: 'POST', body: line(i), headers: { 'Content-Type': 'text/plain' } }).catch(() => null);
      if (r) await r.arrayBuffer();
      lat.push(performance.now() - t);
      if (!r || r.status !== 202) errors++;
    })());
  }
  await Promise.all(inflight);
  const elapsed = (performance.now() - start) / 1000;
  return { achieved_rps: Math.round(sent / elapsed), p50_ms: pct(lat, 50), p99_ms: pct(lat, 99), requests: sent, errors };
}

async function measure(name, w, token) {
  const url = `${w.base}/v0/events?name=analytics_events${token ? `&token=${token}` : ''}`;
  process.stderr.write(`==> ${name}: warm-up\n`);
  for (let i = 0; i < 50; i++) await (await fetch(url, { method: 'POST', body: line(i) })).arrayBuffer();
  process.stderr.write(`==> ${name}: ${CONC} clients x ${BATCH}-event batches for ${SECONDS} s\n`);
  const b = await batched(url);
  process.stderr.write(`==> ${name}: single beacons at ${RATE}/s for ${SECONDS} s\n`);
  const s = await beacons(url);
  return { name, batched: b, beacons: s };
}

const results = [];
const starling = await startWorker();
try { results.push(await measure('starling', starling, starling.token('bench'))); } finally { await starling.stop(); }
const baseline = await startWorker({ config: `${ROOT}/bench/baseline/wrangler.toml` });
try { results.push(await measure('baseline', baseline)); } finally { await baseline.stop(); }

const f = (x) => (typeof x === 'number' ? (Number.isInteger(x) ? String(x) : x.toFixed(1)) : String(x));
console.log(`\n| worker | batched events/s | batch p50 ms | batch p99 ms | beacon rate/s | beacon p50 ms | beacon p99 ms | errors |`);
console.log(`|---|---|---|---|---|---|---|---|`);
for (const r of results) console.log(`| ${r.name} | ${f(r.batched.events_per_s)} | ${f(r.batched.p50_ms)} | ${f(r.batched.p99_ms)} | ${f(r.beacons.achieved_rps)} | ${f(r.beacons.p50_ms)} | ${f(r.beacons.p99_ms)} | ${r.batched.errors + r.beacons.errors} |`);
mkdirSync(`${ROOT}/bench-output`, { recursive: true });
writeFileSync(`${ROOT}/bench-output/ingest.json`, JSON.stringify({ date: new Date().toISOString(), cpus: cpus().length, cpu: cpus()[0]?.model, seconds: SECONDS, batch: BATCH, concurrency: CONC, rate: RATE, results }, null, 2));
const s = results[0];
console.log(`bench: starling ${s.batched.events_per_s} events/s batched (target >= 5000), beacon p99 ${f(s.beacons.p99_ms)} ms at ${s.beacons.achieved_rps}/s (target < 50 ms at 500/s)`);
