'use strict';
// What tracing adds to a call, without Redis: the in-memory store's get and set in a tight
// loop, rounds alternating between no subscriber and a subscriber that counts every event of
// the `redis-store:call` TracingChannel. Reports the CPU time per call (µs) of each, median
// and spread over the rounds: the absolute cost, which bench/run.js's Redis figures put in
// proportion (a Redis call costs Node ~100 µs of CPU at c=64).
//
//   node bench/trace-overhead.js [--rounds 10] [--calls 20000]

const diagnosticsChannel = require('node:diagnostics_channel');
const { InMemoryConversationStore, STORE_CALL_CHANNEL } = require(process.env.BENCH_STORE_MODULE || '..');
const { makeConversation } = require('../support/conversations');
const { readArgs, numberArg } = require('./args');

const ARGS = readArgs(
  { rounds: { type: 'string', default: '10' }, calls: { type: 'string', default: '20000' } },
  'usage: node bench/trace-overhead.js [--rounds 10] [--calls 20000]',
);
const ROUNDS = numberArg(ARGS, 'rounds', { whole: true });
const CALLS = numberArg(ARGS, 'calls', { whole: true });

// A build without tracing (BENCH_STORE_MODULE=main) exports no name: the subscriber then sees nothing.
const channel = diagnosticsChannel.tracingChannel(STORE_CALL_CHANNEL ?? 'redis-store:call');
let events = 0;
const count = () => {
  events += 1;
};
const subscriber = { start: count, end: count, asyncStart: count, asyncEnd: count, error: count };

/** CPU µs per call of `calls` calls of `op`, 64 in flight at a time. */
async function measure(store, op, ids, conversations) {
  const started = process.cpuUsage();
  for (let i = 0; i < CALLS; i += 64) {
    const batch = [];
    for (let j = 0; j < Math.min(64, CALLS - i); j++) {
      const k = (i + j) % ids.length;
      batch.push(op === 'get' ? store.get(ids[k]) : store.set(ids[k], conversations[k]));
    }
    await Promise.all(batch);
  }
  const used = process.cpuUsage(started);
  return (used.user + used.system) / CALLS;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const store = new InMemoryConversationStore();
  const conversations = Array.from({ length: 1000 }, (_, i) => makeConversation({ userId: `user-${i % 50}` }));
  const ids = conversations.map((c) => c.externalId);
  await Promise.all(conversations.map((c) => store.set(c.externalId, c)));
  for (const op of ['get', 'set']) {
    const plain = [];
    const traced = [];
    await measure(store, op, ids, conversations); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      plain.push(await measure(store, op, ids, conversations));
      channel.subscribe(subscriber);
      traced.push(await measure(store, op, ids, conversations));
      channel.unsubscribe(subscriber);
    }
    const fmt = (xs) =>
      `median ${median(xs).toFixed(2)} µs (min ${Math.min(...xs).toFixed(2)}, max ${Math.max(...xs).toFixed(2)})`;
    console.log(`${op}: no subscriber ${fmt(plain)}; counting subscriber ${fmt(traced)}`);
    console.log(`${op}: tracing adds ${(median(traced) - median(plain)).toFixed(2)} µs per call (medians)`);
  }
  console.log(`events counted: ${events}`);
  await store.close();
}

main();
