'use strict';
// The bench's CPU accounting: per-op figures split into the JavaScript thread, Node's helper
// threads, the native threads and redis-server, against a real TLS redis-server.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { Worker } = require('node:worker_threads');
const { once } = require('node:events');

const { cpuSnapshot, cpuPerOp } = require('../bench/lib');
const { startRedis, stopAll } = require('../support/redis');

after(stopAll);

test('cpuPerOp splits the process CPU into JS thread, helpers and native threads, and adds redis-server', () => {
  const a = { total: 1_000, js: 500, helpers: 100, redis: 2_000 };
  const b = { total: 31_000, js: 20_500, helpers: 1_100, redis: 12_000 };
  assert.deepEqual(cpuPerOp(a, b, 100), {
    jsUs: 200,
    helpersUs: 10,
    nativeUs: 90,
    processUs: 300,
    redisUs: 100,
    totalUs: 400,
  });
  assert.equal(cpuPerOp(a, b, 0), undefined);
});

test('cpuSnapshot charges busy JavaScript to the JS thread, a busy other thread outside it, and reads redis-server', async (t) => {
  if (process.platform !== 'linux') return t.skip('per-thread CPU is read from /proc');
  const server = await startRedis();
  const Redis = require('ioredis');
  const admin = new Redis({ host: server.host, port: server.port, tls: { ca: server.caPem }, lazyConnect: true });
  await admin.connect();
  t.after(() => admin.disconnect());

  // Spins until the process has used `ms` of CPU (the machine may be busy: wall time says little).
  const spin = (ms) => {
    const used = () => process.cpuUsage().user + process.cpuUsage().system;
    const end = used() + ms * 1000;
    while (used() < end) {}
  };
  const a = await cpuSnapshot(admin);
  spin(300); // the JS thread
  // Another thread of this process (unnamed, so `node` as Node's own helpers): it stays alive
  // until the second snapshot, since a thread that has ended is gone from /proc/self/task.
  const worker = new Worker(
    `const { parentPort } = require('node:worker_threads'); (${spin})(300); parentPort.postMessage('spun'); setInterval(() => {}, 1000);`,
    { eval: true },
  );
  t.after(() => worker.terminate());
  await once(worker, 'message');
  for (let i = 0; i < 200; i++) await admin.set(`k${i}`, 'x'.repeat(1000));
  const b = await cpuSnapshot(admin);

  const js = b.js - a.js;
  const helpers = b.helpers - a.helpers;
  assert.ok(js >= 200_000, `JS thread: ${js} µs for 300 ms of CPU spent spinning`);
  assert.ok(js < 600_000, `JS thread: ${js} µs, the worker's CPU counted in it`);
  assert.ok(helpers >= 200_000, `helper threads: ${helpers} µs for a worker spending 300 ms of CPU`);
  assert.ok(b.redis > a.redis, `redis-server: ${a.redis} → ${b.redis} µs over 200 SETs`);
});
