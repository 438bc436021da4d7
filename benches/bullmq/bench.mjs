// BullMQ peer benchmark for the `events` Redis queue (issue 11).
//
// What it measures. BullMQ (npm `bullmq`, pinned in package.json; the
// package-lock.json is committed so `npm ci` installs exactly the measured
// versions) on the Redis at `REDIS_URL` (default redis://127.0.0.1:6379/0),
// with no-op jobs, `JOBS` jobs per case (default 20000):
//   single_add    `queue.add` one job at a time, each awaited;
//   bulk_add      `queue.addBulk` in batches of 100;
//   e2e_c1        add the N jobs (bulk, batches of 100), then one Worker at
//                 concurrency 1 runs them all: `jobs_per_s` counts from the
//                 first add to the last completion, `worker_jobs_per_s` from
//                 the worker's start to the last completion;
//   e2e_c8        the same at concurrency 8.
// Each line of output is machine-readable: `bullmq <case> key=value ...`.
// Lines starting with `#` are notes.
//
// Options, and why. Jobs are added with `removeOnComplete: true` (as
// BullMQ's own docs and most published BullMQ benchmarks do): a completed
// job's hash is deleted instead of kept in the `completed` set, which is what
// a no-op queue that keeps no history does, and what the `events` queue does
// (it deletes acknowledged jobs). `removeOnFail` is left at its default
// (failed jobs kept), like the `events` failed store; no job fails here.
// Everything else is BullMQ's default: one attempt, the events stream
// (`maxLenEvents` 10000), lock renewal and the stalled-job check at their
// default intervals (lockDuration 30 s, stalledInterval 30 s). The Worker is
// created and connected before the adds start (`autorun: false`) and started
// with `run()` after the last add, so connection set-up is not timed. A job
// counts as done on the Worker's `completed` event, which fires after BullMQ
// has moved it to completed (here: deleted it) in Redis.
//
// Commands per job. Around each e2e case (adds and worker), the sum of
// `calls` over `INFO commandstats` is read before and after:
// `commands_per_job` is that delta over N. Redis counts the commands a Lua
// script runs as well as the script call itself, so this is the server's
// work, not the round trips. `client_cmds_per_job` counts the commands the
// ioredis clients sent (every top-level command, script calls included; a
// pipeline of k commands counts k), and `evalsha_per_job` the script calls.
// On a shared Redis the server-side count includes other clients' commands:
// run it on a private redis-server (benches/redis_peers.sh does) for a clean
// figure; `# connected_clients` is printed so a busy server shows.
//
// Keys. Everything lives under the BullMQ prefix `bullbench-<pid>`; each
// queue is obliterated at the end of its case and any key left under the
// prefix is deleted at exit (SCAN + UNLINK of that prefix only; never
// FLUSHDB or FLUSHALL).
//
// Run: `cd benches/bullmq && npm ci && REDIS_URL=redis://127.0.0.1:6390/0
// JOBS=20000 node bench.mjs`, or `benches/redis_peers.sh` for a private
// server and the redis-benchmark ceiling in the same run.

import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import IORedis from 'ioredis';
import { Queue, Worker } from 'bullmq';

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379/0';
const JOBS = Number.parseInt(process.env.JOBS || '20000', 10);
const BATCH = 100;
const PREFIX = `bullbench-${process.pid}`;
const JOB_OPTS = { removeOnComplete: true };

if (!Number.isInteger(JOBS) || JOBS <= 0) {
  console.error(`JOBS must be a positive whole number, got "${process.env.JOBS}"`);
  process.exit(2);
}

// Count every command the ioredis clients send (BullMQ's connections and
// this script's own are all ioredis instances of this one module).
const sent = { all: 0, evalsha: 0 };
const originalSendCommand = IORedis.prototype.sendCommand;
IORedis.prototype.sendCommand = function countedSendCommand(command, ...rest) {
  sent.all += 1;
  if (command && (command.name === 'evalsha' || command.name === 'eval')) {
    sent.evalsha += 1;
  }
  return originalSendCommand.call(this, command, ...rest);
};

// Ctrl-C stops the adds and the wait for the worker, so that every case's
// clean-up (obliterate, then the final sweep of the prefix) runs with no
// add still in flight.
let interrupted = false;
let onInterrupt = () => {};
const interruption = new Promise((_, reject) => {
  onInterrupt = reject;
});
interruption.catch(() => {});
function checkInterrupted() {
  if (interrupted) throw new Error('interrupted');
}

const admin = new IORedis(REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: true });
const connection = { url: REDIS_URL };

function rate(n, ms) {
  return Math.round((n * 1000) / ms);
}

async function commandCalls() {
  const info = await admin.info('commandstats');
  let total = 0;
  for (const line of info.split('\n')) {
    const m = /^cmdstat_[^:]+:calls=(\d+),/.exec(line);
    if (m) total += Number(m[1]);
  }
  return total;
}

function noopJobs(from, count) {
  const jobs = [];
  for (let i = from; i < from + count; i += 1) {
    jobs.push({ name: 'noop', data: { i }, opts: JOB_OPTS });
  }
  return jobs;
}

async function addAllBulk(queue) {
  for (let i = 0; i < JOBS; i += BATCH) {
    checkInterrupted();
    await queue.addBulk(noopJobs(i, Math.min(BATCH, JOBS - i)));
  }
}

async function newQueue(name) {
  const queue = new Queue(name, { connection, prefix: PREFIX });
  await queue.waitUntilReady();
  return queue;
}

async function dropQueue(queue) {
  await queue.obliterate({ force: true });
  await queue.close();
}

async function singleAdd() {
  const queue = await newQueue('single');
  try {
    const t0 = performance.now();
    for (let i = 0; i < JOBS; i += 1) {
      checkInterrupted();
      await queue.add('noop', { i }, JOB_OPTS);
    }
    const ms = performance.now() - t0;
    console.log(`bullmq single_add jobs=${JOBS} jobs_per_s=${rate(JOBS, ms)}`);
  } finally {
    await dropQueue(queue);
  }
}

async function bulkAdd() {
  const queue = await newQueue('bulk');
  try {
    const t0 = performance.now();
    await addAllBulk(queue);
    const ms = performance.now() - t0;
    console.log(`bullmq bulk_add jobs=${JOBS} batch=${BATCH} jobs_per_s=${rate(JOBS, ms)}`);
  } finally {
    await dropQueue(queue);
  }
}

async function endToEnd(concurrency) {
  const name = `e2e_c${concurrency}`;
  const queue = await newQueue(name);
  let done = 0;
  let failed = 0;
  let finish;
  let fail;
  const allDone = new Promise((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  const worker = new Worker(name, async () => {}, {
    connection,
    prefix: PREFIX,
    concurrency,
    autorun: false,
  });
  worker.on('completed', () => {
    done += 1;
    if (done + failed === JOBS) finish(performance.now());
  });
  worker.on('failed', (_job, err) => {
    failed += 1;
    console.error(`# ${name}: a no-op job failed: ${err && err.message}`);
    if (done + failed === JOBS) finish(performance.now());
  });
  worker.on('error', (err) => fail(err));
  try {
    await worker.waitUntilReady();
    const calls0 = await commandCalls();
    const sent0 = { ...sent };
    const t0 = performance.now();
    await addAllBulk(queue);
    const tWorker = performance.now();
    worker.run().catch((err) => fail(err));
    const tEnd = await Promise.race([allDone, interruption]);
    const sent1 = { ...sent };
    const calls1 = await commandCalls();
    if (failed > 0) {
      throw new Error(`${failed} of ${JOBS} no-op jobs failed in ${name}; the figures would be wrong`);
    }
    // The INFO call that read `calls1` is not counted in it; the one that
    // read `calls0` is, so take it off.
    const serverCalls = calls1 - calls0 - 1;
    const clientCalls = sent1.all - sent0.all - 1;
    console.log(
      `bullmq ${name} jobs=${JOBS} jobs_per_s=${rate(JOBS, tEnd - t0)} ` +
        `worker_jobs_per_s=${rate(JOBS, tEnd - tWorker)} add_jobs_per_s=${rate(JOBS, tWorker - t0)}`,
    );
    console.log(
      `bullmq ${name} commands_per_job=${(serverCalls / JOBS).toFixed(2)} ` +
        `client_cmds_per_job=${(clientCalls / JOBS).toFixed(2)} ` +
        `evalsha_per_job=${((sent1.evalsha - sent0.evalsha) / JOBS).toFixed(2)}`,
    );
  } finally {
    await worker.close();
    await dropQueue(queue);
  }
}

async function deleteLeftovers() {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${PREFIX}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await admin.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}

async function main() {
  await admin.connect();
  const server = await admin.info('server');
  const clients = await admin.info('clients');
  const version = /redis_version:(\S+)/.exec(server);
  const connected = /connected_clients:(\d+)/.exec(clients);
  const bullmqVersion = JSON.parse(
    readFileSync(new URL('./node_modules/bullmq/package.json', import.meta.url), 'utf8'),
  ).version;
  console.log(
    `# bullmq ${bullmqVersion} node ${process.version} redis ${version ? version[1] : '?'} ` +
      `url ${REDIS_URL} prefix ${PREFIX} jobs ${JOBS}`,
  );
  console.log(`# connected_clients ${connected ? connected[1] : '?'} (1 is this script alone)`);
  try {
    await singleAdd();
    await bulkAdd();
    await endToEnd(1);
    await endToEnd(8);
  } finally {
    const left = await deleteLeftovers();
    if (left > 0) console.log(`# deleted ${left} keys left under ${PREFIX}:`);
    admin.disconnect();
  }
}

process.once('SIGINT', () => {
  interrupted = true;
  onInterrupt(new Error('interrupted'));
});

main().catch((err) => {
  if (interrupted) {
    const cleanUp = err && err.message !== 'interrupted' ? `, and the clean-up failed: ${err.message}` : '';
    console.error(`bullmq bench interrupted${cleanUp}`);
    process.exit(130);
  }
  console.error(`bullmq bench failed: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
