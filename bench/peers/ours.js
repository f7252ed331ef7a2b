'use strict';
// This package: the Rust store (validation on both ways in Rust, JSON as text across N-API).

// BENCH_STORE_MODULE=/path/to/a/checkout compares another build (e.g. one with symbols for perf).
const { RedisConversationStore } = require(process.env.BENCH_STORE_MODULE || '../..');

const quiet = {
  info() {},
  warn: (line) => process.stderr.write(`${line}\n`),
  error: (line) => process.stderr.write(`${line}\n`),
};

async function create({ url, caPem }) {
  const store = new RedisConversationStore(url, { tls: { ca: caPem }, logger: quiet });
  await store.ready();
  return {
    set: (id, conversation) => store.set(id, conversation),
    get: (id) => store.get(id),
    listByUser: (userId) => store.listByUser(userId),
    delete: (id) => store.delete(id),
    close: () => store.close(),
  };
}

module.exports = { label: 'ours', create };
