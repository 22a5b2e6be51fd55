// The dashboard's comparison and segment selectors in a real browser against the real worker: the KPI
// deltas follow the chosen comparison (numbers on screen equal POST /v0/query's comparison), the
// choice lives in the URL fragment, "No comparison" removes the deltas and the ghost line, and a saved
// segment applied from the selector gives the pipes' numbers for segment=<id>. With goals (tenant
// cmpgoal, goals in both periods): the Goals table's deltas are the API's comparison of each goal, and
// with a goal selected the comparison KPIs and ghost line are the goal's. Screenshots go to
// test-output/ (and docs/dashboard-compare.png, docs/segments.png, the segment selector with "Save as
// segment", and docs/goals.png, the Goals table with its deltas, when STARLING_UPDATE_SCREENSHOT=1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium, openDashboard, settled } from './lib/browser.mjs';
import { startWorker, ROOT } from './lib/worker.mjs';
import { signJwt } from '../scripts/token.mjs';

const TZ = 'Europe/Madrid';
const UAS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
];
const cfBlob = (country) =>
  JSON.stringify({
    country,
    region: '',
    city: '',
    colo: 'LHR',
    httpProtocol: 'HTTP/1.1',
    timezone: 'UTC',
    tlsCipher: '',
    tlsVersion: '',
    clientAcceptEncoding: '',
    asn: 64500,
    asOrganization: 'Example',
  });

let w;
let browser;
let total = 0;
const today = () =>
  new Intl.DateTimeFormat('en-CA', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
const addDays = (iso, n) => {
  const d = new Date(`${iso}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
};

before(async () => {
  execFileSync('bash', ['scripts/build-www.sh'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  w = await startWorker({ fastQueues: true, shared: true });
  const token = w.token('cmpco', 'tracker');
  const now = Date.now();
  // Visits over the last three weeks, a few per day, so every comparison has data.
  for (let v = 0; v < 60; v++) {
    const start = now - ((v * 7.3) % 500) * 3_600_000 - 60_000;
    const pages = 1 + (v % 3);
    const lines = Array.from({ length: pages }, (_, i) =>
      JSON.stringify({
        timestamp: new Date(start + i * 30_000).toISOString(),
        action: 'page_hit',
        version: '1',
        session_id: `cmpco-${v}`,
        domain: 'cmpco.example',
        payload: JSON.stringify({
          'user-agent': UAS[v % 2],
          locale: 'en-US',
          referrer: '',
          pathname: `/p${(v + i) % 3}`,
          href: `https://cmpco.example/p${(v + i) % 3}`,
        }),
      }),
    );
    const r = await w.post('/v0/events?name=analytics_events', lines.join('\n'), {
      token,
      headers: { 'CF-Connecting-IP': `203.0.113.${v + 1}`, 'MF-CF-Blob': cfBlob(v % 3 ? 'ES' : 'DE') },
    });
    assert.equal(r.status, 202, r.text);
    total += 1;
  }
  const goalVisits = await seedGoals();
  await w.until(() => w.d1("SELECT count(*) AS n FROM sessions WHERE tenant_id = 'cmpco'")[0].n === total, {
    what: `${total} sessions rolled up`,
    timeoutMs: 90_000,
  });
  await w.until(() => w.d1(`SELECT count(*) AS n FROM sessions WHERE tenant_id = '${GOAL_TENANT}'`)[0].n === goalVisits, {
    what: `${goalVisits} ${GOAL_TENANT} sessions rolled up`,
    timeoutMs: 90_000,
  });
  browser = await launchChromium();
});

const GOAL_TENANT = 'cmpgoal';
const DAY_MS = 86_400_000;

/**
 * Goals (Signup, a custom event; Pricing, a page; Purchase, in EUR) and visits that reach them in the
 * last 7 days, the 7 days before and a year earlier, in other proportions in each period (so a goal's
 * comparison differs from all visits'). Returns the number of visits.
 */
async function seedGoals() {
  const settings = w.token(GOAL_TENANT, 'settings');
  for (const g of [
    { name: 'Signup', kind: 'event', match: 'signup' },
    { name: 'Pricing', kind: 'page', match: '/pricing' },
    { name: 'Purchase', kind: 'event', match: 'purchase', currency: 'EUR' },
  ]) {
    const r = await w.fetch('/v0/goals', { method: 'POST', headers: { Authorization: `Bearer ${settings}` }, body: JSON.stringify(g) });
    assert.equal(r.status, 201, r.body);
  }
  const tracker = w.token(GOAL_TENANT, 'tracker');
  const now = Date.now();
  // [first visit, visits, start of the period before now]: this week, the week before, a year earlier.
  const periods = [
    [0, 26, 0],
    [26, 16, 7 * DAY_MS],
    [42, 12, 365 * DAY_MS],
  ];
  let n = 0;
  for (const [first, count, back] of periods) {
    for (let v = first; v < first + count; v++) {
      const start = now - back - ((v * 11.3) % 140) * 3_600_000 - 60_000;
      const row = (i, action, payload) =>
        JSON.stringify({
          timestamp: new Date(start + i * 20_000).toISOString(),
          action,
          version: '1',
          session_id: `cmpgoal-${v}`,
          tenant_id: GOAL_TENANT,
          domain: 'cmpgoal.example',
          payload: JSON.stringify(payload),
        });
      const path = v % 3 ? '/' : '/pricing';
      const lines = [row(0, 'page_hit', { pathname: path, href: `https://cmpgoal.example${path}`, 'user-agent': UAS[v % 2] })];
      if (v % 2) lines.push(row(1, 'page_hit', { pathname: '/docs', href: 'https://cmpgoal.example/docs', 'user-agent': UAS[v % 2] }));
      // Signups: 3 in 4 visits this week, 1 in 2 before; purchases in about 1 in 4, most with revenue.
      if (back === 0 ? v % 4 !== 3 : v % 2 === 0) lines.push(row(2, 'signup', {}));
      if (v % 4 === 1) lines.push(row(3, 'purchase', v % 8 === 1 ? { revenue: { amount: `${10 + (v % 7)}.50`, currency: 'EUR' } } : {}));
      if (v % 12 === 5) lines.push(row(4, 'purchase', { revenue: { amount: '4', currency: 'EUR' } }));
      const r = await w.post('/v0/events?name=analytics_events', lines.join('\n'), {
        token: tracker,
        headers: { 'CF-Connecting-IP': `198.51.100.${v + 1}`, 'MF-CF-Blob': cfBlob('FR') },
      });
      assert.equal(r.status, 202, r.text);
      n += 1;
    }
  }
  return n;
}

after(async () => {
  await browser?.close();
  await w?.stop();
});

const open = (hash) => openDashboard(browser, w.base, hash, { timezoneId: TZ });

async function post(body, token) {
  const r = await w.fetch('/v0/query', { method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body);
}

async function pipe(name, params, token) {
  const r = await w.fetch(`/v0/pipes/${name}.json?${new URLSearchParams(params)}`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body).data;
}

/** The /v0/query metrics in the dashboard's order, as the KPI keys. */
const asKpis = (m) => ({
  visitors: m[0],
  visits: m[1],
  pageviews: m[2],
  views_per_visit: m[3],
  bounce_rate: m[4] / 100,
  avg_session_sec: m[5],
});
const METRICS = ['visitors', 'visits', 'pageviews', 'views_per_visit', 'bounce_rate', 'visit_duration'];

async function shown(page, attr) {
  const out = {};
  for (const k of ['visitors', 'visits', 'pageviews', 'views_per_visit', 'bounce_rate', 'avg_session_sec'])
    out[k] = Number(await page.getAttribute(`[data-testid=${attr === 'data-value' ? 'kpi' : 'delta'}-${k}]`, attr));
  return out;
}

test('the comparison selector drives the KPI deltas and lives in the fragment', async () => {
  const token = w.token('cmpco', 'read');
  const to = today();
  const from = addDays(to, -6);
  const cmpFrom = addDays(to, -20);
  const cmpTo = addDays(to, -14);
  const { page, context, problems } = await open(`token=${token}&compare=custom&cmp_from=${cmpFrom}&cmp_to=${cmpTo}`);
  let gen = await settled(page);
  assert.equal(await page.inputValue('[data-testid=compare-select]'), 'custom');
  const base = { metrics: METRICS, date_range: [from, to], timezone: TZ, filters: [] };
  const custom = await post({ ...base, include: { comparisons: { mode: 'custom', date_range: [cmpFrom, cmpTo] } } }, token);
  assert.deepEqual(await shown(page, 'data-previous'), asKpis(custom.results[0].comparison.metrics), 'deltas against the custom range');
  const summary = (await pipe('kpis_summary', { date_from: from, date_to: to, timezone: TZ }, token))[0];
  const values = await shown(page, 'data-value');
  for (const k of Object.keys(values)) assert.equal(values[k], summary[k], `current ${k}`);
  assert.equal(await page.getAttribute('[data-testid=period]', 'data-compare-from'), cmpFrom);
  assert.equal(await page.locator('[data-testid=chart-table] thead th').nth(2).textContent(), 'Comparison');
  mkdirSync(join(ROOT, 'test-output'), { recursive: true });
  await page.screenshot({ path: join(ROOT, 'test-output/dashboard-compare-1280.png') });
  if (process.env.STARLING_UPDATE_SCREENSHOT)
    copyFileSync(join(ROOT, 'test-output/dashboard-compare-1280.png'), join(ROOT, 'docs/dashboard-compare.png'));

  // Previous period, matched to the weekday: the server's dates and numbers.
  await page.selectOption('[data-testid=compare-select]', 'previous_period');
  gen = await settled(page, gen);
  await page.check('[data-testid=match-dow]');
  gen = await settled(page, gen);
  assert.match(page.url(), /match_dow=1/);
  assert.doesNotMatch(page.url(), /compare=/, 'the default mode is not written');
  const matched = await post({ ...base, include: { comparisons: { mode: 'previous_period', match_day_of_week: true } } }, token);
  assert.deepEqual(await shown(page, 'data-previous'), asKpis(matched.results[0].comparison.metrics));
  assert.deepEqual(
    [
      await page.getAttribute('[data-testid=period]', 'data-compare-from'),
      await page.getAttribute('[data-testid=period]', 'data-compare-to'),
    ],
    matched.meta.comparison_date_range,
  );

  // No comparison: no deltas, no ghost column.
  await page.selectOption('[data-testid=compare-select]', 'off');
  gen = await settled(page, gen);
  assert.match(page.url(), /compare=off/);
  assert.equal((await page.textContent('[data-testid=delta-visits]')).trim(), 'no comparison');
  assert.equal(await page.locator('[data-testid=chart-table] thead th').nth(2).textContent(), 'No comparison');
  assert.doesNotMatch(await page.textContent('[data-testid=period]'), /compared with/);
  assert.deepEqual(problems, []);
  await context.close();
});

test('a saved segment applied from the selector gives the pipes numbers for segment=<id>', async () => {
  // Saved with the tenant's own SETTINGS:WRITE token (the tenant is not registered with the admin API).
  const secs = Math.floor(Date.now() / 1000);
  const writer = signJwt(
    {
      name: 'w',
      iat: secs - 5,
      exp: secs + 600,
      scopes: [{ type: 'SETTINGS:WRITE', resource: '*', fixed_params: { tenant_id: 'cmpco' } }],
    },
    w.signingKey,
  );
  const r = await w.fetch('/v0/segments', {
    method: 'POST',
    headers: { Authorization: `Bearer ${writer}` },
    body: JSON.stringify({
      name: 'Spain on Firefox',
      filters: [
        ['is', 'visit:country', ['ES']],
        ['is', 'visit:browser', ['firefox']],
      ],
    }),
  });
  assert.equal(r.status, 201, r.body);
  const { id } = JSON.parse(r.body);
  const token = w.token('cmpco', 'read');
  const { page, context, problems } = await open(`token=${token}`);
  let gen = await settled(page);
  const goalBodies = [];
  page.on('request', (q) => {
    const body = q.method() === 'POST' && new URL(q.url()).pathname === '/v0/query' ? JSON.parse(q.postData()) : null;
    if (body?.dimensions?.[0] === 'event:goal') goalBodies.push(body);
  });
  await page.selectOption('[data-testid=segment-select]', String(id));
  gen = await settled(page, gen);
  assert.match(page.url(), new RegExp(`segment=${id}`));
  // The Goals card follows the segment like the pipes do.
  assert.ok(goalBodies.length > 0, 'the Goals card asked /v0/query again');
  assert.deepEqual(goalBodies.at(-1).filters, [['is', 'segment', [id]]]);
  const to = today();
  const params = { date_from: addDays(to, -6), date_to: to, timezone: TZ };
  const withSegment = (await pipe('kpis_summary', { ...params, segment: id, include_previous_period: 'true' }, token))[0];
  const all = (await pipe('kpis_summary', params, token))[0];
  const values = await shown(page, 'data-value');
  assert.equal(values.visits, withSegment.visits);
  assert.ok(withSegment.visits > 0 && withSegment.visits < all.visits, `${withSegment.visits} of ${all.visits}`);
  assert.equal(Number(await page.getAttribute('[data-testid=delta-visits]', 'data-previous')), withSegment.previous_visits);
  const rows = await page.$$eval('[data-testid=table-top_browsers] tbody tr[data-testid=row]', (rs) => rs.map((r) => r.dataset.key));
  assert.deepEqual(rows, ['firefox']);
  assert.deepEqual(problems, []);
  await context.close();
});

test('"Save as segment" saves the current filters and applies the new segment', async () => {
  const secs = Math.floor(Date.now() / 1000);
  const fixed = { tenant_id: 'cmpco' };
  // A dashboard token that may also write the tenant's settings.
  const token = signJwt(
    {
      name: 'rw',
      iat: secs - 5,
      exp: secs + 600,
      scopes: [
        { type: 'PIPES:READ', resource: '*', fixed_params: fixed },
        { type: 'SETTINGS:WRITE', resource: '*', fixed_params: fixed },
      ],
    },
    w.signingKey,
  );
  const { page, context, problems } = await open(`token=${token}&browser=firefox&country=ES`);
  let gen = await settled(page);
  const before = Number(await page.getAttribute('[data-testid=kpi-visits]', 'data-value'));
  // The header with the segment selector and the filters about to be saved.
  mkdirSync(join(ROOT, 'test-output'), { recursive: true });
  const bottom = await page.evaluate(() => Math.ceil(document.getElementById('filters').getBoundingClientRect().bottom) + 8);
  await page.screenshot({ path: join(ROOT, 'test-output/segments-1280.png'), clip: { x: 0, y: 0, width: 1280, height: bottom } });
  if (process.env.STARLING_UPDATE_SCREENSHOT) copyFileSync(join(ROOT, 'test-output/segments-1280.png'), join(ROOT, 'docs/segments.png'));
  page.once('dialog', (d) => d.accept('Spanish Firefox'));
  await page.click('[data-testid=save-segment]');
  gen = await settled(page, gen);
  const url = new URL(page.url());
  const id = new URLSearchParams(url.hash.slice(1)).get('segment');
  assert.match(id ?? '', /^\d+$/, page.url());
  assert.doesNotMatch(url.hash, /browser=|country=/, 'the filters moved into the segment');
  assert.equal(await page.inputValue('[data-testid=segment-select]'), id);
  assert.equal(Number(await page.getAttribute('[data-testid=kpi-visits]', 'data-value')), before, 'the same visits as with the filters');
  const listed = await w.fetch('/v0/segments', { headers: { Authorization: `Bearer ${token}` } });
  const saved = JSON.parse(listed.body).data.find((s) => String(s.id) === id);
  assert.equal(saved.name, 'Spanish Firefox');
  assert.deepEqual(saved.filters.map((f) => f[1]).sort(), ['visit:browser', 'visit:country']);
  assert.deepEqual(problems, []);
  await context.close();
});

/** The Goals table's rows: per goal, each figure's value and its delta (previous, change, text). */
const goalRows = (page) =>
  page.$$eval('[data-testid=table-goals] tbody tr[data-testid=row]', (rows) =>
    rows.map((r) => {
      const out = { key: r.dataset.key };
      for (const k of ['visitors', 'events', 'rate', 'revenue']) {
        const d = r.querySelector(`[data-testid=delta-${k}]`);
        out[k] = {
          value: r.querySelector(`[data-testid=${k}]`).dataset.value,
          delta: d && {
            previous: d.dataset.previous,
            change: d.dataset.change,
            text: d.querySelector('[aria-hidden]').textContent,
            cls: d.className,
          },
        };
      }
      return out;
    }),
  );

/** What the dashboard shows for a change: the KPI cards' rule. */
const deltaText = (prev, cur, change) => {
  if (prev === 0) return cur === 0 ? '–' : 'new';
  const r = Math.round(change);
  return `${r > 0 ? '▲' : r < 0 ? '▼' : '='} ${Math.abs(r)}%`;
};

/** The Goals table on `page` equals POST /v0/query by goal with the comparison `comparisons`. */
async function assertGoalDeltas(page, token, from, to, comparisons) {
  const api = await post(
    {
      metrics: ['conversions', 'events', 'conversion_rate', 'total_revenue'],
      date_range: [from, to],
      dimensions: ['event:goal'],
      timezone: TZ,
      filters: [],
      order_by: [['conversions', 'desc']],
      include: { comparisons },
    },
    token,
  );
  const shown = await goalRows(page);
  assert.deepEqual(
    shown.map((r) => r.key),
    api.results.map((r) => r.dimensions[0]),
  );
  assert.deepEqual(shown.map((r) => r.key).sort(), ['Pricing', 'Purchase', 'Signup'], 'every goal has conversions');
  let compared = 0;
  for (const [i, r] of api.results.entries()) {
    const row = shown[i];
    const { metrics: prev, change } = r.comparison;
    for (const [j, k] of ['visitors', 'events', 'rate'].entries()) {
      assert.equal(Number(row[k].value), r.metrics[j], `${row.key} ${k}`);
      const d = row[k].delta;
      assert.ok(d, `${row.key} ${k} has a delta`);
      assert.equal(Number(d.previous), prev[j], `${row.key} ${k} in the comparison`);
      assert.equal(d.text, deltaText(prev[j], r.metrics[j], change[j]), `${row.key} ${k} delta text`);
      if (prev[j] !== 0) {
        assert.equal(Number(d.change), change[j], `${row.key} ${k} change`);
        const up = Math.round(change[j]) > 0;
        const down = Math.round(change[j]) < 0;
        assert.equal(d.cls.includes('good'), up, `${row.key} ${k} colour`);
        assert.equal(d.cls.includes('bad'), down, `${row.key} ${k} colour`);
        compared += 1;
      }
    }
    // Revenue: its change where either period had some, in the goal's currency.
    const [cur, before] = [r.metrics[3], prev[3]];
    const d = row.revenue.delta;
    if (!cur && !before) assert.equal(d, null, `${row.key}: no revenue, no delta`);
    else {
      assert.equal(Number(d.previous), Number(before?.value ?? 0), `${row.key} revenue in the comparison`);
      assert.equal(d.text, deltaText(Number(before?.value ?? 0), Number(cur?.value ?? 0), change[3]), `${row.key} revenue delta text`);
    }
  }
  assert.ok(compared >= 6, `${compared} goal figures had something to compare with`);
  return api;
}

test('the Goals table shows each goal change from one /v0/query with the comparison', async () => {
  const token = w.token(GOAL_TENANT, 'read');
  const to = today();
  const from = addDays(to, -6);
  const goalQueries = [];
  const { page, context, problems } = await open(`token=${token}&compare=year_over_year`);
  page.on('request', (q) => {
    const body = q.method() === 'POST' && new URL(q.url()).pathname === '/v0/query' ? JSON.parse(q.postData()) : null;
    if (body?.dimensions?.[0] === 'event:goal') goalQueries.push(body);
  });
  let gen = await settled(page);
  const yoy = await assertGoalDeltas(page, token, from, to, { mode: 'year_over_year' });
  const purchase = yoy.results.find((r) => r.dimensions[0] === 'Purchase');
  assert.ok(purchase.metrics[3] && purchase.comparison.metrics[3], 'Purchase has revenue in both periods');
  mkdirSync(join(ROOT, 'test-output'), { recursive: true });
  await page.locator('#goals').screenshot({ path: join(ROOT, 'test-output/goals-compare-1280.png') });
  if (process.env.STARLING_UPDATE_SCREENSHOT) copyFileSync(join(ROOT, 'test-output/goals-compare-1280.png'), join(ROOT, 'docs/goals.png'));

  // The plain previous period (the KPI cards' from the pipes): the goals' still from /v0/query, one call.
  goalQueries.length = 0;
  await page.selectOption('[data-testid=compare-select]', 'previous_period');
  gen = await settled(page, gen);
  await assertGoalDeltas(page, token, from, to, { mode: 'previous_period' });
  assert.equal(goalQueries.length, 1, 'one /v0/query for the whole Goals table');
  assert.deepEqual(goalQueries[0].include, { comparisons: { mode: 'previous_period' } });

  // No comparison: no deltas and no comparison asked.
  await page.selectOption('[data-testid=compare-select]', 'off');
  gen = await settled(page, gen);
  assert.equal(await page.locator('[data-testid=table-goals] [data-testid^=delta-]').count(), 0);
  assert.equal(goalQueries.at(-1).include, undefined);
  assert.deepEqual(problems, []);
  await context.close();
});

test('with a goal selected, the comparison KPIs and ghost line are the goal visits', async () => {
  const token = w.token(GOAL_TENANT, 'read');
  const to = today();
  const from = addDays(to, -6);
  const { page, context, problems } = await open(`token=${token}&goal=Signup&compare=year_over_year`);
  await settled(page);
  const goal = [['is', 'event:goal', ['Signup']]];
  const base = { metrics: METRICS, date_range: [from, to], timezone: TZ };
  const include = { comparisons: { mode: 'year_over_year' } };
  const withGoal = await post({ ...base, filters: goal, include }, token);
  const all = await post({ ...base, filters: [], include }, token);
  const expected = asKpis(withGoal.results[0].comparison.metrics);
  assert.deepEqual(await shown(page, 'data-previous'), expected, "the goal's comparison");
  assert.notDeepEqual(expected, asKpis(all.results[0].comparison.metrics), 'the goal changes the comparison');
  assert.ok(expected.visitors > 0 && expected.visitors < all.results[0].comparison.metrics[0]);
  // The current figures (the pipes with goal=Signup) are the same visits as /v0/query's with the goal.
  const values = await shown(page, 'data-value');
  for (const [i, k] of ['visitors', 'visits', 'pageviews'].entries())
    assert.equal(values[k], withGoal.results[0].metrics[i], `current ${k}`);
  // The ghost line: the goal's visitors by day over the comparison range.
  const [cmpFrom, cmpTo] = withGoal.meta.comparison_date_range;
  const byDay = await post(
    { ...base, date_range: [cmpFrom, cmpTo], filters: goal, dimensions: ['time:day'], include: { time_labels: true } },
    token,
  );
  const perDay = new Map(byDay.results.map((r) => [r.dimensions[0], r.metrics[0]]));
  const ghost = await page.$$eval('[data-testid=chart-table] tbody tr', (rows) => rows.map((r) => r.cells[2].textContent));
  assert.deepEqual(
    ghost,
    byDay.meta.time_labels.map((l) => String(perDay.get(l) ?? 0)),
  );
  assert.ok(
    ghost.some((x) => x !== '0'),
    'the ghost line has visits',
  );
  assert.deepEqual(problems, []);
  await context.close();
});
