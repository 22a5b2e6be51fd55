// The dashboard's comparison and segment selectors in a real browser against the real worker: the KPI
// deltas follow the chosen comparison (numbers on screen equal POST /v0/query's comparison), the
// choice lives in the URL fragment, "No comparison" removes the deltas and the ghost line, and a saved
// segment applied from the selector gives the pipes' numbers for segment=<id>. Screenshots go to
// test-output/ (and docs/dashboard-compare.png and docs/segments.png, the segment selector with "Save as
// segment", when STARLING_UPDATE_SCREENSHOT=1).
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
  w = await startWorker({ fastQueues: true });
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
  await w.until(() => w.d1('SELECT count(*) AS n FROM sessions')[0].n === total, {
    what: `${total} sessions rolled up`,
    timeoutMs: 90_000,
  });
  browser = await launchChromium();
});

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
