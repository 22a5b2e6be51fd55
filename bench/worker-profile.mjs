// Where a request's CPU goes inside the worker: a V8 CPU profile of the worker's isolate under
// `wrangler dev`, taken through wrangler's DevTools inspector while requests are sent, summarised as self
// and total time per function (JavaScript glue, wasm functions, runtime builtins, idle).
//
//   node bench/worker-profile.mjs [--route health|beacon|batch|baseline|query] [--requests 2000] [--concurrency 8]
//                                 [--interval-us 100] [--top 40] [--out bench-output/worker-profile.cpuprofile]
//                                 [--var NAME:VALUE ...]   (a worker variable, e.g. LOG_LEVEL:warn)
//   node bench/worker-profile.mjs --route query --data DIR [--pipe kpis] [--tenant ID] [--filter browser=chrome]
//
// `--route query` runs on a bench/query.mjs data set (DIR holds meta.json and persist/; work on a copy:
// the runtime applies pending migrations to it) and asks `/v0/pipes/PIPE.json` of one tenant (the
// largest by default) for the data set's 30 days, every request a cache miss (the range widened by a
// few empty days, as bench/query.mjs does). The profiler itself slows `console.log` in this runtime
// about 2×: compare routes with each other and with `--route baseline` (the trivial worker of
// bench/ingest.mjs), not with unprofiled timings.
//
// The .cpuprofile file opens in Chrome DevTools (Performance panel, "Load profile").
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { groupCpuMs, startWorker } from '../tests/lib/worker.mjs';
import { ndjson } from './lib/events.mjs';

const opts = {
  route: 'health',
  requests: 2000,
  concurrency: 8,
  'interval-us': 100,
  top: 40,
  out: 'bench-output/worker-profile.cpuprofile',
  var: [],
  data: '',
  pipe: 'kpis',
  tenant: '',
  filter: '',
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const k = argv[i].replace(/^--/, '');
  if (k === 'help') {
    console.log(
      'node bench/worker-profile.mjs [--route health|beacon|batch|baseline|query] [--requests N] [--concurrency N] [--interval-us N] [--top N] [--out FILE]',
    );
    process.exit(0);
  }
  if (!(k in opts)) {
    console.error(`unknown option --${k}: run with --help`);
    process.exit(2);
  }
  if (Array.isArray(opts[k])) opts[k].push(argv[++i]);
  else opts[k] = typeof opts[k] === 'number' ? Number(argv[++i]) : argv[++i];
}

if (opts.route === 'query' && !opts.data) {
  console.error('--route query needs --data DIR (a bench/query.mjs data set: meta.json and persist/)');
  process.exit(2);
}
const meta = opts.route === 'query' ? JSON.parse(readFileSync(join(opts.data, 'meta.json'), 'utf8')) : null;
// Cache misses only: the Cache API's entries of earlier runs are dropped (the data set's D1 and R2 stay).
if (meta) rmSync(join(opts.data, 'persist/v3/cache'), { recursive: true, force: true });
const t0 = Date.now();
const here = dirname(fileURLToPath(import.meta.url));
// `--route baseline`: the trivial JavaScript worker of bench/ingest.mjs (bench/baseline/), profiled the same way.
// Starling with production's spool setting (as bench/ingest.mjs): a beacon goes inline in its queue message.
const w = await startWorker(
  opts.route === 'baseline'
    ? { config: `${here}/baseline/wrangler.toml` }
    : {
        extraArgs: ['SPOOL_INLINE_MAX_ROWS:100', ...opts.var].flatMap((v) => ['--var', v]),
        ...(opts.route === 'query' ? { persistTo: join(opts.data, 'persist') } : {}),
      },
);
let exitCode = 0;
try {
  const token = w.token('profile-tenant', 'tracker');
  // Query: day offsets (a, b) widen the range by empty days, so no two requests share a cache key.
  const DAY = 86400;
  const day = (d) => new Date(d * DAY * 1000).toISOString().slice(0, 10);
  const widen = [];
  // Up to 27 empty days before the data (bench/query.mjs widens by up to 27 in all) and up to 5 of its
  // last days left out, times the eight spellings of UTC (read alike, kept apart by the cache key):
  // 1,344 keys, asked in the same order by every run.
  for (let a = 0; a <= 27; a++)
    for (let c = 0; c <= 5; c++) for (const z of ['UTC', 'utc', 'Utc', 'uTC', 'UtC', 'uTc', 'utC', 'UTc']) widen.push([a, -c, z]);
  // A hit (a key asked earlier in the run) is asked again with the next key.
  let asked = 0;
  const tenant = opts.tenant || meta?.tenant_totals[0].id;
  const readToken = tenant && w.token(tenant, 'read');
  const batchBody = ndjson('profile-tenant', 1000);
  const request = {
    query: async () => {
      for (let tries = 0; tries < 20; tries++) {
        const [a, b, z] = widen[asked++ % widen.length];
        const first = Math.floor(meta.window_start / DAY);
        const qs = `date_from=${day(first - a)}&date_to=${day(first + meta.days - 1 + b)}&timezone=${z}${opts.filter ? `&${opts.filter}` : ''}`;
        const r = await fetch(`${w.base}/v0/pipes/${opts.pipe}.json?${qs}`, { headers: { Authorization: `Bearer ${readToken}` } });
        if (r.status !== 200) throw new Error(`${opts.pipe}: HTTP ${r.status} ${(await r.text()).slice(0, 200)}`);
        await r.arrayBuffer();
        if (r.headers.get('x-cache') !== 'HIT') return;
      }
      throw new Error(`${opts.pipe}: 20 cache hits in a row: wait a minute (answers are cached for 60 s)`);
    },
    health: () => fetch(`${w.base}/v0/health`).then((r) => r.arrayBuffer()),
    // 1,000-row NDJSON, the rows of bench/ingest.mjs's batched phase (50 pages, one user agent).
    batch: () =>
      fetch(`${w.base}/v0/events?name=analytics_events&token=${token}`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: batchBody,
      }).then(async (r) => {
        if (r.status !== 202) throw new Error(`batch: HTTP ${r.status} ${(await r.text()).slice(0, 200)}`);
      }),
    baseline: () => fetch(`${w.base}/`, { method: 'POST', body: '{}' }).then((r) => r.arrayBuffer()),
    beacon: () =>
      fetch(`${w.base}/v0/events?name=analytics_events&token=${token}`, {
        method: 'POST',
        headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36' },
        body: JSON.stringify({
          timestamp: new Date().toISOString(),
          action: 'page_hit',
          version: '1',
          session_id: '',
          tenant_id: 'profile-tenant',
          domain: 'example.com',
          payload: { pathname: '/', href: 'https://example.com/', referrer: '', locale: 'en' },
        }),
      }).then((r) => r.arrayBuffer()),
  }[opts.route];
  if (!request) throw new Error(`--route must be health, beacon, batch, baseline or query, not ${opts.route}`);
  const run = async (n) => {
    let next = 0;
    const one = async () => {
      while (next++ < n) await request();
    };
    await Promise.all(Array.from({ length: opts.concurrency }, one));
  };
  process.stderr.write(`warming up, then ${opts.requests} requests unprofiled\n`);
  await run(Math.min(100, opts.requests));
  // Unprofiled: wall time, and CPU time of the runtime's processes (workerd, wrangler's proxy), which a
  // busy machine inflates much less than wall time.
  const warm = performance.now();
  const cpu0 = groupCpuMs(w.group());
  await run(opts.requests);
  const unprofiled = (performance.now() - warm) / opts.requests;
  const cpu1 = groupCpuMs(w.group());
  const cpuPer = (cpu1.all - cpu0.all) / opts.requests;
  const cpuBy = { workerd: (cpu1.workerd - cpu0.workerd) / opts.requests };

  const targets = await (await fetch(`http://${w.inspector()}/json`)).json();
  const target = targets.find((t) => t.webSocketDebuggerUrl) ?? targets[0];
  if (!target) throw new Error(`wrangler's inspector at ${w.inspector()} lists no target`);
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((res, rej) => ws.once('open', res).once('error', rej));
  let id = 0;
  const waiting = new Map();
  ws.on('message', (m) => {
    const msg = JSON.parse(m);
    if (msg.id && waiting.has(msg.id)) {
      waiting.get(msg.id)(msg);
      waiting.delete(msg.id);
    }
  });
  const send = (method, params = {}) =>
    new Promise((res, rej) => {
      const n = ++id;
      waiting.set(n, (msg) => (msg.error ? rej(new Error(`${method}: ${msg.error.message}`)) : res(msg.result)));
      ws.send(JSON.stringify({ id: n, method, params }));
    });
  await send('Profiler.enable');
  await send('Profiler.setSamplingInterval', { interval: opts['interval-us'] });
  await send('Profiler.start');
  process.stderr.write(`profiling ${opts.requests} ${opts.route} requests, ${opts.concurrency} at a time\n`);
  const started = performance.now();
  await run(opts.requests);
  const wall = performance.now() - started;
  const { profile } = await send('Profiler.stop');
  // Anonymous JavaScript functions (wasm-bindgen's imports in the bundle) are named by their source.
  const sources = new Map();
  await send('Debugger.enable').catch(() => {});
  for (const n of profile.nodes) {
    const f = n.callFrame;
    if (f.functionName || !f.url || sources.has(f.scriptId)) continue;
    sources.set(
      f.scriptId,
      await send('Debugger.getScriptSource', { scriptId: f.scriptId }).then(
        (r) => r.scriptSource.split('\n'),
        () => null,
      ),
    );
  }
  // wasm-bindgen's imports are `__wbg_name: /* @__PURE__ */ __name(function (...) {`: the key before the
  // function's position names it.
  const label = (line, col) => {
    const key = line.slice(Math.max(0, col - 80), col).match(/([\w$]+)\s*[:=][^:=]*$/)?.[1];
    return `anonymous: ${key ?? line.slice(col, col + 40).replace(/\s+/g, ' ')}`;
  };
  for (const n of profile.nodes) {
    const f = n.callFrame;
    const line = !f.functionName && sources.get(f.scriptId)?.[f.lineNumber];
    if (line) f.functionName = label(line, f.columnNumber);
  }
  ws.close();
  mkdirSync(dirname(opts.out), { recursive: true });
  writeFileSync(opts.out, JSON.stringify(profile));

  // Self time per node from the samples, then per function (name + script), and total (inclusive) time.
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000; // the time until the next sample, ms
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + dt);
  }
  const key = (n) => {
    const f = n.callFrame;
    const script = f.url ? f.url.split('/').pop() : '';
    return `${f.functionName || '(anonymous)'}${script ? ` ${script}` : ''}`;
  };
  const selfBy = new Map();
  const totalBy = new Map();
  let sampled = 0;
  for (const [nid, ms] of self) {
    sampled += ms;
    const n = byId.get(nid);
    selfBy.set(key(n), (selfBy.get(key(n)) ?? 0) + ms);
    // Inclusive: every distinct function on the stack once.
    const seen = new Set();
    for (let p = nid; p !== undefined; p = parent.get(p)) {
      const k = key(byId.get(p));
      if (!seen.has(k)) totalBy.set(k, (totalBy.get(k) ?? 0) + ms);
      seen.add(k);
    }
  }
  const idle = selfBy.get('(idle)') ?? 0;
  const busy = sampled - idle;
  const per = (ms) => `${((ms * 1000) / opts.requests).toFixed(0).padStart(6)} µs/req`;
  const table = (title, m) => {
    console.log(`\n${title}`);
    for (const [k, ms] of [...m]
      .filter(([k]) => k !== '(idle)' && k !== '(root)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, opts.top))
      console.log(`${ms.toFixed(1).padStart(9)} ms ${((100 * ms) / busy).toFixed(1).padStart(5)} %  ${per(ms)}  ${k.slice(0, 110)}`);
  };
  table('self time (busy samples only)', selfBy);
  table('total time (function on the stack)', totalBy);
  console.log(
    `\nworker isolate busy ${busy.toFixed(0)} ms of ${sampled.toFixed(0)} ms sampled (${per(busy)}); wall ${wall.toFixed(0)} ms for ${opts.requests} requests (${((opts.requests * 1000) / wall).toFixed(0)}/s); unprofiled ${unprofiled.toFixed(2)} ms/request wall (${(1000 / unprofiled).toFixed(0)}/s), runtime CPU ${cpuPer.toFixed(2)} ms/request (workerd ${cpuBy.workerd.toFixed(2)}); profile in ${opts.out}`,
  );
} catch (e) {
  console.error(`worker-profile failed: ${e.message}`);
  exitCode = 1;
} finally {
  await w.stop();
}
process.stderr.write(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
process.exit(exitCode);
