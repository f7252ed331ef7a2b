'use strict';
// A change's before and after, as pairs of cells whose order alternates: the build at
// BENCH_BEFORE_MODULE and this checkout's, one op at one concurrency, on bench/run.js's TLS
// server and data. A shared VM's speed drifts by a third within minutes, more than most
// changes move, so one cell of each says little; each pair's ratio is taken inside the pair
// (the two cells run back to back), and the medians and ranges over all pairs are printed.
//
//   BENCH_BEFORE_MODULE=<checkout with its addon built> node bench/ab.js [--op set]
//     [--concurrency 64] [--pairs 10] [--seconds 5] [--warmup 1]

const { startServer, runCell, load, gc, waitForQuiet, verifyState } = require('./lib');
const { makeWorkload } = require('./workload');

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const PARTS = ['jsUs', 'helpersUs', 'nativeUs', 'redisUs', 'totalUs'];
const fmt = (cpu) => PARTS.map((part) => cpu[part].toFixed(1).padStart(7)).join(' ');

async function main() {
  const op = option('op', 'set');
  const concurrency = Number(option('concurrency', '64'));
  const pairs = Number(option('pairs', '10'));
  const seconds = Number(option('seconds', '5'));
  const warmup = Number(option('warmup', '1'));
  if (!['get', 'set', 'listByUser', 'delete'].includes(op))
    throw new Error(`--op: get, set, listByUser or delete, not ${op}`);
  if (!(pairs >= 1 && seconds > 0 && warmup >= 0 && concurrency >= 1))
    throw new Error('--pairs, --seconds, --warmup, --concurrency: positive numbers');
  if (!process.env.BENCH_BEFORE_MODULE)
    throw new Error('BENCH_BEFORE_MODULE=<checkout with its addon built> names the "before"');

  const { server, admin, redis, stop } = await startServer();
  const data = makeWorkload();
  const builds = {
    before: await require('./peers/ours-before').create(server),
    after: await require('./peers/ours').create(server),
  };
  const expected = new Map();
  await load(builds.after, data, expected);
  let keyBase = 0;
  let failures = 0;
  const rows = [];
  console.log(`${op} at c = ${concurrency}, ${pairs} pairs of ${seconds} s cells, order alternating; CPU µs per op:`);
  console.log(`pair  build   ${PARTS.map((p) => p.replace('Us', '').padStart(7)).join(' ')}    ops/s`);
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
      if (op === 'set' || op === 'delete') r.failures += (await verifyState(admin, data, expected)).length;
      failures += r.failures;
      cells[build] = r;
      console.log(
        `${String(pair + 1).padStart(4)}  ${build.padEnd(6)}  ${fmt(r.cpuPerOp)}  ${Math.round(r.opsPerSec).toLocaleString('en-US').padStart(7)}`,
      );
    }
    rows.push({
      total: cells.after.cpuPerOp.totalUs / cells.before.cpuPerOp.totalUs,
      native: cells.after.cpuPerOp.nativeUs / cells.before.cpuPerOp.nativeUs,
      redis: cells.after.cpuPerOp.redisUs / cells.before.cpuPerOp.redisUs,
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
    const values = rows.map((row) => row[name]);
    const below = values.filter((v) => v < 1).length;
    console.log(
      `  ${label.padEnd(28)} ${median(values).toFixed(3)} (${Math.min(...values).toFixed(3)} to ${Math.max(...values).toFixed(3)}; below 1 in ${below} of ${values.length})`,
    );
  }
  if (failures) console.log(`FAILURES: ${failures}`);
  for (const build of Object.values(builds)) await build.close();
  await stop();
  return failures;
}

main()
  .then((failures) => {
    process.exitCode = failures ? 1 : 0;
  })
  .catch((error) => {
    console.error(error?.stack ? error.stack : error);
    process.exitCode = 1;
  });
