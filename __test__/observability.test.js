'use strict';
// What an operator and an APM agent see of both stores: the `redis-store:call` TracingChannel
// (exactly one start and one asyncEnd per call, batched or not, failed or not; a context with
// the operation and the id, never the conversation) and `stats()` (calls, errors by code,
// latency, reconnects, status and since when), against real TLS redis-servers.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const diagnosticsChannel = require('node:diagnostics_channel');

const { RedisConversationStore, InMemoryConversationStore, STORE_CALL_CHANNEL } = require('..');
const { startRedis, stopAll } = require('../support/redis');
const { silentLogger, waitForStatus } = require('../support/observe');
const { makeConversation } = require('../support/conversations');

const COMMAND_TIMEOUT_MS = 300;
const HEALTH_CHECK_INTERVAL_MS = 100;
const STATUS_CEILING_MS = 20_000; // a hang ceiling, not a speed claim
const POLL_MS = 20;
const EVENTS = ['start', 'end', 'asyncStart', 'asyncEnd', 'error'];
// Text that appears in every conversation these tests write, and nowhere else.
const SECRET_TEXT = 'confidential-chat-content-7f3a';

/** A conversation whose every message carries SECRET_TEXT. */
function conversation(overrides = {}) {
  return makeConversation({ messages: [{ text: SECRET_TEXT }, { text: `${SECRET_TEXT} again` }], ...overrides });
}

/**
 * Subscribes to every event of the channel; `events` lists `{ name, context }` in order.
 * `stop()` unsubscribes.
 */
function traceRecorder() {
  const channel = diagnosticsChannel.tracingChannel(STORE_CALL_CHANNEL);
  const events = [];
  const handlers = Object.fromEntries(EVENTS.map((name) => [name, (context) => events.push({ name, context })]));
  channel.subscribe(handlers);
  return {
    events,
    stop: () => channel.unsubscribe(handlers),
    /** Each context with the names of its events, in order. */
    byContext() {
      const contexts = new Map();
      for (const { name, context } of events) {
        if (!contexts.has(context)) contexts.set(context, []);
        contexts.get(context).push(name);
      }
      return contexts;
    },
  };
}

/** Every call traced once: start, end, then (error,) asyncStart, asyncEnd, on one context. */
function assertOneTracePerCall(recorder, calls) {
  const contexts = recorder.byContext();
  assert.equal(contexts.size, calls, 'one context per call');
  for (const [context, names] of contexts) {
    const expected = context.error === undefined ? ['start', 'end', 'asyncStart', 'asyncEnd'] : null;
    if (expected) assert.deepEqual(names, expected, JSON.stringify(context));
    else assert.deepEqual(names, ['start', 'end', 'error', 'asyncStart', 'asyncEnd'], JSON.stringify(context));
    assertNoContent(context);
  }
}

/** The context names the call and nothing of the conversation, not even as `result`. */
function assertNoContent(context) {
  assert.ok(!('result' in context), 'no result on the context');
  const allowed = new Set(['operation', 'id', 'userId', 'error']);
  for (const key of Object.keys(context)) assert.ok(allowed.has(key), `unexpected context field ${key}`);
  const { error, ...rest } = context;
  assert.ok(!JSON.stringify(rest).includes(SECRET_TEXT));
  if (error !== undefined) assert.ok(!String(error.message).includes(SECRET_TEXT));
}

/** Polls `stats()` until `predicate` holds; a hang ceiling, not a speed claim. */
async function statsUntil(store, predicate, what) {
  const until = Date.now() + STATUS_CEILING_MS;
  for (;;) {
    const stats = store.stats();
    if (predicate(stats)) return stats;
    if (Date.now() > until) throw new Error(`stats never showed ${what}: ${JSON.stringify(stats)}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function assertLatencyOrdered(stats) {
  for (const [operation, { latencyMs }] of Object.entries(stats.operations)) {
    const { p50, p99, max } = latencyMs;
    assert.ok(p50 >= 0 && p50 <= p99 && p99 <= max, `${operation}: ${JSON.stringify(latencyMs)}`);
  }
}

let recorder;
afterEach(() => recorder?.stop());
after(stopAll);

describe('in-memory store', () => {
  it('traces every call once, with the operation and id, never the content', async () => {
    const store = new InMemoryConversationStore();
    recorder = traceRecorder();
    const c = conversation({ userId: 'memory-user' });
    await store.set(c.externalId, c);
    assert.equal((await store.get(c.externalId))?.externalId, c.externalId);
    assert.equal((await store.listByUser('memory-user')).length, 1);
    await store.delete(c.externalId);
    await assert.rejects(store.get(''), { code: 'STORE_INVALID_ARGUMENT' });
    await assert.rejects(store.set(c.externalId, { ...c, status: 'nope' }), { code: 'STORE_INVALID_ARGUMENT' });
    assertOneTracePerCall(recorder, 6);
    const starts = recorder.events.filter((e) => e.name === 'start').map((e) => e.context);
    assert.deepEqual(
      starts.map(({ operation, id, userId }) => ({ operation, id, userId })),
      [
        { operation: 'set', id: c.externalId, userId: undefined },
        { operation: 'get', id: c.externalId, userId: undefined },
        { operation: 'listByUser', id: undefined, userId: 'memory-user' },
        { operation: 'delete', id: c.externalId, userId: undefined },
        { operation: 'get', id: '', userId: undefined },
        { operation: 'set', id: c.externalId, userId: undefined },
      ],
    );
    assert.equal(starts[4].error.code, 'STORE_INVALID_ARGUMENT');
  });

  it('counts calls and errors by code in stats()', async () => {
    const store = new InMemoryConversationStore();
    const before = store.stats();
    assert.equal(before.status, 'ready');
    assert.equal(before.reconnects, 0);
    assert.equal(before.lastError, undefined);
    const c = conversation();
    await store.set(c.externalId, c);
    await store.get(c.externalId);
    await store.get(c.externalId);
    await assert.rejects(store.get(''), { code: 'STORE_INVALID_ARGUMENT' });
    await assert.rejects(store.set('x', { ...c, history: 'nope' }), { code: 'STORE_INVALID_ARGUMENT' });
    await store.close();
    await assert.rejects(store.delete(c.externalId), { code: 'STORE_CLOSED' });
    const stats = store.stats();
    assert.equal(stats.status, 'end');
    assert.ok(stats.statusSince >= before.statusSince);
    assert.deepEqual(stats.operations.get.errors, { STORE_INVALID_ARGUMENT: 1 });
    assert.equal(stats.operations.get.calls, 3);
    assert.deepEqual(stats.operations.set.errors, { STORE_INVALID_ARGUMENT: 1 });
    assert.equal(stats.operations.set.calls, 2);
    assert.deepEqual(stats.operations.delete, {
      calls: 1,
      errors: { STORE_CLOSED: 1 },
      latencyMs: stats.operations.delete.latencyMs,
    });
    assert.equal(stats.operations.listByUser.calls, 0);
    assert.equal(stats.lastError.code, 'STORE_CLOSED');
    assert.ok(Math.abs(stats.lastError.at - Date.now()) < 60_000);
    assertLatencyOrdered(stats);
  });
});

describe('Redis store', () => {
  let server;
  before(async () => {
    server = await startRedis();
  });

  function openStore(options = {}) {
    return new RedisConversationStore(server.url, {
      tls: { ca: server.caPem },
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      connectTimeoutMs: 1000,
      healthCheckIntervalMs: HEALTH_CHECK_INTERVAL_MS,
      retry: { baseDelayMs: 20, maxDelayMs: 200 },
      logger: silentLogger,
      ...options,
    });
  }

  it('traces each of many concurrent batched gets and sets once', async () => {
    const store = openStore();
    await store.ready();
    recorder = traceRecorder();
    const conversations = Array.from({ length: 40 }, (_, i) => conversation({ userId: `batch-${i % 4}` }));
    await Promise.all(conversations.map((c) => store.set(c.externalId, c)));
    const read = await Promise.all(conversations.map((c) => store.get(c.externalId)));
    assert.deepEqual(
      read.map((c) => c?.externalId),
      conversations.map((c) => c.externalId),
    );
    await Promise.all(['batch-0', 'batch-1'].map((userId) => store.listByUser(userId)));
    assertOneTracePerCall(recorder, 82);
    const ids = (operation) =>
      [...recorder.byContext().keys()].filter((c) => c.operation === operation).map((c) => c.id ?? c.userId);
    const sorted = (list) => [...list].sort();
    assert.deepEqual(sorted(ids('set')), sorted(conversations.map((c) => c.externalId)));
    assert.deepEqual(sorted(ids('get')), sorted(conversations.map((c) => c.externalId)));
    assert.deepEqual(sorted(ids('listByUser')), ['batch-0', 'batch-1']);
    const stats = store.stats();
    assert.equal(stats.operations.set.calls, 40);
    assert.equal(stats.operations.get.calls, 40);
    assert.equal(stats.operations.listByUser.calls, 2);
    assert.deepEqual(stats.operations.get.errors, {});
    assert.ok(stats.operations.get.latencyMs.max > 0);
    assertLatencyOrdered(stats);
    await store.close();
  });

  it('counts errors by code, and lastError holds no credentials and escaped ids', async () => {
    const store = openStore();
    await store.ready();
    recorder = traceRecorder();
    const corrupt = { externalId: `evil\n[STORE] forged ${conversation().externalId}` };
    await server.cli('SET', `conv:${corrupt.externalId}`, 'not json');
    await assert.rejects(store.get(corrupt.externalId), { code: 'STORE_CORRUPT_RECORD' });
    const escaped = store.stats().lastError;
    assert.equal(escaped.code, 'STORE_CORRUPT_RECORD');
    assert.ok(escaped.message.includes('evil\\n[STORE] forged'), escaped.message);
    assert.ok(!escaped.message.includes('\n'), escaped.message);
    await assert.rejects(store.get(''), { code: 'STORE_INVALID_ARGUMENT' });
    await assert.rejects(store.get('a'.repeat(70_000)), { code: 'STORE_INVALID_ARGUMENT' });
    await assert.rejects(store.set('bad\nid', conversation()), { code: 'STORE_INVALID_ARGUMENT' });
    let stats = store.stats();
    assert.deepEqual(stats.operations.get.errors, { STORE_INVALID_ARGUMENT: 2, STORE_CORRUPT_RECORD: 1 });
    assert.equal(stats.operations.get.calls, 3);
    assert.deepEqual(stats.operations.set.errors, { STORE_INVALID_ARGUMENT: 1 });
    assert.equal(stats.lastError.code, 'STORE_INVALID_ARGUMENT');
    assert.ok(!stats.lastError.message.includes('\n'), stats.lastError.message);
    await store.close();
    await Promise.all([
      assert.rejects(store.get(corrupt.externalId), { code: 'STORE_CLOSED' }),
      assert.rejects(store.get(corrupt.externalId), { code: 'STORE_CLOSED' }),
    ]);
    stats = store.stats();
    assert.equal(stats.operations.get.errors.STORE_CLOSED, 2);
    assert.equal(stats.status, 'end');
    assertOneTracePerCall(recorder, 6);
  });

  it('reconnects rises after CLIENT KILL', async () => {
    const store = openStore();
    await store.ready();
    const before = store.stats();
    assert.equal(before.status, 'ready');
    assert.equal(before.reconnects, 0);
    await server.cli('CLIENT', 'KILL', 'TYPE', 'normal');
    const after = await statsUntil(store, (s) => s.reconnects >= 1 && s.status === 'ready', 'a reconnect');
    assert.ok(after.statusSince >= before.statusSince);
    assert.equal(after.lastError?.code, 'STORE_UNAVAILABLE');
    const c = conversation();
    await store.set(c.externalId, c);
    await store.close();
  });

  it('status and statusSince follow a pause and a resume; failures are traced and counted', async () => {
    const store = openStore();
    await store.ready();
    const ready = store.stats();
    assert.equal(ready.status, 'ready');
    recorder = traceRecorder();
    server.pause();
    try {
      const down = await statsUntil(store, (s) => s.status === 'reconnecting', "'reconnecting'");
      assert.ok(down.statusSince >= ready.statusSince);
      const ids = [conversation().externalId, conversation().externalId, conversation().externalId];
      const failures = await Promise.allSettled(ids.map((id) => store.get(id)));
      for (const failure of failures) assert.equal(failure.reason?.code, 'STORE_UNAVAILABLE');
      assertOneTracePerCall(recorder, 3);
      for (const context of recorder.byContext().keys()) assert.equal(context.error.code, 'STORE_UNAVAILABLE');
      const counted = store.stats();
      assert.equal(counted.operations.get.errors.STORE_UNAVAILABLE, 3);
      assert.equal(counted.lastError.code, 'STORE_UNAVAILABLE');
      assert.ok(!counted.lastError.message.includes(server.caPem));
    } finally {
      server.resume();
    }
    await waitForStatus(store, 'ready', STATUS_CEILING_MS);
    const back = store.stats();
    assert.equal(back.status, 'ready');
    assert.ok(back.statusSince >= ready.statusSince);
    assert.ok(back.reconnects >= 1);
    assertLatencyOrdered(back);
    await store.close();
  });
});

describe('credentials in stats()', () => {
  it('a password never reaches lastError', async () => {
    const password = 'pa55-word-never-logged';
    const server = await startRedis({ password });
    const store = new RedisConversationStore(server.url.replace(password, 'wrong-password'), {
      tls: { ca: server.caPem },
      connectTimeoutMs: 1000,
      retry: { baseDelayMs: 20, maxDelayMs: 200 },
      logger: silentLogger,
    });
    const stats = await statsUntil(store, (s) => s.lastError !== undefined, 'a connection failure');
    assert.equal(stats.lastError.code, 'STORE_UNAVAILABLE');
    assert.ok(!JSON.stringify(stats).includes('wrong-password'));
    assert.ok(!JSON.stringify(stats).includes(password));
    assert.equal(stats.credentialsExpireAt, undefined);
    await store.close();
  });
});
