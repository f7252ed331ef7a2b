'use strict';
// The example Express server (examples/express-server) over real HTTP, once on each store:
// one suite, run on the in-memory store and on a TLS redis-server, proves both answer alike.
// On Redis it also proves the outage path: 503 + Retry-After within the deadline, /health
// 'disconnected', and recovery after the server comes back.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { randomUUID } = require('node:crypto');
const { once } = require('node:events');
const path = require('node:path');
const { setTimeout: delay } = require('node:timers/promises');

const { InMemoryConversationStore, RedisConversationStore } = require('..');
const { EXAMPLE_DIR, ensureExampleDeps, compileExample } = require('../examples/setup.js');
const { startRedis, stopAll, withLogOnFailure } = require('./helpers/redis');

const REQUEST_TIMEOUT_MS = 10_000;
const OUTAGE_RESPONSE_CEILING_MS = 5_000; // commandTimeoutMs is 500: generous slack
const HEALTH_POLL_MS = 100;
const HEALTH_POLL_TRIES = 50; // ~5 s

let createApp;
before(() => {
  ensureExampleDeps();
  compileExample([], { stdio: 'pipe' });
  ({ createApp } = require(path.join(EXAMPLE_DIR, 'dist', 'app.js')));
});
after(stopAll);

const quietLogger = { info() {}, warn() {}, error() {} };

function conversation({ userId = `user-${randomUUID()}`, updatedAt = '2026-02-22T10:05:00.000Z', ...rest } = {}) {
  return {
    externalId: randomUUID(),
    userId,
    tenantId: 'tenant-1',
    history: [
      { id: randomUUID(), role: 'user', type: 'text', text: 'Hello', timestamp: '2026-02-22T10:00:00.000Z' },
      {
        id: randomUUID(),
        role: 'agent',
        type: 'adaptiveCard',
        cardPayload: { type: 'AdaptiveCard', version: '1.5' },
        timestamp: '2026-02-22T10:00:01Z',
      },
    ],
    createdAt: '2026-02-22T10:00:00.000Z',
    updatedAt,
    status: 'active',
    ...rest,
  };
}

/** The app on a free port; `request(method, path, body?)` resolves `{ status, headers, body }`. */
async function serve(store, options) {
  const server = createApp(store, options).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${server.address().port}`;
  async function request(method, urlPath, body, { rawBody } = {}) {
    const init = { method, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS), headers: {} };
    if (body !== undefined || rawBody !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = rawBody ?? JSON.stringify(body);
    }
    const res = await fetch(base + urlPath, init);
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
  }
  async function close() {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  return { request, close };
}

/** Runs fn with console.error muted: the app logs its 500s there, the test checks the response. */
async function withAppErrorLogMuted(fn) {
  const original = console.error;
  console.error = () => {};
  try {
    return await fn();
  } finally {
    console.error = original;
  }
}

/** Polls /health until it reports `redis` as `want`; returns the last body seen. */
async function healthBecomes(request, want) {
  let last;
  for (let i = 0; i < HEALTH_POLL_TRIES; i++) {
    last = (await request('GET', '/health')).body;
    if (last.redis === want) return last;
    await delay(HEALTH_POLL_MS);
  }
  return last;
}

/**
 * The conversations API on one store.
 * open(): resolves `{ store, redis? }` for a new store; `redisConfigured` says which /health expects.
 */
function conversationApiSuite(name, { redisConfigured, open }) {
  describe(`example server on the ${name}`, () => {
    let ctx; // { store, redis?, request, close }

    before(async () => {
      const opened = await open();
      ctx = { ...opened, ...(await serve(opened.store, { redisConfigured })) };
    });
    after(async () => {
      await ctx?.close();
      await ctx?.store.close();
    });

    /** Runs a test body; on failure the redis-server log (if any) is appended. */
    const withLog = (fn) => () => (ctx.redis ? withLogOnFailure(ctx.redis, fn) : fn());

    it(`GET /health reports redis '${redisConfigured ? 'connected' : 'not-configured'}'`, withLog(async () => {
      const res = await ctx.request('GET', '/health');
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { status: 'ok', redis: redisConfigured ? 'connected' : 'not-configured' });
    }));

    it('creates, reads, replaces and deletes a conversation', withLog(async () => {
      const created = conversation({ metadata: { channel: 'web' }, futureField: { kept: true } });
      const post = await ctx.request('POST', '/api/conversations', { ...created, sdkConversationRef: { live: 1 } });
      assert.equal(post.status, 201);
      assert.equal(post.headers.get('location'), `/api/conversations/${created.externalId}`);
      assert.deepEqual(post.body, created);

      const get = await ctx.request('GET', `/api/conversations/${created.externalId}`);
      assert.equal(get.status, 200);
      assert.deepEqual(get.body, created, 'stored exactly as given, unknown fields kept, the live SDK ref dropped');

      const replaced = { ...created, status: 'completed', updatedAt: '2026-02-22T11:00:00.000Z' };
      assert.equal((await ctx.request('POST', '/api/conversations', replaced)).status, 201);
      assert.deepEqual((await ctx.request('GET', `/api/conversations/${created.externalId}`)).body, replaced);

      const del = await ctx.request('DELETE', `/api/conversations/${created.externalId}`);
      assert.equal(del.status, 204);
      assert.equal(del.body, undefined);
      assert.equal((await ctx.request('GET', `/api/conversations/${created.externalId}`)).status, 404);
      assert.deepEqual((await ctx.request('GET', `/api/conversations?userId=${created.userId}`)).body, []);
      assert.equal((await ctx.request('DELETE', `/api/conversations/${created.externalId}`)).status, 204, 'deleting a missing id');
    }));

    it('GET of an unknown id is 404', withLog(async () => {
      const res = await ctx.request('GET', `/api/conversations/${randomUUID()}`);
      assert.equal(res.status, 404);
      assert.equal(res.body.error, 'not_found');
    }));

    it("lists only the user's conversations, newest updatedAt first", withLog(async () => {
      const userId = `user-${randomUUID()}`;
      const older = conversation({ userId, updatedAt: '2026-02-22T10:00:00.000Z' });
      const newest = conversation({ userId, updatedAt: '2026-02-22T12:00:00Z' });
      const middle = conversation({ userId, updatedAt: '2026-02-22T11:00:00.000Z' });
      const someoneElse = conversation();
      for (const c of [older, newest, middle, someoneElse]) {
        assert.equal((await ctx.request('POST', '/api/conversations', c)).status, 201);
      }
      const list = await ctx.request('GET', `/api/conversations?userId=${encodeURIComponent(userId)}`);
      assert.equal(list.status, 200);
      assert.deepEqual(list.body, [newest, middle, older]);
      assert.deepEqual((await ctx.request('GET', `/api/conversations?userId=user-${randomUUID()}`)).body, []);
    }));

    it('answers 400 with the validation message on invalid input, and stores nothing', withLog(async () => {
      const userId = `user-${randomUUID()}`;
      const valid = conversation({ userId });
      const { userId: _dropped, ...withoutUserId } = valid;
      const cases = [
        { label: 'missing userId', body: withoutUserId, message: /userId/ },
        {
          label: 'bad message role',
          body: { ...valid, history: [{ ...valid.history[0], role: 'assistant' }] },
          message: /history\[0\]\.role/,
        },
        { label: 'bad status', body: { ...valid, status: 'archived' }, message: /status/ },
        { label: 'timestamp without a zone', body: { ...valid, updatedAt: '2026-02-22T10:00:00' }, message: /updatedAt/ },
      ];
      for (const { label, body, message } of cases) {
        const res = await ctx.request('POST', '/api/conversations', body);
        assert.equal(res.status, 400, label);
        assert.equal(res.body.error, 'STORE_INVALID_ARGUMENT', label);
        assert.match(res.body.message, message, label);
        assert.equal((await ctx.request('GET', `/api/conversations/${valid.externalId}`)).status, 404, `${label}: nothing stored`);
      }
      assert.deepEqual((await ctx.request('GET', `/api/conversations?userId=${userId}`)).body, []);

      const noExternalId = await ctx.request('POST', '/api/conversations', { ...valid, externalId: undefined });
      assert.equal(noExternalId.status, 400);
      assert.equal(noExternalId.body.error, 'STORE_INVALID_ARGUMENT');

      const notAnObject = await ctx.request('POST', '/api/conversations', [valid]);
      assert.equal(notAnObject.status, 400);
      assert.equal(notAnObject.body.error, 'invalid_request');

      const malformed = await ctx.request('POST', '/api/conversations', undefined, { rawBody: '{"externalId": ' });
      assert.equal(malformed.status, 400);
      assert.equal(malformed.body.error, 'invalid_request');

      const noUser = await ctx.request('GET', '/api/conversations');
      assert.equal(noUser.status, 400);
      assert.match(noUser.body.message, /userId/);
      const emptyUser = await ctx.request('GET', '/api/conversations?userId=');
      assert.equal(emptyUser.status, 400);
      assert.equal(emptyUser.body.error, 'STORE_INVALID_ARGUMENT');
    }));

    it('answers 503 with Retry-After once the store is closed', withLog(async () => {
      const { store } = await open();
      const app = await serve(store, { redisConfigured });
      try {
        await store.close();
        const res = await app.request('GET', `/api/conversations/${randomUUID()}`);
        assert.equal(res.status, 503);
        assert.equal(res.headers.get('retry-after'), '1');
        assert.equal(res.body.error, 'STORE_CLOSED');
        const health = await app.request('GET', '/health');
        assert.equal(health.body.redis, redisConfigured ? 'disconnected' : 'not-configured');
      } finally {
        await app.close();
      }
    }));

    if (redisConfigured) {
      it('answers 503 + Retry-After while Redis is paused, reports disconnected, and recovers on resume', withLog(async () => {
        const kept = conversation();
        assert.equal((await ctx.request('POST', '/api/conversations', kept)).status, 201);
        assert.equal((await ctx.request('GET', '/health')).body.redis, 'connected');

        ctx.redis.pause();
        try {
          const started = performance.now();
          const res = await ctx.request('GET', `/api/conversations/${kept.externalId}`);
          const elapsedMs = performance.now() - started;
          assert.equal(res.status, 503);
          assert.equal(res.headers.get('retry-after'), '1');
          assert.equal(res.body.error, 'STORE_UNAVAILABLE');
          assert.ok(elapsedMs < OUTAGE_RESPONSE_CEILING_MS, `503 after ${Math.round(elapsedMs)} ms`);

          const health = await healthBecomes(ctx.request, 'disconnected');
          assert.deepEqual(health, { status: 'ok', redis: 'disconnected' });
        } finally {
          ctx.redis.resume();
        }

        assert.deepEqual(await healthBecomes(ctx.request, 'connected'), { status: 'ok', redis: 'connected' });
        const res = await ctx.request('GET', `/api/conversations/${kept.externalId}`);
        assert.equal(res.status, 200);
        assert.deepEqual(res.body, kept);
      }));

      it('answers 500 without internals for a corrupt record', withLog(async () => {
        const id = randomUUID();
        await ctx.redis.cli('SET', `conv:${id}`, '{"not":"a conversation"}');
        const res = await withAppErrorLogMuted(() => ctx.request('GET', `/api/conversations/${id}`));
        assert.equal(res.status, 500);
        assert.deepEqual(res.body, { error: 'internal' });
      }));
    }
  });
}

conversationApiSuite('in-memory store', {
  redisConfigured: false,
  open: async () => ({ store: new InMemoryConversationStore({ logger: quietLogger }) }),
});

let redisServer;
conversationApiSuite('Redis store', {
  redisConfigured: true,
  open: async () => {
    redisServer ??= await startRedis();
    const store = new RedisConversationStore(redisServer.url, {
      tls: { ca: redisServer.caPem },
      commandTimeoutMs: 500,
      healthCheckIntervalMs: 200,
      logger: quietLogger,
    });
    await store.ready();
    return { store, redis: redisServer };
  },
});

describe('example server error handler', () => {
  it('answers 500 { error: "internal" } for an unexpected error, without its message', async () => {
    const failing = {
      status: 'ready',
      get: async () => {
        throw new Error('secret internals at /srv/app');
      },
      set: async () => {},
      delete: async () => {},
      listByUser: async () => [],
      close: async () => {},
    };
    const app = await serve(failing, { redisConfigured: true });
    try {
      const res = await withAppErrorLogMuted(() => app.request('GET', `/api/conversations/${randomUUID()}`));
      assert.equal(res.status, 500);
      assert.deepEqual(res.body, { error: 'internal' });
    } finally {
      await app.close();
    }
  });
});
