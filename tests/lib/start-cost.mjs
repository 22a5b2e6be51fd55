// What one `wrangler dev` start of the test harness costs: starts the worker as the e2e files do
// (startWorker({ fastQueues: true })) `n` times one after another, and prints for each the wall time to
// "Ready", the CPU-seconds wrangler (node) and workerd had used by then, what the first request cost
// (workerd compiles the wasm then) and what they used in the next `idle` seconds without requests (BENCHMARKS.md "Test suite: where the CPU goes").
//
//   node tests/lib/start-cost.mjs [n=3] [idle=10]
import { readFileSync } from 'node:fs';
import { groupCpuMs, startWorker } from './worker.mjs';

const n = Number(process.argv[2] ?? 3);
const idle = Number(process.argv[3] ?? 10);

/** CPU-seconds (user + system) of the processes of process group `pgid`: wrangler's node and workerd. */
function groupCpu(pgid) {
  const { all, workerd } = groupCpuMs(pgid);
  return { wrangler: (all - workerd) / 1000, workerd: workerd / 1000 };
}

const fmt = (x) => x.toFixed(2);
for (let i = 0; i < n; i++) {
  const t0 = Date.now();
  const w = await startWorker({ fastQueues: true });
  const wall = (Date.now() - t0) / 1000;
  const ready = groupCpu(w.group());
  // workerd compiles the worker's wasm on the first request, not at "Ready".
  const t1 = Date.now();
  const r = await w.fetch('/v0/events?name=analytics_events', { method: 'POST', body: '{}' }); // the worker's 401
  const first = (Date.now() - t1) / 1000;
  const served = groupCpu(w.group());
  await new Promise((r) => setTimeout(r, idle * 1000));
  const later = groupCpu(w.group());
  const d = (a, b) => `wrangler ${fmt(b.wrangler - a.wrangler)} s, workerd ${fmt(b.workerd - a.workerd)} s`;
  await w.stop();
  console.log(
    `start ${i + 1}: ready in ${fmt(wall)} s; CPU at ready: wrangler ${fmt(ready.wrangler)} s, workerd ${fmt(ready.workerd)} s; ` +
      `first request (${r.status}) in ${fmt(first)} s: ${d(ready, served)}; next ${idle} s idle: ${d(served, later)}`,
  );
}
console.log(`load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
