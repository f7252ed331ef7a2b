'use strict';
// Azure Managed Redis with the Enterprise clustering policy: one endpoint, no CLUSTER
// commands, and a proxy that refuses a script or transaction over two hash slots
// (CROSSSLOT). Standalone mode's set (one script), delete (MULTI/EXEC) and heal (one script)
// span the record's and the index's slots; the store takes the refusal, which wrote nothing,
// and from then on works one slot per command, as in cluster mode. Emulated by a real
// one-node Redis Cluster holding every slot, reached without `cluster: true`.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { createHash, randomUUID } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const { RedisConversationStore } = require('..');
const { makeCerts, stopAll, withLogOnFailure } = require('../support/redis');
const { startOlderRedis } = require('../support/resp-proxy');
const { startCluster, startSlotCheckingServer, stopAllClusters, keySlot, uuidsInSlot } = require('../support/cluster');
const { makeConversation, persisted } = require('../support/conversations');
const { defineContractSuite } = require('../support/contract');
const { recordingLogger, silentLogger } = require('../support/observe');

const CROSS_SLOT_WARNING = /^\[STORE\] the server refuses a script or transaction over two hash slots \(CROSSSLOT/;
const SET_GET_REFUSED = /the server refuses SET's GET option/;
// The record half of a set one slot per command on a server without SET … GET.
const RECORD_SET_SHA = createHash('sha1')
  .update(fs.readFileSync(path.join(__dirname, '../src/store/scripts/record_set.lua')))
  .digest('hex');

function corruptRecord(key) {
  return (error) => {
    assert.equal(error.code, 'STORE_CORRUPT_RECORD', error.message);
    assert.ok(error.message.includes(key), `the message should name ${key}: ${error.message}`);
    return true;
  };
}

/** A set one slot per command over a record key holding a hash: refused, naming it, nothing written. */
async function assertForeignRecordRefused(store, redis, prefix) {
  const conversation = makeConversation({ userId: `foreign-${randomUUID()}` });
  const recordKey = `${prefix}conv:${conversation.externalId}`;
  await redis.cli('HSET', recordKey, 'a', 'b');
  const keysBefore = await redis.cli('DBSIZE');
  await assert.rejects(store.set(conversation.externalId, conversation), corruptRecord(recordKey));
  assert.equal(await redis.cli('HGET', recordKey, 'a'), 'b');
  assert.equal(await redis.cli('TTL', recordKey), '-1', 'the foreign key got a TTL');
  assert.equal(await redis.cli('EXISTS', `${prefix}user:${conversation.userId}:conversations`), '0');
  assert.equal(await redis.cli('DBSIZE'), keysBefore, 'a key was written');
}

let server;
let prefixes = 0;

before(async () => {
  server = await startSlotCheckingServer();
});
after(async () => {
  await stopAllClusters();
  await stopAll();
});

describe('a server that refuses CROSSSLOT (the Enterprise policy, emulated)', () => {
  test('the emulation is real: a script over two slots is refused with CROSSSLOT', async () => {
    const script = "redis.call('SET', KEYS[1], 'x'); return redis.call('ZADD', KEYS[2], 1, 'x')";
    const res = await server.tryCli(['EVAL', script, '2', 'conv:a', 'user:b:conversations']);
    assert.match(res.stdout + res.stderr, /CROSSSLOT/);
    assert.equal(await server.cli('EXISTS', 'conv:a'), '0', 'the refused script wrote nothing');
  });

  test('set, get, listByUser and delete work, and the switch to one slot per command is said once', async (t) => {
    await withLogOnFailure(server, async () => {
      const log = recordingLogger();
      const store = new RedisConversationStore(server.url, {
        tls: { ca: server.caPem },
        keyPrefix: 'switch:',
        logger: log.logger,
      });
      t.after(() => store.close());
      await store.ready();
      const first = makeConversation();
      const second = makeConversation({ userId: first.userId });
      await store.set(first.externalId, first);
      await store.set(second.externalId, second);
      assert.deepEqual(await store.get(first.externalId), persisted(first));
      const listed = await store.listByUser(first.userId);
      assert.deepEqual(listed.map((c) => c.externalId).sort(), [first.externalId, second.externalId].sort());
      await store.delete(first.externalId);
      assert.equal(await store.get(first.externalId), undefined);
      assert.deepEqual(await store.listByUser(first.userId), [persisted(second)]);
      assert.equal(
        await server.cli('ZSCORE', `switch:user:${first.userId}:conversations`, first.externalId),
        '',
        'the index entry went with the record',
      );
      const warnings = log.lines.filter((line) => CROSS_SLOT_WARNING.test(line));
      assert.equal(warnings.length, 1, log.lines.join('\n'));
      assert.equal(store.status, 'ready');
    });
  });

  test("one slot per command, a conversation key of another type is left out of its user's list and healed, not failing the list", async (t) => {
    await withLogOnFailure(server, async () => {
      const store = new RedisConversationStore(server.url, {
        tls: { ca: server.caPem },
        keyPrefix: 'typed:',
        logger: silentLogger,
      });
      t.after(() => store.close());
      await store.ready();
      const good = makeConversation();
      await store.set(good.externalId, good); // CROSSSLOT: one slot per command from here on
      const hashId = makeConversation().externalId;
      const indexKey = `typed:user:${good.userId}:conversations`;
      await server.cli('HSET', `typed:conv:${hashId}`, 'a', 'b');
      await server.cli('ZADD', indexKey, Date.parse(good.updatedAt) + 1000, hashId);

      assert.deepEqual(await store.listByUser(good.userId), [persisted(good)]);
      assert.equal(await server.cli('ZSCORE', indexKey, hashId), '', 'the entry of the hash was healed');
      assert.equal(await server.cli('HGET', `typed:conv:${hashId}`, 'a'), 'b');
    });
  });
  test('one slot per command, a record is written by one SET … GET, never through Lua, and a key of another type is refused', async (t) => {
    await withLogOnFailure(server, async () => {
      const log = recordingLogger();
      const store = new RedisConversationStore(server.url, {
        tls: { ca: server.caPem },
        keyPrefix: 'setget:',
        logger: log.logger,
      });
      t.after(() => store.close());
      await store.ready();
      await server.cli('SCRIPT', 'FLUSH');
      const first = makeConversation();
      await store.set(first.externalId, first); // CROSSSLOT: one slot per command from here on
      const second = { ...makeConversation({ userId: first.userId }), externalId: first.externalId };
      await store.set(second.externalId, second);
      assert.deepEqual(await store.get(first.externalId), persisted(second));
      assert.equal(await server.cli('GET', `setget:conv:${first.externalId}`), JSON.stringify(persisted(second)));
      assert.equal(await server.cli('SCRIPT', 'EXISTS', RECORD_SET_SHA), '0', 'record_set.lua ran');
      await assertForeignRecordRefused(store, server, 'setget:');
      assert.ok(!log.lines.some((line) => SET_GET_REFUSED.test(line)), log.lines.join('\n'));
    });
  });
});

describe("a server that refuses SET's GET option (before Redis 6.2, as Azure Cache for Redis 6), emulated", () => {
  test('records written one slot per command go through record_set.lua from the first refusal on, said once', async (t) => {
    const certs = await makeCerts();
    const node = await startSlotCheckingServer({ certs });
    const older = await startOlderRedis({ targetPort: node.port, certs });
    t.after(() => older.close());
    await withLogOnFailure(node, async () => {
      const log = recordingLogger();
      const store = new RedisConversationStore(`rediss://${older.host}:${older.port}`, {
        tls: { ca: certs.caPem },
        keyPrefix: 'older:',
        logger: log.logger,
      });
      t.after(() => store.close());
      await store.ready();
      const conversations = Array.from({ length: 3 }, () => makeConversation());
      for (const conversation of conversations) await store.set(conversation.externalId, conversation);
      for (const conversation of conversations) {
        assert.deepEqual(await store.get(conversation.externalId), persisted(conversation));
        assert.equal(await node.cli('TTL', `older:conv:${conversation.externalId}`), '86400');
      }
      assert.equal(older.refused, 1, 'SET … GET was tried again after its refusal');
      assert.equal(await node.cli('SCRIPT', 'EXISTS', RECORD_SET_SHA), '1', 'record_set.lua never ran');
      assert.equal(log.entries.filter(({ line }) => SET_GET_REFUSED.test(line)).length, 1, log.lines.join('\n'));
      await assertForeignRecordRefused(store, node, 'older:');
      assert.equal(store.status, 'ready');
    });
  });
});

describe('a shard that serves half the slots (scripts reach only the keys they declare)', () => {
  const SERVED = [0, 8191];
  const prefix = 'shard:';
  let shard;
  before(async () => {
    shard = await startSlotCheckingServer({ slots: SERVED });
  });

  /** A conversation whose record and index keys share one served slot, so set's script is not refused. */
  function conversationInOneSlot() {
    for (let seed = 0; ; seed++) {
      const probe = makeConversation({ seed: `shard-${seed}` });
      const slot = keySlot(`${prefix}conv:${probe.externalId}`);
      if (slot > SERVED[1]) continue;
      for (let n = 0; n < 1_000_000; n++) {
        if (keySlot(`${prefix}user:u${n}:conversations`) === slot) {
          return { conversation: makeConversation({ seed: `shard-${seed}`, userId: `u${n}` }), slot };
        }
      }
    }
  }

  test('a set into an index over listLimit resolves, writes once, and trims entries whose record is gone', async (t) => {
    await withLogOnFailure(shard, async () => {
      const { conversation, slot } = conversationInOneSlot();
      const index = `${prefix}user:${conversation.userId}:conversations`;
      // Entries whose record is gone, in a served slot other than the index's, and one whose
      // record lives on another shard (a slot this one does not serve).
      const goneHere = uuidsInSlot(slot === 100 ? 101 : 100, 3, (id) => `${prefix}conv:${id}`);
      const [elsewhere] = uuidsInSlot(9000, 1, (id) => `${prefix}conv:${id}`);
      for (const [i, id] of [...goneHere, elsewhere].entries()) await shard.cli('ZADD', index, String(i), id);
      const log = recordingLogger();
      const store = new RedisConversationStore(shard.url, {
        tls: { ca: shard.caPem },
        keyPrefix: prefix,
        listLimit: 1,
        logger: log.logger,
      });
      t.after(() => store.close());
      await store.ready();
      await store.set(conversation.externalId, conversation);
      assert.deepEqual(await store.get(conversation.externalId), persisted(conversation));
      assert.equal(
        await shard.cli('ZSCORE', index, conversation.externalId),
        String(Date.parse(conversation.updatedAt)),
      );
      const left = (await shard.cli('ZRANGE', index, '0', '-1')).split('\n').filter(Boolean).sort();
      assert.deepEqual(
        left,
        [conversation.externalId, elsewhere].sort(),
        'the entries whose record is gone here were trimmed',
      );
      // Again: the same write, whatever mode the trim's heal left the store in.
      await store.set(conversation.externalId, conversation);
      assert.equal(store.status, 'ready');
      assert.ok(!log.lines.some((line) => /non local key/.test(line)), log.lines.join('\n'));
    });
  });

  test('under listLimit, a set whose keys share a slot is one round trip (one MULTI with its EVALSHA) and switches nothing', async (t) => {
    await withLogOnFailure(shard, async () => {
      const { conversation } = conversationInOneSlot();
      const log = recordingLogger();
      const store = new RedisConversationStore(shard.url, {
        tls: { ca: shard.caPem },
        keyPrefix: prefix,
        listLimit: 50,
        logger: log.logger,
      });
      t.after(() => store.close());
      await store.ready();
      await store.set(conversation.externalId, conversation); // loads the script
      await shard.cli('CONFIG', 'RESETSTAT');
      await store.set(conversation.externalId, { ...conversation, status: 'completed' });
      const stats = await shard.cli('INFO', 'commandstats');
      const topLevel = stats.match(/^cmdstat_(evalsha|eval|exists|get|mget|type|multi|exec):calls=\d+/gm) ?? [];
      // Commands a script runs count too (TYPE here); one transaction alone was sent,
      // its pending key in the record's slot (a shard refuses a transaction over two).
      assert.deepEqual(
        topLevel.filter((line) => !line.startsWith('cmdstat_type')).sort(),
        ['cmdstat_evalsha:calls=1', 'cmdstat_exec:calls=1', 'cmdstat_multi:calls=1'],
        stats,
      );
      assert.ok(!log.lines.some((line) => CROSS_SLOT_WARNING.test(line)), log.lines.join('\n'));
    });
  });
});

describe('a Redis Cluster reached without cluster: true', () => {
  test('a key of another node: STORE_UNAVAILABLE, the MOVED refusal saying to set cluster: true', async (t) => {
    const cluster = await startCluster({ primaries: 3, replicasPerPrimary: 0 });
    const store = new RedisConversationStore(cluster.seedUrl, { tls: { ca: cluster.caPem }, logger: silentLogger });
    t.after(() => store.close());
    await store.ready();
    const other = (await cluster.primaries()).find((p) => p.port !== cluster.seedPort);
    assert.ok(other, 'a second primary');
    const [id] = uuidsInSlot(other.slots[0][0], 1);
    const error = await store.get(id).then(
      () => assert.fail('expected a rejection'),
      (e) => e,
    );
    assert.equal(error.code, 'STORE_UNAVAILABLE', error.message);
    assert.match(error.message, /^Redis refused the command: MOVED \d+ .*set `cluster: true`/);
  });
});

defineContractSuite(
  'RedisConversationStore on a server that refuses CROSSSLOT',
  async (options) => {
    prefixes += 1;
    const store = new RedisConversationStore(server.url, {
      tls: { ca: server.caPem },
      keyPrefix: `enterprise-${prefixes}:`,
      logger: silentLogger,
      ...options,
    });
    await store.ready();
    return store;
  },
  { around: (fn) => withLogOnFailure(server, fn) },
);
