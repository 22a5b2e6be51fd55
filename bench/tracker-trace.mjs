#!/usr/bin/env node
// Main-thread cost of the tracker (issue #12 step 5): a Chromium trace of the same page with
// Starling's tracker and with flock.js, printing the long tasks (> 50 ms on the renderer's main
// thread) and the scripting time on the main thread before the first event is sent.
//   node bench/tracker-trace.mjs [--runs 7]      (run scripts/build-tracker.sh first)
// The page, t.js, its module and flock.js are served by a local server that also takes the beacons
// (202), so no worker runs and the network is the loopback. Each run is a fresh browser context with an
// empty cache. "Scripting" is the union of the main thread's script events (EvaluateScript,
// FunctionCall, TimerFire, EventDispatch, RunMicrotasks, v8.compile*, v8.wasm.*) between navigation
// start and the trace's first ResourceSendRequest to the events endpoint; nested events count once.
// flock.js waits 300 ms (a timer) before its first page hit; that idle time is not scripting. Prints a
// markdown table (median and max over the runs) and writes bench-output/tracker-trace.json.
import { createServer } from 'node:http';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { launchChromium } from '../tests/lib/browser.mjs';
import { ROOT } from '../tests/lib/worker.mjs';

const args = Object.fromEntries(
  process.argv
    .slice(2)
    .join(' ')
    .split('--')
    .filter(Boolean)
    .map((a) => {
      const [k, ...v] = a.trim().split(/\s+/);
      return [k, v.length ? v.join(' ') : 'true'];
    }),
);
const RUNS = Number(args.runs || 7);
const LONG_TASK_MS = 50;
const SCRIPT_EVENTS = new Set([
  'EvaluateScript',
  'FunctionCall',
  'TimerFire',
  'EventDispatch',
  'RunMicrotasks',
  'v8.compile',
  'v8.compileModule',
  'v8.produceCache',
  'V8.ScriptCompiler',
  'v8.wasm.compiledModule',
  'v8.wasm.streamFromResponseCallback',
  'v8.wasm.moduleCacheHit',
  'v8.wasm.compile',
  'wasm.SyncCompile',
  'wasm.AsyncCompile',
  'v8.run',
]);

const dist = join(ROOT, 'www/dist');
const flock = readFileSync(join(ROOT, 'node_modules/@tinybirdco/flock.js/dist/index.js'));
const body = `<h1>An article</h1>${'<p>Some text of the article, long enough to look like a page. '.repeat(40)}</p>`;
const PAGES = {
  starling: (base) => `<!doctype html><html><head><meta charset="utf-8"><title>trace</title>
<script async src="${base}/t.js" data-host="${base}" data-token="t" data-allow-localhost data-allow-automation></script>
</head><body>${body}</body></html>`,
  flock: (base) => `<!doctype html><html><head><meta charset="utf-8"><title>trace</title>
<script src="${base}/flock.js" data-host="${base}" data-token="t"></script>
</head><body>${body}</body></html>`,
};

const server = createServer((req, res) => {
  const path = req.url.split('?')[0];
  const base = `http://127.0.0.1:${server.address().port}`;
  if (path.startsWith('/v0/events'))
    return req.resume().on('end', () => res.writeHead(202, { 'Access-Control-Allow-Origin': '*' }).end('{}'));
  if (path === '/flock.js') return res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(flock);
  const page = PAGES[decodeURIComponent(path.slice(1))];
  if (page) return res.writeHead(200, { 'Content-Type': 'text/html' }).end(page(base));
  try {
    const file = readFileSync(join(dist, path.replace(/\.\./g, '')));
    const type = path.endsWith('.wasm') ? 'application/wasm' : 'text/javascript';
    res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store' }).end(file);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;

const browser = await launchChromium();

/** One traced load: long tasks and scripting before the first beacon, in ms. */
async function traced(name) {
  const context = await browser.newContext();
  // flock.js sends nothing under navigator.webdriver, which automation sets.
  await context.addInitScript(() => Object.defineProperty(Navigator.prototype, 'webdriver', { get: () => false }));
  const page = await context.newPage();
  let sent;
  const first = new Promise((r) => {
    sent = r;
  });
  page.on('request', (r) => {
    if (r.url().startsWith(`${base}/v0/events`)) sent();
  });
  await browser.startTracing(page, {
    categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8', 'v8.execute', 'toplevel', 'blink.user_timing'],
  });
  await page.goto(`${base}/${encodeURIComponent(name)}`);
  await Promise.race([first, new Promise((_, rej) => setTimeout(() => rej(new Error(`${name}: no beacon in 10 s`)), 10_000))]);
  await page.waitForTimeout(200);
  const trace = JSON.parse((await browser.stopTracing()).toString());
  await context.close();
  const events = trace.traceEvents || trace;
  const send = events
    .filter((e) => e.name === 'ResourceSendRequest' && e.args?.data?.url?.startsWith(`${base}/v0/events`))
    .sort((a, b) => a.ts - b.ts)[0];
  const nav = events.filter((e) => e.name === 'ResourceSendRequest' && e.args?.data?.url === `${base}/${encodeURIComponent(name)}`)[0];
  if (!send) throw new Error(`${name}: no ResourceSendRequest for the beacon in the trace`);
  // The renderer main thread that ran the page: the one that issued the beacon.
  const threads = new Set(
    events.filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain').map((e) => `${e.pid}:${e.tid}`),
  );
  const main = [...threads].find((t) => t === `${send.pid}:${send.tid}`) || `${send.pid}:${send.tid}`;
  const onMain = events.filter((e) => `${e.pid}:${e.tid}` === main && e.ph === 'X' && e.dur != null);
  const start = nav?.ts ?? Math.min(...onMain.map((e) => e.ts));
  // A long task is the tracker's when a script event of the tracker's files (or a wasm compile) runs
  // inside it; the others are the page's own (parsing, layout, the browser's start-up work).
  const ours = onMain.filter(
    (e) =>
      SCRIPT_EVENTS.has(e.name) &&
      (/\/(t\.js|flock\.js|t\/)/.test(e.args?.data?.url || e.args?.data?.scriptName || '') || e.name.includes('wasm')),
  );
  const long = onMain.filter((e) => e.name === 'RunTask' && e.dur / 1000 > LONG_TASK_MS);
  const longTasks = long.filter((t) => ours.some((e) => e.ts >= t.ts && e.ts < t.ts + t.dur)).map((e) => e.dur / 1000);
  const pageLongTasks = long.length - longTasks.length;
  // Union of script intervals in [start, send).
  const spans = onMain
    .filter((e) => SCRIPT_EVENTS.has(e.name) && e.ts < send.ts && e.ts + e.dur > start)
    .map((e) => [Math.max(e.ts, start), Math.min(e.ts + e.dur, send.ts)])
    .sort((a, b) => a[0] - b[0]);
  let scripting = 0;
  let end = -Infinity;
  for (const [a, b] of spans) {
    if (b <= end) continue;
    scripting += b - Math.max(a, end);
    end = b;
  }
  return {
    longTasks,
    pageLongTasks,
    longestTaskMs: Math.max(0, ...onMain.filter((e) => e.name === 'RunTask').map((e) => e.dur / 1000)),
    scriptingMs: scripting / 1000,
    firstEventMs: (send.ts - start) / 1000,
  };
}

const loadBefore = loadavg();
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const results = {};
for (const name of Object.keys(PAGES)) {
  const label = name === 'flock' ? 'flock.js 1.4.1' : 'starling (t.js + module)';
  results[label] = [];
  await traced(name); // warm-up (the browser's first page pays for process start)
  for (let i = 0; i < RUNS; i++) results[label].push(await traced(name));
  process.stderr.write(`${name}: ${RUNS} runs\n`);
}
await browser.close();
server.close();

const f = (v) => v.toFixed(1);
console.log(
  `| tracker | long tasks (> ${LONG_TASK_MS} ms) running the tracker, all runs | other long tasks (the page's), all runs | longest main-thread task, median / max (ms) | scripting before the first event, median / max (ms) | first event sent after navigation, median (ms) |`,
);
console.log('|---|---|---|---|---|---|');
for (const [name, runs] of Object.entries(results)) {
  const long = runs.flatMap((r) => r.longTasks);
  console.log(
    `| ${name} | ${long.length}${long.length ? ` (${long.map(f).join(', ')} ms)` : ''} | ${runs.reduce((a, r) => a + r.pageLongTasks, 0)} | ${f(median(runs.map((r) => r.longestTaskMs)))} / ${f(Math.max(...runs.map((r) => r.longestTaskMs)))} | ${f(median(runs.map((r) => r.scriptingMs)))} / ${f(Math.max(...runs.map((r) => r.scriptingMs)))} | ${f(median(runs.map((r) => r.firstEventMs)))} |`,
  );
}
console.log(
  `\nload average (1, 5, 15 min) before: ${loadBefore.map((x) => x.toFixed(2)).join(', ')}; after: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(', ')} (2 cores, shared)`,
);
mkdirSync(join(ROOT, 'bench-output'), { recursive: true });
writeFileSync(
  join(ROOT, 'bench-output/tracker-trace.json'),
  JSON.stringify({ measured_at: new Date().toISOString(), runs: RUNS, load_before: loadBefore, load_after: loadavg(), results }, null, 2) +
    '\n',
);
