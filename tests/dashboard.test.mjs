// The dashboard in a real browser against the real worker: the numbers on the page equal the
// endpoints' answers for the same parameters, date ranges and row filters change them, expired and
// invalid links say so, the embed element works under a strict CSP, and nothing logs an error or
// violates the CSP. Screenshots (1280 px and 375 px, and the traffic_by_hour card) go to test-output/;
// the desktop one also to docs/dashboard.png and the card to docs/hours.png when
// STARLING_UPDATE_SCREENSHOT=1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium, refusedOnTheWay, settled } from './lib/browser.mjs';
import { cfBlob } from './lib/fixtures.mjs';
import { startWorker, ROOT } from './lib/worker.mjs';

const TZ = 'Europe/Berlin';
const UAS = {
  chrome: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  firefox: 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
  safari:
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
};
const SOURCES = ['https://www.google.com/search?q=x', 'https://news.ycombinator.com/', '', 'https://duckduckgo.com/'];
const COUNTRIES = ['DE', 'US', 'FR', 'JP'];
const PAGES = ['/', '/pricing', '/docs', '/blog', '/about'];

let w;
let browser;
let total = 0;
const OUT = join(ROOT, 'test-output');

/** Today in TZ, and date arithmetic on YYYY-MM-DD. */
const today = () =>
  new Intl.DateTimeFormat('en-CA', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
const addDays = (iso, n) => {
  const d = new Date(`${iso}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
};

/** Sessions for one tenant: recent ones (today, the live window, the last days) and older ones for the previous period. */
async function seed(tenant, domains, visitors, pathPrefix = '') {
  const token = w.token(tenant, 'tracker');
  const now = Date.now();
  for (let v = 0; v < visitors; v++) {
    const sessions = 1 + (v % 3 === 0 ? 1 : 0);
    for (let s = 0; s < sessions; s++) {
      // v 0-1 live (they stay in the 5-minute window for the whole test), the others spread over the
      // last week; second sessions a week earlier (the previous period).
      const hoursAgo = ((v * 37 + s * 11) % 160) + 1;
      const start = v < 2 && s === 0 ? now - 5_000 : now - hoursAgo * 3_600_000 - s * 7 * 86_400_000;
      const pages = 1 + ((v + s) % 4);
      const domain = domains[(v + s) % domains.length];
      const campaign = v % 3 === 1 ? `launch-${v % 2}` : '';
      const lines = [];
      for (let i = 0; i < pages; i++) {
        const path = `${pathPrefix}${PAGES[(v * 2 + i + s) % PAGES.length]}`;
        lines.push(
          JSON.stringify({
            timestamp: new Date(start + i * 40_000).toISOString(),
            action: 'page_hit',
            version: '1',
            session_id: `${tenant}-v${v}-s${s}`,
            domain,
            payload: JSON.stringify({
              'user-agent': Object.values(UAS)[v % 3],
              locale: 'en-US',
              referrer: i === 0 ? SOURCES[(v + s) % SOURCES.length] : `https://${domain}${path}`,
              pathname: path,
              href: `https://${domain}${path}${campaign && i === 0 ? `?utm_source=newsletter&utm_medium=email&utm_campaign=${campaign}` : ''}`,
            }),
          }),
        );
      }
      const r = await w.post('/v0/events?name=analytics_events', lines.join('\n'), {
        token,
        headers: { 'CF-Connecting-IP': `203.0.113.${v + 1}`, 'MF-CF-Blob': cfBlob(COUNTRIES[v % COUNTRIES.length]) },
      });
      assert.equal(r.status, 202, r.text);
      total += 1;
    }
  }
}

before(async () => {
  execFileSync('bash', ['scripts/build-www.sh'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  w = await startWorker({ fastQueues: true });
  await seed('acme', ['acme.example', 'shop.acme.example'], 24);
  await seed('globex', ['globex.example'], 6, '/globex-secret');
  await w.until(() => w.d1('SELECT count(*) AS n FROM sessions')[0].n === total, {
    what: `${total} sessions rolled up`,
    timeoutMs: 90_000,
  });
  browser = await launchChromium();
  mkdirSync(OUT, { recursive: true });
});

after(async () => {
  await browser?.close();
  await w?.stop();
});

async function api(name, params, token) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== ''));
  const r = await w.fetch(`/v0/pipes/${name}.json?${q}`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(r.status, 200, `${name}: ${r.body}`);
  return JSON.parse(r.body).data;
}

/** A page that records console errors, page errors and CSP violations (in every frame). */
async function open(url, { width = 1280, height = 900, allow = [] } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, timezoneId: TZ, locale: 'en-US', colorScheme: 'light' });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => {
    if (m.type() !== 'error' && m.type() !== 'warning') return;
    const text = m.text();
    if (m.type() === 'warning' && !/Content.Security|CSP|Permissions.Policy/i.test(text)) return;
    if (allow.some((re) => re.test(text)) || refusedOnTheWay(text)) return;
    problems.push(`${m.type()}: ${text}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('response', (r) => {
    const line = `status of ${r.status()}`;
    if (r.status() >= 400 && !allow.some((re) => re.test(line)) && !refusedOnTheWay(line))
      problems.push(`HTTP ${r.status()}: ${r.url().replace(/token=[^&]*/, 'token=…')}`);
  });
  await page.goto(url);
  return { page, context, problems };
}

/** Waits until the dashboard in `frame` finished a load newer than `after`. */
/** The "visits by hour of the day" table holds traffic_by_hour's 24 rows for the same parameters. */
async function assertHours(page, token, params, what) {
  const shown = await page.$$eval('[data-testid=hours-table] tbody tr', (rows) =>
    rows.map((r) => ({ hour: Number(r.dataset.hour), visits: Number(r.dataset.visits), pageviews: Number(r.dataset.pageviews) })),
  );
  assert.deepEqual(shown, await api('traffic_by_hour', params, token), `hours: ${what}`);
  assert.equal(shown.length, 24);
  return shown;
}

const KPI_KEYS = ['visitors', 'visits', 'pageviews', 'views_per_visit', 'bounce_rate', 'avg_session_sec'];
const TABLES = {
  top_pages: 'pathname',
  entry_pages: 'pathname',
  exit_pages: 'pathname',
  top_sources: 'referrer',
  top_campaigns: 'utm_campaign',
  top_browsers: 'browser',
  top_os: 'os',
  top_devices: 'device',
  top_locations: 'location',
};

/** Asserts that the KPIs, chart table and top lists on the page equal the endpoints' for `params`. */
async function assertMatches(frame, token, params, what) {
  // The endpoints' answers, asked at once (11 requests per check, a dozen checks per test).
  const [[summary], series, ...tables] = await Promise.all([
    api('kpis_summary', { ...params, include_previous_period: 'true' }, token),
    api('kpis', { ...params, include_previous_period: 'true' }, token),
    ...Object.keys(TABLES).map((name) => api(name, { ...params, limit: 10 }, token)),
  ]);
  for (const k of KPI_KEYS) {
    const v = await frame.getAttribute(`[data-testid=kpi-${k}]`, 'data-value');
    assert.equal(Number(v), summary[k], `${what}: kpi ${k}`);
    const prev = await frame.getAttribute(`[data-testid=delta-${k}]`, 'data-previous');
    assert.equal(Number(prev), summary[`previous_${k}`], `${what}: previous ${k}`);
  }
  const visitsText = await frame.textContent('[data-testid=kpi-visits]');
  assert.equal(visitsText.replace(/\D/g, ''), String(summary.visits), `${what}: visits as shown`);
  const chartRows = await frame.locator('[data-testid=chart-table] tbody tr').count();
  assert.equal(chartRows, series.length, `${what}: one chart row per bucket`);
  assert.ok((await frame.locator('[data-testid=chart] canvas').count()) >= 1, `${what}: chart drawn`);
  for (const [i, [name, key]] of Object.entries(TABLES).entries()) {
    const want = tables[i].map((r) => [r[key], r.visits, r.hits]);
    const got = await frame.$$eval(`[data-testid=table-${name}] tbody tr[data-testid=row]`, (rows) =>
      rows.map((r) => [
        r.dataset.key,
        Number(r.querySelector('[data-testid=visits]').dataset.value),
        Number(r.querySelector('[data-testid=hits]').dataset.value),
      ]),
    );
    assert.deepEqual(got, want, `${what}: ${name}`);
  }
  return summary;
}

test("the dashboard shows exactly the endpoints' numbers; ranges, filters and domains change them", async () => {
  const token = w.token('acme', 'read');
  const { page, context, problems } = await open(`${w.base}/dashboard/#token=${token}`);
  let gen = await settled(page);
  assert.ok(!page.url().includes(token), 'the token is removed from the address bar');
  assert.ok(!(await page.content()).includes(token), 'the token is not in the DOM');

  // Default: last 7 days in the viewer's time zone.
  const base = { date_from: addDays(today(), -6), date_to: today(), timezone: TZ };
  const week = await assertMatches(page, token, base, '7d');
  const hours = await assertHours(page, token, base, '7d');
  assert.equal(
    hours.reduce((n, x) => n + x.visits, 0),
    week.visits,
    "the hours add up to the period's visits",
  );
  assert.ok(week.visits > 0 && week.previous_visits > 0, 'the fixture has data in both periods');
  const body = await page.textContent('body');
  assert.ok(!body.includes('globex'), "another tenant's data never appears");
  const live = (await api('current_visitors', {}, token))[0].visits;
  await page.waitForSelector('[data-testid=live-visitors][data-value]');
  assert.equal(Number(await page.getAttribute('[data-testid=live-visitors]', 'data-value')), live, 'live visitors');
  assert.ok(live >= 2);
  const domains = await page.$$eval('[data-testid=domain-select] option', (o) => o.map((x) => x.value));
  assert.deepEqual(domains.sort(), ['', 'acme.example', 'shop.acme.example']);

  // Screenshots at desktop and phone widths, from the same data.
  await page.screenshot({ path: join(OUT, 'dashboard-1280.png'), fullPage: true });
  // The README's screenshot is refreshed on request only, so test runs leave the tree clean.
  if (process.env.STARLING_UPDATE_SCREENSHOT) copyFileSync(join(OUT, 'dashboard-1280.png'), join(ROOT, 'docs/dashboard.png'));
  // The kit's traffic_by_hour card on its own (README, "Tinybird kit parity").
  await (await page.$('[data-testid=hours]')).screenshot({ path: join(OUT, 'hours-1280.png') });
  if (process.env.STARLING_UPDATE_SCREENSHOT) copyFileSync(join(OUT, 'hours-1280.png'), join(ROOT, 'docs/hours.png'));

  // Date range: today (hourly chart).
  await page.selectOption('[data-testid=range-select]', 'today');
  gen = await settled(page, gen);
  await assertMatches(page, token, { ...base, date_from: today() }, 'today');
  assert.match(await page.textContent('#chart-title'), /by hour/);
  assert.match(page.url(), /range=today/, 'the view is kept in the fragment');

  // Date range: last 30 days.
  await page.selectOption('[data-testid=range-select]', '30d');
  gen = await settled(page, gen);
  const month = { ...base, date_from: addDays(today(), -29) };
  await assertMatches(page, token, month, '30d');

  // Custom range.
  await page.selectOption('[data-testid=range-select]', 'custom');
  await page.fill('[data-testid=custom-from]', addDays(today(), -3));
  await page.fill('[data-testid=custom-to]', addDays(today(), -1));
  await page.click('[data-testid=custom-apply]');
  gen = await settled(page, gen);
  await assertMatches(page, token, { ...base, date_from: addDays(today(), -3), date_to: addDays(today(), -1) }, 'custom');
  await page.selectOption('[data-testid=range-select]', '30d');
  gen = await settled(page, gen);

  // Clicking a page row filters everything by that page.
  const path = await page.getAttribute('[data-testid=table-top_pages] tbody tr[data-testid=row]:nth-child(2)', 'data-key');
  await page.click(`[data-testid=table-top_pages] tbody tr[data-key="${path}"] button`);
  gen = await settled(page, gen);
  await page.waitForSelector('[data-testid=filter-chip][data-filter=pathname]');
  const filtered = await assertMatches(page, token, { ...month, pathname: path }, `pathname=${path}`);
  assert.ok(filtered.visits < (await api('kpis_summary', month, token))[0].visits, 'the filter narrows the numbers');
  await assertHours(page, token, { ...month, pathname: path }, `pathname=${path}`);

  // A second filter from another table (browser), then remove the page filter with its chip.
  const br = await page.getAttribute('[data-testid=table-top_browsers] tbody tr[data-testid=row]', 'data-key');
  await page.click(`[data-testid=table-top_browsers] tbody tr[data-key="${br}"] button`);
  gen = await settled(page, gen);
  await assertMatches(page, token, { ...month, pathname: path, browser: br }, `pathname+browser`);
  await page.click('[data-testid=filter-chip][data-filter=pathname] button');
  gen = await settled(page, gen);
  await assertMatches(page, token, { ...month, browser: br }, 'browser only');
  assert.equal(await page.locator('[data-testid=filter-chip]').count(), 1);
  await page.click('[data-testid=filter-chip] button');
  gen = await settled(page, gen);

  // Country rows filter by country.
  // (by keyboard: rows are buttons)
  const country = await page.getAttribute('[data-testid=table-top_locations] tbody tr[data-testid=row]', 'data-key');
  await page.focus(`[data-testid=table-top_locations] tbody tr[data-key="${country}"] button`);
  await page.keyboard.press('Enter');
  gen = await settled(page, gen);
  await assertMatches(page, token, { ...month, country }, `country=${country}`);
  await page.click('[data-testid=filter-chip] button');
  gen = await settled(page, gen);

  // Domain selector.
  await page.selectOption('[data-testid=domain-select]', 'shop.acme.example');
  gen = await settled(page, gen);
  await assertMatches(page, token, { ...month, domain: 'shop.acme.example' }, 'domain');

  // A reload keeps the view (fragment) and the token (this tab's sessionStorage).
  await page.reload();
  await settled(page);
  await assertMatches(page, token, { ...month, domain: 'shop.acme.example' }, 'after reload');

  assert.deepEqual(problems, [], 'no console errors or CSP violations');
  await context.close();
});

test('phone width: no horizontal scrolling, screenshot', async () => {
  const token = w.token('acme', 'read');
  const { page, context, problems } = await open(`${w.base}/dashboard/#token=${token}&theme=dark&name=Acme%20Inc.&color=%230f766e`, {
    width: 375,
    height: 812,
  });
  await settled(page);
  const widths = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(widths[0] <= widths[1], `no horizontal overflow at 375 px: ${widths}`);
  assert.equal(await page.textContent('[data-testid=site-name]'), 'Acme Inc.');
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark');
  assert.ok(await page.isVisible('[data-testid=powered]'));
  await page.screenshot({ path: join(OUT, 'dashboard-375.png'), fullPage: true });
  await page.setViewportSize({ width: 360, height: 740 });
  const w360 = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(w360[0] <= w360[1], `no horizontal overflow at 360 px: ${w360}`);
  assert.deepEqual(problems, []);
  await context.close();
});

test('white label from the fragment is validated: no CSS or script injection', async () => {
  const token = w.token('acme', 'read');
  const evil = new URLSearchParams({
    token,
    color: 'red;background:url(https://evil.example/x)',
    logo: 'javascript:alert(1)',
    name: '<img src=x onerror=alert(1)>',
    brand: 'none',
  });
  const { page, context, problems } = await open(`${w.base}/dashboard/#${evil}`);
  await settled(page);
  assert.equal(
    await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue('--accent-light').trim()),
    '#2563eb',
    'invalid colour ignored',
  );
  assert.match(await page.evaluate(() => document.getElementById('logo').src), /\/dashboard\/assets\/logo\.svg$/, 'invalid logo ignored');
  assert.equal(await page.textContent('[data-testid=site-name]'), '<img src=x onerror=alert(1)>', 'name is text');
  assert.equal(await page.locator('img[src=x]').count(), 0);
  assert.ok(!(await page.isVisible('[data-testid=powered]')), 'brand=none hides "Powered by Starling"');
  assert.deepEqual(problems, []);
  await context.close();
});

test('expired and invalid links say so in plain words', async () => {
  const expired = w.token('acme', 'read', { days: -1 });
  const { page, context, problems } = await open(`${w.base}/dashboard/#token=${expired}`, { allow: [/status of 403/] });
  await page.waitForSelector('[data-testid=alert][data-kind=expired]');
  assert.equal((await page.textContent('#alert-text')).trim(), 'This dashboard link has expired — ask your administrator for a new one.');
  assert.ok(!(await page.isVisible('[data-testid=kpi-visits]')), 'no empty figures under the message');
  assert.deepEqual(problems, []);
  await context.close();

  const bad = `${w.token('acme', 'read').slice(0, -4)}AAAA`;
  const second = await open(`${w.base}/dashboard/#token=${bad}`, { allow: [/status of 401/] });
  await second.page.waitForSelector('[data-testid=alert][data-kind=invalid]');
  assert.match(await second.page.textContent('[data-testid=alert]'), /This link's token is invalid/);
  assert.deepEqual(second.problems, []);
  await second.context.close();

  const none = await open(`${w.base}/dashboard/`);
  await none.page.waitForSelector('[data-testid=alert][data-kind=missing]');
  assert.deepEqual(none.problems, []);
  await none.context.close();
});

test('a rate-limited token says so', async () => {
  const token = w.token('acme', 'read', { rps: 1 });
  const { page, context, problems } = await open(`${w.base}/dashboard/#token=${token}`, { allow: [/status of 429/] });
  await page.waitForSelector('[data-testid=alert][data-kind=rate]');
  assert.match(await page.textContent('#alert-text'), /Too many requests/);
  assert.ok(await page.isVisible('#retry'), 'a retry button');
  assert.deepEqual(problems, []);
  await context.close();
});

test('a network failure says so, and Try again recovers', async () => {
  const token = w.token('acme', 'read');
  const { page, context, problems } = await open('about:blank', { allow: [/ERR_FAILED|ERR_INTERNET_DISCONNECTED/] });
  let offline = true;
  await context.route('**/v0/pipes/**', (route) => (offline ? route.abort('internetdisconnected') : route.continue()));
  await page.goto(`${w.base}/dashboard/#token=${token}`);
  await page.waitForSelector('[data-testid=alert][data-kind=network]');
  assert.match(await page.textContent('#alert-text'), /Could not reach the analytics server/);
  offline = false;
  await page.click('#retry');
  await page.waitForSelector('[data-testid=alert]', { state: 'hidden' });
  await page.waitForSelector('[data-testid=kpi-visits][data-value]');
  assert.deepEqual(problems, []);
  await context.close();
});

test('a 503 on the way is asked again: the numbers show and no alert', async () => {
  const token = w.token('acme', 'read');
  const { page, context, problems } = await open('about:blank');
  const refused = new Set();
  // The first request of each pipe and of /v0/query is answered 503 before it reaches the worker.
  await context.route(/\/v0\/(pipes\/[a-z_]+\.json|query)/, (route) => {
    const what = new URL(route.request().url()).pathname;
    if (refused.has(what)) return route.continue();
    refused.add(what);
    return route.fulfill({ status: 503, contentType: 'application/json', body: '{"error":"refused by the test"}' });
  });
  await page.goto(`${w.base}/dashboard/#token=${token}`);
  await settled(page);
  assert.ok(refused.has('/v0/pipes/kpis_summary.json') && refused.has('/v0/pipes/top_pages.json'), [...refused].join(' '));
  assert.equal(await page.isVisible('[data-testid=alert]'), false, 'no alert after a refusal that a second try fixes');
  await assertMatches(page, token, { date_from: addDays(today(), -6), date_to: today(), timezone: TZ }, 'after 503s');
  assert.deepEqual(problems, []);
  await context.close();
});

test('security headers are served', async () => {
  const r = await w.fetch('/dashboard/');
  assert.equal(r.status, 200);
  const csp = r.headers.get('content-security-policy') || '';
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /connect-src 'self'/);
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
  assert.ok(!/<script>|\sstyle=|<style/i.test(r.body), 'no inline scripts or styles');
  const e = await w.fetch('/embed/');
  assert.match(e.headers.get('content-security-policy') || '', /frame-src 'self'/);
});

test('the embed element hands the token to the iframe and renders data', async () => {
  const token = w.token('acme', 'read');
  const { page, context, problems } = await open(`${w.base}/embed/#token=${token}`);
  assert.ok(!page.url().includes(token), 'the host page drops the token from its address');
  const iframe = await page.waitForSelector('starling-dashboard iframe');
  assert.ok(!(await iframe.getAttribute('src')).includes('token'), 'no token in the iframe URL');
  const frame = await iframe.contentFrame();
  await frame.waitForSelector('[data-testid=kpi-visits][data-value]');
  await settled(frame);
  await assertMatches(frame, token, { date_from: addDays(today(), -6), date_to: today(), timezone: TZ }, 'embedded');
  assert.equal(await frame.textContent('[data-testid=site-name]'), 'Acme analytics');
  assert.ok(!(await frame.isVisible('[data-testid=powered]')), 'brand="none" from the element');
  // Attribute changes reach the dashboard.
  await page.selectOption('#theme', 'dark');
  await frame.waitForFunction(() => document.documentElement.dataset.theme === 'dark');
  // The iframe grows to the dashboard's height.
  await page.waitForFunction(() => document.querySelector('starling-dashboard iframe').getBoundingClientRect().height > 900);
  await page.screenshot({ path: join(OUT, 'embed-1280.png'), fullPage: true });
  assert.deepEqual(problems, []);
  await context.close();
});

test('white label from the tenant settings: set by the admin API, applied for that tenant only', async () => {
  const put = (body, auth = `Bearer ${w.adminToken}`) =>
    w.fetch('/v0/admin/tenants/acme/settings', {
      method: 'PUT',
      body: JSON.stringify(body),
      headers: { 'Content-Type': 'application/json', ...(auth ? { Authorization: auth } : {}) },
    });
  const bad = await put({ display_name: 'Acme Analytics', primary_color: 'red;}' });
  assert.equal(bad.status, 400, bad.body);
  assert.match(JSON.parse(bad.body).error, /primary_color/);
  assert.equal((await put({ display_name: 'Nope' }, null)).status, 401, 'no admin token');
  assert.equal((await put({ display_name: 'Nope' }, 'Bearer not-the-admin-token')).status, 403, 'wrong admin token');
  const ok = await put({ display_name: 'Acme Analytics', primary_color: '#0a7d32', hide_branding: true });
  assert.equal(ok.status, 200, ok.body);
  assert.deepEqual(JSON.parse(ok.body), {
    tenant_id: 'acme',
    display_name: 'Acme Analytics',
    logo_url: null,
    primary_color: '#0a7d32',
    theme: null,
    hide_branding: true,
  });

  const accent = (page) => page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue('--accent-light').trim());
  const acme = w.token('acme', 'read');
  const { page, context, problems } = await open(`${w.base}/dashboard/#token=${acme}`);
  await settled(page);
  await page.waitForFunction(() => document.getElementById('site-name').textContent === 'Acme Analytics');
  assert.equal(await accent(page), '#0a7d32', 'the tenant colour is the accent');
  assert.equal(
    await page.evaluate(() => getComputedStyle(document.querySelector('button.kpi[aria-pressed=true]')).borderTopColor),
    'rgb(10, 125, 50)',
    'the selected figure is drawn in the tenant colour',
  );
  assert.ok(!(await page.isVisible('[data-testid=powered]')), 'hide_branding hides "Powered by Starling"');
  assert.ok(!(await page.evaluate(() => document.body.innerText.includes('Powered by Starling'))));
  assert.match(await page.title(), /^Acme Analytics/);
  assert.deepEqual(problems, []);
  await context.close();

  // The fragment wins over the stored settings, field by field.
  const over = await open(`${w.base}/dashboard/#token=${acme}&name=From%20the%20link`);
  await settled(over.page);
  await over.page.waitForFunction(() => getComputedStyle(document.documentElement).getPropertyValue('--accent-light').trim() === '#0a7d32');
  assert.equal(await over.page.textContent('[data-testid=site-name]'), 'From the link');
  assert.deepEqual(over.problems, []);
  await over.context.close();

  // Another tenant keeps the dashboard's defaults.
  const globex = await open(`${w.base}/dashboard/#token=${w.token('globex', 'read')}`);
  await settled(globex.page);
  await globex.page.waitForResponse((r) => r.url().endsWith('/v0/tenant.json'), { timeout: 5_000 }).catch(() => {});
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await globex.page.textContent('[data-testid=site-name]'), 'Analytics');
  assert.equal(await accent(globex.page), '#2563eb');
  assert.ok(await globex.page.isVisible('[data-testid=powered]'));
  assert.deepEqual(globex.problems, []);
  await globex.context.close();
});
