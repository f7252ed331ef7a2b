'use strict';
// Azure Managed Redis with the Enterprise clustering policy: one endpoint, no CLUSTER
// commands, and a proxy that refuses a script or transaction over two hash slots
// (CROSSSLOT). Standalone mode's set (one script), delete (MULTI/EXEC) and heal (one script)
// span the record's and the index's slots; the store takes the refusal, which wrote nothing,
// and from then on works one slot per command, as in cluster mode. Emulated by a real
// one-node Redis Cluster holding every slot, reached without `cluster: true`.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { randomUUID } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const { RedisConversationStore } = require('..');
const { makeCerts, stopAll, withLogOnFailure } = require('../support/redis');
const { startOlderRedis } = require('../support/resp-proxy');
const { startCluster, startSlotCheckingServer, stopAllClusters, keySlot, uuidsInSlot } = require('../support/cluster');
const { makeConversation, persisted } = require('../support/conversations');
const { defineContractSuite, checkTrimStartsPastListLimit, rejectsWith } = require('../support/contract');
const { recordingLogger, silentLogger } = require('../support/observe');

const CROSS_SLOT_WARNING = /^\[STORE\] the server refuses a script or transaction over two hash slots \(CROSSSLOT/;
const SET_GET_REFUSED = /the server refuses SET's GET option/;
/** A TTL just set to `seconds`, read back a moment later. */
function assertTtl(ttl, seconds) {
  assert.ok(Number(ttl) <= seconds && Number(ttl) > seconds - 60, `TTL ${ttl}, expected about ${seconds}`);
}

/** A store on `url` (TLS with `caPem`), ready, closed when test `t` ends. */
async function openStore(t, url, caPem, options) {
  const store = new RedisConversationStore(url, { tls: { ca: caPem }, ...options });
  t.after(() => store.close());
  await store.ready();
  return store;
}

/** How many times redis-server ran `command` since its stats were last reset. */
async function calls(redis, command) {
  const stats = await redis.cli('INFO', 'commandstats');
  return Number(stats.match(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm'))?.[1] ?? 0);
}

/** A set one slot per command over a record key holding a hash: refused, naming it, nothing written. */
async function assertForeignRecordRefused(store, redis, prefix) {
  const conversation = makeConversation({ userId: `foreign-${randomUUID()}` });
  const recordKey = `${prefix}conv:${conversation.externalId}`;
  await redis.cli('HSET', recordKey, 'a', 'b');
  const keysBefore = await redis.cli('DBSIZE');
  await assert.rejects(
    store.set(conversation.externalId, conversation),
    rejectsWith('STORE_CORRUPT_RECORD', recordKey),
  );
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
      const store = await openStore(t, server.url, server.caPem, { keyPrefix: 'switch:', logger: log.logger });
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
      const store = await openStore(t, server.url, server.caPem, { keyPrefix: 'typed:', logger: silentLogger });
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
      const store = await openStore(t, server.url, server.caPem, { keyPrefix: 'setget:', logger: log.logger });
      const first = makeConversation();
      await store.set(first.externalId, first); // CROSSSLOT: one slot per command from here on
      await server.cli('CONFIG', 'RESETSTAT');
      const second = { ...makeConversation({ userId: first.userId }), externalId: first.externalId };
      await store.set(second.externalId, second);
      const third = makeConversation({ userId: first.userId });
      await store.set(third.externalId, third);
      assert.equal(await calls(server, 'set'), 2, 'one SET a record');
      assert.equal(await calls(server, 'eval'), 2, 'one script a set (the index entry), none for the record');
      assert.deepEqual(await store.get(first.externalId), persisted(second));
      const recordKey = `setget:conv:${first.externalId}`;
      assert.equal(await server.cli('GET', recordKey), JSON.stringify(persisted(second)));
      assertTtl(await server.cli('TTL', recordKey), 86_400);
      await assertForeignRecordRefused(store, server, 'setget:');
      assert.ok(!log.lines.some((line) => SET_GET_REFUSED.test(line)), log.lines.join('\n'));
    });
  });
  test('one slot per command, the trim starts past listLimit: an update at listLimit entries samples nothing, a new conversation then does', async (t) => {
    await withLogOnFailure(server, async () => {
      const store = await openStore(t, server.url, server.caPem, {
        keyPrefix: 'limit:',
        listLimit: 3,
        logger: silentLogger,
      });
      const userId = `limit-${randomUUID()}`;
      // The first set switches to one slot per command: index_add.lua takes every entry.
      await checkTrimStartsPastListLimit(store, server, { userId, indexKey: `limit:user:${userId}:conversations` });
    });
  });
  test('one slot per command, index_add.lua writes nothing into a key of another type nor for a user without ZCARD', async (t) => {
    await withLogOnFailure(server, async () => {
      const script = fs.readFileSync(path.join(__dirname, '../src/store/scripts/index_add.lua'), 'utf8');
      const foreign = `addidx:user:${randomUUID()}:conversations`;
      await server.cli('HSET', foreign, 'a', 'b');
      const refused = await server.tryCli(['EVAL', script, '1', foreign, '1', 'id', '90000', '50', '4', '7']);
      assert.match(refused.stdout + refused.stderr, /WRONGTYPE index/);
      assert.equal(await server.cli('TTL', foreign), '-1', 'the foreign key got a TTL');
      assert.equal(await server.cli('HGET', foreign, 'a'), 'b');

      const user = `no-zcard-${process.pid}`;
      await server.cli('ACL', 'SETUSER', user, 'reset', 'on', '>secret-pass', '~*', '+@all', '-zcard');
      t.after(() => server.cli('ACL', 'DELUSER', user));
      const store = await openStore(t, server.url.replace('rediss://', `rediss://${user}:secret-pass@`), server.caPem, {
        keyPrefix: 'addidx:',
        logger: silentLogger,
      });
      const conversation = makeConversation({ userId: `addidx-${randomUUID()}` });
      await assert.rejects(store.set(conversation.externalId, conversation), (error) => {
        assert.equal(error.code, 'STORE_UNAVAILABLE', error.message);
        assert.match(error.message, /can't run this command|NOPERM/);
        return true;
      });
      // The record goes first one slot per command (a list heals an entry without one, never
      // the other way round); the refused index half wrote nothing, not even its TTL.
      assert.equal(await server.cli('EXISTS', `addidx:user:${conversation.userId}:conversations`), '0');
      assert.equal(store.status, 'ready');
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
      const store = await openStore(t, `rediss://${older.host}:${older.port}`, certs.caPem, {
        keyPrefix: 'older:',
        logger: log.logger,
      });
      const conversations = Array.from({ length: 3 }, () => makeConversation());
      for (const conversation of conversations) await store.set(conversation.externalId, conversation);
      for (const conversation of conversations) {
        assert.deepEqual(await store.get(conversation.externalId), persisted(conversation));
        assertTtl(await node.cli('TTL', `older:conv:${conversation.externalId}`), 86_400);
      }
      assert.equal(older.refused, 1, 'SET … GET was tried again after its refusal');
      // Each set after the switch: record_set.lua for the record, index_add.lua for the entry.
      assert.equal(await calls(node, 'eval'), 2 * conversations.length, 'record_set.lua did not run');
      assert.equal(log.entries.filter(({ line }) => SET_GET_REFUSED.test(line)).length, 1, log.lines.join('\n'));
      await assertForeignRecordRefused(store, node, 'older:');
      assert.equal(store.status, 'ready');
    });
  });
  test('another refusal of SET … GET fails that set alone and is not taken for an older server', async (t) => {
    const certs = await makeCerts();
    const node = await startSlotCheckingServer({ certs });
    const refusing = await startOlderRedis({ targetPort: node.port, certs, refusal: 'ERR invalid expire time in set' });
    t.after(() => refusing.close());
    await withLogOnFailure(node, async () => {
      const log = recordingLogger();
      const store = await openStore(t, `rediss://${refusing.host}:${refusing.port}`, certs.caPem, {
        keyPrefix: 'refusing:',
        logger: log.logger,
      });
      for (const conversation of [makeConversation(), makeConversation()]) {
        await assert.rejects(store.set(conversation.externalId, conversation), (error) => {
          assert.equal(error.code, 'STORE_UNAVAILABLE', error.message);
          assert.match(error.message, /invalid expire time/);
          return true;
        });
      }
      assert.equal(refusing.refused, 2, 'the second set did not try SET … GET again');
      assert.equal(await calls(node, 'eval'), 0, 'a record went through record_set.lua');
      assert.ok(!log.lines.some((line) => SET_GET_REFUSED.test(line)), log.lines.join('\n'));
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
      const store = await openStore(t, shard.url, shard.caPem, { keyPrefix: prefix, listLimit: 1, logger: log.logger });
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
      const store = await openStore(t, shard.url, shard.caPem, {
        keyPrefix: prefix,
        listLimit: 50,
        logger: log.logger,
      });
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
    // Sets made in one tick go as one transaction (standalone, as the store believes): each
    // rejection says the same.
    const sets = await Promise.allSettled(
      uuidsInSlot(other.slots[0][0], 3).map((externalId) => {
        const conversation = makeConversation({ externalId });
        return store.set(externalId, conversation);
      }),
    );
    for (const set of sets) {
      assert.equal(set.status, 'rejected');
      assert.equal(set.reason.code, 'STORE_UNAVAILABLE', set.reason.message);
      assert.match(set.reason.message, /^Redis refused the command: MOVED \d+ .*set `cluster: true`/);
    }
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
