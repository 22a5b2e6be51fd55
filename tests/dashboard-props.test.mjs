// Custom properties in the dashboard, in Chromium against the real worker: the Properties card's
// keys are the API's key list, its values (visitors, events, share) equal POST /v0/query's, the key
// lives in the URL fragment, and a goal picked for a property gets the API's answer for that goal. The goals are created with
// a `settings` token minted by scripts/token.mjs, which also manages segments and funnels.
// Screenshots go to test-output/ (docs/props.png with STARLING_UPDATE_SCREENSHOT=1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium, openDashboard, settled } from './lib/browser.mjs';
import { startWorker, ROOT } from './lib/worker.mjs';

const TENANT = 'propdash';
const OUT = join(ROOT, 'test-output');
const UAS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
];
const PLANS = ['pro', 'free', 'free', 'team', 'free', 'pro', 'free', 'enterprise'];

let w;
let browser;
let settings;
const day = (offset = 0) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);

const call = (method, path, token, body) =>
  w.fetch(path, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
  });

async function query(body, token) {
  const r = await call('POST', '/v0/query', token, body);
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body);
}

before(async () => {
  execFileSync('bash', ['scripts/build-www.sh'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  w = await startWorker({ fastQueues: true, shared: true });
  settings = w.token(TENANT, 'settings');
  // Goals before the events: they count the events processed after they exist.
  for (const g of [
    { name: 'Signup', kind: 'event', match: 'signup' },
    { name: 'Pricing', kind: 'page', match: '/pricing' },
  ]) {
    const r = await call('POST', '/v0/goals', settings, g);
    assert.equal(r.status, 201, r.body);
  }
  // Visits of distinct visitors: page hits carrying `theme`, and most of them a signup with a `plan`.
  const tracker = w.token(TENANT, 'tracker');
  const now = Date.now();
  let signups = 0;
  for (let v = 0; v < PLANS.length * 2; v++) {
    const start = now - (v + 1) * 3_600_000;
    const row = (i, action, payload) =>
      JSON.stringify({
        timestamp: new Date(start + i * 20_000).toISOString(),
        action,
        version: '1',
        session_id: `pd-${v}`,
        tenant_id: TENANT,
        domain: 'propdash.example',
        payload: JSON.stringify(payload),
      });
    const path = v % 3 ? '/' : '/pricing';
    const lines = [row(0, 'page_hit', { pathname: path, href: `https://propdash.example${path}`, theme: v % 2 ? 'dark' : 'light' })];
    if (v % 5 !== 4) {
      lines.push(row(1, 'signup', { plan: PLANS[v % PLANS.length] }));
      signups += 1;
    }
    const r = await w.post('/v0/events?name=analytics_events', lines.join('\n'), {
      token: tracker,
      headers: { 'Content-Type': 'application/x-ndjson', 'User-Agent': UAS[v % 2], 'CF-Connecting-IP': `203.0.113.${v + 10}` },
    });
    assert.equal(r.status, 202, r.body);
  }
  await w.until(
    () => w.d1(`SELECT count(*) AS n FROM session_props WHERE tenant_id = '${TENANT}' AND prop LIKE 'plan%'`)[0]?.n >= signups,
    {
      what: `${signups} visits with a plan`,
      timeoutMs: 90_000,
    },
  );
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await w?.stop();
});

test('scripts/token.mjs --kind settings manages goals, segments and funnels; it reads no pipes', async () => {
  const listed = await call('GET', '/v0/goals', settings);
  assert.equal(listed.status, 200, listed.body);
  assert.deepEqual(
    JSON.parse(listed.body)
      .data.map((g) => g.name)
      .sort(),
    ['Pricing', 'Signup'],
  );
  const segment = await call('POST', '/v0/segments', settings, { name: 'Firefox', filters: [['is', 'visit:browser', ['firefox']]] });
  assert.equal(segment.status, 201, segment.body);
  assert.equal((await call('DELETE', `/v0/segments/${JSON.parse(segment.body).id}`, settings)).status, 200);
  const funnel = await call('POST', '/v0/funnels', settings, {
    name: 'Price to signup',
    steps: [{ page: '/pricing' }, { goal: 'Signup' }],
  });
  assert.equal(funnel.status, 201, funnel.body);
  // A read token cannot write goals; a settings token reads no pipe.
  assert.equal((await call('POST', '/v0/goals', w.token(TENANT, 'read'), { name: 'X', kind: 'event', match: 'x' })).status, 403);
  assert.equal((await call('GET', '/v0/pipes/kpis_summary.json', settings)).status, 403);
  // The command line prints the same kind of token.
  const printed = execFileSync('node', ['scripts/token.mjs', '--tenant', TENANT, '--kind', 'settings', '--key', w.signingKey], {
    cwd: ROOT,
  })
    .toString()
    .trim();
  const claims = JSON.parse(Buffer.from(printed.split('.')[1], 'base64url').toString());
  assert.deepEqual(
    claims.scopes.map((s) => [s.type, s.resource, s.fixed_params.tenant_id]),
    [
      ['SETTINGS:READ', '*', TENANT],
      ['SETTINGS:WRITE', '*', TENANT],
    ],
  );
  assert.equal((await call('GET', '/v0/goals', printed)).status, 200);
});

const open = (hash) => openDashboard(browser, w.base, hash, { height: 1000 });

const shownRows = (page) =>
  page.$$eval('[data-testid=table-props] tbody tr[data-testid=row]', (rows) =>
    rows.map((r) => [
      r.dataset.key,
      Number(r.querySelector('[data-testid=visitors]').dataset.value),
      Number(r.querySelector('[data-testid=events]').dataset.value),
      Number(r.querySelector('[data-testid=share]').dataset.value),
    ]),
  );

/** The card's rows as the API answers them: value, visitors, events, share of the visitors. */
async function apiRows(key, token, filters = []) {
  const range = { date_range: [day(-6), day()], timezone: 'UTC' };
  const values = await query(
    { ...range, metrics: ['visitors', 'events'], dimensions: [`event:props:${key}`], filters, order_by: [['visitors', 'desc']] },
    token,
  );
  const total = (await query({ ...range, metrics: ['visitors'], filters }, token)).results[0].metrics[0];
  return values.results.map((r) => [r.dimensions[0], r.metrics[0], r.metrics[1], r.metrics[0] / total]);
}

test('the Properties card lists the keys and shows the values of a key, and of a goal, as the API counts them', async () => {
  const token = w.token(TENANT, 'read');
  const { page, context, problems } = await open(`token=${token}`);
  let gen = await settled(page);
  assert.equal(await page.isVisible('[data-testid=props]'), true);
  assert.match(await page.textContent('[data-testid=table-props] tbody'), /Choose a property/);

  // The key field lists what the server can list, or says to type one.
  await page.focus('[data-testid=prop-key]');
  const listing = await call('POST', '/v0/query', token, {
    metrics: ['visitors'],
    dimensions: ['event:props'],
    date_range: [day(-6), day()],
  });
  assert.equal(listing.status, 200, listing.body);
  const keys = JSON.parse(listing.body).results.map((r) => r.dimensions[0]);
  assert.ok(keys.includes('plan') && keys.includes('theme'), JSON.stringify(keys));
  await page.waitForFunction((n) => document.querySelectorAll('#prop-keys option').length >= n, keys.length);

  // A custom event's property.
  await page.fill('[data-testid=prop-key]', 'plan');
  await page.click('[data-testid=prop-show]');
  gen = await settled(page, gen);
  const plans = await apiRows('plan', token);
  assert.ok(plans.length >= 3, JSON.stringify(plans));
  assert.deepEqual(await shownRows(page), plans);
  assert.match(page.url(), /prop=plan/, 'the key is kept in the fragment');
  const shares = await page.$$eval('[data-testid=table-props] tbody [data-testid=share]', (cells) => cells.map((c) => c.textContent));
  assert.deepEqual(
    shares,
    plans.map(([, , , s]) => new Intl.NumberFormat('en-US', { style: 'percent', maximumFractionDigits: 1 }).format(s)),
  );
  mkdirSync(OUT, { recursive: true });
  await (await page.$('[data-testid=props]')).screenshot({ path: join(OUT, 'props-1280.png') });
  if (process.env.STARLING_UPDATE_SCREENSHOT) copyFileSync(join(OUT, 'props-1280.png'), join(ROOT, 'docs/props.png'));

  // A page hit's property, and the dashboard's filters apply to the card.
  await page.fill('[data-testid=prop-key]', 'theme');
  await page.press('[data-testid=prop-key]', 'Enter');
  gen = await settled(page, gen);
  assert.deepEqual(await shownRows(page), await apiRows('theme', token));
  await page.goto(`${w.base}/dashboard/#prop=theme&browser=firefox`);
  gen = await settled(page, gen);
  const firefox = await apiRows('theme', token, [['is', 'visit:browser', ['firefox']]]);
  assert.deepEqual(await shownRows(page), firefox);
  assert.deepEqual(
    firefox.map((r) => r[0]),
    ['dark'],
    'the Firefox visits are the odd ones, all dark',
  );
  await page.goto(`${w.base}/dashboard/#prop=plan`);
  gen = await settled(page, gen);

  // A goal's property: the goals of the Goals table are offered; the API answers or refuses.
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=prop-goal] option')].some((o) => o.value === 'Signup'));
  await page.selectOption('[data-testid=prop-goal]', 'Signup');
  gen = await settled(page, gen);
  assert.match(page.url(), /prop_goal=Signup/);
  const goalFilter = [['is', 'event:goal', ['Signup']]];
  const combined = await call('POST', '/v0/query', token, {
    metrics: ['visitors', 'events'],
    dimensions: ['event:props:plan'],
    filters: goalFilter,
    date_range: [day(-6), day()],
    timezone: 'UTC',
  });
  assert.equal(combined.status, 200, combined.body);
  const ofGoal = await apiRows('plan', token, goalFilter);
  assert.ok(ofGoal.length >= 3, JSON.stringify(ofGoal));
  assert.deepEqual(await shownRows(page), ofGoal);
  // Back to all events: the values again, and the rest of the dashboard never broke.
  await page.selectOption('[data-testid=prop-goal]', '');
  gen = await settled(page, gen);
  assert.deepEqual(await shownRows(page), plans);
  assert.equal(await page.isVisible('[data-testid=props-note]'), false);
  assert.ok(Number(await page.getAttribute('[data-testid=kpi-visits]', 'data-value')) > 0);
  assert.equal(await page.isVisible('[data-testid=alert]'), false);
  assert.deepEqual(problems, []);
  await context.close();
});

test('phone width: the Properties card fits without horizontal scrolling', async () => {
  const token = w.token(TENANT, 'read');
  const context = await browser.newContext({ viewport: { width: 360, height: 740 }, timezoneId: 'UTC', locale: 'en-US' });
  const page = await context.newPage();
  await page.goto(`${w.base}/dashboard/#token=${token}&prop=plan`);
  await settled(page);
  await page.waitForSelector('[data-testid=table-props] tbody tr[data-testid=row]');
  const widths = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(widths[0] <= widths[1], `no horizontal overflow at 360 px: ${widths}`);
  await context.close();
});
