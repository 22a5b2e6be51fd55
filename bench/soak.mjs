#!/usr/bin/env node
// Ingest soak: posts N events in 1,000-row NDJSON requests as fast as the edge takes them, then waits
// until every accepted event has been applied (usage.json's `events_accepted`, written in the same D1
// transaction as the rollups) and reports accepted vs applied, the time to drain, and the consumer's
// per-delivery time and peak wasm memory (from its `queue_delivery` log lines).
//
//   node bench/soak.mjs [--events 500000] [--rows 1000] [--concurrency 4] [--drain-timeout 600]
//   node bench/soak.mjs --url http://127.0.0.1:8787 --token <tracker> --read-token <read>   (a running worker)
//
// Exit status 1 when accepted != applied after the drain timeout. Writes bench-output/soak.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { startWorker, httpCall, ROOT } from '../tests/lib/worker.mjs';

const args = Object.fromEntries(
  process.argv
    .slice(2)
    .join(' ')
    .split('--')
    .filter(Boolean)
    .map((a) => {
      const [k, ...v] = a.trim().split(/\s+/);
      return [k, v.join(' ') || 'true'];
    }),
);
const EVENTS = Number(args.events ?? 500_000);
const ROWS = Number(args.rows ?? 1000);
const CONC = Number(args.concurrency ?? 4);
const DRAIN_TIMEOUT_S = Number(args['drain-timeout'] ?? 600);
const TENANT = args.tenant ?? `soak${Date.now().toString(36)}`;
const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const progress = (s) => process.stderr.write(`${s}\n`);

function body(offset) {
  const lines = [];
  const now = new Date().toISOString();
  for (let i = 0; i < ROWS; i++) {
    const n = offset + i;
    const payload = JSON.stringify({
      'user-agent': UA,
      locale: 'en-US',
      referrer: 'https://www.google.com/',
      pathname: `/p/${n % 200}`,
      href: `https://soak.example/p/${n % 200}`,
    });
    lines.push(
      JSON.stringify({
        timestamp: now,
        action: 'page_hit',
        version: '1',
        session_id: `s-${n % 20000}`,
        tenant_id: TENANT,
        domain: 'soak.example',
        payload,
      }),
    );
  }
  return lines.join('\n');
}

let worker;
let base = args.url;
let tracker = args.token;
let reader = args['read-token'];
if (!base) {
  progress('==> starting wrangler dev (local D1/R2/Queues)');
  worker = await startWorker();
  base = worker.base;
  tracker = worker.token(TENANT);
  reader = worker.token(TENANT, 'read');
}

async function applied() {
  const today = new Date().toISOString().slice(0, 10);
  const r = await Promise.race([
    httpCall(`${base}/v0/usage.json?date_from=${today}&date_to=${today}`, { headers: { Authorization: `Bearer ${reader}` } }),
    new Promise((res) => setTimeout(() => res({ status: 'timeout' }), 10_000)),
  ]).catch((e) => ({ status: e.code ?? 'network' }));
  if (r.status !== 200) return { error: r.status };
  return { value: JSON.parse(r.body).totals?.events_accepted ?? 0 };
}

// With a local worker, echo its delivery lines and errors as they come (what the consumer is doing).
let logOffset = 0;
const echo = setInterval(() => {
  if (!worker) return;
  const out = worker.logs();
  for (const l of out.slice(logOffset).split('\n')) {
    if (/queue_delivery|QUEUE|restarted|"level":"error"|Error|exceeded/.test(l)) progress(`    worker: ${l.slice(0, 300)}`);
  }
  logOffset = out.length;
}, 1000);
// Crons never fire locally: fire the minute cron (the spool sweep) every 15 s, as production's would
// every minute, so batches the local queue loses or stalls on are applied. Counted below.
const sweeper = setInterval(() => {
  httpCall(`${base}/__scheduled?cron=${encodeURIComponent('* * * * *')}`).catch(() => {});
}, 15_000);
const before = (await applied()).value ?? 0;
let accepted = 0;
let sent = 0;
const refused = {};
const examples = {};
const latencies = [];
const start = performance.now();
let next = 0;
const requests = Math.ceil(EVENTS / ROWS);
progress(`==> posting ${EVENTS} events in ${requests} requests of ${ROWS} rows, ${CONC} at a time`);
await Promise.all(
  Array.from({ length: CONC }, async () => {
    for (;;) {
      const i = next++;
      if (i >= requests) return;
      const t = performance.now();
      const r = await httpCall(`${base}/v0/events?name=analytics_events`, {
        method: 'POST',
        body: body(i * ROWS),
        headers: { Authorization: `Bearer ${tracker}`, 'Content-Type': 'application/x-ndjson' },
      }).catch((e) => ({ status: e.code ?? 'network', body: '' }));
      latencies.push(performance.now() - t);
      sent += ROWS;
      if (r.status === 202 || r.status === 200) accepted += JSON.parse(r.body).successful_rows;
      else {
        refused[r.status] = (refused[r.status] ?? 0) + 1;
        if (!examples[r.status]) examples[r.status] = String(r.body).slice(0, 300);
      }
      if (i % 50 === 49) progress(`    ${i + 1}/${requests} requests, ${accepted} accepted`);
    }
  }),
);
const postSeconds = (performance.now() - start) / 1000;
progress(`==> posted in ${postSeconds.toFixed(1)} s (${Math.round(accepted / postSeconds)} events/s accepted); waiting for the consumer`);

const drainStart = performance.now();
let done = 0;
let lastReport = 0;
for (;;) {
  const a = await applied();
  if (a.value !== undefined) done = a.value - before;
  if (done >= accepted) break;
  const waited = (performance.now() - drainStart) / 1000;
  if (waited > DRAIN_TIMEOUT_S) break;
  if (waited - lastReport >= 10) {
    progress(`    ${done}/${accepted} applied after ${waited.toFixed(0)} s`);
    lastReport = waited;
  }
  await new Promise((r) => setTimeout(r, 1000));
}
const drainSeconds = (performance.now() - drainStart) / 1000;
clearInterval(echo);
clearInterval(sweeper);
const swept = (worker?.logs() ?? '')
  .split('\n')
  .filter((l) => l.includes('"spool_sweep"'))
  .map((l) => {
    try {
      return JSON.parse(l.slice(l.indexOf('{'))).applied ?? 0;
    } catch {
      return 0;
    }
  })
  .reduce((a, b) => a + b, 0);

// The consumer logs one `queue_delivery` line per delivery with its time and the wasm memory size.
const deliveries = (worker?.logs() ?? '')
  .split('\n')
  .filter((l) => l.includes('"queue_delivery"'))
  .map((l) => {
    try {
      return JSON.parse(l.slice(l.indexOf('{')));
    } catch {
      return null;
    }
  })
  .filter(Boolean);
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? null;
};
const result = {
  date: new Date().toISOString(),
  cpus: cpus().length,
  cpu: cpus()[0]?.model,
  events: EVENTS,
  rows_per_request: ROWS,
  concurrency: CONC,
  sent,
  accepted,
  applied: done,
  refused,
  refused_examples: examples,
  post_seconds: Number(postSeconds.toFixed(1)),
  accepted_per_s: Math.round(accepted / postSeconds),
  drain_seconds: Number(drainSeconds.toFixed(1)),
  request_p50_ms: pct(latencies, 50),
  request_p99_ms: pct(latencies, 99),
  deliveries: deliveries.length,
  spool_objects_applied_by_sweep: swept,
  delivery_p50_ms: pct(
    deliveries.map((d) => d.latency_ms),
    50,
  ),
  delivery_max_ms: pct(
    deliveries.map((d) => d.latency_ms),
    100,
  ),
  peak_wasm_memory_mb: deliveries.length ? Math.max(...deliveries.map((d) => d.wasm_memory_mb ?? 0)) : null,
};
mkdirSync(`${ROOT}/bench-output`, { recursive: true });
writeFileSync(`${ROOT}/bench-output/soak.json`, JSON.stringify(result, null, 2));
// The worker's whole log (per-group `queue_apply` profile lines included), for a look afterwards.
if (worker) writeFileSync(`${ROOT}/bench-output/soak.log`, worker.logs());
if (worker) await worker.stop();
console.log(JSON.stringify(result, null, 2));
const ok = accepted === done;
console.log(
  `soak: ${accepted} accepted, ${done} applied (${ok ? 'equal' : 'NOT EQUAL'}) in ${postSeconds.toFixed(0)} s + ${drainSeconds.toFixed(0)} s to drain; ` +
    `${Object.values(refused).reduce((a, b) => a + b, 0)} requests refused; ${deliveries.length} deliveries (max ${result.delivery_max_ms} ms), ${swept} spooled batches applied by the sweep; peak wasm memory ${result.peak_wasm_memory_mb} MB`,
);
process.exit(ok ? 0 : 1);
