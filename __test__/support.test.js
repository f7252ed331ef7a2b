'use strict';
// Proves the harness itself: TLS servers, pause/kill/restart, the proxy, and the load verifier.

const { test, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const tls = require('node:tls');
const { once } = require('node:events');
const { setTimeout: delay } = require('node:timers/promises');

const { makeCerts, makeUntrustedCa, startRedis, stopAll, redisCli, withLogOnFailure } = require('../support/redis');
const { startProxy } = require('../support/proxy');
const { InMemoryConversationStore } = require('..');
const { persisted } = require('../support/conversations');
const {
  startLoad,
  stopAndVerify,
  untilAcknowledged,
  readBack,
  stopAllLoads,
  silentLogger,
} = require('../support/observe');

after(stopAll);
afterEach(stopAllLoads);

/** `promise`, or a rejection naming `what` after `ms`. */
async function within(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

test('a server answers PING over TLS and inspection commands return raw values', async () => {
  const server = await startRedis();
  assert.match(server.url, /^rediss:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(await server.cli('PING'), 'PONG');
  await server.cli('SET', 'conv:1', '{"a":1}', 'EX', '60');
  assert.equal(await server.cli('GET', 'conv:1'), '{"a":1}');
  assert.equal(await server.cli('TYPE', 'conv:1'), 'string');
  await assert.rejects(server.cli('LPUSH', 'conv:1', 'x'), /WRONGTYPE/);
});

test('a password server refuses a client without the password', async () => {
  const server = await startRedis({ password: 'secret' });
  assert.equal(server.url, `rediss://:secret@127.0.0.1:${server.port}`);
  const anonymous = await server.tryCli(['PING'], { password: null });
  assert.notEqual(anonymous.code, 0);
  assert.match(anonymous.stderr, /NOAUTH/);
  assert.equal(await server.cli('PING'), 'PONG');
});

test('a server requiring client certificates accepts the generated client cert', async () => {
  const server = await startRedis({ tlsAuthClients: true });
  assert.equal(await server.cli('PING'), 'PONG');
  const certs = { ...server.certs, clientCertFile: undefined };
  const anonymous = await redisCli({ port: server.port, certs, timeoutMs: 2000 }, ['PING']);
  assert.notEqual(anonymous.code, 0);
});

test('a client trusting only the untrusted CA refuses the server certificate', async () => {
  const server = await startRedis();
  const { caFile } = await makeUntrustedCa();
  const res = await redisCli({ port: server.port, certs: { ...server.certs, caFile } }, ['PING']);
  assert.notEqual(res.code, 0);
  assert.match(res.stderr, /certificate verify failed/);
});

test('a paused server does not answer, and answers again once resumed', async () => {
  const server = await startRedis();
  server.pause();
  const res = await server.tryCli(['PING'], { timeoutMs: 500 });
  assert.ok(res.timedOut, 'redis-cli should still be waiting when killed');
  assert.doesNotMatch(res.stdout, /PONG/);
  server.resume();
  assert.equal(await server.cli('PING'), 'PONG');
});

test('kill and restart keep the same port and answer again', async () => {
  const server = await startRedis({ password: 'pw' });
  const { port, pid } = server;
  await server.cli('SET', 'k', 'v');
  await server.kill();
  assert.equal((await server.tryCli(['PING'], { timeoutMs: 2000 })).code === 0, false);
  await server.restart();
  assert.equal(server.port, port);
  assert.notEqual(server.pid, pid);
  assert.equal(await server.cli('PING'), 'PONG');
  assert.equal(await server.cli('EXISTS', 'k'), '0', 'no persistence: --save "" and no AOF');
  await server.stop();
  await server.stop(); // idempotent
  await server.restart();
  assert.equal(await server.cli('PING'), 'PONG');
});

test('withLogOnFailure appends the server log to the error', async () => {
  const server = await startRedis();
  await assert.rejects(
    withLogOnFailure(server, async () => assert.fail('boom')),
    (err) => /boom/.test(err.message) && /redis-server .* log/.test(err.message) && /Ready to accept/.test(err.stack),
  );
});

test('makeCerts memoises one set per process', async () => {
  assert.equal(await makeCerts(), await makeCerts());
});

test('the proxy forwards, and once blackholed swallows bytes on new and open connections', async () => {
  const server = await startRedis();
  const proxy = await startProxy({ targetPort: server.port });
  try {
    const viaProxy = (timeoutMs) => redisCli({ port: proxy.port, certs: server.certs, timeoutMs }, ['PING']);
    assert.equal((await viaProxy()).stdout.trim(), 'PONG');

    // An open TLS connection that goes half-open: no reply, no close.
    const socket = tls.connect({ host: '127.0.0.1', port: proxy.port, ca: server.caPem });
    await once(socket, 'secureConnect');
    const replies = [];
    proxy.events.on('reply', (length) => replies.push(length));
    socket.write('PING\r\n');
    assert.equal(String((await once(socket, 'data'))[0]), '+PONG\r\n');
    assert.ok(replies.length > 0, 'the reply event fired for the PONG');
    let heard = false;
    socket.on('data', () => {
      heard = true;
    });
    socket.on('close', () => {
      heard = true;
    });

    proxy.blackhole();
    const res = await viaProxy(1000);
    assert.ok(res.timedOut, 'a new connection should hang, not fail');
    assert.doesNotMatch(res.stdout, /PONG/);

    socket.write('PING\r\n');
    await server.kill(); // not even the server's death gets through
    await delay(200); // nothing to await: we are proving silence
    assert.equal(heard, false);
    socket.destroy();

    await server.restart();
    proxy.restore();
    assert.equal((await viaProxy()).stdout.trim(), 'PONG');
  } finally {
    await proxy.close();
  }
});

test('close() ends every connection through the proxy, both sides, and stops listening', async () => {
  const server = await startRedis();
  const proxy = await startProxy({ targetPort: server.port });
  const clientsVia = async () =>
    (await server.cli('CLIENT', 'LIST')).split('\n').filter((line) => / name=via-proxy /.test(line));
  // One live connection and one black-holed one, both still open on the server's side.
  const open = async () => {
    const socket = tls.connect({ host: '127.0.0.1', port: proxy.port, ca: server.caPem });
    socket.on('error', () => {});
    await once(socket, 'secureConnect');
    socket.write('CLIENT SETNAME via-proxy\r\n');
    assert.equal(String((await once(socket, 'data'))[0]), '+OK\r\n');
    return socket;
  };
  const live = await open();
  const dead = await open();
  try {
    assert.equal((await clientsVia()).length, 2);
    proxy.blackhole();
    proxy.restore();
    const closed = [once(live, 'close'), once(dead, 'close')];

    await within(proxy.close(), 5000, 'end of proxy.close()');

    await within(Promise.all(closed), 5000, 'close event on both clients');
    assert.equal(proxy.connections.size, 0, 'every connection was forgotten once closed');
    for (let tries = 0; (await clientsVia()).length > 0; tries++) {
      assert.ok(tries < 50, `the server still has the proxy's connections: ${await clientsVia()}`);
      await delay(20); // the server notices the close on its next read; no event to await
    }
    const refused = net.connect({ host: '127.0.0.1', port: proxy.port });
    const [error] = await once(refused, 'error');
    assert.equal(error.code, 'ECONNREFUSED');
  } finally {
    live.destroy();
    dead.destroy();
  }
});

// ---------------------------------------------------------------- the load verifier
// Run against a real in-memory store, broken on purpose one way at a time: each break must be
// caught, and the unbroken store must pass, so the resilience and cluster loads can fail.

/**
 * The in-memory store, broken by `faults`: `{ get, set, listByUser }`, each called as
 * (broken, n, ...args) with n counting all calls, returning a promise to use instead of the
 * real call's, or undefined to make the real call.
 */
function brokenStore(faults = {}) {
  const inner = new InMemoryConversationStore({ logger: silentLogger });
  const written = new Map(); // id → every conversation set, as stored, in order
  const broken = { inner, written, stale: (id) => written.get(id)?.at(-2) };
  let calls = 0;
  const call = (op, real, args) => faults[op]?.(broken, ++calls, ...args) ?? real(...args);
  return Object.assign(broken, {
    get: (id) => call('get', (id) => inner.get(id), [id]),
    set: (id, c) => {
      written.set(id, [...(written.get(id) ?? []), persisted(c)]);
      return call('set', (id, c) => inner.set(id, c), [id, c]);
    },
    listByUser: (userId) => call('listByUser', (userId) => inner.listByUser(userId), [userId]),
  });
}

const storeError = (code, message) => Object.assign(new Error(message), { code });

/** Runs a short load on `store` and verifies it (rejects when the verifier finds a fault). */
async function verdict(store, { settleCeilingMs = 1000 } = {}) {
  const load = startLoad(store, { workers: 2, idPrefix: 'verifier' });
  try {
    await untilAcknowledged(load, 60, 5000);
  } finally {
    await load.stop();
  }
  return stopAndVerify(load, { settleCeilingMs });
}

test('the load verifier passes a store that works, having checked reads, rewrites and lists', async () => {
  const store = brokenStore();
  const load = startLoad(store, { workers: 2, idPrefix: 'verifier' });
  await untilAcknowledged(load, 40);
  const results = await stopAndVerify(load, { settleCeilingMs: 1000 });
  const count = (op) => results.filter((r) => r.op === op).length;
  assert.ok(
    count('set') >= 40 && count('get') >= 40 && count('listByUser') >= 10,
    JSON.stringify({ set: count('set'), list: count('listByUser') }),
  );
  const versions = [...store.written.values()];
  assert.ok(
    versions.some((written) => written.length > 1),
    'no id was written twice',
  );
  const all = versions.flat();
  assert.equal(new Set(all.map((c) => c.metadata.seq)).size, all.length, 'every write carries its own seq');
  assert.equal(new Set(all.map((c) => c.updatedAt)).size, all.length, 'every write carries its own updatedAt');
});

const breaks = [
  [
    'a get right after an acknowledged set finds nothing',
    {
      get: (_s, n) => (n === 30 ? Promise.resolve(undefined) : undefined),
    },
    /is missing/,
  ],
  [
    'a get right after an acknowledged rewrite returns the version before it',
    {
      get: (s, n, id) => (n > 30 && s.stale(id) ? Promise.resolve(s.stale(id)) : undefined),
    },
    /read seq \d+/,
  ],
  [
    'an acknowledged rewrite is not applied (a lost overwrite)',
    {
      set: (s, n, id) => (n > 30 && s.written.get(id).length > 1 ? Promise.resolve() : undefined),
    },
    /read seq \d+/,
  ],
  [
    'a get returns sdkConversationRef',
    {
      get: (s, n, id) => (n === 30 ? s.inner.get(id).then((c) => c && { ...c, sdkConversationRef: {} }) : undefined),
    },
    /content differs/,
  ],
  [
    'listByUser returns an empty list',
    {
      listByUser: () => Promise.resolve([]),
    },
    /0 listed, expected/,
  ],
  [
    'listByUser leaves out one record',
    {
      listByUser: (s, _n, userId) => s.inner.listByUser(userId).then((list) => list.slice(0, -1)),
    },
    /not listed|listed, expected/,
  ],
  [
    'listByUser returns an old version of one record',
    {
      listByUser: (s, _n, userId) =>
        s.inner.listByUser(userId).then((list) => list.map((c) => s.stale(c.externalId) ?? c)),
    },
    /read seq \d+/,
  ],
  [
    'listByUser returns oldest first',
    {
      listByUser: (s, _n, userId) => s.inner.listByUser(userId).then((list) => list.reverse()),
    },
    /seq order/,
  ],
  [
    'a set rejects with another code than STORE_UNAVAILABLE',
    {
      set: (_s, n) => (n === 30 ? Promise.reject(storeError('STORE_CORRUPT_RECORD', 'boom')) : undefined),
    },
    /another code than STORE_UNAVAILABLE/,
  ],
  [
    'a get settles after the ceiling',
    {
      get: (_s, n) => (n === 30 ? delay(300).then(() => undefined) : undefined),
      settleCeilingMs: 250,
    },
    /calls took 250 ms or more/,
  ],
];

for (const [what, { settleCeilingMs, ...faults }, caught] of breaks) {
  test(`the load verifier catches it when ${what}`, async () => {
    await assert.rejects(verdict(brokenStore(faults), { settleCeilingMs }), caught);
  });
}

test('the load verifier catches a stale overwrite that lands after the load', async () => {
  const store = brokenStore();
  const load = startLoad(store, { workers: 2, idPrefix: 'verifier' });
  await untilAcknowledged(load, 40);
  await load.stop();
  assert.deepEqual(await readBack(load), []);
  const [id] = [...store.written].find(([, versions]) => versions.length > 1);
  await store.inner.set(id, store.stale(id));
  const problems = await readBack(load);
  assert.ok(
    problems.some((p) => p.startsWith(`get after the load: ${id}: read seq`)),
    problems.join('\n'),
  );
  assert.ok(
    problems.some((p) => p.startsWith('listByUser after the load')),
    problems.join('\n'),
  );
});

test('under noRejections the first rejection fails the wait at once, naming the call', async () => {
  const store = brokenStore({
    set: (_s, n) =>
      n > 10 ? Promise.reject(storeError('STORE_UNAVAILABLE', 'Redis refused the command: ASK 1 x:1')) : undefined,
  });
  const load = startLoad(store, { workers: 2, idPrefix: 'verifier', noRejections: true });
  const started = performance.now();
  await assert.rejects(
    untilAcknowledged(load, 1_000_000, 20_000),
    /set [0-9a-f-]+: STORE_UNAVAILABLE Redis refused the command: ASK 1 x:1/,
  );
  assert.ok(performance.now() - started < 5000, 'the wait ended with the rejection, not at its timeout');
});
