'use strict';
// Which TLS 1.3 suite is negotiated. Azure serves TLS 1.3 with AES-GCM only, and this CPU
// class has AES instructions: the bench's server must serve what Azure serves, and the store
// must pick AES-GCM where a server (like redis-server by default) follows the client's order.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { once } = require('node:events');
const tls = require('node:tls');

const { RedisConversationStore } = require('..');
const { startServer } = require('../bench/lib');
const { makeCerts, freePort, stopAll } = require('../support/redis');
const { silentLogger } = require('../support/observe');

const CEILING_MS = 20_000; // generous hang ceiling, not a speed claim

after(stopAll);

/**
 * A TLS handshake from Node with the given options; resolves the suite, or the error. The
 * socket stays open until `hold` settles (a server reads the client's Finished after Node
 * reports the handshake).
 */
async function handshake({ host, port, ca }, options, hold = Promise.resolve()) {
  const socket = tls.connect({ host, port, ca, ...options });
  try {
    await once(socket, 'secureConnect');
    const suite = socket.getCipher().standardName;
    await hold.catch(() => {});
    return suite;
  } catch (error) {
    return error;
  } finally {
    socket.destroy();
  }
}

test("the bench's redis-server serves TLS 1.3 with AES-GCM only, as Azure does", async (t) => {
  const bench = await startServer();
  t.after(() => bench.admin.disconnect());
  const server = { host: bench.server.host, port: bench.server.port, ca: bench.server.caPem };
  assert.equal(await handshake(server, { ciphers: 'TLS_AES_128_GCM_SHA256' }), 'TLS_AES_128_GCM_SHA256');
  assert.equal(await handshake(server, { ciphers: 'TLS_AES_256_GCM_SHA384' }), 'TLS_AES_256_GCM_SHA384');
  assert.ok(
    (await handshake(server, { ciphers: 'TLS_CHACHA20_POLY1305_SHA256' })) instanceof Error,
    'a ChaCha20-only client must be refused',
  );
  assert.ok((await handshake(server, { maxVersion: 'TLSv1.2' })) instanceof Error, 'a TLS 1.2 client must be refused');
});

/**
 * A real OpenSSL TLS 1.3 server offering ChaCha20 first and choosing, as redis-server does
 * by default (tls-prefer-server-ciphers no), the client's first suite it allows. It takes one
 * connection, and resolves the suite it negotiated (it speaks no RESP: the client then fails).
 */
async function startSuiteProbe() {
  const certs = await makeCerts();
  const port = await freePort();
  const suites = 'TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384';
  const child = spawn('openssl', [
    's_server',
    '-accept',
    `127.0.0.1:${port}`,
    '-cert',
    certs.certFile,
    '-key',
    certs.keyFile,
    '-tls1_3',
    '-ciphersuites',
    suites,
    '-naccept',
    '1',
  ]);
  let output = '';
  const negotiated = new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      output += chunk;
      const match = output.match(/CIPHER is (\S+)/);
      if (match) resolve(match[1]);
    });
    child.on('exit', () => reject(new Error(`openssl s_server exited before a handshake:\n${output}`)));
  });
  negotiated.catch(() => {});
  child.stderr.on('data', (chunk) => {
    output += chunk;
  });
  // s_server prints ACCEPT once it listens.
  await new Promise((resolve, reject) => {
    const onData = () => output.includes('ACCEPT') && resolve();
    child.stdout.on('data', onData);
    child.on('exit', () => reject(new Error(`openssl s_server did not start:\n${output}`)));
  });
  return { host: '127.0.0.1', port, ca: certs.caPem, negotiated, stop: () => child.kill() };
}

function withCeiling(promise, what) {
  let timer;
  const ceiling = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${CEILING_MS} ms`)), CEILING_MS);
  });
  return Promise.race([promise, ceiling]).finally(() => clearTimeout(timer));
}

test('the probe server follows the client: a client preferring ChaCha20 gets ChaCha20', async (t) => {
  const probe = await startSuiteProbe();
  t.after(probe.stop);
  const negotiated = withCeiling(probe.negotiated, 'openssl s_server');
  const ciphers = 'TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384';
  assert.equal(await handshake(probe, { ciphers }, negotiated), 'TLS_CHACHA20_POLY1305_SHA256');
  assert.equal(await negotiated, 'TLS_CHACHA20_POLY1305_SHA256');
});

test('the store prefers AES-GCM: against a server offering ChaCha20 first, it negotiates TLS_AES_256_GCM_SHA384', async (t) => {
  const probe = await startSuiteProbe();
  t.after(probe.stop);
  const store = new RedisConversationStore(`rediss://${probe.host}:${probe.port}`, {
    tls: { ca: probe.ca },
    connectTimeoutMs: 5000,
    commandTimeoutMs: 1000,
    logger: silentLogger,
  });
  t.after(() => store.close());
  store.ready().catch(() => {}); // no RESP behind the handshake: ready() fails, the suite is known
  assert.equal(await withCeiling(probe.negotiated, 'openssl s_server'), 'TLS_AES_256_GCM_SHA384');
});
