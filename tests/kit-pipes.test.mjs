// The kit's traffic_by_hour and analytics_hits through the real runtime: events ingested with known
// times, then both pipes compared with what this file computes from the events it sent, in UTC and in
// two other zones, filtered and not; another tenant sees nothing of the first one's hits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './lib/worker.mjs';

const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const utcDate = (ms) => new Date(ms).toISOString().slice(0, 10);

/** `YYYY-MM-DD` and hour/minute of `ms` in `zone`, from the runtime's Intl (independent of the worker). */
function local(ms, zone) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
    })
      .formatToParts(new Date(ms))
      .map((p) => [p.type, p.value]),
  );
  return { date: `${parts.year}-${parts.month}-${parts.day}`, hour: Number(parts.hour), minute: Number(parts.minute) };
}

/**
 * Sessions of one tenant: `{id, hits: [{ts, path}], ua}`. Recent ones in the last 20 hours, old ones
 * three days ago; every session's hits within a few minutes.
 */
function sessions(tenant, now, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const old = i % 4 === 0;
    const start = old ? now - 3 * DAY - ((i * 7919) % (20 * 60)) * 60_000 : now - 60_000 - ((i * 104_729) % (20 * 60)) * 60_000;
    const hits = Array.from({ length: 1 + (i % 3) }, (_, h) => ({
      ts: start + h * 45_000 + i,
      path: h === 1 && i % 5 === 0 ? '/special/offer' : `/p${(i + h) % 4}`,
    }));
    out.push({ id: `${tenant}-s${i}`, hits, ua: i % 3 === 0 ? FIREFOX : CHROME });
  }
  return out;
}

function body(tenant, list) {
  return list
    .flatMap((s) =>
      s.hits.map((h) =>
        JSON.stringify({
          timestamp: new Date(h.ts).toISOString(),
          action: 'page_hit',
          version: '1',
          session_id: s.id,
          tenant_id: tenant,
          domain: 'kit.example',
          payload: JSON.stringify({
            'user-agent': s.ua,
            locale: 'en-US',
            pathname: h.path,
            href: `https://www.kit.example${h.path}`,
            referrer: 'https://news.example/item?id=1',
          }),
        }),
      ),
    )
    .join('\n');
}

/** The oracle: visits and pageviews per local hour of the sessions starting in `from..to` (local). */
function byHour(list, zone, from, to, keep = () => true) {
  const hours = Array.from({ length: 24 }, (_, hour) => ({ hour, visits: 0, pageviews: 0 }));
  for (const s of list.filter(keep)) {
    const first = Math.min(...s.hits.map((h) => h.ts));
    // The UTC hour holding the first hit, at local time, rounded up to a whole hour (README, "Time zones").
    const hourStart = first - (first % HOUR);
    const l = local(hourStart, zone);
    const roundedUp = l.minute > 0 ? local(hourStart + (60 - l.minute) * 60_000, zone) : l;
    const dayOfVisit = l.minute > 0 ? roundedUp.date : l.date;
    if (dayOfVisit < from || dayOfVisit > to) continue;
    hours[roundedUp.hour].visits += 1;
    hours[roundedUp.hour].pageviews += s.hits.length;
  }
  return hours;
}

test('traffic_by_hour and analytics_hits agree with the events sent, and stay within their tenant', async () => {
  const w = await startWorker({ fastQueues: true, shared: true });
  try {
    const now = Date.now();
    const a = sessions('kita', now, 60);
    const b = sessions('kitb', now, 6);
    for (const [tenant, list] of [
      ['kita', a],
      ['kitb', b],
    ]) {
      const r = await w.post('/v0/events?name=analytics_events', body(tenant, list), { token: w.token(tenant) });
      assert.equal(r.status, 202, r.text);
    }
    const get = async (tenant, pipe, params, token = w.token(tenant, 'read')) => {
      const r = await w.fetch(`/v0/pipes/${pipe}.json?${new URLSearchParams(params)}`, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(r.status, 200, `${pipe} ${JSON.stringify(params)}: ${r.body}`);
      return { json: JSON.parse(r.body), text: r.body, path: r.headers.get('x-query-path') };
    };
    const pageviews = (l) => l.reduce((n, s) => n + s.hits.length, 0);
    const wide = { date_from: utcDate(now - 5 * DAY), date_to: utcDate(now + DAY) };
    // Usage is metered in the rollups' transaction (and is not cached): applied when it counts them all.
    for (const [tenant, list] of [
      ['kita', a],
      ['kitb', b],
    ]) {
      await w.until(
        async () => {
          const u = await w.fetch(`/v0/usage.json?${new URLSearchParams(wide)}`, {
            headers: { Authorization: `Bearer ${w.token(tenant, 'read')}` },
          });
          return u.status === 200 && JSON.parse(u.body).totals.events_accepted === pageviews(list);
        },
        { what: `${tenant}'s ${pageviews(list)} hits applied`, timeoutMs: 60_000 },
      );
    }

    // traffic_by_hour: unfiltered in three zones over a range holding every visit, and over today only.
    for (const zone of ['UTC', 'Europe/Madrid', 'Asia/Kolkata']) {
      const today = local(now, zone).date;
      for (const from of [local(now - 5 * DAY, zone).date, today]) {
        const { json, path } = await get('kita', 'traffic_by_hour', { date_from: from, date_to: today, timezone: zone });
        assert.deepEqual(json.data, byHour(a, zone, from, today), `${zone} ${from}..${today}`);
        assert.equal(path, 'rollups');
        assert.deepEqual(
          json.meta.map((c) => `${c.name}:${c.type}`),
          ['hour:UInt8', 'visits:UInt64', 'pageviews:UInt64'],
        );
      }
    }
    const all = byHour(a, 'UTC', '0000', '9999');
    assert.ok(all.filter((h) => h.visits > 0).length >= 10, 'visits in many hours');
    assert.equal(
      all.reduce((n, h) => n + h.visits, 0),
      a.length,
    );

    // One filter: the hourly rollup for the recent days, the visit scan for older ones; two filters: visits.
    const isFirefox = (s) => s.ua === FIREFOX;
    const yesterday = utcDate(now - DAY);
    const today = utcDate(now);
    let r = await get('kita', 'traffic_by_hour', { date_from: yesterday, date_to: today, browser: 'firefox' });
    assert.deepEqual(r.json.data, byHour(a, 'UTC', yesterday, today, isFirefox));
    assert.equal(r.path, 'rollups');
    r = await get('kita', 'traffic_by_hour', { ...wide, browser: 'firefox' });
    assert.deepEqual(r.json.data, byHour(a, 'UTC', wide.date_from, wide.date_to, isFirefox));
    assert.equal(r.path, 'visits');
    const special = (s) => isFirefox(s) && s.hits.some((h) => h.path === '/special/offer');
    r = await get('kita', 'traffic_by_hour', { ...wide, browser: 'firefox', pathname: '/special/offer' });
    assert.deepEqual(r.json.data, byHour(a, 'UTC', wide.date_from, wide.date_to, special));
    assert.equal(r.path, 'visits');

    // analytics_hits: every recent hit of the tenant, newest first, paged; like_filter on the payload.
    const recent = a
      .flatMap((s) => s.hits.map((h) => ({ ...h, session: s.id, ua: s.ua })))
      .filter((h) => h.ts >= Date.parse(`${yesterday}T00:00:00Z`))
      .sort((x, y) => y.ts - x.ts);
    const id = (row) => `${row.timestamp} ${row.session_id} ${row.pathname}`;
    const want = (hits) => hits.map((h) => `${new Date(h.ts).toISOString().slice(0, 19).replace('T', ' ')} ${h.session} ${h.path}`);
    const pages = async (params) => {
      const rows = [];
      for (let page = 0; ; page++) {
        const { json, text, path } = await get('kita', 'analytics_hits', {
          from_date: yesterday,
          to_date: today,
          limit: '7',
          page: String(page),
          ...params,
        });
        assert.equal(path, 'archive');
        assert.ok(!/Mozilla|user-agent|127\.0\.0\.1/i.test(text), 'no user agent or IP in the hits');
        rows.push(...json.data);
        if (json.data.length < 7) return rows;
      }
    };
    const hits = await pages({});
    assert.deepEqual(hits.map(id), want(recent));
    const first = hits[0];
    assert.equal(first.tenant_id, 'kita');
    assert.equal(first.domain, 'kit.example');
    assert.equal(first.current_domain, 'kit.example');
    assert.equal(first.action, 'page_hit');
    assert.equal(first.device, 'desktop');
    assert.equal(first.browser, recent[0].ua === FIREFOX ? 'firefox' : 'chrome');
    assert.match(first.referrer, /^https:\/\/news\.example\/item/);
    const liked = await pages({ like_filter: '%/special/%' });
    assert.deepEqual(liked.map(id), want(recent.filter((h) => h.path.startsWith('/special/'))));
    assert.ok(liked.length >= 2);
    const bad = await w.fetch('/v0/pipes/analytics_hits.json?limit=500', {
      headers: { Authorization: `Bearer ${w.token('kita', 'read')}` },
    });
    assert.equal(bad.status, 400);
    assert.match(JSON.parse(bad.body).error, /'limit'/);

    // Another tenant, even asking for the first one by parameter, sees only its own hits and visits.
    const other = await get('kitb', 'analytics_hits', { from_date: yesterday, to_date: today, limit: '100', tenant_id: 'kita' });
    assert.ok(other.json.data.length > 0);
    assert.ok(other.json.data.every((row) => row.tenant_id === 'kitb' && row.session_id.startsWith('kitb-')));
    const otherHours = await get('kitb', 'traffic_by_hour', { ...wide, tenant_id: 'kita' });
    assert.equal(
      otherHours.json.data.reduce((n, h) => n + h.visits, 0),
      b.length,
    );
    // Six visits: 24 rows all the same, zeros filled.
    assert.deepEqual(otherHours.json.data, byHour(b, 'UTC', wide.date_from, wide.date_to));
    assert.ok(otherHours.json.data.filter((h) => h.visits === 0).length >= 18);
  } finally {
    await w.stop();
  }
});
