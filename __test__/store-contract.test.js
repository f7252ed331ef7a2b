'use strict';
// The storage contract of docs/DESIGN.md, one suite run against both stores: whatever the
// in-memory store does in development, the Redis store does in production.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { setTimeout: delay } = require('node:timers/promises');

const { InMemoryConversationStore, RedisConversationStore } = require('..');
const { startRedis, stopAll, withLogOnFailure } = require('../support/redis');
const { makeConversation, persisted } = require('../support/conversations');
const { defineContractSuite } = require('../support/contract');
const { silentLogger } = require('../support/observe');

let server;
let prefixes = 0;

before(async () => {
  server = await startRedis();
});
after(stopAll);

defineContractSuite(
  'InMemoryConversationStore',
  async (options) => new InMemoryConversationStore({ logger: silentLogger, ...options }),
);

defineContractSuite(
  'RedisConversationStore',
  async (options) => {
    prefixes += 1;
    const store = new RedisConversationStore(server.url, {
      tls: { ca: server.caPem },
      keyPrefix: `contract-${prefixes}:`,
      logger: silentLogger,
      ...options,
    });
    await store.ready();
    return store;
  },
  { around: (fn) => withLogOnFailure(server, fn) },
);

// Redis TTLs are read with the TTL command in redis-layout.test.js; memory has no such probe,
// so here the clock has to pass. Both tests wait at the same time.
describe('InMemoryConversationStore TTL', { concurrency: true }, () => {
  test('a conversation is gone from get and listByUser once ttlSeconds have passed', async () => {
    const store = new InMemoryConversationStore({ ttlSeconds: 1, logger: silentLogger });
    const conversation = makeConversation();
    const id = conversation.externalId;
    await store.set(id, conversation);
    assert.deepEqual(await store.get(id), persisted(conversation));
    await delay(1200);
    assert.equal(await store.get(id), undefined);
    assert.deepEqual(await store.listByUser(conversation.userId), []);
    await store.close();
  });

  test('set resets the TTL: a conversation set again lives ttlSeconds from the second set', async () => {
    const store = new InMemoryConversationStore({ ttlSeconds: 1, logger: silentLogger });
    const conversation = makeConversation();
    const id = conversation.externalId;
    await store.set(id, conversation);
    await delay(700);
    await store.set(id, conversation);
    await delay(500); // at least 1.2 s after the first set: only the reset keeps it alive
    assert.deepEqual(await store.get(id), persisted(conversation));
    assert.deepEqual(await store.listByUser(conversation.userId), [persisted(conversation)]);
    await store.close();
  });
});
