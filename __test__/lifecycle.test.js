'use strict';
// Status and close: 'connecting' → 'ready' → 'end', close is idempotent, and after close()
// nothing keeps the Node event loop alive (proved in child processes that must exit by themselves).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');

const { RedisConversationStore, InMemoryConversationStore } = require('..');
const { startRedis, stopAll, withLogOnFailure } = require('../support/redis');
const { makeConversation, persisted, uniqueId } = require('../support/conversations');
const { recordingLogger, silentLogger } = require('../support/observe');

const PACKAGE_DIR = path.resolve(__dirname, '..');
const CHILD_EXIT_CEILING_MS = 15_000;
const COMMAND_TIMEOUT_MS = 800;
const SLACK_MS = 2000;

let server;

before(async () => {
  server = await startRedis();
});
after(stopAll);

function redisStore(t, options = {}) {
  const store = new RedisConversationStore(server.url, { tls: { ca: server.caPem }, logger: silentLogger, ...options });
  t.after(() => store.close());
  return store;
}

/** A loopback port nothing listens on (bound, then released). */
function unusedPort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/**
 * Runs `script` in a fresh Node process with the package at `STORE_PACKAGE` and `env`.
 * Resolves once the process has exited, or kills it at the ceiling (`exitedByItself: false`).
 */
function runChild(script, env = {}) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, ['-e', script], {
      env: { ...process.env, ...env, STORE_PACKAGE: PACKAGE_DIR },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
    let killedAtCeiling = false;
    const ceiling = setTimeout(() => {
      killedAtCeiling = true;
      child.kill('SIGKILL');
    }, CHILD_EXIT_CEILING_MS);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(ceiling);
      resolve({
        code,
        signal,
        stdout,
        stderr,
        exitedByItself: !killedAtCeiling,
        elapsedMs: performance.now() - started,
      });
    });
  });
}

/** The child printed one JSON line and exited by itself with status 0; returns that JSON. */
function assertExitedCleanly(result) {
  const details = `stdout: ${result.stdout}\nstderr: ${result.stderr}`;
  assert.ok(
    result.exitedByItself,
    `the child was still running after ${CHILD_EXIT_CEILING_MS} ms: something keeps the event loop alive\n${details}`,
  );
  assert.equal(result.code, 0, details);
  return JSON.parse(result.stdout);
}

// The children log nothing (a quiet logger) and report what they saw as one JSON line.
const CHILD_PRELUDE = `
  const { RedisConversationStore, InMemoryConversationStore } = require(process.env.STORE_PACKAGE);
  const quiet = { info() {}, warn() {}, error() {} };
  const report = (value) => process.stdout.write(JSON.stringify(value) + '\\n');
`;

describe('status', () => {
  test("status is 'connecting' when built, 'ready' once ready() resolves, 'end' after close()", async (t) => {
    await withLogOnFailure(server, async () => {
      const store = redisStore(t);
      assert.equal(store.status, 'connecting');
      assert.equal(await store.ready(), undefined);
      assert.equal(store.status, 'ready');
      await store.close();
      assert.equal(store.status, 'end');
    });
  });

  test("the in-memory store is 'ready' at once and its ready() resolves; 'end' after close()", async () => {
    const store = new InMemoryConversationStore({ logger: silentLogger });
    assert.equal(store.status, 'ready');
    assert.equal(await store.ready(), undefined);
    await store.close();
    assert.equal(store.status, 'end');
  });

  test("a store where nothing listens stays 'connecting', and get rejects STORE_UNAVAILABLE within commandTimeoutMs", async (t) => {
    const log = recordingLogger();
    const url = `rediss://127.0.0.1:${await unusedPort()}`;
    const store = new RedisConversationStore(url, {
      tls: { ca: server.caPem },
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      retry: { baseDelayMs: 20, maxDelayMs: 100 },
      logger: log.logger,
    });
    t.after(() => store.close());
    const started = performance.now();
    const error = await store.get(uniqueId()).then(
      () => assert.fail('get should reject'),
      (e) => e,
    );
    const elapsedMs = performance.now() - started;
    assert.equal(error.code, 'STORE_UNAVAILABLE', error.message);
    assert.ok(elapsedMs < COMMAND_TIMEOUT_MS + SLACK_MS, `get took ${elapsedMs} ms`);
    // Attempts have failed meanwhile, and the store, never ready, is still 'connecting'.
    await log.waitFor(/reconnecting \(attempt 2\)/);
    assert.equal(store.status, 'connecting');
  });
});

describe('close', () => {
  test('close is idempotent: repeated and concurrent calls resolve, and status stays end', async (t) => {
    await withLogOnFailure(server, async () => {
      const store = redisStore(t);
      await store.ready();
      assert.deepEqual(await Promise.all([store.close(), store.close()]), [undefined, undefined]);
      assert.equal(await store.close(), undefined);
      assert.equal(store.status, 'end');

      const memory = new InMemoryConversationStore({ logger: silentLogger });
      await memory.close();
      assert.equal(await memory.close(), undefined);
      assert.equal(memory.status, 'end');
    });
  });

  test('a store closed before it ever connected rejects every call with STORE_CLOSED', async () => {
    const url = `rediss://127.0.0.1:${await unusedPort()}`;
    const store = new RedisConversationStore(url, { tls: { ca: server.caPem }, logger: silentLogger });
    await store.close();
    assert.equal(store.status, 'end');
    const conversation = makeConversation();
    for (const call of [
      () => store.ready(),
      () => store.get('x'),
      () => store.set('x', conversation),
      () => store.delete('x'),
      () => store.listByUser(conversation.userId),
    ]) {
      await assert.rejects(call(), (error) => error.code === 'STORE_CLOSED');
    }
  });

  test('a call waiting for a connection rejects STORE_CLOSED as soon as the store closes, not at its deadline', async () => {
    const url = `rediss://127.0.0.1:${await unusedPort()}`;
    const store = new RedisConversationStore(url, {
      tls: { ca: server.caPem },
      commandTimeoutMs: 30_000,
      logger: silentLogger,
    });
    const waiting = store.get('x').then(
      () => assert.fail('get should reject'),
      (e) => e,
    );
    const started = performance.now();
    await store.close();
    const error = await waiting;
    const elapsedMs = performance.now() - started;
    assert.equal(error.code, 'STORE_CLOSED', error.message);
    assert.ok(elapsedMs < SLACK_MS, `get settled ${elapsedMs} ms after close()`);
  });

  test('closing one store leaves another store of the same server working', async (t) => {
    await withLogOnFailure(server, async () => {
      const writer = redisStore(t, { keyPrefix: 'lifecycle:' });
      const reader = redisStore(t, { keyPrefix: 'lifecycle:' });
      const conversation = makeConversation();
      const id = conversation.externalId;
      await Promise.all([writer.ready(), reader.ready()]);
      await writer.set(id, conversation);
      await writer.close();
      assert.deepEqual(await reader.get(id), persisted(conversation), 'closing one store must not affect another');
    });
  });
});

describe('nothing keeps the event loop alive after close()', { concurrency: true }, () => {
  test('a process that used a Redis store (set, get) and closed it exits by itself', async () => {
    await withLogOnFailure(server, async () => {
      const conversation = makeConversation();
      const result = await runChild(
        `${CHILD_PRELUDE}
        (async () => {
          const store = new RedisConversationStore(process.env.REDIS_URL, { tls: { ca: process.env.REDIS_CA }, logger: quiet });
          await store.ready();
          const conversation = JSON.parse(process.env.CONVERSATION);
          await store.set(conversation.externalId, conversation);
          const got = await store.get(conversation.externalId);
          await store.close();
          report({ got, status: store.status });
        })();`,
        { REDIS_URL: server.url, REDIS_CA: server.caPem, CONVERSATION: JSON.stringify(conversation) },
      );
      const { got, status } = assertExitedCleanly(result);
      assert.deepEqual(got, persisted(conversation));
      assert.equal(status, 'end');
    });
  });

  test('a process that used the in-memory store exits by itself, even without close()', async () => {
    const conversation = makeConversation();
    const result = await runChild(
      `${CHILD_PRELUDE}
      (async () => {
        const store = new InMemoryConversationStore({ logger: quiet });
        const conversation = JSON.parse(process.env.CONVERSATION);
          await store.set(conversation.externalId, conversation);
        report({ got: await store.get(conversation.externalId), status: store.status });
      })();`,
      { CONVERSATION: JSON.stringify(conversation) },
    );
    const { got, status } = assertExitedCleanly(result);
    assert.deepEqual(got, persisted(conversation));
    assert.equal(status, 'ready');
  });

  test('a process whose store never connected (nothing listens) exits by itself once the store is closed', async () => {
    const url = `rediss://127.0.0.1:${await unusedPort()}`;
    const result = await runChild(
      `${CHILD_PRELUDE}
      (async () => {
        const store = new RedisConversationStore(process.env.REDIS_URL, {
          tls: { ca: process.env.REDIS_CA },
          commandTimeoutMs: ${COMMAND_TIMEOUT_MS},
          logger: quiet,
        });
        const started = performance.now();
        const code = await store.get('x').then(() => 'resolved', (e) => e.code);
        const elapsedMs = performance.now() - started;
        const statusBeforeClose = store.status;
        await store.close();
        report({ code, elapsedMs, statusBeforeClose, status: store.status });
      })();`,
      { REDIS_URL: url, REDIS_CA: server.caPem },
    );
    const { code, elapsedMs, statusBeforeClose, status } = assertExitedCleanly(result);
    assert.equal(code, 'STORE_UNAVAILABLE');
    assert.ok(elapsedMs < COMMAND_TIMEOUT_MS + SLACK_MS, `get took ${elapsedMs} ms`);
    assert.equal(statusBeforeClose, 'connecting');
    assert.equal(status, 'end');
  });
});
