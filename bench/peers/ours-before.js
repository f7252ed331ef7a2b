'use strict';
// This store as built at BENCH_BEFORE_MODULE (a checkout with its addon built): a change's
// "before", measured in the same run as the working tree's `ours`.

const ours = require('./ours');

const before = process.env.BENCH_BEFORE_MODULE;

async function create(server) {
  if (!before) throw new Error('the peer ours-before needs BENCH_BEFORE_MODULE=/path/to/a/checkout');
  return ours.create(server, require(before).RedisConversationStore);
}

module.exports = { label: 'ours-before', create };
