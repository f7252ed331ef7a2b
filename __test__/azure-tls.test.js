'use strict';
// TLS as Azure serves it, and trust like Node's. Azure offers TLS 1.3 with AES-GCM and, for
// TLS 1.2, only ECDHE-RSA with AES-CBC, which rustls does not implement: TLS 1.3 must work,
// and a server that leaves the store nothing in common must say so. By default the store
// trusts what Node trusts (its bundled roots, NODE_EXTRA_CA_CERTS) plus the system store, so
// a slim container without ca-certificates still verifies the cache's chain.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile, execFileSync } = require('node:child_process');
const fsp = require('node:fs/promises');
const os = require('node:os');
const path = require('node:path');

const { RedisConversationStore } = require('..');
const { startRedis, stopAll, makeRsaCerts, withLogOnFailure } = require('../support/redis');
const { makeConversation, persisted, uniqueId } = require('../support/conversations');
const { recordingLogger, storeOpener, timedRejection } = require('../support/observe');

const CONNECT_TIMEOUT_MS = 1500;
const COMMAND_TIMEOUT_MS = 1000;
const CEILING_MS = 15_000; // generous hang ceiling, not a speed claim
const CHILD_TIMEOUT_MS = 30_000;

// The suites Azure lists (Azure Cache for Redis and Azure Managed Redis TLS configuration
// pages), in OpenSSL's names for redis.conf.
const AZURE_TLS13_SUITES = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384';
const AZURE_TLS12_CIPHERS = 'ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES128-SHA256'; // *_CBC_SHA384, *_CBC_SHA256

let tls13Only;
let tls12CbcOnly;
let tls12Mutual; // TLS 1.2 only, requires a client certificate
let plain; // default server; its CA is in no store unless a test puts it there
let emptyStore; // { file, dir }: system roots emptied

before(async () => {
  const rsa = await makeRsaCerts();
  [tls13Only, tls12CbcOnly, plain, tls12Mutual] = await Promise.all([
    startRedis({ tls: { protocols: 'TLSv1.3', ciphersuites: AZURE_TLS13_SUITES } }),
    // The harness's own redis-cli (OpenSSL, which has CBC) PINGs it before this resolves: the
    // server does serve these suites.
    startRedis({ certs: rsa, tls: { protocols: 'TLSv1.2', ciphers: AZURE_TLS12_CIPHERS } }),
    startRedis(),
    startRedis({ tlsAuthClients: true, tls: { protocols: 'TLSv1.2' } }),
  ]);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'redis-store-no-system-roots-'));
  const file = path.join(dir, 'empty.pem');
  await fsp.writeFile(file, '');
  await fsp.mkdir(path.join(dir, 'certs'));
  emptyStore = { dir: path.join(dir, 'certs'), file, root: dir };
});
after(async () => {
  await stopAll();
  if (emptyStore) await fsp.rm(emptyStore.root, { recursive: true, force: true });
});

const openStore = storeOpener(RedisConversationStore, {
  connectTimeoutMs: CONNECT_TIMEOUT_MS,
  commandTimeoutMs: COMMAND_TIMEOUT_MS,
});

/**
 * Runs a store in a child Node with `env` (on top of a copy of this one's, minus the TLS
 * variables): ready, set, get. `late` is set in the child's process.env after start-up, as a
 * .env loader does: after the store's module loaded, or before it with `lateBeforeLoad`.
 * Resolves { ok, code?, message?, lines }.
 */
function runChild(url, env, { late = {}, lateBeforeLoad = false } = {}) {
  const setLate = `Object.assign(process.env, ${JSON.stringify(late)});`;
  const script = `
    ${lateBeforeLoad ? setLate : ''}
    const { RedisConversationStore } = require(${JSON.stringify(path.join(__dirname, '..'))});
    ${lateBeforeLoad ? '' : setLate}
    const lines = [];
    const logger = { info: (l) => lines.push(l), warn: (l) => lines.push(l), error: (l) => lines.push(l) };
    const store = new RedisConversationStore(process.argv[1], {
      connectTimeoutMs: ${CONNECT_TIMEOUT_MS}, commandTimeoutMs: ${COMMAND_TIMEOUT_MS}, logger,
    });
    const conversation = ${JSON.stringify(makeConversation())};
    (async () => {
      try {
        await store.ready();
        await store.set(conversation.externalId, conversation);
        const back = await store.get(conversation.externalId);
        console.log(JSON.stringify({ ok: back?.externalId === conversation.externalId, lines }));
      } catch (error) {
        console.log(JSON.stringify({ ok: false, code: error.code, message: error.message, lines }));
      } finally {
        await store.close();
      }
    })();
  `;
  const childEnv = { ...process.env };
  for (const name of ['NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'SSL_CERT_DIR']) delete childEnv[name];
  Object.assign(childEnv, env);
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['-e', script, url],
      { env: childEnv, timeout: CHILD_TIMEOUT_MS, encoding: 'utf8' },
      (error, stdout, stderr) => {
        const last = stdout.trim().split('\n').at(-1);
        try {
          resolve({ ...JSON.parse(last ?? ''), stderr });
        } catch {
          reject(new Error(`child failed (${error?.message}):\n${stdout}\n${stderr}`));
        }
      },
    );
  });
}

describe('TLS as Azure serves it', { concurrency: true }, () => {
  test('a server restricted to TLS 1.3 with AES-GCM suites only (as Azure offers): set and get work', async (t) => {
    await withLogOnFailure(tls13Only, async () => {
      const store = openStore(t, tls13Only.url, { tls: { ca: tls13Only.caPem } });
      await store.ready();
      const conversation = makeConversation();
      await store.set(conversation.externalId, conversation);
      assert.deepEqual(await store.get(conversation.externalId), persisted(conversation));
    });
  });

  test("a server restricted to TLS 1.2 with Azure's CBC suites: ready() and calls reject STORE_UNAVAILABLE saying the TLS handshake failed and why", async (t) => {
    await withLogOnFailure(tls12CbcOnly, async () => {
      const log = recordingLogger();
      const store = openStore(t, tls12CbcOnly.url, { tls: { ca: tls12CbcOnly.caPem }, logger: log.logger });
      const ready = await timedRejection(store.ready());
      const get = await timedRejection(store.get(uniqueId('cbc')));
      for (const { error, elapsedMs } of [ready, get]) {
        assert.equal(error.code, 'STORE_UNAVAILABLE', error.message);
        assert.ok(elapsedMs < CEILING_MS, `took ${elapsedMs} ms`);
        assert.match(error.message, /TLS handshake failed/);
        assert.match(error.message, /likely no TLS version and cipher suite in common/);
        assert.match(error.message, /client certificate/);
        assert.match(error.message, /no CBC/);
      }
      assert.ok(
        log.lines.some((line) => /\[STORE\] .*TLS handshake failed/.test(line)),
        `the failed attempts should be logged as TLS failures:\n${log.lines.join('\n')}`,
      );
    });
  });

  test('a TLS 1.2 server that requires a client certificate, none given: the message names that cause too', async (t) => {
    await withLogOnFailure(tls12Mutual, async () => {
      const store = openStore(t, tls12Mutual.url, { tls: { ca: tls12Mutual.caPem } });
      const { error, elapsedMs } = await timedRejection(store.ready());
      assert.equal(error.code, 'STORE_UNAVAILABLE', error.message);
      assert.ok(elapsedMs < CEILING_MS, `took ${elapsedMs} ms`);
      // OpenSSL answers HandshakeFailure here as when nothing is in common: both are said.
      assert.match(error.message, /TLS handshake failed: the server refused it \(HandshakeFailure alert\)/);
      assert.match(error.message, /requires a client certificate \(`tls\.cert` and `tls\.key`\)/);
      assert.match(error.message, /cipher suite in common/);
    });
  });
});

describe('trust like Node', { concurrency: true }, () => {
  test('system roots emptied, the test CA only in NODE_EXTRA_CA_CERTS: the store connects', async () => {
    await withLogOnFailure(plain, async () => {
      const result = await runChild(plain.url, {
        SSL_CERT_FILE: emptyStore.file,
        SSL_CERT_DIR: emptyStore.dir,
        NODE_EXTRA_CA_CERTS: plain.certs.caFile,
      });
      assert.equal(result.ok, true, JSON.stringify(result));
      assert.ok(!result.lines.some((line) => /NODE_EXTRA_CA_CERTS/.test(line)), result.lines.join('\n'));
    });
  });

  test('the same without NODE_EXTRA_CA_CERTS: STORE_UNAVAILABLE naming the certificate', async () => {
    const result = await runChild(plain.url, { SSL_CERT_FILE: emptyStore.file, SSL_CERT_DIR: emptyStore.dir });
    assert.equal(result.ok, false);
    assert.equal(result.code, 'STORE_UNAVAILABLE', result.message);
    assert.match(result.message, /certificate/i);
  });

  test('an unreadable NODE_EXTRA_CA_CERTS only warns, as in Node: the store starts and refuses the certificate', async () => {
    const missing = path.join(emptyStore.root, 'no-such-ca.pem');
    const result = await runChild(plain.url, {
      SSL_CERT_FILE: emptyStore.file,
      SSL_CERT_DIR: emptyStore.dir,
      NODE_EXTRA_CA_CERTS: missing,
    });
    assert.equal(result.code, 'STORE_UNAVAILABLE', result.message);
    assert.match(result.message, /certificate/i);
    const warning = result.lines.find((line) => line.includes('NODE_EXTRA_CA_CERTS'));
    assert.ok(warning, `expected a warning:\n${result.lines.join('\n')}`);
    assert.match(warning, /^\[STORE\] NODE_EXTRA_CA_CERTS \(.*no-such-ca\.pem\) could not be read \(ENOENT\)/);
  });

  test('NODE_EXTRA_CA_CERTS set after start-up (a .env loader) is ignored, as Node ignores it', async () => {
    const result = await runChild(
      plain.url,
      { SSL_CERT_FILE: emptyStore.file, SSL_CERT_DIR: emptyStore.dir },
      { late: { NODE_EXTRA_CA_CERTS: plain.certs.caFile } },
    );
    assert.equal(result.ok, false, JSON.stringify(result));
    assert.equal(result.code, 'STORE_UNAVAILABLE', result.message);
    assert.match(result.message, /certificate was refused: UnknownIssuer/);
  });

  test('a NODE_EXTRA_CA_CERTS that is a FIFO or a device is not read: a warning, and the store starts', async () => {
    const fifo = path.join(emptyStore.root, 'extra-ca.fifo');
    await new Promise((resolve, reject) =>
      execFile('mkfifo', [fifo], (error) => (error ? reject(error) : resolve(undefined))),
    );
    for (const file of [fifo, '/dev/zero']) {
      // Given at start-up, Node itself would block on the FIFO before any code runs; set after
      // start-up and before the store's module loads, the store takes it. A read of the FIFO
      // would wait for a writer forever: the child's timeout would fail this.
      const result = await runChild(
        plain.url,
        { SSL_CERT_FILE: emptyStore.file, SSL_CERT_DIR: emptyStore.dir },
        { late: { NODE_EXTRA_CA_CERTS: file }, lateBeforeLoad: true },
      );
      assert.equal(result.code, 'STORE_UNAVAILABLE', result.message);
      assert.match(result.message, /certificate/i);
      const warning = result.lines.find((line) => line.includes('NODE_EXTRA_CA_CERTS'));
      assert.ok(warning, `expected a warning:\n${result.lines.join('\n')}`);
      assert.match(warning, /could not be read \(not a regular file\)/);
    }
  });

  test('the system store is still trusted: the test CA only in SSL_CERT_FILE connects', async () => {
    const result = await runChild(plain.url, { SSL_CERT_FILE: plain.certs.caFile, SSL_CERT_DIR: emptyStore.dir });
    assert.equal(result.ok, true, JSON.stringify(result));
  });
});

/** Whether this machine lets an unprivileged process have a network namespace of its own. */
function canIsolateNetwork() {
  try {
    execFileSync('unshare', ['-rn', 'true'], { stdio: 'ignore', timeout: CHILD_TIMEOUT_MS });
    return true;
  } catch {
    return false;
  }
}

describe('Azure Managed Redis default port', () => {
  // The stores below name real Azure hosts, and a store connects as soon as it is built: the
  // child runs in a network namespace of its own (`unshare -rn`, no interface up), so no name
  // is looked up outside this machine. The address is logged before connecting.
  const isolated = canIsolateNetwork();
  test('a *.redis.azure.net URL without a port means port 10000; any other host 6380 (no network)', {
    skip: isolated ? false : 'unshare -rn is not allowed here',
  }, async () => {
    const cases = [
      ['rediss://cache.westeurope.redis.azure.net', 'cache.westeurope.redis.azure.net:10000'],
      ['rediss://Cache.WestEurope.Redis.Azure.Net/0', 'cache.westeurope.redis.azure.net:10000'],
      ['rediss://cache.redis.cache.windows.net', 'cache.redis.cache.windows.net:6380'],
      ['rediss://cache.redis.azure.net.example', 'cache.redis.azure.net.example:6380'],
    ];
    const script = `
        const { createConversationStore } = require(${JSON.stringify(path.join(__dirname, '..'))});
        (async () => {
          const out = [];
          for (const url of ${JSON.stringify(cases.map(([url]) => url))}) {
            const lines = [];
            const logger = { info: (l) => lines.push(l), warn: (l) => lines.push(l), error: (l) => lines.push(l) };
            const store = createConversationStore({ redisUrl: url, logger, connectTimeoutMs: 1000 });
            await store.close();
            out.push(lines);
          }
          console.log(JSON.stringify(out));
        })();
      `;
    const stdout = await new Promise((resolve, reject) =>
      execFile(
        'unshare',
        ['-rn', process.execPath, '-e', script],
        { timeout: CHILD_TIMEOUT_MS, encoding: 'utf8' },
        (error, out, err) => (error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out)),
      ),
    );
    const logged = JSON.parse(stdout.trim().split('\n').at(-1) ?? '[]');
    for (const [i, [url, address]] of cases.entries()) {
      assert.ok(
        logged[i]?.includes(`[STORE] using Redis at ${address}`),
        `${url}: expected ${address} in\n${(logged[i] ?? []).join('\n')}`,
      );
    }
  });
});
