'use strict';
// The `credentials` option against a real TLS redis-server whose ACL user stands for a
// Microsoft Entra ID identity: the test issues JWT-shaped tokens with an `oid` claim and a
// lifetime of a few seconds, makes each one a password of that user as it issues it
// (`ACL SETUSER <oid> >token`) and removes it once it has expired (`<token`). Redis keeps a
// connection authenticated when its password is removed, so re-authentication is proven by
// the server's own counters: AUTH calls rose, and no new connection was made.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const path = require('node:path');

const { RedisConversationStore, createConversationStore, entraIdCredentials, StoreError } = require('..');
const { nativeCredentials } = require('../lib/credentials');
const { startRedis, stopAll, withLogOnFailure, makeNameOnlyCerts } = require('../support/redis');
const { startCluster, stopAllClusters } = require('../support/cluster');
const { makeConversation, persisted } = require('../support/conversations');
const {
  recordingLogger,
  silentLogger,
  waitForStatus,
  startLoad,
  stopAllLoads,
  stopAndVerify,
} = require('../support/observe');

const ADMIN_PASSWORD = 'admin-only-for-the-test';
const OID = '6f1d2c3b-0a9e-4f8d-b7c6-5e4d3c2b1a09';
const COMMAND_TIMEOUT_MS = 2000;
const CONNECT_TIMEOUT_MS = 3000;
const RETRY = { baseDelayMs: 100, maxDelayMs: 500 };
const CEILING_MS = 30_000; // generous: a hang ceiling, not a speed claim
const ROTATIONS = 10;
const CLUSTER_ROTATIONS = 5;

let server;
/** redis-cli runs as the admin: each one is one connection and one AUTH on the server. */
let adminCalls = 0;
/** Every token issued, so that no log line or message may show one. */
const issued = [];

async function admin(...args) {
  adminCalls += 1;
  return server.cli(...args);
}

/** The fields of one `INFO` section line, e.g. `cmdstat_auth:calls=3,usec=…`. */
function infoField(info, name) {
  const line = info.split(/\r?\n/).find((l) => l.startsWith(`${name}:`));
  return line ? line.slice(name.length + 1) : undefined;
}

/**
 * What the server has counted: AUTH calls, connections received, the ids of the oid's
 * connections; `adminCalls` is how many of the connections and AUTHs were the test's own.
 */
async function serverCounters() {
  const clients = await admin('CLIENT', 'LIST');
  const info = await admin('INFO', 'all');
  const auth = Object.fromEntries((infoField(info, 'cmdstat_auth') ?? 'calls=0').split(',').map((kv) => kv.split('=')));
  const ids = clients
    .split(/\r?\n/)
    .filter((line) => line.includes(` user=${OID} `))
    .map((line) => /(?:^|\s)id=(\d+)/.exec(line)?.[1])
    .sort();
  return {
    adminCalls,
    authCalls: Number(auth.calls),
    failedAuth: Number(auth.failed_calls ?? 0),
    connectionsReceived: Number(infoField(info, 'total_connections_received')),
    storeConnections: ids,
  };
}

/** AUTH calls and connections the store made between two counts. */
function storeMade(before, after) {
  const ownCalls = after.adminCalls - before.adminCalls;
  return {
    auths: after.authCalls - before.authCalls - ownCalls,
    connections: after.connectionsReceived - before.connectionsReceived - ownCalls,
  };
}

/** Resolves when `count` more lines match `pattern` (from line `from` on). */
async function untilLines(log, pattern, count, from = log.lines.length) {
  let next = from;
  for (let i = 0; i < count; i++) {
    await log.waitFor('info', pattern, { from: next, timeoutMs: CEILING_MS });
    next = log.lines.findIndex((line, j) => j >= next && pattern.test(line)) + 1;
  }
}

const base64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * Tokens as Entra ID issues them, made passwords of the oid's ACL user as they are issued; a
 * token is removed from the server once it has expired. `failing` makes getToken throw.
 */
class TestTokenIssuer {
  constructor(lifetimeMs) {
    this.lifetimeMs = lifetimeMs;
    this.failing = undefined;
    this.live = [];
    this.count = 0;
    /** Numbers (1-based) of the tokens the server is never told of: it refuses them. */
    this.refused = new Set();
  }

  /** Makes `token` a password of the oid's user and removes the `expired` ones (`<token`). */
  register(token, expired) {
    return admin('ACL', 'SETUSER', OID, 'on', `>${token}`, ...expired, '~*', '+@all');
  }

  async getToken(scopes) {
    assert.deepEqual(scopes, ['https://redis.azure.com/.default']);
    if (this.failing) throw new Error(this.failing);
    const now = Date.now();
    const expiresOnTimestamp = now + this.lifetimeMs;
    this.count += 1;
    const token = [
      base64url({ typ: 'JWT', alg: 'RS256' }),
      base64url({ oid: OID, exp: Math.floor(expiresOnTimestamp / 1000), n: this.count, r: Math.random() }),
      Buffer.from(`signature-${this.count}-${Math.random()}`).toString('base64url'),
    ].join('.');
    issued.push(token);
    const expired = this.live.filter((t) => t.expiresOnTimestamp <= now).map((t) => `<${t.token}`);
    this.live = this.live.filter((t) => t.expiresOnTimestamp > now);
    if (this.refused.has(this.count)) return { token, expiresOnTimestamp };
    await this.register(token, expired);
    this.live.push({ token, expiresOnTimestamp });
    return { token, expiresOnTimestamp };
  }
}

function openStore(t, options) {
  const store = new RedisConversationStore(`rediss://127.0.0.1:${server.port}`, {
    tls: { ca: server.caPem },
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    retry: RETRY,
    logger: silentLogger,
    ...options,
  });
  t.after(() => store.close());
  return store;
}

/** No issued token in any of `texts`. */
function assertNoToken(texts, what) {
  for (const text of texts) {
    for (const token of issued) {
      assert.ok(!text.includes(token), `${what} shows a token: ${text}`);
      // Nor its signature, the part that is secret on its own.
      assert.ok(!text.includes(token.split('.')[2]), `${what} shows a token's signature: ${text}`);
    }
  }
}

before(async () => {
  server = await startRedis({ password: ADMIN_PASSWORD });
});
after(async () => {
  await stopAllLoads();
  await stopAll();
});

describe('configuration', () => {
  const provider = async () => ({ password: 'p' });

  test('credentials with a password in the URL, or not a function, is STORE_INVALID_CONFIG', () => {
    const cases = [
      ['rediss://:key@127.0.0.1:6380', { credentials: provider }, /credentials: cannot be combined with a password/],
      ['rediss://user:key@127.0.0.1:6380', { credentials: provider }, /credentials: cannot be combined/],
      ['rediss://127.0.0.1:6380', { credentials: 'token' }, /credentials: expected a function/],
      ['rediss://127.0.0.1:6380', { credentials: { password: 'p' } }, /credentials: expected a function/],
      ['rediss://127.0.0.1:6380', { credentials: null }, /credentials: expected a function/],
    ];
    for (const [url, options, message] of cases) {
      for (const make of [
        () => new RedisConversationStore(url, { logger: silentLogger, ...options }),
        () => createConversationStore({ redisUrl: url, logger: silentLogger, ...options }),
      ]) {
        assert.throws(make, (error) => {
          assert.equal(error.code, 'STORE_INVALID_CONFIG', error.message);
          assert.match(error.message, message);
          assert.ok(!error.message.includes('key@'), error.message);
          return true;
        });
      }
    }
  });

  test('entraIdCredentials refuses what is not a TokenCredential, and bad options', () => {
    const credential = { getToken: async () => null };
    for (const [args, message] of [
      [['eyJ0eXAi.x.y'], /expected a TokenCredential/],
      [[{}], /expected a TokenCredential/],
      [[credential, { tenantId: 't' }], /unknown option 'tenantId'/],
      [[credential, { objectId: '' }], /objectId: expected a non-empty string/],
      [[credential, { scopes: [] }], /scopes: expected/],
      [[credential, 'scope'], /options: expected an object/],
    ]) {
      assert.throws(
        () => entraIdCredentials(...args),
        (error) => error.code === 'STORE_INVALID_CONFIG' && message.test(error.message),
      );
    }
  });

  test('entraIdCredentials given arguments that throw as they are read (a getter, a Proxy) throws STORE_INVALID_CONFIG on one line', () => {
    const credential = { getToken: async () => null };
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    const throwing = (/** @type {unknown} */ thrown) =>
      Object.defineProperty({}, 'objectId', {
        enumerable: true,
        get() {
          throw thrown;
        },
      });
    for (const args of [
      [revoked.proxy],
      [credential, revoked.proxy],
      [credential, throwing(new Error('STORE_CLOSED: forged\nline'))],
      [credential, throwing({ toString: () => 'STORE_UNAVAILABLE: x' })],
      [credential, { scopes: revoked.proxy }],
    ]) {
      assert.throws(
        () => entraIdCredentials(.../** @type {[any, any]} */ (args)),
        (error) => {
          assert.ok(error instanceof StoreError, String(error));
          assert.equal(error.code, 'STORE_INVALID_CONFIG');
          assert.match(error.message, /^entraIdCredentials: /);
          assert.doesNotMatch(error.message, /\n/);
          return true;
        },
      );
    }
  });

  test('a provider that throws what has no message is still a credential failure, described', async () => {
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    const unprintable = {
      toString() {
        throw new Error('no string either');
      },
    };
    for (const thrown of [revoked.proxy, unprintable, Object.create(null)]) {
      const provider = nativeCredentials(() => {
        throw thrown;
      });
      assert.deepEqual(await provider(), { error: 'a thrown value with no message' });
    }
  });

  test('a provider failure that repeats a password it gave, or any JWT, is described without them, whole or in part', async () => {
    // The older holds the newer whole: the longer must be replaced first, or its tail shows.
    const passwords = ['k3y-S3cret-Value-0123456789-0ld-and-l0nger', 'k3y-S3cret-Value-0123456789'];
    const jwt = [
      base64url({ typ: 'JWT', alg: 'RS256' }),
      base64url({ oid: OID, exp: 1 }),
      // Bytes whose base64 has the characters base64url replaces (`-`, `_`).
      Buffer.concat([Buffer.from([0xfb, 0xff, 0xbf]), Buffer.from('signature-of-a-token-never-given')]).toString(
        'base64url',
      ),
    ].join('.');
    // The same token in standard base64 (+, /, =), as a careless log might print it.
    const standardJwt = `${jwt.replaceAll('-', '+').replaceAll('_', '/')}==`;
    /** No run of 8 characters of a secret (a JWT's header, base64 of `{"typ":"JWT"`, aside). */
    const assertNoSecret = (error, secrets) => {
      assert.ok(error.includes('[redacted]'), error);
      for (const secret of secrets) {
        const from = secret.startsWith('eyJ') ? secret.indexOf('.') + 1 : 0;
        for (let i = from; i + 8 <= secret.length; i++) {
          assert.ok(!error.includes(secret.slice(i, i + 8)), `${error} quotes part of a secret`);
        }
      }
    };
    /** @type {string | undefined} */
    let failing;
    let given = 0;
    const provider = nativeCredentials(async () => {
      if (failing !== undefined) throw new Error(failing);
      return { password: passwords[given++], expiresAt: Date.now() + 60_000 };
    });
    // Two rotations: the provider gave both, and the store may still hold the older.
    assert.equal((await provider()).password, passwords[0]);
    assert.equal((await provider()).password, passwords[1]);
    // A result whose getter throws is the provider's failure too, described alike.
    const fromGetter = nativeCredentials(async () =>
      failing === undefined
        ? { password: passwords[1] }
        : {
            expiresAt: Date.now() + 60_000,
            get password() {
              throw new Error(failing);
            },
          },
    );
    failing = undefined;
    assert.equal((await fromGetter()).password, passwords[1]);
    const cases = [
      `could not refresh; cached secret ${passwords[1]} rejected`,
      `the previous one, ${passwords[0]}, was revoked`,
      // Cut at 300 characters: the cut must not leave the start of a password.
      `${'x'.repeat(290)}${passwords[1]}`,
      `token ${jwt} has expired`,
      `${'y'.repeat(280)} ${jwt}`,
      `token ${standardJwt} has expired`,
    ];
    for (const message of cases) {
      failing = message;
      assertNoSecret((await provider()).error, [...passwords, jwt, standardJwt]);
      // It gave only the newer, which the older holds.
      assertNoSecret((await fromGetter()).error, [passwords[1], jwt, standardJwt]);
    }
  });

  test('a provider result of the wrong shape is a credential failure that names the field, never the value', async (t) => {
    const log = recordingLogger();
    const store = openStore(t, {
      logger: log.logger,
      credentials: async () => ({ username: OID, token: 'not-a-password-field-s3cr3t' }),
    });
    const error = await store.ready().then(
      () => assert.fail('ready() resolved'),
      (e) => e,
    );
    assert.equal(error.code, 'STORE_UNAVAILABLE');
    assert.match(error.message, /has no password/);
    const warning = await log.waitFor('warn', /credentials provider failed: .*has no password/);
    for (const text of [error.message, ...log.lines]) assert.ok(!text.includes('s3cr3t'), text);
    assert.ok(warning);
  });
});

describe('rotation', () => {
  test('10 rotations under a set/get/list load: no failed call, always ready, live connections re-authenticated', async (t) => {
    const issuer = new TestTokenIssuer(2500);
    const log = recordingLogger();
    const store = openStore(t, { logger: log.logger, credentials: entraIdCredentials(issuer) });
    await withLogOnFailure(server, async () => {
      await store.ready();
      // The connection's own AUTHs (connect, and the re-auth stream's first item) are done.
      await log.waitFor('info', /connected to/);
      const before = await serverCounters();
      assert.equal(before.storeConnections.length, 1, 'the store holds one connection, as the oid');

      const statuses = new Set();
      const sampler = setInterval(() => statuses.add(store.status), 20);
      t.after(() => clearInterval(sampler));
      const load = startLoad(store, { workers: 4, idPrefix: 'rotation', noRejections: true });
      await untilLines(log, /credentials rotated/, ROTATIONS);
      // Each rotation's AUTH follows it by up to a tenth of the token's lifetime.
      let after = await serverCounters();
      const deadline = Date.now() + CEILING_MS;
      while (storeMade(before, after).auths < ROTATIONS && Date.now() < deadline) {
        await untilLines(log, /credentials rotated/, 1);
        after = await serverCounters();
      }
      clearInterval(sampler);
      const results = await stopAndVerify(load, { settleCeilingMs: COMMAND_TIMEOUT_MS + 1000 });

      assert.deepEqual([...statuses], ['ready'], 'status left ready');
      assert.ok(results.length > 100, `${results.length} calls`);
      assert.deepEqual(after.storeConnections, before.storeConnections, 'the same connection throughout');
      const made = storeMade(before, after);
      assert.equal(made.connections, 0, 'no new connection');
      assert.ok(made.auths >= ROTATIONS, `${made.auths} AUTH calls for ${ROTATIONS} rotations`);
      assert.equal(after.failedAuth, 0, 'every AUTH succeeded');
      // The tokens the store re-authenticated with had replaced the first: it was removed.
      assert.ok(issuer.count > ROTATIONS);
      assert.match(
        log.lines.find((l) => l.includes('credentials received')),
        new RegExp(`for user ${OID}`),
      );
      assertNoToken(log.lines, 'a log line');
    });
  });
});

describe('refused re-authentication', () => {
  test('a live connection whose re-AUTH is refused is replaced before its token expires, and rotation resumes', async (t) => {
    const issuer = new TestTokenIssuer(4000);
    issuer.refused.add(2);
    const log = recordingLogger();
    const store = openStore(t, { logger: log.logger, credentials: entraIdCredentials(issuer) });
    await withLogOnFailure(server, async () => {
      await store.ready();
      await log.waitFor('info', /connected to/);
      const before = await serverCounters();
      const load = startLoad(store, { workers: 2, idPrefix: 'refused' });
      // The second token is refused (WRONGPASS): redis-rs stops re-authenticating that
      // connection; the store notices, fetches again and moves to a new connection.
      const replaced = await log.waitFor('warn', /stopped re-authenticating/, { timeoutMs: CEILING_MS });
      assert.ok(replaced);
      await waitForStatus(store, 'ready', CEILING_MS);
      const middle = await serverCounters();
      assert.ok(middle.failedAuth > before.failedAuth, 'the server refused an AUTH');
      assert.ok(storeMade(before, middle).connections >= 1, 'a new connection');
      // Replaced well before the first token (4 s) expired: the replacement came on the
      // next token, fetched within the retry backoff.
      assert.ok(issuer.count >= 3, `${issuer.count} tokens`);
      // The new connection re-authenticates through later rotations.
      await untilLines(log, /credentials rotated/, 2);
      let after = await serverCounters();
      const deadline = Date.now() + CEILING_MS;
      while (storeMade(middle, after).auths < 1 && Date.now() < deadline) {
        await untilLines(log, /credentials rotated/, 1);
        after = await serverCounters();
      }
      assert.ok(storeMade(middle, after).auths >= 1, 'the new connection re-authenticated');
      await stopAndVerify(load, { settleCeilingMs: COMMAND_TIMEOUT_MS + 1000 });
      assertNoToken(log.lines, 'a log line');
    });
  });

  test('a new connection refused (WRONGPASS) asks the provider again at once, not at the refresh an hour away', async (t) => {
    const issuer = new TestTokenIssuer(3_600_000);
    issuer.refused.add(1);
    const log = recordingLogger();
    const store = openStore(t, { logger: log.logger, credentials: entraIdCredentials(issuer) });
    await withLogOnFailure(server, async () => {
      await waitForStatus(store, 'ready', CEILING_MS);
      assert.ok(issuer.count >= 2, `${issuer.count} tokens`);
      // A third fetch may still be running when the store turns ready: a connection attempt
      // refused with the first token while the second was being fetched leaves the rotation a
      // stored wake-up, and the issuer counts a token before it registers it. Log lines also
      // reach JavaScript after the status does. So every token after the first is logged as a
      // rotation once it has arrived, not necessarily by the time the store is ready.
      await untilLines(log, /credentials rotated/, issuer.count - 1, 0);
      assert.equal(log.lines.filter((l) => /credentials rotated/.test(l)).length, issuer.count - 1);
      assertNoToken(log.lines, 'a log line');
    });
  });

  test('a cached token whose refresh time has passed: no hot loop, no rotation, no re-AUTH', async (t) => {
    const issuer = new TestTokenIssuer(3_600_000);
    const cached = await issuer.getToken(['https://redis.azure.com/.default']);
    let calls = 0;
    const log = recordingLogger();
    const store = openStore(t, {
      logger: log.logger,
      credentials: async () => {
        calls += 1;
        return {
          username: OID,
          password: cached.token,
          expiresAt: cached.expiresOnTimestamp,
          refreshAt: Date.now() - 60_000,
        };
      },
    });
    await store.ready();
    await log.waitFor('info', /connected to/);
    const before = await serverCounters();
    const callsBefore = calls;
    // The retry backoff (100-500 ms here) paces the provider: a few calls a second at most.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const after = await serverCounters();
    assert.ok(calls - callsBefore <= 12, `${calls - callsBefore} provider calls in 2 s`);
    assert.equal(storeMade(before, after).auths, 0, 'no re-AUTH with the same token');
    assert.equal(log.lines.filter((l) => /credentials rotated/.test(l)).length, 0);
    assert.equal(store.stats().credentialsExpireAt, cached.expiresOnTimestamp);
  });
});

describe('provider failure', () => {
  test('a provider that throws: warnings, STORE_UNAVAILABLE after expiry naming it, then recovery by itself', async (t) => {
    const issuer = new TestTokenIssuer(3000);
    const log = recordingLogger();
    const store = openStore(t, { logger: log.logger, credentials: entraIdCredentials(issuer) });
    await withLogOnFailure(server, async () => {
      await store.ready();
      const before = makeConversation();
      await store.set(before.externalId, before);

      // A provider's own error may repeat the token it could not refresh: never quoted.
      issuer.failing = `token endpoint answered 503 (refreshing ${issued.at(-1)})`;
      const warning = await log.waitFor('warn', /credentials provider failed: .*token endpoint answered 503/);
      assert.match(warning, /the current credentials expire in/);
      // Until the token expires, calls still work.
      assert.deepEqual(await store.get(before.externalId), persisted(before));

      // After expiry the connection is closed, as Azure does, and no new one can authenticate.
      await log.waitFor('warn', /connection lost: the credentials expired/);
      const failure = await store.get(before.externalId).then(
        () => assert.fail('get() resolved past expiry'),
        (e) => e,
      );
      assert.equal(failure.code, 'STORE_UNAVAILABLE');
      assert.match(failure.message, /credentials expired/);
      assert.match(failure.message, /token endpoint answered 503/);
      assert.notEqual(store.status, 'ready');

      issuer.failing = undefined;
      await waitForStatus(store, 'ready', CEILING_MS);
      assert.deepEqual(await store.get(before.externalId), persisted(before));
      const after = makeConversation();
      await store.set(after.externalId, after);
      assert.deepEqual(await store.get(after.externalId), persisted(after));
      assertNoToken(
        [...log.lines, failure.message, failure.stack, JSON.stringify(store.stats())],
        'a log line, a message or stats()',
      );
    });
  });
});

describe('loading', () => {
  test('requiring the package does not load jose: only entraIdCredentials decoding a token does', () => {
    const script = `require(${JSON.stringify(path.join(__dirname, '..'))});
      process.stdout.write(String(Object.keys(require.cache).some((f) => f.includes('jose'))));`;
    const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, 'false');
  });
});

describe('event loop', () => {
  test('a process whose store was never closed exits, with a credentials provider set', async () => {
    const script = `
      const { RedisConversationStore } = require(${JSON.stringify(path.join(__dirname, '..'))});
      const store = new RedisConversationStore(process.env.URL, {
        tls: { ca: process.env.CA },
        logger: { info() {}, warn() {}, error() {} },
        credentials: async () => ({ username: process.env.OID, password: process.env.TOKEN, expiresAt: Date.now() + 600000 }),
      });
      store.ready().then(() => store.get('x')).then(() => console.log('done'), (e) => { console.log(e.message); process.exitCode = 1; });
    `;
    const token = `exit-test-token-${Math.random()}`;
    issued.push(token);
    await admin('ACL', 'SETUSER', OID, 'on', `>${token}`, '~*', '+@all');
    const child = spawn(process.execPath, ['-e', script], {
      env: { ...process.env, URL: `rediss://127.0.0.1:${server.port}`, CA: server.caPem, OID, TOKEN: token },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), CEILING_MS);
    const [code, signal] = await new Promise((resolve) => child.on('exit', (c, s) => resolve([c, s])));
    clearTimeout(timer);
    assert.equal(signal, null, `the process did not exit by itself within ${CEILING_MS} ms: ${output}`);
    assert.equal(code, 0, output);
    assert.match(output, /^done$/m);
  });
});

describe('cluster', () => {
  test('every node re-authenticates its live connection through rotations under load, none reconnects', async (t) => {
    const cluster = await startCluster({
      primaries: 3,
      replicasPerPrimary: 0,
      password: ADMIN_PASSWORD,
      certs: await makeNameOnlyCerts(),
      seedHost: 'localhost',
    });
    t.after(stopAllClusters);
    let cliRuns = 0;
    const onEveryNode = (...args) => {
      cliRuns += cluster.nodes.length;
      return Promise.all(cluster.nodes.map((node) => node.cli(...args)));
    };
    const issuer = new TestTokenIssuer(2500);
    issuer.register = (token, expired) =>
      onEveryNode('ACL', 'SETUSER', OID, 'on', `>${token}`, ...expired, '~*', '+@all');
    const counters = async () => {
      const infos = await onEveryNode('INFO', 'all');
      return {
        cliRuns,
        perNode: infos.map((info) => ({
          auth: Number(/cmdstat_auth:calls=(\d+)/.exec(info)?.[1] ?? 0),
          connections: Number(infoField(info, 'total_connections_received')),
        })),
      };
    };
    const log = recordingLogger();
    const store = new RedisConversationStore(cluster.seedUrl.replace(/\/\/:[^@]*@/, '//'), {
      cluster: true,
      tls: { ca: cluster.caPem },
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      retry: RETRY,
      logger: log.logger,
      credentials: entraIdCredentials(issuer),
    });
    t.after(() => store.close());
    await store.ready();
    const before = await counters();
    const statuses = new Set();
    const sampler = setInterval(() => statuses.add(store.status), 20);
    t.after(() => clearInterval(sampler));
    const load = startLoad(store, { workers: 4, idPrefix: 'cluster-rotation', noRejections: true });
    await untilLines(log, /credentials rotated/, CLUSTER_ROTATIONS);
    // The last rotation's AUTHs follow it by up to a tenth of the lifetime: one more rotation.
    await untilLines(log, /credentials rotated/, 1);
    const after = await counters();
    clearInterval(sampler);
    await stopAndVerify(load, { settleCeilingMs: COMMAND_TIMEOUT_MS + 1000 });

    assert.deepEqual([...statuses], ['ready'], 'status left ready');
    // Each node saw one connection and one AUTH per redis-cli run of the test, plus the store's.
    const ownPerNode = (after.cliRuns - before.cliRuns) / cluster.nodes.length;
    for (const [i, node] of after.perNode.entries()) {
      const connections = node.connections - before.perNode[i].connections - ownPerNode;
      const auths = node.auth - before.perNode[i].auth - ownPerNode;
      assert.equal(connections, 0, `node ${i}: new connections`);
      assert.ok(auths >= CLUSTER_ROTATIONS, `node ${i}: ${auths} AUTH calls for ${CLUSTER_ROTATIONS} rotations`);
    }
    assertNoToken(log.lines, 'a log line');
  });
});
