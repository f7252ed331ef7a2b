'use strict';
// Constructor validation: a bad URL or option throws STORE_INVALID_CONFIG synchronously, with no
// credential in the message, and createConversationStore picks a store without ever falling
// back to memory on a bad URL. No Redis is needed: nothing here gets as far as a connection.

const { describe, test, afterEach } = require('node:test');
const assert = require('node:assert/strict');

const { RedisConversationStore, InMemoryConversationStore, createConversationStore, StoreError } = require('..');
const { makeCerts } = require('../support/redis');
const { makeConversation, isoAt } = require('../support/conversations');
const { recordingLogger, silentLogger } = require('../support/observe');

// Nothing listens on port 1: a store that gets built only retries in the background until closed.
const VALID_URL = 'rediss://127.0.0.1:1';
const PASSWORD = 'hunter2';

const opened = [];
afterEach(() => Promise.all(opened.splice(0).map((store) => store.close())));

/** Builds a store, closing it after the test should the constructor (wrongly) succeed. */
function build(construct) {
  return () => {
    const store = construct();
    if (store && typeof store.close === 'function') opened.push(store);
    return store;
  };
}

function invalidConfig(...mustNotContain) {
  return (error) => {
    assert.ok(error instanceof Error, `expected an Error, got ${error}`);
    assert.equal(error.code, 'STORE_INVALID_CONFIG', error.message);
    for (const secret of mustNotContain) {
      assert.ok(!error.message.includes(secret), `the message shows "${secret}": ${error.message}`);
    }
    return true;
  };
}

describe('RedisConversationStore URL', () => {
  const badUrls = [
    ['a plaintext redis:// URL', 'redis://127.0.0.1:6380'],
    ['a plaintext redis:// URL with a password', `redis://:${PASSWORD}@127.0.0.1:6380`],
    ['an http:// URL', 'http://127.0.0.1:6380'],
    ['an empty string', ''],
    ['no scheme', '127.0.0.1:6380'],
    ['port 0', `rediss://:${PASSWORD}@host:0`],
    ['a port above 65535', 'rediss://host:65536'],
    ['a path that is not a database number', `rediss://:${PASSWORD}@host/abc`],
    ['a #insecure fragment (certificate checks off in redis-rs)', `rediss://:${PASSWORD}@host#insecure`],
    ['query parameters', 'rediss://host:6380?insecure=true'],
    ['no host', `rediss://:${PASSWORD}@:6380`],
    ['a bad %-escape in the password', 'rediss://:hunter%zz@host:6380'],
  ];
  for (const [what, url] of badUrls) {
    test(`${what} throws STORE_INVALID_CONFIG without showing the password`, () => {
      assert.throws(
        build(() => new RedisConversationStore(url, { logger: silentLogger })),
        invalidConfig(PASSWORD, 'hunter'),
      );
    });
  }

  test('a database other than 0 in cluster mode throws STORE_INVALID_CONFIG (a cluster has only database 0)', () => {
    const url = `rediss://:${PASSWORD}@cache.example:6380/2`;
    assert.throws(
      build(() => new RedisConversationStore(url, { cluster: true, logger: silentLogger })),
      invalidConfig(PASSWORD),
    );
    assert.throws(
      build(() => new RedisConversationStore(url, { cluster: true, logger: silentLogger })),
      /database 0/,
    );
  });

  for (const [what, url] of [
    ['undefined', undefined],
    ['a number', 6380],
    ['a URL object', new URL(VALID_URL)],
  ]) {
    test(`a URL that is ${what}, not a string, throws STORE_INVALID_CONFIG`, () => {
      assert.throws(
        build(() => new RedisConversationStore(url, { logger: silentLogger })),
        invalidConfig(),
      );
    });
  }

  test('a valid rediss:// URL with credentials and a database builds a store that starts connecting', () => {
    const store = build(
      () => new RedisConversationStore(`rediss://app:${PASSWORD}@127.0.0.1:1/2`, { logger: silentLogger }),
    )();
    assert.equal(store.status, 'connecting');
  });
});

describe('options', () => {
  const badOptions = [
    ['ttlSeconds 0', { ttlSeconds: 0 }],
    ['ttlSeconds 1.5', { ttlSeconds: 1.5 }],
    ["ttlSeconds '10' (a string)", { ttlSeconds: '10' }],
    ['ttlSeconds NaN', { ttlSeconds: NaN }],
    ['listLimit 0', { listLimit: 0 }],
    ['listLimit -5', { listLimit: -5 }],
    ['maxRecordBytes 0', { maxRecordBytes: 0 }],
    ['listLimit 10001', { listLimit: 10_001 }],
    ['an unknown option name', { ttl: 60 }],
    ['a logger without methods', { logger: {} }],
    ['a logger missing error()', { logger: { info() {}, warn() {} } }],
    ['a logger that is a function', { logger: () => {} }],
    ['options that are not an object', 'ttlSeconds=60'],
  ];
  const redisOnlyBadOptions = [
    ['commandTimeoutMs -1', { commandTimeoutMs: -1 }],
    ['commandTimeoutMs 0', { commandTimeoutMs: 0 }],
    ['connectTimeoutMs 2.5', { connectTimeoutMs: 2.5 }],
    ['healthCheckIntervalMs 0', { healthCheckIntervalMs: 0 }],
    ['keyPrefix 5 (not a string)', { keyPrefix: 5 }],
    ["keyPrefix 'app' (no trailing ':', so 'app' and 'app2' would share keys)", { keyPrefix: 'app' }],
    ["keyPrefix 'app:x'", { keyPrefix: 'app:x' }],
    ['tls.ca that is not PEM', { tls: { ca: 'not a certificate' } }],
    ['tls.ca of the wrong type', { tls: { ca: 42 } }],
    ['retry.maxDelayMs below retry.baseDelayMs', { retry: { baseDelayMs: 500, maxDelayMs: 100 } }],
    ['retry.baseDelayMs 0', { retry: { baseDelayMs: 0 } }],
    ["cluster 'yes' (not a boolean)", { cluster: 'yes' }],
  ];

  for (const [what, options] of [...badOptions, ...redisOnlyBadOptions]) {
    test(`RedisConversationStore: ${what} throws STORE_INVALID_CONFIG, with no password in the message`, () => {
      const url = `rediss://:${PASSWORD}@127.0.0.1:1`;
      assert.throws(
        build(() => new RedisConversationStore(url, options)),
        invalidConfig(PASSWORD),
      );
    });
  }

  for (const [what, options] of badOptions) {
    test(`InMemoryConversationStore: ${what} throws STORE_INVALID_CONFIG`, () => {
      assert.throws(
        build(() => new InMemoryConversationStore(options)),
        invalidConfig(),
      );
    });
  }

  test('a bad value names its option in the message', () => {
    assert.throws(
      build(() => new InMemoryConversationStore({ listLimit: 0 })),
      /listLimit/,
    );
    assert.throws(
      build(() => new RedisConversationStore(VALID_URL, { commandTimeoutMs: -1 })),
      /commandTimeoutMs/,
    );
    assert.throws(
      build(() => new RedisConversationStore(VALID_URL, { tls: { ca: 'junk' } })),
      /tls\.ca/,
    );
    assert.throws(
      build(() => new RedisConversationStore(VALID_URL, { retry: { baseDelayMs: 500, maxDelayMs: 100 } })),
      /retry\.maxDelayMs/,
    );
  });

  const wrongShapes = [
    ["tls 'x' (not an object)", { tls: 'x' }],
    ['retry 5 (not an object)', { retry: 5 }],
    ['a misspelt tls field (tls.caFile: the CA would be silently ignored)', { tls: { caFile: '/etc/ca.pem' } }],
    ['a misspelt retry field (retry.maxDelay)', { retry: { maxDelay: 100 } }],
  ];
  for (const [what, options] of wrongShapes) {
    test(`RedisConversationStore: ${what} throws STORE_INVALID_CONFIG`, () => {
      assert.throws(
        build(() => new RedisConversationStore(VALID_URL, { logger: silentLogger, ...options })),
        invalidConfig(),
      );
    });
  }

  test('every documented option with a valid value is accepted', async () => {
    const certs = await makeCerts();
    const full = {
      ttlSeconds: 60,
      commandTimeoutMs: 1000,
      connectTimeoutMs: 1000,
      listLimit: 10,
      keyPrefix: 'app1:',
      tls: { ca: certs.caPem, cert: Buffer.from(certs.clientCertPem), key: certs.clientKeyPem },
      retry: { baseDelayMs: 10, maxDelayMs: 10 },
      healthCheckIntervalMs: 500,
      logger: silentLogger,
      maxRecordBytes: 1024,
      cluster: false,
    };
    assert.equal(build(() => new RedisConversationStore(VALID_URL, full))().status, 'connecting');
    const { ttlSeconds, listLimit, maxRecordBytes, logger } = full;
    assert.equal(
      build(() => new InMemoryConversationStore({ ttlSeconds, listLimit, maxRecordBytes, logger }))().status,
      'ready',
    );
  });
});

describe('createConversationStore', () => {
  test('without redisUrl it returns an InMemoryConversationStore and logs a [STORE] line naming it', () => {
    const log = recordingLogger();
    const store = build(() => createConversationStore({ logger: log.logger }))();
    assert.ok(store instanceof InMemoryConversationStore);
    assert.equal(log.lines.length, 1);
    assert.match(log.lines[0], /^\[STORE\] .*in-memory/);
  });

  test("with redisUrl '' it returns an InMemoryConversationStore", () => {
    const store = build(() => createConversationStore({ redisUrl: '', logger: silentLogger }))();
    assert.ok(store instanceof InMemoryConversationStore);
  });

  test('with no options at all it returns an InMemoryConversationStore', () => {
    const stderrWrite = process.stderr.write;
    process.stderr.write = () => true; // the default logger writes its choice to stderr
    try {
      assert.ok(build(() => createConversationStore())() instanceof InMemoryConversationStore);
    } finally {
      process.stderr.write = stderrWrite;
    }
  });

  test('takes its options as the constructors do: null is no options, an array or a number throws STORE_INVALID_CONFIG', () => {
    const stderrWrite = process.stderr.write;
    process.stderr.write = () => true; // the default logger writes its choice to stderr
    try {
      assert.ok(
        build(() => new InMemoryConversationStore(/** @type {any} */ (null)))() instanceof InMemoryConversationStore,
      );
      assert.ok(build(() => createConversationStore(/** @type {any} */ (null)))() instanceof InMemoryConversationStore);
    } finally {
      process.stderr.write = stderrWrite;
    }
    const arrays = [
      [],
      [{ redisUrl: 'rediss://127.0.0.1:1' }],
      Object.assign([], { redisUrl: 'rediss://127.0.0.1:1' }),
    ];
    for (const options of [...arrays, 5, 'rediss://127.0.0.1:1']) {
      for (const construct of [
        () => new InMemoryConversationStore(/** @type {any} */ (options)),
        () => createConversationStore(/** @type {any} */ (options)),
      ]) {
        assert.throws(build(construct), (error) => {
          assert.equal(/** @type {any} */ (error).code, 'STORE_INVALID_CONFIG');
          assert.equal(/** @type {any} */ (error).message, 'options: expected an object');
          return true;
        });
      }
    }
  });

  test('options that throw as they are read give STORE_INVALID_CONFIG, whatever is thrown, with the message on one line', () => {
    const throwing = (/** @type {unknown} */ thrown) => [
      Object.defineProperty({}, 'ttlSeconds', {
        enumerable: true,
        get() {
          throw thrown;
        },
      }),
      new Proxy(
        {},
        {
          ownKeys() {
            throw thrown;
          },
        },
      ),
    ];
    const unprintable = {
      toString() {
        throw new Error('no string either');
      },
    };
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    const foreignStoreError = new StoreError('STORE_CLOSED', "a caller's own\n[STORE] forged line");
    const fakeStoreError = Object.assign(Object.create(StoreError.prototype), { code: 'EVIL' });
    const messageless = Object.defineProperty(Object.create(StoreError.prototype), 'message', {
      get() {
        throw 'raw';
      },
    });
    const thrownValues = [
      foreignStoreError,
      fakeStoreError,
      messageless,
      revoked.proxy,
      Object.create(null),
      unprintable,
      new Error('STORE_UNAVAILABLE: spoofed\nforged line'),
      'text',
    ];
    for (const thrown of thrownValues) {
      for (const options of throwing(thrown)) {
        for (const construct of [
          () => new InMemoryConversationStore(/** @type {any} */ (options)),
          () => new RedisConversationStore('rediss://127.0.0.1:1', /** @type {any} */ (options)),
          () => createConversationStore(/** @type {any} */ (options)),
        ]) {
          assert.throws(build(construct), (error) => {
            assert.ok(error instanceof StoreError, String(error));
            assert.equal(error.code, 'STORE_INVALID_CONFIG');
            assert.doesNotMatch(error.message, /\n/);
            return true;
          });
        }
      }
    }
  });

  test('with a rediss:// URL it returns a RedisConversationStore and logs a [STORE] line without the password', () => {
    const log = recordingLogger();
    const store = build(() =>
      createConversationStore({ redisUrl: `rediss://:${PASSWORD}@127.0.0.1:1`, logger: log.logger }),
    )();
    assert.ok(store instanceof RedisConversationStore);
    const line = log.lines.find((l) => /Redis/.test(l));
    assert.match(line, /^\[STORE\] .*127\.0\.0\.1:1/);
    for (const any of log.lines) assert.ok(!any.includes(PASSWORD), any);
  });

  for (const [what, redisUrl] of [
    ['a plaintext redis:// URL', `redis://:${PASSWORD}@127.0.0.1:6379`],
    ['an http:// URL', 'http://127.0.0.1:6380'],
    ['a port 0', 'rediss://127.0.0.1:0'],
    ['a number', 6380],
  ]) {
    test(`a bad redisUrl (${what}) throws STORE_INVALID_CONFIG and never falls back to memory`, () => {
      const log = recordingLogger();
      assert.throws(
        build(() => createConversationStore({ redisUrl, logger: log.logger })),
        invalidConfig(PASSWORD),
      );
      assert.equal(
        log.lines.some((l) => /in-memory/.test(l)),
        false,
      );
    });
  }

  test('a redisUrl with a bracketed host that is no IPv6 address throws STORE_INVALID_CONFIG', () => {
    assert.throws(
      build(() => createConversationStore({ redisUrl: 'rediss://[abc]:7000', logger: silentLogger })),
      invalidConfig(),
    );
  });

  test('a bad option value throws STORE_INVALID_CONFIG with or without redisUrl', () => {
    assert.throws(
      build(() => createConversationStore({ ttlSeconds: 0, logger: silentLogger })),
      invalidConfig(),
    );
    assert.throws(
      build(() => createConversationStore({ redisUrl: VALID_URL, ttlSeconds: 0, logger: silentLogger })),
      invalidConfig(),
    );
    assert.throws(
      build(() => createConversationStore({ ttl: 60, logger: silentLogger })),
      invalidConfig(),
    );
    assert.throws(
      build(() => createConversationStore({ logger: {} })),
      invalidConfig(),
    );
  });

  test('Redis-only options are accepted and ignored when it returns the in-memory store', () => {
    const store = build(() =>
      createConversationStore({
        logger: silentLogger,
        listLimit: 2,
        commandTimeoutMs: 1000,
        connectTimeoutMs: 1000,
        keyPrefix: 'app1:',
        tls: { ca: '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n' },
        retry: { baseDelayMs: 10, maxDelayMs: 20 },
        healthCheckIntervalMs: 500,
        cluster: false,
      }),
    )();
    assert.ok(store instanceof InMemoryConversationStore);
    assert.equal(store.status, 'ready');
  });

  test('a bad value of a Redis-only option throws STORE_INVALID_CONFIG even when it returns the in-memory store', () => {
    for (const bad of [
      { commandTimeoutMs: -5 },
      { connectTimeoutMs: 0 },
      { keyPrefix: 'nocolon' },
      { tls: { ca: 5 } },
      { retry: { baseDelayMs: -1 } },
      { healthCheckIntervalMs: Number.NaN },
      { cluster: 'yes' },
      { credentials: 'not a function' },
    ]) {
      assert.throws(
        build(() => createConversationStore({ logger: silentLogger, ...bad })),
        invalidConfig(),
        JSON.stringify(bad),
      );
    }
  });

  test('the common options reach the in-memory store it returns', async () => {
    const store = build(() => createConversationStore({ logger: silentLogger, listLimit: 2, keyPrefix: 'ignored:' }))();
    for (let i = 0; i < 3; i++) {
      const conversation = makeConversation({ userId: 'limit-user', updatedAt: isoAt(i) });
      await store.set(conversation.externalId, conversation);
    }
    assert.equal((await store.listByUser('limit-user')).length, 2);
  });
});

describe('hostile option objects', () => {
  const throwing = (what) => () => {
    throw new Error(`${what} exploded`);
  };
  const cases = [
    [
      'an option getter that throws',
      () =>
        new RedisConversationStore('rediss://127.0.0.1:1', {
          get ttlSeconds() {
            return throwing('getter')();
          },
        }),
    ],
    [
      'a logger whose info getter throws',
      () =>
        new RedisConversationStore('rediss://127.0.0.1:1', {
          logger: {
            get info() {
              return throwing('info')();
            },
            warn() {},
            error() {},
          },
        }),
    ],
    [
      'a Proxy whose ownKeys throws',
      () => new RedisConversationStore('rediss://127.0.0.1:1', new Proxy({}, { ownKeys: throwing('ownKeys') })),
    ],
    [
      'a factory option getter that throws',
      () =>
        createConversationStore({
          get redisUrl() {
            return throwing('redisUrl')();
          },
        }),
    ],
    [
      'an in-memory option getter that throws',
      () =>
        new InMemoryConversationStore({
          get listLimit() {
            return throwing('listLimit')();
          },
        }),
    ],
    [
      'a keyPrefix with a lone surrogate (napi would alias it)',
      () => new RedisConversationStore('rediss://127.0.0.1:1', { keyPrefix: 'a\uD800:' }),
    ],
    ['a URL with a lone surrogate', () => new RedisConversationStore('rediss://:p\uD800@127.0.0.1:1')],
  ];
  for (const [what, construct] of cases) {
    test(`${what}: the constructor throws STORE_INVALID_CONFIG`, () => {
      assert.throws(build(construct), invalidConfig());
    });
  }

  test('options are the own properties of the object given: a polluted Object.prototype adds none', () => {
    const { spawnSync } = require('node:child_process');
    const script = `
      const pkg = require(${JSON.stringify(require.resolve('..'))});
      const { makeConversation, isoAt } = require(${JSON.stringify(require.resolve('../support/conversations'))});
      const silent = { info() {}, warn() {}, error() {} };
      // Each of these would change or break a store if read: a list of one, a TTL refused,
      // an unknown retry field refused, a Redis store chosen, a CA trusted.
      Object.assign(Object.prototype, {
        listLimit: 1,
        ttlSeconds: 0,
        retry: { bogus: 1 },
        redisUrl: 'rediss://polluted.example:6380',
        tls: { ca: 'not a certificate' },
      });
      (async () => {
        const memory = new pkg.InMemoryConversationStore({ logger: silent });
        const chosen = pkg.createConversationStore({ logger: silent });
        const redis = new pkg.RedisConversationStore('rediss://127.0.0.1:1', { logger: silent });
        const lengths = [];
        for (const store of [memory, chosen]) {
          for (let i = 0; i < 3; i++) {
            const c = makeConversation({ userId: 'polluted-user', updatedAt: isoAt(i) });
            await store.set(c.externalId, c);
          }
          lengths.push((await store.listByUser('polluted-user')).length);
        }
        console.log(JSON.stringify({ lengths, chosenInMemory: chosen instanceof pkg.InMemoryConversationStore }));
        await Promise.all([memory.close(), chosen.close(), redis.close()]);
      })().catch((error) => { console.error(error); process.exit(1); });
    `;
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(child.status, 0, child.stderr);
    assert.deepEqual(JSON.parse(child.stdout), { lengths: [3, 3], chosenInMemory: true });
  });

  test('a logger that returns a rejected promise never becomes an unhandled rejection', async () => {
    const { spawnSync } = require('node:child_process');
    const script = `
      const { createConversationStore } = require(${JSON.stringify(require.resolve('..'))});
      const reject = async () => { throw new Error('async logger failed'); };
      const store = createConversationStore({ logger: { info: reject, warn: reject, error: reject } });
      setTimeout(() => store.close().then(() => console.log('survived')), 50);
    `;
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout.trim(), 'survived');
  });
});
