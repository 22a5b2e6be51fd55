// Goals end to end through wrangler dev: goals created with the tenant's own settings token and the
// admin API, browser page hits and custom events plus server-side events from a plain HTTP client,
// conversions, conversion rate and exact revenue from /v0/query, another tenant that can neither see
// nor delete them, and a rebuild from the archive that counts a goal created after its events.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium } from './lib/browser.mjs';
import { startWorker, ROOT } from './lib/worker.mjs';

let w;
before(async () => {
  w = await startWorker({ fastQueues: true, shared: true });
});
after(async () => {
  await w?.stop();
});

const BROWSER_UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';

const ingest = (rows, token, headers) =>
  w.post('/v0/events?name=analytics_events', rows.join('\n'), { token, headers: { 'Content-Type': 'application/x-ndjson', ...headers } });

function row({ action = 'page_hit', session, path = '/', payload = {}, ts = new Date().toISOString() }) {
  const r = { timestamp: ts, action, version: '1', tenant_id: 'shop', domain: 'shop.example' };
  if (session) r.session_id = session;
  r.payload = JSON.stringify(action === 'page_hit' ? { pathname: path, href: `https://shop.example${path}`, ...payload } : payload);
  return JSON.stringify(r);
}

const goalsCall = (method, path, token, body) =>
  w.fetch(path, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
  });

async function query(token, body) {
  const r = await w.post('/v0/query', JSON.stringify(body), { token, headers: { 'Content-Type': 'application/json' } });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

async function settingsToken(tenant) {
  const created = await w.admin('/v0/admin/tenants', { body: JSON.stringify({ tenant_id: tenant, display_name: tenant, plan: 'pro' }) });
  assert.equal(created.status, 201, created.text);
  const minted = await w.admin(`/v0/admin/tenants/${tenant}/tokens`, { body: JSON.stringify({ name: 'goals', kind: 'settings' }) });
  assert.equal(minted.status, 201, minted.text);
  return minted.json.token;
}

test('goals from the API count browser and server-side conversions with exact revenue, for their tenant only', async () => {
  const shop = await settingsToken('shop');
  const other = await settingsToken('other');

  // Create: the tenant's own settings token, and the admin API.
  const created = [];
  for (const g of [
    { name: 'Signup', kind: 'event', match: 'signup' },
    { name: 'Purchase', kind: 'event', match: 'purchase', currency: 'EUR' },
    { name: 'Pricing', kind: 'page', match: '/pricing*' },
  ]) {
    const r = await goalsCall('POST', '/v0/goals', shop, g);
    assert.equal(r.status, 201, r.body);
    created.push(JSON.parse(r.body));
  }
  const blog = await w.admin('/v0/admin/tenants/shop/goals', { body: JSON.stringify({ name: 'Blog', kind: 'page', match: '/blog/*' }) });
  assert.equal(blog.status, 201, blog.text);
  assert.deepEqual(
    created.map((g) => [g.name, g.kind, g.match, g.currency]),
    [
      ['Signup', 'event', 'signup', null],
      ['Purchase', 'event', 'purchase', 'EUR'],
      ['Pricing', 'page', '/pricing*', null],
    ],
  );

  // Bad definitions: a 400 naming the field; a read or tracker token cannot write.
  for (const [body, field] of [
    [{ name: '', kind: 'event', match: 'x' }, /'name'/],
    [{ name: 'A', kind: 'event', match: 'buy', currency: 'XYZ' }, /'currency'/],
    [{ name: 'A', kind: 'page', match: 'blog' }, /'match'/],
    [{ name: 'A', kind: 'click', match: 'x' }, /'kind'/],
    [{ name: 'Signup', kind: 'event', match: 'other' }, /'name'.*exists/],
  ]) {
    const r = await goalsCall('POST', '/v0/goals', shop, body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.match(JSON.parse(r.body).error, field);
  }
  assert.equal((await goalsCall('POST', '/v0/goals', w.token('shop', 'read'), { name: 'R', kind: 'event', match: 'r' })).status, 403);
  assert.equal((await goalsCall('POST', '/v0/goals', w.token('shop'), { name: 'T', kind: 'event', match: 't' })).status, 403);

  // Browser visits from two people, and a backend posting purchases with curl (no session id).
  const tracker = w.token('shop');
  const a = { 'User-Agent': BROWSER_UA, 'CF-Connecting-IP': '203.0.113.7' };
  const b = { 'User-Agent': BROWSER_UA, 'CF-Connecting-IP': '198.51.100.9' };
  assert.equal(
    (
      await ingest(
        [row({ session: 'a-1', path: '/' }), row({ session: 'a-1', path: '/pricing' }), row({ session: 'a-1', action: 'signup' })],
        tracker,
        a,
      )
    ).status,
    202,
  );
  assert.equal((await ingest([row({ session: 'a-1', path: '/blog/one' })], tracker, a)).status, 202);
  assert.equal(
    (await ingest([row({ session: 'b-1', path: '/blog/two' }), row({ session: 'b-1', action: 'click' })], tracker, b)).status,
    202,
  );
  const server = { 'User-Agent': 'curl/8.4.0', 'CF-Connecting-IP': '192.0.2.50' };
  const purchases = [
    row({ action: 'purchase', payload: { revenue: { amount: '19.99', currency: 'EUR' } } }),
    row({ action: 'purchase', payload: { revenue: { amount: 5.01, currency: 'EUR' } } }),
    row({ action: 'purchase', payload: { revenue: { amount: 3, currency: 'USD' } } }),
  ];
  assert.equal((await ingest(purchases, tracker, server)).status, 202);
  await w.until(
    () =>
      w.d1("SELECT count(*) AS n FROM session_goals WHERE tenant_id = 'shop'")[0].n === 5 &&
      w.d1("SELECT sum(events) AS n FROM session_goals WHERE tenant_id = 'shop' AND goal = 'Purchase'")[0].n === 3,
    { what: 'goal rows' },
  );

  const read = w.token('shop', 'read');
  const goals = await query(read, {
    metrics: ['visitors', 'visits', 'conversions', 'events', 'conversion_rate', 'total_revenue', 'average_revenue'],
    date_range: 'day',
    dimensions: ['event:goal'],
    order_by: [['event:goal', 'asc']],
  });
  assert.deepEqual(
    goals.results.map((r) => [r.dimensions[0], ...r.metrics]),
    [
      ['Blog', 2, 2, 2, 2, 100, null, null],
      ['Pricing', 1, 1, 1, 1, 50, null, null],
      // Server-side: one visitor (the backend), no page visit; the USD amount is not converted.
      ['Purchase', 1, 1, 1, 3, 50, { value: 25, currency: 'EUR' }, { value: 12.5, currency: 'EUR' }],
      ['Signup', 1, 1, 1, 1, 50, null, null],
    ],
  );
  // The same Goals table from the rollups only (goal-event cells and the all-visits divisor), and with
  // a comparison: today against yesterday (nothing), every goal metric with its change.
  const goalsTable = {
    metrics: ['visitors', 'visits', 'conversions', 'events', 'conversion_rate', 'total_revenue', 'average_revenue'],
    date_range: 'day',
    dimensions: ['event:goal'],
    order_by: [['event:goal', 'asc']],
  };
  // (A page size of its own: the same body would be a cache hit, which names no path.)
  const path = await w.post('/v0/query', JSON.stringify({ ...goalsTable, pagination: { limit: 100 } }), {
    token: read,
    headers: { 'Content-Type': 'application/json' },
  });
  assert.equal(path.headers.get('x-query-path'), 'rollups');
  const compared = await query(read, { ...goalsTable, include: { comparisons: { mode: 'previous_period' } } });
  assert.deepEqual(
    compared.results.map((r) => [r.dimensions[0], ...r.metrics]),
    goals.results.map((r) => [r.dimensions[0], ...r.metrics]),
  );
  const purchase = compared.results.find((r) => r.dimensions[0] === 'Purchase');
  assert.deepEqual(purchase.comparison.metrics, [0, 0, 0, 0, 0, null, null]);
  assert.deepEqual(purchase.comparison.change, [100, 100, 100, 100, 100, 100, 100]);
  // Clicking a goal filters everything: the converting visits' measures (the rollups).
  const blogOnly = await w.post(
    '/v0/query',
    JSON.stringify({ metrics: ['visitors', 'visits', 'pageviews'], date_range: 'day', filters: [['is', 'event:goal', ['Pricing']]] }),
    {
      token: read,
      headers: { 'Content-Type': 'application/json' },
    },
  );
  assert.equal(blogOnly.headers.get('x-query-path'), 'rollups');
  assert.deepEqual(blogOnly.json.results[0].metrics, [1, 1, 3]);
  // Page numbers are page visits': the backend's events start no visit.
  const all = await query(read, { metrics: ['visitors', 'visits', 'pageviews'], date_range: 'day' });
  assert.deepEqual(all.results[0].metrics, [2, 2, 4]);

  // Another tenant sees nothing of these goals and cannot delete them.
  const otherList = await goalsCall('GET', '/v0/goals', other);
  assert.equal(otherList.status, 200);
  assert.deepEqual(JSON.parse(otherList.body).data, []);
  const signupId = created[0].id;
  assert.equal((await goalsCall('DELETE', `/v0/goals/${signupId}`, other)).status, 404);
  const otherQuery = await query(w.token('other', 'read'), { metrics: ['conversions'], date_range: 'day', dimensions: ['event:goal'] });
  assert.deepEqual(otherQuery.results, []);
  const listed = JSON.parse((await goalsCall('GET', '/v0/goals', read)).body).data;
  assert.deepEqual(
    listed.map((g) => g.name),
    ['Signup', 'Purchase', 'Pricing', 'Blog'],
  );

  // The owner deletes one: it is no longer listed (nor evaluated).
  assert.equal((await goalsCall('DELETE', `/v0/goals/${signupId}`, shop)).status, 200);
  assert.equal((await goalsCall('DELETE', `/v0/goals/${signupId}`, shop)).status, 404);
  const after = JSON.parse((await goalsCall('GET', '/v0/goals', shop)).body).data;
  assert.deepEqual(
    after.map((g) => g.name),
    ['Purchase', 'Pricing', 'Blog'],
  );

  // A goal created after its events counts them once the day is rebuilt from the archive.
  assert.equal((await goalsCall('POST', '/v0/goals', shop, { name: 'Home', kind: 'page', match: '/' })).status, 201);
  const before = await query(read, { metrics: ['conversions'], date_range: 'day', filters: [['is', 'event:goal', ['Home']]] });
  assert.deepEqual(before.results[0]?.metrics ?? [0], [0]);
  const today = new Date().toISOString().slice(0, 10);
  assert.equal((await w.admin(`/v0/admin/rebuild/reset?tenant_id=shop&date_from=${today}&date_to=${today}`)).status, 200);
  const day = await w.admin(`/v0/admin/rebuild/day?tenant_id=shop&day=${today}`);
  assert.equal(day.status, 200, day.text);
  const rebuilt = await query(read, {
    metrics: ['conversions', 'events', 'total_revenue'],
    date_range: 'day',
    dimensions: ['event:goal'],
    order_by: [['event:goal', 'asc']],
  });
  assert.deepEqual(
    rebuilt.results.map((r) => [r.dimensions[0], ...r.metrics]),
    [
      ['Blog', 2, 2, null],
      ['Home', 1, 1, null],
      ['Pricing', 1, 1, null],
      ['Purchase', 1, 3, { value: 25, currency: 'EUR' }],
    ],
  );
});

test('the dashboard Goals table equals the API, and a goal row filters every figure', async () => {
  // Runs after the test above: shop's goals are Purchase, Pricing, Blog and Home, all with data today.
  const token = w.token('shop', 'read');
  const browser = await launchChromium();
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 }, timezoneId: 'UTC', locale: 'en-US' });
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
    const ready = () => page.evaluate(() => Number(document.body.dataset.ready || 0));
    const settled = (after) =>
      page.waitForFunction(
        (n) => Number(document.body.dataset.ready || 0) > n && document.getElementById('main').getAttribute('aria-busy') === 'false',
        after,
        { timeout: 30_000 },
      );
    await page.goto(`${w.base}/dashboard/#token=${token}`);
    await settled(0);

    const today = new Date().toISOString().slice(0, 10);
    const from = new Date(Date.now() - 6 * 86_400_000).toISOString().slice(0, 10);
    const api = await query(token, {
      metrics: ['conversions', 'events', 'conversion_rate', 'total_revenue'],
      date_range: [from, today],
      dimensions: ['event:goal'],
      timezone: 'UTC',
      order_by: [['conversions', 'desc']],
    });
    const shown = await page.$$eval('[data-testid=table-goals] tbody tr[data-testid=row]', (rows) =>
      rows.map((r) => [
        r.dataset.key,
        Number(r.querySelector('[data-testid=visitors]').dataset.value),
        Number(r.querySelector('[data-testid=events]').dataset.value),
        Number(r.querySelector('[data-testid=rate]').dataset.value),
      ]),
    );
    assert.deepEqual(
      shown,
      api.results.map((r) => [r.dimensions[0], r.metrics[0], r.metrics[1], r.metrics[2]]),
    );
    assert.ok(shown.length >= 4);
    const revenue = await page.textContent('[data-testid=table-goals] tr[data-key="Purchase"] [data-testid=revenue]');
    assert.equal(revenue, '€25.00');
    mkdirSync(join(ROOT, 'test-output'), { recursive: true });
    await page.screenshot({ path: join(ROOT, 'test-output/goals-1280.png'), fullPage: true });

    // A goal row filters every figure: the KPIs equal kpis_summary with that goal.
    const gen = await ready();
    await page.click('[data-testid=table-goals] tr[data-key="Pricing"] button');
    await settled(gen);
    await page.waitForSelector('[data-testid=filter-chip][data-filter=goal]');
    const summary = JSON.parse(
      (
        await w.fetch(`/v0/pipes/kpis_summary.json?date_from=${from}&date_to=${today}&timezone=UTC&goal=Pricing`, {
          headers: { Authorization: `Bearer ${token}` },
        })
      ).body,
    ).data[0];
    assert.equal(summary.visits, 1);
    for (const k of ['visitors', 'visits', 'pageviews']) {
      assert.equal(Number(await page.getAttribute(`[data-testid=kpi-${k}]`, 'data-value')), summary[k], k);
    }
    const browsers = await page.$$eval('[data-testid=table-top_browsers] tbody tr[data-testid=row]', (rows) =>
      rows.map((r) => Number(r.querySelector('[data-testid=visits]').dataset.value)),
    );
    assert.deepEqual(browsers, [1]);
    assert.deepEqual(problems, []);
    await context.close();
  } finally {
    await browser.close();
  }
});

test('custom properties of page hits and custom events break down through /v0/query', async () => {
  // A goal on the signup event: its properties are those of the signup events only.
  const settings = await settingsToken('propshop');
  const signupGoal = await goalsCall('POST', '/v0/goals', settings, { name: 'Signup', kind: 'event', match: 'signup' });
  assert.equal(signupGoal.status, 201, signupGoal.body);
  const tracker = w.token('propshop');
  const rows = (session, plan, extra = []) => [
    JSON.stringify({
      timestamp: new Date().toISOString(),
      action: 'page_hit',
      version: '1',
      session_id: session,
      tenant_id: 'propshop',
      domain: 'app.example',
      payload: JSON.stringify({ pathname: '/', href: 'https://app.example/', plan }),
    }),
    ...extra,
  ];
  const signup = (session, payload) =>
    JSON.stringify({
      timestamp: new Date().toISOString(),
      action: 'signup',
      version: '1',
      session_id: session,
      tenant_id: 'propshop',
      domain: 'app.example',
      payload: JSON.stringify(payload),
    });
  const ua = { 'User-Agent': BROWSER_UA };
  assert.equal(
    (await ingest(rows('p-1', 'pro', [signup('p-1', { seats: 3 })]), tracker, { ...ua, 'CF-Connecting-IP': '203.0.113.20' })).status,
    202,
  );
  assert.equal((await ingest(rows('p-2', 'free'), tracker, { ...ua, 'CF-Connecting-IP': '203.0.113.21' })).status, 202);
  assert.equal((await ingest(rows('p-3', 'pro'), tracker, { ...ua, 'CF-Connecting-IP': '203.0.113.22' })).status, 202);
  await w.until(() => w.d1("SELECT count(*) AS n FROM session_props WHERE tenant_id = 'propshop'")[0].n === 4, { what: 'property rows' });
  const read = w.token('propshop', 'read');
  const plans = await query(read, { metrics: ['visitors', 'visits'], date_range: 'day', dimensions: ['event:props:plan'] });
  assert.deepEqual(
    plans.results.map((r) => [r.dimensions[0], ...r.metrics]),
    [
      ['pro', 2, 2],
      ['free', 1, 1],
    ],
  );
  const seats = await query(read, { metrics: ['visitors', 'events'], date_range: 'day', dimensions: ['event:props:seats'] });
  assert.deepEqual(seats.results, [{ metrics: [1, 1], dimensions: ['3'] }]);
  const pro = await query(read, { metrics: ['visits', 'pageviews'], date_range: 'day', filters: [['is', 'event:props:plan', ['pro']]] });
  assert.deepEqual(pro.results[0].metrics, [2, 2]);
  // A goal's properties: `seats` rode on the signup event, `plan` on the page hit before it, so the
  // goal has one `seats` value and no `plan` value.
  const goal = [['is', 'event:goal', ['Signup']]];
  const goalSeats = await query(read, {
    metrics: ['visitors', 'events'],
    date_range: 'day',
    dimensions: ['event:props:seats'],
    filters: goal,
  });
  assert.deepEqual(goalSeats.results, [{ metrics: [1, 1], dimensions: ['3'] }]);
  const goalPlans = await query(read, {
    metrics: ['visitors', 'events'],
    date_range: 'day',
    dimensions: ['event:props:plan'],
    filters: goal,
  });
  assert.deepEqual(goalPlans.results, []);
  // The key list for a picker: every key of the range, and the goal's own.
  const keys = await query(read, { metrics: ['visitors'], date_range: 'day', dimensions: ['event:props'] });
  assert.deepEqual(
    keys.results.map((r) => r.dimensions[0]),
    ['plan', 'seats'],
  );
  const goalKeys = await query(read, { metrics: ['visitors'], date_range: 'day', dimensions: ['event:props'], filters: goal });
  assert.deepEqual(goalKeys.results, [{ metrics: [1], dimensions: ['seats'] }]);
  const refused = await w.post(
    '/v0/query',
    JSON.stringify({ metrics: ['conversion_rate'], date_range: 'day', dimensions: ['event:props:seats'], filters: goal }),
    { token: read, headers: { 'Content-Type': 'application/json' } },
  );
  assert.equal(refused.status, 400, refused.text);
  assert.match(refused.json.error, /'metrics\[0\]'/);
  // Another tenant sees none of them.
  const other = await query(w.token('other', 'read'), { metrics: ['visits'], date_range: 'day', dimensions: ['event:props:plan'] });
  assert.deepEqual(other.results, []);
  const otherKeys = await query(w.token('other', 'read'), { metrics: ['visits'], date_range: 'day', dimensions: ['event:props'] });
  assert.deepEqual(otherKeys.results, []);
});
