// Where the CPU of a test run goes: runs a command and samples /proc every 200 ms, adding up the CPU time
// (user + system) of each process under it, attributed to the test file (or other part) it runs for.
//
//   node tests/lib/cpu-times.mjs <out.json> -- <command> [args...]
//
// A process is attributed to the nearest ancestor that names a part: a `node --test` child running
// `tests/<file>.test.mjs` (with its `wrangler dev`, workerd, D1 reader and Chromium), the shared runtime
// (`tests/lib/shared-runtime.mjs`), `scripts/test-tracker.sh`, a cargo or rustc run, a build script; the
// rest is "other". The attribution is kept once seen, so a workerd orphaned at its runtime's stop still
// counts for its file. Processes that live less than one sample (200 ms) are missed: short `git`,
// `mkfifo` and the like, a few CPU-seconds at most in a run. Prints a table and writes it as JSON.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

const [out, sep, ...cmd] = process.argv.slice(2);
if (!out || sep !== '--' || !cmd.length) throw new Error('usage: node tests/lib/cpu-times.mjs <out.json> -- <command> [args...]');
const TICK = 100; // USER_HZ on Linux

const procs = new Map(); // pid -> { start, ppid, cmd, part, ticks }
function read(pid) {
  let stat;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after the name: state(3) ppid(4) ... utime(14) stime(15) ... starttime(22), 1-based in proc(5).
  return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), start: f[19] };
}
function cmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}
function partOf(c) {
  let m = c.match(/(tests\/[\w.-]+\.test\.mjs)/);
  if (m && /\bnode\b/.test(c) && !/--test(\s|$)/.test(c)) return m[1];
  m = c.match(/tests\/lib\/shared-runtime\.mjs \S*shared-runtime-?([\w-]*)\.json/);
  if (m) return `shared runtime ${m[1]}`.trim();
  if (/tests\/lib\/shared-runtime\.mjs/.test(c)) return 'shared runtime';
  if (/scripts\/test-tracker\.sh/.test(c)) return 'scripts/test-tracker.sh';
  m = c.match(/scripts\/(build-[\w-]+|tracker-size)\.sh/);
  if (m) return `scripts/${m[1]}.sh`;
  if (/wrangler(\.js)? deploy/.test(c)) return 'wrangler deploy --dry-run';
  if (/cargo(-clippy)? clippy|clippy-driver/.test(c)) return 'cargo clippy';
  if (/cargo test|\/deps\/[\w-]+-[0-9a-f]{16}/.test(c)) return 'cargo test';
  if (/node --test/.test(c)) return 'node --test (runner)';
  return null;
}

const root = spawn(cmd[0], cmd.slice(1), { stdio: 'inherit' });
const t0 = Date.now();
function sample() {
  const seen = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const s = read(d);
    if (s) seen.set(Number(d), s);
  }
  // Parents first: attribute along the tree from the root.
  const under = (pid) => {
    for (let p = pid, n = 0; p > 1 && n < 64; n++) {
      if (p === root.pid) return true;
      p = seen.get(p)?.ppid ?? 0;
    }
    return false;
  };
  for (const [pid, s] of [...seen].sort((a, b) => a[0] - b[0])) {
    const key = `${pid}:${s.start}`;
    let p = procs.get(key);
    if (!p) {
      if (!under(pid)) continue;
      const c = cmdline(pid);
      // Inside a test file, the shared runtime or scripts/test-tracker.sh, everything counts for it (the
      // tracker script's cargo runs too); elsewhere a process that names a part starts that part.
      const inherited = procs.get(`${s.ppid}:${seen.get(s.ppid)?.start}`)?.part;
      const part =
        (inherited && /\.test\.mjs$|^shared runtime|test-tracker/.test(inherited) ? inherited : null) ?? partOf(c) ?? inherited ?? 'other';
      p = { pid, cmd: c.slice(0, 200), part, ticks: 0 };
      procs.set(key, p);
    }
    p.ticks = Math.max(p.ticks, s.ticks);
  }
}
const timer = setInterval(sample, 200);
sample();
root.on('exit', (code, signal) => {
  clearInterval(timer);
  sample();
  const wall = (Date.now() - t0) / 1000;
  const parts = {};
  for (const p of procs.values()) {
    const name = /workerd/.test(p.cmd)
      ? 'workerd'
      : /wrangler/.test(p.cmd)
        ? 'wrangler'
        : /chrom/.test(p.cmd)
          ? `chromium${(p.cmd.match(/--type=([\w-]+)/)?.[1] ?? '').replace(/^(?=.)/, ' ')}`
          : /python3/.test(p.cmd)
            ? 'd1 reader'
            : 'node/other';
    parts[p.part] ??= { cpu: 0, procs: 0, by: {} };
    parts[p.part].cpu += p.ticks / TICK;
    parts[p.part].procs++;
    parts[p.part].by[name] = (parts[p.part].by[name] ?? 0) + p.ticks / TICK;
  }
  const total = Object.values(parts).reduce((a, p) => a + p.cpu, 0);
  // The tiers of scripts/test.sh (its browser_tests list; tenants.test.mjs runs alone after the e2e files).
  const browserFiles = /tests\/(tracker|tracker-capture|dashboard|dashboard-compare|dashboard-props)\.test\.mjs$/;
  const tierOf = (name) =>
    browserFiles.test(name) || /browser|test-tracker/.test(name)
      ? 'browser'
      : /\.test\.mjs$|shared runtime/.test(name)
        ? 'e2e'
        : name === 'cargo test'
          ? 'native'
          : name === 'cargo clippy'
            ? 'checks'
            : 'build, deploy --dry-run, other';
  const tiers = {};
  for (const [name, p] of Object.entries(parts)) tiers[tierOf(name)] = (tiers[tierOf(name)] ?? 0) + p.cpu;
  const rows = Object.entries(parts).sort((a, b) => b[1].cpu - a[1].cpu);
  const fmt = (x) => x.toFixed(1);
  const lines = [
    `wall ${fmt(wall)} s, CPU ${fmt(total)} s (sampled every 200 ms; load at the end ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`,
  ];
  for (const [name, p] of rows)
    lines.push(
      `${fmt(p.cpu).padStart(7)} s  ${name} (${Object.entries(p.by)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${fmt(v)}`)
        .join(', ')})`,
    );
  lines.push(
    `by tier: ${Object.entries(tiers)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${fmt(v)} s`)
      .join(', ')}`,
  );
  process.stderr.write(`--- CPU by part ---\n${lines.join('\n')}\n`);
  writeFileSync(out, JSON.stringify({ wall, total, tiers, parts }, null, 1));
  process.exit(code ?? (signal ? 1 : 0));
});
