'use strict';
// This package: the Rust store (validation on both ways in Rust, JSON as text across N-API).

// BENCH_STORE_MODULE=/path/to/a/checkout runs another build (e.g. one with symbols for perf);
// the peer `ours-before` runs the build at BENCH_BEFORE_MODULE beside this one, for a change's
// before/after figures in one run.
const { RedisConversationStore } = require(process.env.BENCH_STORE_MODULE || '../..');

const quiet = {
  info() {},
  warn: (line) => process.stderr.write(`${line}\n`),
  error: (line) => process.stderr.write(`${line}\n`),
};

/** @param {{ url: string, caPem: string }} server @param {typeof RedisConversationStore} [Store] */
async function create({ url, caPem }, Store = RedisConversationStore) {
  const store = new Store(url, { tls: { ca: caPem }, logger: quiet });
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
