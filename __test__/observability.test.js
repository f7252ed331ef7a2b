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
const { silentLogger, recordingLogger } = require('../support/observe');
const { makeConversation } = require('../support/conversations');

const COMMAND_TIMEOUT_MS = 300;
const HEALTH_CHECK_INTERVAL_MS = 100;
const STATUS_CEILING_MS = 20_000; // a hang ceiling, not a speed claim
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

/** Resolves once `Date.now()` has moved past `ms`: a later status change gets a later time. */
async function clockPast(ms) {
  while (Date.now() <= ms) await new Promise((resolve) => setImmediate(resolve));
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

  it('a method called without its store throws the same TypeError with or without a subscriber, and is not traced', () => {
    const store = new InMemoryConversationStore();
    const c = conversation();
    const detached = [
      ['get', () => store.get.call(undefined, c.externalId)],
      ['set', () => store.set.call(undefined, c.externalId, c)],
      ['delete', () => store.delete.call(undefined, c.externalId)],
      ['listByUser', () => store.listByUser.call({}, c.userId)],
    ];
    const untraced = detached.map(([name, call]) => {
      try {
        call();
      } catch (error) {
        return error;
      }
      return assert.fail(`${name} did not throw`);
    });
    recorder = traceRecorder();
    detached.forEach(([name, call], i) => {
      assert.throws(call, (error) => {
        assert.equal(error.constructor, TypeError, `${name}: ${error}`);
        assert.equal(error.code, undefined, name);
        assert.equal(error.message, untraced[i].message, name);
        return true;
      });
    });
    assert.equal(untraced[0].constructor, TypeError);
    assert.deepEqual(recorder.events, [], 'no trace of a call that never reached a store');
    assert.equal(store.stats().operations.get.calls, 0);
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
    // Bad arguments and calls after close() are the caller's doing: counted, not lastError.
    assert.equal(stats.lastError, undefined);
    assertLatencyOrdered(stats);
  });

  it('traces when TracingChannel has no hasSubscribers getter (Node 20 before 20.13)', async (t) => {
    const prototype = Object.getPrototypeOf(diagnosticsChannel.tracingChannel(STORE_CALL_CHANNEL));
    const own = Object.getOwnPropertyDescriptor(prototype, 'hasSubscribers');
    Object.defineProperty(prototype, 'hasSubscribers', { value: undefined, configurable: true, writable: true });
    t.after(() => {
      if (own) Object.defineProperty(prototype, 'hasSubscribers', own);
      else delete prototype.hasSubscribers;
    });
    const store = new InMemoryConversationStore();
    recorder = traceRecorder();
    const c = conversation();
    await store.set(c.externalId, c);
    await assert.rejects(store.get(''), { code: 'STORE_INVALID_ARGUMENT' });
    assertOneTracePerCall(recorder, 2);
  });

  it('refused calls are counted but are not latency', async () => {
    const store = new InMemoryConversationStore();
    // Big enough that one set takes microseconds on any machine (the histogram counts whole µs).
    const messages = Array.from({ length: 300 }, (_, i) => ({ text: `message ${i} ${'x'.repeat(100)}` }));
    const c = conversation({ messages });
    for (let i = 0; i < 50; i++) await store.set(c.externalId, c);
    const before = store.stats().operations.set;
    assert.ok(before.latencyMs.p50 > 0, JSON.stringify(before));
    for (let i = 0; i < 200; i++) await assert.rejects(store.set('', c), { code: 'STORE_INVALID_ARGUMENT' });
    await store.close();
    for (let i = 0; i < 100; i++) await assert.rejects(store.set(c.externalId, c), { code: 'STORE_CLOSED' });
    const after = store.stats().operations.set;
    assert.equal(after.calls, 350);
    assert.deepEqual(after.errors, { STORE_INVALID_ARGUMENT: 200, STORE_CLOSED: 100 });
    assert.deepEqual(after.latencyMs, before.latencyMs);
  });

  it("a getter's thrown message is echoed bounded, and is not lastError", async () => {
    const store = new InMemoryConversationStore();
    recorder = traceRecorder();
    const c = conversation();
    const long = `${'ü'.repeat(150)}${'😀'.repeat(100)}${'x'.repeat(10_000)}`;
    const throwing = {
      ...c,
      get metadata() {
        throw new Error(long);
      },
    };
    const error = await store.set(c.externalId, throwing).then(
      () => assert.fail('accepted'),
      (e) => e,
    );
    assert.equal(error.code, 'STORE_INVALID_ARGUMENT');
    assert.ok(error.message.length < 500, `${error.message.length} characters`);
    assert.ok(error.message.includes(`${'ü'.repeat(150)}${'😀'.repeat(50)}…`), error.message);
    assert.ok(error.message.isWellFormed());
    const [context] = recorder.byContext().keys();
    assert.equal(context.error, error);
    assert.equal(store.stats().lastError, undefined);
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

  it('traces each of many concurrent batched gets, sets and deletes once', async () => {
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
    const deleted = conversations.slice(0, 20);
    await Promise.all(deleted.map((c) => store.delete(c.externalId)));
    assertOneTracePerCall(recorder, 102);
    const ids = (operation) =>
      [...recorder.byContext().keys()].filter((c) => c.operation === operation).map((c) => c.id ?? c.userId);
    const sorted = (list) => [...list].sort();
    assert.deepEqual(sorted(ids('set')), sorted(conversations.map((c) => c.externalId)));
    assert.deepEqual(sorted(ids('get')), sorted(conversations.map((c) => c.externalId)));
    assert.deepEqual(sorted(ids('listByUser')), ['batch-0', 'batch-1']);
    assert.deepEqual(sorted(ids('delete')), sorted(deleted.map((c) => c.externalId)));
    const stats = store.stats();
    assert.equal(stats.operations.delete.calls, 20);
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
    // The caller's bad arguments do not replace the store's own last error.
    assert.deepEqual(stats.lastError, escaped);
    await store.close();
    await Promise.all([
      assert.rejects(store.get(corrupt.externalId), { code: 'STORE_CLOSED' }),
      assert.rejects(store.get(corrupt.externalId), { code: 'STORE_CLOSED' }),
    ]);
    stats = store.stats();
    assert.equal(stats.operations.get.errors.STORE_CLOSED, 2);
    assert.ok(stats.operations.get.errors.STORE_CLOSED <= stats.operations.get.calls);
    assert.deepEqual(stats.lastError, escaped);
    assert.equal(stats.status, 'end');
    assertOneTracePerCall(recorder, 6);
  });

  it('reconnects rises after CLIENT KILL, and statusSince moves with the status', async () => {
    const log = recordingLogger();
    const store = openStore({ logger: log.logger });
    await store.ready();
    const before = store.stats();
    assert.equal(before.status, 'ready');
    assert.equal(before.reconnects, 0);
    await clockPast(before.statusSince);
    const from = log.lines.length;
    const killedAt = Date.now();
    await server.cli('CLIENT', 'KILL', 'TYPE', 'normal');
    await log.waitFor('info', /reconnected to/, { from, timeoutMs: STATUS_CEILING_MS });
    // A call runs on the new connection only once the status is 'ready' again.
    const c = conversation();
    await store.set(c.externalId, c);
    const after = store.stats();
    const readAt = Date.now();
    assert.equal(after.status, 'ready');
    assert.ok(after.reconnects >= 1);
    assert.ok(after.statusSince > before.statusSince, `${after.statusSince} > ${before.statusSince}`);
    assert.ok(
      after.statusSince >= killedAt && after.statusSince <= readAt,
      JSON.stringify({ killedAt, after, readAt }),
    );
    assert.equal(after.lastError?.code, 'STORE_UNAVAILABLE');
    assert.ok(after.lastError.at >= killedAt && after.lastError.at <= readAt, JSON.stringify(after.lastError));
    await store.close();
  });

  it('status and statusSince follow a pause and a resume; failures are traced and counted', async () => {
    const log = recordingLogger();
    const store = openStore({ logger: log.logger });
    await store.ready();
    const ready = store.stats();
    assert.equal(ready.status, 'ready');
    recorder = traceRecorder();
    await clockPast(ready.statusSince);
    let from = log.lines.length;
    const pausedAt = Date.now();
    server.pause();
    let resumedAt;
    try {
      await log.waitFor('warn', /connection lost: /, { from, timeoutMs: STATUS_CEILING_MS });
      const down = store.stats();
      const seenAt = Date.now();
      assert.equal(down.status, 'reconnecting');
      assert.ok(down.statusSince > ready.statusSince, `${down.statusSince} > ${ready.statusSince}`);
      assert.ok(down.statusSince >= pausedAt && down.statusSince <= seenAt, JSON.stringify({ pausedAt, down, seenAt }));
      const outage = down.lastError;
      assert.equal(outage?.code, 'STORE_UNAVAILABLE');
      assert.ok(outage.at >= pausedAt && outage.at <= seenAt, JSON.stringify(outage));
      // A caller's mistake during the outage is counted, but does not hide the outage's cause.
      await assert.rejects(store.get(''), { code: 'STORE_INVALID_ARGUMENT' });
      await assert.rejects(store.set('x', { nope: true }), { code: 'STORE_INVALID_ARGUMENT' });
      const masked = store.stats();
      assert.equal(masked.operations.get.errors.STORE_INVALID_ARGUMENT, 1);
      assert.equal(masked.lastError?.code, 'STORE_UNAVAILABLE', JSON.stringify(masked.lastError));
      assert.ok(masked.lastError.at >= outage.at, JSON.stringify(masked.lastError));
      recorder.stop();
      recorder = traceRecorder();
      const ids = [conversation().externalId, conversation().externalId, conversation().externalId];
      const failures = await Promise.allSettled(ids.map((id) => store.get(id)));
      for (const failure of failures) assert.equal(failure.reason?.code, 'STORE_UNAVAILABLE');
      assertOneTracePerCall(recorder, 3);
      for (const context of recorder.byContext().keys()) assert.equal(context.error.code, 'STORE_UNAVAILABLE');
      const counted = store.stats();
      assert.equal(counted.operations.get.errors.STORE_UNAVAILABLE, 3);
      assert.equal(counted.lastError.code, 'STORE_UNAVAILABLE');
      assert.ok(!counted.lastError.message.includes(server.caPem));
      await clockPast(counted.statusSince);
    } finally {
      from = log.lines.length;
      resumedAt = Date.now();
      server.resume();
    }
    await log.waitFor('info', /reconnected to/, { from, timeoutMs: STATUS_CEILING_MS });
    const c = conversation();
    await store.set(c.externalId, c);
    const back = store.stats();
    const backAt = Date.now();
    assert.equal(back.status, 'ready');
    assert.ok(back.statusSince >= resumedAt && back.statusSince <= backAt, JSON.stringify({ resumedAt, back, backAt }));
    assert.ok(back.reconnects >= 1);
    assertLatencyOrdered(back);
    await store.close();
  });
});

describe('credentials in stats()', () => {
  it('a password never reaches lastError', async () => {
    const password = 'pa55-word-never-logged';
    const server = await startRedis({ password });
    const log = recordingLogger();
    const store = new RedisConversationStore(server.url.replace(password, 'wrong-password'), {
      tls: { ca: server.caPem },
      connectTimeoutMs: 1000,
      retry: { baseDelayMs: 20, maxDelayMs: 200 },
      logger: log.logger,
    });
    await log.waitFor('warn', /connection failed: /, { timeoutMs: STATUS_CEILING_MS });
    const stats = store.stats();
    assert.equal(stats.lastError.code, 'STORE_UNAVAILABLE');
    assert.ok(!JSON.stringify(stats).includes('wrong-password'));
    assert.ok(!JSON.stringify(stats).includes(password));
    assert.equal(stats.credentialsExpireAt, undefined);
    await store.close();
  });
});
