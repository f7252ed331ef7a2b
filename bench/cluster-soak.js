'use strict';
// The cluster soak: a closed-loop load of set, get and listByUser on one store in cluster
// mode while faults hit one primary at a time. Checks that no call outlives its deadline,
// that every rejection is STORE_UNAVAILABLE, that reads return what was written, and that no
// acknowledged write is lost.
//
//   npm run soak:cluster -- [--minutes 2] [--workers 12]
//
// A local TLS cluster of 3 primaries with a replica each, every node on its own loopback
// address, its certificate naming only localhost; the store is seeded by name. Faults, in
// turn: CLUSTER FAILOVER, SIGSTOP for 1.5 s, SIGKILL + restart (the replica takes over).
// Replication is asynchronous, so writes acknowledged less than a second before a kill may
// be lost by Redis itself: those are counted apart and do not fail the run. Exits 1 on a
// failure.

const { performance } = require('node:perf_hooks');
const { setTimeout: delay } = require('node:timers/promises');

const { RedisConversationStore } = require('..');
const { startCluster, stopAllClusters } = require('../__test__/helpers/cluster.js');
const { makeNameOnlyCerts } = require('../__test__/helpers/redis.js');
const { makeConversation } = require('../__test__/helpers/conversations.js');

const COMMAND_TIMEOUT_MS = 1000;
const OVER_DEADLINE_MS = COMMAND_TIMEOUT_MS + 1000;
const REPLICATION_WINDOW_MS = 1000;
const FAULTS = ['failover', 'pause', 'kill'];
const PAUSE_MS = 1500;
const BETWEEN_FAULTS_MS = 3000;

function parseArgs(argv) {
  const args = { minutes: 2, workers: 12 };
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], Number(argv[i + 1])];
    if (name === '--minutes' && value > 0) args.minutes = value;
    else if (name === '--workers' && Number.isInteger(value) && value > 0) args.workers = value;
    else throw new Error(`unknown or bad argument ${name} ${argv[i + 1] ?? ''}`);
  }
  return args;
}

/** Calls timed and tallied; writes remembered with the time they were acknowledged. */
function startLoad(store, workers) {
  const tally = { calls: 0, rejected: 0, overDeadline: [], wrongCode: [], wrongResult: [] };
  const acknowledged = new Map(); // id -> { updatedAt, at }
  let running = true;
  const call = async (op, fn) => {
    const start = performance.now();
    try {
      return await fn();
    } catch (error) {
      tally.rejected++;
      if (error.code !== 'STORE_UNAVAILABLE') tally.wrongCode.push(`${op}: ${error.code} ${error.message}`);
      return undefined;
    } finally {
      tally.calls++;
      const ms = performance.now() - start;
      if (ms > OVER_DEADLINE_MS) tally.overDeadline.push(`${op} took ${Math.round(ms)} ms`);
    }
  };
  const worker = async (w) => {
    for (let n = 0; running; n++) {
      const id = `soak-${w}-${n}`;
      const userId = `soak-user-${w}`;
      const conversation = makeConversation({ userId });
      const written = await call('set', () => store.set(id, conversation).then(() => true));
      if (written) acknowledged.set(id, { updatedAt: conversation.updatedAt, at: performance.now() });
      const read = await call('get', () => store.get(id));
      if (written && read && read.updatedAt !== conversation.updatedAt) tally.wrongResult.push(`get ${id}`);
      if (n % 10 === 0) {
        const list = await call('listByUser', () => store.listByUser(userId));
        if (list && !list.every((c) => c.userId === userId)) tally.wrongResult.push(`listByUser ${userId}`);
      }
      if (!written) await delay(10); // a failing loop must not starve the event loop
    }
  };
  const done = Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  return {
    tally,
    acknowledged,
    async stop() {
      running = false;
      await done;
    },
  };
}

async function inject(cluster, kind) {
  const primaries = (await cluster.primaries()).filter((p) => p.replicaPorts.length > 0);
  const victim = primaries[Math.floor(Math.random() * primaries.length)];
  if (kind === 'failover') {
    await cluster.failover(victim.port);
  } else if (kind === 'pause') {
    const node = cluster.node(victim.port);
    node.pause();
    await delay(PAUSE_MS);
    node.resume();
    await cluster.waitReady();
  } else {
    const killedAt = performance.now();
    await cluster.killPrimary(victim.port);
    await cluster.restartNode(victim.port);
    return killedAt;
  }
  return undefined;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const cluster = await startCluster({ certs: await makeNameOnlyCerts(), seedHost: 'localhost' });
  const warnings = [];
  const store = new RedisConversationStore(cluster.seedUrl, {
    cluster: true,
    tls: { ca: cluster.caPem },
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    connectTimeoutMs: 3000,
    healthCheckIntervalMs: 200,
    logger: { info: () => {}, warn: (line) => warnings.push(line), error: (line) => warnings.push(line) },
  });
  await store.ready();
  console.log(`cluster soak: ${args.minutes} min, ${args.workers} workers, seed ${cluster.seedUrl}`);
  const load = startLoad(store, args.workers);
  const kills = [];
  const end = performance.now() + args.minutes * 60_000;
  for (let i = 0; performance.now() < end; i++) {
    const kind = FAULTS[i % FAULTS.length];
    const started = performance.now();
    const killedAt = await inject(cluster, kind);
    if (killedAt !== undefined) kills.push(killedAt);
    console.log(`${kind.padEnd(8)} ${Math.round(performance.now() - started)} ms; ${load.tally.calls} calls so far`);
    await delay(BETWEEN_FAULTS_MS);
  }
  await load.stop();

  let lost = 0;
  let lostInWindow = 0;
  for (const [id, { updatedAt, at }] of load.acknowledged) {
    const stored = await store.get(id).catch(() => undefined);
    if (stored?.updatedAt === updatedAt) continue;
    if (kills.some((k) => at <= k && k - at < REPLICATION_WINDOW_MS)) lostInWindow++;
    else lost++;
  }
  await store.close();
  await stopAllClusters();

  const { tally } = load;
  console.log(`calls ${tally.calls}, rejected ${tally.rejected}; over deadline ${tally.overDeadline.length}, ` +
    `wrong code ${tally.wrongCode.length}, wrong result ${tally.wrongResult.length}; ` +
    `acknowledged writes ${load.acknowledged.size}, lost ${lost}, lost within ${REPLICATION_WINDOW_MS} ms before a kill ${lostInWindow}; ` +
    `${warnings.length} warnings logged`);
  for (const line of [...tally.overDeadline, ...tally.wrongCode, ...tally.wrongResult].slice(0, 20)) console.log(`  ${line}`);
  const failed = tally.overDeadline.length + tally.wrongCode.length + tally.wrongResult.length + lost > 0;
  console.log(failed ? 'cluster soak: FAILED' : 'cluster soak: passed');
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
