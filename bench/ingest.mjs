#!/usr/bin/env node
// Ingest benchmark (issue #13): Starling under `wrangler dev` (workerd, local D1/R2/Queues) and the
// trivial baseline worker (bench/baseline/) in the same run, load from autocannon (npm, pinned).
//   node bench/ingest.mjs [--seconds 15] [--rates 100,250,500] [--batch 1000] [--connections 4]
// 1. single beacons at fixed rates (autocannon overallRate, enough connections that a connection never
//    waits for a slow answer below ~200 ms, so queueing in the server shows in the latencies);
// 2. NDJSON batches (`--batch` rows per request, `--connections` clients): events/s accepted, then the
//    time until every accepted event is applied (queue lag after the run);
// 3. a free-plan token flooding 1,000-row requests while another tenant sends beacons: events accepted
//    (must equal the plan's events per hour) and the other tenant's latency, quiet vs during the flood;
// 4. where a beacon's time goes: client latency vs the handler's `latency_ms` and `steps` log fields,
//    and the consumer's delivery times;
// 5. what a refusal costs: health checks, 401s (bad signature) and 429s (a tenant past its hourly events)
//    at a fixed rate, against the baseline's trivial answer at the same rate.
// 6. (`--phases edge`, not in the default set) the same beacons against Starling without its queue
//    consumer in the runtime (wrangler.toml without [[queues.consumers]]): the edge's cost alone, as in
//    production, where the consumer runs in invocations of its own; accepted events stay in the queue.
// `--phases beacons,batched,flood,refusals` runs only some of them (the baseline runs what they need).
// Every phase records `uptime` (the machine's load) next to its numbers. Prints Markdown tables and
// writes bench-output/ingest.json. Runs with the production spool setting (beacons inline in their
// queue message, SPOOL_INLINE_MAX_ROWS=100), not the tests' (everything spooled).
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import autocannon from 'autocannon';
import { edgeOnlyConfig, startWorker, ROOT } from '../tests/lib/worker.mjs';
import { line, ndjson } from './lib/events.mjs';

const args = Object.fromEntries(
  process.argv
    .slice(2)
    .join(' ')
    .split('--')
    .filter(Boolean)
    .map((a) => a.trim().split(/\s+/)),
);
const SECONDS = Number(args.seconds ?? 15);
const RATES = String(args.rates ?? '100,250,500')
  .split(',')
  .map(Number);
const BATCH = Number(args.batch ?? 1000);
const CONNECTIONS = Number(args.connections ?? 4);
const PHASES = new Set(String(args.phases ?? 'beacons,batched,flood,refusals').split(','));
/** Requests per second of the refusal phase (each kind for REFUSAL_SECONDS). */
const REFUSAL_RATE = Number(args['refusal-rate'] ?? 250);
const REFUSAL_SECONDS = 10;
const today = () => new Date().toISOString().slice(0, 10);
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (s) => process.stderr.write(`==> ${s} (load ${load()})\n`);

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
};

/** Runs autocannon; returns latency percentiles, rates and status counts. */
async function cannon(opts) {
  const seconds = opts.duration ?? SECONDS;
  const r = await autocannon({ method: 'POST', headers: { 'content-type': 'text/plain' }, duration: seconds, timeout: 30, ...opts });
  const codes = Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).map(([k, v]) => [k, v.count]));
  return {
    p50_ms: r.latency.p50,
    p99_ms: r.latency.p99,
    max_ms: r.latency.max,
    requests: r.requests.total,
    rps: Math.round(r.requests.total / seconds),
    codes,
    errors: r.errors,
    timeouts: r.timeouts,
    load: load(),
  };
}

/** Connections for `rate` requests/s: enough that one never waits for an answer below ~200 ms. */
const connectionsFor = (rate) => Math.max(20, Math.ceil(rate / 5));

/** Beacons at `rate` requests/s, open loop as far as connections allow. */
function beacons(url, rate, tenant, seconds = SECONDS) {
  return cannon({ url, body: line(tenant, 1), overallRate: rate, connections: connectionsFor(rate), duration: seconds });
}

/** GETs of `url` at `rate` requests/s, connected as the beacons are (the health-check control). */
function gets(url, rate) {
  return cannon({ url, method: 'GET', body: undefined, overallRate: rate, connections: connectionsFor(rate) });
}

/** Request log lines of the worker written after `from` (an offset into its output). */
function requestLines(w, from, route = 'events') {
  return w
    .logs()
    .slice(from)
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes('"kind":"request"') && l.includes(`"route":"${route}"`))
    .map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return null;
      }
    })
    .filter(Boolean);
}
function deliveryLines(w, from) {
  return w
    .logs()
    .slice(from)
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes('"kind":"queue_delivery"'))
    .map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return null;
      }
    })
    .filter(Boolean);
}
/** The handler's own latency and per-step times over these lines. */
function handler(lines) {
  const steps = {};
  for (const l of lines) for (const [k, v] of Object.entries(l.steps ?? {})) (steps[k] ??= []).push(v);
  return {
    requests: lines.length,
    latency_p50_ms: pct(
      lines.map((l) => l.latency_ms),
      50,
    ),
    latency_p99_ms: pct(
      lines.map((l) => l.latency_ms),
      99,
    ),
    steps_p50_ms: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, pct(v, 50)])),
    steps_p99_ms: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, pct(v, 99)])),
  };
}

async function usage(w, tenant) {
  const r = await w.fetch(`/v0/usage.json?date_from=${today()}&date_to=${today()}`, {
    headers: { Authorization: `Bearer ${w.token(tenant, 'read')}` },
  });
  return r.status === 200 ? JSON.parse(r.body).totals.events_accepted : NaN;
}

async function warm(url, tenant) {
  for (let i = 0; i < 30; i++)
    await fetch(url, { method: 'POST', body: line(tenant, i) })
      .then((r) => r.arrayBuffer())
      .catch(() => {});
}

const out = {
  date: new Date().toISOString(),
  cpus: cpus().length,
  cpu: cpus()[0]?.model,
  seconds: SECONDS,
  rates: RATES,
  batch: BATCH,
  connections: CONNECTIONS,
  load_start: load(),
};

// ---- Starling ----
const starling = await startWorker({ extraArgs: ['--var', 'SPOOL_INLINE_MAX_ROWS:100', '--var', 'SPOOL_SWEEP_AFTER_SECS:30'] });
try {
  const w = starling;
  const url = (tenant) => `${w.base}/v0/events?name=analytics_events&token=${w.token(tenant)}`;
  await warm(url('bench'), 'bench');
  out.starling = { beacons: [] };
  for (const rate of PHASES.has('beacons') ? RATES : []) {
    log(`starling: beacons at ${rate}/s for ${SECONDS} s`);
    const from = w.logs().length;
    const r = await beacons(url('bench'), rate, 'bench');
    await sleep(1500);
    const lines = requestLines(w, from);
    // 503s the worker logged (with its reason); any others were answered by wrangler's proxy.
    const worker503 = lines.filter((l) => l.status === 503).map((l) => l.error);
    out.starling.beacons.push({
      rate,
      ...r,
      handler: handler(lines.filter((l) => l.status === 202)),
      worker_503: worker503.length,
      worker_503_reasons: [...new Set(worker503)].slice(0, 3),
    });
    await sleep(2000);
    // The control: Starling's health check at the same rate, the same runtime in front of a handler that
    // does no work (no token, no body, no I/O).
    log(`starling: health checks at ${rate}/s for ${SECONDS} s`);
    (out.starling.health ??= []).push({ rate, ...(await gets(`${w.base}/v0/health`, rate)) });
    await sleep(2000);
  }
  if (PHASES.has('batched')) await batched(w, url);
  if (PHASES.has('flood')) await flood(w, url);
  if (PHASES.has('refusals')) await refusals(w, url);
} finally {
  await starling.stop();
}

/** Batched NDJSON on its own tenant, then the time until all of it is applied. */
async function batched(w, url) {
  log(`starling: ${CONNECTIONS} connections x ${BATCH}-row NDJSON for ${SECONDS} s`);
  const fromB = w.logs().length;
  const b = await cannon({ url: url('batch'), body: ndjson('batch', BATCH), connections: CONNECTIONS });
  const ended = Date.now();
  await sleep(1000);
  // Accepted = the rows of every 202 in the worker's request log: autocannon does not count the answers
  // to requests still in flight when its duration ends, which the worker accepted all the same. Counted
  // again at every step of the wait: wrangler forwards the last lines late (a 3 s run once counted
  // 117,000 accepted one second after its end and then applied 120,000).
  const acceptedNow = () =>
    requestLines(w, fromB)
      .filter((l) => l.status === 202 && l.tenant === 'batch')
      .reduce((n, l) => n + (l.rows ?? 0), 0);
  let accepted = acceptedNow();
  let applied = 0;
  // Locally crons never fire on their own: fire the minute cron every 10 s, as production would every
  // minute (the sweep applies spooled batches older than SPOOL_SWEEP_AFTER_SECS, 30 s here, whose queue
  // message is late or lost: the local in-memory queue broker was seen to stop delivering).
  let lastCron = Date.now();
  while (Date.now() - ended < 300_000) {
    applied = await usage(w, 'batch');
    accepted = acceptedNow();
    if (applied >= accepted) break;
    if (Date.now() - lastCron > 10_000) {
      await w.cron();
      lastCron = Date.now();
    }
    await sleep(1000);
  }
  const swept = w
    .logs()
    .slice(fromB)
    .split('\n')
    .filter((l) => l.includes('"kind":"spool_sweep"'))
    .reduce((n, l) => n + (JSON.parse(l).applied ?? 0), 0);
  const deliveries = deliveryLines(w, fromB);
  mkdirSync(`${ROOT}/bench-output`, { recursive: true });
  writeFileSync(`${ROOT}/bench-output/ingest-batched.log`, w.logs().slice(fromB));
  out.starling.batched = {
    ...b,
    events_accepted: accepted,
    accepted_events_per_s: Math.round(accepted / SECONDS),
    events_applied: applied,
    lag_after_run_s: (Date.now() - ended) / 1000,
    applied_events_per_s: Math.round(applied / (SECONDS + (Date.now() - ended) / 1000)),
    handler: handler(requestLines(w, fromB)),
    deliveries: deliveries.length,
    delivery_p50_ms: pct(
      deliveries.map((d) => d.latency_ms),
      50,
    ),
    delivery_max_ms: Math.max(0, ...deliveries.map((d) => d.latency_ms)),
    peak_wasm_memory_mb: Math.max(0, ...deliveries.map((d) => d.wasm_memory_mb ?? 0)),
    spooled_objects_applied_by_sweep: swept,
    consumer: consumerProfile(w.logs().slice(fromB)),
    load_end: load(),
  };
}

/**
 * Where the consumer's time goes, from its `queue_apply` lines (one per grouped D1 transaction, queue
 * deliveries and sweeps alike) and `queue_group` lines (queue deliveries): per group p50 of each step,
 * totals, statements and binds per group, and per statement kind its count, rows written and D1's own
 * time (`meta.duration`) summed over the run.
 */
function consumerProfile(text) {
  const parse = (kind) =>
    text
      .split('\n')
      .filter((l) => l.startsWith('{') && l.includes(`"kind":"${kind}"`))
      .map((l) => {
        try {
          return JSON.parse(l);
        } catch {
          return null;
        }
      })
      .filter(Boolean);
  const applies = parse('queue_apply');
  const groups = parse('queue_group');
  const steps = {};
  for (const a of applies) for (const [k, v] of Object.entries(a.steps ?? {})) (steps[k] ??= []).push(v);
  const kinds = {};
  for (const a of applies)
    for (const [k, v] of Object.entries(a.kinds ?? {})) {
      const t = (kinds[k] ??= { statements: 0, rows_written: 0, d1_ms: 0 });
      t.statements += v.n;
      t.rows_written += v.rows;
      t.d1_ms = Math.round((t.d1_ms + v.ms) * 10) / 10;
    }
  const sum = (xs) => xs.reduce((n, x) => n + x, 0);
  return {
    groups: applies.length,
    events: sum(applies.map((a) => a.events)),
    per_group_p50: {
      events: pct(
        applies.map((a) => a.events),
        50,
      ),
      statements: pct(
        applies.map((a) => a.statements),
        50,
      ),
      binds: pct(
        applies.map((a) => a.binds),
        50,
      ),
      latency_ms: pct(
        applies.map((a) => a.latency_ms),
        50,
      ),
      d1_sql_ms: pct(
        applies.map((a) => a.d1_sql_ms),
        50,
      ),
      spool_read_ms: pct(
        groups.map((g) => g.spool_read_ms),
        50,
      ),
      spool_delete_ms: pct(
        groups.map((g) => g.spool_delete_ms),
        50,
      ),
      ...Object.fromEntries(Object.entries(steps).map(([k, v]) => [`${k}_ms`, pct(v, 50)])),
    },
    total_ms: {
      apply: sum(applies.map((a) => a.latency_ms)),
      d1_sql: Math.round(sum(applies.map((a) => a.d1_sql_ms))),
      ...Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, sum(v)])),
    },
    kinds,
  };
}

/** A free-plan tenant floods 1,000-row requests while another tenant sends beacons. */
async function flood(w, url) {
  const created = await w.admin('/v0/admin/tenants', {
    body: JSON.stringify({ tenant_id: 'freeflood', display_name: 'Flood', plan: 'free' }),
  });
  if (created.status !== 201) throw new Error(`creating the free tenant: ${created.status} ${created.text}`);
  log('starling: quiet beacons of another tenant, 50/s');
  await warm(url('quiet'), 'quiet');
  const quiet = await beacons(url('quiet'), 50, 'quiet', 10);
  log('starling: free-plan flood of 1,000-row requests (4 connections) + the other tenant at 50/s');
  const fromF = w.logs().length;
  const [flood, during] = await Promise.all([
    cannon({ url: url('freeflood'), body: ndjson('freeflood', 1000), connections: 4, duration: 10 }),
    beacons(url('quiet'), 50, 'quiet', 10),
  ]);
  await sleep(3000);
  const floodLines = requestLines(w, fromF).filter((l) => l.tenant === 'freeflood');
  const refusals = floodLines.filter((l) => l.status === 429);
  out.starling.flood = {
    plan: 'free',
    flood,
    events_accepted: floodLines.filter((l) => l.status === 202).reduce((n, l) => n + (l.rows ?? 0), 0),
    refused_429: refusals.length,
    handler_429_p50_ms: pct(
      refusals.map((l) => l.latency_ms),
      50,
    ),
    handler_429_p99_ms: pct(
      refusals.map((l) => l.latency_ms),
      99,
    ),
    events_applied: await usage(w, 'freeflood'),
    other_quiet: quiet,
    other_during: during,
  };
}

/**
 * Health checks, 401s and 429s at REFUSAL_RATE requests/s each: client latency and the handler's own
 * `latency_ms` from the request log.
 */
async function refusals(w, url) {
  const created = await w.admin('/v0/admin/tenants', {
    body: JSON.stringify({ tenant_id: 'refused', display_name: 'Refused', plan: 'free' }),
  });
  if (created.status !== 201) throw new Error(`creating the refused tenant: ${created.status} ${created.text}`);
  // The free plan's hourly events in one request; every request after it is a 429.
  await fetch(url('refused'), { method: 'POST', body: ndjson('refused', 1000) }).then((r) => r.arrayBuffer());
  const good = w.token('refused');
  const forged = `${good.slice(0, good.lastIndexOf('.') + 1)}${'A'.repeat(43)}`;
  const kinds = [
    ['health', { url: `${w.base}/v0/health`, method: 'GET', body: undefined }, 'health', 200],
    ['401 (bad signature)', { url: `${w.base}/v0/events?name=analytics_events&token=${forged}`, body: line('refused', 1) }, 'events', 401],
    ['429 (events quota)', { url: url('refused'), body: line('refused', 1) }, 'events', 429],
  ];
  out.starling.refusals = [];
  for (const [kind, opts, route, status] of kinds) {
    log(`starling: ${kind} at ${REFUSAL_RATE}/s for ${REFUSAL_SECONDS} s`);
    const from = w.logs().length;
    const r = await cannon({ ...opts, overallRate: REFUSAL_RATE, connections: 50, duration: REFUSAL_SECONDS });
    await sleep(1500);
    const lines = requestLines(w, from, route).filter((l) => l.status === status);
    out.starling.refusals.push({ kind, rate: REFUSAL_RATE, ...r, seconds: REFUSAL_SECONDS, handler: handler(lines) });
    await sleep(1000);
  }
}

// ---- Baseline ----
const baseline = await startWorker({ config: `${ROOT}/bench/baseline/wrangler.toml` });
try {
  const url = `${baseline.base}/`;
  await warm(url, 'bench');
  out.baseline = { beacons: [] };
  for (const rate of PHASES.has('beacons') || PHASES.has('edge') ? RATES : []) {
    log(`baseline: beacons at ${rate}/s for ${SECONDS} s`);
    out.baseline.beacons.push({ rate, ...(await beacons(url, rate, 'bench')) });
    await sleep(2000);
  }
  if (PHASES.has('batched')) {
    log(`baseline: ${CONNECTIONS} connections x ${BATCH}-row NDJSON for ${SECONDS} s`);
    const b = await cannon({ url, body: ndjson('bench', BATCH), connections: CONNECTIONS });
    out.baseline.batched = { ...b, accepted_events_per_s: Math.round(((b.codes['202'] ?? 0) * BATCH) / SECONDS) };
  }
  if (PHASES.has('refusals')) {
    log(`baseline: beacons at ${REFUSAL_RATE}/s for ${REFUSAL_SECONDS} s`);
    out.baseline.refusal_rate = await cannon({
      url,
      body: line('bench', 1),
      overallRate: REFUSAL_RATE,
      connections: 50,
      duration: REFUSAL_SECONDS,
    });
  }
} finally {
  await baseline.stop();
}

// ---- Starling without its consumer (the edge alone) ----
if (PHASES.has('edge')) {
  const edge = await startWorker({
    config: edgeOnlyConfig(),
    migrate: true,
    extraArgs: ['--var', 'SPOOL_INLINE_MAX_ROWS:100', '--var', 'DEFAULT_PLAN:enterprise'],
  });
  try {
    const url = `${edge.base}/v0/events?name=analytics_events&token=${edge.token('bench')}`;
    await warm(url, 'bench');
    out.starling_edge = { beacons: [] };
    for (const rate of RATES) {
      log(`starling without its consumer: beacons at ${rate}/s for ${SECONDS} s`);
      out.starling_edge.beacons.push({ rate, ...(await beacons(url, rate, 'bench')) });
      await sleep(2000);
    }
  } finally {
    await edge.stop();
  }
}

// ---- Baseline behind Starling's asset router (the beacon phase's control) ----
if (PHASES.has('beacons')) {
  const routed = await startWorker({ config: `${ROOT}/bench/baseline/wrangler.assets.toml` });
  try {
    const url = `${routed.base}/v0/events`;
    await warm(url, 'bench');
    out.baseline_assets = { beacons: [] };
    for (const rate of RATES) {
      log(`baseline behind the asset router: beacons at ${rate}/s for ${SECONDS} s`);
      out.baseline_assets.beacons.push({ rate, ...(await beacons(url, rate, 'bench')) });
      await sleep(2000);
    }
  } finally {
    await routed.stop();
  }
}

// ---- Report ----
const f = (x) => (typeof x === 'number' ? (Number.isInteger(x) ? x.toLocaleString('en-US') : x.toFixed(1)) : String(x));
function report() {
  const held = (rows) =>
    Math.max(0, ...rows.filter((r) => r.p99_ms < 100 && !(r.codes['503'] || r.errors || r.timeouts)).map((r) => r.rate));
  if (PHASES.has('beacons')) {
    console.log(`\nSingle beacons (autocannon, ${SECONDS} s per rate)`);
    console.log('| worker | rate/s | achieved/s | p50 ms | p99 ms | handler p50 / p99 ms | steps p50 ms | statuses | load (1/5/15 min) |');
    console.log('|---|---|---|---|---|---|---|---|---|');
    for (const name of ['starling', 'baseline']) {
      for (const r of out[name]?.beacons ?? []) {
        const h = r.handler ? `${f(r.handler.latency_p50_ms)} / ${f(r.handler.latency_p99_ms)}` : '-';
        const st = r.handler
          ? Object.entries(r.handler.steps_p50_ms)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')
          : '-';
        const w503 = r.worker_503 ? ` (${r.worker_503} from the worker: ${r.worker_503_reasons.join('; ')})` : '';
        console.log(
          `| ${name} | ${r.rate} | ${r.rps} | ${f(r.p50_ms)} | ${f(r.p99_ms)} | ${h} | ${st} | ${JSON.stringify(r.codes)}${w503}${r.errors ? ` ${r.errors} errors` : ''} | ${r.load} |`,
        );
      }
    }
    // The controls: what the runtime costs in front of a handler that does nothing.
    const controls = [
      ['starling /v0/health (no work)', out.starling.health ?? []],
      ['baseline behind the asset router', out.baseline_assets?.beacons ?? []],
    ];
    for (const [name, rows] of controls)
      for (const r of rows)
        console.log(
          `| ${name} | ${r.rate} | ${r.rps} | ${f(r.p50_ms)} | ${f(r.p99_ms)} | - | - | ${JSON.stringify(r.codes)}${r.errors ? ` ${r.errors} errors` : ''} | ${r.load} |`,
        );
    const hs = held(out.starling.beacons),
      hb = held(out.baseline?.beacons ?? []);
    out.held = { starling: hs, baseline: hb, ratio: hb ? hs / hb : NaN };
    console.log(
      `\nHighest rate with p99 < 100 ms: starling ${hs}/s, baseline ${hb}/s, ratio ${hb ? (hs / hb).toFixed(2) : 'n/a'} (goal >= 0.5)`,
    );
    const hh = held(out.starling.health ?? []),
      ha = held(out.baseline_assets?.beacons ?? []);
    out.held.controls = { starling_health: hh, baseline_assets: ha };
    console.log(`Controls: starling /v0/health ${hh}/s, baseline behind the asset router ${ha}/s`);
  }
  if (PHASES.has('edge')) {
    console.log(`\nSingle beacons, Starling without its queue consumer (the edge alone), ${SECONDS} s per rate`);
    console.log('| worker | rate/s | achieved/s | p50 ms | p99 ms | statuses | load (1/5/15 min) |');
    console.log('|---|---|---|---|---|---|---|');
    for (const [name, rows] of [
      ['starling, edge alone', out.starling_edge.beacons],
      ['baseline', out.baseline?.beacons ?? []],
    ])
      for (const r of rows)
        console.log(
          `| ${name} | ${r.rate} | ${r.rps} | ${f(r.p50_ms)} | ${f(r.p99_ms)} | ${JSON.stringify(r.codes)}${r.errors ? ` ${r.errors} errors` : ''} | ${r.load} |`,
        );
    const he = held(out.starling_edge.beacons),
      hb = held(out.baseline?.beacons ?? []);
    out.held_edge = { starling_edge: he, baseline: hb, ratio: hb ? he / hb : NaN };
    console.log(
      `\nEdge alone, highest rate with p99 < 100 ms: ${he}/s against the baseline's ${hb}/s (ratio ${hb ? (he / hb).toFixed(2) : 'n/a'})`,
    );
  }
  if (PHASES.has('batched')) {
    const b = out.starling.batched;
    console.log(`\nNDJSON batches (${CONNECTIONS} connections x ${BATCH} rows, ${SECONDS} s)`);
    console.log(
      '| worker | accepted events/s | p50 ms | p99 ms | statuses | applied | lag after the run | deliveries (p50 / max ms) | objects applied by the sweep | load |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|---|');
    console.log(
      `| starling | ${f(b.accepted_events_per_s)} | ${f(b.p50_ms)} | ${f(b.p99_ms)} | ${JSON.stringify(b.codes)} | ${f(b.events_applied)} of ${f(b.events_accepted)} | ${f(b.lag_after_run_s)} s | ${b.deliveries} (${f(b.delivery_p50_ms)} / ${f(b.delivery_max_ms)}) | ${b.spooled_objects_applied_by_sweep} | ${b.load} → ${b.load_end} |`,
    );
    const bb = out.baseline.batched;
    console.log(
      `| baseline | ${f(bb.accepted_events_per_s)} | ${f(bb.p50_ms)} | ${f(bb.p99_ms)} | ${JSON.stringify(bb.codes)} | - | - | - | - | ${bb.load} |`,
    );
  }
  if (PHASES.has('flood')) {
    const fl = out.starling.flood;
    console.log('\nFree-plan flood (1,000-row requests, 4 connections, 10 s) and another tenant at 50 beacons/s');
    console.log(
      `| flood requests | 202 | 429 | handler per 429 p50 / p99 | events accepted (plan: 1,000/h) | applied | other tenant p50 / p99 quiet | during the flood | load |`,
    );
    console.log('|---|---|---|---|---|---|---|---|---|');
    console.log(
      `| ${f(fl.flood.requests)} | ${fl.flood.codes['202'] ?? 0} | ${fl.refused_429} | ${f(fl.handler_429_p50_ms)} / ${f(fl.handler_429_p99_ms)} ms | ${f(fl.events_accepted)} | ${f(fl.events_applied)} | ${f(fl.other_quiet.p50_ms)} / ${f(fl.other_quiet.p99_ms)} ms | ${f(fl.other_during.p50_ms)} / ${f(fl.other_during.p99_ms)} ms | ${fl.flood.load} |`,
    );
  }
  if (PHASES.has('refusals')) {
    const base = out.baseline.refusal_rate;
    console.log(`\nRefusals at ${REFUSAL_RATE} requests/s each (${REFUSAL_SECONDS} s), against the baseline's 202 at the same rate`);
    console.log('| answer | achieved/s | p50 ms | p99 ms | handler p50 / p99 ms | statuses | load |');
    console.log('|---|---|---|---|---|---|---|');
    for (const r of out.starling.refusals)
      console.log(
        `| starling ${r.kind} | ${r.rps} | ${f(r.p50_ms)} | ${f(r.p99_ms)} | ${f(r.handler.latency_p50_ms)} / ${f(r.handler.latency_p99_ms)} | ${JSON.stringify(r.codes)} | ${r.load} |`,
      );
    console.log(
      `| baseline 202 | ${base.rps} | ${f(base.p50_ms)} | ${f(base.p99_ms)} | - | ${JSON.stringify(base.codes)} | ${base.load} |`,
    );
  }
}
report();
mkdirSync(`${ROOT}/bench-output`, { recursive: true });
writeFileSync(`${ROOT}/bench-output/ingest.json`, JSON.stringify(out, null, 2));
