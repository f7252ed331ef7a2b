'use strict';
// Memory: N mixed operations (default 1,000,000) through this package's store at bounded
// concurrency, sampling RSS every 100k operations. Exits 1 if RSS grew by 50 MB or more
// (from after the warm-up to the end), or if any result was wrong.
//
//   node bench/memory.js [--ops 1000000] [--concurrency 64] [--max-seconds 900] [--sample-every 100000]
//
// Mix: ~52% get, ~30% set, ~16% delete (each followed by a re-set of the same conversation),
// 2% listByUser (every 50th operation). Writes race with lists here, so a list is checked for
// its owner and size, not for order (run.js checks order with no writer running). The first 2%
// of operations are warm-up: V8's heap and the allocators reach their working size before the
// start sample.

const { readArgs, numberArg } = require('./args');
const { startServer, OPS: CHECKED_OPS, load, gc, mb } = require('./lib');
const { makeWorkload } = require('./workload');

const LIMIT_MB = 50;

/** A list while sets and deletes run: the owner's conversations, a few possibly mid-delete. */
async function listWhileWriting(ctx, k) {
  const userId = ctx.data.userIds[k % ctx.data.userIds.length];
  const list = await ctx.peer.listByUser(userId);
  if (!Array.isArray(list) || list.length < 40 || list.length > 50)
    throw new Error(`listByUser ${userId}: ${list?.length} items`);
  for (const c of list) if (!c || c.userId !== userId) throw new Error(`listByUser ${userId}: an item of ${c?.userId}`);
}

const OPS = { ...CHECKED_OPS, listByUser: listWhileWriting };

function parseCommandLine() {
  const values = readArgs(
    {
      ops: { type: 'string', default: '1000000' },
      concurrency: { type: 'string', default: '64' },
      'max-seconds': { type: 'string', default: '900' },
      'sample-every': { type: 'string', default: '100000' },
    },
    'usage: node bench/memory.js [--ops 1000000] [--concurrency 64] [--max-seconds 900] [--sample-every 100000]',
  );
  return {
    ops: numberArg(values, 'ops', { above: 1000, whole: true }),
    concurrency: numberArg(values, 'concurrency', { whole: true }),
    maxSeconds: numberArg(values, 'max-seconds'),
    sampleEvery: numberArg(values, 'sample-every', { whole: true }),
  };
}

/** Which operation the k-th one is: deterministic. */
function opFor(k) {
  if (k % 50 === 49) return 'listByUser'; // 2%
  const r = (k * 2654435761) % 100;
  if (r < 53) return 'get';
  if (r < 84) return 'set';
  return 'delete';
}

async function main() {
  const args = parseCommandLine();
  process.once('SIGINT', () => process.exit(130));
  const deadline = Date.now() + args.maxSeconds * 1000;
  const hardStop = setTimeout(
    () => {
      console.error(`memory: still running after ${args.maxSeconds + 60} s; giving up`);
      process.exit(2);
    },
    (args.maxSeconds + 60) * 1000,
  );
  hardStop.unref();

  const { server, admin, stop } = await startServer();
  const data = makeWorkload();
  const ours = await require('./peers/ours').create(server);
  const expected = new Map();
  await load(ours, data, expected);
  gc();
  const baseline = process.memoryUsage().rss;
  console.log(
    `memory: ${args.ops.toLocaleString('en-US')} mixed operations at concurrency ${args.concurrency}; RSS after loading ${mb(baseline)} MB`,
  );

  const ctx = { peer: ours, data, admin, expected, checkEvery: 1000 };
  const warmup = Math.max(1000, Math.floor(args.ops * 0.02));
  const counts = { get: 0, set: 0, delete: 0, listByUser: 0 };
  const samples = [];
  let next = 0;
  let done = 0;
  let calls = 0;
  let failures = 0;
  const failureSamples = [];
  let startRss;
  let maxRss = 0;
  let timedOut = false;
  const t0 = Date.now();

  const sample = (label) => {
    const m = process.memoryUsage();
    maxRss = Math.max(maxRss, m.rss);
    const s = {
      ops: done,
      rssMb: mb(m.rss),
      heapUsedMb: mb(m.heapUsed),
      externalMb: mb(m.external),
      seconds: (Date.now() - t0) / 1000,
    };
    samples.push(s);
    console.log(
      `  ${label.padEnd(8)} ${String(s.ops).padStart(8)} ops  RSS ${String(s.rssMb).padStart(6)} MB  heap ${String(s.heapUsedMb).padStart(6)} MB  external ${String(s.externalMb).padStart(5)} MB  ${s.seconds.toFixed(1)} s`,
    );
  };

  async function worker() {
    let sinceYield = 0;
    while (next < args.ops) {
      if (++sinceYield === 256) {
        sinceYield = 0;
        await new Promise(setImmediate); // never starve the timers, whatever the store does
      }
      if (Date.now() > deadline) {
        timedOut = true;
        return;
      }
      const k = next++;
      const op = opFor(k);
      try {
        await OPS[op](ctx, k);
      } catch (error) {
        failures++;
        if (failureSamples.length < 5) failureSamples.push(`${op}: ${error?.message}`);
      }
      counts[op]++;
      done++;
      calls += op === 'delete' ? 2 : 1; // a delete puts the conversation back: two store calls
      if (done >= warmup && startRss === undefined) {
        startRss = -1; // taken below, once, after a GC
        gc();
        startRss = process.memoryUsage().rss;
        sample('start');
      } else if (Math.floor(done / args.sampleEvery) > samples.length - 1 && startRss > 0) {
        sample('sample');
      }
    }
  }

  await Promise.all(Array.from({ length: args.concurrency }, worker));
  gc();
  await new Promise((resolve) => setTimeout(resolve, 200));
  gc();
  sample('end');
  const endRss = samples[samples.length - 1].rssMb * 1048576;
  const seconds = (Date.now() - t0) / 1000;

  await ours.close();
  await stop();

  const growthMb = mb(endRss - startRss);
  console.log('');
  console.log(
    `operations: ${done.toLocaleString('en-US')} (${calls.toLocaleString('en-US')} store calls) in ${seconds.toFixed(1)} s (${Math.round(done / seconds).toLocaleString('en-US')}/s): ` +
      Object.entries(counts)
        .map(([op, n]) => `${op} ${n}`)
        .join(', ') +
      ` (each delete also re-sets)`,
  );
  console.log(
    `RSS: start ${mb(startRss)} MB (after ${warmup} warm-up ops), end ${mb(endRss)} MB, max ${mb(maxRss)} MB, growth ${growthMb} MB (limit < ${LIMIT_MB} MB)`,
  );
  let status = 0;
  if (failures) {
    console.error(`memory: ${failures} CHECK FAILURES: ${failureSamples.join(' | ')}`);
    status = 1;
  }
  if (timedOut) {
    console.error(`memory: stopped at the ${args.maxSeconds} s limit before ${args.ops} operations`);
    status = 1;
  }
  if (!(growthMb < LIMIT_MB)) {
    console.error(`memory: RSS grew ${growthMb} MB (>= ${LIMIT_MB} MB)`);
    status = 1;
  }
  process.exit(status);
}

main().catch((error) => {
  console.error(error?.stack ? error.stack : error);
  process.exit(1);
});
