'use strict';
// CPU per set one slot per command: the path of a cluster and of Azure Managed Redis'
// Enterprise policy, which bench/run.js (a standalone server) does not take. A one-node Redis
// Cluster holding every slot, reached as one endpoint (the policy's emulation, as in
// __test__/enterprise-policy.test.js), over TLS; 64 closed-loop workers set the bench's
// documents; each cell reports sets a second and the CPU per set of this process (all its
// threads) and of redis-server (INFO cpu).
//
//   node bench/one-slot.js [--seconds 5]
//
// With BENCH_BEFORE_MODULE=<checkout with its addon built>, that build runs too, in
// alternating cells (before, after, after, before), for a change's figures.

const { makeCerts, stopAll } = require('../support/redis');
const { startSlotCheckingServer, stopAllClusters } = require('../support/cluster');
const { makeWorkload } = require('./workload');
const { serverCpuUs } = require('./lib');
const { readArgs, numberArg } = require('./args');

const CONCURRENCY = 64;
const WARMUP_MS = 1000;
const silent = { info() {}, warn() {}, error() {} };

async function cell(name, module, node, conversations, seconds) {
  const { RedisConversationStore } = require(module);
  const store = new RedisConversationStore(node.url, {
    tls: { ca: node.caPem },
    keyPrefix: `${name}:`,
    logger: silent,
  });
  await store.ready();
  // The first set is refused with CROSSSLOT and redone: one slot per command from then on.
  await store.set(conversations[0].id, conversations[0].conversation);
  let done = 0;
  let next = 0;
  let stop = false;
  const worker = async () => {
    while (!stop) {
      const { id, conversation } = conversations[next++ % conversations.length];
      await store.set(id, conversation);
      done++;
    }
  };
  const workers = Array.from({ length: CONCURRENCY }, worker);
  await new Promise((resolve) => setTimeout(resolve, WARMUP_MS));
  const start = { done, cpu: process.cpuUsage(), redis: await serverCpuUs(node), at: process.hrtime.bigint() };
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const ops = done - start.done;
  const cpu = process.cpuUsage(start.cpu);
  const redisUs = (await serverCpuUs(node)) - start.redis;
  const elapsed = Number(process.hrtime.bigint() - start.at) / 1e9;
  stop = true;
  await Promise.all(workers);
  await store.close();
  const clientPerSet = (cpu.user + cpu.system) / ops;
  const redisPerSet = redisUs / ops;
  console.log(
    `${name.padEnd(6)} ${Math.round(ops / elapsed)
      .toLocaleString('en-US')
      .padStart(
        7,
      )} sets/s  CPU per set: this process ${clientPerSet.toFixed(1)} µs, redis-server ${redisPerSet.toFixed(1)} µs, total ${(clientPerSet + redisPerSet).toFixed(1)} µs`,
  );
}

async function main() {
  const args = readArgs({ seconds: { type: 'string', default: '5' } }, 'usage: node bench/one-slot.js [--seconds 5]');
  const seconds = numberArg(args, 'seconds');
  const certs = await makeCerts();
  const node = await startSlotCheckingServer({ certs });
  const { conversations } = makeWorkload();
  const before = process.env.BENCH_BEFORE_MODULE;
  const cells = before
    ? [
        ['before', before],
        ['after', '..'],
        ['after', '..'],
        ['before', before],
      ]
    : [['this', '..']];
  console.log(`set at c = ${CONCURRENCY}, one slot per command, ${seconds} s a cell, ~9.7 KB documents over TLS`);
  for (const [name, module] of cells) await cell(name, module, node, conversations, seconds);
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(async () => {
    await stopAllClusters();
    await stopAll();
  });
