'use strict';
// Runs one operation of this package at one concurrency for a while, for a profiler to attach:
// the server and the data are set up first, then "ready <node pid> <redis-server pid>" is
// printed and the op runs for --seconds. bench/profile.sh drives it under `perf record`.
//
//   node --perf-basic-prof bench/profile.js --op get|set|listByUser [--concurrency 64] [--seconds 8]

const { startServer, runCell, load, gc } = require('./lib');
const { makeWorkload } = require('./workload');

async function main() {
  const argv = process.argv.slice(2);
  const arg = (name, fallback) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 && i + 1 < argv.length ? argv[i + 1] : fallback;
  };
  const op = arg('op', 'get');
  const concurrency = Number(arg('concurrency', '64'));
  const seconds = Number(arg('seconds', '8'));
  if (!['get', 'set', 'listByUser'].includes(op)) throw new Error(`--op: get, set or listByUser, not ${op}`);
  const { server, admin, redis, stop } = await startServer();
  const data = makeWorkload();
  const peer = await require('./peers/ours').create(server);
  const expected = new Map();
  await load(peer, data, expected);
  // Warm up the JIT on the op before the profiler attaches.
  const ctx = { peer, data, admin, expected, checkEvery: 8 };
  await runCell({ op, concurrency, warmupMs: 500, measureMs: 1000, ctx });
  gc();
  console.log(`ready ${process.pid} ${redis.pid}`);
  const r = await runCell({ op, concurrency, warmupMs: 0, measureMs: seconds * 1000, ctx, keyBase: 1e6 });
  console.log(`done ${op} c=${concurrency}: ${Math.round(r.opsPerSec)} ops/s, ${r.failures} failures`);
  console.log(`cpu per op (µs): ${JSON.stringify(r.cpuPerOp)}`);
  await peer.close();
  await stop();
  process.exit(r.failures ? 1 : 0);
}

main().catch((error) => {
  console.error(error?.stack ? error.stack : error);
  process.exit(1);
});
