'use strict';
// Fault injection on real servers: whatever the network or Redis does, every call settles
// by its deadline with STORE_UNAVAILABLE, status tells the truth, the store recovers by
// itself, and no acknowledged write is lost.

const { test, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');

const { RedisConversationStore } = require('..');
const { startRedis, stopAll, withLogOnFailure } = require('../support/redis');
const { startProxy } = require('../support/proxy');
const { makeConversation } = require('../support/conversations');
const {
  recordingLogger,
  waitForStatus,
  timed,
  startLoad,
  stopAllLoads,
  untilAcknowledged,
  untilRejected,
  stopAndVerify,
} = require('../support/observe');

const COMMAND_TIMEOUT_MS = 500;
const HEALTH_CHECK_INTERVAL_MS = 200;
// Hang detection, not a speed claim: a call must settle by its deadline plus slack.
const SETTLE_CEILING_MS = COMMAND_TIMEOUT_MS + 1500;
// How late a dead connection may be found for a noisy machine, yet early enough that the
// wrong mechanism (the 1000 ms default heartbeat, twice the deadline) misses the bound.
const DETECTION_SLACK_MS = 450;

afterEach(stopAllLoads);
after(stopAll);

function openStore(server, { url = server.url, ...options } = {}) {
  const log = recordingLogger();
  const store = new RedisConversationStore(url, {
    tls: { ca: server.caPem },
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    connectTimeoutMs: 1000,
    healthCheckIntervalMs: HEALTH_CHECK_INTERVAL_MS,
    retry: { baseDelayMs: 20, maxDelayMs: 200 },
    logger: log.logger,
    ...options,
  });
  return { store, log };
}

/** A store that reaches its server through a proxy that can black-hole the connection. */
async function openThroughProxy(options = {}) {
  const server = await startRedis();
  const proxy = await startProxy({ targetPort: server.port });
  return { server, proxy, ...openStore(server, { url: `rediss://127.0.0.1:${proxy.port}`, ...options }) };
}

/** Stops the load: every call settled in time, every read was right, no acknowledged write was lost. */
function stopLoadAndCheck(load) {
  return stopAndVerify(load, { settleCeilingMs: SETTLE_CEILING_MS });
}

/**
 * The first `attempts` reconnect lines since `from` are attempts 1, 2, 3, … and each delay lies
 * in its window of the doubling backoff, [step / 2, step] with step = min(base * 2^(n-1), max);
 * the next connection came no sooner than the delay said.
 */
function assertBackoffDoubles(log, from, { baseDelayMs, maxDelayMs, attempts }) {
  const reconnects = [];
  for (let i = from; i < log.lines.length; i++) {
    const match = /^\[STORE\] reconnecting \(attempt (\d+)\) in (\d+) ms$/.exec(log.lines[i]);
    if (match) reconnects.push({ attempt: Number(match[1]), ms: Number(match[2]), at: log.times[i], index: i });
  }
  assert.deepEqual(
    reconnects.slice(0, attempts).map((r) => r.attempt),
    Array.from({ length: attempts }, (_, i) => i + 1),
    `the attempts must count up, not start over:\n${log.lines.slice(from).join('\n')}`,
  );
  for (const { attempt, ms, at, index } of reconnects.slice(0, attempts)) {
    const step = Math.min(baseDelayMs * 2 ** (attempt - 1), maxDelayMs);
    assert.ok(ms >= step / 2 && ms <= step, `attempt ${attempt}: ${ms} ms outside [${step / 2}, ${step}]`);
    const next = log.lines.findIndex((line, i) => i > index && /reconnected to|connection failed/.test(line));
    // Lines reach JavaScript late when its thread is busy, which can only shorten a gap: 15 ms of it.
    if (next >= 0)
      assert.ok(
        log.times[next] - at >= ms - 15,
        `attempt ${attempt} came ${Math.round(log.times[next] - at)} ms after a ${ms} ms delay`,
      );
  }
}

/** Bounded polling with redis-cli PING until the server's reply shows the fault took hold. */
async function untilServer(server, tookHold, { timeoutMs = 1000 } = {}) {
  for (let tries = 0; tries < 50; tries++) {
    if (tookHold(await server.tryCli(['PING'], { timeoutMs }))) return;
  }
  throw new Error('the fault never showed in a PING');
}

test('a paused server (SIGSTOP): calls reject in time, status goes reconnecting, then all recovers', async () => {
  const server = await startRedis();
  const { store } = openStore(server);
  await withLogOnFailure(server, async () => {
    await store.ready();
    const load = startLoad(store, { idPrefix: 'pause' });
    await untilAcknowledged(load, 20);
    server.pause();
    try {
      const during = await timed(() => store.get('pause-probe'));
      assert.equal(during.ok, false);
      assert.equal(during.error.code, 'STORE_UNAVAILABLE');
      assert.ok(during.ms < SETTLE_CEILING_MS, `get took ${during.ms} ms`);
      await waitForStatus(store, 'reconnecting');
      // The load's calls fail too while the server stays paused (resumed at once, those sent
      // after the probe could still be served within their deadline).
      await untilRejected(load);
    } finally {
      server.resume();
    }
    await waitForStatus(store, 'ready');
    await untilAcknowledged(load, 20);
    const results = await stopLoadAndCheck(load);
    assert.ok(
      results.some((r) => !r.ok),
      'no call failed while the server was paused',
    );
  });
  await store.close();
});

test('a killed server restarted on the same port: calls reject in time, the store reconnects by itself', async () => {
  // appendfsync always: an acknowledged write must survive the kill on the server side too.
  const server = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  const { store, log } = openStore(server);
  await withLogOnFailure(server, async () => {
    await store.ready();
    const load = startLoad(store, { idPrefix: 'kill' });
    await untilAcknowledged(load, 20);
    await server.kill();
    await waitForStatus(store, 'reconnecting');
    const probe = makeConversation();
    const down = await timed(() => store.set(probe.externalId, probe));
    assert.equal(down.error?.code, 'STORE_UNAVAILABLE');
    await log.waitFor(/reconnecting \(attempt 2\) in \d+ ms/);
    await server.restart();
    await log.waitFor(/reconnected to 127\.0\.0\.1/);
    await waitForStatus(store, 'ready');
    await untilAcknowledged(load, 20);
    await stopLoadAndCheck(load);
  });
  await store.close();
});

test('a call made while reconnecting waits for the connection within its own deadline', async () => {
  const server = await startRedis();
  const { store } = openStore(server, { commandTimeoutMs: 4000 });
  await withLogOnFailure(server, async () => {
    await store.ready();
    const first = makeConversation({ userId: 'waiter' });
    const second = makeConversation({ userId: 'waiter' });
    await store.set(first.externalId, first);
    await server.kill();
    await waitForStatus(store, 'reconnecting');
    const pending = timed(() => store.set(second.externalId, second));
    await server.restart();
    const outcome = await pending;
    assert.equal(outcome.ok, true, outcome.error?.message);
    assert.ok(outcome.ms < 4000 + 1500);
    assert.deepEqual(await store.get(second.externalId), second);
  });
  await store.close();
});

test('calls on one id made while reconnecting apply in the order made: a delete then a set keeps the set, a set then a delete removes it', async () => {
  const server = await startRedis();
  const { store } = openStore(server, { commandTimeoutMs: 4000 });
  await withLogOnFailure(server, async () => {
    await store.ready();
    const kept = Array.from({ length: 20 }, () => makeConversation({ userId: 'order-kept' }));
    const removed = Array.from({ length: 20 }, () => makeConversation({ userId: 'order-removed' }));
    await Promise.all(kept.map((conversation) => store.set(conversation.externalId, conversation)));
    await server.kill();
    await waitForStatus(store, 'reconnecting');
    // All these wait for the connection; they used to be woken in no set order.
    const fresh = kept.map((conversation) => ({ ...conversation, status: 'completed' }));
    const calls = [];
    for (const conversation of fresh) {
      calls.push(store.delete(conversation.externalId), store.set(conversation.externalId, conversation));
    }
    for (const conversation of removed) {
      calls.push(store.set(conversation.externalId, conversation), store.delete(conversation.externalId));
    }
    await server.restart();
    await Promise.all(calls);
    for (const conversation of fresh) {
      assert.deepEqual(await store.get(conversation.externalId), conversation, 'a set made after a delete was deleted');
    }
    for (const conversation of removed) {
      assert.equal(await store.get(conversation.externalId), undefined, 'a set made before a delete outlived it');
    }
  });
  await store.close();
});

test('reconnect attempts back off exponentially up to maxDelayMs and are each logged', async () => {
  const server = await startRedis();
  const { store, log } = openStore(server, { retry: { baseDelayMs: 40, maxDelayMs: 160 } });
  await withLogOnFailure(server, async () => {
    await store.ready();
    await server.kill();
    await log.waitFor(/reconnecting \(attempt 6\)/);
    const delays = log.lines
      .map((line) => /^\[STORE\] reconnecting \(attempt (\d+)\) in (\d+) ms$/.exec(line))
      .filter(Boolean)
      .map(([, attempt, ms]) => ({ attempt: Number(attempt), ms: Number(ms) }));
    assert.deepEqual(
      delays.slice(0, 6).map((d) => d.attempt),
      [1, 2, 3, 4, 5, 6],
    );
    for (const { attempt, ms } of delays) {
      const step = Math.min(40 * 2 ** (attempt - 1), 160);
      assert.ok(ms >= step / 2 && ms <= step, `attempt ${attempt}: ${ms} ms outside [${step / 2}, ${step}]`);
    }
    assert.ok(log.lines.every((line) => line.startsWith('[STORE] ')));
    await server.restart();
    await waitForStatus(store, 'ready');
  });
  await store.close();
});

test('READONLY (the old primary after a failover) rejects the write and forces a reconnect', async () => {
  const server = await startRedis();
  const { store, log } = openStore(server);
  await withLogOnFailure(server, async () => {
    await store.ready();
    const before = makeConversation({ userId: 'ro' });
    const refused = makeConversation({ userId: 'ro' });
    await store.set(before.externalId, before);
    // A replica of a master that does not exist: it answers reads and refuses writes.
    await server.cli('REPLICAOF', '127.0.0.1', '1');
    const from = log.lines.length;
    const write = await timed(() => store.set(refused.externalId, refused));
    assert.equal(write.error?.code, 'STORE_UNAVAILABLE');
    assert.match(write.error.message, /READONLY/);
    await log.waitFor(/connection lost: .*READONLY/, { from });
    await log.waitFor(/reconnected to/, { from });
    // Each new connection dies at its first write: the backoff must keep growing, not spin.
    for (let i = 0; i < 3; i++) {
      const another = makeConversation({ userId: 'ro' });
      const again = await timed(() => store.set(another.externalId, another));
      assert.equal(again.error?.code, 'STORE_UNAVAILABLE');
    }
    await log.waitFor(/reconnecting \(attempt 4\)/, { from });
    assertBackoffDoubles(log, from, { baseDelayMs: 20, maxDelayMs: 200, attempts: 4 });
    await server.cli('REPLICAOF', 'NO', 'ONE');
    await waitForStatus(store, 'ready');
    await store.set(refused.externalId, refused);
    assert.deepEqual(await store.get(before.externalId), before);
    assert.deepEqual(await store.get(refused.externalId), refused);
  });
  await store.close();
});

test('BUSY (a long script) and DEBUG SLEEP: calls reject in time and the store recovers', async () => {
  const server = await startRedis({ args: ['--enable-debug-command', 'yes', '--busy-reply-threshold', '100'] });
  const { store } = openStore(server);
  await withLogOnFailure(server, async () => {
    await store.ready();
    const stored = makeConversation({ userId: 'busy' });
    await store.set(stored.externalId, stored);

    const script = server.tryCli(['EVAL', 'while true do end', '0'], { timeoutMs: 20_000 });
    await untilServer(server, (reply) => /BUSY/.test(reply.stdout + reply.stderr));
    const busy = await timed(() => store.get(stored.externalId));
    assert.equal(busy.error?.code, 'STORE_UNAVAILABLE');
    assert.ok(busy.ms < SETTLE_CEILING_MS);
    await server.cli('SCRIPT', 'KILL');
    await script;
    await waitForStatus(store, 'ready');
    assert.ok(await store.get(stored.externalId));

    const sleeping = server.tryCli(['DEBUG', 'SLEEP', '3'], { timeoutMs: 20_000 });
    await untilServer(server, (reply) => reply.timedOut, { timeoutMs: 200 });
    const asleep = await timed(() => store.get(stored.externalId));
    assert.equal(asleep.error?.code, 'STORE_UNAVAILABLE');
    assert.ok(asleep.ms < SETTLE_CEILING_MS, `get took ${asleep.ms} ms`);
    await sleeping;
    await waitForStatus(store, 'ready');
    assert.ok(await store.get(stored.externalId));
  });
  await store.close();
});

test("a half-open connection under load (bytes black-holed, no RST) is found by a call's deadline, within one or two commandTimeoutMs", async (t) => {
  // A heartbeat far off: only the calls' deadlines can find the dead connection.
  const { server, proxy, store, log } = await openThroughProxy({ healthCheckIntervalMs: 60_000 });
  await withLogOnFailure(server, async () => {
    await store.ready();
    const load = startLoad(store, { idPrefix: 'hole' });
    await untilAcknowledged(load, 20);
    const from = log.lines.length;
    proxy.blackhole();
    const lost = performance.now();
    const { at } = await log.waitForEntry(/connection lost: /, { from, timeoutMs: 5000 });
    assert.match(log.lines[from], new RegExp(`connection lost: no reply from Redis within ${COMMAND_TIMEOUT_MS} ms`));
    const detectedMs = at - lost;
    t.diagnostic(`detected after ${Math.round(detectedMs)} ms`);
    // The swallowed call was sent at most moments before the black hole, and had its whole
    // deadline. A call's timeout condemns the connection only if nothing replied since it was
    // sent: when the last replies that crossed (to calls sent earlier) came after every call
    // then in flight was sent, those calls fail without condemning it, and the next call's
    // deadline does. So one deadline, or two under load.
    assert.ok(
      detectedMs > COMMAND_TIMEOUT_MS - 150 && detectedMs < 2 * COMMAND_TIMEOUT_MS + DETECTION_SLACK_MS,
      `detected after ${Math.round(detectedMs)} ms, expected ${COMMAND_TIMEOUT_MS} to ${2 * COMMAND_TIMEOUT_MS}`,
    );
    await waitForStatus(store, 'reconnecting');
    proxy.restore();
    await waitForStatus(store, 'ready');
    await untilAcknowledged(load, 20);
    await stopLoadAndCheck(load);
  });
  await store.close();
  await proxy.close();
});

test('an idle half-open connection is found by the heartbeat within healthCheckIntervalMs + commandTimeoutMs', async (t) => {
  // Far below the 1000 ms default, so a store that ignored the option would miss the bound.
  const healthCheckIntervalMs = 150;
  const { server, proxy, store, log } = await openThroughProxy({ healthCheckIntervalMs });
  await withLogOnFailure(server, async () => {
    await store.ready();
    const from = log.lines.length;
    // Idle, only heartbeats cross the proxy: go dark right after one reply has passed, so
    // the next heartbeat is due one interval from now and gets no reply.
    const lost = await new Promise((resolve, reject) => {
      // Also what keeps the event loop alive meanwhile: the store's sockets do not.
      const timer = setTimeout(() => reject(new Error('no heartbeat crossed the proxy within 5000 ms')), 5000);
      proxy.events.once('reply', () => {
        proxy.blackhole();
        clearTimeout(timer);
        resolve(performance.now());
      });
    });
    const { at } = await log.waitForEntry(/connection lost: /, { from, timeoutMs: 5000 });
    assert.match(
      log.lines[from],
      new RegExp(`connection lost: health check got no reply within ${COMMAND_TIMEOUT_MS} ms`),
    );
    const detectedMs = at - lost;
    t.diagnostic(`detected after ${Math.round(detectedMs)} ms`);
    const expectedMs = healthCheckIntervalMs + COMMAND_TIMEOUT_MS;
    assert.ok(
      detectedMs > expectedMs - 10 && detectedMs < expectedMs + DETECTION_SLACK_MS,
      `detected after ${Math.round(detectedMs)} ms, expected about ${expectedMs}`,
    );
    // The line is logged once the store has stopped using the dead connection.
    assert.equal(store.status, 'reconnecting');
    proxy.restore();
    await waitForStatus(store, 'ready');
    const idle = makeConversation();
    await store.set(idle.externalId, idle);
    assert.deepEqual(await store.get(idle.externalId), idle);
  });
  await store.close();
  await proxy.close();
});

test('credentials never reach a log line or an error message', async () => {
  const password = 'pw-that-must-not-leak-7e1f';
  const server = await startRedis({ password });
  const wrong = 'wrong-secret-that-must-not-leak-93ab';
  const bad = openStore(server, { url: `rediss://:${wrong}@127.0.0.1:${server.port}`, connectTimeoutMs: 500 });
  const refused = await timed(() => bad.store.ready());
  assert.equal(refused.error?.code, 'STORE_UNAVAILABLE');
  await bad.log.waitFor(/connection failed/);
  await bad.store.close();

  const good = openStore(server);
  await good.store.ready();
  await server.kill();
  const down = await timed(() => good.store.get('x'));
  await server.restart();
  await waitForStatus(good.store, 'ready');
  await good.store.close();

  const text = [...bad.log.lines, ...good.log.lines, refused.error.message, down.error?.message ?? ''].join('\n');
  assert.ok(bad.log.lines.length > 0 && good.log.lines.length > 0);
  for (const secret of [password, wrong]) {
    assert.ok(!text.includes(secret), `a secret reached the logs or errors:\n${text}`);
  }
});
