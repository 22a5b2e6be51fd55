#!/usr/bin/env node
// Visit segments end to end (issue #11, BENCHMARKS.md "Visit segments"): the worker under `wrangler dev`
// on an existing --persist-to dir (a copy of the 10M set with the migrations applied), the visit-level
// questions of the largest tenant timed with SEGMENT_READS=1 or 0, cache misses only.
//   node bench/segments-e2e.mjs --persist DIR [--reads 1] [--cells 1] [--seal 0] [--samples 25] [--restarts 8]
//                               [--tenant t0000] [--from 2026-11-08] [--to 2026-12-07] [--out FILE]
//                               [--compare FILE] [--seal-runs 1]
// --cells 0: SEGMENT_CELLS=0 (one-filter top lists scan their sealed days instead of reading cells; a
// --seal run then writes no cells). --compare FILE: another run's --out, whose answers must be equal.
// --seal N: first one hourly cron run (`/__scheduled`; --seal-runs R: up to R, until one seals nothing)
// with SEGMENT_SEAL_DAYS_PER_RUN=N, each timed, its
// report and `segment_days` printed. Then per endpoint `--samples` requests, each a distinct cache key
// (a spelling of "UTC" x the range widened by empty days: the same rows are read) and checked to be an
// X-Cache MISS, on a worker whose isolate already read the segments (warm: one request before); and,
// `--restarts` times (default: once per endpoint), the first request of a freshly started worker (cold:
// the isolate fetches every object from R2). Prints p50/p95 per endpoint, the `segments` breakdown of the worker's request log lines (medians),
// and writes every answer's data to --out (to compare the reads=1 run with the reads=0 one).
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { startWorker } from '../tests/lib/worker.mjs';

const args = Object.fromEntries(
  process.argv
    .slice(2)
    .join(' ')
    .split('--')
    .filter(Boolean)
    .map((a) => {
      const [k, ...v] = a.trim().split(/\s+/);
      return [k, v.length ? v.join(' ') : 'true'];
    }),
);
const PERSIST = args.persist;
if (!PERSIST) throw new Error('--persist DIR is required');
const READS = String(args.reads ?? '1');
const CELLS = String(args.cells ?? '1');
const SEAL = Number(args.seal ?? 0);
const SEAL_RUNS = Number(args['seal-runs'] ?? 1);
const SAMPLES = Number(args.samples ?? 25);
const RESTARTS = args.restarts === undefined ? undefined : Number(args.restarts);
const TENANT = args.tenant ?? 't0000';
const FROM = args.from ?? '2026-11-08';
const TO = args.to ?? '2026-12-07';
const OUT = args.out ?? `/tmp/segments-e2e-reads${READS}-cells${CELLS}.json`;
const log = (...a) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...a);

const DAY_MS = 86_400_000;
const shift = (d, days) => new Date(Date.parse(`${d}T00:00:00Z`) + days * DAY_MS).toISOString().slice(0, 10);
const UTC = [];
for (let m = 0; m < 8; m++) UTC.push([...'utc'].map((c, i) => (m & (1 << i) ? c.toUpperCase() : c)).join(''));
/** The i-th cache-key variant: a spelling of UTC and the range widened by a few empty days. */
function variant(i) {
  const widen = Math.floor(i / UTC.length);
  const a = Math.floor(widen / 2) + (widen % 2);
  const b = Math.floor(widen / 2);
  return { tz: UTC[i % UTC.length], from: shift(FROM, -a), to: shift(TO, b) };
}

const TOPS = ['top_sources', 'top_pages', 'top_os', 'top_locations', 'entry_pages', 'top_campaigns'];
const ENDPOINTS = [
  ...TOPS.map((p) => ({ name: `${p} chrome`, pipe: p, qs: 'browser=chrome' })),
  { name: 'top_sources pathname=/pricing', pipe: 'top_sources', qs: 'pathname=/pricing' },
  { name: 'kpis chrome&US', pipe: 'kpis', qs: 'browser=chrome&country=US' },
  { name: 'kpis_summary chrome&US', pipe: 'kpis_summary', qs: 'browser=chrome&country=US' },
  {
    name: '/v0/query visit:source, chrome&mobile',
    body: {
      metrics: ['visitors', 'visits', 'pageviews', 'bounce_rate', 'visit_duration'],
      dimensions: ['visit:source'],
      filters: [
        ['is', 'visit:browser', ['chrome']],
        ['is', 'visit:device', ['mobile']],
      ],
    },
  },
];

/** The worker on the data set, with segments read or not and sealing per run as asked; its output appended to `logFile`. */
async function start(logFile) {
  const w = await startWorker({
    persistTo: PERSIST,
    logFile,
    extraArgs: ['--var', `SEGMENT_READS:${READS}`, '--var', `SEGMENT_SEAL_DAYS_PER_RUN:${SEAL}`, '--var', `SEGMENT_CELLS:${CELLS}`],
  });
  return { ...w, token: w.token(TENANT, 'read') };
}

async function ask(w, e, i) {
  const v = variant(i);
  const t = performance.now();
  let r;
  if (e.body) {
    r = await w.fetch('/v0/query', {
      method: 'POST',
      headers: { Authorization: `Bearer ${w.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ ...e.body, date_range: [v.from, v.to], timezone: v.tz }),
    });
  } else {
    r = await w.fetch(`/v0/pipes/${e.pipe}.json?date_from=${v.from}&date_to=${v.to}&timezone=${v.tz}&${e.qs}&limit=1000`, {
      headers: { Authorization: `Bearer ${w.token}` },
    });
  }
  const ms = performance.now() - t;
  if (r.status !== 200) throw new Error(`${e.name}: ${r.status} ${r.body.slice(0, 300)}`);
  const j = JSON.parse(r.body);
  return {
    ms,
    cache: r.headers.get('x-cache'),
    path: r.headers.get('x-query-path'),
    days: r.headers.get('x-segment-days'),
    cellDays: r.headers.get('x-segment-cell-days'),
    dayCellDays: r.headers.get('x-segment-day-cell-days'),
    // kpis prints the widened empty days too: keep the rows with visits.
    data: e.body ? j.results : j.data.filter((row) => row.visits !== 0),
  };
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
};
const med = (xs) => pct(xs, 50);
const f = (x) => (Number.isNaN(x) ? '-' : x < 100 ? x.toFixed(1) : x.toFixed(0));

/** The `segments` objects of the request log lines since byte `from` of the log (a read of visit segments). */
function segmentReads(logFile, from) {
  const text = readFileSync(logFile, 'utf8').slice(from);
  const out = [];
  for (const line of text.split('\n')) {
    const i = line.indexOf('{');
    if (i < 0 || !line.includes('"segments":{')) continue;
    try {
      const j = JSON.parse(line.slice(i));
      if (j.segments) out.push(j.segments);
    } catch {}
  }
  return out;
}
const logSize = (logFile) => {
  try {
    return readFileSync(logFile).length;
  } catch {
    return 0;
  }
};

const logFile = `/tmp/segments-e2e-reads${READS}-cells${CELLS}.log`;
writeFileSync(logFile, '');
const results = { reads: READS, tenant: TENANT, range: [FROM, TO], started: new Date().toISOString(), endpoints: {} };
let w = await start(logFile);
// Whatever fails, the runtime stops: a workerd left behind loads the machine for every later run.
try {
  log(`worker up (SEGMENT_READS=${READS}, SEGMENT_CELLS=${CELLS}), load ${loadavg()[0].toFixed(2)}`);
  // Up to --seal-runs cron runs, until one seals nothing.
  results.seal = [];
  for (let run = 0; SEAL > 0 && run < SEAL_RUNS; run++) {
    const t = performance.now();
    // One attempt, however long the run: a GET abandoned after the harness's first 15 s would be sent
    // again, starting a second run alongside.
    const r = await w.fetch(`/__scheduled?cron=${encodeURIComponent('17 * * * *')}`, { timeoutMs: 1_800_000 });
    // The report is logged when the run ends (the request may return before).
    let report;
    for (let i = 0; i < 1800 && !report; i++) {
      report = readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((l) => l.includes('"cron_segments"'))
        .map((l) => JSON.parse(l.slice(l.indexOf('{'))))[run];
      if (!report) await new Promise((res) => setTimeout(res, 1000));
    }
    const s = ((performance.now() - t) / 1000).toFixed(1);
    log(`cron run ${run + 1}: ${r.status}, report after ${s} s: ${JSON.stringify(report)}`);
    results.seal.push({ status: r.status, seconds: Number(s), report });
    if (!report?.parts_sealed) break;
  }
  // Cold: the first request of a fresh worker (its isolate fetches every object), per endpoint in turn.
  const cold = Object.fromEntries(ENDPOINTS.map((e) => [e.name, []]));
  for (let k = 0; k < (RESTARTS ?? ENDPOINTS.length); k++) {
    if (k > 0 || SEAL > 0) {
      await w.stop();
      w = await start(logFile);
    }
    const e = ENDPOINTS[k % ENDPOINTS.length];
    const r = await ask(w, e, 1000 + k);
    cold[e.name].push({ ms: r.ms, path: r.path, days: r.days, cellDays: r.cellDays, dayCellDays: r.dayCellDays, log: [] });
    log(`cold ${e.name}: ${f(r.ms)} ms (${r.path}, ${r.days} days)`);
  }
  // wrangler forwards the worker's log late: the cold reads (objects fetched) are matched by order.
  await new Promise((res) => setTimeout(res, 3000));
  const coldReads = segmentReads(logFile, 0).filter((x) => x.fetched > 0);
  for (let k = 0; k < (RESTARTS ?? ENDPOINTS.length); k++) {
    const e = ENDPOINTS[k % ENDPOINTS.length];
    const c = cold[e.name][Math.floor(k / ENDPOINTS.length)];
    if (c && coldReads[k]) c.log.push(coldReads[k]);
  }
  // Warm: one request first (not counted), then the samples.
  const loadBefore = loadavg()[0];
  for (const e of ENDPOINTS) {
    await ask(w, e, 999);
    const at = logSize(logFile);
    const lat = [];
    let misses = 0;
    let first;
    const paths = {};
    for (let i = 0; i < SAMPLES; i++) {
      const r = await ask(w, e, i);
      if (r.cache !== 'MISS') continue;
      misses++;
      lat.push(r.ms);
      const p = `${r.path}/${r.days}${r.cellDays && r.cellDays !== '0' ? `/cells ${r.cellDays} (day cells ${r.dayCellDays})` : ''}`;
      paths[p] = (paths[p] ?? 0) + 1;
      if (i === 0) first = r.data;
    }
    await new Promise((res) => setTimeout(res, 300));
    const reads = segmentReads(logFile, at);
    const m = (k) => med(reads.map((x) => x[k]).filter((x) => typeof x === 'number'));
    results.endpoints[e.name] = {
      p50: med(lat),
      p95: pct(lat, 95),
      misses,
      paths,
      rows: first?.length,
      data: first,
      log: {
        n: reads.length,
        list_ms: m('list_ms'),
        fetch_decode_ms: m('fetch_decode_ms'),
        scan_sql_ms: m('scan_sql_ms'),
        bytes: m('bytes'),
      },
      cold: cold[e.name],
    };
    log(`${e.name}: p50 ${f(med(lat))} p95 ${f(pct(lat, 95))} ms, ${misses} misses, ${JSON.stringify(paths)}`);
  }
  results.load = [Number(loadBefore.toFixed(2)), Number(loadavg()[0].toFixed(2))];
  results.finished = new Date().toISOString();
} finally {
  await w.stop().catch(() => {});
}
writeFileSync(OUT, JSON.stringify(results, null, 1));
console.log(
  `\nSEGMENT_READS=${READS}, SEGMENT_CELLS=${CELLS}, ${TENANT}, ${FROM}..${TO}, ${SAMPLES} cache misses each, load ${results.load.join(' to ')}`,
);
console.log(
  '| question | p50 ms | p95 ms | path/days | rows | log list ms | fetch+decode ms | scan+SQL ms | cold ms (log list/fetch+decode/scan+SQL) |',
);
console.log('|---|---|---|---|---|---|---|---|---|');
for (const [name, r] of Object.entries(results.endpoints)) {
  console.log(
    `| ${name} | ${f(r.p50)} | ${f(r.p95)} | ${Object.keys(r.paths).join(' ')} | ${r.rows} | ${f(r.log.list_ms)} | ${f(r.log.fetch_decode_ms)} | ${f(r.log.scan_sql_ms)} | ${r.cold.map((c) => `${f(c.ms)} (${c.log.map((l) => `${l.list_ms}/${l.fetch_decode_ms}/${l.scan_sql_ms}`).join('')})`).join(', ') || '-'} |`,
  );
}
// The other run's answers, if there: every endpoint's first sample must be equal.
const other = args.compare ?? `/tmp/segments-e2e-reads${READS === '1' ? '0' : '1'}-cells${CELLS}.json`;
try {
  const o = JSON.parse(readFileSync(other, 'utf8'));
  for (const [name, r] of Object.entries(results.endpoints)) {
    const same = JSON.stringify(r.data) === JSON.stringify(o.endpoints[name]?.data);
    console.log(`${name}: ${same ? 'equal to' : 'DIFFERENT from'} ${other}`);
  }
} catch {}
