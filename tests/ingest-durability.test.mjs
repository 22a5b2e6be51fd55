// Ingest under failure and abuse, against the real local runtime: a runtime killed mid-delivery, D1
// locked by another process, per-event plan quotas, distinct-value caps, the default plan.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { gzipSync } from 'node:zlib';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startWorker } from './lib/worker.mjs';

const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const today = () => new Date().toISOString().slice(0, 10);

function rows(tenant, n, { offset = 0, domain = 'dur.example', action = 'page_hit' } = {}) {
  const now = new Date().toISOString();
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      timestamp: now,
      action,
      version: '1',
      session_id: `s-${(offset + i) % 97}`,
      tenant_id: tenant,
      domain,
      payload: JSON.stringify({
        'user-agent': UA,
        locale: 'en-US',
        referrer: '',
        pathname: `/p/${(offset + i) % 13}`,
        href: `https://${domain}/p/${(offset + i) % 13}`,
      }),
    }),
  ).join('\n');
}

/**
 * Rows with a random property of `randomBytesPerRow` bytes (base64) each, so gzip cannot shrink them
 * to nothing. The consumer's cost is per row (each row is a page view of a visit), the body's cost per
 * byte: the 5 MB test uses large rows (about 1.6 KB gzip each), so its body is as large with a tenth
 * of the rows (it took 45 to 90 s with 32,000 rows of 160 random bytes, most of it applying them).
 */
function variedRows(tenant, n, randomBytesPerRow = 160) {
  const now = new Date().toISOString();
  const out = [];
  for (let i = 0; i < n; i++) {
    out.push(
      JSON.stringify({
        timestamp: now,
        action: 'page_hit',
        version: '1',
        session_id: `b-${i % 5000}`,
        tenant_id: tenant,
        domain: 'bulk.example',
        payload: JSON.stringify({
          'user-agent': UA,
          locale: 'en-US',
          pathname: `/p/${i % 500}`,
          href: `https://bulk.example/p/${i % 500}`,
          ref: randomBytes(randomBytesPerRow).toString('base64'),
        }),
      }),
    );
  }
  return `${out.join('\n')}\n`;
}

/** events_accepted / events_quarantined of a tenant today, from usage.json (metered in the rollups' transaction). */
async function usage(w, tenant) {
  const r = await w.fetch(`/v0/usage.json?date_from=${today()}&date_to=${today()}`, {
    headers: { Authorization: `Bearer ${w.token(tenant, 'read')}` },
  });
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body).totals;
}

/** Waits until `want` events of `tenant` are applied, firing the minute cron (the spool sweep) meanwhile. */
async function applied(w, tenant, want, timeoutMs = 90_000) {
  return w.until(
    async () => {
      await w.cron();
      const u = await usage(w, tenant);
      return u.events_accepted >= want ? u : null;
    },
    // Each check fires the sweep and calls the API: a slower poll than the default.
    { timeoutMs, what: `${want} applied events of ${tenant}`, intervalMs: 300 },
  );
}

// The tests with a runtime of their own and the group sharing one runtime run concurrently: most of their
// time is spent waiting on a runtime (queue batches, D1 held locked for 20 and 30 s, restarts).
describe('ingest under failure', { concurrency: true }, () => {
  test('a runtime killed mid-delivery loses nothing it accepted, and applies it exactly once', async () => {
    const w = await startWorker({ fastQueues: true, extraArgs: ['--var', 'SPOOL_SWEEP_AFTER_SECS:0'] });
    try {
      const tenant = 'restart';
      const token = w.token(tenant);
      let accepted = 0;
      let before = 0;
      // The kill must land while events are still unapplied: a consumer that kept up with the posting
      // (it can, on a quiet machine) gets another round of requests, at most three in all.
      for (let round = 0; round < 3 && before >= accepted; round++) {
        for (let i = 0; i < 12; i++) {
          const offset = (round * 12 + i) * 1000;
          const r = await w.post('/v0/events?name=analytics_events', rows(tenant, 1000, { offset }), { token });
          assert.equal(r.status, 202, r.text);
          accepted += r.json.successful_rows;
        }
        before = (await usage(w, tenant)).events_accepted;
      }
      await w.restart(); // SIGKILL: the local queue's messages and the delivery in progress die here
      assert.ok(before < accepted, `the restart should come before everything was applied (${before}/${accepted})`);
      const u = await applied(w, tenant, accepted);
      assert.equal(u.events_accepted, accepted);
      // Sweeping again and letting any late redelivery run changes nothing: exactly once.
      await new Promise((r) => setTimeout(r, 4000));
      await w.cron();
      assert.equal((await usage(w, tenant)).events_accepted, accepted);
      assert.deepEqual(w.r2Keys('spool/'), [], 'applied batches leave the spool');
      const k = await w.fetch(`/v0/pipes/kpis_summary.json?date_from=${today()}&date_to=${today()}`, {
        headers: { Authorization: `Bearer ${w.token(tenant, 'read')}` },
      });
      assert.equal(k.status, 200, k.body);
      assert.equal(JSON.parse(k.body).data[0].pageviews, accepted, 'the rollups count every accepted page view once');
    } finally {
      await w.stop();
    }
  });

  /** The local D1 database file of binding DB under the worker's persisted state. */
  function d1Files(dir) {
    const out = [];
    const walk = (d, inD1) => {
      for (const f of readdirSync(d)) {
        const p = join(d, f);
        const d1 = inD1 || /d1/i.test(f);
        if (statSync(p).isDirectory()) walk(p, d1);
        else if (d1 && f.endsWith('.sqlite')) out.push(p);
      }
    };
    walk(dir, false);
    return out;
  }

  /**
   * Holds an exclusive lock on each of `files` (local D1 databases) from another process for `seconds`,
   * or until its stdin is closed (`locker.stdin.end()`), as a D1 outage looks to the worker; resolves
   * once the lock is held, with the process (it exits when the lock is released).
   */
  async function lockD1(files, seconds) {
    const locker = spawn(
      'python3',
      [
        '-c',
        [
          'import select, sqlite3, sys',
          'cons = [sqlite3.connect(f, timeout=0, isolation_level=None) for f in sys.argv[2:]]',
          'for c in cons: c.execute("BEGIN EXCLUSIVE")',
          'print("locked", flush=True)',
          'select.select([sys.stdin], [], [], float(sys.argv[1]))',
          'for c in cons: c.execute("ROLLBACK")',
        ].join('\n'),
        String(seconds),
        ...files,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    await new Promise((r) => locker.stdout.once('data', r));
    return locker;
  }

  // The two D1-outage tests run wrangler.toml's own batch timeouts: with the tests' short ones, every
  // message posted during the outage became a delivery of its own that failed and was retried, and the
  // recovery took 68 s instead of about 3 (measured at load 15).
  test('ingest keeps accepting while D1 is locked by another process, and applies everything once D1 is back', async () => {
    const w = await startWorker({ extraArgs: ['--var', 'SPOOL_SWEEP_AFTER_SECS:0'] });
    try {
      const tenant = 'outage';
      const token = w.token(tenant);
      // Warm the isolate: it now knows the tenant's state and today's salt.
      const warm = await w.post('/v0/events?name=analytics_events', rows(tenant, 10), { token });
      assert.equal(warm.status, 202, warm.text);
      await applied(w, tenant, 10);
      // Hold an exclusive lock on every local D1 file for 20 s.
      const files = d1Files(w.dir);
      assert.ok(files.length > 0, 'found the local D1 files');
      const locker = await lockD1(files, 20);
      let accepted = 10;
      const statuses = [];
      const end = Date.now() + 12_000;
      let i = 0;
      while (Date.now() < end) {
        const r = await w.post('/v0/events?name=analytics_events', rows(tenant, 50, { offset: i++ * 50 }), { token });
        statuses.push(r.status);
        if (r.status === 202) accepted += r.json.successful_rows;
        await new Promise((res) => setTimeout(res, 500));
      }
      assert.ok(statuses.length >= 10, `posted ${statuses.length} requests during the outage`);
      assert.deepEqual([...new Set(statuses)], [202], `every request during the outage is accepted: ${statuses.join(',')}`);
      // The lock may have ended already (a slow machine posts for longer than 20 s): then 'exit' was emitted.
      await new Promise((r) => (locker.exitCode !== null || locker.signalCode !== null ? r() : locker.once('exit', r)));
      const u = await applied(w, tenant, accepted);
      assert.equal(u.events_accepted, accepted, 'each accepted event counted exactly once after recovery');
    } finally {
      await w.stop();
    }
  });

  test('a runtime started while D1 is locked accepts from the Cache API snapshot (tenant state, salt), then applies everything once', async () => {
    const w = await startWorker({ extraArgs: ['--var', 'SPOOL_SWEEP_AFTER_SECS:0'] });
    let locker;
    try {
      const tenant = 'coldoutage';
      const token = w.token(tenant);
      const warm = await w.post('/v0/events?name=analytics_events', rows(tenant, 10), { token });
      assert.equal(warm.status, 202, warm.text);
      await applied(w, tenant, 10);
      const files = d1Files(w.dir);
      // Held until released below: a restart slowed by a busy machine does not shorten the outage it meets.
      locker = await lockD1(files, 300);
      // A new runtime: nothing in memory, only what the Cache API (persisted locally) holds.
      await w.restart();
      const postingFrom = Date.now();
      let accepted = 10;
      const statuses = [];
      let i = 0;
      while (Date.now() - postingFrom < 20_000) {
        const r = await w.post('/v0/events?name=analytics_events', rows(tenant, 20, { offset: i++ * 20 }), { token });
        statuses.push(r.status);
        if (r.status === 202) accepted += r.json.successful_rows;
        await new Promise((res) => setTimeout(res, 500));
      }
      assert.ok(statuses.length >= 5, `posted ${statuses.length} requests to the new runtime during the outage`);
      assert.deepEqual([...new Set(statuses)], [202], `every request during the outage is accepted: ${statuses.join(',')}`);
      assert.match(
        w.logs(),
        /"kind":"tenant_state_stale"[^\n]*"source":"snapshot"|"source":"snapshot"[^\n]*"kind":"tenant_state_stale"/,
        'the tenant state came from the snapshot',
      );
      // D1 stays locked 6 s after the last request (the runtime retries meanwhile), then comes back.
      await new Promise((r) => setTimeout(r, Math.max(0, postingFrom + 26_000 - Date.now())));
      locker.stdin.end();
      await new Promise((r) => (locker.exitCode !== null ? r() : locker.once('exit', r)));
      const u = await applied(w, tenant, accepted);
      assert.equal(u.events_accepted, accepted, 'each accepted event counted exactly once after recovery');
    } finally {
      locker?.kill();
      await w.stop();
    }
  });

  /** The runtime the last two groups each start: the free plan with caps, spooled batches swept at once. */
  const cappedRuntime = () =>
    startWorker({
      fastQueues: true,
      keepDefaultPlan: true,
      extraArgs: [
        '--var',
        'SPOOL_SWEEP_AFTER_SECS:0',
        '--var',
        `PLAN_LIMITS:${JSON.stringify({ free: { events: 1500, domains: 2, actions: 3 } })}`,
      ],
    });

  describe('one runtime: the free plan with event, domain and action caps', { concurrency: 1 }, () => {
    let w;
    before(async () => {
      w = await cappedRuntime();
    });
    after(async () => {
      await w?.stop();
    });

    test('the events quota counts events, not requests: exactly the plan is accepted, then 429 with Retry-After', async () => {
      const tenant = 'evq'; // never registered: wrangler.toml's DEFAULT_PLAN, the free plan
      const token = w.token(tenant);
      const ok1 = await w.post('/v0/events?name=analytics_events', rows(tenant, 1000), { token });
      assert.equal(ok1.status, 202, ok1.text);
      // 600 more would pass the 1,500 of the hour: refused whole, nothing of it accepted.
      const over = await w.post('/v0/events?name=analytics_events', rows(tenant, 600), { token });
      assert.equal(over.status, 429, over.text);
      assert.match(over.json.error, /1500 events per hour and 500 are left/);
      assert.ok(Number(over.headers.get('retry-after')) >= 1);
      assert.equal(over.headers.get('ratelimit-limit'), '1500');
      const ok2 = await w.post('/v0/events?name=analytics_events', rows(tenant, 500), { token });
      assert.equal(ok2.status, 202, ok2.text);
      const none = await w.post('/v0/events?name=analytics_events', rows(tenant, 1), { token });
      assert.equal(none.status, 429);
      assert.equal(none.headers.get('ratelimit-remaining'), '0');
      const u = await applied(w, tenant, 1500);
      assert.equal(u.events_accepted, 1500);
      // The tenant's limiter object starts afresh after a restart (as after an eviction when idle for a few
      // seconds, or a deploy): it must still know the hour's events were taken.
      await w.restart();
      const after = await w.post('/v0/events?name=analytics_events', rows(tenant, 1), { token });
      assert.equal(after.status, 429, `after a restart the hour's quota started again: ${after.status} ${after.text}`);
      assert.equal((await applied(w, tenant, 1500)).events_accepted, 1500);
    });

    test("domains and action names beyond the plan's caps are quarantined, counted, and never reach domains.json", async () => {
      const tenant = 'capped';
      const token = w.token(tenant);
      const body = [
        rows(tenant, 3, { domain: 'one.example' }),
        rows(tenant, 3, { domain: 'two.example' }),
        rows(tenant, 4, { domain: 'three.example' }),
        rows(tenant, 2, { domain: 'one.example', action: 'signup' }),
        rows(tenant, 2, { domain: 'one.example', action: 'checkout' }),
        rows(tenant, 5, { domain: 'one.example', action: 'spam-1' }),
      ].join('\n');
      const r = await w.post('/v0/events?name=analytics_events', body, { token });
      assert.equal(r.status, 202, r.text);
      const u = await w.until(
        async () => {
          await w.cron();
          const t = await usage(w, tenant);
          return t.events_accepted + t.events_quarantined >= 19 ? t : null;
        },
        { what: 'the capped batch applied', intervalMs: 300 },
      );
      assert.equal(u.events_quarantined, 9, '4 rows of a third domain, 5 of a fourth action name');
      const d = await w.fetch('/v0/pipes/domains.json', { headers: { Authorization: `Bearer ${w.token(tenant, 'read')}` } });
      assert.equal(d.status, 200, d.body);
      assert.deepEqual(
        JSON.parse(d.body)
          .data.map((x) => x.domain)
          .sort(),
        ['one.example', 'two.example'],
      );
      const reasons = w.d1(
        `SELECT reason, sum(rows) AS n FROM quarantine_daily WHERE tenant_id = '${tenant}' GROUP BY reason ORDER BY reason`,
      );
      assert.deepEqual(
        reasons.map((x) => [x.reason, x.n]),
        [
          ['action_limit', 5],
          ['domain_limit', 4],
        ],
      );
    });
  });

  // Own runtime: a long delivery of the bulk body does not hold up the tests above.
  describe('one runtime: bulk bodies', { concurrency: 1 }, () => {
    let w;
    before(async () => {
      w = await cappedRuntime();
    });
    after(async () => {
      await w?.stop();
    });

    test("a 5 MB gzip NDJSON body (Tinybird's Events API accepts gzip up to 10 MB) is accepted whole and applied once", async () => {
      const created = await w.admin('/v0/admin/tenants', {
        body: JSON.stringify({ tenant_id: 'bulk', display_name: 'Bulk', plan: 'enterprise' }),
      });
      assert.equal(created.status, 201, created.text);
      let raw = '';
      let gz = Buffer.alloc(0);
      let n = 0;
      // Compressing the whole body after each chunk is quadratic: sum the chunks' own compressed sizes (gzip's
      // window is 32 KB, so they add up to about the whole's) and compress the whole once they pass 5 MB.
      let estimate = 0;
      while (gz.length < 5 * 1024 * 1024) {
        const chunk = variedRows('bulk', 400, 1600);
        raw += chunk;
        n += 400;
        estimate += gzipSync(chunk).length;
        if (estimate >= 5 * 1024 * 1024) gz = gzipSync(raw);
      }
      const r = await w.post('/v0/events?name=analytics_events', gz, {
        token: w.token('bulk'),
        headers: { 'Content-Encoding': 'gzip', 'Content-Type': 'application/x-ndjson' },
      });
      assert.ok(gz.length >= 5 * 1024 * 1024, `${gz.length} gzip bytes`);
      assert.equal(r.status, 202, r.text);
      assert.equal(r.json.successful_rows, n, `${n} rows in ${gz.length} gzip bytes`);
      const u = await applied(w, 'bulk', n, 180_000);
      assert.equal(u.events_accepted, n);
    });
  });

  // Its own runtime: sent right after the 5 MB test's sweep on the same runtime, all four attempts went
  // unanswered in one run (at load 17, 2026-12-07): the local runtime did not start the request.
  test('a chunked body past 10 MB is refused with 413 while it streams, without being read to its end', async () => {
    const w = await startWorker({ fastQueues: true, extraArgs: ['--var', 'SPOOL_SWEEP_AFTER_SECS:0'] });
    try {
      const url = new URL(`${w.base}/v0/events?name=analytics_events`);
      const token = w.token('bulk');
      const line = `${variedRows('bulk', 1)}`;
      const piece = Buffer.from(line.repeat(Math.ceil(65536 / line.length)));
      // One attempt: streams up to 60 MB and resolves with what came back. The local runtime was seen (1 run
      // in 4, when this test followed the 5 MB one on its runtime) never to start a request that arrived just
      // as a long queue delivery or sweep ended, while a request sent a moment later was answered; so an
      // attempt with nothing back in 25 s is abandoned (null) and sent once more (a refused request leaves
      // nothing behind, so a retry is harmless). A server that answers before it has read the body closes a
      // connection with unread bytes in it, which resets it: a client still writing may then lose the answer
      // (its kernel drops what it had not read yet), or keep only the status line. So the status is kept as
      // soon as the head arrives, and a reset is an outcome too, with the bytes written until then.
      const attempt = () =>
        new Promise((resolve, reject) => {
          let written = 0;
          let done = false;
          let head = null;
          const finish = (outcome) => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            req.destroy();
            resolve(outcome);
          };
          const req = httpRequest(
            url,
            { method: 'POST', agent: false, headers: { Authorization: `Bearer ${token}`, 'Transfer-Encoding': 'chunked' } },
            (res) => {
              head = { status: res.statusCode, written };
              const chunks = [];
              res.on('data', (c) => chunks.push(c));
              res.on('end', () => finish({ ...head, body: Buffer.concat(chunks).toString() }));
              res.on('error', () => finish({ ...head, body: null }));
            },
          );
          const timer = setTimeout(() => finish(null), 25_000); // answers took 4 to 8 s with other files alongside
          req.on('error', (e) => {
            if (!['ECONNRESET', 'EPIPE'].includes(e.code)) {
              done = true;
              clearTimeout(timer);
              reject(e);
            } else finish(head ? { ...head, body: null } : { reset: true, written });
          });
          const pump = () => {
            while (!done && written < 60 * 1024 * 1024) {
              written += piece.length;
              if (!req.write(piece)) {
                req.once('drain', pump);
                return;
              }
            }
            if (!done) req.end();
          };
          pump();
        });
      const outcomes = [];
      while (outcomes.length < 4 && !outcomes.some((o) => o?.status)) outcomes.push(await attempt());
      const answer = outcomes.find((o) => o?.status);
      const resets = outcomes.filter((o) => o?.reset);
      assert.ok(answer || resets.length, `no attempt was answered or refused: ${JSON.stringify(outcomes)}`);
      if (answer) {
        // The server answered while the body was still streaming, and answered 413.
        assert.equal(answer.status, 413, answer.body ?? '(body lost to the reset)');
        if (answer.body !== null) assert.match(JSON.parse(answer.body).error, /too large/);
        assert.ok(answer.written < 40 * 1024 * 1024, `the server answered after ${answer.written} bytes of a 60 MB body`);
      }
      // A server that read the whole body would not close the connection under a client still writing.
      for (const r of resets) assert.ok(r.written < 40 * 1024 * 1024, `the connection closed after ${r.written} bytes of a 60 MB body`);
      // Nothing of the refused request was accepted or left for the sweep.
      await w.cron();
      const parts = w.r2Keys('spool/').filter((k) => /-p\d+\.json$/.test(k));
      const commits = w.r2Keys('spool/').filter((k) => k.endsWith('.commit'));
      assert.equal(parts.length, 0, `parts left: ${parts.slice(0, 3)}`);
      assert.equal(commits.length, 0, `commit markers left: ${commits.slice(0, 3)}`);
    } finally {
      await w.stop();
    }
  });
});
