'use strict';
// The example Express server (examples/express-server) over real HTTP, once on each store:
// one suite, run on the in-memory store and on a TLS redis-server, proves both answer alike.
// Every route but /health needs a bearer token (HS256 JWT, signed here with jose), and a caller
// sees, lists, writes and deletes only their own conversations. On Redis it also proves the outage
// path: 503 + Retry-After within the deadline with no host, port or store message in the body,
// /health 'disconnected', recovery after the server comes back, and a corrupt record's 500.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { randomBytes, randomUUID } = require('node:crypto');
const { EventEmitter, once } = require('node:events');
const path = require('node:path');
const readline = require('node:readline');
const { setTimeout: delay } = require('node:timers/promises');

const { InMemoryConversationStore, RedisConversationStore } = require('..');
const { ROOT, EXAMPLE_DIR, ensureExampleDeps, compileExample } = require('../examples/setup.js');
const { startRedis, stopAll, withLogOnFailure } = require('../support/redis');

const REQUEST_TIMEOUT_MS = 10_000;
const OUTAGE_RESPONSE_CEILING_MS = 5_000; // commandTimeoutMs is 500: generous slack
const HEALTH_POLL_MS = 100;
const HEALTH_POLL_TRIES = 50; // ~5 s
const DEMO_START_CEILING_MS = 120_000; // the demo compiles the example first
const START_REFUSAL_CEILING_MS = 30_000;
const SECRET = randomBytes(32); // the HS256 key every app in this file verifies with

let createApp;
let jose; // the example's own dependency: tests sign tokens the way an identity provider would
before(() => {
  ensureExampleDeps();
  compileExample([], { stdio: 'pipe' });
  ({ createApp } = require(path.join(EXAMPLE_DIR, 'dist', 'app.js')));
  jose = require(require.resolve('jose', { paths: [EXAMPLE_DIR] }));
});
after(stopAll);

const { silentLogger: quietLogger } = require('../support/observe');

/** The app's logger: keeps every line, so a test can check what went to the log and not to the client. */
function captureLogger() {
  const lines = [];
  return {
    lines,
    warn: (message) => lines.push(`warn ${message}`),
    error: (message) => lines.push(`error ${message}`),
  };
}

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

/** What a store read gives back for a conversation that was sent: the live SDK ref is never stored. */
function stored({ sdkConversationRef: _live, ...rest }) {
  return rest;
}

/**
 * An HS256 token for `sub`, signed with SECRET unless told otherwise. `exp` is epoch seconds;
 * `sub: undefined` or `exp: null` leave the claim out.
 */
async function token(
  sub,
  { secret = SECRET, alg = 'HS256', exp = Math.floor(Date.now() / 1000) + 600, issuer, audience } = {},
) {
  const jwt = new jose.SignJWT({}).setProtectedHeader({ alg, typ: 'JWT' }).setIssuedAt();
  if (sub !== undefined) jwt.setSubject(sub);
  if (exp !== null) jwt.setExpirationTime(exp);
  if (issuer !== undefined) jwt.setIssuer(issuer);
  if (audience !== undefined) jwt.setAudience(audience);
  return jwt.sign(secret);
}

const base64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** An unsecured JWT (`alg: none`, empty signature), as an attacker would send one. */
function unsignedToken(sub) {
  return `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ sub, exp: Math.floor(Date.now() / 1000) + 600 })}.`;
}

/**
 * The app on a free port. `request(method, path, body?, { token?, authorization?, rawBody? })`
 * resolves `{ status, headers, text, body }`; `client(userId)` resolves `{ userId, request }` whose
 * requests carry a valid token for that user.
 */
async function serve(store, { redisConfigured, auth = { secret: SECRET }, logger = captureLogger() }) {
  const server = createApp(store, { redisConfigured, auth, logger }).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${server.address().port}`;
  async function request(method, urlPath, body, { token: bearer, authorization, rawBody } = {}) {
    const init = { method, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS), headers: {} };
    if (bearer !== undefined) init.headers.authorization = `Bearer ${bearer}`;
    if (authorization !== undefined) init.headers.authorization = authorization;
    if (body !== undefined || rawBody !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = rawBody ?? JSON.stringify(body);
    }
    const res = await fetch(base + urlPath, init);
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, body: text ? JSON.parse(text) : undefined };
  }
  async function client(userId = `user-${randomUUID()}`) {
    const bearer = await token(userId);
    return {
      userId,
      request: (method, urlPath, body, options) => request(method, urlPath, body, { ...options, token: bearer }),
    };
  }
  async function close() {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  return { request, client, close, logger };
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

/** A 503 for clients: the stable code and a fixed message, nothing of where or why the store failed. */
function assertOpaque503(res, { code = 'STORE_UNAVAILABLE', redisPort, label } = {}) {
  assert.equal(res.status, 503, label);
  assert.equal(res.headers.get('retry-after'), '1', label);
  assert.deepEqual(Object.keys(res.body).sort(), ['error', 'message'], label);
  assert.equal(res.body.error, code, label);
  for (const secret of ['127.0.0.1', 'localhost', 'Redis at', 'os error', ...(redisPort ? [String(redisPort)] : [])]) {
    assert.ok(!res.text.includes(secret), `${label ?? ''}: the 503 body names '${secret}': ${res.text}`);
  }
}

/**
 * The conversations API on one store.
 * open(): resolves `{ store, redis? }` for a new store; `redisConfigured` says which /health expects.
 */
function conversationApiSuite(name, { redisConfigured, open }) {
  describe(`example server on the ${name}`, () => {
    let ctx; // { store, redis?, request, client, close, logger }

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

    it(
      `GET /health needs no token and reports redis '${redisConfigured ? 'connected' : 'not-configured'}'`,
      withLog(async () => {
        const res = await ctx.request('GET', '/health');
        assert.equal(res.status, 200);
        assert.deepEqual(res.body, { status: 'ok', redis: redisConfigured ? 'connected' : 'not-configured' });
      }),
    );

    it(
      'answers 401 with a Bearer challenge and a JSON body to a missing, bad or expired token, and writes nothing',
      withLog(async () => {
        const userId = `user-${randomUUID()}`;
        const now = Math.floor(Date.now() / 1000);
        const valid = await token(userId);
        const [header, , signature] = valid.split('.');
        const cases = [
          { label: 'no Authorization header', authorization: undefined, error: 'unauthorized' },
          { label: 'Basic credentials', authorization: 'Basic dXNlcjpwYXNz', error: 'unauthorized' },
          { label: 'Bearer without a token', authorization: 'Bearer', error: 'unauthorized' },
          { label: 'not a JWT', authorization: 'Bearer not-a-jwt', error: 'invalid_token' },
          {
            label: 'signed with another secret',
            token: await token(userId, { secret: randomBytes(32) }),
            error: 'invalid_token',
          },
          {
            label: "another user's claims under this signature",
            token: `${header}.${base64url({ sub: `user-${randomUUID()}`, exp: now + 600 })}.${signature}`,
            error: 'invalid_token',
          },
          { label: 'alg none', token: unsignedToken(userId), error: 'invalid_token' },
          {
            label: 'HS512 with the right secret',
            token: await token(userId, { alg: 'HS512' }),
            error: 'invalid_token',
          },
          { label: 'no sub', token: await token(undefined), error: 'invalid_token' },
          { label: 'empty sub', token: await token(''), error: 'invalid_token' },
          { label: 'no exp', token: await token(userId, { exp: null }), error: 'invalid_token' },
          {
            label: 'expired',
            token: await token(userId, { exp: now - 120 }),
            error: 'invalid_token',
            message: /expired/,
          },
        ];
        const created = conversation({ userId });
        const routes = [
          ['GET', '/api/conversations'],
          ['GET', `/api/conversations/${created.externalId}`],
          ['POST', '/api/conversations', created],
          ['DELETE', `/api/conversations/${created.externalId}`],
          ['GET', '/no/such/route'],
        ];
        for (const { label, authorization, token: bearer, error, message } of cases) {
          for (const [method, urlPath, body] of routes) {
            const what = `${label}: ${method} ${urlPath}`;
            const res = await ctx.request(method, urlPath, body, { authorization, token: bearer });
            assert.equal(res.status, 401, what);
            const challenge = res.headers.get('www-authenticate') ?? '';
            assert.match(challenge, /^Bearer realm="[^"]+"/, what);
            if (error === 'invalid_token') assert.match(challenge, /error="invalid_token"/, what);
            assert.match(res.headers.get('content-type') ?? '', /^application\/json/, what);
            assert.equal(res.body.error, error, what);
            assert.equal(typeof res.body.message, 'string', what);
            if (message) assert.match(res.body.message, message, what);
          }
        }
        assert.equal(await ctx.store.get(created.externalId), undefined, 'no refused POST was written');
        assert.deepEqual(await ctx.store.listByUser(userId), []);
        // The same requests with the valid token go through: the refusals above were the token's.
        assert.equal((await ctx.request('POST', '/api/conversations', created, { token: valid })).status, 201);
        assert.deepEqual(stored(await ctx.store.get(created.externalId)), created);
      }),
    );

    it(
      'creates, reads, replaces and deletes a conversation, read back through GET and the store',
      withLog(async () => {
        const owner = await ctx.client();
        const created = conversation({
          userId: owner.userId,
          metadata: { channel: 'web' },
          futureField: { kept: true },
        });
        const post = await owner.request('POST', '/api/conversations', { ...created, sdkConversationRef: { live: 1 } });
        assert.equal(post.status, 201);
        assert.equal(post.headers.get('location'), `/api/conversations/${created.externalId}`);

        const get = await owner.request('GET', `/api/conversations/${created.externalId}`);
        assert.equal(get.status, 200);
        assert.deepEqual(get.body, created, 'stored exactly as sent, unknown fields kept, the live SDK ref dropped');
        assert.deepEqual(await ctx.store.get(created.externalId), created, 'the store holds what was sent');

        const replaced = {
          ...created,
          status: 'completed',
          updatedAt: '2026-02-22T11:00:00.000Z',
          metadata: { channel: 'teams' },
        };
        assert.equal((await owner.request('POST', '/api/conversations', replaced)).status, 201);
        assert.deepEqual((await owner.request('GET', `/api/conversations/${created.externalId}`)).body, replaced);
        assert.deepEqual(await ctx.store.get(created.externalId), replaced);
        assert.deepEqual((await owner.request('GET', '/api/conversations')).body, [replaced]);

        const del = await owner.request('DELETE', `/api/conversations/${created.externalId}`);
        assert.equal(del.status, 204);
        assert.equal(del.body, undefined);
        assert.equal(await ctx.store.get(created.externalId), undefined);
        assert.equal((await owner.request('GET', `/api/conversations/${created.externalId}`)).status, 404);
        assert.deepEqual((await owner.request('GET', '/api/conversations')).body, []);
        const again = await owner.request('DELETE', `/api/conversations/${created.externalId}`);
        assert.equal(again.status, 404, 'deleting a missing id');
        assert.equal(again.body.error, 'not_found');
      }),
    );

    it(
      'GET of an unknown id is 404',
      withLog(async () => {
        const res = await (await ctx.client()).request('GET', `/api/conversations/${randomUUID()}`);
        assert.equal(res.status, 404);
        assert.equal(res.body.error, 'not_found');
      }),
    );

    it(
      "lists the caller's own conversations, newest updatedAt first",
      withLog(async () => {
        const caller = await ctx.client();
        const older = conversation({ userId: caller.userId, updatedAt: '2026-02-22T10:00:00.000Z' });
        const newest = conversation({ userId: caller.userId, updatedAt: '2026-02-22T12:00:00Z' });
        const middle = conversation({ userId: caller.userId, updatedAt: '2026-02-22T11:00:00.000Z' });
        const other = await ctx.client();
        const someoneElse = conversation({ userId: other.userId });
        for (const c of [older, newest, middle]) {
          assert.equal((await caller.request('POST', '/api/conversations', c)).status, 201);
        }
        assert.equal((await other.request('POST', '/api/conversations', someoneElse)).status, 201);
        const list = await caller.request('GET', '/api/conversations');
        assert.equal(list.status, 200);
        assert.deepEqual(list.body, [newest, middle, older]);
        const named = await caller.request('GET', `/api/conversations?userId=${encodeURIComponent(caller.userId)}`);
        assert.deepEqual(named.body, [newest, middle, older], 'a userId in the query that is the caller is allowed');
        assert.deepEqual((await (await ctx.client()).request('GET', '/api/conversations')).body, []);
      }),
    );

    it(
      "keeps user B's conversation from user A: no read, list, overwrite or delete, and B's record is unchanged",
      withLog(async () => {
        const a = await ctx.client();
        const b = await ctx.client();
        const mine = conversation({ userId: b.userId, metadata: { note: `only for ${b.userId}` } });
        assert.equal((await b.request('POST', '/api/conversations', mine)).status, 201);
        const id = mine.externalId;
        const missingId = randomUUID();
        const leaks = (res) => res.text.includes(b.userId) || res.text.includes('only for');

        // Read: exactly the answer for an id that does not exist.
        const read = await a.request('GET', `/api/conversations/${id}`);
        const readMissing = await a.request('GET', `/api/conversations/${missingId}`);
        assert.equal(read.status, 404);
        assert.equal(read.status, readMissing.status);
        assert.deepEqual(read.body, JSON.parse(readMissing.text.replace(missingId, id)));
        assert.ok(!leaks(read), read.text);

        // List: A's list is A's; naming B in the query is refused.
        const list = await a.request('GET', '/api/conversations');
        assert.deepEqual(list.body, []);
        const named = await a.request('GET', `/api/conversations?userId=${encodeURIComponent(b.userId)}`);
        assert.equal(named.status, 403);
        assert.equal(named.body.error, 'forbidden');
        assert.ok(!named.text.includes('only for'), named.text);

        // Overwrite: with A as the owner, and with the body still naming B.
        const takeover = {
          ...mine,
          userId: a.userId,
          status: 'abandoned',
          updatedAt: '2026-02-22T12:00:00.000Z',
          metadata: { note: 'A was here' },
        };
        const overwrite = await a.request('POST', '/api/conversations', takeover);
        assert.equal(overwrite.status, 403);
        assert.equal(overwrite.body.error, 'forbidden');
        assert.ok(!leaks(overwrite), overwrite.text);
        const asB = await a.request('POST', '/api/conversations', { ...mine, status: 'abandoned' });
        assert.equal(asB.status, 403);
        assert.equal(asB.body.error, 'forbidden');

        // Delete: exactly the answer for an id that does not exist.
        const del = await a.request('DELETE', `/api/conversations/${id}`);
        const delMissing = await a.request('DELETE', `/api/conversations/${missingId}`);
        assert.equal(del.status, 404);
        assert.equal(del.status, delMissing.status);
        assert.deepEqual(del.body, JSON.parse(delMissing.text.replace(missingId, id)));

        // B's record, read back through the store and by B: as B wrote it.
        assert.deepEqual(await ctx.store.get(id), mine);
        assert.deepEqual(await ctx.store.listByUser(b.userId), [mine]);
        assert.deepEqual(await ctx.store.listByUser(a.userId), []);
        assert.deepEqual((await b.request('GET', `/api/conversations/${id}`)).body, mine);
        assert.deepEqual((await b.request('GET', '/api/conversations')).body, [mine]);
      }),
    );

    it(
      "refuses with 403 a body whose userId is not the caller's, and writes nothing",
      withLog(async () => {
        const a = await ctx.client();
        const b = `user-${randomUUID()}`;
        const forged = conversation({ userId: b });
        const res = await a.request('POST', '/api/conversations', forged);
        assert.equal(res.status, 403);
        assert.equal(res.body.error, 'forbidden');
        assert.match(res.body.message, /userId/);
        assert.equal(await ctx.store.get(forged.externalId), undefined);
        assert.deepEqual(await ctx.store.listByUser(b), []);
        assert.deepEqual(await ctx.store.listByUser(a.userId), []);
      }),
    );

    it(
      'answers 400 with the validation message on invalid input, and stores nothing',
      withLog(async () => {
        const caller = await ctx.client();
        const valid = conversation({ userId: caller.userId });
        const { userId: _dropped, ...withoutUserId } = valid;
        const cases = [
          { label: 'missing userId', body: withoutUserId, message: /userId/ },
          {
            label: 'bad message role',
            body: { ...valid, history: [{ ...valid.history[0], role: 'assistant' }] },
            message: /history\[0\]\.role/,
          },
          { label: 'bad status', body: { ...valid, status: 'archived' }, message: /status/ },
          {
            label: 'timestamp without a zone',
            body: { ...valid, updatedAt: '2026-02-22T10:00:00' },
            message: /updatedAt/,
          },
        ];
        for (const { label, body, message } of cases) {
          const res = await caller.request('POST', '/api/conversations', body);
          assert.equal(res.status, 400, label);
          assert.equal(res.body.error, 'STORE_INVALID_ARGUMENT', label);
          assert.match(res.body.message, message, label);
          assert.equal(await ctx.store.get(valid.externalId), undefined, `${label}: nothing stored`);
        }
        assert.deepEqual(await ctx.store.listByUser(caller.userId), []);

        const noExternalId = await caller.request('POST', '/api/conversations', { ...valid, externalId: undefined });
        assert.equal(noExternalId.status, 400);
        assert.equal(noExternalId.body.error, 'STORE_INVALID_ARGUMENT');

        const notAnObject = await caller.request('POST', '/api/conversations', [valid]);
        assert.equal(notAnObject.status, 400);
        assert.equal(notAnObject.body.error, 'invalid_request');

        const malformed = await caller.request('POST', '/api/conversations', undefined, { rawBody: '{"externalId": ' });
        assert.equal(malformed.status, 400);
        assert.equal(malformed.body.error, 'invalid_request');

        // A path parameter that is not UTF-8 once decoded (a lone surrogate's bytes): Express
        // refuses it with a 400 URIError, the client's mistake, not the server's.
        for (const method of ['GET', 'DELETE']) {
          const undecodable = await caller.request(method, '/api/conversations/%ED%A0%80');
          assert.equal(undecodable.status, 400, method);
          assert.equal(undecodable.body.error, 'invalid_request', method);
        }
      }),
    );

    it(
      'answers 503 with Retry-After and a fixed message once the store is closed',
      withLog(async () => {
        const { store } = await open();
        const app = await serve(store, { redisConfigured });
        try {
          await store.close();
          const caller = await app.client();
          const res = await caller.request('GET', `/api/conversations/${randomUUID()}`);
          assertOpaque503(res, { code: 'STORE_CLOSED' });
          assert.ok(
            app.logger.lines.some((line) => line.includes('STORE_CLOSED')),
            'the detail is logged',
          );
          const health = await app.request('GET', '/health');
          assert.equal(health.body.redis, redisConfigured ? 'disconnected' : 'not-configured');
        } finally {
          await app.close();
        }
      }),
    );

    if (redisConfigured) {
      it(
        'answers 503 + Retry-After while Redis is paused, reports disconnected, and recovers on resume',
        withLog(async () => {
          const caller = await ctx.client();
          const kept = conversation({ userId: caller.userId });
          assert.equal((await caller.request('POST', '/api/conversations', kept)).status, 201);
          assert.equal((await ctx.request('GET', '/health')).body.redis, 'connected');

          ctx.redis.pause();
          try {
            const started = performance.now();
            const res = await caller.request('GET', `/api/conversations/${kept.externalId}`);
            const elapsedMs = performance.now() - started;
            assertOpaque503(res, { redisPort: ctx.redis.port });
            assert.ok(elapsedMs < OUTAGE_RESPONSE_CEILING_MS, `503 after ${Math.round(elapsedMs)} ms`);

            const health = await healthBecomes(ctx.request, 'disconnected');
            // Since when, and the last error's code and time: never its message (it names hosts).
            const { since, lastError, ...rest } = health;
            assert.deepEqual(rest, { status: 'ok', redis: 'disconnected' });
            assert.ok(Date.parse(since) <= Date.now(), since);
            assert.deepEqual(Object.keys(lastError).sort(), ['at', 'code']);
            assert.equal(lastError.code, 'STORE_UNAVAILABLE');
            assert.ok(Date.parse(lastError.at) >= Date.parse(since) - 60_000, lastError.at);
          } finally {
            ctx.redis.resume();
          }

          assert.deepEqual(await healthBecomes(ctx.request, 'connected'), { status: 'ok', redis: 'connected' });
          const res = await caller.request('GET', `/api/conversations/${kept.externalId}`);
          assert.equal(res.status, 200);
          assert.deepEqual(res.body, kept);
        }),
      );

      it('answers 503 bodies without host, port or the store message once Redis is gone, and logs the detail', async () => {
        const redis = await startRedis();
        const store = new RedisConversationStore(redis.url, {
          tls: { ca: redis.caPem },
          commandTimeoutMs: 500,
          healthCheckIntervalMs: 200,
          logger: quietLogger,
        });
        const app = await serve(store, { redisConfigured: true });
        try {
          await store.ready();
          const caller = await app.client();
          const kept = conversation({ userId: caller.userId });
          assert.equal((await caller.request('POST', '/api/conversations', kept)).status, 201);
          await redis.stop();
          // Once the store knows it is disconnected its errors name where it was connecting to.
          assert.equal((await healthBecomes(app.request, 'disconnected')).redis, 'disconnected');
          const calls = [
            ['GET', `/api/conversations/${kept.externalId}`],
            ['GET', '/api/conversations'],
            ['POST', '/api/conversations', kept],
            ['DELETE', `/api/conversations/${kept.externalId}`],
          ];
          for (const [method, urlPath, body] of calls) {
            app.logger.lines.length = 0;
            const res = await caller.request(method, urlPath, body);
            assertOpaque503(res, { redisPort: redis.port, label: `${method} ${urlPath}` });
            const storeMessage = /STORE_UNAVAILABLE: (.+)$/m.exec(app.logger.lines.join('\n'))?.[1];
            assert.ok(storeMessage, `${method} ${urlPath}: the store's message is logged`);
            assert.ok(!res.text.includes(storeMessage), `${method} ${urlPath}: the store's message is sent`);
          }
        } finally {
          await app.close();
          await store.close();
        }
      });

      it(
        'answers 500 STORE_CORRUPT_RECORD without the record or its key for a corrupt record',
        withLog(async () => {
          const caller = await ctx.client();
          const id = randomUUID();
          const content = `record-content-${randomUUID()}`;
          await ctx.redis.cli(
            'SET',
            `conv:${id}`,
            JSON.stringify({ externalId: id, userId: caller.userId, history: content }),
          );
          await assert.rejects(
            ctx.store.get(id),
            { code: 'STORE_CORRUPT_RECORD' },
            'the record is corrupt to the store',
          );

          ctx.logger.lines.length = 0;
          const res = await caller.request('GET', `/api/conversations/${id}`);
          assert.equal(res.status, 500);
          assert.deepEqual(Object.keys(res.body).sort(), ['error', 'message']);
          assert.equal(res.body.error, 'STORE_CORRUPT_RECORD');
          for (const internal of [content, `conv:${id}`, 'history']) {
            assert.ok(!res.text.includes(internal), `the 500 body carries '${internal}': ${res.text}`);
          }
          assert.match(ctx.logger.lines.join('\n'), /^error .*STORE_CORRUPT_RECORD/m, 'the detail is logged');
        }),
      );
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
  it('answers 500 { error: "internal" } for an unexpected error, and logs its message instead', async () => {
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
      const res = await (await app.client()).request('GET', `/api/conversations/${randomUUID()}`);
      assert.equal(res.status, 500);
      assert.deepEqual(res.body, { error: 'internal' });
      assert.match(app.logger.lines.join('\n'), /secret internals/);
    } finally {
      await app.close();
    }
  });
});

describe('example server token settings', () => {
  it('refuses an HS256 secret shorter than 32 bytes', () => {
    const store = new InMemoryConversationStore({ logger: quietLogger });
    assert.throws(
      () => createApp(store, { redisConfigured: false, auth: { secret: randomBytes(31) } }),
      /at least 32 bytes/,
    );
    assert.doesNotThrow(() => createApp(store, { redisConfigured: false, auth: { secret: randomBytes(32) } }));
  });

  it('checks iss and aud when they are configured', async () => {
    const issuer = 'https://login.example.test/tenant-1';
    const audience = 'copilot-chat-api';
    const store = new InMemoryConversationStore({ logger: quietLogger });
    const app = await serve(store, { redisConfigured: false, auth: { secret: SECRET, issuer, audience } });
    try {
      const list = async (options) =>
        (await app.request('GET', '/api/conversations', undefined, { token: await token('user-1', options) })).status;
      assert.equal(await list({ issuer, audience }), 200);
      assert.equal(await list({ audience }), 401, 'no iss');
      assert.equal(await list({ issuer: 'https://other.example.test/', audience }), 401, 'another iss');
      assert.equal(await list({ issuer }), 401, 'no aud');
      assert.equal(await list({ issuer, audience: 'another-api' }), 401, 'another aud');
    } finally {
      await app.close();
    }
  });
});

/** Runs a script with the environment less its AUTH_/REDIS_/PORT settings, plus `env`; keeps its output lines. */
function startProcess(args, env) {
  const cleanEnv = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(AUTH_|REDIS_|PORT$|NODE_TEST_CONTEXT$)/.test(name)),
  );
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...cleanEnv, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = [];
  const output = new EventEmitter();
  for (const stream of [child.stdout, child.stderr]) {
    readline.createInterface({ input: stream }).on('line', (line) => {
      lines.push(line);
      output.emit('line', line);
    });
  }
  const closed = once(child, 'close'); // after 'exit', once every output line has been read

  /** Resolves the first line matching `pattern`; rejects if the process ends first or the ceiling passes. */
  function lineMatching(pattern) {
    const seen = lines.find((line) => pattern.test(line));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const fail = (why) => {
        cleanup();
        reject(new Error(`${why}:\n${lines.join('\n')}`));
      };
      const onLine = (line) => {
        if (!pattern.test(line)) return;
        cleanup();
        resolve(line);
      };
      const onClose = () => fail(`ended before printing ${pattern}`);
      const timer = setTimeout(
        () => fail(`no line matching ${pattern} within ${DEMO_START_CEILING_MS} ms`),
        DEMO_START_CEILING_MS,
      );
      function cleanup() {
        clearTimeout(timer);
        output.off('line', onLine);
        child.off('close', onClose);
      }
      output.on('line', onLine);
      child.once('close', onClose);
    });
  }
  const running = () => child.exitCode === null && child.signalCode === null;
  /** The exit code; if the process still runs after `ms`, it is killed and this rejects. */
  async function exitCodeWithin(ms) {
    let timer;
    const ceiling = new Promise((resolve) => {
      timer = setTimeout(resolve, ms, 'timeout');
    });
    const outcome = await Promise.race([closed, ceiling]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      child.kill('SIGKILL');
      await closed;
      throw new Error(`still running after ${ms} ms:\n${lines.join('\n')}`);
    }
    return outcome[0];
  }
  async function stop() {
    if (running()) child.kill('SIGTERM');
    await closed;
  }
  return { lines, exitCodeWithin, lineMatching, stop };
}

describe('example server start-up', () => {
  it('refuses to start without AUTH_JWT_SECRET, or with a short one, and never prints the secret', async () => {
    const server = path.join(EXAMPLE_DIR, 'dist', 'server.js');
    const unset = startProcess([server], { PORT: '0' });
    const code = await unset.exitCodeWithin(START_REFUSAL_CEILING_MS);
    assert.equal(code, 1, unset.lines.join('\n'));
    assert.match(unset.lines.join('\n'), /Cannot start: AUTH_JWT_SECRET is not set/);

    const shortSecret = `too-short-${randomUUID().slice(0, 8)}`;
    const short = startProcess([server], { PORT: '0', AUTH_JWT_SECRET: shortSecret });
    const shortCode = await short.exitCodeWithin(START_REFUSAL_CEILING_MS);
    assert.equal(shortCode, 1, short.lines.join('\n'));
    assert.match(short.lines.join('\n'), /AUTH_JWT_SECRET: expected at least 32 bytes/);
    assert.ok(!short.lines.join('\n').includes(shortSecret), 'the secret is printed');
  });

  it('npm run demo works without AUTH_JWT_SECRET: it prints a development-only token the server accepts', async () => {
    const demo = startProcess([path.join('examples', 'demo.js')], { PORT: '0' });
    try {
      const listening = await demo.lineMatching(/^Listening on http:\/\/\S+$/);
      const base = listening.replace('Listening on ', '');
      const tokenLine = await demo.lineMatching(/curl -s -X POST .*Bearer [\w-]+\.[\w-]+\.[\w-]+/);
      const devToken = /Bearer ([\w-]+\.[\w-]+\.[\w-]+)/.exec(tokenLine)[1];
      assert.ok(
        demo.lines.some((l) => /DEVELOPMENT ONLY/.test(l)),
        'labelled as development only',
      );
      assert.equal(jose.decodeJwt(devToken).sub, 'demo-user');

      const list = await fetch(`${base}/api/conversations`, { headers: { authorization: `Bearer ${devToken}` } });
      assert.equal(list.status, 200);
      assert.deepEqual(await list.json(), []);
      const body = JSON.parse(/-d '(.*)'$/.exec(tokenLine)[1]);
      const post = await fetch(`${base}/api/conversations`, {
        method: 'POST',
        headers: { authorization: `Bearer ${devToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      assert.equal(post.status, 201, 'the printed POST works as printed');
      assert.equal((await fetch(`${base}/api/conversations`)).status, 401, 'no token, no access');
      const forged = await token('demo-user'); // signed with a secret the demo does not know
      assert.equal(
        (await fetch(`${base}/api/conversations`, { headers: { authorization: `Bearer ${forged}` } })).status,
        401,
      );
    } finally {
      await demo.stop();
    }
  });

  it('npm run demo with AUTH_JWT_SECRET verifies with it and prints no development token', async () => {
    const secret = randomBytes(32).toString('base64url');
    const demo = startProcess([path.join('examples', 'demo.js')], { PORT: '0', AUTH_JWT_SECRET: secret });
    try {
      const base = (await demo.lineMatching(/^Listening on http:\/\/\S+$/)).replace('Listening on ', '');
      await demo.lineMatching(/TOKEN: an HS256 JWT signed with AUTH_JWT_SECRET/);
      const output = demo.lines.join('\n');
      assert.doesNotMatch(output, /DEVELOPMENT ONLY|Bearer ey/);
      assert.ok(!output.includes(secret), 'the secret is printed');
      const signed = await token('user-1', { secret: new TextEncoder().encode(secret) });
      assert.equal(
        (await fetch(`${base}/api/conversations`, { headers: { authorization: `Bearer ${signed}` } })).status,
        200,
      );
      const other = await token('user-1', { secret: randomBytes(32) });
      assert.equal(
        (await fetch(`${base}/api/conversations`, { headers: { authorization: `Bearer ${other}` } })).status,
        401,
      );
    } finally {
      await demo.stop();
    }
  });
});
