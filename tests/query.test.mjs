// Query endpoints end to end against the real local runtime: numbers against an oracle computed here
// from the raw fixture events, tenant isolation under override attempts, and the read-token matrix.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cfBlob } from './lib/fixtures.mjs';
import { startWorker } from './lib/worker.mjs';
import { signJwt, mint } from '../scripts/token.mjs';

const UAS = {
  chrome: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  firefox: 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
  safari:
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
};
const SOURCES = ['https://www.google.com/search?q=x', 'https://news.ycombinator.com/', ''];
const COUNTRIES = ['DE', 'US', 'FR'];
// Three tenants of different sizes, with their own domains and path prefixes so leaks are visible.
const TENANTS = { alpha: 14, beta: 9, gamma: 4 };

/** Deterministic visits: visitor v has one or two sessions of one to three page hits. */
function fixture(tenant, visitors, now) {
  const visits = [];
  for (let v = 0; v < visitors; v++) {
    const browser = Object.keys(UAS)[v % 3];
    const sessions = v % 4 === 0 ? 2 : 1;
    for (let s = 0; s < sessions; s++) {
      // The first visitors are live (last minute); the others earlier today or yesterday, hours apart.
      const start = v < 2 ? now - 60_000 - s * 3_600_000 : now - (20 + v * 37 + s * 90) * 60_000;
      const pages = 1 + ((v + s) % 3);
      const hits = Array.from({ length: pages }, (_, i) => ({
        ts: start + i * 45_000,
        path: `/${tenant}/${['home', 'pricing', 'docs', 'blog'][(v + i + s) % 4]}`,
        referrer: i === 0 ? SOURCES[(v + s) % 3] : `https://${tenant}.example/${tenant}/prev`,
      }));
      visits.push({
        tenant,
        visitor: `${tenant}-v${v}`,
        ip: `198.51.100.${v + 1}`,
        ua: UAS[browser],
        browser,
        country: COUNTRIES[v % 3],
        session: `${tenant}-v${v}-s${s}`,
        campaign: v % 2 ? `camp-${v % 3}` : '',
        hits,
      });
    }
  }
  return visits;
}

/** The metrics computed from the raw visits, with no planner code. */
function oracle(visits, now) {
  const sessions = visits.map((v) => ({ ...v, first: v.hits[0], last: v.hits.at(-1) }));
  const count = (_key, pick) => {
    const out = new Map();
    for (const s of sessions)
      for (const [k, hits] of pick(s)) {
        const r = out.get(k) ?? { visits: 0, hits: 0 };
        r.visits += 1;
        r.hits += hits;
        out.set(k, r);
      }
    return out;
  };
  const host = (r) => (r ? new URL(r).hostname.replace(/^www\./, '') : '');
  const pageviews = sessions.reduce((n, s) => n + s.hits.length, 0);
  const duration = sessions.reduce((n, s) => n + Math.floor(s.last.ts / 1000) - Math.floor(s.first.ts / 1000), 0);
  return {
    visits: sessions.length,
    pageviews,
    // Visitor ids rotate with the daily salt: a person is one visitor per UTC day they start visits in.
    visitors: new Set(sessions.map((s) => `${s.visitor}|${new Date(s.first.ts).toISOString().slice(0, 10)}`)).size,
    bounce_rate: round(sessions.filter((s) => s.hits.length === 1).length / sessions.length, 4),
    avg_session_sec: round(duration / sessions.length, 2),
    live: sessions.filter((s) => s.last.ts >= now - 300_000).length,
    top_pages: count('pathname', (s) => {
      const per = new Map();
      for (const h of s.hits) per.set(h.path, (per.get(h.path) ?? 0) + 1);
      return per;
    }),
    top_sources: count('referrer', (s) => [[host(s.first.referrer), s.hits.length]]),
    top_browsers: count('browser', (s) => [[s.browser, s.hits.length]]),
    top_locations: count('location', (s) => [[s.country, s.hits.length]]),
    entry_pages: count('pathname', (s) => [[s.first.path, s.hits.length]]),
    exit_pages: count('pathname', (s) => [[s.last.path, s.hits.length]]),
  };
}
const round = (v, d) => Math.round(v * 10 ** d) / 10 ** d;
const TOP_KEYS = {
  top_pages: 'pathname',
  top_sources: 'referrer',
  top_browsers: 'browser',
  top_locations: 'location',
  entry_pages: 'pathname',
  exit_pages: 'pathname',
};
const PIPES = [
  'kpis',
  'kpis_summary',
  'trend',
  'current_visitors',
  'top_pages',
  'top_sources',
  'top_browsers',
  'top_devices',
  'top_locations',
  'top_os',
  'top_campaigns',
  'entry_pages',
  'exit_pages',
  'domains',
  'domain',
  'actions',
  'traffic_by_hour',
  'analytics_hits',
];

let w, now, expected;
/** The raw fixture visits per tenant, for the /v0/query oracle. */
const raw = {};
const day = (ms) => new Date(ms).toISOString().slice(0, 10);
let range;

before(async () => {
  w = await startWorker({ fastQueues: true, shared: true });
  now = Date.now();
  range = `date_from=${day(now - 86_400_000)}&date_to=${day(now)}`;
  expected = {};
  for (const [tenant, visitors] of Object.entries(TENANTS)) {
    const visits = fixture(tenant, visitors, now);
    raw[tenant] = visits;
    expected[tenant] = oracle(visits, now);
    const token = w.token(tenant);
    for (const v of visits) {
      const lines = v.hits.map((h) =>
        JSON.stringify({
          timestamp: new Date(h.ts).toISOString(),
          action: 'page_hit',
          version: '1',
          session_id: v.session,
          tenant_id: 'spoofed',
          domain: `${tenant}.example`,
          payload: JSON.stringify({
            'user-agent': v.ua,
            locale: 'en-US',
            referrer: h.referrer,
            pathname: h.path,
            href: `https://${tenant}.example${h.path}${v.campaign ? `?utm_source=nl&utm_medium=email&utm_campaign=${v.campaign}` : ''}`,
          }),
        }),
      );
      lines.push(
        JSON.stringify({
          timestamp: new Date(v.hits[0].ts).toISOString(),
          action: 'signup',
          session_id: v.session,
          domain: `${tenant}.example`,
          payload: { plan: `${tenant}-plan` },
        }),
      );
      const r = await w.post('/v0/events?name=analytics_events', lines.join('\n'), {
        token,
        headers: { 'CF-Connecting-IP': v.ip, 'MF-CF-Blob': cfBlob(v.country) },
      });
      assert.equal(r.status, 202, r.text);
    }
  }
  const total = Object.values(expected).reduce((n, e) => n + e.visits, 0);
  await w.until(
    () => w.d1(`SELECT count(*) AS n FROM sessions WHERE tenant_id IN (${Object.keys(TENANTS).map((t) => `'${t}'`)})`)[0].n === total,
    {
      what: `${total} sessions rolled up`,
      timeoutMs: 60_000,
    },
  );
});
after(async () => {
  await w?.stop();
});

async function pipe(name, token, query = '', headers = {}) {
  const r = await w.fetch(`/v0/pipes/${name}.json?${query}`, { headers: { Authorization: `Bearer ${token}`, ...headers } });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, text, headers: r.headers };
}

test('every endpoint answers in Tinybird shape', async () => {
  const token = w.token('alpha', 'read');
  for (const name of PIPES) {
    const r = await pipe(name, token, range);
    assert.equal(r.status, 200, `${name}: ${r.text}`);
    assert.ok(Array.isArray(r.json.meta) && r.json.meta.every((m) => m.name && m.type), `${name} meta`);
    assert.equal(r.json.rows, r.json.data.length, `${name} rows`);
    for (const k of ['elapsed', 'rows_read', 'bytes_read']) assert.equal(typeof r.json.statistics[k], 'number', `${name} statistics.${k}`);
    for (const row of r.json.data) assert.deepEqual(Object.keys(row).sort(), r.json.meta.map((m) => m.name).sort(), `${name} columns`);
  }
});

test('numbers equal the oracle computed from the raw events, for every tenant', async () => {
  // The fixture has returning visitors (a visitor's two visits on one UTC day count once). Not asked of
  // every tenant: gamma's only returning visitor is a live one whose visits are an hour apart, which
  // fall on two UTC days in the first hour after midnight; alpha's and beta's others are hours from now,
  // and no midnight splits more than one of them at a time.
  assert.ok(
    ['alpha', 'beta'].every((t) => expected[t].visitors < expected[t].visits),
    `the fixture has returning visitors: ${JSON.stringify(expected)}`,
  );
  for (const tenant of Object.keys(TENANTS)) {
    const e = expected[tenant];
    const token = w.token(tenant, 'read');
    const summary = (await pipe('kpis_summary', token, range)).json.data[0];
    for (const k of ['visits', 'pageviews', 'visitors', 'bounce_rate', 'avg_session_sec']) {
      assert.equal(summary[k], e[k], `${tenant} kpis_summary.${k}`);
    }
    const daily = (await pipe('kpis', token, range)).json.data;
    assert.equal(daily.length, 2, 'one row per day');
    assert.equal(
      daily.reduce((n, r) => n + r.visits, 0),
      e.visits,
      `${tenant} kpis visits`,
    );
    assert.equal(
      daily.reduce((n, r) => n + r.pageviews, 0),
      e.pageviews,
      `${tenant} kpis pageviews`,
    );
    const live = (await pipe('current_visitors', token)).json.data[0].visits;
    assert.equal(live, e.live, `${tenant} current_visitors`);
    for (const [name, key] of Object.entries(TOP_KEYS)) {
      const got = Object.fromEntries((await pipe(name, token, range)).json.data.map((r) => [r[key], { visits: r.visits, hits: r.hits }]));
      assert.deepEqual(got, Object.fromEntries(e[name]), `${tenant} ${name}`);
    }
    const domains = (await pipe('domains', token)).json.data;
    assert.deepEqual(
      domains.map((d) => [d.domain, d.total_hits]),
      [[`${tenant}.example`, e.pageviews]],
    );
    const actions = (await pipe('actions', token)).json.data;
    assert.deepEqual(actions.map((a) => a.action).sort(), ['page_hit', 'signup']);
  }
});

test('each tenant sees only its own data, whatever the request says', async () => {
  const others = (t) => Object.keys(TENANTS).filter((o) => o !== t);
  for (const tenant of Object.keys(TENANTS)) {
    const token = w.token(tenant, 'read');
    const attempts = [
      ['', {}],
      [`tenant_id=${others(tenant)[0]}`, {}],
      [`TENANT_ID=${others(tenant)[0]}&Tenant_Id=${others(tenant)[1]}`, {}],
      [`tenant_id=${tenant}&tenant_id=${others(tenant)[0]}`, {}],
      [`domain=${others(tenant)[0]}.example`, {}],
      ['', { 'X-Tenant-Id': others(tenant)[0], tenant_id: others(tenant)[0] }],
      [`token=${w.token(others(tenant)[0], 'read')}`, {}],
    ];
    for (const name of PIPES) {
      for (const [query, headers] of attempts) {
        const r = await pipe(name, token, `${range}&${query}`, headers);
        assert.equal(r.status, 200, `${tenant} ${name} ${query}: ${r.text}`);
        for (const other of others(tenant)) {
          assert.ok(!r.text.includes(other), `${tenant}'s ${name}?${query} leaked ${other}: ${r.text.slice(0, 300)}`);
        }
      }
    }
    // A fixed domain in the token wins over the request's.
    const pinned = mint({ tenant, kind: 'read', key: w.signingKey, domain: `${tenant}.example` });
    const r = await pipe('top_pages', pinned, `${range}&domain=elsewhere.example`);
    assert.ok(r.json.data.length > 0, 'fixed domain wins over the request');
  }
});

test('read tokens: the negative matrix', async () => {
  const exp = Math.floor(Date.now() / 1000) + 600;
  const scope = (type, resource, fixed = { tenant_id: 'alpha' }) => ({ type, resource, fixed_params: fixed });
  const good = w.token('alpha', 'read');
  const [h, p] = good.split('.');
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const cases = [
    ['no token', null, 401],
    ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`, 401],
    ['alg absent', `${b64({ typ: 'JWT' })}.${p}.${good.split('.')[2]}`, 401],
    ['wrong key', signJwt({ exp, scopes: [scope('PIPES:READ', '*')] }, 'not-the-key'), 401],
    ['tampered payload', `${h}.${b64({ exp, scopes: [scope('PIPES:READ', '*', { tenant_id: 'beta' })] })}.${good.split('.')[2]}`, 401],
    ['garbage', 'not.a.jwt', 401],
    ['expired', signJwt({ exp: exp - 3600, scopes: [scope('PIPES:READ', '*')] }, w.signingKey), 403],
    ['not yet valid', signJwt({ exp, nbf: exp - 60, scopes: [scope('PIPES:READ', '*')] }, w.signingKey), 403],
    ['wrong scope type', w.token('alpha', 'tracker'), 403],
    ['endpoint not in scope', signJwt({ exp, scopes: [scope('PIPES:READ', 'top_*')] }, w.signingKey), 403],
    ['no tenant', signJwt({ exp, scopes: [scope('PIPES:READ', '*', {})] }, w.signingKey), 403],
  ];
  for (const [what, token, status] of cases) {
    const r = token
      ? await pipe('kpis', token)
      : await w.fetch('/v0/pipes/kpis.json').then(async (x) => ({ status: x.status, json: JSON.parse(await x.text()) }));
    assert.equal(r.status, status, `${what}: ${JSON.stringify(r.json)}`);
    assert.ok(r.json.error.length > 10, `${what}: the error explains itself`);
  }
  const glob = signJwt({ exp, scopes: [scope('PIPES:READ', 'top_*')] }, w.signingKey);
  assert.equal((await pipe('top_pages', glob, range)).status, 200, 'a glob scope allows what it names');
});

test('bad parameters are 400s and unknown pipes 404s, never 500s', async () => {
  const token = w.token('alpha', 'read');
  for (const q of [
    'date_from=yesterday',
    'date_from=2025-02-30',
    'date_from=2025-03-02&date_to=2025-03-01',
    'limit=-1',
    'limit=abc',
    'skip=1e9',
    'timezone=Not/AZone',
    'timezone=%27%3B--',
    'date_from=2020-01-01&date_to=2025-01-01',
  ]) {
    const r = await pipe('top_pages', token, q);
    assert.equal(r.status, 400, `${q}: ${r.text}`);
    assert.match(r.json.error, /\w+/);
  }
  assert.equal((await pipe('nope', token)).status, 404);
  assert.equal((await pipe('kpis', token, `${range}&timezone=America/New_York`)).status, 200);
});

test('limits.rps is enforced per token with 429, Retry-After and RateLimit headers', async () => {
  const limited = mint({ tenant: 'alpha', kind: 'read', key: w.signingKey, rps: 2 });
  const results = [];
  for (let i = 0; i < 8; i++) results.push(await pipe('current_visitors', limited));
  const ok = results.filter((r) => r.status === 200);
  const denied = results.filter((r) => r.status === 429);
  assert.ok(ok.length >= 2 && ok.length <= 4, `about the burst of 2 passes, got ${ok.length}`);
  assert.ok(denied.length >= 4, `the rest is refused, got ${denied.length}`);
  assert.match(denied[0].json.error, /rate limit/);
  assert.ok(Number(denied[0].headers.get('retry-after')) >= 1);
  assert.equal(denied[0].headers.get('ratelimit-limit'), '2');
  assert.equal(ok[0].headers.get('ratelimit-limit'), '2');
  // Another token of the same tenant has its own bucket; a token without limits has none.
  const other = mint({ tenant: 'alpha', kind: 'read', key: w.signingKey, rps: 2, days: 2 });
  assert.equal((await pipe('current_visitors', other)).status, 200);
  assert.equal((await pipe('current_visitors', w.token('alpha', 'read'))).status, 200);
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal((await pipe('current_visitors', limited)).status, 200, 'the bucket refills');
});

async function query(token, body, { method = 'POST' } = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await w.fetch('/v0/query', { method, headers, body: method === 'POST' ? JSON.stringify(body) : undefined });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, text, headers: r.headers };
}

test('POST /v0/query: numbers equal the oracle, from the rollups and from the visit-level path', async () => {
  const dates = [day(now - 86_400_000), day(now)];
  for (const tenant of Object.keys(TENANTS)) {
    const e = expected[tenant];
    const token = w.token(tenant, 'read');
    const total = await query(token, { metrics: ['visitors', 'visits', 'pageviews', 'bounce_rate'], date_range: dates });
    assert.equal(total.status, 200, total.text);
    assert.equal(total.headers.get('x-query-path'), 'rollups');
    assert.deepEqual(total.json.results, [
      {
        metrics: [
          e.visitors,
          e.visits,
          e.pageviews,
          round((raw[tenant].filter((v) => v.hits.length === 1).length / raw[tenant].length) * 100, 2),
        ],
        dimensions: [],
      },
    ]);
    assert.deepEqual(total.json.query.date_range, dates);

    const byBrowser = await query(token, {
      metrics: ['visits', 'pageviews'],
      date_range: dates,
      dimensions: ['visit:browser'],
      include: { total_rows: true },
    });
    assert.equal(byBrowser.headers.get('x-query-path'), 'rollups');
    assert.deepEqual(
      Object.fromEntries(byBrowser.json.results.map((r) => [r.dimensions[0], { visits: r.metrics[0], hits: r.metrics[1] }])),
      Object.fromEntries(e.top_browsers),
      `${tenant} by browser`,
    );
    assert.equal(byBrowser.json.meta.total_rows, e.top_browsers.size);

    // Two filters (one negated) and a dimension: exact over the visit-level table.
    const body = {
      metrics: ['visits'],
      date_range: dates,
      dimensions: ['visit:country'],
      filters: [
        ['is_not', 'visit:browser', ['firefox']],
        ['contains', 'event:page', ['pricing', 'docs']],
      ],
    };
    const two = await query(token, body);
    assert.equal(two.status, 200, two.text);
    assert.equal(two.headers.get('x-query-path'), 'visits');
    const want = new Map();
    for (const v of raw[tenant]) {
      if (v.browser === 'firefox' || !v.hits.some((h) => h.path.includes('pricing') || h.path.includes('docs'))) continue;
      want.set(v.country, (want.get(v.country) ?? 0) + 1);
    }
    assert.deepEqual(
      Object.fromEntries(two.json.results.map((r) => [r.dimensions[0], r.metrics[0]])),
      Object.fromEntries(want),
      `${tenant} two filters`,
    );
  }
});

test('POST /v0/query: the tenant comes only from the token', async () => {
  const others = (t) => Object.keys(TENANTS).filter((o) => o !== t);
  for (const tenant of Object.keys(TENANTS)) {
    const token = w.token(tenant, 'read');
    for (const extra of [
      {},
      { tenant_id: others(tenant)[0] },
      { site_id: `${others(tenant)[0]}.example` },
      { filters: [['is', 'event:hostname', [`${others(tenant)[1]}.example`]]] },
    ]) {
      const body = { metrics: ['visits'], date_range: '7d', dimensions: ['visit:entry_page'], ...extra };
      const r = await query(token, body);
      assert.equal(r.status, 200, r.text);
      for (const other of others(tenant)) assert.ok(!r.text.includes(`/${other}/`), `${tenant} ${JSON.stringify(extra)} leaked ${other}`);
    }
    // A fixed domain in the token is AND-ed: another domain in the body finds nothing.
    const pinned = mint({ tenant, kind: 'read', key: w.signingKey, domain: `${tenant}.example` });
    const mine = await query(pinned, { metrics: ['visits'], date_range: [day(now - 86_400_000), day(now)] });
    assert.equal(mine.json.results[0].metrics[0], expected[tenant].visits);
    const elsewhere = await query(pinned, { metrics: ['visits'], date_range: '7d', site_id: 'elsewhere.example' });
    assert.deepEqual(elsewhere.json.results, []);
  }
});

test('POST /v0/query: a token that fixes dates reads only those dates, without comparisons', async () => {
  const iat = Math.floor(Date.now() / 1000);
  const dated = (fixed) =>
    signJwt(
      {
        workspace_id: 'starling',
        name: 'dated',
        iat,
        exp: iat + 600,
        scopes: [{ type: 'PIPES:READ', resource: '*', fixed_params: { tenant_id: 'alpha', ...fixed } }],
      },
      w.signingKey,
    );
  const both = dated({ date_from: day(now - 86_400_000), date_to: day(now) });
  // The body asks for a month; the token's dates win and hold every fixture visit.
  const r = await query(both, { metrics: ['visits'], date_range: '30d' });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.query.date_range, [day(now - 86_400_000), day(now)]);
  assert.equal(r.json.results[0].metrics[0], expected.alpha.visits);
  // Dates before the fixture: the same body finds nothing, so the fixed range is what was read.
  const before = dated({ date_from: day(now - 20 * 86_400_000), date_to: day(now - 10 * 86_400_000) });
  const empty = await query(before, { metrics: ['visits'], date_range: '30d' });
  assert.equal(empty.status, 200, empty.text);
  assert.equal(empty.json.results[0]?.metrics[0] ?? 0, 0);
  const cmp = await query(both, { metrics: ['visits'], date_range: '7d', include: { comparisons: { mode: 'previous_period' } } });
  assert.equal(cmp.status, 400, cmp.text);
  assert.ok(cmp.json.error.includes('include.comparisons'), cmp.json.error);
});

test('POST /v0/query: bad queries are 400s naming the field; auth and method errors', async () => {
  const token = w.token('alpha', 'read');
  const cases = [
    [{ date_range: '7d' }, 'metrics'],
    [{ metrics: ['visits', 'nope'], date_range: '7d' }, 'metrics[1]'],
    [{ metrics: ['visits'], date_range: 'someday' }, 'date_range'],
    [{ metrics: ['visits'], date_range: '7d', filters: [['is', 'visit:browser', 'chrome']] }, 'filters[0][2]'],
    [{ metrics: ['visits'], date_range: '7d', order_by: [['visitors', 'desc']] }, 'order_by[0]'],
    [{ metrics: ['visits'], date_range: '7d', timezone: 'Not/AZone' }, 'timezone'],
  ];
  for (const [body, field] of cases) {
    const r = await query(token, body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.ok(r.json.error.includes(`'${field}'`), `${JSON.stringify(body)}: ${r.json.error}`);
  }
  assert.equal((await query(null, { metrics: ['visits'], date_range: '7d' })).status, 401);
  assert.equal((await query(w.token('alpha', 'tracker'), { metrics: ['visits'], date_range: '7d' })).status, 403);
  assert.equal((await query(token, null, { method: 'GET' })).status, 405);
  const tz = await query(token, {
    metrics: ['visits'],
    date_range: '7d',
    timezone: 'Asia/Kolkata',
    dimensions: ['time:day'],
    include: { time_labels: true },
  });
  assert.equal(tz.status, 200, tz.text);
  assert.equal(tz.json.meta.time_labels.length, 7);
});

test('a full rebuild from the R2 archive gives the same numbers, pipes and /v0/query alike', async () => {
  const token = w.token('beta', 'read');
  const dates = [day(now - 86_400_000), day(now)];
  // Each read uses its own cache key (the spelling of UTC, a page size), so none is a cached answer.
  const read = async (n) => {
    const tz = ['uTC', 'UtC', 'UTc'][n];
    const out = {};
    for (const name of ['kpis_summary', 'kpis', 'top_pages', 'top_sources', 'entry_pages', 'exit_pages', 'current_visitors']) {
      const r = await pipe(name, token, `${range}&timezone=${tz}`);
      assert.equal(r.headers.get('x-cache'), 'MISS', `${name} ${tz}`);
      out[name] = r.json.data;
    }
    const q = await query(token, {
      metrics: ['visitors', 'visits', 'pageviews', 'bounce_rate', 'visit_duration'],
      date_range: dates,
      dimensions: ['visit:browser'],
      pagination: { limit: 1000 + n },
    });
    out.query = q.json.results;
    return out;
  };
  const before = await read(0);
  assert.ok(before.kpis_summary[0].visits > 0);
  assert.equal((await w.admin('/v0/admin/rebuild/reset?tenant_id=beta&full=true')).status, 200);
  const emptied = await read(1);
  assert.equal(emptied.kpis_summary[0].visits, 0, 'the reset emptied the rollups');
  for (const d of dates) {
    const r = await w.admin(`/v0/admin/rebuild/day?tenant_id=beta&day=${d}`);
    assert.equal(r.status, 200, r.text);
  }
  const after = await read(2);
  assert.deepEqual(after, before);
});
