'use strict';
// Cluster mode on a local TLS Redis Cluster (3 primaries, a replica each): keys go to their
// slots' primaries, lists gather records from every node, and under load the store rides
// out a manual failover and a killed primary (no call over its deadline, every rejection
// STORE_UNAVAILABLE) and the migration of a slot whose keys it is using (no rejection at
// all); every value read, during and after, is one the load's writes allow.
// The nodes announce 127.0.0.1 but their certificate names only localhost, as on Azure: the
// store reaches them by the seed URL's host name, including a primary that joins later.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');

const { RedisConversationStore } = require('..');
const { startCluster, stopAllClusters, keySlot, uuidsInSlot } = require('../support/cluster');
const { makeCerts, makeNameOnlyCerts } = require('../support/redis');
const { startProxy } = require('../support/proxy');
const { defineContractSuite } = require('../support/contract');
const { silentLogger } = require('../support/observe');
const { isoAt, makeConversation, persisted } = require('../support/conversations');
const {
  recordingLogger,
  startLoad,
  stopAllLoads,
  untilAcknowledged,
  untilWritten,
  waitForStatus,
  stopAndVerify,
  readBack,
} = require('../support/observe');

const COMMAND_TIMEOUT_MS = 1500;
const SETTLE_CEILING_MS = COMMAND_TIMEOUT_MS + 1500;

let cluster;
let prefixes = 0;

before(async () => {
  cluster = await startCluster({
    primaries: 3,
    replicasPerPrimary: 1,
    certs: await makeNameOnlyCerts(),
    seedHost: 'localhost',
  });
});
afterEach(stopAllLoads);
after(stopAllClusters);

defineContractSuite('RedisConversationStore on a cluster', async (options) => {
  prefixes += 1;
  const store = new RedisConversationStore(cluster.seedUrl, {
    cluster: true,
    tls: { ca: cluster.caPem },
    keyPrefix: `contract-${prefixes}:`,
    logger: silentLogger,
    ...options,
  });
  await store.ready();
  return store;
});

describe('a node whose certificate does not name it', () => {
  it("is refused with the handshake's own words, not only 'connection not found'", async () => {
    // A certificate for 127.0.0.1 and localhost: the seed, dialled by its IP, passes; the
    // other primaries announce 127.0.0.2 and 127.0.0.3, which it does not name.
    const byIp = await startCluster({ primaries: 3, replicasPerPrimary: 0, certs: await makeCerts() });
    const log = recordingLogger();
    const store = new RedisConversationStore(byIp.seedIpUrl, {
      cluster: true,
      tls: { ca: byIp.caPem },
      connectTimeoutMs: 3000,
      logger: log.logger,
    });
    try {
      const error = await store.ready().then(
        () => assert.fail('ready() resolved with nodes whose certificate does not name them'),
        (e) => e,
      );
      assert.equal(error.code, 'STORE_UNAVAILABLE');
      assert.match(error.message, /dialled alone, 127\.0\.0\.[23]:\d+ fails: .*certificate not valid for name/);
      assert.match(store.stats().lastError?.message ?? '', /certificate not valid for name/);
    } finally {
      await store.close();
      await byIp.stop();
    }
  });
});

describe('cluster mode', () => {
  let store;
  let log;

  before(async () => {
    log = recordingLogger();
    store = new RedisConversationStore(cluster.seedUrl, {
      cluster: true,
      tls: { ca: cluster.caPem },
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      connectTimeoutMs: 3000,
      healthCheckIntervalMs: 200,
      logger: log.logger,
    });
    await store.ready();
  });

  after(() => store?.close());

  it('writes each key on the primary that owns its slot and reads its own writes', async () => {
    const conversation = makeConversation({ userId: 'slot-owner' });
    const id = conversation.externalId;
    await store.set(id, conversation);
    const recordPort = await cluster.nodeForKey(`conv:${id}`);
    const indexPort = await cluster.nodeForKey('user:slot-owner:conversations');
    assert.equal(await cluster.cli(recordPort, 'GET', `conv:${id}`), JSON.stringify(conversation));
    assert.equal(
      await cluster.cli(indexPort, 'ZSCORE', 'user:slot-owner:conversations', id),
      String(Date.parse(conversation.updatedAt)),
    );
    assert.deepEqual(await store.get(id), conversation);
  });

  it('lists a user whose conversations live on every primary, newest first', async () => {
    const ports = new Set();
    for (let i = 0; i < 12; i++) {
      const updatedAt = new Date(Date.UTC(2026, 1, 1, 0, i)).toISOString();
      const conversation = makeConversation({ userId: 'spread', updatedAt });
      await store.set(conversation.externalId, conversation);
      ports.add(await cluster.nodeForKey(`conv:${conversation.externalId}`));
    }
    assert.equal(ports.size, 3, 'the records did not spread over the three primaries');
    const list = await store.listByUser('spread');
    assert.equal(list.length, 12);
    const times = list.map((c) => Date.parse(c.updatedAt));
    assert.deepEqual(
      times,
      [...times].sort((a, b) => b - a),
    );
  });

  it('heals an index entry whose record is gone, and delete removes record then entry', async () => {
    const healed = makeConversation({ userId: 'healer' });
    await store.set(healed.externalId, healed);
    await cluster.clusterCli('ZADD', 'user:healer:conversations', '1', 'ghost');
    const list = await store.listByUser('healer');
    assert.deepEqual(
      list.map((c) => c.userId),
      ['healer'],
    );
    assert.equal(await cluster.clusterCli('ZSCORE', 'user:healer:conversations', 'ghost'), '');
    await store.delete(healed.externalId);
    assert.equal(await cluster.clusterCli('EXISTS', `conv:${healed.externalId}`), '0');
    assert.equal(await cluster.clusterCli('ZSCORE', 'user:healer:conversations', healed.externalId), '');
    assert.equal(await store.get(healed.externalId), undefined);
  });

  it("verifies the nodes against the seed URL's host name, never against nothing", async () => {
    // Every call above reached nodes that announce 127.0.0.1 and present a certificate for
    // localhost. Seeded by the IP address, the same certificate is refused.
    const byIp = new RedisConversationStore(cluster.seedIpUrl, {
      cluster: true,
      tls: { ca: cluster.caPem },
      connectTimeoutMs: 2000,
      logger: silentLogger,
    });
    try {
      await assert.rejects(byIp.ready(), (err) => {
        assert.equal(err.code, 'STORE_UNAVAILABLE');
        assert.match(err.message, /certificate not valid for name/);
        return true;
      });
    } finally {
      await byIp.close();
    }
  });

  /** Runs `fault` under load; asserts deadlines, codes, and every value read during and after. */
  async function underLoad(idPrefix, fault) {
    const load = startLoad(store, { idPrefix, workers: 6 });
    await untilAcknowledged(load, 30);
    await fault(load);
    await untilAcknowledged(load, 30);
    return stopAndVerify(load, { settleCeilingMs: SETTLE_CEILING_MS });
  }

  /**
   * A load on one slot only: worker w writes user `<idPrefix><w>{<tag>}` (its index key is in
   * the slot of `tag`) and `idsPerWorker` conversations whose record keys are in that slot too,
   * rewriting them over and over. No call may be rejected.
   */
  async function slotLoad(idPrefix, tag, { workers = 4, idsPerWorker = 3 } = {}) {
    const slot = keySlot(tag);
    const ids = uuidsInSlot(slot, workers * idsPerWorker);
    const userOf = (w) => `${idPrefix}${w}{${tag}}`;
    // The server counts slots as the search did.
    assert.equal(await cluster.slotForKey(`conv:${ids[0]}`), slot);
    assert.equal(await cluster.slotForKey(`user:${userOf(0)}:conversations`), slot);
    const load = startLoad(store, {
      idPrefix,
      workers,
      userOf,
      idsOf: (w) => ids.slice(w * idsPerWorker, (w + 1) * idsPerWorker),
      listEvery: 2,
      noRejections: true,
    });
    // Every key exists before the slot moves.
    while (load.acknowledgedIds().length < ids.length) await untilAcknowledged(load, 1);
    const keys = [
      ...ids.map((id) => `conv:${id}`),
      ...Array.from({ length: workers }, (_, w) => `user:${userOf(w)}:conversations`),
    ];
    return { load, slot, ids, keys };
  }

  /**
   * Moves `slot` to the primary on `toPort` key by key while `load` keeps using its keys, at
   * the load's pace: some writes (and their reads and lists) settle at every stage, MIGRATING/
   * IMPORTING with every key still on the source, after each key moved (ASK for the moved
   * ones), all moved, and once the slot is assigned (MOVED, then the new slot map). Rejections
   * do not stop it: `stopAndVerify` names every kind of them, by stage.
   */
  async function moveSlotUnderLoad(load, slot, toPort) {
    const steps = await cluster.migrateSlotSteps(slot, toPort, { batchSize: 1 });
    load.stage = `slot ${slot} MIGRATING/IMPORTING`;
    await steps.begin();
    await untilWritten(load, 8);
    let moved = 0;
    while ((await steps.moveBatch()) > 0) {
      moved += 1;
      load.stage = `slot ${slot} MIGRATING, ${moved} keys moved`;
      await untilWritten(load, 4);
    }
    await untilWritten(load, 8);
    load.stage = `slot ${slot} being assigned to :${toPort}`;
    await steps.finish();
    load.stage = `slot ${slot} on :${toPort}`;
    await untilWritten(load, 8);
    return moved;
  }

  it('a slot whose keys the load reads and writes moves key by key (ASK, then MOVED): every value right, no call rejected', async () => {
    const { load, slot, keys } = await slotLoad('mig', 'moving');
    const from = await cluster.primaryForSlot(slot);
    const to = (await cluster.primaries()).find((p) => p.port !== from.port);
    assert.equal(await cluster.cli(from.port, 'EXISTS', ...keys), String(keys.length));
    const moved = await moveSlotUnderLoad(load, slot, to.port);
    assert.ok(moved >= keys.length, `${moved} keys moved one by one, fewer than the load's ${keys.length}`);
    assert.equal(await cluster.nodeForKey(keys[0]), to.port);
    assert.equal(await cluster.cli(to.port, 'EXISTS', ...keys), String(keys.length));
    await stopAndVerify(load, { settleCeilingMs: SETTLE_CEILING_MS });
  });

  it('two slots on two primaries move into a third at once, each under its own load: every value right, no call rejected', async () => {
    const [target, ...others] = await cluster.primaries();
    // The first of `prefix`0, `prefix`1, … whose slot the primary serves.
    const tagOn = (/** @type {{ slots: number[][] }} */ primary, /** @type {string} */ prefix) => {
      for (let i = 0; i < 10_000; i++) {
        const slot = keySlot(`${prefix}${i}`);
        if (primary.slots.some(([first, last]) => first <= slot && slot <= last)) return `${prefix}${i}`;
      }
      throw new Error(`no tag ${prefix}… in a slot of :${/** @type {any} */ (primary).port}`);
    };
    const one = await slotLoad('twoa', tagOn(others[0], 'into-one-a'));
    const two = await slotLoad('twob', tagOn(others[1], 'into-one-b'));
    for (const [{ keys }, source] of [
      [one, others[0]],
      [two, others[1]],
    ]) {
      assert.equal(await cluster.cli(source.port, 'EXISTS', ...keys), String(keys.length));
    }
    // Both settle before the test goes on, so that a failed one does not leave its slot
    // migrating under the other.
    const moves = await Promise.allSettled([
      moveSlotUnderLoad(one.load, one.slot, target.port),
      moveSlotUnderLoad(two.load, two.slot, target.port),
    ]);
    for (const [i, { keys }] of [one, two].entries()) {
      const move = moves[i];
      if (move.status === 'rejected') throw move.reason;
      assert.ok(move.value >= keys.length, `${move.value} keys moved one by one, fewer than ${keys.length}`);
      assert.equal(await cluster.nodeForKey(keys[0]), target.port);
      assert.equal(await cluster.cli(target.port, 'EXISTS', ...keys), String(keys.length));
    }
    await Promise.all([one, two].map(({ load }) => stopAndVerify(load, { settleCeilingMs: SETTLE_CEILING_MS })));
  });

  /** A store of the test's own: its slot map and its bounds start afresh. */
  function openReader() {
    return new RedisConversationStore(cluster.seedUrl, {
      cluster: true,
      tls: { ca: cluster.caPem },
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      logger: silentLogger,
    });
  }

  /**
   * A store of its own, with `count` conversations of one user, all in the slot of `tag`
   * (records and index), written before `fn` runs.
   */
  async function withSlotOfConversations(tag, count, fn) {
    const slot = keySlot(tag);
    const userId = `burst{${tag}}`;
    const conversations = uuidsInSlot(slot, count).map((externalId, i) =>
      makeConversation({ userId, externalId, updatedAt: isoAt(60_000 + i) }),
    );
    const reader = openReader();
    try {
      await reader.ready();
      for (const conversation of conversations) await reader.set(conversation.externalId, conversation);
      await fn({ reader, slot, userId, conversations });
    } finally {
      await reader.close();
    }
  }

  /**
   * A get of every conversation and `lists` lists of their user, all at once: with a list's
   * reads, several hundred commands to the one slot. Every call must answer, and right.
   */
  async function burst({ reader, userId, conversations }, lists = 32) {
    const [gets, listed] = await Promise.all([
      Promise.allSettled(conversations.map((c) => reader.get(c.externalId))),
      Promise.allSettled(Array.from({ length: lists }, () => reader.listByUser(userId))),
    ]);
    const refused = [...gets, ...listed].filter((r) => r.status === 'rejected');
    const kinds = [...new Set(refused.map((r) => `${r.reason.code} ${r.reason.message}`))];
    assert.deepEqual(kinds, [], `${refused.length} of ${gets.length + listed.length} calls refused`);
    assert.deepEqual(
      gets.map((r) => r.value),
      conversations.map(persisted),
    );
    const newestFirst = conversations.map(persisted).reverse();
    for (const list of listed) assert.deepEqual(list.value, newestFirst);
  }

  /** Moves every key of the slot to the primary on `toPort`, then the burst, then the slot. */
  async function burstWhileMigrating(setting, toPort) {
    const steps = await cluster.migrateSlotSteps(setting.slot, toPort);
    try {
      await steps.begin();
      while ((await steps.moveBatch()) > 0);
      await burst(setting);
    } finally {
      await steps.finish();
    }
  }

  it('a burst of calls to a slot whose keys have all moved, while it is still MIGRATING: every one answered right', async () => {
    // Each call is redirected (ASK). redis-rs's slot refreshes, which ASKING taken by another
    // call sets off (MOVED), stalled every call while several hundred waited: with tokio 1.54
    // until the client was rebuilt, with 100 commands at once on one node for a response
    // timeout (src/conn/gates.rs).
    await withSlotOfConversations('burst', 48, async (setting) => {
      const home = await cluster.primaryForSlot(setting.slot);
      const away = (await cluster.primaries()).find((p) => p.port !== home.port);
      await burstWhileMigrating(setting, away.port);
    });
  });

  it('the same burst when the slot migrates back to where the slot map still puts it: none refused with MOVED', async () => {
    // A call that starts at the node that imports the slot (its slot map is from before the
    // slot left) is bounced to the migrating node (MOVED) and back (ASK, the ASKING taken by
    // another call) until redis-rs's retries run out on a MOVED.
    await withSlotOfConversations('bounce', 48, async (setting) => {
      const home = await cluster.primaryForSlot(setting.slot);
      const away = (await cluster.primaries()).find((p) => p.port !== home.port);
      // The reader sends nothing to the slot from here to the burst.
      await cluster.migrateSlot(setting.slot, away.port);
      await burstWhileMigrating(setting, home.port);
    });
  });

  it('a primary that stops answering holds up the calls to it only: gets from another primary answer while 96 wait on it', async () => {
    // The store bounds the commands in flight for the slots of each primary
    // (src/conn/gates.rs); the stuck ones hold the places of their own primary only.
    const [stuckSlot, healthySlot] = [keySlot('stuck'), keySlot('healthy')];
    const stuck = await cluster.primaryForSlot(stuckSlot);
    assert.notEqual((await cluster.primaryForSlot(healthySlot)).port, stuck.port);
    const stuckIds = uuidsInSlot(stuckSlot, 96);
    const healthy = uuidsInSlot(healthySlot, 16).map((externalId) => makeConversation({ externalId }));
    const reader = openReader();
    try {
      await reader.ready();
      for (const conversation of healthy) await reader.set(conversation.externalId, conversation);
      const node = cluster.node(stuck.port);
      node.pause();
      let waiting;
      let answered;
      try {
        waiting = Promise.allSettled(stuckIds.map((id) => reader.get(id)));
        // Resumed within the cluster's node timeout (2 s) whatever happens: no failover.
        answered = await Promise.race([
          Promise.allSettled(healthy.map((c) => reader.get(c.externalId))),
          new Promise((resolve) => setTimeout(resolve, 1000, 'still waiting after 1 s')),
        ]);
      } finally {
        node.resume();
      }
      assert.ok(Array.isArray(answered), answered);
      assert.deepEqual(
        answered.map((r) => r.value ?? `${r.reason.code} ${r.reason.message}`),
        healthy.map(persisted),
      );
      await waiting;
      await cluster.waitReady();
    } finally {
      await reader.close();
    }
  });

  it('rides out a manual failover (CLUSTER FAILOVER) of a primary', async () => {
    await underLoad('failover', async () => {
      const [primary] = await cluster.primaries();
      await cluster.failover(primary.port);
    });
    await waitForStatus(store, 'ready');
  });

  it('rides out a killed primary: calls settle by their deadline until its replica is promoted', async () => {
    const seedPort = cluster.seedPort;
    const primaries = await cluster.primaries();
    const victim = primaries.find((p) => p.port !== seedPort && p.replicaPorts.length > 0);
    // Replication is asynchronous: let the replica catch up first, so that what is asserted is
    // the store's behaviour, not Redis's window of writes lost in a crash.
    const before = startLoad(store, { idPrefix: 'prekill', workers: 6 });
    await untilAcknowledged(before, 30);
    await stopAndVerify(before, { settleCeilingMs: SETTLE_CEILING_MS });
    await waitReplicated(cluster, victim.port);
    await underLoad('kill', async (load) => {
      await cluster.killPrimary(victim.port);
      await untilAcknowledged(load, 10);
    });
    assert.deepEqual((await readBack(before)).slice(0, 10), [], 'writes acknowledged before the kill');
    await waitForStatus(store, 'ready');
  });

  it("replaces a primary's half-open connection (bytes black-holed, no RST) with a new one", async () => {
    const primaries = await cluster.primaries();
    const victim = cluster.node(primaries.find((p) => p.port !== cluster.seedPort).port);
    const proxy = await startProxy({ targetPort: victim.port, targetHost: victim.host, host: victim.host });
    try {
      // The victim announces the proxy's port: the store reaches it through the proxy only.
      let from = log.lines.length;
      await victim.cli('CONFIG', 'SET', 'cluster-announce-tls-port', proxy.port);
      await cluster.waitFor('the new port to be gossiped', async () =>
        (await cluster.cli(cluster.seedPort, 'CLUSTER', 'NODES')).includes(`:${proxy.port}@`) ? undefined : 'not yet',
      );
      await log.waitFor(/new cluster nodes: cluster client rebuilt/, { from });
      await underLoad('halfopen', async (load) => {
        await untilAcknowledged(load, 30);
        assert.ok(proxy.connections.size > 0, 'the store does not go through the proxy');
        from = log.lines.length;
        proxy.blackhole();
        await log.waitFor(/cluster unhealthy/, { from });
        // No client that lacks the primary passes for healthy: rebuilds fail while it is silent.
        await log.waitFor(/cluster client rebuild failed/, { from });
        assert.equal(store.status, 'reconnecting');
        assert.ok(
          !log.lines.slice(from).some((l) => /cluster client rebuilt|healthy again/.test(l)),
          log.lines.slice(from).join('\n'),
        );
        const accepted = proxy.totalAccepted;
        proxy.restore();
        // Either the store's rebuild or a slot-map refresh of redis-rs's own (which PINGs every
        // node's connection and redials one that does not answer) gets there first. Both need
        // a new connection: the dead ones swallow every byte, so no PING on them is answered.
        await log.waitFor(/a primary stopped answering: cluster client rebuilt|cluster healthy again/, { from });
        assert.ok(proxy.totalAccepted > accepted, 'no new connection to the black-holed primary');
        await untilAcknowledged(load, 30);
      });
      await waitForStatus(store, 'ready');
    } finally {
      await victim.cli('CONFIG', 'SET', 'cluster-announce-tls-port', '0');
      await proxy.close();
    }
  });

  // Last: the new primary has no replica, which the failover tests above rely on.
  it('verifies a primary that joins later by the seed name too, and serves the slot moved to it: every value right, no call rejected', async () => {
    const from = log.lines.length;
    // The load starts once the new primary has joined: under a full suite on two cores, a
    // call made while the node joins (a new redis-server starting, a client rebuilt) can
    // outlast this store's 1.5 s deadline. Moving the slot to it is what must reject nothing.
    const port = await cluster.addPrimary();
    await log.waitFor(/cluster client rebuilt/, { from });
    const { load, slot, keys } = await slotLoad('joined', 'joining');
    await untilAcknowledged(load, 8);
    await moveSlotUnderLoad(load, slot, port);
    assert.equal(await cluster.nodeForKey(keys[0]), port);
    assert.equal(await cluster.cli(port, 'EXISTS', ...keys), String(keys.length));
    await stopAndVerify(load, { settleCeilingMs: SETTLE_CEILING_MS });
  });
});

/** Bounded polling until the primary's replica has every byte of its replication stream. */
async function waitReplicated(cluster, primaryPort) {
  for (let tries = 0; tries < 100; tries++) {
    const info = await cluster.cli(primaryPort, 'INFO', 'replication');
    const primaryOffset = Number(/master_repl_offset:(\d+)/.exec(info)?.[1]);
    const replicaOffsets = [...info.matchAll(/slave\d+:.*offset=(\d+)/g)].map((m) => Number(m[1]));
    if (replicaOffsets.length > 0 && replicaOffsets.every((offset) => offset >= primaryOffset)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the replica of ${primaryPort} did not catch up`);
}
