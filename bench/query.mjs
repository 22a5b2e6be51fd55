#!/usr/bin/env node
// Query-path benchmark (issue #3 §5): synthetic multi-tenant traffic rolled up into the local worker's D1,
// endpoint latency over 30-day ranges (cache misses only), and the same metrics over the raw events with
// DuckDB, for several data sizes in one run.
//   node bench/query.mjs [--sizes 1000000,10000000] [--samples 50] [--tenants 1000] [--days 30]
//                        [--budget 90] [--min-samples 20] [--quiet-wait 300] [--data DIR] [--keep] [--reuse]
//                        [--hits 10] [--seed 1] [--filter browser=chrome] [--goals false]
// Per size: core/examples/gen_rollups.rs writes the rollups into the D1 SQLite file of a fresh
// `wrangler dev --persist-to` dir (schema from the migrations) and the raw events as CSV; the worker is
// started on that dir and every endpoint is timed for the largest and the median tenant (by events), each
// request with a distinct cache key and checked to be an X-Cache MISS; then bench/query_raw.py times
// the same metrics over the CSV with DuckDB (PyPI, in a venv under the user cache dir). The planned SQL
// is also timed natively (rusqlite on the same file) to separate query cost from the local D1/HTTP layers.
// Slow endpoints stop sampling once they have `--min-samples` and have used `--budget` seconds. Before each
// timed phase it waits (at most --quiet-wait s) for the 1-minute load average to drop below 1.5, and it
// records the load averages, since other work on the machine skews every number.
// Issue #14: the generator runs with `--goals true --funnels true` (four goals and a 4-step page funnel per
// tenant; `--goals false` leaves them out) and the questions in API (the dashboard's Goals table, goal
// conversions, a goal filter, a property breakdown, the property key list, goal x property, `POST /v0/funnel` unfiltered and with
// one filter) are timed the same way through `POST /v0/query` / `POST /v0/funnel` (cache misses only:
// each sample a distinct spelling of UTC and date range) and answered by DuckDB over the raw events
// (query_raw.py --api true); every answer is compared with DuckDB's and each mismatch is printed. A
// question the worker refuses (e.g. a 400 for goal x property on a build without it) is reported with
// its status, not timed.
// Prints markdown tables and writes bench-output/query.json; progress goes to stderr.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, homedir, loadavg } from 'node:os';
import { join } from 'node:path';
import { startWorker, ROOT } from '../tests/lib/worker.mjs';

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
const SIZES = String(args.sizes ?? '1000000,10000000')
  .split(',')
  .map((s) => Number(s.replace(/_/g, '')));
const SAMPLES = Number(args.samples ?? 50);
const HITS = Number(args.hits ?? 10);
const TENANTS = Number(args.tenants ?? 1000);
const DAYS = Number(args.days ?? 30);
const SEED = Number(args.seed ?? 1);
const BUDGET = Number(args.budget ?? 90);
const MIN_SAMPLES = Math.min(SAMPLES, Number(args['min-samples'] ?? 20));
const QUIET_WAIT = Number(args['quiet-wait'] ?? 300);
const DATA = args.data ?? join(ROOT, 'bench-output/query-data');
const KEEP = args.keep === 'true';
const REUSE = args.reuse === 'true';
// `--filter browser=chrome`: every range endpoint is timed with this one filter (served by the rollups).
const FILTER = args.filter ? `&${args.filter}` : '';
const GOALS = args.goals !== 'false';
const RANGE = [
  'kpis',
  'kpis_summary',
  'top_pages',
  'top_sources',
  'top_browsers',
  'top_os',
  'top_devices',
  'top_locations',
  'top_campaigns',
  'entry_pages',
  'exit_pages',
];
const LIVE = ['trend', 'current_visitors', 'domains', 'actions'];
// Issue #14's questions: POST bodies for a range `r` ({date_range, timezone}), and the gen_rollups
// --time-queries label of the same planned query (its native SQL time), where there is one.
const API = GOALS
  ? [
      {
        name: 'goals_table',
        what: "the dashboard's Goals table (event:goal: conversions, events, conversion_rate, total_revenue)",
        path: '/v0/query',
        body: (r) => ({
          metrics: ['conversions', 'events', 'conversion_rate', 'total_revenue'],
          dimensions: ['event:goal'],
          order_by: [['conversions', 'desc']],
          pagination: { limit: 50 },
          ...r,
        }),
        native: 'goals: event:goal conversions',
      },
      {
        name: 'goal_conversions',
        what: 'event:goal: visitors, conversions',
        path: '/v0/query',
        body: (r) => ({ metrics: ['visitors', 'conversions'], dimensions: ['event:goal'], ...r }),
        native: 'goals: event:goal visitors and conversions only',
      },
      {
        name: 'goal_filter',
        what: 'goal Signup as a filter: visitors, visits, pageviews, bounce_rate',
        path: '/v0/query',
        body: (r) => ({
          metrics: ['visitors', 'visits', 'pageviews', 'bounce_rate'],
          filters: [['is', 'event:goal', ['Signup']]],
          ...r,
        }),
        native: 'goals: visits of one goal',
      },
      {
        name: 'props_plan',
        what: 'event:props:plan: visitors, events',
        path: '/v0/query',
        body: (r) => ({ metrics: ['visitors', 'events'], dimensions: ['event:props:plan'], ...r }),
        native: 'props: event:props:plan',
      },
      {
        name: 'prop_keys',
        what: "event:props: events (the dashboard's property picker)",
        path: '/v0/query',
        body: (r) => ({ metrics: ['events'], dimensions: ['event:props'], ...r }),
        native: "props: the key list by events (event:props, the dashboard's picker: cells)",
      },
      {
        name: 'goal_props',
        what: 'goal Signup x event:props:plan: visitors, events',
        path: '/v0/query',
        body: (r) => ({
          metrics: ['visitors', 'events'],
          dimensions: ['event:props:plan'],
          filters: [['is', 'event:goal', ['Signup']]],
          ...r,
        }),
        native: 'goals: one goal × event:props:plan',
      },
      {
        name: 'funnel_4',
        what: 'POST /v0/funnel, 4 page steps',
        path: '/v0/funnel',
        body: (r) => ({ funnel: 1, ...r }),
        native: 'funnel 4 steps',
      },
      {
        name: 'funnel_4_chrome',
        what: 'POST /v0/funnel, 4 page steps, visit:browser is chrome',
        path: '/v0/funnel',
        body: (r) => ({ funnel: 1, filters: [['is', 'visit:browser', ['chrome']]], ...r }),
        native: 'funnel 4 steps, browser=chrome',
      },
    ]
  : [];
const ENDPOINTS = [...RANGE, ...LIVE];
const WRANGLER = join(ROOT, 'node_modules/.bin/wrangler');
const ENV = { ...process.env, CI: '1', WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', NO_COLOR: '1' };
const log = (m) => process.stderr.write(`==> ${m}\n`);
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
};
const DAY = 86400;
const date = (secs) => new Date(secs * 1000).toISOString().slice(0, 10);

// ---------- cache-key variants ----------
// The worker caches every response under (tenant, pipe, resolved params, timezone name). To time misses,
// each request differs only in ways that do not change the work done:
//  * range endpoints: the spelling of "UTC" (the worker compares it case-insensitively, so every spelling
//    takes the same no-Intl path) × widening date_from/date_to by a few empty days around the 30 data
//    days (the SQL scans the same rows; kpis prints a few more empty days, none after now);
//  * trend/current_visitors/domains/actions (no date range): the spelling of UTC, then of Etc/UTC and
//    Etc/GMT (zero-offset zones resolved through Intl, a small extra cost recorded per sample as `tz`).
const cases = (s) => {
  const out = [];
  const letters = [...s].map((c, i) => (/[a-z]/i.test(c) ? i : -1)).filter((i) => i >= 0);
  for (let m = 0; m < 1 << letters.length; m++) {
    const cs = [...s];
    letters.forEach((i, b) => {
      cs[i] = m & (1 << b) ? cs[i].toLowerCase() : cs[i].toUpperCase();
    });
    out.push(cs.join(''));
  }
  return out;
};
const UTC = cases('UTC');
const LIVE_TZ = [...UTC, ...cases('Etc/UTC'), ...cases('Etc/GMT')];
const WIDEN = [];
for (let sum = 0; WIDEN.length < 400; sum++) for (let a = 0; a <= sum; a++) WIDEN.push([a, sum - a]);

function variant(pipe, i, meta) {
  if (RANGE.includes(pipe)) {
    const [a, b] = WIDEN[Math.floor(i / UTC.length)];
    const first = Math.floor(meta.window_start / DAY);
    const last = first + meta.days - 1;
    return {
      tz: UTC[i % UTC.length],
      qs: `date_from=${date((first - a) * DAY)}&date_to=${date((last + b) * DAY)}&timezone=${UTC[i % UTC.length]}${FILTER}`,
    };
  }
  if (i >= LIVE_TZ.length) throw new Error(`at most ${LIVE_TZ.length} samples for ${pipe}`);
  return { tz: LIVE_TZ[i], qs: `timezone=${LIVE_TZ[i]}` };
}

/** The i-th cache-key variant of a POST body's range: a spelling of UTC and a widened date range. */
function apiRange(i, meta) {
  const [a, b] = WIDEN[Math.floor(i / UTC.length)];
  const first = Math.floor(meta.window_start / DAY);
  const last = first + meta.days - 1;
  return { date_range: [date((first - a) * DAY), date((last + b) * DAY)], timezone: UTC[i % UTC.length] };
}

const phases = [];
async function quiet(what) {
  const end = Date.now() + QUIET_WAIT * 1000;
  while (loadavg()[0] >= 1.5 && Date.now() < end) await new Promise((r) => setTimeout(r, 5000));
  const l = loadavg()[0];
  log(`${what}: load average ${l.toFixed(2)}`);
  phases.push({ what, load_before: Number(l.toFixed(2)), at: new Date().toISOString() });
}
const loadAfter = () => {
  phases[phases.length - 1].load_after = Number(loadavg()[0].toFixed(2));
};

// ---------- data ----------
function buildGenerator() {
  // Own target dir and a speed profile: the workspace release profile is tuned for wasm size.
  const env = {
    ...process.env,
    CARGO_TARGET_DIR: join(ROOT, 'target/bench-query'),
    CARGO_PROFILE_RELEASE_OPT_LEVEL: '3',
    CARGO_PROFILE_RELEASE_LTO: 'false',
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS: '16',
    CARGO_PROFILE_RELEASE_PANIC: 'unwind',
  };
  log('building core/examples/gen_rollups.rs');
  execFileSync('cargo', ['build', '--release', '-q', '-p', 'starling-core', '--example', 'gen_rollups'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return join(ROOT, 'target/bench-query/release/examples/gen_rollups');
}

function d1File(persist) {
  const dir = join(persist, 'v3/d1/miniflare-D1DatabaseObject');
  const f = readdirSync(dir).find((n) => n.endsWith('.sqlite') && n !== 'metadata.sqlite');
  if (!f) throw new Error(`no D1 sqlite file under ${dir}`);
  return join(dir, f);
}

async function generate(gen, size) {
  const dir = join(DATA, String(size));
  const persist = join(dir, 'persist');
  const raw = join(dir, 'raw.csv');
  const metaPath = join(dir, 'meta.json');
  if (REUSE && existsSync(metaPath)) {
    log(`${size}: reusing ${dir}`);
    return { dir, persist, raw, meta: JSON.parse(readFileSync(metaPath, 'utf8')), reused: true };
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  log(`${size}: applying migrations to a fresh --persist-to dir`);
  execFileSync(WRANGLER, ['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', persist], { cwd: ROOT, env: ENV, stdio: 'pipe' });
  const db = d1File(persist);
  const now = Math.floor(Date.now() / 1000);
  await quiet(`${size} generate`);
  log(`${size}: generating ${size} events over ${TENANTS} tenants into ${db}`);
  const t = performance.now();
  const out = execFileSync(
    gen,
    [
      '--events',
      String(size),
      '--tenants',
      String(TENANTS),
      '--days',
      String(DAYS),
      '--db',
      db,
      '--raw',
      raw,
      '--now',
      String(now),
      '--seed',
      String(SEED),
      '--meta',
      metaPath,
      ...(GOALS ? ['--goals', 'true', '--funnels', 'true'] : []),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  ).toString();
  process.stderr.write(out);
  const meta = JSON.parse(readFileSync(metaPath, 'utf8'));
  meta.generate_seconds = (performance.now() - t) / 1000;
  meta.raw_csv_bytes = statSync(raw).size;
  writeFileSync(metaPath, JSON.stringify(meta));
  loadAfter();
  return { dir, persist, raw, meta, reused: false };
}

// ---------- worker ----------
async function timed(w, path, token, post) {
  const t = performance.now();
  const r = await w.fetch(
    path,
    post === undefined
      ? { headers: { Authorization: `Bearer ${token}` } }
      : { method: 'POST', body: JSON.stringify(post), headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' } },
  );
  const ms = performance.now() - t;
  let body;
  try {
    body = JSON.parse(r.body);
  } catch {
    body = undefined;
  }
  return {
    ms,
    status: r.status,
    cache: r.headers.get('x-cache'),
    body,
    server_ms: body?.statistics ? body.statistics.elapsed * 1000 : undefined,
    path: r.headers.get('x-query-path'),
  };
}

/** Issue #14's questions (API) for each tenant: cache misses only, like measureWorker's endpoints. */
async function measureApi(w, meta, tenants) {
  const out = {};
  for (const t of tenants) {
    const token = w.token(t.id, 'read');
    const res = Object.fromEntries(API.map((q) => [q.name, { lat: [], paths: {}, statuses: {}, misses: 0, cached: 0, spent: 0 }]));
    for (const q of API) for (let i = SAMPLES; i < SAMPLES + 2; i++) await timed(w, q.path, token, q.body(apiRange(i, meta)));
    log(`${meta.events}: ${t.label} tenant ${t.id}: ${SAMPLES} samples x ${API.length} goal/property/funnel questions`);
    for (let i = 0; i < SAMPLES; i++) {
      for (const q of API) {
        const m = res[q.name];
        if (m.spent > BUDGET * 1000 && m.lat.length >= MIN_SAMPLES) continue;
        // A refused question (400) is asked a few times only: its status is the result.
        if ((m.statuses[400] ?? 0) >= 3) continue;
        const r = await timed(w, q.path, token, q.body(apiRange(i, meta)));
        m.spent += r.ms;
        m.statuses[r.status] = (m.statuses[r.status] ?? 0) + 1;
        if (r.status !== 200) {
          if (m.statuses[r.status] === 1) {
            m.error = JSON.stringify(r.body).slice(0, 300);
            log(`${q.name}: HTTP ${r.status} ${m.error}`);
          }
          continue;
        }
        if (r.cache !== 'MISS') {
          m.cached++;
          continue;
        }
        m.misses++;
        m.lat.push(r.ms);
        m.paths[r.path ?? '?'] = (m.paths[r.path ?? '?'] ?? 0) + 1;
        if (!m.first) m.first = r.body;
      }
    }
    out[t.label] = { tenant: t, questions: {} };
    for (const q of API) {
      const m = res[q.name];
      out[t.label].questions[q.name] = {
        p50_ms: m.lat.length ? pct(m.lat, 50) : null,
        p95_ms: m.lat.length ? pct(m.lat, 95) : null,
        max_ms: m.lat.length ? Math.max(...m.lat) : null,
        misses: m.misses,
        attempted: Object.values(m.statuses).reduce((n, v) => n + v, 0),
        not_miss: m.cached,
        statuses: m.statuses,
        error: m.error ?? null,
        query_path: m.paths,
        answer: m.first ?? null,
      };
    }
  }
  return out;
}

async function measureWorker(w, meta, tenants) {
  const out = {};
  // Floor: a request that verifies the token and fails planning, without touching D1 or the cache.
  const anyToken = w.token(tenants[0].id, 'read');
  const floor = [];
  for (let i = 0; i < 30; i++) floor.push((await timed(w, '/v0/pipes/no_such_pipe.json', anyToken)).ms);
  out.floor = { p50_ms: pct(floor, 50), p95_ms: pct(floor, 95), samples: floor.length };
  for (const t of tenants) {
    const token = w.token(t.id, 'read');
    const res = Object.fromEntries(
      ENDPOINTS.map((e) => [e, { lat: [], server: [], tz: [], hits: [], statuses: {}, misses: 0, cached: 0, spent: 0 }]),
    );
    // Warm-up with keys outside the measured ones (wasm instance, D1 object, page cache).
    for (const e of ENDPOINTS)
      for (let i = SAMPLES; i < SAMPLES + 2; i++) await timed(w, `/v0/pipes/${e}.json?${variant(e, i, meta).qs}`, token);
    log(
      `${meta.events}: ${t.label} tenant ${t.id} (${t.events} events, ${t.sessions} sessions): ${SAMPLES} samples x ${ENDPOINTS.length} endpoints`,
    );
    for (let i = 0; i < SAMPLES; i++) {
      for (const e of ENDPOINTS) {
        const m = res[e];
        if (m.spent > BUDGET * 1000 && m.lat.length >= MIN_SAMPLES) continue;
        const v = variant(e, i, meta);
        const r = await timed(w, `/v0/pipes/${e}.json?${v.qs}`, token);
        m.spent += r.ms;
        m.statuses[r.status] = (m.statuses[r.status] ?? 0) + 1;
        if (r.status !== 200) {
          if (m.statuses[r.status] === 1) log(`${e}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
          continue;
        }
        if (r.cache !== 'MISS') {
          m.cached++;
          continue;
        } // never counted as a miss
        m.misses++;
        m.lat.push(r.ms);
        m.server.push(r.server_ms);
        m.tz.push(v.tz);
        if (i === 0) m.first = r.body;
      }
    }
    // Cache hits, for reference: one more fresh key (a miss, not counted), then the same key again.
    for (const e of ENDPOINTS) {
      const qs = variant(e, SAMPLES + 2, meta).qs;
      await timed(w, `/v0/pipes/${e}.json?${qs}`, token);
      for (let k = 0; k < HITS; k++) {
        const r = await timed(w, `/v0/pipes/${e}.json?${qs}`, token);
        if (r.status === 200 && r.cache === 'HIT') res[e].hits.push(r.ms);
      }
    }
    out[t.label] = { tenant: t, endpoints: {} };
    for (const e of ENDPOINTS) {
      const m = res[e];
      const utcOnly = m.lat.filter((_, i) => UTC.includes(m.tz[i]));
      out[t.label].endpoints[e] = {
        p50_ms: pct(m.lat, 50),
        p95_ms: pct(m.lat, 95),
        max_ms: Math.max(...m.lat),
        server_p50_ms: pct(m.server, 50),
        server_p95_ms: pct(m.server, 95),
        utc_spelling_p50_ms: utcOnly.length ? pct(utcOnly, 50) : null,
        misses: m.misses,
        attempted:
          m.misses +
          m.cached +
          Object.entries(m.statuses)
            .filter(([k]) => k !== '200')
            .reduce((n, [, v]) => n + v, 0),
        not_miss: m.cached,
        statuses: m.statuses,
        hit_p50_ms: m.hits.length ? pct(m.hits, 50) : null,
        hit_samples: m.hits.length,
        rows: m.first?.rows,
        first_row: m.first?.data?.[0] ?? null,
      };
    }
  }
  return out;
}

// ---------- DuckDB ----------
function venvPython() {
  const venv = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'starling/bench-venv');
  const py = join(venv, 'bin/python');
  const pin = 'duckdb==1.4.1';
  let ok = false;
  try {
    ok = execFileSync(py, ['-c', 'import duckdb; print(duckdb.__version__)']).toString().trim() === pin.split('==')[1];
  } catch {}
  if (!ok) {
    log(`setting up ${venv} with ${pin}`);
    execFileSync('python3', ['-m', 'venv', venv], { stdio: 'inherit' });
    execFileSync(join(venv, 'bin/pip'), ['install', '-q', pin], { stdio: 'inherit' });
  }
  return py;
}

function measureRaw(py, data, tenants) {
  const { meta } = data;
  const start = meta.window_start;
  const end = meta.window_start + meta.days * DAY;
  log(`${meta.events}: DuckDB over ${data.raw}`);
  const out = execFileSync(
    py,
    [
      join(ROOT, 'bench/query_raw.py'),
      '--csv',
      data.raw,
      '--tenants',
      tenants.map((t) => t.id).join(','),
      '--start',
      String(start),
      '--end',
      String(end),
      '--now',
      String(meta.now),
      '--samples',
      String(SAMPLES),
      '--api',
      String(GOALS),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 },
  ).toString();
  return JSON.parse(out);
}

function measureNative(gen, data, tenants) {
  const { meta } = data;
  log(`${meta.events}: planned SQL natively (rusqlite) on the same D1 file`);
  const out = execFileSync(
    gen,
    [
      '--db',
      d1File(data.persist),
      '--now',
      String(meta.now),
      '--days',
      String(meta.days),
      '--time-queries',
      tenants.map((t) => t.id).join(','),
      '--samples',
      String(SAMPLES),
      '--budget',
      String(Math.round(BUDGET / 3)),
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  ).toString();
  return JSON.parse(out);
}

// ---------- checks ----------
function checks(_meta, w, raw, tenants) {
  const out = [];
  for (const t of tenants) {
    const s = w[t.label].endpoints.kpis_summary.first_row;
    const d = raw.tenants[t.id].kpis_summary.first;
    const ok =
      s &&
      s.visits === t.sessions &&
      s.pageviews === t.pageviews &&
      d &&
      d.visits === t.sessions &&
      d.pageviews === t.pageviews &&
      s.visitors === d.visitors &&
      Math.abs(s.bounce_rate - d.bounces / d.visits) < 1e-4;
    out.push({ tenant: t.id, ok, generator: { sessions: t.sessions, pageviews: t.pageviews }, starling: s, duckdb: d });
    if (!ok)
      log(
        `CHECK FAILED for ${t.id}: generator ${JSON.stringify({ sessions: t.sessions, pageviews: t.pageviews })} starling ${JSON.stringify(s)} duckdb ${JSON.stringify(d)}`,
      );
    const sp = w[t.label].endpoints.top_pages.first_row;
    const dp = raw.tenants[t.id].top_pages.first;
    if (sp && dp && (sp.pathname !== dp.pathname || sp.visits !== dp.visits || sp.hits !== dp.hits))
      log(`top_pages first rows differ for ${t.id}: ${JSON.stringify(sp)} vs ${JSON.stringify(dp)}`);
  }
  return out;
}

/** Each API answer against DuckDB's rows: `{tenant: {question: {ok, mismatches}}}`; mismatches are logged. */
function apiChecks(api, raw, tenants) {
  const out = {};
  const rate = (n, d) => (d ? Math.round((n * 10000) / d) / 100 : 0);
  const same = (a, b) =>
    a.length === b.length &&
    a.every((x, i) => (typeof x === 'number' && typeof b[i] === 'number' ? Math.abs(x - b[i]) < 0.006 : x === b[i]));
  for (const t of tenants) {
    out[t.id] = {};
    for (const q of API) {
      const got = api[t.label].questions[q.name];
      const d = raw.tenants[t.id][q.name];
      const mismatches = [];
      if (!got.answer) {
        out[t.id][q.name] = { ok: null, mismatches: [`no answer (HTTP ${Object.keys(got.statuses).join(', ')})`] };
        continue;
      }
      // Both sides as rows keyed by the dimension (or the step), values in the API's metric order.
      let mine;
      let theirs;
      const rows = got.answer.results ?? [];
      const byKey = (list, key, vals) => new Map(list.map((r) => [String(key(r)), vals(r)]));
      // The API's rows by their first dimension (for the questions grouped by one).
      const byDimension = () =>
        byKey(
          rows,
          (r) => r.dimensions[0],
          (r) => r.metrics,
        );
      switch (q.name) {
        case 'goals_table':
          mine = byDimension();
          theirs = byKey(
            d.all,
            (r) => r.goal,
            (r) => [r.conversions, r.events, rate(r.conversions, r.total_visitors), null],
          );
          break;
        case 'goal_conversions':
          mine = byDimension();
          theirs = byKey(
            d.all,
            (r) => r.goal,
            (r) => [r.conversions, r.conversions],
          );
          break;
        case 'goal_filter':
          mine = byKey(
            rows,
            () => 'all',
            (r) => r.metrics,
          );
          theirs = byKey(
            d.all.filter((r) => r.visits > 0),
            () => 'all',
            (r) => [r.visitors, r.visits, r.pageviews, rate(r.bounces, r.visits)],
          );
          break;
        case 'props_plan':
        case 'goal_props':
          mine = byDimension();
          theirs = byKey(
            d.all,
            (r) => r.value,
            (r) => [r.visitors, r.events],
          );
          break;
        case 'prop_keys':
          mine = byDimension();
          theirs = byKey(
            d.all,
            (r) => r.key,
            (r) => [r.events],
          );
          break;
        default:
          mine = byKey(
            got.answer.steps ?? [],
            (s) => s.step,
            (s) => [s.visitors, s.visits],
          );
          theirs = byKey(
            d.all,
            (r) => r.step,
            (r) => [r.visitors, r.visits],
          );
      }
      for (const k of new Set([...mine.keys(), ...theirs.keys()])) {
        const a = mine.get(k) ?? null;
        const b = theirs.get(k) ?? null;
        if (!a || !b || !same(a, b)) mismatches.push(`${k}: starling ${JSON.stringify(a)} duckdb ${JSON.stringify(b)}`);
      }
      for (const m of mismatches) log(`MISMATCH ${t.label} ${t.id} ${q.name} ${m}`);
      out[t.id][q.name] = { ok: mismatches.length === 0, rows: mine.size, mismatches };
    }
  }
  return out;
}

// ---------- main ----------
const f = (x) => (x == null || Number.isNaN(x) ? '–' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const gen = buildGenerator();
const py = venvPython();
const runs = [];
for (const size of SIZES) {
  const data = await generate(gen, size);
  const { meta } = data;
  const sorted = meta.tenant_totals;
  const tenants = [
    { label: 'largest', ...sorted[0] },
    { label: 'median', ...sorted[Math.floor(sorted.length / 2)] },
  ];
  // The generated tenants are not registered: startWorker gives them the enterprise plan (wrangler.toml's
  // free plan allows 100 queries an hour, and the samples would be 429s).
  const w = await startWorker({ persistTo: data.persist });
  let worker;
  let api = {};
  try {
    await quiet(`${size} worker`);
    worker = await measureWorker(w, meta, tenants);
    loadAfter();
    if (API.length) {
      await quiet(`${size} api`);
      api = await measureApi(w, meta, tenants);
      loadAfter();
    }
  } finally {
    await w.stop();
  }
  await quiet(`${size} native`);
  const native = measureNative(gen, data, tenants);
  loadAfter();
  await quiet(`${size} duckdb`);
  const raw = measureRaw(py, data, tenants);
  loadAfter();
  const check = checks(meta, worker, raw, tenants);
  const apiCheck = API.length ? apiChecks(api, raw, tenants) : {};
  runs.push({
    size,
    generator: {
      events: meta.events,
      pageviews: meta.pageviews,
      sessions: meta.sessions,
      tenants: meta.tenants,
      days: meta.days,
      seconds: meta.generate_seconds ?? meta.seconds,
      reused: data.reused,
      db_bytes: meta.db_bytes,
      raw_csv_bytes: meta.raw_csv_bytes,
      statements: meta.statements,
    },
    tenants,
    worker,
    api,
    native,
    duckdb: raw,
    checks: check,
    api_checks: apiCheck,
  });
  if (!KEEP) rmSync(data.dir, { recursive: true, force: true });
}

// ---------- report ----------
const lines = [];
for (const r of runs) {
  const g = r.generator;
  const ph = phases
    .filter((p) => p.what.startsWith(`${r.size} `))
    .map((p) => `${p.what.split(' ')[1]} ${p.load_before}→${p.load_after}`)
    .join(', ');
  lines.push(
    `\n### ${g.events.toLocaleString('en')} events, ${g.tenants} tenants, ${g.days} days (generated in ${f(g.seconds)} s${g.reused ? ', reused' : ''}; D1 file ${f(g.db_bytes / 1e6)} MB; floor ${f(r.worker.floor.p50_ms)} ms p50 for a request that skips D1; load avg ${ph})`,
  );
  for (const t of r.tenants) {
    lines.push(
      `\n${t.label} tenant ${t.id}: ${t.events.toLocaleString('en')} events, ${t.sessions.toLocaleString('en')} sessions; kpis_summary check ${r.checks.find((c) => c.tenant === t.id)?.ok ? 'ok' : 'FAILED'}`,
    );
    lines.push(
      '\n| endpoint | Starling p50 ms | p95 ms | worker-side p50 | hit p50 | SQL native p50 | p95 | DuckDB p50 ms | p95 ms | speed-up p50 | speed-up p95 | misses/requests |',
    );
    lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const e of ENDPOINTS) {
      const s = r.worker[t.label].endpoints[e];
      const n = r.native[t.id][e];
      const d = r.duckdb.tenants[t.id][e];
      lines.push(
        `| ${e} | ${f(s.p50_ms)} | ${f(s.p95_ms)} | ${f(s.server_p50_ms)} | ${f(s.hit_p50_ms)} | ${f(n.p50_ms)} | ${f(n.p95_ms)} | ${f(d.p50_ms)} | ${f(d.p95_ms)} | ${f(d.p50_ms / s.p50_ms)}× | ${f(d.p95_ms / s.p95_ms)}× | ${s.misses}/${s.attempted} |`,
      );
    }
  }
}
// Issue #14's questions.
for (const r of runs) {
  if (!API.length) break;
  lines.push(
    `\n### Goals, properties and funnels: ${r.generator.events.toLocaleString('en')} events (POST /v0/query and /v0/funnel, cache misses; DuckDB over the raw events)`,
  );
  for (const t of r.tenants) {
    lines.push(`\n${t.label} tenant ${t.id}:`);
    lines.push(
      '\n| question | Starling p50 ms | p95 ms | query path | SQL native p50 | p95 | DuckDB p50 ms | p95 ms | equal to DuckDB | misses/requests |',
    );
    lines.push('|---|---|---|---|---|---|---|---|---|---|');
    for (const q of API) {
      const s = r.api[t.label].questions[q.name];
      const n = q.native ? r.native[t.id]?.[q.native] : undefined;
      const d = r.duckdb.tenants[t.id][q.name];
      const c = r.api_checks[t.id][q.name];
      const refused = s.p50_ms == null ? `HTTP ${Object.keys(s.statuses).join('/')}` : null;
      const eq = c.ok === null ? '–' : c.ok ? `yes, ${c.rows} row${c.rows === 1 ? '' : 's'}` : `**no**: ${c.mismatches.length} differ`;
      const paths = Object.keys(s.query_path).join(', ') || '–';
      lines.push(
        `| ${q.name}: ${q.what} | ${refused ?? f(s.p50_ms)} | ${refused ? '–' : f(s.p95_ms)} | ${paths} | ${n ? f(n.p50_ms) : '–'} | ${n ? f(n.p95_ms) : '–'} | ${f(d.p50_ms)} | ${f(d.p95_ms)} | ${eq} | ${s.misses}/${s.attempted} |`,
      );
    }
  }
}
if (runs.length > 1) {
  const a = runs[0],
    b = runs[runs.length - 1];
  lines.push(
    `\n### Growth ${a.size.toLocaleString('en')} → ${b.size.toLocaleString('en')} events (${f(b.size / a.size)}×): latency ratios`,
  );
  lines.push(
    '\n| endpoint | largest p50 ratio | largest p95 ms | → | p95 ratio | DuckDB p95 ratio | median p50 ratio | median p95 ms | → | p95 ratio | DuckDB p95 ratio |',
  );
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const e of ENDPOINTS) {
    const cell = (label) => {
      const sa = a.worker[label].endpoints[e],
        sb = b.worker[label].endpoints[e];
      const dx = a.duckdb.tenants[a.tenants.find((t) => t.label === label).id][e].p95_ms;
      const dy = b.duckdb.tenants[b.tenants.find((t) => t.label === label).id][e].p95_ms;
      return `${f(sb.p50_ms / sa.p50_ms)}× | ${f(sa.p95_ms)} | ${f(sb.p95_ms)} | ${f(sb.p95_ms / sa.p95_ms)}× | ${f(dy / dx)}×`;
    };
    lines.push(`| ${e} | ${cell('largest')} | ${cell('median')} |`);
  }
}
console.log(lines.join('\n'));

mkdirSync(join(ROOT, 'bench-output'), { recursive: true });
writeFileSync(
  join(ROOT, 'bench-output/query.json'),
  JSON.stringify(
    {
      date: new Date().toISOString(),
      cpus: cpus().length,
      cpu: cpus()[0]?.model,
      samples: SAMPLES,
      min_samples: MIN_SAMPLES,
      budget_s: BUDGET,
      sizes: SIZES,
      phases,
      runs,
    },
    null,
    2,
  ),
);

// One-line summary against the targets.
const last = runs[runs.length - 1];
const all = last.tenants.flatMap((t) =>
  ENDPOINTS.map((e) => ({ t, e, s: last.worker[t.label].endpoints[e], d: last.duckdb.tenants[t.id][e] })),
);
const worst = all.reduce((m, x) => (x.s.p95_ms > m.s.p95_ms ? x : m));
const under = all.filter((x) => x.s.p95_ms < 25).length;
const fast = all.filter((x) => x.d.p50_ms / x.s.p50_ms >= 10).length;
let growth = '';
if (runs.length > 1) {
  const ratios = ENDPOINTS.map(
    (e) => runs[runs.length - 1].worker.largest.endpoints[e].p95_ms / runs[0].worker.largest.endpoints[e].p95_ms,
  );
  growth = `; largest-tenant p95 growth ${runs[0].size}→${last.size}: max ${f(Math.max(...ratios))}× (target < 1.5×)`;
}
if (API.length) {
  const qs = last.tenants.flatMap((t) =>
    API.map((q) => ({ t, q, s: last.api[t.label].questions[q.name], c: last.api_checks[t.id][q.name] })),
  );
  const answered = qs.filter((x) => x.s.p95_ms != null);
  const fast = answered.filter((x) => (x.q.path === '/v0/funnel' ? x.s.p95_ms < 500 : x.s.p95_ms < 25));
  const refused = qs.filter((x) => x.s.p95_ms == null).map((x) => `${x.q.name} ${x.t.label}`);
  const wrong = qs.filter((x) => x.c.ok === false).map((x) => `${x.q.name} ${x.t.label}`);
  console.log(
    `bench: ${last.size} events, goals/properties/funnels: ${fast.length}/${answered.length} question×tenant within target (p95 < 25 ms, funnels < 500 ms); equal to DuckDB ${qs.filter((x) => x.c.ok).length}/${answered.length}${wrong.length ? ` (MISMATCH: ${wrong.join(', ')})` : ''}${refused.length ? `; refused: ${refused.join(', ')}` : ''}`,
  );
}
console.log(
  `bench: ${last.size} events: ${under}/${all.length} endpoint×tenant p95 < 25 ms (worst ${worst.e} ${worst.t.label} ${f(worst.s.p95_ms)} ms); ${fast}/${all.length} >= 10× faster than DuckDB at p50${growth}; checks ${runs.every((r) => r.checks.every((c) => c.ok)) ? 'ok' : 'FAILED'}`,
);
