'use strict';
// Proves the cluster harness: a TLS Redis Cluster that starts, routes, reshards and fails over.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { startCluster, stopAllClusters, keySlot, uuidsInSlot } = require('../support/cluster');
const { stopAll } = require('../support/redis');

let cluster;
let startMs;

before(async () => {
  const t0 = Date.now();
  cluster = await startCluster({ primaries: 3, replicasPerPrimary: 1 });
  startMs = Date.now() - t0;
});

after(async () => {
  await stopAllClusters();
  await stopAll();
});

async function timed(t, label, fn) {
  const t0 = Date.now();
  const result = await fn();
  t.diagnostic(`${label} took ${Date.now() - t0} ms`);
  return result;
}

const role = async (port) => (await cluster.cli(port, 'ROLE')).split('\n')[0];

async function assertEveryNodeOk() {
  for (const node of cluster.nodes.filter((n) => n.running)) {
    assert.match(await node.cli('CLUSTER', 'INFO'), /^cluster_state:ok/m, `node :${node.port}`);
  }
}

test('three primaries with a replica each, and every node reports cluster_state ok', async (t) => {
  t.diagnostic(`cluster start took ${startMs} ms`);
  assert.equal(cluster.nodes.length, 6);
  const primaries = await cluster.primaries();
  assert.equal(primaries.length, 3);
  for (const p of primaries) {
    assert.equal(p.replicaPorts.length, 1);
    assert.equal(await role(p.replicaPorts[0]), 'slave');
  }
  const served = primaries.flatMap((p) => p.slots).reduce((sum, [a, b]) => sum + b - a + 1, 0);
  assert.equal(served, 16384);
  assert.match(cluster.seedUrl, /^rediss:\/\/127\.0\.0\.1:\d+$/);
  assert.ok(
    primaries.some((p) => p.port === Number(new URL(cluster.seedUrl).port)),
    'the seed is a primary',
  );
  assert.match(cluster.caPem, /BEGIN CERTIFICATE/);
  await assertEveryNodeOk();
});

test('a key set through clusterCli is readable, and lives on the node nodeForKey names', async () => {
  await cluster.clusterCli('SET', 'selftest:conv:1', 'hello');
  assert.equal(await cluster.clusterCli('GET', 'selftest:conv:1'), 'hello');

  const owner = await cluster.nodeForKey('selftest:conv:1');
  const slot = Number(await cluster.cli(owner, 'CLUSTER', 'KEYSLOT', 'selftest:conv:1'));
  assert.equal(await cluster.cli(owner, 'GET', 'selftest:conv:1'), 'hello');
  assert.equal(await cluster.cli(owner, 'CLUSTER', 'COUNTKEYSINSLOT', slot), '1');
  const other = (await cluster.primaries()).find((p) => p.port !== owner);
  await assert.rejects(
    cluster.cli(other.port, 'GET', 'selftest:conv:1'),
    new RegExp(`MOVED ${slot} ${cluster.node(owner).host.replaceAll('.', '\\.')}:${owner}`),
  );
});

test('uuidsInSlot finds record keys in the slot a hash-tagged user index is in, as the server counts slots', async () => {
  const slot = keySlot('t');
  const uuids = uuidsInSlot(slot, 3);
  assert.equal(new Set(uuids).size, 3);
  for (const uuid of uuids) {
    assert.match(uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(await cluster.slotForKey(`conv:${uuid}`), slot);
  }
  assert.equal(await cluster.slotForKey('user:mig{t}:conversations'), slot);
  const [prefixed] = uuidsInSlot(slot, 1, (uuid) => `app:conv:${uuid}`);
  assert.equal(await cluster.slotForKey(`app:conv:${prefixed}`), slot);
  // Not every key lands there: the search is what puts them in the slot.
  assert.notEqual(await cluster.slotForKey('conv:00000000-0000-4000-8000-000000000000'), slot);
});

test('migrateSlot moves a slot and its keys, with ASK redirects while it migrates', async (t) => {
  const keys = ['{mig}a', '{mig}b', '{mig}c'];
  for (const k of keys) await cluster.clusterCli('SET', k, `v-${k}`);
  const slot = await cluster.slotForKey(keys[0]);
  const from = await cluster.nodeForKey(keys[0]);
  const to = (await cluster.primaries()).find((p) => p.port !== from).port;

  let asks = 0;
  await timed(t, 'migrateSlot (3 keys, 1 per batch)', () =>
    cluster.migrateSlot(slot, to, {
      batchSize: 1,
      afterBatch: async () => {
        // Mid-migration: the source ASKs for keys it has handed over; -c still finds every key.
        for (const k of keys) {
          const res = await cluster.node(from).tryCli(['GET', k]);
          if (/ASK \d+ /.test(res.stderr + res.stdout)) asks++;
          assert.equal(await cluster.clusterCli('GET', k), `v-${k}`);
        }
      },
    }),
  );
  assert.ok(asks > 0, 'the source should answer ASK for a migrated key');

  assert.equal(await cluster.nodeForKey(keys[0]), to);
  for (const k of keys) assert.equal(await cluster.clusterCli('GET', k), `v-${k}`);
  assert.equal(await cluster.cli(to, 'CLUSTER', 'COUNTKEYSINSLOT', slot), '3');
  assert.equal(await cluster.cli(from, 'CLUSTER', 'COUNTKEYSINSLOT', slot), '0');
  await assertEveryNodeOk();
});

test('failover promotes the replica, and the cluster is ok on the new topology', async (t) => {
  const old = await cluster.nodeForKey('selftest:conv:1');
  const promoted = await timed(t, 'failover', () => cluster.failover(old));
  assert.equal(await role(promoted), 'master');
  assert.equal(await role(old), 'slave');
  assert.equal(await cluster.nodeForKey('selftest:conv:1'), promoted);
  assert.equal(await cluster.clusterCli('GET', 'selftest:conv:1'), 'hello');
  await assertEveryNodeOk();
});

test('killPrimary leads to an automatic promotion, and restartNode rejoins as a replica', async (t) => {
  const old = await cluster.nodeForKey('selftest:conv:1');
  const promoted = await timed(t, 'killPrimary until promoted and ok', () => cluster.killPrimary(old));
  assert.equal(cluster.node(old).running, false);
  assert.equal(await role(promoted), 'master');
  assert.equal(await cluster.nodeForKey('selftest:conv:1'), promoted);
  assert.equal(await cluster.clusterCli('GET', 'selftest:conv:1'), 'hello', 'a replicated write survives');
  await assertEveryNodeOk();

  await timed(t, 'restartNode until rejoined', () => cluster.restartNode(old));
  assert.equal(await role(old), 'slave');
  const primary = (await cluster.primaries()).find((p) => p.port === promoted);
  assert.deepEqual(primary.replicaPorts, [old]);
  await assertEveryNodeOk();

  await cluster.stop();
  await cluster.stop(); // idempotent
  assert.ok(cluster.nodes.every((n) => !n.running));
});
