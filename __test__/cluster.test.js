'use strict'
// Cluster mode on a local TLS Redis Cluster (3 primaries, a replica each): keys go to their
// slots' primaries, lists gather records from every node, and under load the store rides
// out a slot migration (ASK/MOVED), a manual failover and a killed primary: no call over
// its deadline, every rejection STORE_UNAVAILABLE, every acknowledged write readable.
// The nodes announce 127.0.0.1 but their certificate names only localhost, as on Azure: the
// store reaches them by the seed URL's host name, including a primary that joins later.

const { describe, it, before, after, afterEach } = require('node:test')
const assert = require('node:assert/strict')

const { RedisConversationStore } = require('..')
const { startCluster, stopAllClusters } = require('./helpers/cluster')
const { makeNameOnlyCerts } = require('./helpers/redis')
const { startProxy } = require('./helpers/proxy')
const { defineContractSuite, silentLogger } = require('./helpers/contract')
const { makeConversation } = require('./helpers/conversations')
const { recordingLogger, startLoad, stopAllLoads, untilAcknowledged, waitForStatus } = require('./helpers/observe')

const COMMAND_TIMEOUT_MS = 1500
const SETTLE_CEILING_MS = COMMAND_TIMEOUT_MS + 1500

let cluster
let prefixes = 0

before(async () => {
  cluster = await startCluster({ primaries: 3, replicasPerPrimary: 1, certs: await makeNameOnlyCerts(), seedHost: 'localhost' })
})
afterEach(stopAllLoads)
after(stopAllClusters)

defineContractSuite('RedisConversationStore on a cluster', async (options) => {
  prefixes += 1
  const store = new RedisConversationStore(cluster.seedUrl, {
    cluster: true,
    tls: { ca: cluster.caPem },
    keyPrefix: `contract-${prefixes}:`,
    logger: silentLogger,
    ...options,
  })
  await store.ready()
  return store
})

describe('cluster mode', () => {
  let store
  let log

  before(async () => {
    log = recordingLogger()
    store = new RedisConversationStore(cluster.seedUrl, {
      cluster: true,
      tls: { ca: cluster.caPem },
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      connectTimeoutMs: 3000,
      healthCheckIntervalMs: 200,
      logger: log.logger,
    })
    await store.ready()
  })

  after(() => store?.close())

  it('writes each key on the primary that owns its slot and reads its own writes', async () => {
    const conversation = makeConversation({ userId: 'slot-owner' })
    const id = conversation.externalId
    await store.set(id, conversation)
    const recordPort = await cluster.nodeForKey(`conv:${id}`)
    const indexPort = await cluster.nodeForKey('user:slot-owner:conversations')
    assert.equal(await cluster.cli(recordPort, 'GET', `conv:${id}`), JSON.stringify(conversation))
    assert.equal(await cluster.cli(indexPort, 'ZSCORE', 'user:slot-owner:conversations', id), String(Date.parse(conversation.updatedAt)))
    assert.deepEqual(await store.get(id), conversation)
  })

  it('lists a user whose conversations live on every primary, newest first', async () => {
    const ports = new Set()
    for (let i = 0; i < 12; i++) {
      const updatedAt = new Date(Date.UTC(2026, 1, 1, 0, i)).toISOString()
      const conversation = makeConversation({ userId: 'spread', updatedAt })
      await store.set(conversation.externalId, conversation)
      ports.add(await cluster.nodeForKey(`conv:${conversation.externalId}`))
    }
    assert.equal(ports.size, 3, 'the records did not spread over the three primaries')
    const list = await store.listByUser('spread')
    assert.equal(list.length, 12)
    const times = list.map((c) => Date.parse(c.updatedAt))
    assert.deepEqual(times, [...times].sort((a, b) => b - a))
  })

  it('heals an index entry whose record is gone, and delete removes record then entry', async () => {
    const healed = makeConversation({ userId: 'healer' })
    await store.set(healed.externalId, healed)
    await cluster.clusterCli('ZADD', 'user:healer:conversations', '1', 'ghost')
    const list = await store.listByUser('healer')
    assert.deepEqual(list.map((c) => c.userId), ['healer'])
    assert.equal(await cluster.clusterCli('ZSCORE', 'user:healer:conversations', 'ghost'), '')
    await store.delete(healed.externalId)
    assert.equal(await cluster.clusterCli('EXISTS', `conv:${healed.externalId}`), '0')
    assert.equal(await cluster.clusterCli('ZSCORE', 'user:healer:conversations', healed.externalId), '')
    assert.equal(await store.get(healed.externalId), undefined)
  })

  it('verifies the nodes against the seed URL\'s host name, never against nothing', async () => {
    // Every call above reached nodes that announce 127.0.0.1 and present a certificate for
    // localhost. Seeded by the IP address, the same certificate is refused.
    const byIp = new RedisConversationStore(cluster.seedIpUrl, {
      cluster: true,
      tls: { ca: cluster.caPem },
      connectTimeoutMs: 2000,
      logger: silentLogger,
    })
    try {
      await assert.rejects(byIp.ready(), (err) => {
        assert.equal(err.code, 'STORE_UNAVAILABLE')
        assert.match(err.message, /certificate not valid for name/)
        return true
      })
    } finally {
      await byIp.close()
    }
  })

  /** Runs `fault` under load; asserts deadlines, codes and that no acknowledged write was lost. */
  async function underLoad(idPrefix, fault) {
    const load = startLoad(store, makeConversation, { idPrefix, workers: 6 })
    await untilAcknowledged(load, 30)
    await fault(load)
    await untilAcknowledged(load, 30)
    const { results, acknowledged } = await load.stop()
    for (const r of results) {
      assert.ok(r.ms < SETTLE_CEILING_MS, `${r.op} took ${Math.round(r.ms)} ms`)
      if (!r.ok) assert.equal(r.error.code, 'STORE_UNAVAILABLE', r.error.message)
    }
    for (const [id, conversation] of acknowledged) {
      const stored = await store.get(id)
      assert.ok(stored, `acknowledged write ${id} is gone`)
      assert.equal(stored.updatedAt, conversation.updatedAt)
    }
    const users = new Set([...acknowledged.values()].map((c) => c.userId))
    for (const userId of users) {
      const listed = await store.listByUser(userId)
      assert.ok(listed.every((c) => c.userId === userId))
    }
    return results
  }

  it('keeps working while a slot holding live keys moves to another primary (ASK, then MOVED)', async () => {
    await underLoad('migrate', async (load) => {
      const [someId] = load.acknowledged.keys()
      const slot = await cluster.slotForKey(`conv:${someId}`)
      const from = await cluster.primaryForSlot(slot)
      const primaries = await cluster.primaries()
      const to = primaries.find((p) => p.port !== from.port)
      await cluster.migrateSlot(slot, to.port, { batchSize: 2, afterBatch: () => untilAcknowledged(load, 3) })
      assert.equal(await cluster.nodeForKey(`conv:${someId}`), to.port)
    })
  })

  it('rides out a manual failover (CLUSTER FAILOVER) of a primary', async () => {
    await underLoad('failover', async () => {
      const [primary] = await cluster.primaries()
      await cluster.failover(primary.port)
    })
    await waitForStatus(store, 'ready')
  })

  it('rides out a killed primary: calls settle by their deadline until its replica is promoted', async () => {
    const seedPort = cluster.seedPort
    const primaries = await cluster.primaries()
    const victim = primaries.find((p) => p.port !== seedPort && p.replicaPorts.length > 0)
    // Replication is asynchronous: let the replica catch up first, so that what is asserted is
    // the store's behaviour, not Redis's window of writes lost in a crash.
    const before = startLoad(store, makeConversation, { idPrefix: 'prekill', workers: 6 })
    await untilAcknowledged(before, 30)
    const { acknowledged: acknowledgedBefore } = await before.stop()
    await waitReplicated(cluster, victim.port)
    await underLoad('kill', async (load) => {
      await cluster.killPrimary(victim.port)
      await untilAcknowledged(load, 10)
    })
    for (const [id, conversation] of acknowledgedBefore) {
      assert.equal((await store.get(id))?.updatedAt, conversation.updatedAt, `write ${id} acknowledged before the kill is gone`)
    }
    await waitForStatus(store, 'ready')
  })

  it('replaces a primary\'s half-open connection (bytes black-holed, no RST) with a rebuilt client', async () => {
    const primaries = await cluster.primaries()
    const victim = cluster.node(primaries.find((p) => p.port !== cluster.seedPort).port)
    const proxy = await startProxy({ targetPort: victim.port, targetHost: victim.host, host: victim.host })
    try {
      // The victim announces the proxy's port: the store reaches it through the proxy only.
      let from = log.lines.length
      await victim.cli('CONFIG', 'SET', 'cluster-announce-tls-port', proxy.port)
      await cluster.waitFor('the new port to be gossiped', async () =>
        ((await cluster.cli(cluster.seedPort, 'CLUSTER', 'NODES')).includes(`:${proxy.port}@`) ? undefined : 'not yet'))
      await log.waitFor(/new cluster nodes: cluster client rebuilt/, { from })
      await underLoad('halfopen', async (load) => {
        await untilAcknowledged(load, 30)
        assert.ok(proxy.connections.size > 0, 'the store does not go through the proxy')
        from = log.lines.length
        proxy.blackhole()
        await log.waitFor(/cluster unhealthy/, { from })
        // No client that lacks the primary passes for healthy: rebuilds fail while it is silent.
        await log.waitFor(/cluster client rebuild failed/, { from })
        assert.equal(store.status, 'reconnecting')
        assert.ok(!log.lines.slice(from).some((l) => /cluster client rebuilt|healthy again/.test(l)), log.lines.slice(from).join('\n'))
        const accepted = proxy.totalAccepted
        proxy.restore()
        await log.waitFor(/a primary stopped answering: cluster client rebuilt/, { from })
        assert.ok(proxy.totalAccepted > accepted, 'no new connection to the black-holed primary')
        await untilAcknowledged(load, 30)
      })
      await waitForStatus(store, 'ready')
    } finally {
      await victim.cli('CONFIG', 'SET', 'cluster-announce-tls-port', '0')
      await proxy.close()
    }
  })

  // Last: the new primary has no replica, which the failover tests above rely on.
  it('verifies a primary that joins later by the seed name too, and serves the slot moved to it', async () => {
    const from = log.lines.length
    await underLoad('joined', async (load) => {
      const port = await cluster.addPrimary()
      await log.waitFor(/cluster client rebuilt/, { from })
      const [someId] = load.acknowledged.keys()
      const slot = await cluster.slotForKey(`conv:${someId}`)
      await cluster.migrateSlot(slot, port, { batchSize: 5, afterBatch: () => untilAcknowledged(load, 3) })
      assert.equal(await cluster.nodeForKey(`conv:${someId}`), port)
      assert.ok(await store.get(someId), `${someId} is not readable on the new primary`)
    })
  })
})


/** Bounded polling until the primary's replica has every byte of its replication stream. */
async function waitReplicated(cluster, primaryPort) {
  for (let tries = 0; tries < 100; tries++) {
    const info = await cluster.cli(primaryPort, 'INFO', 'replication')
    const primaryOffset = Number(/master_repl_offset:(\d+)/.exec(info)?.[1])
    const replicaOffsets = [...info.matchAll(/slave\d+:.*offset=(\d+)/g)].map((m) => Number(m[1]))
    if (replicaOffsets.length > 0 && replicaOffsets.every((offset) => offset >= primaryOffset)) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`the replica of ${primaryPort} did not catch up`)
}
