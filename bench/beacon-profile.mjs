#!/usr/bin/env node
// Where one beacon's time goes, without load: sequential beacons against Starling under `wrangler dev`,
// the client's latency next to the handler's `latency_ms` and per-step `steps` log fields, then the time
// from a beacon's 202 until it is applied (queue batch timeout + consumer), and the consumer's own time.
//   node bench/beacon-profile.mjs [--requests 300]
import { loadavg } from 'node:os';
import { startWorker } from '../tests/lib/worker.mjs';

const args = Object.fromEntries(
  process.argv
    .slice(2)
    .join(' ')
    .split('--')
    .filter(Boolean)
    .map((a) => a.trim().split(/\s+/)),
);
const N = Number(args.requests ?? 300);
const UA = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
};
const today = () => new Date().toISOString().slice(0, 10);
const body = (i) =>
  JSON.stringify({
    timestamp: new Date().toISOString(),
    action: 'page_hit',
    version: '1',
    session_id: `s-${i}`,
    tenant_id: 'prof',
    domain: 'prof.example',
    payload: JSON.stringify({ 'user-agent': UA, locale: 'en-US', pathname: `/p/${i % 9}`, href: `https://prof.example/p/${i % 9}` }),
  });

const w = await startWorker({ extraArgs: ['--var', 'SPOOL_INLINE_MAX_ROWS:100'] });
try {
  const url = `${w.base}/v0/events?name=analytics_events&token=${w.token('prof')}`;
  for (let i = 0; i < 50; i++) await (await fetch(url, { method: 'POST', body: body(i) })).arrayBuffer();
  const load = loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  const from = w.logs().length;
  const client = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    const r = await fetch(url, { method: 'POST', body: body(i) });
    await r.arrayBuffer();
    client.push(performance.now() - t);
  }
  await new Promise((r) => setTimeout(r, 1500));
  const lines = w
    .logs()
    .slice(from)
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes('"route":"events"'))
    .map((l) => JSON.parse(l));
  const steps = {};
  for (const l of lines) {
    let prev = 0;
    for (const [k, v] of Object.entries(l.steps ?? {}).sort((a, b) => a[1] - b[1])) {
      (steps[k] ??= []).push(v - prev);
      prev = v;
    }
  }
  // One beacon from its 202 to applied (usage counted in the consumer's transaction).
  const before = await usageNow();
  const t0 = Date.now();
  await (await fetch(url, { method: 'POST', body: body(1) })).arrayBuffer();
  const accepted = Date.now();
  while ((await usageNow()) < before + 1 && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 50));
  const applied = Date.now();
  const deliveries = w
    .logs()
    .split('\n')
    .filter((l) => l.includes('"kind":"queue_delivery"'))
    .map((l) => JSON.parse(l));
  console.log(`Sequential beacons: ${N} (after 50 to warm up), load ${load}`);
  console.log(`| measure | p50 ms | p90 ms | p99 ms |`);
  console.log(`|---|---|---|---|`);
  console.log(
    `| client (fetch to answer) | ${pct(client, 50).toFixed(1)} | ${pct(client, 90).toFixed(1)} | ${pct(client, 99).toFixed(1)} |`,
  );
  console.log(
    `| handler latency_ms | ${pct(
      lines.map((l) => l.latency_ms),
      50,
    )} | ${pct(
      lines.map((l) => l.latency_ms),
      90,
    )} | ${pct(
      lines.map((l) => l.latency_ms),
      99,
    )} |`,
  );
  for (const [k, v] of Object.entries(steps)) console.log(`| step ${k} | ${pct(v, 50)} | ${pct(v, 90)} | ${pct(v, 99)} |`);
  console.log(`| one beacon, 202 to applied | ${applied - accepted} | | |`);
  console.log(
    `| consumer delivery latency_ms (all deliveries) | ${pct(
      deliveries.map((d) => d.latency_ms),
      50,
    )} | ${pct(
      deliveries.map((d) => d.latency_ms),
      90,
    )} | ${pct(
      deliveries.map((d) => d.latency_ms),
      99,
    )} |`,
  );
  console.log(
    `load after: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );

  async function usageNow() {
    const r = await w.fetch(`/v0/usage.json?date_from=${today()}&date_to=${today()}`, {
      headers: { Authorization: `Bearer ${w.token('prof', 'read')}` },
    });
    return r.status === 200 ? JSON.parse(r.body).totals.events_accepted : 0;
  }
} finally {
  await w.stop();
}
