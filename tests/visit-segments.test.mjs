// Visit segments end to end (issue #11, copy mode) against the real local runtime: with
// SEGMENT_SEAL_DAYS_PER_RUN set, the hourly cron seals each closed UTC day of a tenant's visits into R2
// objects under `segments/{tenant}/{YYYY-MM-DD}/`, one per part of the day (SEGMENT_PART_VISITS=1 here:
// a day of n visits in n parts, each the visits of one range of visitor ids, some empty; a day of one
// visit keeps the key `visits`), and records them in `segment_days` and `segment_parts`; a late event
// of a sealed day makes it stale until the next run seals it again; erasure removes the objects and
// rows. With SEGMENT_READS=1 reads of the visit rows take the days every part of which is sealed from
// the segments and the other days from the visit rows, with the same answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './lib/worker.mjs';

let w;
before(async () => {
  w = await startWorker({
    fastQueues: true,
    extraArgs: ['--var', 'SEGMENT_SEAL_DAYS_PER_RUN:20', '--var', 'SEGMENT_READS:1', '--var', 'SEGMENT_PART_VISITS:1'],
  });
});
after(async () => {
  await w?.stop();
});

const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const DAY_MS = 86_400_000;
const dayOf = (ms) => new Date(ms).toISOString().slice(0, 10);
const startOfToday = () => Date.now() - (Date.now() % DAY_MS);
/**
 * A fixture time `minutes` into a day: 01:00 UTC `daysAgo` days ago; today, 50 minutes ago or midnight if
 * later (today's 01:00 is in the future until 01:00, and an event over an hour ahead is refused: the
 * fixtures failed from 00:00 to about 01:06 UTC).
 */
const at = (daysAgo, minutes) =>
  (daysAgo ? startOfToday() - daysAgo * DAY_MS + 3_600_000 : Math.max(startOfToday(), Date.now() - 50 * 60_000)) + minutes * 60_000;

const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';

function row({ session, path, ts, ua = UA, referrer = '' }) {
  return JSON.stringify({
    timestamp: new Date(ts).toISOString(),
    action: 'page_hit',
    version: '1',
    session_id: session,
    tenant_id: 'ignored',
    domain: 'site.example',
    payload: JSON.stringify({ 'user-agent': ua, locale: 'en-US', referrer, pathname: path, href: `https://site.example${path}` }),
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
// Per registered day: its version, part count, the oldest version its parts hold (-1 unless every part
// of the count is recorded) and their visits.
const days = (tenant) =>
  w.d1(`SELECT s.day AS day, s.version AS version, s.parts AS parts,
    CASE WHEN (SELECT count(*) FROM segment_parts p WHERE p.tenant_id = s.tenant_id AND p.day = s.day AND p.parts = s.parts) = s.parts
      THEN (SELECT min(p.sealed) FROM segment_parts p WHERE p.tenant_id = s.tenant_id AND p.day = s.day AND p.parts = s.parts)
      ELSE -1 END AS sealed,
    (SELECT coalesce(sum(p.visits), 0) FROM segment_parts p WHERE p.tenant_id = s.tenant_id AND p.day = s.day AND p.parts = s.parts) AS visits
    FROM segment_days s WHERE s.tenant_id = '${tenant}' ORDER BY s.day`);
const count = (sql) => w.d1(sql)[0].n;
// The one-filter cells targets (`segment::cells::TARGETS`): each day has an object per target.
const TARGETS = [
  'domain',
  'source',
  'utm_source',
  'utm_medium',
  'utm_campaign',
  'browser',
  'os',
  'device',
  'country',
  'entry_path',
  'exit_path',
  'page',
];
// The cells keys a tenant's segment objects call for once its days are sealed: one `…/cells-{target}`
// per day folder (a day of several parts: the parts' cells `…/cells-{target}-{part}-of-{parts}` merged
// into it and deleted), and the ones it has.
const cellKeys = (tenant) => {
  const keys = w.r2Keys(`segments/${tenant}/`);
  const folders = [...new Set(keys.filter((k) => !k.includes('/cells-')).map((k) => k.slice(0, k.lastIndexOf('/'))))];
  return {
    expected: folders.flatMap((f) => TARGETS.map((t) => `${f}/cells-${t}`)).sort(),
    got: keys.filter((k) => k.includes('/cells-')).sort(),
  };
};
// Waits until the tenant's cells are one object per day and target (the parts' cells are deleted after
// the last part's version is recorded), then returns its segment objects.
const segmentKeys = async (tenant) => {
  await w.until(
    () => {
      const { expected, got } = cellKeys(tenant);
      return JSON.stringify(expected) === JSON.stringify(got);
    },
    { what: `${tenant}: one cells object per day and target, ${JSON.stringify(cellKeys(tenant))}` },
  );
  return w.r2Keys(`segments/${tenant}/`).filter((k) => !k.includes('/cells-'));
};
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
    days('segco').map((d) => [d.day, d.visits, d.parts]),
    [
      [day3, 2, 2],
      [day2, 1, 1],
    ],
    'today is not closed; three days ago had two visits (two parts), two days ago one (one part)',
  );
  assert.deepEqual(await segmentKeys('segco'), [
    `segments/segco/${dayOf(d3)}/visits-0-of-2`,
    `segments/segco/${dayOf(d3)}/visits-1-of-2`,
    `segments/segco/${dayOf(d2)}/visits`,
  ]);
  assert.deepEqual(await segmentKeys('segother'), [`segments/segother/${dayOf(d3)}/visits`]);

  // A late page of visit `a` (same session, same day): its rows change, the day is stale.
  assert.equal((await ingest('segco', [row({ session: 'a', path: '/late', ts: d3 + 180_000 })])).status, 202);
  await w.until(() => days('segco')[0].version > days('segco')[0].sealed, { what: 'the late event marks the day stale' });
  assert.equal(days('segco')[1].sealed, days('segco')[1].version, 'the other day stays current');
  await cron();
  await w.until(() => days('segco').every((d) => d.sealed === d.version), { what: 'the next run seals it again' });
  assert.equal((await segmentKeys('segco')).length, 3, 'its parts sealed again, their cells merged again');

  const erased = await call('DELETE', '/v0/admin/tenants/segco');
  assert.equal(erased.status, 200, erased.text);
  assert.deepEqual(w.r2Keys('segments/segco/'), []);
  assert.deepEqual(days('segco'), []);
  assert.equal(count("SELECT count(*) AS n FROM segment_parts WHERE tenant_id = 'segco'"), 0);
  assert.deepEqual(await segmentKeys('segother'), [`segments/segother/${dayOf(d3)}/visits`], 'the neighbour keeps its own');
  assert.equal(w.r2Keys('segments/segother/').length, 1 + TARGETS.length, 'its cells too');
});

test('a filtered top list reads sealed days from segments and the rest from SQL, with the same answer', async () => {
  const t = 'segread';
  const rows = [];
  const refs = ['', 'https://news.ycombinator.com/', 'https://www.google.com/', 'https://t.co/x'];
  let n = 0;
  for (const daysAgo of [4, 3, 2, 0]) {
    for (let i = 0; i < 6; i++) {
      const s = `${daysAgo}-${i}`;
      const ua = i % 3 === 2 ? FIREFOX : UA;
      const referrer = refs[(i + daysAgo) % refs.length];
      rows.push(row({ session: s, path: '/', ts: at(daysAgo, i), ua, referrer }));
      if (i % 2 === 0) rows.push(row({ session: s, path: '/pricing', ts: at(daysAgo, i) + 30_000, ua, referrer }));
      n++;
    }
  }
  assert.equal((await ingest(t, rows)).status, 202);
  await w.until(() => count(`SELECT count(*) AS n FROM sessions WHERE tenant_id = '${t}'`) === n, { what: 'fixtures' });
  const reader = w.token(t, 'read');
  const top = async (limit) => {
    const r = await w.fetch(
      `/v0/pipes/top_sources.json?date_from=${dayOf(at(5, 0))}&date_to=${dayOf(Date.now())}&browser=chrome&limit=${limit}`,
      { headers: { Authorization: `Bearer ${reader}` } },
    );
    assert.equal(r.status, 200, r.body);
    return {
      data: JSON.parse(r.body).data,
      path: r.headers.get('x-query-path'),
      days: r.headers.get('x-segment-days'),
      cellDays: r.headers.get('x-segment-cell-days'),
      dayCellDays: r.headers.get('x-segment-day-cell-days'),
    };
  };
  // Other top lists with one filter (each a distinct range start, so every call is a cache miss):
  // pages (their own grouping), a page filter (the viewed-page cells), campaigns (empty campaign
  // left out), and a two-filter list that cells do not answer.
  const lists = [
    ['top_pages', 'browser=chrome'],
    ['top_os', 'pathname=/pricing'],
    ['entry_pages', 'source=news.ycombinator.com'],
    ['top_campaigns', 'browser=chrome'],
    ['top_locations', 'browser=chrome&pathname=/pricing'],
  ];
  const list = async ([name, filter], back) => {
    const r = await w.fetch(`/v0/pipes/${name}.json?date_from=${dayOf(at(back, 0))}&date_to=${dayOf(Date.now())}&${filter}`, {
      headers: { Authorization: `Bearer ${reader}` },
    });
    assert.equal(r.status, 200, r.body);
    return {
      data: JSON.parse(r.body).data,
      days: r.headers.get('x-segment-days'),
      cellDays: r.headers.get('x-segment-cell-days'),
      dayCellDays: r.headers.get('x-segment-day-cell-days'),
    };
  };
  const listsBefore = [];
  for (const l of lists) listsBefore.push(await list(l, 6));
  const before = await top(1000);
  assert.equal(before.days, '0', 'nothing sealed yet: all from SQL');
  assert.equal(before.path, 'visits', 'no day from segments: the path is the visit rows');
  assert.equal(
    before.data.reduce((a, r) => a + r.visits, 0),
    16,
    'the chrome visits of the range (four of six a day, four days)',
  );
  await cron();
  await w.until(() => days(t).length === 3 && days(t).every((d) => d.sealed === d.version), { what: 'three days sealed' });
  assert.deepEqual(
    days(t).map((d) => d.parts),
    [6, 6, 6],
    'six visits a day, one a part',
  );
  assert.equal((await segmentKeys(t)).length, 18, 'six parts a day, their cells merged into one object per day and target');
  const after = await top(999);
  assert.equal(after.path, 'segments');
  assert.equal(after.days, '3', 'three sealed days from segments, today from SQL');
  assert.equal(after.cellDays, '3', 'one filter: the three sealed days from their cells');
  assert.equal(after.dayCellDays, '3', 'each from its day cells (one object, not six)');
  assert.deepEqual(after.data, before.data);
  for (const [i, l] of lists.entries()) {
    const got = await list(l, 7);
    assert.equal(got.days, '3', l.join('?'));
    // Two filters: no cells; top_pages: the last sealed day's pages all precede the window's end
    // (today), so all three from cells too.
    assert.equal(got.cellDays, l[1].includes('&') ? '0' : '3', l.join('?'));
    assert.equal(got.dayCellDays, got.cellDays, `${l.join('?')}: from the day cells`);
    assert.deepEqual(got.data, listsBefore[i].data, l.join('?'));
    assert.ok(got.data.length > 0 || l[0] === 'top_campaigns', `${l.join('?')} has rows`);
  }
  // A late chrome visit on a sealed day: that day is stale, read from SQL, and the answer counts it.
  assert.equal((await ingest(t, [row({ session: 'late', path: '/', ts: at(3, 30) })])).status, 202);
  await w.until(() => days(t).some((d) => d.version > d.sealed), { what: 'stale day' });
  const late = await top(998);
  assert.equal(late.days, '2');
  assert.equal(
    late.data.reduce((a, r) => a + r.visits, 0),
    17,
  );
});

test('filtered kpis, kpis_summary and a /v0/query read sealed days from segments with the SQL answer, for their tenant only', async () => {
  const t = 'segkq';
  const neighbour = 'segkqn';
  const refs = ['', 'https://news.ycombinator.com/', 'https://www.google.com/', 'https://t.co/x'];
  const rows = [];
  const other = [];
  for (const daysAgo of [4, 3, 2, 0]) {
    for (let i = 0; i < 6; i++) {
      const s = `${daysAgo}-${i}`;
      const ua = i % 3 === 2 ? FIREFOX : UA;
      const referrer = refs[(i + daysAgo) % refs.length];
      rows.push(row({ session: s, path: '/', ts: at(daysAgo, i), ua, referrer }));
      if (i % 2 === 0) rows.push(row({ session: s, path: '/pricing', ts: at(daysAgo, i) + 30_000 + i * 1000, ua, referrer }));
      // The neighbour: chrome visits of /pricing on the same days (they must never count).
      other.push(row({ session: s, path: '/pricing', ts: at(daysAgo, i) }));
    }
  }
  assert.equal((await ingest(t, rows)).status, 202);
  assert.equal((await ingest(neighbour, other)).status, 202);
  await w.until(() => count(`SELECT count(*) AS n FROM sessions WHERE tenant_id IN ('${t}', '${neighbour}')`) === 48, {
    what: 'fixtures',
  });
  const reader = w.token(t, 'read');
  const to = dayOf(Date.now());
  // A distinct first date (days without visits) per call: every request is a cache miss.
  const pipe = async (name, daysBack) => {
    const r = await w.fetch(`/v0/pipes/${name}.json?date_from=${dayOf(at(daysBack, 0))}&date_to=${to}&browser=chrome&pathname=/pricing`, {
      headers: { Authorization: `Bearer ${reader}` },
    });
    assert.equal(r.status, 200, r.body);
    return { data: JSON.parse(r.body).data, path: r.headers.get('x-query-path'), days: r.headers.get('x-segment-days') };
  };
  const query = async (limit) => {
    const r = await w.post(
      '/v0/query',
      JSON.stringify({
        metrics: ['visitors', 'visits', 'pageviews', 'bounce_rate', 'visit_duration'],
        date_range: [dayOf(at(5, 0)), to],
        dimensions: ['visit:source'],
        filters: [
          ['is', 'visit:browser', ['chrome']],
          ['contains', 'event:page', ['/pri']],
        ],
        pagination: { limit },
      }),
      { token: reader },
    );
    assert.equal(r.status, 200, r.text);
    return { results: r.json.results, path: r.headers.get('x-query-path'), days: r.headers.get('x-segment-days') };
  };
  const sql = {
    kpis: await pipe('kpis', 6),
    summary: await pipe('kpis_summary', 6),
    query: await query(100),
  };
  for (const [name, a] of Object.entries(sql)) {
    // Routed (X-Segment-Days is set only on the segment route), but nothing is sealed yet: the answer
    // came from the visit rows alone, and the path says so.
    assert.equal(a.days, '0', `${name} takes the segment route: nothing sealed yet, all from SQL`);
    assert.equal(a.path, 'visits', `${name}: no day from segments`);
  }
  // Chrome visits that viewed /pricing: i = 0 and 4 of each of the four days; this tenant's only.
  assert.equal(sql.summary.data[0].visits, 8, JSON.stringify(sql.summary.data));
  assert.equal(
    sql.kpis.data.reduce((a, r) => a + r.visits, 0),
    8,
  );
  assert.equal(
    sql.query.results.reduce((a, r) => a + r.metrics[1], 0),
    8,
  );

  await cron();
  await w.until(() => days(t).length === 3 && days(t).every((d) => d.sealed === d.version), { what: 'three days sealed' });
  await w.until(() => days(neighbour).length === 3, { what: "the neighbour's days sealed too" });
  const seg = {
    kpis: await pipe('kpis', 7),
    summary: await pipe('kpis_summary', 7),
    query: await query(99),
  };
  for (const [name, a] of Object.entries(seg)) {
    assert.equal(a.path, 'segments', name);
    assert.equal(a.days, '3', `${name}: three sealed days from segments, today from SQL`);
  }
  // The same numbers; kpis' rows differ only in the extra (empty) first day.
  assert.deepEqual(seg.kpis.data.slice(1), sql.kpis.data);
  assert.equal(seg.kpis.data[0].visits, 0);
  assert.deepEqual(
    seg.summary.data.map(({ date, ...m }) => m),
    sql.summary.data.map(({ date, ...m }) => m),
  );
  assert.deepEqual(seg.query.results, sql.query.results);
});
