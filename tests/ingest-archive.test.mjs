// The R2 archive written by the queue consumer: one object per delivery (per tenant and hour), rows
// tagged with their batch id, and exactly once in rebuilds and exports when a delivery's grouped
// transaction fails and its batches are applied one by one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './lib/worker.mjs';

const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const today = () => new Date().toISOString().slice(0, 10);

function rows(tenant, n, offset) {
  const now = new Date().toISOString();
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      timestamp: now,
      action: 'page_hit',
      version: '1',
      session_id: `a-${(offset + i) % 7}`,
      tenant_id: tenant,
      domain: 'arch.example',
      payload: JSON.stringify({
        'user-agent': UA,
        locale: 'en-US',
        pathname: `/p/${(offset + i) % 5}`,
        href: `https://arch.example/p/${(offset + i) % 5}`,
      }),
    }),
  ).join('\n');
}

async function usage(w, tenant) {
  const r = await w.fetch(`/v0/usage.json?date_from=${today()}&date_to=${today()}`, {
    headers: { Authorization: `Bearer ${w.token(tenant, 'read')}` },
  });
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body).totals;
}

/**
 * Posts `requests` batches of `n` rows back to back (one queue delivery: its batch timeout is 2 s). Both
 * tests run wrangler.toml's own batch timeout, not the tests' short one: with 0.5 s the four requests came
 * in two deliveries under load, and the fallback test needs several batches in one delivery.
 */
async function postBatches(w, tenant, requests, n, extra = '') {
  for (let i = 0; i < requests; i++) {
    const body = rows(tenant, n, i * n) + (i === 0 && extra ? `\n${extra}` : '');
    const r = await w.post('/v0/events?name=analytics_events', body, { token: w.token(tenant) });
    assert.equal(r.status, 202, r.text);
  }
}

const deliveries = (w) =>
  w
    .logs()
    .split('\n')
    .filter((l) => l.includes('"kind":"queue_delivery"') && !l.includes('"events":0'));

test('a delivery writes one archive object (one tenant, one hour), read back whole by export', async () => {
  const w = await startWorker();
  try {
    await postBatches(w, 'onedel', 4, 50);
    await w.until(async () => (await usage(w, 'onedel')).events_accepted >= 200, { what: '200 events applied' });
    // The delivery's log line is written after its transaction commits: it can trail the usage.
    await w.until(() => deliveries(w).length >= 1, { what: 'the delivery log line' });
    const objects = w.r2Keys('events/onedel/');
    const n = deliveries(w).length;
    assert.ok(n >= 1 && n < 4, `the 4 requests came in ${n} deliveries`);
    assert.equal(objects.length, n, `one object per delivery: ${objects.join(', ')}`);
    const exported = await w.admin(`/v0/admin/export?tenant_id=onedel&date_from=${today()}&date_to=${today()}`, { method: 'GET' });
    assert.equal(exported.status, 200, exported.text);
    assert.equal(exported.text.split('\n').filter(Boolean).length, 200);
  } finally {
    await w.stop();
  }
});

test('when a delivery falls back to per-message processing, archive, usage, rebuild and export count each event once', async () => {
  const w = await startWorker({ extraArgs: ['--var', 'FAULT_GROUP_COMMIT:1'] });
  try {
    const tenant = 'fallback';
    await postBatches(w, tenant, 4, 50, '{"not json');
    const u = await w.until(
      async () => {
        const t = await usage(w, tenant);
        return t.events_accepted >= 200 ? t : null;
      },
      { what: '200 events applied', timeoutMs: 60_000 },
    );
    assert.match(w.logs(), /"kind":"queue_group_fallback"/, 'the grouped transaction failed and the fallback ran');
    // The failed group's object and each batch's own object are both in R2: the copies are real.
    const objects = w.r2Keys(`events/${tenant}/`);
    assert.ok(objects.length >= 5, `group object plus one per batch: ${objects.join(', ')}`);
    assert.ok(
      objects.some((k) => /-g[2-9]\d*\.ndjson$/.test(k)),
      `a group object: ${objects.join(', ')}`,
    );
    // Usage is metered in the rollups' transaction: once, whatever redelivery comes later.
    await new Promise((r) => setTimeout(r, 3000));
    const again = await usage(w, tenant);
    assert.equal(again.events_accepted, 200);
    assert.equal(again.events_quarantined, 1);
    assert.equal(u.events_accepted, 200);
    const kpis = async () =>
      JSON.parse(
        (
          await w.fetch(`/v0/pipes/kpis_summary.json?date_from=${today()}&date_to=${today()}`, {
            headers: { Authorization: `Bearer ${w.token(tenant, 'read')}` },
          })
        ).body,
      ).data[0];
    const before = await kpis();
    assert.equal(before.pageviews, 200);
    // Rebuilt from the archive: the duplicated batches are read once.
    assert.equal((await w.admin(`/v0/admin/rebuild/reset?tenant_id=${tenant}&date_from=${today()}&date_to=${today()}`)).status, 200);
    const day = await w.admin(`/v0/admin/rebuild/day?tenant_id=${tenant}&day=${today()}`);
    assert.equal(day.status, 200, day.text);
    assert.equal(day.json.events, 200);
    assert.deepEqual(await kpis(), before);
    const exported = await w.admin(`/v0/admin/export?tenant_id=${tenant}&date_from=${today()}&date_to=${today()}`, { method: 'GET' });
    assert.equal(exported.status, 200, exported.text);
    const lines = exported.text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 200);
  } finally {
    await w.stop();
  }
});
