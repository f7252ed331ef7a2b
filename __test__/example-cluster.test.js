'use strict';
// The example server's store on a Redis Cluster endpoint (Azure Managed Redis with the OSS
// clustering policy): REDIS_CLUSTER=1 makes it a cluster store; without it the endpoint
// answers MOVED for most keys, and the store's calls fail.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const path = require('node:path');

const { EXAMPLE_DIR, ensureExampleDeps, compileExample } = require('../examples/setup.js');
const { startCluster, stopAllClusters } = require('../support/cluster');
const { makeNameOnlyCerts } = require('../support/redis');
const { exampleEnvironment } = require('../support/example-env');

const SERVER = path.join(EXAMPLE_DIR, 'dist', 'server.js');
const CONVERSATIONS = require.resolve('../support/conversations');
const CEILING_MS = 60_000; // a hang ceiling, not a speed claim

let cluster;
before(async () => {
  ensureExampleDeps();
  compileExample([], { stdio: 'pipe' });
  cluster = await startCluster({
    primaries: 3,
    replicasPerPrimary: 0,
    certs: await makeNameOnlyCerts(),
    seedHost: 'localhost',
  });
});
after(stopAllClusters);

/**
 * In a child process: the store the server would make from `env`, then 30 sets and gets of
 * conversations whose ids fall in every node's slots. Prints one JSON line: how many calls
 * worked, and the codes and first message of those that failed.
 */
function storeFromEnv(env) {
  const script = `
    const { storeOptionsFromEnv } = require(${JSON.stringify(SERVER)});
    const { createConversationStore } = require(${JSON.stringify(path.join(EXAMPLE_DIR, 'node_modules', '@copilot-chat', 'redis-store'))});
    const { makeConversation } = require(${JSON.stringify(CONVERSATIONS)});
    (async () => {
      const store = createConversationStore({ ...(await storeOptionsFromEnv()), logger: { info() {}, warn() {}, error() {} } });
      await store.ready();
      const outcomes = await Promise.all(Array.from({ length: 30 }, async () => {
        const c = makeConversation();
        try {
          await store.set(c.externalId, c);
          const back = await store.get(c.externalId);
          return back?.externalId === c.externalId ? 'ok' : 'lost';
        } catch (error) {
          return error.code + ': ' + error.message;
        }
      }));
      await store.close();
      process.stdout.write(JSON.stringify({
        ok: outcomes.filter((o) => o === 'ok').length,
        failures: outcomes.filter((o) => o !== 'ok'),
      }));
    })().catch((error) => { process.stderr.write(String(error && error.message)); process.exit(1); });`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], {
      env: exampleEnvironment(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), CEILING_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`exit ${code}: ${stderr}`));
      try {
        resolve(JSON.parse(stdout));
      } catch {
        reject(new Error(`not one JSON line: ${stdout}${stderr}`));
      }
    });
  });
}

test('REDIS_CLUSTER=1 makes the server store a cluster store: every set and get on every node works', async () => {
  const result = await storeFromEnv({
    REDIS_URL: cluster.seedUrl,
    REDIS_CA_FILE: cluster.certs.caFile,
    REDIS_CLUSTER: '1',
  });
  assert.deepEqual(result, { ok: 30, failures: [] });
});

test('without REDIS_CLUSTER the cluster endpoint fails calls with STORE_UNAVAILABLE, saying to set cluster: true', async () => {
  const result = await storeFromEnv({ REDIS_URL: cluster.seedUrl, REDIS_CA_FILE: cluster.certs.caFile });
  // About two thirds of the ids fall in the slots of the two other primaries.
  assert.ok(result.failures.length > 0, JSON.stringify(result));
  for (const failure of result.failures) assert.match(failure, /^STORE_UNAVAILABLE: .*cluster: true/);
});

test('REDIS_CLUSTER without REDIS_URL, or with a value that is not 1 or 0, refuses to start', () => {
  for (const [env, message] of [
    [{ REDIS_CLUSTER: '1' }, /REDIS_CLUSTER: set REDIS_URL too/],
    // Any case, spaces around: still true.
    [{ REDIS_CLUSTER: ' TRUE ' }, /REDIS_CLUSTER: set REDIS_URL too/],
    [
      { REDIS_CLUSTER: 'yes', REDIS_URL: cluster.seedUrl },
      /REDIS_CLUSTER: expected 1 or 0 \(true or false\), got 'yes'/,
    ],
  ]) {
    const result = spawnSync(
      process.execPath,
      [
        '-e',
        `require(${JSON.stringify(SERVER)}).storeOptionsFromEnv().then(() => process.exit(0), (e) => { process.stderr.write(e.message); process.exit(1); })`,
      ],
      { env: exampleEnvironment(env), encoding: 'utf8', timeout: CEILING_MS },
    );
    assert.equal(result.status, 1, result.stdout);
    assert.match(result.stderr, message);
  }
});
