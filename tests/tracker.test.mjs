// The browser tracker end to end: Debian's Chromium (playwright-core) loads test pages from a host
// server on another origin than the worker (so CORS is exercised), the pages load `${w.base}/t.js`
// from the real worker (wrangler dev), and the events are checked where they land: the R2 archive
// (admin export), the D1 rollups and a query endpoint. Also: the real flock.js still works against
// the worker, and GPC / automation send nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { launchChromium, refusedSend, routeTracker } from './lib/browser.mjs';
import { startWorker, httpCall, ROOT } from './lib/worker.mjs';

// A normal desktop Chrome: HeadlessChrome is flagged as a bot and kept out of the metrics.
const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const FIXTURES = join(ROOT, 'tests/fixtures/tracker');
const today = () => new Date().toISOString().slice(0, 10);

let w;
let browser;
let server;
let origin; // the host pages' origin, e.g. http://127.0.0.1:41234
const pages = new Map(); // path prefix → HTML
// `${origin}/edge/...` forwards to the worker, but first answers each refusal of `refusals` in order: a
// status; 'no-cors', a 503 without CORS headers (as a runtime restarting mid-request answers); or 'lost',
// forwarded to the worker (which accepts it) and then answered 503 (the edge's answer never arrived).
const refusals = [];
const forwarded = []; // the event bodies the edge proxy forwarded

before(async () => {
  execFileSync('bash', ['scripts/build-tracker.sh'], { cwd: ROOT, stdio: 'pipe' });
  w = await startWorker({ fastQueues: true, shared: true });
  const flock = readFileSync(join(ROOT, 'node_modules/@tinybirdco/flock.js/dist/index.js'));
  server = createServer(async (req, res) => {
    const path = req.url.split('?')[0];
    if (path.startsWith('/edge/')) return edgeProxy(req, res);
    if (path === '/flock.js') return res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(flock);
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

/** The worker behind `refusals`: see `refusals`. */
async function edgeProxy(req, res) {
  const cors = { 'Access-Control-Allow-Origin': '*' };
  if (req.method === 'OPTIONS') return res.writeHead(204, { ...cors, 'Access-Control-Allow-Headers': '*' }).end();
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = Buffer.concat(chunks).toString();
  const refusal = refusals.shift();
  if (refusal === 'no-cors') return res.writeHead(503).end('restarted mid-request');
  if (refusal && refusal !== 'lost') return res.writeHead(refusal, { ...cors, 'Retry-After': '1' }).end('{"error":"refused by the test"}');
  forwarded.push(body);
  const r = await fetch(w.base + req.url.slice('/edge'.length), {
    method: req.method,
    body: req.method === 'POST' ? body : undefined,
    headers: { 'Content-Type': req.headers['content-type'] ?? 'text/plain' },
  });
  if (refusal === 'lost') return res.writeHead(503).end(`the edge answered ${r.status}, the page never heard it`);
  res.writeHead(r.status, { ...cors, 'Content-Type': r.headers.get('content-type') ?? 'application/json' }).end(await r.text());
}

/** The SPA test page with our tracker and these attributes. */
function spaPage(attrs) {
  const list = Object.entries(attrs)
    .map(([k, v]) => (v === '' ? k : `${k}="${v}"`))
    .join(' ');
  return readFileSync(join(FIXTURES, 'spa.html'), 'utf8').replace('{{BASE}}', w.base).replace('{{ATTRS}}', list);
}

/**
 * Opens `url` in a fresh context with a desktop UA. Collects console errors and page errors, and the
 * requests that reach the events endpoint. `init` runs before any page script.
 */
async function open(url, { init, referer } = {}) {
  const context = await browser.newContext({ userAgent: UA });
  if (init) await context.addInitScript(init);
  await routeTracker(context, w.base); // t.js and the module, asked again if the local runtime stalls
  const page = await context.newPage();
  const errors = [];
  const beacons = [];
  // Every console error but the browser's own log of a refused send (`refusedSend`) is a problem.
  page.on('console', (m) => {
    if (m.type() === 'error' && !refusedSend(m.text())) errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('request', (r) => {
    if (new URL(r.url()).pathname.endsWith('/v0/events')) beacons.push(r);
  });
  await page.goto(url, referer ? { referer } : {});
  return { context, page, errors, beacons };
}

/** The tenant's archived events today, oldest first. */
async function exported(tenant) {
  const r = await w.admin(`/v0/admin/export?tenant_id=${tenant}&date_from=${today()}&date_to=${today()}`, { method: 'GET' });
  assert.equal(r.status, 200, r.text);
  return r.text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .sort((a, b) => a.ts - b.ts);
}

/**
 * Waits until the tenant's archive holds at least `n` events (oldest first). On a timeout the error says
 * what the page sent, what the worker answered and what the archive holds, so a flake can be told apart
 * from a lost event.
 */
async function archived(tenant, n, beacons) {
  try {
    return await w.until(
      async () => {
        const e = await exported(tenant);
        return e.length >= n && e;
      },
      { what: `${n} archived events of ${tenant}` },
    );
  } catch (err) {
    const sent = await Promise.all(
      beacons.map(async (r) => {
        const res = await r.response().catch(() => null);
        const body = JSON.parse(r.postData() ?? '{}');
        const answer = res
          ? `${res.status()} ${res.status() >= 300 ? await res.text().catch(() => '') : ''}`
          : (r.failure()?.errorText ?? 'no answer');
        return [body.action, body.timestamp, answer];
      }),
    );
    const got = (await exported(tenant)).map((e) => [e.action, e.pathname, e.ts]);
    err.message += `\nsent: ${JSON.stringify(sent)}\narchived: ${JSON.stringify(got)}`;
    throw err;
  }
}

const payloadOf = (e) => (typeof e.payload === 'string' ? JSON.parse(e.payload) : e.payload);

test('SPA page hits, referrers, UTM and custom events land once each', async () => {
  pages.set(
    '/app/',
    spaPage({
      'data-token': w.token('acme', 'tracker'),
      'data-host': w.base,
      'data-tenant-id': 'acme',
      'data-domain': 'shop.example',
      'data-allow-localhost': '',
      'data-allow-automation': '',
      'data-tb-app-version': '2.1',
    }),
  );
  const start = `${origin}/app/start?utm_source=newsletter&utm_medium=email&utm_campaign=launch&secret=s3cr3t`;
  const { context, page, errors, beacons } = await open(start, { referer: 'https://news.example.org/item?id=1' });
  await page.waitForFunction(() => window.Tinybird && window.starling && !window.starling.q);
  // The loader is in place, the module may still be loading: wait for the first page hit to be sent, so
  // the next one is sent later (an event's timestamp is its send time, and the archive is read in ts order).
  await w.until(async () => beacons.length >= 2, { what: 'the first page hit sent' });
  await page.evaluate(() => history.pushState({}, '', '/app/pricing'));
  await page.evaluate(() => history.pushState({}, '', '/app/docs?tab=api#intro'));
  await page.evaluate(() => {
    location.hash = 'part-2';
  }); // hashchange on the same page: no hit
  await page.waitForTimeout(100);
  await page.evaluate(() => history.replaceState({}, '', location.href)); // same URL: no hit
  await page.evaluate(() => history.back()); // popstate + hashchange back to #intro: no hit
  await page.waitForTimeout(100);
  await page.evaluate(() => {
    Tinybird.trackEvent('add_to_cart', { partnumber: 'A1708', quantity: 1, email: 'a@b.com', note: 'say "hi"\n', nested: { card: 4242 } });
    starling.track('signup', { plan: 'pro' });
  });

  const events = await archived('acme', 6, beacons);
  await page.waitForTimeout(2500); // anything late (a duplicate) would arrive in the next queue batch
  const all = await exported('acme');
  assert.equal(all.length, 6, JSON.stringify(all.map((e) => [e.action, e.pathname])));
  const hits = all.filter((e) => e.action === 'page_hit');
  assert.deepEqual(
    hits.map((e) => e.pathname),
    ['/app/start', '/app/pricing', '/app/docs'],
  );
  assert.deepEqual(
    all
      .filter((e) => e.action !== 'page_hit')
      .map((e) => e.action)
      .sort(),
    ['add_to_cart', 'early', 'signup'],
  );
  for (const e of all) {
    assert.equal(e.domain, 'shop.example');
    assert.equal(e.browser, 'chrome');
    assert.equal(e.is_bot, false);
  }

  const [first, second, third] = hits;
  const site = origin.replace(/:\d+$/, ''); // the server stores URLs without the port
  assert.equal(first.source, 'news.example.org');
  assert.deepEqual([first.utm_source, first.utm_medium, first.utm_campaign], ['newsletter', 'email', 'launch']);
  assert.equal(first.href, `${site}/app/start?utm_source=newsletter&utm_medium=email&utm_campaign=launch`);
  assert.equal(payloadOf(first).referrer, 'https://news.example.org/item');
  assert.equal(payloadOf(first).app_version, '2.1');
  assert.equal(
    payloadOf(second).referrer,
    `${site}/app/start?utm_source=newsletter&utm_medium=email&utm_campaign=launch`,
    'SPA navigations send the previous page, not the stale document.referrer',
  );
  assert.equal(second.source, '', 'an internal referrer is not a source');
  assert.equal(payloadOf(third).referrer, `${site}/app/pricing`);
  assert.equal(third.href, `${site}/app/docs`);
  assert.equal(JSON.stringify(all).includes('s3cr3t'), false, 'non-utm query parameters never leave the page');

  const cart = payloadOf(all.find((e) => e.action === 'add_to_cart'));
  assert.deepEqual(cart, {
    partnumber: 'A1708',
    quantity: 1,
    email: '********',
    note: 'say "hi"\n',
    nested: { card: '********' },
    app_version: '2.1',
  });
  assert.deepEqual(payloadOf(all.find((e) => e.action === 'early')), { step: 1, app_version: '2.1' });
  assert.equal(new Set(events.map((e) => e.session_id)).size, 1, 'one (server-derived) session for the visit');

  // Rollups: one session of three pages from news.example.org, and the query endpoint agrees.
  const sessions = w.d1("SELECT pageviews, entry_path, exit_path, source, utm_campaign FROM sessions WHERE tenant_id='acme'");
  assert.deepEqual(sessions, [
    { pageviews: 3, entry_path: '/app/start', exit_path: '/app/docs', source: 'news.example.org', utm_campaign: 'launch' },
  ]);
  const r = await w.fetch(`/v0/pipes/top_pages.json?date_from=${today()}&date_to=${today()}`, {
    headers: { Authorization: `Bearer ${w.token('acme', 'read')}` },
  });
  assert.equal(r.status, 200, r.body);
  const top = JSON.parse(r.body)
    .data.map((row) => [row.pathname, row.hits])
    .sort();
  assert.deepEqual(top, [
    ['/app/docs', 1],
    ['/app/pricing', 1],
    ['/app/start', 1],
  ]);

  const cookies = await context.cookies();
  assert.deepEqual(cookies, [], 'no cookies by default');
  assert.deepEqual(await page.evaluate(() => Object.keys(localStorage)), []);
  assert.deepEqual(errors, []);
  await context.close();
});

test('data-storage keeps a flock.js-style session id; a foreign data-domain is not used as cookie domain', async () => {
  pages.set(
    '/stored/',
    spaPage({
      'data-token': w.token('stored', 'tracker'),
      'data-host': w.base,
      'data-domain': 'project_domain',
      'data-storage': 'cookie',
      'data-allow-localhost': '',
      'data-allow-automation': '',
    }),
  );
  const { context, page, errors, beacons } = await open(`${origin}/stored/a`);
  await page.waitForFunction(() => window.Tinybird && !window.starling.q);
  await page.evaluate(() => history.pushState({}, '', '/stored/b'));
  const all = await archived('stored', 3, beacons);
  const ids = new Set(all.map((e) => e.session_id));
  assert.equal(ids.size, 1, `one session id for every event: ${[...ids]}`);
  assert.match([...ids][0], /^[0-9a-f-]{36}$/);
  const [cookie] = await context.cookies();
  assert.equal(cookie.name, 'session-id');
  assert.equal(cookie.value, [...ids][0]);
  assert.equal(cookie.sameSite, 'Lax');
  assert.equal(cookie.domain, '127.0.0.1', 'host-only cookie: data-domain does not match the page');
  assert.deepEqual(errors, []);
  await context.close();
});

test('an event the edge refused (a 503 without CORS, a 429) or whose answer was lost is sent again and lands once', async () => {
  pages.set(
    '/refused/',
    spaPage({
      'data-token': w.token('refused', 'tracker'),
      'data-host': `${origin}/edge`,
      'data-allow-localhost': '',
      'data-allow-automation': '',
    }),
  );
  // The page sends two events (the early custom event and the page hit): the first send of one is refused
  // with a 503 without CORS, the first send of the other reaches the worker but its answer is lost; the
  // resends come 2 s later, the first of them is refused with a 429; the rest go through.
  refusals.push('no-cors', 'lost', 429);
  forwarded.length = 0;
  const { context, page, errors, beacons } = await open(`${origin}/refused/a`);
  await w.until(async () => forwarded.length >= 3, { what: 'three sends forwarded', timeoutMs: 30_000 });
  assert.equal(refusals.length, 0, 'every refusal was answered');
  const all = await archived('refused', 2, beacons);
  assert.deepEqual(all.map((e) => e.action).sort(), ['early', 'page_hit']);
  assert.equal(all.find((e) => e.action === 'page_hit').pathname, '/refused/a');
  await page.waitForTimeout(2500); // a duplicate would arrive in the next queue batch
  assert.equal((await exported('refused')).length, 2, 'each event lands once, the one sent twice too');
  assert.equal(forwarded.length, 3, 'one event reached the worker twice, the other once');
  assert.equal(new Set(forwarded).size, 2, 'a resend is the same body');
  // Each refused send was made again unchanged (URL with its idempotency key, and body).
  const sends = beacons.map((r) => `${r.url()} ${r.postData()}`);
  assert.ok(sends.length >= 5, `three refusals and two accepted sends: ${sends.length}`);
  assert.equal(new Set(sends).size, 2, 'two distinct sends, each repeated as it was');
  assert.ok(
    sends.every((x) => /[?&]idempotency_key=[0-9a-z]+ /.test(x)),
    'every send carries an idempotency key',
  );
  const visits = w.d1("SELECT pageviews FROM sessions WHERE tenant_id='refused'");
  assert.deepEqual(visits, [{ pageviews: 1 }], 'the rollups count the page hit once');
  assert.deepEqual(errors, []);
  await context.close();
});

test('the published flock.js, unchanged, still lands its events', async () => {
  pages.set(
    '/flock/',
    readFileSync(join(FIXTURES, 'flock.html'), 'utf8').replace('{{BASE}}', w.base).replace('{{TOKEN}}', w.token('flockco', 'tracker')),
  );
  // flock.js skips page hits under navigator.webdriver, which automation sets.
  const { context, page, errors, beacons } = await open(`${origin}/flock/landing?utm_source=flock`, {
    init: () => Object.defineProperty(Navigator.prototype, 'webdriver', { get: () => false }),
  });
  await page.waitForTimeout(500); // flock.js sends its page hit after 300 ms
  await page.evaluate(() => window.Tinybird.trackEvent('flock_event', { email: 'x@y.z', sku: 'B2' }));
  const all = await archived('flockco', 2, beacons);
  const hit = all.find((e) => e.action === 'page_hit');
  assert.equal(hit?.pathname, '/flock/landing');
  assert.equal(hit.utm_source, 'flock');
  assert.equal(payloadOf(hit).plan, 'pro');
  assert.deepEqual(payloadOf(all.find((e) => e.action === 'flock_event')), { email: '********', sku: 'B2', plan: 'pro' });
  assert.deepEqual(errors, []);
  await context.close();
});

test('GPC, an opt-out or an automated browser send nothing, and the API never throws', async () => {
  const base = { 'data-host': w.base, 'data-allow-localhost': '' };
  pages.set('/bot/', spaPage({ ...base, 'data-token': w.token('quiet', 'tracker') }));
  pages.set('/gpc/', spaPage({ ...base, 'data-token': w.token('quiet', 'tracker'), 'data-allow-automation': '' }));
  pages.set('/optout/', spaPage({ ...base, 'data-token': w.token('quiet', 'tracker'), 'data-allow-automation': '' }));
  const cases = [
    ['/bot/x', () => Object.defineProperty(Navigator.prototype, 'webdriver', { get: () => true })],
    ['/gpc/x', () => Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true })],
    [
      '/optout/x',
      () => {
        window.starlingOptOut = true;
      },
    ],
  ];
  for (const [path, init] of cases) {
    const { context, page, errors, beacons } = await open(`${origin}${path}`, { init });
    await page.waitForFunction(() => window.Tinybird && !window.starling.q);
    await page.evaluate(() => {
      history.pushState({}, '', '/elsewhere');
      Tinybird.trackEvent('x', { a: 1 });
      starling.track('y');
      Tinybird.trackEvent(undefined, 5);
      starling.track('z', {
        toJSON() {
          throw new Error('boom');
        },
      });
    });
    await page.waitForTimeout(800);
    assert.equal(beacons.length, 0, `${path}: ${beacons.map((b) => b.url())}`);
    assert.deepEqual(errors, [], path);
    await context.close();
  }
  // A direct event for the same tenant arrives after anything the pages could have sent.
  const r = await w.post('/v0/events?name=analytics_events', JSON.stringify({ action: 'sentinel', payload: {} }), {
    token: w.token('quiet', 'tracker'),
  });
  assert.equal(r.status, 202, r.text);
  const all = await archived('quiet', 1, []);
  assert.deepEqual(
    all.map((e) => e.action),
    ['sentinel'],
  );
});

test('data-stringify-payload="false" sends the payload as an object, data-keep-query keeps the query, masking reaches arrays', async () => {
  pages.set(
    '/object/',
    spaPage({
      'data-token': w.token('objectco', 'tracker'),
      'data-host': w.base,
      'data-stringify-payload': 'false',
      'data-keep-query': '',
      'data-allow-localhost': '',
      'data-allow-automation': '',
      'data-tb-plan': 'pro',
    }),
  );
  const { context, page, errors, beacons } = await open(`${origin}/object/a?q=1&utm_source=x#frag`);
  await page.waitForFunction(() => window.Tinybird && !window.starling.q);
  await page.evaluate(() => Tinybird.trackEvent('cart', { items: [{ sku: 'A', userEmail: 'a@b.c' }], apiToken: 't' }));
  // Both are sent once the module has loaded (a fixed 500 ms wait was too short on a loaded machine).
  const bodies = await w.until(
    async () => {
      const b = beacons.map((r) => JSON.parse(r.postData()));
      return ['page_hit', 'cart'].every((a) => b.some((x) => x.action === a)) && b;
    },
    { what: 'the page hit and the cart event sent' },
  );
  const hit = bodies.find((b) => b.action === 'page_hit');
  assert.equal(typeof hit.payload, 'object', 'an object, not a JSON string');
  assert.equal(hit.payload.href, `${origin}/object/a?q=1&utm_source=x`, 'the whole query, no fragment');
  assert.equal(hit.payload.plan, 'pro');
  assert.deepEqual(Object.keys(hit).sort(), ['action', 'domain', 'payload', 'session_id', 'tenant_id', 'timestamp', 'version']);
  const cart = bodies.find((b) => b.action === 'cart');
  assert.deepEqual(cart.payload, { items: [{ sku: 'A', userEmail: '********' }], apiToken: '********', plan: 'pro' });
  assert.deepEqual(errors, []);
  await context.close();
});

test('attributes too large for the module turn the tracker off without an error', async () => {
  // Everything on a non-local host name (the worker's t.js and module proxied there), in a
  // non-automated browser: a tracker that lost its configuration would still send, to a default
  // endpoint, and only the size check stops it.
  const host = 'http://huge.example';
  const html = spaPage({ 'data-token': 't', 'data-tb-notes': 'x'.repeat(40000) }).replaceAll(w.base, host);
  const context = await browser.newContext({ userAgent: UA });
  await context.addInitScript(() => Object.defineProperty(Navigator.prototype, 'webdriver', { get: () => false }));
  await context.route(`${host}/**`, async (route) => {
    const path = new URL(route.request().url()).pathname;
    if (!path.startsWith('/t')) return route.fulfill({ status: 200, contentType: 'text/html', body: html });
    const r = await route.fetch({ url: w.base + path });
    await route.fulfill({ response: r });
  });
  const page = await context.newPage();
  const errors = [];
  const posts = []; // to any host
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('request', (r) => r.method() === 'POST' && posts.push(r.url()));
  await page.goto(`${host}/a`);
  await page.waitForFunction(() => window.Tinybird && !window.starling.q);
  await page.waitForTimeout(500);
  await page.evaluate(() => {
    Tinybird.trackEvent('x', { a: 1 });
    history.pushState({}, '', '/b');
  });
  await page.waitForTimeout(500);
  assert.deepEqual(posts, []);
  assert.deepEqual(errors, []);
  await context.close();
});

test('t.js and the module are served with CORS and cache headers (www/dist/_headers.tracker merged into _headers)', async () => {
  const js = await httpCall(`${w.base}/t.js`);
  assert.equal(js.status, 200);
  const build = js.body.match(/t\/([0-9a-f]{16})/)?.[1];
  assert.ok(build, 't.js names its build');
  const wasm = `t/${build}.wasm`;
  const mod = await httpCall(`${w.base}/${wasm}`);
  assert.equal(mod.status, 200);
  assert.equal(mod.headers.get('content-type'), 'application/wasm');
  assert.equal(mod.headers.get('access-control-allow-origin'), '*', 'the module is fetched cross-origin');
  assert.match(mod.headers.get('cache-control') ?? '', /immutable/);
  assert.match(js.headers.get('cache-control') ?? '', /max-age=300/);
});
