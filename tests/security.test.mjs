// Security and data-lifecycle hardening (issue #16), end to end against the real local runtime (wrangler
// dev: workerd, local D1 pool and silo databases, R2, Queues; Debian's chromium for framing). One test
// per item of the issue, each written to fail on the code before the fix:
//  1 tokens without iat after an erasure     4 quarantined rows at rest        7 usage/settings scopes, fixed dates
//  2 kid shape checked before any lookup     5 stale-generation batches        8 short SIGNING_KEY, key rotation
//  3 payload masking and retention           6 retention in pool and silo      9 framing and postMessage origins
//
// One worker serves tests 1-7 and 9 (with a SIGNING_KEY_PREVIOUS for test 8's rotation half); test 8
// starts a second worker with a short key.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { generateKeyPairSync, sign as edSign, randomBytes, createHmac } from 'node:crypto';
import { launchChromium } from './lib/browser.mjs';
import { enrichedHit } from './lib/fixtures.mjs';
import { startWorker, ROOT } from './lib/worker.mjs';
import { signJwt } from '../scripts/token.mjs';

const PREVIOUS_KEY = randomBytes(24).toString('hex');
let w;
before(async () => {
  execFileSync('bash', ['scripts/build-www.sh'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  w = await startWorker({ fastQueues: true, silo: true, extraArgs: ['--var', `SIGNING_KEY_PREVIOUS:${PREVIOUS_KEY}`] });
});
after(async () => {
  await w?.stop();
});

// ---------------------------------------------------------------------------------------------------
// Helpers

const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const DAY_MS = 86_400_000;
const now = () => Math.floor(Date.now() / 1000);
const dayOf = (ms) => new Date(ms).toISOString().slice(0, 10);
const _today = () => dayOf(Date.now());
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

async function call(method, path, { body, token = w.adminToken, headers = {}, worker = w } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    h['Content-Type'] = 'application/json';
  }
  const r = await worker.fetch(path, { method, headers: h, body: payload });
  let json;
  try {
    json = JSON.parse(r.body);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, text: r.body, headers: r.headers };
}
const admin = (method, path, body) => call(method, path, { body });
async function createTenant(body) {
  const r = await admin('POST', '/v0/admin/tenants', { plan: 'pro', ...body });
  assert.equal(r.status, 201, `create ${JSON.stringify(body)}: ${r.text}`);
  return r.json;
}
async function erase(id) {
  const r = await admin('DELETE', `/v0/admin/tenants/${id}`);
  assert.equal(r.status, 200, r.text);
}

/** A flock.js-style row (not from the tracker: no client-side masking or query stripping). */
function row({ session = 's-1', path = '/', ts = Date.now(), domain = 'site.example', action = 'page_hit', props = {}, query = '' } = {}) {
  return JSON.stringify({
    timestamp: new Date(ts).toISOString(),
    action,
    version: '1',
    session_id: session,
    domain,
    payload: JSON.stringify({
      'user-agent': UA,
      locale: 'en-US',
      referrer: '',
      pathname: path,
      href: `https://${domain}${path}${query}`,
      ...props,
    }),
  });
}
const ingest = (token, rows) =>
  call('POST', '/v0/events?name=analytics_events', {
    body: Array.isArray(rows) ? rows.join('\n') : rows,
    token,
    headers: { 'CF-Connecting-IP': '203.0.113.7' },
  });
const pipe = (name, token, query = '') => call('GET', `/v0/pipes/${name}.json?${query}`, { token });
const sessionsOf = (tenant, db = 'DB') => w.d1(`SELECT count(*) AS n FROM sessions WHERE tenant_id = '${tenant}'`, db)[0].n;

const scope = (type, resource, fixed_params) => ({ type, resource, fixed_params });
/** An HS256 token with exactly these claims (no iat unless given), signed with `key`. */
const hs = (scopes, { key = w.signingKey, ...extra } = {}) => signJwt({ name: 'sec', exp: now() + 3600, scopes, ...extra }, key);

function edKey() {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    jwk: publicKey.export({ format: 'jwk' }),
    token(kid, scopes) {
      const unsigned = `${b64({ alg: 'EdDSA', typ: 'JWT', kid })}.${b64({ name: 'backend', exp: now() + 600, scopes })}`;
      return `${unsigned}.${edSign(null, Buffer.from(unsigned), privateKey).toString('base64url')}`;
    },
  };
}

// ---------------------------------------------------------------------------------------------------

test('#1 a token without iat is refused for a tenant re-created after erasure; tokens with a later iat work', async () => {
  await createTenant({ tenant_id: 'iatco' });
  const legacyRead = hs([scope('PIPES:READ', '*', { tenant_id: 'iatco' })]);
  const legacyTracker = hs([scope('DATASOURCES:APPEND', 'analytics_events', { tenant_id: 'iatco' })]);
  assert.equal((await pipe('top_pages', legacyRead)).status, 200, 'before the erasure a token without iat works (Tinybird compatibility)');
  assert.equal((await ingest(legacyTracker, [row({ session: 'iat-1' })])).status, 202);
  await erase('iatco');
  await createTenant({ tenant_id: 'iatco' });
  const read = await pipe('top_pages', legacyRead);
  const write = await ingest(legacyTracker, [row({ session: 'iat-ghost' })]);
  assert.deepEqual(
    [read.status, write.status],
    [401, 401],
    `tokens without iat reach the re-created tenant: read ${read.status} ${read.text}, write ${write.status} ${write.text}`,
  );
  const fresh = hs([scope('PIPES:READ', '*', { tenant_id: 'iatco' })], { iat: now() });
  assert.equal((await pipe('top_pages', fresh)).status, 200, 'a token issued after the re-creation works');
  assert.equal((await pipe('top_pages', w.token('iatco', 'read'))).status, 200, 'scripts/token.mjs sets iat');
});

test('#2 a kid that is not an issued key id is refused without a lookup; unknown kids stay cheap and valid keys keep working', async () => {
  await createTenant({ tenant_id: 'kidco' });
  const key = edKey();
  const reg = await admin('POST', '/v0/admin/tenants/kidco/keys', { public_key: key.jwk });
  assert.equal(reg.status, 201, reg.text);
  const kid = reg.json.key_id;
  assert.match(kid, /^[0-9a-f]{32}$/);
  const scopes = [scope('PIPES:READ', '*', { tenant_id: 'kidco' })];
  assert.equal((await pipe('top_pages', key.token(kid, scopes))).status, 200, 'the registered key reads');
  for (const bad of ['x'.repeat(600), '../../etc/passwd', kid.toUpperCase(), `${kid}0`, 'key_1']) {
    const r = await pipe('top_pages', key.token(bad, scopes));
    assert.equal(r.status, 401, `${bad.slice(0, 40)}: ${r.text}`);
    assert.match(r.json.error, /not a key id/, `a malformed kid is refused as such, before any key lookup: ${r.text}`);
  }
  // Well-formed but unknown kids: all refused from the isolate's key set, in bounded time.
  const started = Date.now();
  const unknown = await Promise.all(
    Array.from({ length: 60 }, () => pipe('top_pages', key.token(randomBytes(16).toString('hex'), scopes))),
  );
  assert.deepEqual([...new Set(unknown.map((r) => r.status))], [401]);
  assert.match(unknown[0].json.error, /not a registered, unrevoked tenant key/);
  assert.ok(Date.now() - started < 20_000, `60 unknown kids took ${Date.now() - started} ms`);
  assert.equal((await pipe('top_pages', key.token(kid, scopes))).status, 200, 'the valid key still works after the flood');
  // Revocation still takes effect (the key set is dropped on changes).
  assert.equal((await admin('DELETE', `/v0/admin/tenants/kidco/keys/${kid}`)).status, 200);
  await w.until(async () => (await pipe('top_pages', key.token(kid, scopes))).status === 401, {
    what: 'revoked key refused',
    timeoutMs: 10_000,
  });
});

test('#3 custom-event properties are masked on the server for every client, and retention clears payloads older than it', async () => {
  await createTenant({ tenant_id: 'maskco', retention_days: 1 });
  const tracker = w.token('maskco');
  const oldTs = Date.now() - 5 * DAY_MS;
  const sent = await ingest(tracker, [
    row({
      session: 'm-1',
      action: 'signup',
      props: { email: 'ann.mask@example.com', userPhone: '+1 555 0100', plan: 'pro', form: { newPassword: 'hunter2' } },
    }),
    row({ session: 'm-2', action: 'old_signup', ts: oldTs, props: { plan: 'gold', note: 'old-note-7731' } }),
  ]);
  assert.equal(sent.status, 202, sent.text);
  assert.equal(sent.json.successful_rows, 2);
  const reader = w.token('maskco', 'read');
  // Wait on D1, not the pipe: its answers are cached for a minute.
  await w.until(() => w.d1("SELECT count(*) AS n FROM actions WHERE tenant_id = 'maskco'")[0].n === 2, { what: 'actions rolled up' });
  const actions = (await pipe('actions', reader)).json.data;
  assert.equal(actions.length, 2, JSON.stringify(actions));
  const byName = Object.fromEntries(actions.map((a) => [a.action, a]));
  const signup = JSON.parse(byName.signup.last_payload);
  assert.ok(
    !JSON.stringify(actions).includes('ann.mask@example.com') && !JSON.stringify(actions).includes('hunter2'),
    `the actions pipe serves sensitive properties: ${byName.signup.last_payload}`,
  );
  assert.deepEqual([signup.email, signup.userPhone, signup.form.newPassword, signup.plan], ['********', '********', '********', 'pro']);
  assert.equal(JSON.parse(byName.old_signup.last_payload).note, 'old-note-7731', 'the old payload is there before retention runs');
  assert.ok(!w.stateFiles().some((f) => f.bytes.includes(Buffer.from('ann.mask@example.com'))), 'the email is nowhere at rest (D1, R2)');

  const run = await admin('POST', '/v0/admin/retention/run');
  assert.equal(run.status, 200, run.text);
  // A new cache key (the answer before retention may be served from the cache for up to 60 s).
  const after = Object.fromEntries((await pipe('actions', reader, 'domain=site.example')).json.data.map((a) => [a.action, a]));
  assert.equal(
    after.old_signup.last_payload,
    '{}',
    `a payload older than retention_days is still served: ${after.old_signup.last_payload}`,
  );
  assert.equal(after.old_signup.total_occurrences, 1, 'the all-time count stays');
  assert.equal(JSON.parse(after.signup.last_payload).plan, 'pro', 'a payload inside the retention is kept');
  const d1Payloads = w.d1("SELECT last_payload FROM actions WHERE tenant_id = 'maskco' AND action = 'old_signup'");
  assert.deepEqual(d1Payloads, [{ last_payload: '{}' }]);
});

test('#4 quarantined rows keep what is needed to debug, stripped and masked like accepted rows', async () => {
  const tracker = w.token('quarco');
  const skewed = row({
    session: 'q-1',
    ts: Date.now() + 30 * DAY_MS,
    query: '?session=QSECRET-123&utm_campaign=qmarker789',
    props: { email: 'quar.ann@example.com' },
  });
  const huge = row({ session: 'q-2', query: '?token=QSECRET-456', props: { password: 'QSECRET-789', blob: 'y'.repeat(17 * 1024) } });
  const r = await ingest(tracker, [skewed, huge]);
  assert.equal(r.status, 202, r.text);
  assert.equal(r.json.quarantined_rows, 2);
  await w.until(() => w.r2Keys('quarantine/quarco/').length > 0, { what: 'quarantine object written' });
  await w.until(() => w.d1("SELECT sum(rows) AS n FROM quarantine_daily WHERE tenant_id = 'quarco'")[0].n === 2, {
    what: 'quarantine counted',
  });
  const files = w.stateFiles();
  assert.ok(
    files.some((f) => f.bytes.includes(Buffer.from('utm_campaign=qmarker789'))),
    'the quarantined row is kept (with its utm_* parameters) where this test can read it',
  );
  for (const probe of ['QSECRET-123', 'QSECRET-456', 'QSECRET-789', 'quar.ann@example.com']) {
    const at = files.find((f) => f.bytes.includes(Buffer.from(probe)));
    assert.ok(!at, `${probe} kept at rest in ${at?.path}`);
  }
});

test("#5 a batch of an older tenant generation is dropped and leftovers are erased, never the re-created tenant's data", async () => {
  await createTenant({ tenant_id: 'genco' });
  const first = (await admin('GET', '/v0/admin/tenants/genco')).json.generation;
  await erase('genco');
  // Leftovers of an interrupted erasure (or of a batch applied by a consumer that had not seen it yet).
  w.d1("INSERT INTO domains (tenant_id, domain, first_seen, last_seen, total_hits) VALUES ('genco', 'left.example', 1, 2, 3)");
  const again = await createTenant({ tenant_id: 'genco' });
  assert.deepEqual(
    w.d1("SELECT domain FROM domains WHERE tenant_id = 'genco'"),
    [],
    "leftovers of the old generation became the new tenant's data",
  );
  assert.ok(again.generation > first, `generation moved on: ${first} → ${again.generation}`);
  const ts = Date.now();
  const event = enrichedHit({
    ts,
    tenant_id: 'genco',
    domain: 'g.example',
    session_id: 'gen-1',
    pathname: '/stale',
    href: 'https://g.example/stale',
  });
  const batch = (id, generation, e) =>
    JSON.stringify({ batch_id: id, tenant_id: 'genco', received_at: ts, generation, events: [e], quarantined: [] });
  // A retried or replayed batch accepted for the erased generation (as from the dead-letter queue).
  const stale = await w.admin('/v0/admin/batches?tenant_id=genco', { body: batch('gen-stale-1', first, event) });
  assert.equal(stale.status, 200, stale.text);
  assert.equal(
    stale.json.outcome,
    'dropped_stale_generation',
    `a batch of generation ${first} was ${stale.json.outcome} to generation ${again.generation}`,
  );
  assert.equal(sessionsOf('genco'), 0, 'nothing of the old generation reached the new tenant');
  // The same batch of the current generation is applied (the check is not vacuous).
  const current = await w.admin('/v0/admin/batches?tenant_id=genco', {
    body: batch('gen-now-1', again.generation, { ...event, session_id: 'gen-2', pathname: '/now' }),
  });
  assert.equal(current.json.outcome, 'applied', current.text);
  assert.equal(sessionsOf('genco'), 1);
  // Live ingest stamps the current generation: accepted and rolled up.
  assert.equal((await ingest(w.token('genco'), [row({ session: 'gen-3', path: '/live' })])).status, 202);
  await w.until(() => sessionsOf('genco') === 2, { what: 'live batch of the current generation applied' });
});

test('#6 retention reaches the pool rows of a tenant registered as a silo after it sent data', async () => {
  const old = Date.now() - 5 * DAY_MS;
  // Sent before the tenant was registered: lands in the pool database.
  const sent = await ingest(w.token('latesilo'), [
    row({ session: 'ls-old', path: '/old', ts: old }),
    row({ session: 'ls-new', path: '/new' }),
  ]);
  assert.equal(sent.status, 202, sent.text);
  await w.until(() => sessionsOf('latesilo') === 2, { what: 'pool rows of the unregistered tenant' });
  await createTenant({ tenant_id: 'latesilo', plan: 'enterprise', isolation: 'silo', database: 'SILO_1', retention_days: 1 });
  const run = await admin('POST', '/v0/admin/retention/run');
  assert.equal(run.status, 200, run.text);
  const left = w.d1("SELECT session_key FROM sessions WHERE tenant_id = 'latesilo' ORDER BY session_key");
  assert.deepEqual(
    left.map((r) => r.session_key),
    ['ls-new'],
    `pool rows older than the silo tenant's retention survive: ${JSON.stringify(left)}`,
  );
  const hits = w.d1(
    `SELECT count(*) AS n FROM visit_hourly WHERE tenant_id = 'latesilo' AND hour < ${Math.floor((Date.now() - DAY_MS * 2) / 1000)}`,
  )[0].n;
  assert.equal(hits, 0);
  // Erasure covers both databases too.
  await erase('latesilo');
  assert.equal(sessionsOf('latesilo'), 0);
  assert.equal(sessionsOf('latesilo', 'SILO_1'), 0);
});

test('#7 usage.json and tenant.json need their own scope or a whole-tenant read token; fixed dates bound every pipe', async () => {
  await createTenant({ tenant_id: 'scopeco', theme: { display_name: 'Scope Co' } });
  const t = { tenant_id: 'scopeco' };
  const doc = (path, token) => call('GET', path, { token });
  const cases = [
    ['a public live counter (current_visitors only)', hs([scope('PIPES:READ', 'current_visitors', t)]), 403, 403],
    ['a glob of some pipes', hs([scope('PIPES:READ', 'top_*', t)]), 403, 403],
    ['a dashboard token pinned to a domain', hs([scope('PIPES:READ', '*', { ...t, domain: 'a.example' })]), 403, 200],
    [
      'a dashboard token pinned to dates',
      hs([scope('PIPES:READ', '*', { ...t, date_from: '2026-01-01', date_to: '2026-01-07' })]),
      403,
      200,
    ],
    ['USAGE:READ', hs([scope('USAGE:READ', '*', t)]), 200, 403],
    ['SETTINGS:READ', hs([scope('SETTINGS:READ', '*', t)]), 403, 200],
    ['a whole-tenant read token', w.token('scopeco', 'read'), 200, 200],
  ];
  const wrong = [];
  for (const [what, token, usage, settings] of cases) {
    const u = await doc('/v0/usage.json', token);
    const s = await doc('/v0/tenant.json', token);
    if (u.status !== usage || s.status !== settings)
      wrong.push(`${what}: usage.json ${u.status} (want ${usage}), tenant.json ${s.status} (want ${settings}) ${u.text.slice(0, 120)}`);
  }
  assert.deepEqual(wrong, []);
  const live = hs([scope('PIPES:READ', 'current_visitors', t)]);
  assert.equal((await pipe('current_visitors', live)).status, 200, 'the live counter still reads its pipe');
  const refused = await doc('/v0/usage.json', live);
  assert.match(refused.json.error, /USAGE:READ/);

  const dated = hs([scope('PIPES:READ', '*', { ...t, date_from: '2026-01-01', date_to: '2026-01-07' })]);
  assert.equal((await pipe('kpis', dated)).status, 200);
  assert.equal(
    (await pipe('top_pages', dated, 'date_from=2020-01-01&date_to=2030-01-01')).status,
    200,
    'request dates are overridden, not refused',
  );
  const escapes = [];
  for (const [name, query] of [
    ['kpis', 'include_previous_period=true'],
    ['kpis_summary', 'include_previous_period=true'],
    ['current_visitors', ''],
    ['trend', ''],
    ['actions', ''],
    ['domains', ''],
    ['domain', ''],
  ]) {
    const r = await pipe(name, dated, query);
    if (r.status !== 403) escapes.push(`${name}?${query}: ${r.status}`);
  }
  assert.deepEqual(escapes, [], 'a token with fixed dates reads outside them');
  const r = await pipe('kpis', dated, 'include_previous_period=true');
  assert.match(r.json.error, /include_previous_period/);
});

test('#8 a SIGNING_KEY under 32 bytes serves nothing; during a rotation the previous key still verifies', async () => {
  const shortKey = 'k'.repeat(31);
  const weak = await startWorker({ fastQueues: true, signingKey: shortKey });
  try {
    const token = signJwt({ exp: now() + 600, iat: now(), scopes: [scope('PIPES:READ', '*', { tenant_id: 'weak' })] }, shortKey);
    const calls = [
      ['health', () => call('GET', '/v0/health', { token: null, worker: weak })],
      ['pipe', () => call('GET', '/v0/pipes/top_pages.json', { token, worker: weak })],
      ['ingest', () => call('POST', '/v0/events?name=analytics_events', { token, body: row(), worker: weak })],
      ['admin', () => call('GET', '/v0/admin/tenants', { token: weak.adminToken, worker: weak })],
    ];
    const served = [];
    for (const [what, fn] of calls) {
      const r = await fn();
      if (r.status !== 503 || !/SIGNING_KEY is shorter than 32 bytes/.test(r.json?.error ?? ''))
        served.push(`${what}: ${r.status} ${r.text.slice(0, 120)}`);
    }
    assert.deepEqual(served, [], 'a deployment with a 31-byte SIGNING_KEY serves requests');
    // The worker's log reaches the test through wrangler's output, a moment after the answers.
    await weak.until(() => /SIGNING_KEY is shorter than 32 bytes/.test(weak.logs()), {
      what: 'the reason in the worker log',
      timeoutMs: 10_000,
    });
    assert.ok(!weak.logs().includes(shortKey), 'the key itself is never logged');
  } finally {
    await weak.stop();
  }
  // Rotation on the main worker: SIGNING_KEY signs and verifies, SIGNING_KEY_PREVIOUS verifies, others do not.
  const s = [scope('PIPES:READ', '*', { tenant_id: 'rotco' })];
  assert.equal((await pipe('top_pages', hs(s, { iat: now() }))).status, 200);
  const byPrevious = await pipe('top_pages', hs(s, { key: PREVIOUS_KEY, iat: now() }));
  assert.equal(byPrevious.status, 200, `a token signed with SIGNING_KEY_PREVIOUS: ${byPrevious.text}`);
  assert.equal((await pipe('top_pages', hs(s, { key: randomBytes(24).toString('hex'), iat: now() }))).status, 401);
  const minted = await admin('POST', '/v0/admin/tenants', { tenant_id: 'rotco', plan: 'pro' });
  assert.equal(minted.status, 201, minted.text);
  const tok = await admin('POST', '/v0/admin/tenants/rotco/tokens', { name: 'dash', kind: 'read' });
  assert.equal(tok.status, 201, tok.text);
  assert.equal((await pipe('top_pages', tok.json.token)).status, 200);
  const [h, p, sig] = tok.json.token.split('.');
  const mac = (key) => createHmac('sha256', Buffer.from(key, 'utf8')).update(`${h}.${p}`).digest('base64url');
  assert.deepEqual(
    [mac(w.signingKey) === sig, mac(PREVIOUS_KEY) === sig],
    [true, false],
    'new tokens are signed with SIGNING_KEY, not the previous key',
  );
});

test('#9 the dashboard can be framed only by allowed origins and takes a token only from them', async () => {
  // Headers: own origin only by default; a tenant's allowed origins for /dashboard/?tenant=ID.
  const own = await w.fetch('/dashboard/');
  assert.equal(own.status, 200);
  const csp = own.headers.get('content-security-policy') ?? '';
  assert.match(csp, /frame-ancestors 'self'(;|$)/, `default framing: ${csp}`);
  assert.match(csp, /script-src 'self'/, 'the rest of the policy is kept');

  const host = createServer((req, res) => {
    const [path, query] = req.url.split('?');
    const src = `${w.base}/dashboard/${query ? `?${query}` : ''}`;
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(`<!doctype html><title>${path}</title><iframe id="f" src="${src}" width="900" height="600"></iframe>
<script>
  const token = ${JSON.stringify(w.token('frameco', 'read'))};
  window.addEventListener('message', (e) => {
    if (e.data && e.data.type === 'starling:ready') document.getElementById('f').contentWindow.postMessage({ type: 'starling:token', token }, '*');
  });
</script>`);
  });
  await new Promise((r) => host.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${host.address().port}`;
  await createTenant({ tenant_id: 'frameco', allowed_origins: [origin] });
  await createTenant({ tenant_id: 'otherco', allowed_origins: ['https://other.example'] });
  assert.equal((await ingest(w.token('frameco'), [row({ session: 'f-1', path: '/framed' })])).status, 202);
  await w.until(() => sessionsOf('frameco') === 1, { what: 'frameco data' });
  const tenantCsp = (await w.fetch('/dashboard/?tenant=frameco')).headers.get('content-security-policy');
  assert.match(tenantCsp, new RegExp(`frame-ancestors 'self' ${origin}(;|$)`));

  const browser = await launchChromium();
  try {
    const rendered = async (query) => {
      const page = await browser.newPage();
      try {
        await page.goto(`${origin}/page?${query}`);
        const frame = await (await page.waitForSelector('#f')).contentFrame();
        return await frame.waitForSelector('[data-testid=kpi-visits][data-value]', { timeout: 8_000 }).then(
          () => true,
          () => false,
        );
      } finally {
        await page.close();
      }
    };
    assert.equal(await rendered('tenant=frameco'), true, "the tenant's own site embeds its dashboard and hands it the token");
    // postMessage: only the allowed parent origin configures the frame (defence in depth under the CSP).
    const page = await browser.newPage();
    try {
      await page.goto(`${origin}/page?tenant=frameco`);
      const frame = await (await page.waitForSelector('#f')).contentFrame();
      await frame.waitForSelector('[data-testid=kpi-visits][data-value]', { timeout: 15_000 });
      const configure = (from, name) =>
        frame.evaluate(
          ([o, n]) =>
            window.dispatchEvent(
              new MessageEvent('message', { data: { type: 'starling:config', theme: { name: n } }, origin: o, source: window.parent }),
            ),
          [from, name],
        );
      const siteName = () => frame.textContent('[data-testid=site-name]');
      await configure('https://evil.example', 'Evil Corp');
      await new Promise((r) => setTimeout(r, 500));
      assert.notEqual(await siteName(), 'Evil Corp', 'a message from an origin that may not frame the dashboard configured it');
      await configure(origin, 'Friendly Co');
      await frame.waitForFunction(() => document.querySelector('[data-testid=site-name]').textContent === 'Friendly Co', null, {
        timeout: 5_000,
      });
    } finally {
      await page.close();
    }
    assert.equal(await rendered(''), false, 'a page of an origin nobody allowed frames the dashboard and feeds it a token');
    assert.equal(await rendered('tenant=otherco'), false, 'naming a tenant that does not allow this origin frames the dashboard');
  } finally {
    await browser.close();
    host.close();
  }
});
