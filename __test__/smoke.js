'use strict';
// Smoke test of one installed binary, for the platforms the full suite does not run on
// (the release workflow's test jobs, `npm run test:arm64` under qemu-user):
// set, get, listByUser and delete on a TLS Redis, then the same on the in-memory store.
//
//   node __test__/smoke.js              starts its own TLS redis-server (support/redis.js)
//   REDIS_URL=rediss://… REDIS_CA_FILE=ca.pem node __test__/smoke.js    uses that Redis
//   node __test__/smoke.js --memory     the in-memory store only (no redis-server here)
// SMOKE_PACKAGE names what to require (default: this checkout).

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { makeConversation, persisted } = require('../support/conversations');

const target = process.env.SMOKE_PACKAGE || path.join(__dirname, '..');
const silent = { info() {}, warn() {}, error() {} };

/** set, get, listByUser, delete on `store`, checked against what was written. */
async function exercise(store, label) {
  const started = process.hrtime.bigint();
  const userId = `smoke-user-${process.pid}-${label}`;
  const older = makeConversation({ seed: `smoke-${label}-older`, userId, updatedAt: '2026-02-22T10:01:00.000Z' });
  const newer = makeConversation({ seed: `smoke-${label}-newer`, userId, updatedAt: '2026-02-22T10:02:00.000Z' });
  await store.set(older.externalId, older);
  await store.set(newer.externalId, newer);
  assert.deepEqual(await store.get(newer.externalId), persisted(newer), `${label}: get`);
  const listed = await store.listByUser(userId);
  assert.deepEqual(
    listed.map((c) => c.externalId),
    [newer.externalId, older.externalId],
    `${label}: listByUser, newest first`,
  );
  await store.delete(newer.externalId);
  assert.equal(await store.get(newer.externalId), undefined, `${label}: get after delete`);
  assert.deepEqual(
    (await store.listByUser(userId)).map((c) => c.externalId),
    [older.externalId],
    `${label}: listByUser after delete`,
  );
  await store.delete(older.externalId);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  console.log(`ok ${label}: set, get, listByUser, delete (${ms.toFixed(0)} ms)`);
}

async function main() {
  const loadStarted = process.hrtime.bigint();
  const { RedisConversationStore, InMemoryConversationStore } = require(target);
  const loadMs = Number(process.hrtime.bigint() - loadStarted) / 1e6;
  console.log(
    `loaded ${require.resolve(target)} on ${process.platform}-${process.arch}, Node ${process.version} (${loadMs.toFixed(0)} ms)`,
  );

  if (!process.argv.includes('--memory')) {
    let url = process.env.REDIS_URL;
    let ca = process.env.REDIS_CA_FILE && fs.readFileSync(process.env.REDIS_CA_FILE, 'utf8');
    let harness;
    if (!url) {
      harness = require('../support/redis');
      const server = await harness.startRedis();
      url = server.url;
      ca = server.caPem;
    }
    try {
      const store = new RedisConversationStore(url, { tls: ca ? { ca } : undefined, logger: silent });
      try {
        await store.ready();
        await exercise(store, 'redis');
      } finally {
        await store.close();
      }
    } finally {
      await harness?.stopAll();
    }
  }

  const memory = new InMemoryConversationStore({ logger: silent });
  await exercise(memory, 'memory');
  await memory.close();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
