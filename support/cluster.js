'use strict';
// Test harness: a local Redis Cluster over TLS (cluster bus, replication and
// MIGRATE all on TLS), built from the single-server harness in ./redis.js.
// Nodes are started with startRedis, so redis.js's stopAll() and its exit
// hooks also kill them; stopAllClusters() is the cluster-level equivalent.

const { randomUUID } = require('node:crypto');
const { setTimeout: delay } = require('node:timers/promises');
const keySlot = require('cluster-key-slot');
const { freePort, makeCerts, startRedis, redisCli, withLogOnFailure } = require('./redis');

const HOST = '127.0.0.1';
const SLOTS = 16384;
const POLL_MS = 100;
const WAIT_MS = 30_000;
const NODE_TIMEOUT_MS = 2000;
const BUS_PORT_TRIES = 3;
const CREATE_TIMEOUT_MS = 60_000;

const clusters = new Set();

/** Parses `CLUSTER NODES`; `slots` holds owned ranges only. */
function parseNodes(text) {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((line) => {
      const [id, addr, flagList, master, , , , link, ...slots] = line.trim().split(' ');
      const flags = flagList.split(',');
      return {
        id,
        port: Number(addr.split('@')[0].split(':').pop()),
        myself: flags.includes('myself'),
        primary: flags.includes('master'),
        failed: flags.some((f) => f === 'fail' || f === 'fail?' || f === 'handshake' || f === 'noaddr'),
        masterId: master === '-' ? undefined : master,
        link,
        // "[slot->-id]" / "[slot-<-id]" mark a migration in progress, not ownership.
        slots: slots
          .filter((s) => !s.startsWith('['))
          .map((s) => {
            const [start, end = start] = s.split('-').map(Number);
            return [start, end];
          }),
      };
    });
}

const owns = (node, slot) => node.slots.some(([a, b]) => a <= slot && slot <= b);

// One line per healthy node: two nodes agree on the topology iff these match.
function topology(view) {
  const portOf = new Map(view.map((n) => [n.id, n.port]));
  return view
    .filter((n) => !n.failed)
    .map((n) =>
      n.primary
        ? `${n.port} primary ${n.slots.map((r) => r.join('-')).join(',')}`
        : `${n.port} replica-of ${portOf.get(n.masterId)}`,
    )
    .sort()
    .join('\n');
}

class RedisCluster {
  constructor({ certs, password, seedHost = HOST }) {
    this.certs = certs;
    this.seedHost = seedHost;
    this.caPem = certs.caPem;
    this.password = password;
    this.nodes = [];
    this.seedPort = undefined;
  }

  /** `rediss://[:password@]<seedHost>:<port>` of the primary on 127.0.0.1. */
  get seedUrl() {
    return this.urlAt(this.seedHost);
  }

  /** The seed's URL by its IP address, whatever seedHost is. */
  get seedIpUrl() {
    return this.urlAt(this.node(this.seedPort).host);
  }

  urlAt(host) {
    const auth = this.password ? `:${encodeURIComponent(this.password)}@` : '';
    return `rediss://${auth}${host}:${this.seedPort}`;
  }

  node(port) {
    const node = this.nodes.find((n) => n.port === Number(port));
    if (!node) throw new Error(`no cluster node on port ${port}`);
    return node;
  }

  // The seed may have been killed: ask any node that still runs.
  liveNode() {
    const node = this.nodes.find((n) => n.port === this.seedPort && n.running) ?? this.nodes.find((n) => n.running);
    if (!node) throw new Error('no cluster node is running');
    return node;
  }

  /** redis-cli against one node (no redirects followed). */
  cli(port, ...args) {
    return this.node(port).cli(...args);
  }

  /** `redis-cli -c` against a live node: follows MOVED/ASK, so any key can be inspected. */
  async clusterCli(...args) {
    const live = this.liveNode();
    const res = await redisCli({ host: live.host, port: live.port, certs: this.certs, password: this.password }, [
      '-c',
      ...args,
    ]);
    if (res.code !== 0 || res.timedOut) {
      const why = res.timedOut ? 'timed out' : `exited ${res.code}`;
      throw new Error(`redis-cli -c ${args.join(' ')} ${why}: ${(res.stderr + res.stdout).trim()}`);
    }
    return res.stdout.trim();
  }

  async view(port = this.liveNode().port) {
    return parseNodes(await this.cli(port, 'CLUSTER', 'NODES'));
  }

  /** Healthy primaries as one live node sees them: [{ id, port, slots, replicaPorts }]. */
  async primaries() {
    const view = await this.view();
    return view
      .filter((n) => n.primary && !n.failed)
      .map((p) => ({
        id: p.id,
        port: p.port,
        slots: p.slots,
        replicaPorts: view.filter((r) => r.masterId === p.id && !r.failed).map((r) => r.port),
      }));
  }

  async slotForKey(key) {
    return Number(await this.cli(this.liveNode().port, 'CLUSTER', 'KEYSLOT', key));
  }

  /** Port of the primary that owns the key's slot. */
  async nodeForKey(key) {
    return (await this.primaryForSlot(await this.slotForKey(key))).port;
  }

  async primaryForSlot(slot) {
    const owner = (await this.primaries()).find((p) => owns(p, slot));
    if (!owner) throw new Error(`no primary owns slot ${slot}`);
    return owner;
  }

  /**
   * The manual resharding of one slot, as stages a test can interleave with load:
   * begin() (IMPORTING on the target, MIGRATING on the source), moveBatch() until it
   * returns 0 (MIGRATE over TLS), then finish() (SETSLOT NODE everywhere, await agreement).
   */
  async migrateSlotSteps(slot, toPort, { batchSize = 100 } = {}) {
    const all = await this.primaries();
    const src = all.find((p) => owns(p, slot));
    const dst = all.find((p) => p.port === Number(toPort));
    if (!src || !dst) throw new Error(`slot ${slot}: no owner, or ${toPort} is not a primary`);
    if (src === dst) throw new Error(`slot ${slot} is already on ${toPort}`);
    // MIGRATE opens its own connection to the target, so it must authenticate there.
    const auth = this.password ? ['AUTH', this.password] : [];
    return {
      slot,
      fromPort: src.port,
      toPort: dst.port,
      begin: async () => {
        // Target first: once the source says MIGRATING, clients get ASKed to the target.
        await this.cli(dst.port, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', src.id);
        await this.cli(src.port, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', dst.id);
      },
      moveBatch: async () => {
        const out = await this.cli(src.port, 'CLUSTER', 'GETKEYSINSLOT', slot, batchSize);
        const keys = out ? out.split('\n') : [];
        if (keys.length)
          await this.cli(
            src.port,
            'MIGRATE',
            this.node(dst.port).host,
            dst.port,
            '',
            0,
            5000,
            ...auth,
            'KEYS',
            ...keys,
          );
        return keys.length;
      },
      finish: async () => {
        // Target first (it bumps its epoch), then the source, then the others, as the docs advise.
        const order = [dst, src, ...all.filter((p) => p !== src && p !== dst)];
        for (const p of order) await this.cli(p.port, 'CLUSTER', 'SETSLOT', slot, 'NODE', dst.id);
        await this.waitReady();
      },
    };
  }

  /** Moves one slot and its keys to the primary on toPort; afterBatch runs mid-migration (ASK window). */
  async migrateSlot(slot, toPort, { batchSize, afterBatch } = {}) {
    const steps = await this.migrateSlotSteps(slot, toPort, { batchSize });
    await steps.begin();
    for (let moved = await steps.moveBatch(); moved > 0; moved = await steps.moveBatch()) await afterBatch?.(moved);
    await steps.finish();
  }

  /** Manual CLUSTER FAILOVER on a replica of primaryPort; resolves the promoted replica's port. */
  async failover(primaryPort) {
    const primary = (await this.primaries()).find((p) => p.port === Number(primaryPort));
    if (!primary?.replicaPorts.length) throw new Error(`${primaryPort} is not a primary with a replica`);
    const [replica] = primary.replicaPorts;
    await this.cli(replica, 'CLUSTER', 'FAILOVER');
    await this.waitFor(`${replica} to become primary`, async () =>
      (await this.cli(replica, 'ROLE')).split('\n')[0] === 'master' ? undefined : 'still a replica',
    );
    await this.waitReady();
    return replica;
  }

  /** SIGKILLs a primary, awaits the automatic failover; resolves the promoted replica's port. */
  async killPrimary(primaryPort) {
    const primary = (await this.primaries()).find((p) => p.port === Number(primaryPort));
    if (!primary?.replicaPorts.length) throw new Error(`${primaryPort} is not a primary with a replica`);
    await this.node(primaryPort).kill();
    // Failure detection takes cluster-node-timeout, then the replicas hold an election.
    let promoted;
    await this.waitFor(`a replica of ${primaryPort} to be promoted`, async () => {
      for (const port of primary.replicaPorts) {
        if ((await this.cli(port, 'ROLE')).split('\n')[0] === 'master') promoted = port;
      }
      return promoted ? undefined : 'no replica promoted yet';
    });
    await this.waitReady();
    return promoted;
  }

  /** Starts one more node on the next loopback address, has the cluster MEET it, and resolves its port once all agree; it owns no slot yet. */
  async addPrimary() {
    const node = await startNode({ ...this.nodeOptions, host: nodeHost(this.nodes.length) });
    this.nodes.push(node);
    await this.cli(this.liveNode().port, 'CLUSTER', 'MEET', node.host, node.port, node.busPort);
    await this.waitReady();
    return node.port;
  }

  /** Restarts a stopped or killed node on its port; it rejoins from nodes.conf. */
  async restartNode(port) {
    await this.node(port).restart();
    await this.waitReady();
  }

  /** Resolves once every running node says cluster_state:ok, all agree on who serves all slots, and replicas are linked. */
  waitReady() {
    return this.waitFor('the cluster to be ready', () => this.problem());
  }

  // Why the cluster is not ready yet, or undefined when it is.
  async problem() {
    const live = this.nodes.filter((n) => n.running);
    const ask = (args) => Promise.all(live.map((n) => n.cli(...args).catch((err) => `error: ${err.message}`)));

    const infos = await ask(['CLUSTER', 'INFO']);
    const notOk = live.findIndex((_n, i) => !/^cluster_state:ok/m.test(infos[i]));
    if (notOk >= 0) return `:${live[notOk].port} ${infos[notOk].split('\n')[0]}`;

    const views = (await ask(['CLUSTER', 'NODES'])).map(parseNodes);
    const livePorts = new Set(live.map((n) => n.port));
    for (const [i, view] of views.entries()) {
      const owners = view.filter((n) => n.primary && !n.failed && n.slots.length);
      const covered = owners.reduce((sum, n) => sum + n.slots.reduce((s, [a, b]) => s + b - a + 1, 0), 0);
      if (covered !== SLOTS) return `:${live[i].port} sees ${covered}/${SLOTS} slots served`;
      const dead = owners.find((n) => !livePorts.has(n.port));
      if (dead) return `:${live[i].port} still routes slots to stopped :${dead.port}`;
      if (topology(view) !== topology(views[0])) {
        return `:${live[i].port} and :${live[0].port} disagree:\n${topology(view)}\n---\n${topology(views[0])}`;
      }
    }

    const replicas = live.filter((_n, i) => !views[i].find((v) => v.myself)?.primary);
    const links = await Promise.all(replicas.map((n) => n.cli('INFO', 'replication').catch(() => '')));
    const down = replicas.findIndex((_n, i) => !/^master_link_status:up/m.test(links[i]));
    if (down >= 0) return `replica :${replicas[down].port} master_link_status not up`;
    return undefined;
  }

  // Bounded polling: check() returns a reason while not done; the last reason ends up in the error.
  async waitFor(what, check) {
    return withLogOnFailure(this.nodes, async () => {
      const deadline = Date.now() + WAIT_MS;
      let reason;
      while (Date.now() < deadline) {
        reason = await check().catch((err) => err.message);
        if (reason === undefined) return;
        await delay(POLL_MS);
      }
      throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}: ${reason}`);
    });
  }

  /** Kills every node; idempotent. */
  async stop() {
    clusters.delete(this);
    await Promise.all(this.nodes.map((n) => n.kill()));
  }
}

// Node i listens on, and announces, 127.0.0.<i + 1>: as on a managed cache, every node has its
// own IP address, and a client that dials a name instead must still reach the right one.
const nodeHost = (i) => `127.0.0.${i + 1}`;

// A cluster node is a startRedis server with cluster flags; retried when its bus port was taken.
async function startNode({ certs, password, tlsAuthClients, args, host }) {
  for (let attempt = 1; ; attempt++) {
    // An explicit bus port: the default (port + 10000) can exceed 65535 for ephemeral ports.
    const busPort = await freePort();
    const nodeArgs = [
      '--cluster-enabled',
      'yes',
      '--cluster-port',
      String(busPort),
      // Relative to the node's own --dir, so every node has its own nodes.conf.
      '--cluster-config-file',
      'nodes.conf',
      '--cluster-node-timeout',
      String(NODE_TIMEOUT_MS),
      // Loopback connections leave from 127.0.0.1 unless told otherwise, and peers would take
      // that for the node's address.
      '--cluster-announce-ip',
      host,
      '--bind-source-addr',
      host,
      // Protected mode counts only 127.0.0.1 and ::1 as loopback; every node is on loopback.
      '--protected-mode',
      'no',
      '--tls-cluster',
      'yes',
      '--tls-replication',
      'yes',
      // The default waits 5 s for more replicas before a full sync: slow start and rejoin.
      '--repl-diskless-sync-delay',
      '0',
      ...(password ? ['--masterauth', password] : []),
      ...args,
    ];
    try {
      const node = await startRedis({ certs, password, tlsAuthClients, args: nodeArgs, host });
      node.busPort = busPort;
      return node;
    } catch (err) {
      if (attempt >= BUS_PORT_TRIES || !/could not bind/.test(err.message)) throw err;
    }
  }
}

/**
 * Starts primaries * (1 + replicasPerPrimary) TLS-only cluster nodes on loopback,
 * joins them with `redis-cli --cluster create`, and waits until the cluster is ready.
 * Node i announces 127.0.0.<i + 1>; seedUrl names the seed (the primary on 127.0.0.1) by
 * seedHost, 127.0.0.1 unless told otherwise.
 * opts: { primaries?, replicasPerPrimary?, password?, args?, certs?, tlsAuthClients?, seedHost? }
 */
async function startCluster({
  primaries = 3,
  replicasPerPrimary = 1,
  password,
  args = [],
  certs,
  tlsAuthClients = false,
  seedHost,
} = {}) {
  certs ??= await makeCerts();
  const cluster = new RedisCluster({ certs, password, seedHost });
  cluster.nodeOptions = { certs, password, tlsAuthClients, args };
  clusters.add(cluster);
  try {
    const count = primaries * (1 + replicasPerPrimary);
    // allSettled: the nodes that did start must be in `nodes` for stop() to kill them.
    const started = await Promise.allSettled(
      Array.from({ length: count }, (_, i) => startNode({ certs, password, tlsAuthClients, args, host: nodeHost(i) })),
    );
    cluster.nodes = started.filter((r) => r.status === 'fulfilled').map((r) => r.value);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    const res = await redisCli({ port: cluster.nodes[0].port, certs, password, timeoutMs: CREATE_TIMEOUT_MS }, [
      '--cluster',
      'create',
      ...cluster.nodes.map((n) => `${n.host}:${n.port}`),
      '--cluster-replicas',
      replicasPerPrimary,
      '--cluster-yes',
    ]);
    if (res.code !== 0 || res.timedOut) {
      throw new Error(
        `redis-cli --cluster create failed (${res.timedOut ? 'timeout' : res.code}):\n${res.stdout}${res.stderr}`,
      );
    }
    await cluster.waitReady();
    // The seed is the primary on 127.0.0.1, so that seedHost 'localhost' names it.
    const seed = (await cluster.primaries()).find((p) => cluster.node(p.port).host === HOST);
    if (!seed) throw new Error(`no primary listens on ${HOST}`);
    cluster.seedPort = seed.port;
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

/**
 * One cluster node reached as a standalone server (no `cluster: true`), as the one endpoint
 * of Azure Managed Redis' Enterprise clustering policy is. It refuses keys of two slots in one
 * script, transaction or multi-key command with CROSSSLOT, as that endpoint does (which allows
 * MGET, DEL, MSET, EXISTS, UNLINK and TOUCH across slots; this node does not).
 *
 * `slots` (`[first, last]`, inclusive; every slot by default) are the slots it serves. A
 * node that serves every slot lets a script reach keys it did not declare in any slot; one
 * that serves only some refuses a script that reaches a key of a slot it does not serve
 * ("Script attempted to access a non local key in a cluster node"), as a shard behind that
 * endpoint does: a test that gives it only part of the slots, with its keys chosen in them
 * (`uuidsInSlot`), catches undeclared keys. A key of a slot it does not serve is answered
 * MOVED. Resolves once it says cluster_state:ok.
 */
async function startSlotCheckingServer({ certs, slots = [0, SLOTS - 1] } = {}) {
  certs ??= await makeCerts();
  const node = await startNode({ certs, args: [], host: HOST });
  if (slots[0] !== 0 || slots[1] !== SLOTS - 1) await node.cli('CONFIG', 'SET', 'cluster-require-full-coverage', 'no');
  await node.cli('CLUSTER', 'ADDSLOTSRANGE', String(slots[0]), String(slots[1]));
  for (let waited = 0; !/^cluster_state:ok/m.test(await node.cli('CLUSTER', 'INFO')); waited += POLL_MS) {
    if (waited > WAIT_MS) throw new Error(`one-node cluster on ${node.port} not ok after ${WAIT_MS} ms`);
    await delay(POLL_MS); // no event to await: the state is polled, as waitReady() does
  }
  return node;
}

/**
 * `count` distinct UUIDs whose key `keyOf(uuid)` (by default the store's record key,
 * `conv:<uuid>`) hashes to `slot`: random UUIDs tried until enough fit, about 16,384 tries
 * each. A conversation's id is its UUID, so no hash tag can place a record.
 */
function uuidsInSlot(slot, count, keyOf = (uuid) => `conv:${uuid}`) {
  const found = new Set();
  for (let tries = 0; found.size < count; tries++) {
    if (tries > count * SLOTS * 20) throw new Error(`no ${count} UUIDs found for slot ${slot}`);
    const uuid = randomUUID();
    if (keySlot(keyOf(uuid)) === slot) found.add(uuid);
  }
  return [...found];
}

/** Kills every node of every cluster this process started. */
async function stopAllClusters() {
  await Promise.all([...clusters].map((c) => c.stop()));
}

module.exports = {
  startCluster,
  startSlotCheckingServer,
  stopAllClusters,
  RedisCluster,
  parseNodes,
  keySlot,
  uuidsInSlot,
};
