'use strict';
// Runs one operation of one peer (this package unless --peer names another) at one concurrency
// for a while, for a profiler to attach: the server and the data are set up first, then
// "ready <node pid> <redis-server pid>" is printed, and on SIGUSR1 (the profiler attached) the op
// runs for --seconds; then both processes exit, which ends the profiler's count.
// bench/profile.sh drives it under `perf record` and `perf stat`.
//
//   node --perf-basic-prof bench/profile.js [--op get] [--peer ours] [--concurrency 64] [--seconds 8]

const { readArgs, numberArg, choiceArg } = require('./args');
const { PEERS, startServer, runCell, load, gc } = require('./lib');
const { makeWorkload } = require('./workload');

async function main() {
  const args = readArgs(
    {
      op: { type: 'string', default: 'get' },
      peer: { type: 'string', default: 'ours' },
      concurrency: { type: 'string', default: '64' },
      seconds: { type: 'string', default: '8' },
    },
    'usage: node --perf-basic-prof bench/profile.js [--op get|set|listByUser] [--peer ours] [--concurrency 64] [--seconds 8]',
  );
  const op = choiceArg(args, 'op', ['get', 'set', 'listByUser']);
  const peerName = choiceArg(args, 'peer', PEERS);
  const concurrency = numberArg(args, 'concurrency', { whole: true });
  const seconds = numberArg(args, 'seconds');
  const { server, admin, redis, stop } = await startServer();
  const data = makeWorkload();
  const peer = await require(`./peers/${peerName}`).create(server);
  const expected = new Map();
  await load(peer, data, expected);
  // Warm up the JIT on the op before the profiler attaches.
  const ctx = { peer, data, admin, expected, checkEvery: 8 };
  await runCell({ op, concurrency, warmupMs: 500, measureMs: 1000, ctx });
  gc();
  const attached = new Promise((resolve) => process.once('SIGUSR1', resolve));
  // Run by hand, it waits for `kill -USR1 <node pid>`; not for ever (the exit hook stops redis).
  const unattended = setTimeout(() => {
    console.error('profile.js: no SIGUSR1 within 60 s of ready; nothing profiled');
    process.exit(2);
  }, 60_000);
  console.log(`ready ${process.pid} ${redis.pid}`);
  await attached;
  clearTimeout(unattended);
  const r = await runCell({ op, concurrency, warmupMs: 0, measureMs: seconds * 1000, ctx, keyBase: 1e6 });
  console.log(
    `done ${op} c=${concurrency} (${peerName}): ${Math.round(r.opsPerSec)} ops/s, ${r.failures} failures, ${r.ops} ops`,
  );
  console.log(`cpu per op (µs): ${JSON.stringify(r.cpuPerOp)}`);
  await peer.close();
  await stop();
  process.exit(r.failures ? 1 : 0);
}

main().catch((error) => {
  console.error(error?.stack ? error.stack : error);
  process.exit(1);
});
