'use strict';
// A change's before and after, as pairs of cells whose order alternates: the build at
// BENCH_BEFORE_MODULE and this checkout's, one op at one concurrency, on bench/run.js's TLS
// server and data. A shared VM's speed drifts by a third within minutes, more than most
// changes move, so one cell of each says little; each pair's ratio is taken inside the pair
// (the two cells run back to back), and the medians and ranges over all pairs are printed.
//
//   BENCH_BEFORE_MODULE=<checkout with its addon built> node bench/ab.js [--op set]
//     [--concurrency 64] [--pairs 10] [--seconds 5] [--warmup 1]

const { startServer, runCell, load, gc, waitForQuiet, verifyState, checkStateAfterCell, median } = require('./lib');
const { makeWorkload } = require('./workload');
const { readArgs, numberArg, choiceArg } = require('./args');

const USAGE =
  'usage: BENCH_BEFORE_MODULE=<checkout with its addon built> node bench/ab.js [--op set|get|listByUser|delete] [--concurrency 64] [--pairs 10] [--seconds 5] [--warmup 1]';

function parseCommandLine() {
  const values = readArgs(
    {
      op: { type: 'string', default: 'set' },
      concurrency: { type: 'string', default: '64' },
      pairs: { type: 'string', default: '10' },
      seconds: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
    },
    USAGE,
  );
  return {
    op: choiceArg(values, 'op', ['get', 'set', 'listByUser', 'delete']),
    concurrency: numberArg(values, 'concurrency', { whole: true, max: 1024 }),
    pairs: numberArg(values, 'pairs', { whole: true, max: 100 }),
    seconds: numberArg(values, 'seconds', { max: 60 }),
    warmup: numberArg(values, 'warmup', { min: 0, max: 30 }),
  };
}

const PARTS = ['jsUs', 'helpersUs', 'nativeUs', 'redisUs', 'totalUs'];
const fmt = (cpu) =>
  PARTS.map((part) => (Number.isFinite(cpu?.[part]) ? cpu[part].toFixed(1) : '-').padStart(7)).join(' ');

async function main() {
  const { op, concurrency, pairs, seconds, warmup } = parseCommandLine();
  const before = process.env.BENCH_BEFORE_MODULE;
  if (!before) throw new Error(`BENCH_BEFORE_MODULE names the "before"\n${USAGE}`);
  // Everything stops by itself, and an interrupted run stops its redis-server (the harness'
  // exit hook): as bench/run.js.
  const budgetMs = (pairs * 2 * (warmup + seconds + 75) + 300) * 1000;
  setTimeout(() => {
    console.error(`ab: over its time budget (${Math.round(budgetMs / 1000)} s); giving up`);
    process.exit(2);
  }, budgetMs).unref();
  process.once('SIGINT', () => process.exit(130));

  const { server, admin, redis } = await startServer();
  const data = makeWorkload();
  const builds = {
    before: await require('./peers/ours-before').create(server),
    after: await require('./peers/ours').create(server),
  };
  const expected = new Map();
  await load(builds.after, data, expected);
  const loadProblems = await verifyState(admin, data, expected);
  if (loadProblems.length) throw new Error(`loading failed:\n  ${loadProblems.join('\n  ')}`);
  let keyBase = 0;
  let failures = 0;
  const rows = [];
  console.log(`before: ${before}; after: ${process.env.BENCH_STORE_MODULE || 'this checkout'}`);
  console.log(`${op} at c = ${concurrency}, ${pairs} pairs of ${seconds} s cells, order alternating; CPU µs per op:`);
  if (pairs % 2) console.log('(an odd number of pairs: "before" runs first once more than "after")');
  console.log(`pair  build   ${PARTS.map((p) => p.replace('Us', '').padStart(7)).join(' ')}    ops/s  other cores`);
  for (let pair = 0; pair < pairs; pair++) {
    const order = pair % 2 === 0 ? ['before', 'after'] : ['after', 'before'];
    const cells = {};
    for (const build of order) {
      gc();
      await waitForQuiet({ redisPid: redis.pid, maxMs: 60_000 });
      const ctx = { peer: builds[build], data, admin, expected, checkEvery: 8 };
      const r = await runCell({
        op,
        concurrency,
        warmupMs: warmup * 1000,
        measureMs: seconds * 1000,
        ctx,
        keyBase,
        redisPid: redis.pid,
      });
      keyBase += r.keysUsed;
      await checkStateAfterCell(r, ctx);
      failures += r.failures;
      cells[build] = r;
      const others = r.cpuCores ? r.cpuCores.others.toFixed(2) : '-';
      console.log(
        `${String(pair + 1).padStart(4)}  ${build.padEnd(6)}  ${fmt(r.cpuPerOp)}  ${Math.round(r.opsPerSec).toLocaleString('en-US').padStart(7)}  ${others.padStart(11)}` +
          (r.failures ? `  FAILURES ${r.failures}: ${r.failureSamples.join(' | ')}` : ''),
      );
    }
    const ratio = (part) => cells.after.cpuPerOp?.[part] / cells.before.cpuPerOp?.[part];
    rows.push({
      total: ratio('totalUs'),
      native: ratio('nativeUs'),
      redis: ratio('redisUs'),
      ops: cells.after.opsPerSec / cells.before.opsPerSec,
    });
  }
  console.log('after ÷ before, median (range) over the pairs:');
  for (const [name, label] of [
    ['total', 'CPU per op, total'],
    ['native', 'CPU per op, native threads'],
    ['redis', 'CPU per op, redis-server'],
    ['ops', 'ops/s'],
  ]) {
    // A cell without ops (or without /proc) has no ratio.
    const values = rows.map((row) => row[name]).filter(Number.isFinite);
    if (values.length === 0) {
      console.log(`  ${label.padEnd(28)} -`);
      continue;
    }
    const below = values.filter((v) => v < 1).length;
    console.log(
      `  ${label.padEnd(28)} ${median(values).toFixed(3)} (${Math.min(...values).toFixed(3)} to ${Math.max(...values).toFixed(3)}; below 1 in ${below} of ${values.length})`,
    );
  }
  if (failures) console.log(`FAILURES: ${failures}: these figures are not valid`);
  for (const build of Object.values(builds)) await build.close();
  return failures;
}

// process.exit runs the harness' exit hook, which stops redis-server; an open client would
// otherwise keep the process (and the server) alive after an error.
main().then(
  (failures) => process.exit(failures ? 1 : 0),
  (error) => {
    console.error(error?.stack ? error.stack : error);
    process.exit(1);
  },
);
