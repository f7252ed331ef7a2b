'use strict';
// TLS and authentication: certificates are always verified, passwords, ACL users and client
// certificates work, and a refusal is STORE_UNAVAILABLE in time with no credential shown.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const { RedisConversationStore } = require('..');
const { startRedis, stopAll, makeUntrustedCa, withLogOnFailure } = require('../support/redis');
const { makeConversation, persisted, uniqueId } = require('../support/conversations');
const { recordingLogger, silentLogger, storeOpener, timedRejection } = require('../support/observe');

const PASSWORD = 'c0rrect-h0rse-battery';
const WRONG_PASSWORD = 'wr0ng-p4ssw0rd-staple';
const ACL_USER = 'app';
const ACL_PASSWORD = 's3cret-acl-pw';
const CONNECT_TIMEOUT_MS = 1500;
const COMMAND_TIMEOUT_MS = 500;
const CEILING_MS = 10_000; // generous: the deadlines above are what is promised

let plain; // TLS, no auth
let withPassword; // requirepass
let mutualTls; // tls-auth-clients yes

before(async () => {
  [plain, withPassword, mutualTls] = await Promise.all([
    startRedis(),
    startRedis({ password: PASSWORD }),
    startRedis({ tlsAuthClients: true }),
  ]);
  await withPassword.cli('ACL', 'SETUSER', ACL_USER, 'on', `>${ACL_PASSWORD}`, '~*', '+@all');
});
after(stopAll);

/** A store closed when test `t` ends (the tests run concurrently: no shared cleanup list). */
const openStore = storeOpener(RedisConversationStore, {
  connectTimeoutMs: CONNECT_TIMEOUT_MS,
  commandTimeoutMs: COMMAND_TIMEOUT_MS,
});

async function assertWorks(store) {
  await store.ready();
  assert.equal(store.status, 'ready');
  const conversation = makeConversation();
  const id = conversation.externalId;
  await store.set(id, conversation);
  assert.deepEqual(await store.get(id), persisted(conversation));
}

/** ready() and get() both reject STORE_UNAVAILABLE within their deadlines; returns both errors. */
async function assertRefused(store, messagePattern) {
  const ready = await timedRejection(store.ready());
  assert.equal(ready.error.code, 'STORE_UNAVAILABLE', ready.error.message);
  assert.ok(ready.elapsedMs < CEILING_MS, `ready() took ${ready.elapsedMs} ms`);
  assert.match(ready.error.message, messagePattern);
  assert.notEqual(store.status, 'ready');

  const get = await timedRejection(store.get(uniqueId('refused')));
  assert.equal(get.error.code, 'STORE_UNAVAILABLE', get.error.message);
  assert.ok(get.elapsedMs < COMMAND_TIMEOUT_MS + 2000, `get() took ${get.elapsedMs} ms`);
  return [ready.error, get.error];
}

// Most tests wait out a connect deadline; they use separate stores, so they wait together.
describe('TLS and authentication', { concurrency: true }, () => {
  // ---------------------------------------------------------------- certificates

  test('a server certificate signed by a CA the store does not trust: ready() and calls reject STORE_UNAVAILABLE naming the certificate', async (t) => {
    await withLogOnFailure(plain, async () => {
      const untrusted = await makeUntrustedCa();
      const store = openStore(t, plain.url, { tls: { ca: untrusted.caPem } });
      await assertRefused(store, /certificate/i);
    });
  });

  test("without tls.ca only what Node and the system trust is trusted: the test server's own CA is refused", async (t) => {
    await withLogOnFailure(plain, async () => {
      const store = openStore(t, plain.url, {});
      await assertRefused(store, /certificate/i);
    });
  });

  test('tls.ca given as a Buffer is trusted like PEM text', async (t) => {
    await withLogOnFailure(plain, async () => {
      await assertWorks(openStore(t, plain.url, { tls: { ca: Buffer.from(plain.caPem) } }));
    });
  });

  // ---------------------------------------------------------------- passwords and ACL users

  test('the right password in the URL authenticates', async (t) => {
    await withLogOnFailure(withPassword, async () => {
      const log = recordingLogger();
      await assertWorks(openStore(t, withPassword.url, { tls: { ca: withPassword.caPem }, logger: log.logger }));
      assert.ok(log.lines.length > 0, 'the store should have logged its connection');
      for (const line of log.lines) assert.ok(!line.includes(PASSWORD), `a log line shows the password: ${line}`);
    });
  });

  test('a wrong password: ready() rejects STORE_UNAVAILABLE, and no error or log line shows the password', async (t) => {
    await withLogOnFailure(withPassword, async () => {
      const log = recordingLogger();
      const url = `rediss://:${WRONG_PASSWORD}@127.0.0.1:${withPassword.port}`;
      const store = openStore(t, url, { tls: { ca: withPassword.caPem }, logger: log.logger });
      const errors = await assertRefused(store, /auth/i);
      await store.close();
      assert.ok(log.lines.length > 0, 'the refused attempts should have been logged');
      for (const text of [...errors.map((e) => `${e.message}\n${e.stack}`), ...log.lines]) {
        assert.ok(!text.includes(WRONG_PASSWORD), `the password shows in: ${text}`);
      }
    });
  });

  test('no password for a server that requires one: ready() rejects STORE_UNAVAILABLE rather than report ready', async (t) => {
    await withLogOnFailure(withPassword, async () => {
      const store = openStore(t, `rediss://127.0.0.1:${withPassword.port}`, { tls: { ca: withPassword.caPem } });
      await assertRefused(store, /auth/i);
    });
  });

  test('an ACL user name and password in the URL authenticate as that user', async (t) => {
    await withLogOnFailure(withPassword, async () => {
      const url = `rediss://${ACL_USER}:${ACL_PASSWORD}@127.0.0.1:${withPassword.port}`;
      const store = openStore(t, url, { tls: { ca: withPassword.caPem } });
      await assertWorks(store);
      const clients = await withPassword.cli('CLIENT', 'LIST');
      assert.match(clients, new RegExp(`\\buser=${ACL_USER}\\b`), 'the store should be logged in as the ACL user');
    });
  });

  test('an ACL user with the wrong password is refused with STORE_UNAVAILABLE', async (t) => {
    await withLogOnFailure(withPassword, async () => {
      const url = `rediss://${ACL_USER}:${WRONG_PASSWORD}@127.0.0.1:${withPassword.port}`;
      const [readyError] = await assertRefused(openStore(t, url, { tls: { ca: withPassword.caPem } }), /auth/i);
      assert.ok(!readyError.message.includes(WRONG_PASSWORD), readyError.message);
    });
  });

  // ---------------------------------------------------------------- client certificates

  test('mutual TLS: with the client certificate and key the store connects and works', async (t) => {
    await withLogOnFailure(mutualTls, async () => {
      const { certs } = mutualTls;
      const store = openStore(t, mutualTls.url, {
        tls: { ca: mutualTls.caPem, cert: certs.clientCertPem, key: certs.clientKeyPem },
      });
      await assertWorks(store);
    });
  });

  test('a client certificate without its key, or a key without its certificate, is refused at construction: STORE_INVALID_CONFIG', async () => {
    // Real PEM, the very pair that works above: a refusal can only be for the missing half.
    const { clientCertPem: cert, clientKeyPem: key } = mutualTls.certs;
    const build = (tls) => () =>
      new RedisConversationStore(mutualTls.url, { tls: { ca: mutualTls.caPem, ...tls }, logger: silentLogger });
    const both = build({ cert, key })();
    await both.close();
    for (const half of [{ cert }, { key }, { cert: Buffer.from(cert) }, { key: Buffer.from(key) }]) {
      assert.throws(
        build(half),
        (error) => {
          assert.equal(error.code, 'STORE_INVALID_CONFIG', error.message);
          assert.match(error.message, /tls: cert and key must be given together/);
          assert.ok(!error.message.includes('PRIVATE KEY'), 'the key must not be echoed');
          return true;
        },
        `only ${Object.keys(half)[0]}`,
      );
    }
  });

  test('mutual TLS: the client key as SEC1 (BEGIN EC PRIVATE KEY) or PKCS#8 works alike, with the chain after the leaf', async (t) => {
    await withLogOnFailure(mutualTls, async () => {
      const { clientCertPem: cert, clientKeyPem: key, caPem } = mutualTls.certs;
      const keyObject = crypto.createPrivateKey(key);
      for (const [what, tls] of [
        ['SEC1', { cert, key: keyObject.export({ type: 'sec1', format: 'pem' }) }],
        ['PKCS#8', { cert, key: keyObject.export({ type: 'pkcs8', format: 'pem' }) }],
        ['the leaf then its CA', { cert: `${cert}${caPem}`, key }],
      ]) {
        const store = openStore(t, mutualTls.url, { tls: { ca: mutualTls.caPem, ...tls } });
        await assertWorks(store).catch((error) => assert.fail(`${what}: ${error.message}`));
      }
    });
  });

  test('a client certificate or key that could never be presented is refused at construction: STORE_INVALID_CONFIG, the PEM not echoed', async () => {
    const { clientCertPem: cert, clientKeyPem: key, keyFile: serverKeyFile, caPem } = mutualTls.certs;
    const serverKey = await require('node:fs/promises').readFile(serverKeyFile, 'utf8');
    // Well-formed PEM whose content is not what its label says.
    const junk = (label) =>
      `-----BEGIN ${label}-----\n${Buffer.from('not DER at all, 32 bytes of it!!').toString('base64')}\n-----END ${label}-----\n`;
    const cases = [
      ['a key that is not DER', { cert, key: junk('PRIVATE KEY') }, /^tls\.key: /],
      [
        'a key of the wrong base64',
        { cert, key: '-----BEGIN PRIVATE KEY-----\n%%%%\n-----END PRIVATE KEY-----\n' },
        /^tls\.key: /,
      ],
      ['a certificate that is not DER', { cert: junk('CERTIFICATE'), key }, /^tls\.cert: /],
      [
        'the CA certificate in place of the client one',
        { cert: caPem, key },
        /tls\.key is not the key of the certificate/,
      ],
      [
        'the server key with the client certificate',
        { cert, key: serverKey },
        /tls\.key is not the key of the certificate/,
      ],
      ['a mismatched pair as Buffers', { cert: Buffer.from(cert), key: Buffer.from(serverKey) }, /is not the key/],
    ];
    for (const [what, tls, message] of cases) {
      assert.throws(
        () => new RedisConversationStore(mutualTls.url, { tls: { ca: mutualTls.caPem, ...tls }, logger: silentLogger }),
        (error) => {
          assert.equal(error.code, 'STORE_INVALID_CONFIG', `${what}: ${error.message}`);
          assert.match(error.message, message, what);
          assert.ok(!/BEGIN|END|[A-Za-z0-9+/]{40}/.test(error.message), `${what}: the PEM echoed: ${error.message}`);
          return true;
        },
        what,
      );
    }
  });

  test('mutual TLS: without a client certificate ready() rejects STORE_UNAVAILABLE', async (t) => {
    await withLogOnFailure(mutualTls, async () => {
      const store = openStore(t, mutualTls.url, { tls: { ca: mutualTls.caPem } });
      await assertRefused(store, /certificate/i);
    });
  });
});
