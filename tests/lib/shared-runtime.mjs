// The runtime scripts/test.sh shares between the files of a tier (e2e, browser; one runtime each) that take
// startWorker({ shared: true }): one `wrangler dev` instead of one per file (a start costs 3 s on an idle
// machine, 8 to 19 s while the other files run; about 1.5 CPU-s, tests/lib/start-cost.mjs). Files are
// isolated from each other by their tenants (each file uses its own tenant ids and reads only those), as
// production isolates tenants; a file that restarts its runtime, locks D1, needs
// other settings or measures latency keeps a runtime of its own.
//
//   node tests/lib/shared-runtime.mjs <descriptor.json>
//
// starts the runtime, writes the descriptor (base URL, persisted state, D1 files, keys, log file) once it
// is ready (or {"error"} if it could not start), and stops it on SIGTERM or SIGINT, or when its parent exits.
import { renameSync, writeFileSync } from 'node:fs';
import { startWorker } from './worker.mjs';

const descriptor = process.argv[2];
if (!descriptor) throw new Error('usage: node tests/lib/shared-runtime.mjs <descriptor.json>');
const log = `${descriptor}.log`;
writeFileSync(log, '');
const write = (value) => {
  writeFileSync(`${descriptor}.tmp`, JSON.stringify(value));
  renameSync(`${descriptor}.tmp`, descriptor); // readers never see half a file
};

let w;
try {
  w = await startWorker({ fastQueues: true, logFile: log });
} catch (e) {
  write({ error: e.message.slice(0, 2000) });
  process.exit(1);
}
write({ base: w.base, dir: w.dir, files: w.files, signingKey: w.signingKey, adminToken: w.adminToken, log });

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await w.stop();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// Never outlive the test run that started it (its parent gone: this process is re-parented).
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) stop();
}, 1000);
