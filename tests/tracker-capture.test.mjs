// The tracker's opt-in captures end to end (issue #12): Debian's Chromium (playwright-core) loads a
// test page from a host server on another origin than the worker; the page loads `${w.base}/t.js` from
// the real worker (wrangler dev) with the feature attributes, and the events are checked where they
// land (the R2 archive, the D1 `actions` counts) and in the browser's requests: web vitals, outbound
// links and downloads, engagement, 404, hash routing; nothing extra is fetched or sent when a feature is
// off; GPC still wins over every feature.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { launchChromium, refusedSend, routeTracker } from './lib/browser.mjs';
import { startWorker, ROOT } from './lib/worker.mjs';

const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const today = () => new Date().toISOString().slice(0, 10);
const RATINGS = ['good', 'needs-improvement', 'poor'];

let w;
let browser;
let server;
let origin;
const pages = new Map();

before(async () => {
  execFileSync('bash', ['scripts/build-tracker.sh'], { cwd: ROOT, stdio: 'pipe' });
  w = await startWorker({ fastQueues: true, shared: true });
  server = createServer((req, res) => {
    const path = req.url.split('?')[0];
    const html = [...pages].find(([prefix]) => path.startsWith(prefix))?.[1];
    if (!html) return res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(html);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${server.address().port}`;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.close();
  await w?.stop();
});

/** The capture page for `tenant` with these extra attributes (local and automated pages allowed). */
function capturePage(tenant, attrs) {
  const all = {
    'data-token': w.token(tenant, 'tracker'),
    'data-host': w.base,
    'data-allow-localhost': '',
    'data-allow-automation': '',
    'data-stringify-payload': 'false',
    ...attrs,
  };
  const list = Object.entries(all)
    .map(([k, v]) => (v === '' ? k : `${k}="${v}"`))
    .join(' ');
  return readFileSync(join(ROOT, 'tests/fixtures/tracker/capture.html'), 'utf8').replace('{{BASE}}', w.base).replace('{{ATTRS}}', list);
}

/** Opens `url`; records beacons (with their JSON bodies), every request to the worker, and page errors. */
async function open(url, { init } = {}) {
  const context = await browser.newContext({ userAgent: UA });
  if (init) await context.addInitScript(init);
  await routeTracker(context, w.base); // t.js and the module, asked again if the local runtime stalls
  const page = await context.newPage();
  const errors = [];
  const beacons = [];
  const fetched = [];
  const sent = new Set(); // a refused event is sent again with the same body: count it once
  page.setDefaultTimeout(60_000); // two cores shared with other test files: the page's load can be slow
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error' && !refusedSend(m.text())) errors.push(m.text());
  });
  page.on('request', (r) => {
    if (!r.url().startsWith(w.base)) return;
    fetched.push(new URL(r.url()).pathname);
    if (r.url().startsWith(`${w.base}/v0/events`) && !sent.has(r.postData())) {
      sent.add(r.postData());
      beacons.push(JSON.parse(r.postData()));
    }
  });
  await page.goto(url);
  // Ready: t.js installed the API, or for an opt-in capture the extended loader took over (no more queue).
  await page.waitForFunction(() => window.starling && !window.starling.q);
  return { context, page, errors, beacons, fetched };
}

async function exported(tenant) {
  const r = await w.admin(`/v0/admin/export?tenant_id=${tenant}&date_from=${today()}&date_to=${today()}`, { method: 'GET' });
  assert.equal(r.status, 200, r.text);
  return r.text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

/** The host pages' origin as the server stores URLs (without the port). */
const site = () => origin.replace(/:\d+$/, '');
const payloadOf = (e) => (typeof e.payload === 'string' ? JSON.parse(e.payload) : e.payload);

/** Waits until the archive holds events for which `done(events)` is true. */
const archived = (tenant, done, what) =>
  w.until(
    async () => {
      const e = await exported(tenant);
      return done(e) && e;
    },
    { what, timeoutMs: 30_000 },
  );

/** The rows of a pipe for `tenant` today, read with a read token. */
async function pipe(tenant, name, query = `date_from=${today()}&date_to=${today()}`) {
  const r = await w.fetch(`/v0/pipes/${name}.json?${query}`, { headers: { Authorization: `Bearer ${w.token(tenant, 'read')}` } });
  assert.equal(r.status, 200, `${name}: ${r.body}`);
  return JSON.parse(r.body).data;
}

/** The dashboard for `tenant`, loaded. */
async function dashboard(tenant) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${w.base}/dashboard/#token=${w.token(tenant, 'read')}&range=today`);
  await page.waitForFunction(() => document.body.dataset.ready);
  return { context, page, errors };
}

/** The D1 counts per action (the `actions` rollup). */
const counted = (tenant) =>
  Object.fromEntries(w.d1(`SELECT action, total FROM actions WHERE tenant_id='${tenant}'`).map((r) => [r.action, r.total]));

test('data-web-vitals sends LCP, INP, CLS, FCP and TTFB in the kit shape, rated, and they are counted', async () => {
  pages.set('/vitals/', capturePage('vitals', { 'data-web-vitals': '' }));
  const { context, page, errors, beacons, fetched } = await open(`${origin}/vitals/article?utm_source=x&private=1`);
  await page.waitForTimeout(800); // paint, the layout shift, load
  await page.click('#slow'); // an interaction for INP, and the end of LCP
  await page.waitForTimeout(300);
  await page.evaluate(() => window.hidePage());
  const all = await archived(
    'vitals',
    (e) => ['LCP', 'INP', 'CLS', 'FCP', 'TTFB'].every((n) => e.some((x) => x.action === 'web_vital' && payloadOf(x).name === n)),
    'five web vitals',
  );
  const vitals = all.filter((e) => e.action === 'web_vital').map(payloadOf);
  for (const v of vitals) {
    assert.ok(RATINGS.includes(v.rating), JSON.stringify(v));
    assert.equal(typeof v.value, 'number');
    assert.equal(typeof v.delta, 'number');
    assert.match(v.id, /^v1-\d+-[a-z0-9]+-\d$/);
    assert.equal(v.navigationType, 'navigate');
    assert.equal(v.pathname, '/vitals/article');
    assert.equal(v.href, `${site()}/vitals/article?utm_source=x`, 'the href is stripped like every URL (the server keeps no port)');
  }
  const inp = vitals.find((v) => v.name === 'INP');
  assert.ok(inp.value >= 100, `the 120 ms click handler shows in INP: ${inp.value}`);
  assert.ok(vitals.find((v) => v.name === 'CLS').value > 0, 'the late banner shifted the layout');
  assert.equal(
    vitals.find((v) => v.name === 'CLS').rating,
    vitals.find((v) => v.name === 'CLS').value <= 0.1
      ? 'good'
      : vitals.find((v) => v.name === 'CLS').value <= 0.25
        ? 'needs-improvement'
        : 'poor',
  );
  // The extended module instead of the default one, and the feature's script: nothing else.
  assert.deepEqual(
    fetched
      .filter((p) => p.startsWith('/t/'))
      .map((p) => p.replace(/[0-9a-f]{16}/, 'H'))
      .sort(),
    ['/t/H.w.js', '/t/H.x.wasm'],
  );
  // The kit's shape, exactly: the script's five fields, the module's rating, pathname and href.
  for (const v of vitals)
    assert.deepEqual(Object.keys(v).sort(), ['delta', 'href', 'id', 'name', 'navigationType', 'pathname', 'rating', 'value']);
  assert.ok(beacons.every((b) => b.action === 'page_hit' || b.action === 'web_vital'));
  const n = await w.until(
    () => {
      const c = counted('vitals');
      return c.web_vital >= 5 && c;
    },
    { what: 'web_vital counted' },
  );
  assert.equal(n.web_vital, vitals.length);
  assert.deepEqual(errors, []);
  await context.close();

  // The endpoints count them from the rollup: one measurement per metric, rated like the events.
  const current = await pipe('vitals', 'web_vitals_current');
  const byName = Object.fromEntries(current.map((r) => [r.metric_name, r]));
  for (const v of vitals) {
    assert.equal(byName[v.name].measurements, vitals.filter((x) => x.name === v.name).length, v.name);
    assert.equal(byName[v.name].rating, v.rating, `${v.name}: a single measurement's p75 is rated like it`);
  }
  const routes = await pipe('vitals', 'web_vitals_routes');
  assert.deepEqual(
    routes.map((r) => [r.route, r.measurements]),
    [['vitals', vitals.length]],
  );
  const dist = await pipe('vitals', 'web_vitals_distribution', `date_from=${today()}&date_to=${today()}`);
  assert.equal(dist.length, 3 * Object.keys(byName).length);
  const series = await pipe('vitals', 'web_vitals_timeseries', `date_from=${today()}&date_to=${today()}`);
  assert.deepEqual(
    series.map((r) => r.day),
    Object.keys(byName).map(() => today()),
  );

  // The dashboard's Speed view shows them; a tenant without captures sees no new section.
  const dash = await dashboard('vitals');
  assert.equal(await dash.page.locator('[data-testid=speed]').isVisible(), true);
  assert.equal(await dash.page.locator('[data-testid^=vital-]').count(), Object.keys(byName).length);
  assert.equal(await dash.page.locator('[data-testid=vital-LCP]').getAttribute('data-rating'), byName.LCP.rating);
  assert.equal(await dash.page.locator('[data-testid=list-top_outbound_links]').isVisible(), false);
  assert.deepEqual(dash.errors, []);
  await dash.context.close();
});

test('outbound links and downloads send their stripped target; same-site links and mailto send nothing', async () => {
  pages.set('/links/', capturePage('links', { 'data-outbound-links': '', 'data-file-downloads': '' }));
  const { context, page, errors, beacons } = await open(`${origin}/links/a`);
  await page.waitForTimeout(500);
  for (const id of ['#out', '#pdf', '#own', '#mail']) await page.click(id);
  await page.click('#out', { button: 'middle' });
  const all = await archived('links', (e) => e.filter((x) => x.action !== 'page_hit').length >= 3, 'link events');
  await page.waitForTimeout(1500);
  const events = (await exported('links')).filter((e) => e.action !== 'page_hit');
  const got = events.map((e) => [e.action, payloadOf(e).url]).sort();
  assert.deepEqual(got, [
    ['File Download', `${site()}/files/Report.PDF`],
    ['Outbound Link: Click', 'https://partner.example.org/landing?utm_source=starling'],
    ['Outbound Link: Click', 'https://partner.example.org/landing?utm_source=starling'],
  ]);
  assert.equal(JSON.stringify(beacons).includes('s3cr3t'), false);
  for (const e of events) assert.deepEqual(Object.keys(payloadOf(e)), ['url']);
  assert.ok(all.length >= 4);
  const n = await w.until(
    () => {
      const c = counted('links');
      return c['Outbound Link: Click'] === 2 && c;
    },
    { what: 'link events counted' },
  );
  assert.equal(n['File Download'], 1);
  assert.deepEqual(errors, []);
  await context.close();

  assert.deepEqual(await pipe('links', 'top_outbound_links'), [
    { url: 'https://partner.example.org/landing?utm_source=starling', count: 2 },
  ]);
  assert.deepEqual(await pipe('links', 'top_file_downloads'), [{ url: `${site()}/files/Report.PDF`, count: 1 }]);
  const dash = await dashboard('links');
  assert.equal(await dash.page.locator('[data-testid=list-top_outbound_links] [data-testid=row]').count(), 1);
  assert.equal(await dash.page.locator('[data-testid=list-top_file_downloads]').isVisible(), true);
  assert.equal(await dash.page.locator('[data-testid=speed]').isVisible(), false);
  await dash.context.close();
});

test('engagement, 404 and hash routing', async () => {
  pages.set('/more/', capturePage('more', { 'data-engagement': '', 'data-404': '', 'data-hash': '' }));
  const { context, page, errors, beacons } = await open(`${origin}/more/missing`);
  await page.waitForTimeout(400);
  await page.evaluate(() => {
    location.hash = '/settings';
  });
  await page.waitForTimeout(200);
  await page.evaluate(() => scrollTo(0, document.body.scrollHeight));
  await page.waitForTimeout(3100);
  await page.evaluate(() => window.hidePage());
  await page.evaluate(() => window.hidePage()); // nothing new: depth did not grow, under 3 s
  const all = await archived('more', (e) => e.some((x) => x.action === 'engagement'), 'the engagement event');
  await page.waitForTimeout(1500);
  const actions = beacons.map((b) => b.action);
  assert.deepEqual(actions, ['page_hit', '404', 'page_hit', 'engagement'], JSON.stringify(beacons));
  assert.deepEqual(actions, ['page_hit', '404', 'page_hit', 'engagement']);
  assert.deepEqual(beacons[1].payload, { path: '/more/missing' });
  assert.equal(beacons[2].payload.pathname, '/more/missing#/settings', 'the fragment is part of the page');
  const eng = beacons[3].payload;
  assert.deepEqual(Object.keys(eng), ['sd', 'e', 'pathname']);
  assert.equal(eng.sd, 100);
  assert.ok(eng.e >= 3000 && eng.e < 20000, `engaged ms ${eng.e}`);
  assert.equal(eng.pathname, '/more/missing');
  assert.ok(all.some((e) => e.action === '404'));
  const n = await w.until(
    () => {
      const c = counted('more');
      return c.engagement && c['404'] && c;
    },
    { what: 'engagement and 404 counted' },
  );
  assert.deepEqual([n.engagement, n['404']], [1, 1]);
  assert.deepEqual(await pipe('more', 'top_not_found_pages'), [{ pathname: '/more/missing', count: 1 }]);
  // The server keeps the fragment of a hash-routed page hit (core::enrich::hash_routed_path).
  const top = await w.until(
    async () => {
      const r = await pipe('more', 'top_pages');
      return r.length >= 2 && r;
    },
    { what: 'two pages counted' },
  );
  assert.deepEqual(top.map((r) => r.pathname).sort(), ['/more/missing', '/more/missing#/settings']);
  assert.deepEqual(errors, []);
  await context.close();
});

test('with no feature attribute nothing extra is fetched or sent; GPC wins over every feature', async () => {
  pages.set('/plain/', capturePage('plain', {}));
  const { context, page, errors, beacons, fetched } = await open(`${origin}/plain/x`);
  await page.waitForTimeout(500);
  await page.click('#slow');
  for (const id of ['#out', '#pdf']) await page.click(id);
  await page.evaluate(() => scrollTo(0, document.body.scrollHeight));
  await page.evaluate(() => window.hidePage());
  await page.waitForTimeout(800);
  assert.deepEqual(
    beacons.map((b) => b.action),
    ['page_hit'],
  );
  assert.deepEqual(
    fetched.filter((p) => p.startsWith('/t/')).map((p) => p.replace(/[0-9a-f]{16}/, 'H')),
    ['/t/H.wasm'],
  );
  assert.deepEqual(errors, []);
  await context.close();

  pages.set(
    '/gpc/',
    capturePage('gpc', {
      'data-web-vitals': '',
      'data-outbound-links': '',
      'data-file-downloads': '',
      'data-engagement': '',
      'data-404': '',
      'data-hash': '',
    }),
  );
  const gpc = await open(`${origin}/gpc/x`, {
    init: () => Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true }),
  });
  await gpc.page.waitForTimeout(600);
  await gpc.page.click('#slow');
  for (const id of ['#out', '#pdf']) await gpc.page.click(id);
  await gpc.page.evaluate(() => {
    location.hash = 'x';
    scrollTo(0, document.body.scrollHeight);
  });
  await gpc.page.evaluate(() => window.hidePage());
  await gpc.page.waitForTimeout(800);
  assert.deepEqual(gpc.beacons, []);
  assert.deepEqual(gpc.errors, []);
  await gpc.context.close();
});
