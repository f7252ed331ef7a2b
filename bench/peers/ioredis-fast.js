'use strict';
// ioredis at its best: the same store with `enableAutoPipelining` and no validation.

const { createIoredisStore } = require('./ioredis-zod');

module.exports = {
  label: 'ioredis-fast',
  create: (server) => createIoredisStore(server, { validate: false, clientOptions: { enableAutoPipelining: true } }),
};
