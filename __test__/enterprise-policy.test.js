'use strict';
// Azure Managed Redis with the Enterprise clustering policy: one endpoint, no CLUSTER
// commands, and a proxy that refuses a script or transaction over two hash slots
// (CROSSSLOT). Standalone mode's set (one script), delete (MULTI/EXEC) and heal (one script)
// span the record's and the index's slots; the store takes the refusal, which wrote nothing,
// and from then on works one slot per command, as in cluster mode. Emulated by a real
// one-node Redis Cluster holding every slot, reached without `cluster: true`.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { RedisConversationStore } = require('..');
const { stopAll, withLogOnFailure } = require('../support/redis');
const { startSlotCheckingServer, stopAllClusters } = require('../support/cluster');
const { makeConversation, persisted } = require('../support/conversations');
const { defineContractSuite } = require('../support/contract');
const { recordingLogger, silentLogger } = require('../support/observe');

const CROSS_SLOT_WARNING = /^\[STORE\] the server refuses a script or transaction over two hash slots \(CROSSSLOT/;

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
