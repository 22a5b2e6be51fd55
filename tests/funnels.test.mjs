// Funnels end to end through wrangler dev: goals and a funnel created with the tenant's settings token,
// bad definitions refused with a 400 naming the field, page hits and custom events ingested out of
// order, POST /v0/funnel per step (rollups, and the visit-level path with a filter), the event:funnel
// filter of /v0/query, another tenant that can neither see nor query nor delete the funnel, and a
// rebuild from the archive that counts a funnel created after its events.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
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

// The events' time: ten minutes ago, moved two minutes earlier when its 100 s of events would cross a UTC
// midnight. The queries ask for the events' UTC day (RANGE), not 'day' (today when asked): a run in the
// first ten minutes after midnight, or one that crosses it, asked today for yesterday's events.
let T0 = Date.now() - 10 * 60_000;
if (T0 % 86_400_000 > 86_400_000 - 120_000) T0 -= 120_000;
const DAY = new Date(T0).toISOString().slice(0, 10);
const RANGE = [DAY, DAY];
function row({ action = 'page_hit', session, path = '/', at }) {
  const r = { timestamp: new Date(T0 + at * 1000).toISOString(), action, version: '1', tenant_id: 'fshop', domain: 'fshop.example' };
  r.session_id = session;
  r.payload = JSON.stringify(action === 'page_hit' ? { pathname: path, href: `https://fshop.example${path}` } : {});
  return JSON.stringify(r);
}

const call = (method, path, token, body) =>
  w.fetch(path, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
  });

async function settingsToken(tenant) {
  const created = await w.admin('/v0/admin/tenants', { body: JSON.stringify({ tenant_id: tenant, display_name: tenant, plan: 'pro' }) });
  assert.equal(created.status, 201, created.text);
  const minted = await w.admin(`/v0/admin/tenants/${tenant}/tokens`, { body: JSON.stringify({ name: 'funnels', kind: 'settings' }) });
  assert.equal(minted.status, 201, minted.text);
  return minted.json.token;
}

async function funnel(token, body) {
  const r = await w.post('/v0/funnel', JSON.stringify(body), { token, headers: { 'Content-Type': 'application/json' } });
  assert.equal(r.status, 200, r.text);
  return r;
}

const numbers = (r) => r.json.steps.map((s) => [s.name, s.visitors, s.visits, s.conversion_rate, s.drop_off]);

test('a funnel from the API counts each step in time order, for its tenant only', async () => {
  const shop = await settingsToken('fshop');
  const other = await settingsToken('fother');
  for (const g of [
    { name: 'Signup', kind: 'event', match: 'signup' },
    { name: 'Checkout', kind: 'page', match: '/checkout/done' },
  ]) {
    assert.equal((await call('POST', '/v0/goals', shop, g)).status, 201);
  }
  const steps = [{ page: '/' }, { page: '/pricing*' }, { goal: 'Signup' }, { goal: 'Checkout' }];
  const created = await call('POST', '/v0/funnels', shop, { name: 'Buy', steps });
  assert.equal(created.status, 201, created.body);
  const buy = JSON.parse(created.body);
  assert.deepEqual(buy.steps, steps);

  // Bad definitions: a 400 naming the field.
  const nine = Array.from({ length: 9 }, () => ({ page: '/' }));
  for (const [body, field] of [
    [{ name: 'One', steps: [{ page: '/' }] }, /'steps'/],
    [{ name: 'Nine', steps: nine }, /'steps'/],
    [{ name: 'Unknown', steps: [{ page: '/' }, { goal: 'Nope' }] }, /'steps\[1\]\.goal'/],
    [{ name: 'Empty', steps: [{ page: '' }, { goal: 'Signup' }] }, /'steps\[0\]\.page'/],
    [{ name: '', steps: [{ page: '/' }, { page: '/a' }] }, /'name'/],
    [{ name: 'Buy', steps: [{ page: '/' }, { page: '/a' }] }, /'name'.*exists/],
  ]) {
    const r = await call('POST', '/v0/funnels', shop, body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.match(JSON.parse(r.body).error, field);
  }
  // A goal of another tenant is unknown here.
  assert.equal((await call('POST', '/v0/funnels', other, { name: 'X', steps: [{ page: '/' }, { goal: 'Signup' }] })).status, 400);
  assert.equal((await call('POST', '/v0/funnels', w.token('fshop', 'read'), { name: 'R', steps })).status, 403);

  // a: every step, its events sent latest first in separate batches; b: two steps; c: /pricing before /
  // (step 1 only); d: no step.
  const tracker = w.token('fshop');
  const ua = (ip) => ({ 'User-Agent': BROWSER_UA, 'CF-Connecting-IP': ip });
  const a = [
    row({ session: 'a', path: '/', at: 0 }),
    row({ session: 'a', path: '/pricing/pro', at: 30 }),
    row({ session: 'a', action: 'signup', at: 60 }),
    row({ session: 'a', path: '/checkout/done', at: 90 }),
  ];
  for (const r of a.reverse()) assert.equal((await ingest([r], tracker, ua('203.0.113.1'))).status, 202);
  const rest = [
    [
      row({ session: 'b', path: '/', at: 10 }),
      row({ session: 'b', path: '/pricing', at: 40 }),
      row({ session: 'b', path: '/checkout/done', at: 70 }),
    ],
    [
      row({ session: 'c', path: '/pricing', at: 5 }),
      row({ session: 'c', path: '/', at: 50 }),
      row({ session: 'c', action: 'signup', at: 80 }),
    ],
    [row({ session: 'd', path: '/about', at: 20 })],
  ];
  for (const [i, rows] of rest.entries()) assert.equal((await ingest(rows, tracker, ua(`203.0.113.${10 + i}`))).status, 202);
  await w.until(() => w.d1("SELECT count(*) AS n FROM session_funnels WHERE tenant_id = 'fshop'")[0].n === 7, { what: 'funnel rows' });
  await w.until(() => w.d1("SELECT count(*) AS n FROM sessions WHERE tenant_id = 'fshop'")[0].n === 4, { what: 'sessions' });

  const read = w.token('fshop', 'read');
  const all = await funnel(read, { funnel: buy.id, date_range: RANGE });
  assert.equal(all.headers.get('x-query-path'), 'rollups');
  assert.deepEqual(numbers(all), [
    ['/', 3, 3, 100, 0],
    ['/pricing*', 2, 2, 66.67, 1],
    ['Signup', 1, 1, 33.33, 1],
    ['Checkout', 1, 1, 33.33, 0],
  ]);
  assert.deepEqual(all.json.funnel, { id: buy.id, name: 'Buy' });
  // With a filter: the visit-level path, same rules (entry page /: a and b).
  const entry = await funnel(read, { funnel: buy.id, date_range: RANGE, filters: [['is', 'visit:entry_page', ['/']]] });
  assert.equal(entry.headers.get('x-query-path'), 'visits');
  assert.deepEqual(numbers(entry), [
    ['/', 2, 2, 100, 0],
    ['/pricing*', 2, 2, 100, 0],
    ['Signup', 1, 1, 50, 1],
    ['Checkout', 1, 1, 50, 0],
  ]);
  // The step is a filter of /v0/query too: the visits that reached step 2.
  const q = await w.post(
    '/v0/query',
    JSON.stringify({ metrics: ['visits', 'pageviews'], date_range: RANGE, filters: [['is', 'event:funnel', [`${buy.id}:2`]]] }),
    {
      token: read,
      headers: { 'Content-Type': 'application/json' },
    },
  );
  assert.equal(q.status, 200, q.text);
  assert.deepEqual(q.json.results[0].metrics, [2, 6]);
  // Bad queries name the field.
  for (const [body, field] of [
    [{ date_range: 'day' }, /'funnel'/],
    [{ funnel: buy.id, date_range: 'day', metrics: ['visits'] }, /'metrics'/],
    [{ funnel: buy.id, date_range: 'someday' }, /'date_range'/],
  ]) {
    const r = await w.post('/v0/funnel', JSON.stringify(body), { token: read, headers: { 'Content-Type': 'application/json' } });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.error, field);
  }

  // Another tenant: not listed, not queryable, not deletable.
  assert.deepEqual(JSON.parse((await call('GET', '/v0/funnels', other)).body).data, []);
  const foreign = await w.post('/v0/funnel', JSON.stringify({ funnel: buy.id, date_range: RANGE }), {
    token: w.token('fother', 'read'),
    headers: { 'Content-Type': 'application/json' },
  });
  assert.equal(foreign.status, 404, foreign.text);
  assert.equal((await call('DELETE', `/v0/funnels/${buy.id}`, other)).status, 404);
  assert.deepEqual(
    JSON.parse((await call('GET', '/v0/funnels', read)).body).data.map((f) => f.name),
    ['Buy'],
  );

  // Admin API, and a funnel created after its events: zero until the day is rebuilt from the archive.
  const late = await w.admin('/v0/admin/tenants/fshop/funnels', {
    body: JSON.stringify({ name: 'Late', steps: [{ page: '/' }, { goal: 'Checkout' }] }),
  });
  assert.equal(late.status, 201, late.text);
  const lateId = late.json.id;
  assert.deepEqual(numbers(await funnel(read, { funnel: lateId, date_range: RANGE })), [
    ['/', 0, 0, 0, 0],
    ['Checkout', 0, 0, 0, 0],
  ]);
  assert.equal((await w.admin(`/v0/admin/rebuild/reset?tenant_id=fshop&date_from=${DAY}&date_to=${DAY}`)).status, 200);
  const day = await w.admin(`/v0/admin/rebuild/day?tenant_id=fshop&day=${DAY}`);
  assert.equal(day.status, 200, day.text);
  // The cache holds the earlier answers for a minute (keyed by the resolved query): equivalent bodies
  // with another key read the rebuilt rows, from the rollups (the site's domain) and the visits.
  const lateSteps = [
    ['/', 3, 3, 100, 0],
    ['Checkout', 2, 2, 66.67, 1],
  ];
  const rebuilt = await funnel(read, { funnel: lateId, date_range: RANGE, site_id: 'fshop.example' });
  assert.equal(rebuilt.headers.get('x-query-path'), 'rollups');
  assert.deepEqual(numbers(rebuilt), lateSteps);
  const visitLevel = await funnel(read, { funnel: lateId, date_range: RANGE, filters: [['is_not', 'visit:browser', ['nope']]] });
  assert.equal(visitLevel.headers.get('x-query-path'), 'visits');
  assert.deepEqual(numbers(visitLevel), lateSteps);
  const again = await funnel(read, { funnel: buy.id, date_range: RANGE, site_id: 'fshop.example' });
  assert.deepEqual(numbers(again), numbers(all));

  // Deleted: gone from the list and the query, and its id is not reused.
  assert.equal((await call('DELETE', `/v0/funnels/${lateId}`, shop)).status, 200);
  const gone = await w.post('/v0/funnel', JSON.stringify({ funnel: lateId, date_range: RANGE }), {
    token: read,
    headers: { 'Content-Type': 'application/json' },
  });
  assert.equal(gone.status, 404);
  const next = await call('POST', '/v0/funnels', shop, { name: 'Late', steps: [{ page: '/' }, { page: '/about' }] });
  assert.equal(next.status, 201, next.body);
  assert.equal(JSON.parse(next.body).id, lateId + 1);
});

test('the dashboard Funnels view shows the API numbers per step', async () => {
  // Runs after the test above: fshop's funnels are Buy (with data today) and a second Late.
  const { launchChromium } = await import('./lib/browser.mjs');
  const token = w.token('fshop', 'read');
  const browser = await launchChromium();
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 }, timezoneId: 'UTC', locale: 'en-US' });
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
    const settled = (after) =>
      page.waitForFunction(
        (n) => Number(document.body.dataset.ready || 0) > n && document.getElementById('main').getAttribute('aria-busy') === 'false',
        after,
        { timeout: 30_000 },
      );
    await page.goto(`${w.base}/dashboard/#token=${token}`);
    await settled(0);
    await page.waitForSelector('[data-testid=funnel-step]');
    const today = new Date().toISOString().slice(0, 10);
    const from = new Date(Date.now() - 6 * 86_400_000).toISOString().slice(0, 10);
    const listed = JSON.parse((await call('GET', '/v0/funnels', token)).body).data;
    assert.equal(await page.inputValue('[data-testid=funnel-select]'), String(listed[0].id));
    const shown = () =>
      page.$$eval('[data-testid=funnel-step]', (rows) =>
        rows.map((r) => [Number(r.dataset.visitors), Number(r.dataset.visits), Number(r.dataset.rate), Number(r.dataset.drop)]),
      );
    const api = async (id) =>
      (await funnel(token, { funnel: id, date_range: [from, today], timezone: 'UTC' })).json.steps.map((s) => [
        s.visitors,
        s.visits,
        s.conversion_rate,
        s.drop_off,
      ]);
    assert.deepEqual(await shown(), await api(listed[0].id));
    assert.deepEqual(
      (await shown()).map((s) => s[0]),
      [3, 2, 1, 1],
    );
    mkdirSync(join(ROOT, 'test-output'), { recursive: true });
    await (await page.$('[data-testid=funnels]')).screenshot({ path: join(ROOT, 'test-output/funnels-1280.png') });
    // Picking the other funnel shows its steps.
    const gen = await page.evaluate(() => Number(document.body.dataset.ready || 0));
    await page.selectOption('[data-testid=funnel-select]', String(listed[1].id));
    await settled(gen);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=funnel-step]').length === 2);
    assert.deepEqual(await shown(), await api(listed[1].id));
    assert.deepEqual(problems, []);
    await context.close();
  } finally {
    await browser.close();
  }
});
