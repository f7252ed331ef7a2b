'use strict';
// Ops a second and CPU per op of set, get and listByUser in cluster mode, which bench/run.js
// (a standalone server) does not take: a local TLS cluster of three primaries, each on its
// own loopback address with a certificate naming only localhost, the store seeded by name;
// 64 closed-loop workers on the bench's documents. CPU per op is this process's (all its
// threads, `process.cpuUsage`) and the three redis-servers' (`INFO cpu`).
//
//   node bench/cluster-cells.js [--seconds 3] [--pairs 3]
//
// With BENCH_BEFORE_MODULE=<checkout with its addon built>, each op runs as `--pairs` pairs
// of cells, that build's and this checkout's, the order alternating from pair to pair; the
// median of the pairs' after ÷ before ratios is printed per op.

const { startCluster, stopAllClusters } = require('../support/cluster');
const { makeNameOnlyCerts } = require('../support/redis');
const { makeWorkload } = require('./workload');
const { serverCpuUs, median } = require('./lib');
const { readArgs, numberArg } = require('./args');

const CONCURRENCY = 64;
const WARMUP_MS = 1000;
const OPS = ['set', 'get', 'listByUser'];
const silent = { info() {}, warn() {}, error() {} };

/** The primaries' CPU so far in µs, all of them together. */
async function redisCpuUs(cluster, primaries) {
  let total = 0;
  for (const { port } of primaries) total += await serverCpuUs(cluster.node(port));
  return total;
}

async function cell(module, op, cluster, primaries, workload, seconds) {
  const { RedisConversationStore } = require(module);
  const store = new RedisConversationStore(cluster.seedUrl, {
    cluster: true,
    tls: { ca: cluster.caPem },
    logger: silent,
  });
  await store.ready();
  const { conversations, userIds } = workload;
  let done = 0;
  let stop = false;
  const call = {
    set: (i) =>
      store.set(conversations[i % conversations.length].id, conversations[i % conversations.length].conversation),
    get: (i) => store.get(conversations[i % conversations.length].id),
    listByUser: (i) => store.listByUser(userIds[i % userIds.length]),
  }[op];
  const worker = async (w) => {
    for (let i = w; !stop; i += CONCURRENCY) {
      await call(i);
      done++;
    }
  };
  const workers = Array.from({ length: CONCURRENCY }, (_, w) => worker(w));
  await new Promise((resolve) => setTimeout(resolve, WARMUP_MS));
  const start = {
    done,
    cpu: process.cpuUsage(),
    redis: await redisCpuUs(cluster, primaries),
    at: process.hrtime.bigint(),
  };
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const ops = done - start.done;
  const cpu = process.cpuUsage(start.cpu);
  const redisUs = (await redisCpuUs(cluster, primaries)) - start.redis;
  const elapsed = Number(process.hrtime.bigint() - start.at) / 1e9;
  stop = true;
  await Promise.all(workers);
  await store.close();
  return { opsPerSec: ops / elapsed, clientUs: (cpu.user + cpu.system) / ops, redisUs: redisUs / ops };
}

function line(name, op, r) {
  const total = r.clientUs + r.redisUs;
  return `${name.padEnd(6)} ${op.padEnd(10)} ${Math.round(r.opsPerSec).toLocaleString('en-US').padStart(7)} ops/s  CPU per op: this process ${r.clientUs.toFixed(1)} µs, redis-servers ${r.redisUs.toFixed(1)} µs, total ${total.toFixed(1)} µs`;
}

async function main() {
  const args = readArgs(
    { seconds: { type: 'string', default: '3' }, pairs: { type: 'string', default: '3' } },
    'usage: node bench/cluster-cells.js [--seconds 3] [--pairs 3]',
  );
  const seconds = numberArg(args, 'seconds');
  const pairs = numberArg(args, 'pairs', { whole: true });
  const cluster = await startCluster({
    primaries: 3,
    replicasPerPrimary: 0,
    certs: await makeNameOnlyCerts(),
    seedHost: 'localhost',
  });
  const primaries = await cluster.primaries();
  const workload = makeWorkload();
  const before = process.env.BENCH_BEFORE_MODULE;
  console.log(
    `cluster of ${primaries.length} TLS primaries, c = ${CONCURRENCY}, ${seconds} s a cell, ${workload.averageBytes} B documents`,
  );
  // Every record and index exists before the first read.
  await cell('..', 'set', cluster, primaries, workload, seconds);
  for (const op of OPS) {
    if (!before) {
      console.log(line('this', op, await cell('..', op, cluster, primaries, workload, seconds)));
      continue;
    }
    const ratios = { opsPerSec: [], clientUs: [], total: [] };
    for (let pair = 0; pair < pairs; pair++) {
      const order = pair % 2 === 0 ? ['before', 'after'] : ['after', 'before'];
      const results = {};
      for (const name of order) {
        results[name] = await cell(name === 'before' ? before : '..', op, cluster, primaries, workload, seconds);
        console.log(line(name, op, results[name]));
      }
      const { before: b, after: a } = results;
      ratios.opsPerSec.push(a.opsPerSec / b.opsPerSec);
      ratios.clientUs.push(a.clientUs / b.clientUs);
      ratios.total.push((a.clientUs + a.redisUs) / (b.clientUs + b.redisUs));
    }
    console.log(
      `${op}: after ÷ before, median of ${pairs}: ops/s ${median(ratios.opsPerSec).toFixed(3)}, CPU per op of this process ${median(ratios.clientUs).toFixed(3)}, total ${median(ratios.total).toFixed(3)}`,
    );
  }
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(stopAllClusters);
