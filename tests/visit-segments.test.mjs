// Visit segments end to end (issue #11, copy mode) against the real local runtime: with
// SEGMENT_SEAL_DAYS_PER_RUN set, the hourly cron seals each closed UTC day of a tenant's visits into one
// R2 object (`segments/{tenant}/{YYYY-MM-DD}/visits`) and records it in `segment_days`; a late event of a
// sealed day makes it stale until the next run seals it again; erasure removes the objects and rows.
// The visit rows stay in D1 and the queries still read them (nothing reads the segments yet).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './lib/worker.mjs';

let w;
before(async () => {
  w = await startWorker({ fastQueues: true, extraArgs: ['--var', 'SEGMENT_SEAL_DAYS_PER_RUN:20'] });
});
after(async () => {
  await w?.stop();
});

const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const DAY_MS = 86_400_000;
const dayOf = (ms) => new Date(ms).toISOString().slice(0, 10);
const startOfToday = () => Date.now() - (Date.now() % DAY_MS);

function row({ session, path, ts }) {
  return JSON.stringify({
    timestamp: new Date(ts).toISOString(),
    action: 'page_hit',
    version: '1',
    session_id: session,
    tenant_id: 'ignored',
    domain: 'site.example',
    payload: JSON.stringify({ 'user-agent': UA, locale: 'en-US', referrer: '', pathname: path, href: `https://site.example${path}` }),
  });
}

async function call(method, path, { body, token = w.adminToken } = {}) {
  const r = await w.fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: r.status, text: r.body };
}
const ingest = (tenant, rows) => call('POST', '/v0/events?name=analytics_events', { body: rows.join('\n'), token: w.token(tenant) });
const days = (tenant) => w.d1(`SELECT day, version, sealed, visits FROM segment_days WHERE tenant_id = '${tenant}' ORDER BY day`);
const count = (sql) => w.d1(sql)[0].n;
const cron = async () => {
  const fired = await w.fetch(`/__scheduled?cron=${encodeURIComponent('17 * * * *')}`);
  assert.equal(fired.status, 200, fired.body);
};

test('the hourly cron seals closed days, a late event makes a day stale until the next run, erasure removes them', async () => {
  const created = await call('POST', '/v0/admin/tenants', { body: { tenant_id: 'segco', plan: 'pro' } });
  assert.equal(created.status, 201, created.text);
  const d3 = startOfToday() - 3 * DAY_MS + 3_600_000;
  const d2 = startOfToday() - 2 * DAY_MS + 7_200_000;
  const sent = await ingest('segco', [
    row({ session: 'a', path: '/a', ts: d3 }),
    row({ session: 'a', path: '/b', ts: d3 + 60_000 }),
    row({ session: 'b', path: '/c', ts: d3 + 120_000 }),
    row({ session: 'c', path: '/d', ts: d2 }),
    row({ session: 'now', path: '/now', ts: Date.now() - 60_000 }),
  ]);
  assert.equal(sent.status, 202, sent.text);
  assert.equal((await ingest('segother', [row({ session: 'o', path: '/o', ts: d3 })])).status, 202);
  await w.until(() => count("SELECT count(*) AS n FROM sessions WHERE tenant_id IN ('segco', 'segother')") === 5, {
    what: 'fixtures rolled up',
  });

  await cron();
  const day3 = Math.floor(d3 / DAY_MS) * 86_400;
  const day2 = Math.floor(d2 / DAY_MS) * 86_400;
  await w.until(() => days('segco').length === 2 && days('segco').every((d) => d.sealed === d.version), {
    what: 'two closed days sealed',
  });
  assert.deepEqual(
    days('segco').map((d) => [d.day, d.visits]),
    [
      [day3, 2],
      [day2, 1],
    ],
    'today and yesterday are not closed; three days ago had two visits',
  );
  assert.deepEqual(w.r2Keys('segments/segco/'), [`segments/segco/${dayOf(d3)}/visits`, `segments/segco/${dayOf(d2)}/visits`]);
  assert.deepEqual(w.r2Keys('segments/segother/'), [`segments/segother/${dayOf(d3)}/visits`]);

  // A late page of visit `a` (same session, same day): its rows change, the day is stale.
  assert.equal((await ingest('segco', [row({ session: 'a', path: '/late', ts: d3 + 180_000 })])).status, 202);
  await w.until(() => days('segco')[0].version > days('segco')[0].sealed, { what: 'the late event marks the day stale' });
  assert.equal(days('segco')[1].sealed, days('segco')[1].version, 'the other day stays current');
  await cron();
  await w.until(() => days('segco').every((d) => d.sealed === d.version), { what: 'the next run seals it again' });

  const erased = await call('DELETE', '/v0/admin/tenants/segco');
  assert.equal(erased.status, 200, erased.text);
  assert.deepEqual(w.r2Keys('segments/segco/'), []);
  assert.deepEqual(days('segco'), []);
  assert.deepEqual(w.r2Keys('segments/segother/'), [`segments/segother/${dayOf(d3)}/visits`], 'the neighbour keeps its own');
});
