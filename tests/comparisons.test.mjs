// include.comparisons of POST /v0/query through the real worker: what the native oracle
// (core/tests/comparisons.rs) cannot see — the 400 bodies naming the field, the resolved dates in
// meta, the cache keeping modes apart, and a date-bound token refusing any comparison.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './lib/worker.mjs';
import { signJwt } from '../scripts/token.mjs';

let w;
before(async () => {
  w = await startWorker({ fastQueues: true, shared: true });
  const token = w.token('cmpe2e', 'tracker');
  const now = Date.now();
  for (let v = 0; v < 20; v++) {
    const r = await w.post(
      '/v0/events?name=analytics_events',
      JSON.stringify({
        timestamp: new Date(now - v * 5 * 3_600_000 - 60_000).toISOString(),
        action: 'page_hit',
        version: '1',
        session_id: `s${v}`,
        domain: 'cmpe2e.example',
        payload: JSON.stringify({
          'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
          pathname: '/',
          href: 'https://cmpe2e.example/',
        }),
      }),
      { token, headers: { 'CF-Connecting-IP': `203.0.113.${v + 1}` } },
    );
    assert.equal(r.status, 202, r.text);
  }
  await w.until(() => w.d1("SELECT count(*) AS n FROM sessions WHERE tenant_id = 'cmpe2e'")[0].n === 20, { what: 'sessions rolled up' });
});
after(async () => {
  await w?.stop();
});

const query = (body, token) => w.post('/v0/query', JSON.stringify(body), { token });
const day = (ms) => new Date(ms).toISOString().slice(0, 10);

test('custom and weekday-matched comparisons answer their dates; bad ones a 400 naming the field', async () => {
  const token = w.token('cmpe2e', 'read');
  const to = day(Date.now());
  const from = day(Date.now() - 2 * 86_400_000);
  const base = { metrics: ['visits'], date_range: [from, to], timezone: 'Asia/Kolkata' };
  const custom = await query({ ...base, include: { comparisons: { mode: 'custom', date_range: [from, to] } } }, token);
  assert.equal(custom.status, 200, custom.text);
  assert.deepEqual(custom.json.meta.comparison_date_range, [from, to]);
  assert.deepEqual(custom.json.results[0].comparison.metrics, custom.json.results[0].metrics, 'the same range compares equal');
  assert.deepEqual(custom.json.query.include.comparisons, { mode: 'custom', date_range: [from, to] });

  const plain = await query({ ...base, include: { comparisons: { mode: 'previous_period' } } }, token);
  const matched = await query({ ...base, include: { comparisons: { mode: 'previous_period', match_day_of_week: true } } }, token);
  // Three days: the plain previous period is the three days before; matched, the same weekdays a week earlier.
  const shift = (d, n) => day(Date.parse(`${d}T00:00:00Z`) + n * 86_400_000);
  assert.deepEqual(plain.json.meta.comparison_date_range, [shift(from, -3), shift(from, -1)]);
  assert.deepEqual(matched.json.meta.comparison_date_range, [shift(from, -7), shift(to, -7)]);
  // Different modes never share a cache entry.
  assert.notDeepEqual(plain.json.meta, matched.json.meta);

  for (const [comparisons, field] of [
    [{ mode: 'custom' }, 'include.comparisons.date_range'],
    [{ mode: 'custom', date_range: ['2025-13-01', to] }, 'include.comparisons.date_range[0]'],
    [{ mode: 'custom', date_range: [to, from] }, 'include.comparisons.date_range'],
    [{ mode: 'year_over_year', date_range: [from, to] }, 'include.comparisons.date_range'],
    [{ mode: 'previous_period', match_day_of_week: 'yes' }, 'include.comparisons.match_day_of_week'],
    [{ mode: 'weekly' }, 'include.comparisons.mode'],
  ]) {
    const r = await query({ ...base, include: { comparisons } }, token);
    assert.equal(r.status, 400, `${JSON.stringify(comparisons)}: ${r.text}`);
    assert.ok(r.json.error.startsWith(`invalid '${field}'`), `${JSON.stringify(comparisons)}: ${r.json.error}`);
  }

  // A token bound to dates refuses any comparison (it would read outside them).
  const secs = Math.floor(Date.now() / 1000);
  const dated = signJwt(
    {
      name: 'dated',
      iat: secs - 5,
      exp: secs + 600,
      scopes: [{ type: 'PIPES:READ', resource: '*', fixed_params: { tenant_id: 'cmpe2e', date_from: from, date_to: to } }],
    },
    w.signingKey,
  );
  const refused = await query({ ...base, include: { comparisons: { mode: 'custom', date_range: [from, to] } } }, dated);
  assert.equal(refused.status, 400, refused.text);
  assert.match(refused.json.error, /include\.comparisons/);
});
