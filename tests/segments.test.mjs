// Saved segments end to end against the real local runtime: create, list and delete through the admin
// API and a tenant's own SETTINGS:WRITE token; a segment in /v0/query and as segment=<id> on a pipe
// answers exactly what the same filters inline answer; another tenant's id answers as a missing one;
// bad bodies get a 400 naming the field.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './lib/worker.mjs';
import { signJwt } from '../scripts/token.mjs';

const UAS = {
  chrome: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  firefox: 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
  safari:
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
};
const COUNTRIES = ['DE', 'US', 'FR'];
const TENANTS = { sega: 18, segb: 7 };

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

let w, now;
const nowSecs = () => Math.floor(Date.now() / 1000);
const day = (ms) => new Date(ms).toISOString().slice(0, 10);

/** A token with exactly these scopes for `tenant`. */
const tokenWith = (tenant, ...types) =>
  signJwt(
    {
      name: `${tenant}-${types.join('+')}`,
      iat: nowSecs() - 5,
      exp: nowSecs() + 3600,
      scopes: types.map((type) => ({ type, resource: '*', fixed_params: { tenant_id: tenant } })),
    },
    w.signingKey,
  );

async function call(method, path, token, body) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const r = await w.fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, text, headers: r.headers };
}

before(async () => {
  w = await startWorker({ fastQueues: true, shared: true });
  now = Date.now();
  let total = 0;
  for (const [tenant, visitors] of Object.entries(TENANTS)) {
    const created = await w.admin('/v0/admin/tenants', {
      body: JSON.stringify({ tenant_id: tenant, display_name: tenant, plan: 'enterprise' }),
    });
    assert.equal(created.status, 201, created.text);
    const token = w.token(tenant);
    for (let v = 0; v < visitors; v++) {
      const browser = Object.keys(UAS)[v % 3];
      const start = now - (30 + v * 23) * 60_000;
      const pages = 1 + (v % 3);
      const lines = Array.from({ length: pages }, (_, i) =>
        JSON.stringify({
          timestamp: new Date(start + i * 40_000).toISOString(),
          action: 'page_hit',
          version: '1',
          session_id: `${tenant}-s${v}`,
          domain: `${tenant}.example`,
          payload: JSON.stringify({
            'user-agent': UAS[browser],
            locale: 'en-US',
            referrer: '',
            pathname: `/${['home', 'pricing', 'blog/a', 'docs'][(v + i) % 4]}`,
            href: `https://${tenant}.example/${['home', 'pricing', 'blog/a', 'docs'][(v + i) % 4]}`,
          }),
        }),
      );
      const r = await w.post('/v0/events?name=analytics_events', lines.join('\n'), {
        token,
        headers: { 'CF-Connecting-IP': `198.51.100.${v + 1}`, 'MF-CF-Blob': cfBlob(COUNTRIES[v % 3]) },
      });
      assert.equal(r.status, 202, r.text);
      total += 1;
    }
  }
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

const SEGMENT = [
  ['is', 'visit:country', ['DE', 'FR']],
  [
    'or',
    [
      ['contains', 'event:page', ['/blog']],
      ['is_not', 'visit:browser', ['chrome']],
    ],
  ],
];

test('create, list and delete through the admin API and the tenant token; read tokens cannot write', async () => {
  const made = await w.admin('/v0/admin/tenants/sega/segments', { body: JSON.stringify({ name: ' Europeans ', filters: SEGMENT }) });
  assert.equal(made.status, 201, made.text);
  assert.equal(made.json.name, 'Europeans');
  assert.deepEqual(made.json.filters, SEGMENT);
  assert.ok(Number.isInteger(made.json.id) && made.json.id >= 1);

  const writer = tokenWith('sega', 'SETTINGS:WRITE', 'SETTINGS:READ');
  const second = await call('POST', '/v0/segments', writer, { name: 'Firefox', filters: [['is', 'visit:browser', ['firefox']]] });
  assert.equal(second.status, 201, second.text);
  assert.equal(second.json.id, made.json.id + 1, 'ids count per tenant');

  // A dashboard (read) token lists but cannot write.
  const reader = w.token('sega', 'read');
  const listed = await call('GET', '/v0/segments', reader);
  assert.equal(listed.status, 200, listed.text);
  assert.deepEqual(
    listed.json.data.map((s) => s.name),
    ['Europeans', 'Firefox'],
  );
  const refused = await call('POST', '/v0/segments', reader, { name: 'x', filters: SEGMENT });
  assert.equal(refused.status, 403, refused.text);
  assert.match(refused.json.error, /SETTINGS:WRITE/);
  assert.equal((await call('DELETE', `/v0/segments/${made.json.id}`, reader)).status, 403);
  assert.equal((await call('POST', '/v0/segments', null, { name: 'x', filters: SEGMENT })).status, 401);

  // The admin listing agrees; another tenant sees none of them.
  const adminList = await w.admin('/v0/admin/tenants/sega/segments', { method: 'GET' });
  assert.deepEqual(adminList.json.data, listed.json.data);
  const other = await call('GET', '/v0/segments', w.token('segb', 'read'));
  assert.deepEqual(other.json, { rows: 0, data: [] });

  // Delete: another tenant's token gets the 404 a missing id gets; the owner deletes once.
  const otherWriter = tokenWith('segb', 'SETTINGS:WRITE');
  const foreign = await call('DELETE', `/v0/segments/${second.json.id}`, otherWriter);
  const missing = await call('DELETE', '/v0/segments/9999', otherWriter);
  assert.equal(foreign.status, 404, foreign.text);
  assert.equal(missing.status, 404);
  assert.equal(foreign.json.error.replace(String(second.json.id), 'N'), missing.json.error.replace('9999', 'N'));
  const gone = await call('DELETE', `/v0/segments/${second.json.id}`, writer);
  assert.equal(gone.status, 200, gone.text);
  assert.deepEqual(gone.json, { id: second.json.id, deleted: true });
  assert.equal((await call('DELETE', `/v0/segments/${second.json.id}`, writer)).status, 404);
  const third = await call('POST', '/v0/segments', writer, { name: 'Again', filters: [['is', 'visit:browser', ['safari']]] });
  assert.equal(third.json.id, second.json.id + 1, 'a deleted id is never reused');
  const adminDelete = await w.admin(`/v0/admin/tenants/sega/segments/${third.json.id}`, { method: 'DELETE' });
  assert.equal(adminDelete.status, 200, adminDelete.text);
});

test('bad definitions get a 400 naming the field', async () => {
  const writer = tokenWith('segb', 'SETTINGS:WRITE');
  const cases = [
    [{ name: '', filters: SEGMENT }, "'name'"],
    [{ filters: SEGMENT }, "'name'"],
    [{ name: 'x', filters: [] }, "'filters'"],
    [{ name: 'x', filters: [['is', 'visit:shoe_size', ['42']]] }, "'filters[0][1]'"],
    [{ name: 'x', filters: [['equals', 'visit:country', ['DE']]] }, "'filters[0][0]'"],
    [{ name: 'x', filters: [['is', 'visit:country', 'DE']] }, "'filters[0][2]'"],
    [{ name: 'x', filters: [['is', 'segment', [1]]] }, "'filters[0][1]'"],
    [{ name: 'x', filters: SEGMENT, color: 'red' }, "'color'"],
  ];
  for (const [body, field] of cases) {
    const r = await call('POST', '/v0/segments', writer, body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.ok(r.json.error.includes(field), `${JSON.stringify(body)} names ${field}: ${r.json.error}`);
  }
  // Too many: the cap counts live segments.
  let made = 0;
  for (;;) {
    const r = await w.admin('/v0/admin/tenants/segb/segments', {
      body: JSON.stringify({ name: `n${made}`, filters: [['is', 'visit:os', ['ios']]] }),
    });
    if (r.status !== 201) {
      assert.equal(r.status, 400, r.text);
      assert.match(r.json.error, /'segments'.*at most 100/);
      break;
    }
    made += 1;
    assert.ok(made <= 100, 'the cap holds');
  }
  assert.equal(made, 100);
  const list = await w.admin('/v0/admin/tenants/segb/segments', { method: 'GET' });
  for (const s of list.json.data) await w.admin(`/v0/admin/tenants/segb/segments/${s.id}`, { method: 'DELETE' });
});

async function query(token, body) {
  return call('POST', '/v0/query', token, body);
}

test('a segment in /v0/query and on a pipe answers what its filters answer inline, for its own tenant only', async () => {
  const writer = tokenWith('sega', 'SETTINGS:WRITE');
  const seg = await call('POST', '/v0/segments', writer, { name: 'Europeans', filters: SEGMENT });
  assert.equal(seg.status, 201, seg.text);
  const id = seg.json.id;
  const reader = w.token('sega', 'read');
  const range = [day(now - 86_400_000), day(now)];
  const metrics = ['visitors', 'visits', 'pageviews', 'bounce_rate'];
  for (const [dimensions, extra] of [
    [[], []],
    [['visit:browser'], []],
    [['time:day'], [['is_not', 'visit:os', ['none']]]],
  ]) {
    const base = { metrics, date_range: range, dimensions, include: { comparisons: { mode: 'previous_period' } } };
    const viaSegment = await query(reader, { ...base, filters: [...extra, ['is', 'segment', [id]]] });
    const inline = await query(reader, { ...base, filters: [...extra, ...SEGMENT] });
    const unfiltered = await query(reader, { ...base, filters: extra });
    assert.equal(viaSegment.status, 200, viaSegment.text);
    assert.deepEqual(viaSegment.json.results, inline.json.results, `${dimensions}`);
    assert.ok(viaSegment.json.results.length > 0);
    assert.notDeepEqual(viaSegment.json.results, unfiltered.json.results, 'the segment filters something');
  }

  // The pipes: segment=<id> AND-ed with the request's own filter params.
  const fx = [['is', 'visit:browser', ['firefox']]];
  const ff = await call('POST', '/v0/segments', writer, { name: 'Firefox', filters: fx });
  const q = `date_from=${range[0]}&date_to=${range[1]}`;
  const get = async (name, params) => call('GET', `/v0/pipes/${name}.json?${q}&${params}`, reader);
  const bySegment = await get('kpis_summary', `segment=${ff.json.id}`);
  const byParam = await get('kpis_summary', 'browser=firefox');
  assert.equal(bySegment.status, 200, bySegment.text);
  assert.deepEqual(bySegment.json.data, byParam.json.data);
  assert.ok(bySegment.json.data[0].visits > 0);
  const pages = await get('top_pages', `segment=${id}&country=DE`);
  const inlinePages = await query(reader, {
    metrics: ['visits'],
    date_range: range,
    filters: [...SEGMENT, ['is', 'visit:country', ['DE']]],
  });
  assert.equal(pages.status, 200, pages.text);
  const total = await get('kpis_summary', `segment=${id}&country=DE`);
  assert.equal(total.json.data[0].visits, inlinePages.json.results[0].metrics[0]);
  assert.ok(pages.json.data.length > 0);
  // A pipe without the dashboard filters refuses a segment, naming it.
  const live = await call('GET', `/v0/pipes/current_visitors.json?segment=${id}`, reader);
  assert.equal(live.status, 400, live.text);
  assert.match(live.json.error, /'segment'/);

  // Another tenant's token: the id answers exactly as an id nobody has.
  const otherReader = w.token('segb', 'read');
  const foreign = await query(otherReader, { metrics: ['visits'], date_range: range, filters: [['is', 'segment', [id]]] });
  const missing = await query(otherReader, { metrics: ['visits'], date_range: range, filters: [['is', 'segment', [987654]]] });
  assert.equal(foreign.status, 400, foreign.text);
  assert.equal(foreign.json.error.replace(String(id), 'N'), missing.json.error.replace('987654', 'N'));
  assert.match(foreign.json.error, /'filters\[0\]\[2\]\[0\]'/);
  const foreignPipe = await call('GET', `/v0/pipes/kpis_summary.json?${q}&segment=${id}`, otherReader);
  const missingPipe = await call('GET', `/v0/pipes/kpis_summary.json?${q}&segment=987654`, otherReader);
  assert.equal(foreignPipe.status, 400);
  assert.equal(foreignPipe.json.error.replace(String(id), 'N'), missingPipe.json.error.replace('987654', 'N'));
  assert.ok(!foreignPipe.text.includes('sega'), foreignPipe.text);

  // A deleted segment no longer answers, even from the cache.
  const body = { metrics: ['visits'], date_range: range, filters: [['is', 'segment', [ff.json.id]]] };
  assert.equal((await query(reader, body)).status, 200);
  assert.equal((await call('DELETE', `/v0/segments/${ff.json.id}`, writer)).status, 200);
  const after = await query(reader, body);
  assert.equal(after.status, 400, after.text);
  const afterPipe = await get('kpis_summary', `segment=${ff.json.id}`);
  assert.equal(afterPipe.status, 400, afterPipe.text);
});

test("erasing a tenant deletes its segments, never another tenant's", async () => {
  const writer = tokenWith('segb', 'SETTINGS:WRITE');
  const kept = await call('POST', '/v0/segments', writer, { name: 'Kept', filters: SEGMENT });
  assert.equal(kept.status, 201, kept.text);
  assert.ok(w.d1("SELECT count(*) AS n FROM segments WHERE tenant_id = 'sega'")[0].n > 0);
  const erased = await w.admin('/v0/admin/tenants/sega', { method: 'DELETE' });
  assert.equal(erased.status, 200, erased.text);
  assert.equal(w.d1("SELECT count(*) AS n FROM segments WHERE tenant_id = 'sega'")[0].n, 0);
  const theirs = await call('GET', '/v0/segments', w.token('segb', 'read'));
  assert.deepEqual(
    theirs.json.data.map((s) => s.name),
    ['Kept'],
  );
});
