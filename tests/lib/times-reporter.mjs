// A node --test reporter that prints where a run's time went: each file's wall time (from the moment its
// process starts to its end, so its runtime start is included) and the slowest tests. scripts/test.sh
// adds it next to the spec reporter and prints its table at the end of the e2e and browser tiers:
//   node --test --test-reporter=spec --test-reporter-destination=stdout \
//     --test-reporter=./tests/lib/times-reporter.mjs --test-reporter-destination=times.txt tests/x.test.mjs
import { existsSync, readFileSync } from 'node:fs';
import { relative } from 'node:path';

const SLOWEST = 12;

export default async function* timesReporter(source) {
  const began = Date.now();
  const files = new Map(); // file → { start, end, tests, failed }
  const tests = []; // { file, name, ms, failed }
  const fileOf = (f) => {
    if (!files.has(f)) files.set(f, { start: Date.now(), end: null, tests: 0, failed: 0 });
    return files.get(f);
  };
  for await (const { type, data } of source) {
    if (!data?.file) continue;
    const isFile = data.name === data.file;
    if (type === 'test:dequeue' && isFile) fileOf(data.file).start = Date.now();
    else if (type === 'test:complete' && isFile) fileOf(data.file).end = Date.now();
    else if ((type === 'test:pass' || type === 'test:fail') && !isFile && !data.details?.type) {
      // Leaf tests only (a describe() block reports with details.type 'suite').
      const f = fileOf(data.file);
      f.tests++;
      if (type === 'test:fail') f.failed++;
      tests.push({ file: data.file, name: data.name, ms: data.details?.duration_ms ?? 0, failed: type === 'test:fail' });
    }
  }
  const rel = (f) => relative(process.cwd(), f);
  const secs = (ms) => (ms / 1000).toFixed(1).padStart(6);
  const rows = [...files].map(([file, f]) => ({ file, wall: (f.end ?? Date.now()) - f.start, ...f }));
  rows.sort((a, b) => b.wall - a.wall);
  const ended = Date.now();
  const at = (t) => ((t - began) / 1000).toFixed(1);
  let out = `${files.size} files, ${at(ended)} s from the first start to the last end\n`;
  out += 'wall s | tests | file (started at, ended at s; its slowest test, s)\n';
  for (const r of rows) {
    const slowest = tests.filter((t) => t.file === r.file).sort((a, b) => b.ms - a.ms)[0];
    const failed = r.failed ? `, ${r.failed} failed` : '';
    const when = `${at(r.start)}-${r.end ? at(r.end) : '?'}`;
    out += `${secs(r.wall)} | ${String(r.tests).padStart(5)} | ${rel(r.file)}${failed} (${when}${slowest ? `; ${(slowest.ms / 1000).toFixed(1)}: ${slowest.name.slice(0, 60)}` : ''})\n`;
  }
  out += `slowest ${SLOWEST} tests (s; a file's first test includes its before() hooks, e.g. starting wrangler dev):\n`;
  for (const t of [...tests].sort((a, b) => b.ms - a.ms).slice(0, SLOWEST))
    out += `${secs(t.ms)} | ${rel(t.file)}: ${t.name.slice(0, 90)}${t.failed ? ' (failed)' : ''}\n`;
  // The harness's own record (tests/lib/worker.mjs, STARLING_TEST_TIMES): runtime starts and waits.
  const log = process.env.STARLING_TEST_TIMES;
  if (log && existsSync(log)) {
    const waits = readFileSync(log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    const starts = waits.filter((x) => x.kind === 'start' || x.kind === 'restart');
    const sum = (xs) => xs.reduce((a, x) => a + x.ms, 0);
    if (starts.length)
      out += `wrangler dev: ${starts.length} starts and restarts, ${secs(sum(starts)).trim()} s in all, longest ${secs(Math.max(...starts.map((x) => x.ms))).trim()} s\n`;
    const polls = waits.filter((x) => x.kind.startsWith('wait'));
    if (polls.length) {
      out += `waits on a condition (w.until): ${polls.length}, ${secs(sum(polls)).trim()} s in all; the longest:\n`;
      for (const x of polls.sort((a, b) => b.ms - a.ms).slice(0, SLOWEST))
        out += `${secs(x.ms)} | ${x.file}: ${x.what.slice(0, 80)}${x.kind === 'wait' ? '' : ` (${x.kind})`}\n`;
    }
  }
  yield out;
}
