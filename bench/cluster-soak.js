'use strict';
// The cluster soak: a closed-loop load of set, get and listByUser on one store in cluster
// mode while faults hit one primary at a time. Checks that no call outlives its deadline,
// that every rejection is STORE_UNAVAILABLE, that every read returns what the writes allow
// (the tests' load-and-verify helper: each write carries its own number, ids are rewritten),
// and that no acknowledged write is lost.
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
const { readArgs, numberArg } = require('./args');
const { startCluster, stopAllClusters } = require('../support/cluster.js');
const { makeNameOnlyCerts } = require('../support/redis.js');
const { startLoad: startCheckedLoad } = require('../support/observe.js');

const COMMAND_TIMEOUT_MS = 1000;
const OVER_DEADLINE_MS = COMMAND_TIMEOUT_MS + 1000;
const REPLICATION_WINDOW_MS = 1000;
const FAULTS = ['failover', 'pause', 'kill'];
const PAUSE_MS = 1500;
const BETWEEN_FAULTS_MS = 3000;

function parseCommandLine() {
  const values = readArgs(
    { minutes: { type: 'string', default: '2' }, workers: { type: 'string', default: '12' } },
    'usage: node bench/cluster-soak.js [--minutes 2] [--workers 12]',
  );
  return { minutes: numberArg(values, 'minutes'), workers: numberArg(values, 'workers', { whole: true }) };
}

/** The tests' checked load, tallied as it runs; at most 200 ids a worker, no results kept. */
function startLoad(store, workers) {
  const tally = { calls: 0, rejected: 0, overDeadline: [], wrongCode: [] };
  const load = startCheckedLoad(store, {
    workers,
    idPrefix: 'soak',
    maxIdsPerWorker: 200,
    keepResults: false,
    onCall(result) {
      tally.calls++;
      if (!result.ok) {
        tally.rejected++;
        if (result.error?.code !== 'STORE_UNAVAILABLE')
          tally.wrongCode.push(`${result.op}: ${result.error?.code} ${result.error?.message}`);
      }
      if (result.ms > OVER_DEADLINE_MS) tally.overDeadline.push(`${result.op} took ${Math.round(result.ms)} ms`);
    },
  });
  return { load, tally, history: load.history, wrongResults: load.problems, stop: () => load.stop() };
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
  const args = parseCommandLine();
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

  // Every id must read as its last acknowledged write allows, except one whose last
  // acknowledged write came less than REPLICATION_WINDOW_MS before a kill: Redis' own loss.
  let lost = 0;
  let lostInWindow = 0;
  const lostDetails = [];
  for (const [id, { versions }] of load.history.ids) {
    const read = await store.get(id).then(
      (value) => ({ value }),
      (error) => ({ error }),
    );
    const problem = read.error
      ? `get ${id} after the load: ${read.error.code} ${read.error.message}`
      : load.history.checkRead(id, read.value, 'get after the load');
    if (!problem) continue;
    const at = versions.find((v) => v.state === 'acknowledged')?.settledAt ?? -Infinity;
    if (kills.some((k) => at <= k && k - at < REPLICATION_WINDOW_MS)) lostInWindow++;
    else {
      lost++;
      lostDetails.push(problem);
    }
  }
  await store.close();
  await stopAllClusters();

  const { tally, wrongResults } = load;
  console.log(
    `calls ${tally.calls}, rejected ${tally.rejected}; over deadline ${tally.overDeadline.length}, ` +
      `wrong code ${tally.wrongCode.length}, wrong result ${wrongResults.length}; ` +
      `ids written ${load.history.ids.size}, acknowledged writes ${load.load.acknowledgedWrites}, ` +
      `lost ${lost}, lost within ${REPLICATION_WINDOW_MS} ms before a kill ${lostInWindow}; ` +
      `${warnings.length} warnings logged`,
  );
  for (const line of [...tally.overDeadline, ...tally.wrongCode, ...wrongResults, ...lostDetails].slice(0, 20))
    console.log(`  ${line}`);
  const failed = tally.overDeadline.length + tally.wrongCode.length + wrongResults.length + lost > 0;
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
