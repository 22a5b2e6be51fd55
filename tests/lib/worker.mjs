// Test harness: runs the real worker under `wrangler dev` (workerd) with throwaway local D1/R2 state.
//
// startWorker() applies the D1 migrations into a temp --persist-to dir, spawns wrangler dev on a random
// port, waits for "Ready on", and returns helpers to call it, query local D1, and stop it.
import { spawn, execFileSync } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  cpSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { request as httpRequest } from 'node:http';
import { mint } from '../../scripts/token.mjs';

export const ROOT = resolve(import.meta.dirname, '../..');
const WRANGLER = join(ROOT, 'node_modules/.bin/wrangler');
// wrangler appends every line it prints (each request's log line included) to a debug log, by default
// under ~/.config/.wrangler/logs, which grew to 1.9 GB on the CI machine: this process's runtimes write
// theirs to a temporary directory removed when the process exits.
const WRANGLER_LOGS = mkdtempSync(join(tmpdir(), 'starling-wrangler-logs-'));
process.on('exit', () => rmSync(WRANGLER_LOGS, { recursive: true, force: true }));
const ENV = {
  ...process.env,
  CI: '1',
  WRANGLER_SEND_METRICS: 'false',
  CLOUDFLARE_CF_FETCH_ENABLED: 'false',
  NO_COLOR: '1',
  WRANGLER_LOG_PATH: WRANGLER_LOGS,
};

const D1_DIR = 'v3/d1/miniflare-D1DatabaseObject';

/** The SQLite files of local D1 databases under a persisted state directory. */
function d1Files(dir) {
  const d = join(dir, D1_DIR);
  if (!existsSync(d)) return [];
  return readdirSync(d)
    .filter((f) => f.endsWith('.sqlite') && f !== 'metadata.sqlite')
    .map((f) => join(d, f));
}

/**
 * A persisted state directory with the migrations applied to `databases`, copied from a template built
 * once per set of migrations (applying them costs about 5 s per database per `wrangler` run). Returns
 * the directory and the SQLite file of each database, found as the file each apply created.
 */
function migratedState(databases) {
  const migrations = join(ROOT, 'migrations');
  const hash = createHash('sha256');
  for (const f of readdirSync(migrations).sort()) hash.update(f).update(readFileSync(join(migrations, f)));
  hash.update(readFileSync(join(ROOT, 'wrangler.toml'))).update(databases.join(','));
  const template = join(tmpdir(), `starling-d1-template-${hash.digest('hex').slice(0, 16)}`);
  if (!existsSync(join(template, 'files.json'))) {
    const build = mkdtempSync(join(tmpdir(), 'starling-d1-build-'));
    const files = {};
    for (const db of databases) {
      const before = new Set(d1Files(build));
      execFileSync(WRANGLER, ['d1', 'migrations', 'apply', db, '--local', '--persist-to', build], { cwd: ROOT, env: ENV, stdio: 'pipe' });
      const created = d1Files(build).filter((f) => !before.has(f));
      if (created.length !== 1) throw new Error(`expected one new D1 file for ${db}, found ${created.length}`);
      files[db] = created[0].slice(build.length + 1);
    }
    writeFileSync(join(build, 'files.json'), JSON.stringify(files));
    try {
      renameSync(build, template);
    } catch {
      rmSync(build, { recursive: true, force: true });
    } // another run won
  }
  const dir = mkdtempSync(join(tmpdir(), 'starling-test-'));
  cpSync(template, dir, { recursive: true });
  const files = JSON.parse(readFileSync(join(dir, 'files.json'), 'utf8'));
  return { dir, files: Object.fromEntries(Object.entries(files).map(([db, f]) => [db, join(dir, f)])) };
}

// One long-lived reader per worker: answers `{file, sql}` lines with `{rows}` or `{error}` lines over
// two FIFOs, so a synchronous w.d1() costs a round trip instead of a `wrangler d1 execute` process.
const READER = `
import json, sqlite3, sys
conns = {}
req = open(sys.argv[1], 'r')
res = open(sys.argv[2], 'w')
for line in req:
    q = json.loads(line)
    try:
        c = conns.get(q['file'])
        if c is None:
            c = conns[q['file']] = sqlite3.connect(q['file'], timeout=10, isolation_level=None)
            c.row_factory = sqlite3.Row
        rows = [dict(r) for r in c.execute(q['sql']).fetchall()]
        out = {'rows': rows}
    except Exception as e:
        out = {'error': str(e)}
    res.write(json.dumps(out) + '\\n')
    res.flush()
`;

function startReader() {
  // Not under the persisted state: stateFiles() reads every file there, and reading a FIFO blocks.
  const fifos = mkdtempSync(join(tmpdir(), 'starling-d1-reader-'));
  const req = join(fifos, 'req.fifo');
  const res = join(fifos, 'res.fifo');
  execFileSync('mkfifo', [req, res]);
  const child = spawn('python3', ['-c', READER, req, res], { stdio: 'ignore' });
  const w = openSync(req, 'w'); // blocks until the reader opens its end
  const r = openSync(res, 'r');
  let pending = '';
  return {
    query(file, sql) {
      writeSync(w, `${JSON.stringify({ file, sql })}\n`);
      const buf = Buffer.alloc(65536);
      while (!pending.includes('\n')) {
        const n = readSync(r, buf, 0, buf.length, null);
        if (n === 0) throw new Error('the D1 reader exited');
        pending += buf.toString('utf8', 0, n);
      }
      const i = pending.indexOf('\n');
      const line = pending.slice(0, i);
      pending = pending.slice(i + 1);
      return JSON.parse(line);
    },
    close() {
      try {
        closeSync(w);
      } catch {}
      try {
        closeSync(r);
      } catch {}
      child.kill();
      rmSync(fifos, { recursive: true, force: true });
    },
  };
}

/**
 * wrangler.toml for tests: the same Worker, bindings and vars, with the queue consumers' `max_batch_timeout`
 * set to `batchTimeoutSecs` (production waits 2 s for the main queue and 5 s for the dead-letter queue to
 * fill a batch; every test that waits for its events to be applied waits that long, several times per test).
 * Written once per content into its own directory under the temp dir (paths made absolute, since wrangler
 * reads them relative to the config file); the local D1/R2 state is the same as with wrangler.toml (the
 * databases are named by their ids).
 */
function testConfig(batchTimeoutSecs) {
  return writeConfig((toml) => {
    const timeouts = toml.match(/^max_batch_timeout = .*$/gm) ?? [];
    if (!timeouts.length) throw new Error('wrangler.toml has no max_batch_timeout to shorten for tests');
    return toml.replace(/^max_batch_timeout = .*$/gm, `max_batch_timeout = ${batchTimeoutSecs}`);
  });
}

/**
 * wrangler.toml without its queue consumers: the worker still sends every accepted batch to the queue,
 * but nothing in this runtime consumes it (bench/ingest.mjs's edge-only phase: the edge's cost alone,
 * as in production, where the consumer runs in invocations of its own).
 */
export function edgeOnlyConfig() {
  return writeConfig((toml) => {
    const out = toml.replace(/^\[\[queues\.consumers\]\]\n(?:(?!\[).*\n)*/gm, '');
    if (out === toml) throw new Error('wrangler.toml has no [[queues.consumers]] to leave out');
    return out;
  });
}

/** wrangler.toml with absolute paths, changed by `transform`, in a temporary directory named by its content. */
function writeConfig(transform) {
  let toml = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8');
  const abs = (key) => {
    toml = toml.replace(new RegExp(`^${key} = "([^"]*)"$`, 'gm'), (_, p) => `${key} = ${JSON.stringify(resolve(ROOT, p))}`);
  };
  abs('main');
  abs('directory');
  abs('migrations_dir');
  toml = transform(toml);
  const dir = join(tmpdir(), `starling-wrangler-${createHash('sha256').update(toml).digest('hex').slice(0, 16)}`);
  const file = join(dir, 'wrangler.toml');
  if (!existsSync(file)) {
    const build = mkdtempSync(join(tmpdir(), 'starling-wrangler-build-'));
    writeFileSync(join(build, 'wrangler.toml'), toml);
    try {
      renameSync(build, dir);
    } catch {
      rmSync(build, { recursive: true, force: true });
    } // another file won
  }
  return file;
}

/**
 * Where the harness's waits went: with `STARLING_TEST_TIMES=<file>` set, each runtime start and restart,
 * and each `until()`, appends a JSON line (test file, kind, what, ms) to that file; scripts/test.sh prints
 * the longest ones after each tier.
 */
function recordTime(kind, what, ms) {
  const out = process.env.STARLING_TEST_TIMES;
  if (!out) return;
  const file = process.argv[1] ? process.argv[1].slice(ROOT.length + 1) : '?';
  appendFileSync(out, `${JSON.stringify({ file, kind, what, ms: Math.round(ms) })}\n`);
}

/** CPU ms (user + system) used so far by the processes of a process group, all and workerd's alone. */
export function groupCpuMs(pgid) {
  const tick = 1000 / 100; // USER_HZ is 100 on Linux
  const out = { all: 0, workerd: 0 };
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let stat;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // gone
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(f[2]) !== pgid) continue; // f[2]: pgrp
    const ms = (Number(f[11]) + Number(f[12])) * tick; // utime, stime
    out.all += ms;
    if (name.startsWith('workerd')) out.workerd += ms;
  }
  return out;
}

/** The queue consumers' batch timeout under `fastQueues` (seconds; wrangler.toml: 2 and 5). */
export const TEST_BATCH_TIMEOUT_SECS = 0.5;

async function freePort() {
  return new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
}

/**
 * fetch-like HTTP call on a fresh connection. The tests block the event loop in `wrangler d1 execute`
 * (execFileSync); a pooled keep-alive socket closed by the server meanwhile would fail the next fetch.
 */
export async function httpCall(url, init = {}) {
  // wrangler dev's proxy answers this 503 itself, without reaching the worker, when it loses the
  // connection to the runtime; it was seen for requests in flight when a long local queue delivery
  // ends. A client retries it (Retry-After: 0); so do the tests, so they check Starling's answers.
  // A GET the local runtime never answered (seen once in a while for a request that arrives as a long
  // scheduled event ends; every later request is answered) is sent again; other methods are not. Its
  // first attempt is abandoned after 15 s (the later ones after 60 s, as every other call): such a stall
  // was the longest wait of the e2e tier (60 s, in three runs in a row of ingest-durability.test.mjs on
  // 2026-12-07, where a GET follows each sweep), and a slow GET still gets 60 s on its second attempt.
  const get = (init.method ?? 'GET') === 'GET';
  for (let attempt = 1; ; attempt++) {
    let r;
    try {
      r = await httpCallOnce(url, get && attempt === 1 && init.timeoutMs === undefined ? { ...init, timeoutMs: 15_000 } : init);
    } catch (e) {
      if (e.code === 'STARLING_TIMEOUT' && get && attempt < 3) continue;
      throw e;
    }
    if (attempt >= 4 || r.status !== 503 || !r.body.startsWith('Your worker restarted mid-request')) return r;
  }
}

/**
 * One HTTP call; rejects after `timeoutMs` (60 s unless given) with the method and path, so a request
 * the local runtime never answers fails its test instead of hanging the suite.
 */
function httpCallOnce(url, { method = 'GET', headers = {}, body, timeoutMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      req.destroy();
      const e = new Error(`${method} ${new URL(url).pathname} got no answer in ${timeoutMs} ms`);
      e.code = 'STARLING_TIMEOUT';
      reject(e);
    }, timeoutMs);
    const req = httpRequest(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString();
        resolve({
          status: res.statusCode,
          headers: { get: (name) => res.headers[name.toLowerCase()] ?? null, raw: res.headers },
          text: async () => text,
          json: async () => JSON.parse(text),
          body: text,
        });
      });
    });
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/**
 * The runtime shared between test files, described by the JSON file `descriptor` that
 * tests/lib/shared-runtime.mjs writes once it is ready (waited for here: the files start alongside it).
 * Its own D1 reader; `stop()` only closes that; `restart()` is refused (a file that restarts its runtime
 * keeps its own).
 */
async function attachShared(descriptor) {
  const t0 = Date.now();
  while (!existsSync(descriptor)) {
    if (Date.now() - t0 > 180_000) throw new Error(`the shared runtime did not start in 180 s (${descriptor})`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const d = JSON.parse(readFileSync(descriptor, 'utf8'));
  if (d.error) throw new Error(`the shared runtime did not start: ${d.error}`);
  recordTime('shared', 'shared runtime ready', Date.now() - t0);
  const reader = startReader();
  return runtimeHandle({
    ...d,
    reader,
    logs: () => readFileSync(d.log, 'utf8'),
    async restart() {
      throw new Error('the shared runtime cannot be restarted: give this file a runtime of its own');
    },
    async stop() {
      reader.close();
    },
  });
}

/**
 * The helpers a test uses to call a runtime at `base` and read its persisted state `dir` (D1 `files`
 * through `reader`); `logs`, `restart` and `stop` are the runtime's own (a started or a shared one).
 */
function runtimeHandle({ base, dir, files, reader, signingKey, adminToken, logs, restart, stop, inspector, group }) {
  return {
    base,
    inspector,
    group,
    dir,
    files,
    signingKey,
    adminToken,
    logs,
    restart,
    stop,
    token: (tenant, kind = 'tracker', opts = {}) => mint({ tenant, kind, key: signingKey, ...opts }),
    fetch: (path, init) => httpCall(base + path, init),
    async post(path, body, { token, headers = {} } = {}) {
      const h = { ...headers };
      if (token) h.Authorization = `Bearer ${token}`;
      const r = await httpCall(base + path, { method: 'POST', body, headers: h });
      const text = r.body;
      let json;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: r.status, json, text, headers: r.headers };
    },
    async admin(path, { method = 'POST', body } = {}) {
      const r = await httpCall(base + path, { method, body, headers: { Authorization: `Bearer ${adminToken}` } });
      const text = r.body;
      let json;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: r.status, json, text };
    },
    /**
     * Runs one SQL statement on a local D1 database (`DB` unless named) and returns its rows, read from
     * its SQLite file by the long-lived reader (WAL mode: it sees every committed write). A database
     * this harness did not migrate itself (a custom `config`) goes through `wrangler d1 execute`.
     */
    d1(sql, database = 'DB') {
      if (files[database]) {
        const out = reader.query(files[database], sql);
        if (out.error) throw new Error(`D1 ${database}: ${out.error}: ${sql.slice(0, 300)}`);
        return out.rows;
      }
      for (let attempt = 1; ; attempt++) {
        try {
          const out = execFileSync(WRANGLER, ['d1', 'execute', database, '--local', '--persist-to', dir, '--json', '--command', sql], {
            cwd: ROOT,
            env: ENV,
            stdio: 'pipe',
          }).toString();
          return JSON.parse(out)[0].results;
        } catch (e) {
          const text = `${e.stdout ?? ''}${e.stderr ?? ''}`;
          if (attempt < 5 && /SQLITE_BUSY|database is locked/.test(text)) {
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200 * attempt);
            continue;
          }
          throw new Error(`wrangler d1 execute ${database} failed: ${sql.slice(0, 300)}\n${text}`.slice(0, 4000));
        }
      }
    },
    /** Fires the scheduled handler as the minute cron does (the spool sweep), or `cron` if given. */
    async cron(cron = '* * * * *') {
      // A scheduled run was seen to never answer locally (worker idle); callers poll, so a run that
      // takes longer than 20 s is left behind and the next poll fires another one.
      const r = await httpCallOnce(`${base}/__scheduled?cron=${encodeURIComponent(cron)}`, { timeoutMs: 20_000 }).catch((e) => {
        if (e.code === 'STARLING_TIMEOUT') return null;
        throw e;
      });
      if (r && r.status !== 200) throw new Error(`/__scheduled answered ${r.status}: ${r.body.slice(0, 300)}`);
    },
    /**
     * Polls fn every `intervalMs` until it returns a truthy value (the consumer runs asynchronously, after
     * the queue's batch timeout). A check that fires the cron or calls the API each time may poll slower.
     */
    async until(fn, { timeoutMs = 20_000, what = 'condition', intervalMs = 100 } = {}) {
      const t0 = Date.now();
      const end = t0 + timeoutMs;
      let last;
      while (Date.now() < end) {
        last = await fn();
        if (last) {
          recordTime('wait', what, Date.now() - t0);
          return last;
        }
        await new Promise((r) => setTimeout(r, intervalMs));
      }
      recordTime('wait (timed out)', what, Date.now() - t0);
      throw new Error(`timed out waiting for ${what}; last value ${JSON.stringify(last)}`);
    },
    /**
     * Keys of the local R2 objects starting with `prefix`, read from miniflare's R2 metadata (SQLite files
     * under a directory of the persisted state with "r2" in its name; table `_mf_objects`).
     */
    r2Keys(prefix = '') {
      const files = [];
      const walk = (d, inR2) => {
        for (const f of readdirSync(d)) {
          const p = join(d, f);
          const r2 = inR2 || /r2/i.test(f);
          if (statSync(p).isDirectory()) walk(p, r2);
          else if (r2 && f.endsWith('.sqlite')) files.push(p);
        }
      };
      walk(dir, false);
      // Through the long-lived reader (no process per call: tests poll this).
      const lit = `'${prefix.replaceAll("'", "''")}'`;
      const keys = [];
      for (const f of files) {
        const out = reader.query(f, `SELECT key FROM _mf_objects WHERE substr(key, 1, length(${lit})) = ${lit}`);
        if (out.error && !/no such table/.test(out.error)) throw new Error(`R2 metadata ${f}: ${out.error}`);
        for (const r of out.rows ?? []) keys.push(r.key);
      }
      return keys.sort();
    },
    /**
     * Every file under the persisted state (D1 sqlite files, R2 blobs), for at-rest checks. The runtime
     * keeps running meanwhile, so a file listed may be gone when it is read (SQLite removes its `-shm` and
     * `-wal` files on checkpoint): such a file is skipped, any other error thrown.
     */
    stateFiles() {
      const gone = (e) => {
        if (e.code !== 'ENOENT') throw e;
        return null;
      };
      const files = [];
      const walk = (d) => {
        for (const f of readdirSync(d)) {
          const p = join(d, f);
          let st;
          try {
            st = statSync(p);
          } catch (e) {
            gone(e);
            continue;
          }
          st.isDirectory() ? walk(p) : files.push(p);
        }
      };
      walk(dir);
      return files.flatMap((p) => {
        try {
          return [{ path: p, bytes: readFileSync(p) }];
        } catch (e) {
          return gone(e) ?? [];
        }
      });
    },
  };
}

/**
 * Starts the worker. `silo: true` also applies the migrations to the `SILO_1` D1 database (the silo
 * tenants' database of wrangler.toml); `w.d1(sql, 'SILO_1')` queries it. Unregistered tenants get the
 * enterprise plan unless `keepDefaultPlan` (then wrangler.toml's DEFAULT_PLAN, the free plan).
 * `signingKey` is its SIGNING_KEY (48 random hex characters unless given; the worker refuses keys under
 * 32 bytes). `fastQueues: true` runs wrangler.toml with the queue consumers' batch timeout cut to
 * TEST_BATCH_TIMEOUT_SECS (see testConfig); the tests use it, the benchmarks keep the production timeouts.
 *
 * `shared: true` (with `fastQueues` and nothing else): the file may run against the runtime scripts/test.sh
 * shares between test files (STARLING_SHARED_RUNTIME; see tests/lib/shared-runtime.mjs), isolated from the
 * other files by its own tenants, not by a runtime of its own; without that variable (one file run on its
 * own) it starts its own runtime as before. `logFile` also appends wrangler's output to that file.
 * `config` runs another wrangler.toml (a temporary state without D1 tables unless `migrate: true`).
 * `persistTo` runs on an existing persisted state directory (a benchmark's data set, its migrations
 * already applied) instead of a fresh migrated copy, and never deletes it.
 */
export async function startWorker({
  extraArgs = [],
  config,
  fastQueues = false,
  shared = false,
  silo = false,
  keepDefaultPlan = false,
  signingKey,
  logFile,
  persistTo,
  migrate = false,
} = {}) {
  if (shared) {
    if (!fastQueues || extraArgs.length || config || migrate || silo || keepDefaultPlan || signingKey || logFile || persistTo)
      throw new Error('startWorker({ shared: true }) takes fastQueues only: the shared runtime has the default settings');
    if (process.env.STARLING_SHARED_RUNTIME) return attachShared(process.env.STARLING_SHARED_RUNTIME);
  }
  signingKey ??= randomBytes(24).toString('hex');
  const adminToken = randomBytes(24).toString('hex');
  const databases = silo ? ['DB', 'SILO_1'] : ['DB'];
  const existing = persistTo && d1Files(persistTo);
  const { dir, files } = persistTo
    ? { dir: persistTo, files: existing.length === 1 ? { DB: existing[0] } : {} }
    : config && !migrate
      ? { dir: mkdtempSync(join(tmpdir(), 'starling-test-')), files: {} }
      : migratedState(databases);
  // A temporary state is the runtime's own; a given one (`persistTo`) is the caller's data.
  const removeState = () => persistTo || rmSync(dir, { recursive: true, force: true });
  const reader = startReader();
  if (config) extraArgs = ['-c', config, ...extraArgs];
  else if (fastQueues) extraArgs = ['-c', testConfig(TEST_BATCH_TIMEOUT_SECS), ...extraArgs];
  // Every port is this worker's own (wrangler's inspector defaults to 9229): files run concurrently.
  let port = await freePort();
  let inspectorPort = await freePort();
  // The local queue broker keeps messages in memory: spool every accepted request to R2 (as
  // scripts/dev.sh does) so nothing accepted depends on it; `w.cron()` runs the sweep.
  const args = () => [
    'dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--inspector-port',
    String(inspectorPort),
    '--persist-to',
    dir,
    '--var',
    `SIGNING_KEY:${signingKey}`,
    '--var',
    `ADMIN_TOKEN:${adminToken}`,
    '--var',
    'SPOOL_INLINE_MAX_ROWS:0',
    // Most tests post with tokens of tenants they never register: give those the largest plan unless a
    // test sets DEFAULT_PLAN itself (wrangler.toml's default is the smallest plan).
    ...(keepDefaultPlan || extraArgs.some((a) => String(a).startsWith('DEFAULT_PLAN:')) ? [] : ['--var', 'DEFAULT_PLAN:enterprise']),
    '--show-interactive-dev-session=false',
    ...(extraArgs.includes('--test-scheduled') ? [] : ['--test-scheduled']),
    ...extraArgs,
  ];
  let child;
  let output = '';
  const launch = async () => {
    const t0 = Date.now();
    child = spawn(WRANGLER, args(), { cwd: ROOT, env: ENV, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const started = output.length;
    let ready = false;
    await new Promise((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`wrangler dev did not start in 180 s:\n${output.slice(-4000)}`)), 180_000);
      const onData = (d) => {
        output += d;
        if (logFile) appendFileSync(logFile, d);
        if (!ready && /Ready on http/.test(output.slice(started))) {
          ready = true;
          clearTimeout(timer);
          recordTime(started ? 'restart' : 'start', 'wrangler dev ready', Date.now() - t0);
          res();
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('exit', (code) => {
        clearTimeout(timer);
        rej(new Error(`wrangler dev exited (${code}):\n${output.slice(-4000)}`));
      });
    });
  };
  const kill = async () => {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {}
    // wrangler exits at once on SIGTERM; the group's SIGKILL after it ends anything it left behind.
    await new Promise((r) => {
      const timer = setTimeout(r, 300);
      if (child.exitCode !== null || child.signalCode !== null) r();
      else
        child.once('exit', () => {
          clearTimeout(timer);
          r();
        });
    });
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
  };
  // A free port can be taken by another process between freePort() and wrangler's listen: try others.
  for (let attempt = 1; ; attempt++) {
    try {
      await launch();
      break;
    } catch (e) {
      await kill();
      if (attempt >= 3 || !/Address already in use/.test(e.message)) {
        // Nothing else ends the reader: its process would keep the test file running forever.
        reader.close();
        removeState();
        throw e;
      }
      port = await freePort();
      inspectorPort = await freePort();
    }
  }
  const base = `http://127.0.0.1:${port}`;
  return runtimeHandle({
    base,
    // wrangler's DevTools inspector for the worker (bench/worker-profile.mjs takes CPU profiles through it).
    inspector: () => `127.0.0.1:${inspectorPort}`,
    // The process group of wrangler and its workerd (bench/worker-profile.mjs reads their CPU time).
    group: () => child.pid,
    dir,
    files,
    reader,
    signingKey,
    adminToken,
    logs: () => output,
    /**
     * Kills the runtime (SIGKILL: the local queue broker's in-memory messages die with it) and starts it
     * again on the same port and persisted D1/R2 state.
     */
    async restart() {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', r)));
      await launch();
    },
    async stop() {
      if (process.env.STARLING_TEST_LOGS) process.stderr.write(`--- wrangler dev output ---\n${output}\n`);
      await kill();
      reader.close();
      removeState();
    },
  });
}
