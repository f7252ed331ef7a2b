'use strict';
// Proves the harness itself: TLS servers, pause/kill/restart, and the proxy.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const tls = require('node:tls');
const { once } = require('node:events');
const { setTimeout: delay } = require('node:timers/promises');

const { makeCerts, makeUntrustedCa, startRedis, stopAll, redisCli, withLogOnFailure } = require('./redis');
const { startProxy } = require('./proxy');

after(stopAll);

test('a server answers PING over TLS and inspection commands return raw values', async () => {
  const server = await startRedis();
  assert.match(server.url, /^rediss:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(await server.cli('PING'), 'PONG');
  await server.cli('SET', 'conv:1', '{"a":1}', 'EX', '60');
  assert.equal(await server.cli('GET', 'conv:1'), '{"a":1}');
  assert.equal(await server.cli('TYPE', 'conv:1'), 'string');
  await assert.rejects(server.cli('LPUSH', 'conv:1', 'x'), /WRONGTYPE/);
});

test('a password server refuses a client without the password', async () => {
  const server = await startRedis({ password: 'secret' });
  assert.equal(server.url, `rediss://:secret@127.0.0.1:${server.port}`);
  const anonymous = await server.tryCli(['PING'], { password: null });
  assert.notEqual(anonymous.code, 0);
  assert.match(anonymous.stderr, /NOAUTH/);
  assert.equal(await server.cli('PING'), 'PONG');
});

test('a server requiring client certificates accepts the generated client cert', async () => {
  const server = await startRedis({ tlsAuthClients: true });
  assert.equal(await server.cli('PING'), 'PONG');
  const certs = { ...server.certs, clientCertFile: undefined };
  const anonymous = await redisCli({ port: server.port, certs, timeoutMs: 2000 }, ['PING']);
  assert.notEqual(anonymous.code, 0);
});

test('a client trusting only the untrusted CA refuses the server certificate', async () => {
  const server = await startRedis();
  const { caFile } = await makeUntrustedCa();
  const res = await redisCli({ port: server.port, certs: { ...server.certs, caFile } }, ['PING']);
  assert.notEqual(res.code, 0);
  assert.match(res.stderr, /certificate verify failed/);
});

test('a paused server does not answer, and answers again once resumed', async () => {
  const server = await startRedis();
  server.pause();
  const res = await server.tryCli(['PING'], { timeoutMs: 500 });
  assert.ok(res.timedOut, 'redis-cli should still be waiting when killed');
  assert.doesNotMatch(res.stdout, /PONG/);
  server.resume();
  assert.equal(await server.cli('PING'), 'PONG');
});

test('kill and restart keep the same port and answer again', async () => {
  const server = await startRedis({ password: 'pw' });
  const { port, pid } = server;
  await server.cli('SET', 'k', 'v');
  await server.kill();
  assert.equal((await server.tryCli(['PING'], { timeoutMs: 2000 })).code === 0, false);
  await server.restart();
  assert.equal(server.port, port);
  assert.notEqual(server.pid, pid);
  assert.equal(await server.cli('PING'), 'PONG');
  assert.equal(await server.cli('EXISTS', 'k'), '0', 'no persistence: --save "" and no AOF');
  await server.stop();
  await server.stop(); // idempotent
  await server.restart();
  assert.equal(await server.cli('PING'), 'PONG');
});

test('withLogOnFailure appends the server log to the error', async () => {
  const server = await startRedis();
  await assert.rejects(
    withLogOnFailure(server, async () => assert.fail('boom')),
    (err) => /boom/.test(err.message) && /redis-server .* log/.test(err.message) && /Ready to accept/.test(err.stack),
  );
});

test('makeCerts memoises one set per process', async () => {
  assert.equal(await makeCerts(), await makeCerts());
});

test('the proxy forwards, and once blackholed swallows bytes on new and open connections', async () => {
  const server = await startRedis();
  const proxy = await startProxy({ targetPort: server.port });
  try {
    const viaProxy = (timeoutMs) => redisCli({ port: proxy.port, certs: server.certs, timeoutMs }, ['PING']);
    assert.equal((await viaProxy()).stdout.trim(), 'PONG');

    // An open TLS connection that goes half-open: no reply, no close.
    const socket = tls.connect({ host: '127.0.0.1', port: proxy.port, ca: server.caPem });
    await once(socket, 'secureConnect');
    socket.write('PING\r\n');
    assert.equal(String((await once(socket, 'data'))[0]), '+PONG\r\n');
    let heard = false;
    socket.on('data', () => { heard = true; });
    socket.on('close', () => { heard = true; });

    proxy.blackhole();
    const res = await viaProxy(1000);
    assert.ok(res.timedOut, 'a new connection should hang, not fail');
    assert.doesNotMatch(res.stdout, /PONG/);

    socket.write('PING\r\n');
    await server.kill(); // not even the server's death gets through
    await delay(200); // nothing to await: we are proving silence
    assert.equal(heard, false);
    socket.destroy();

    await server.restart();
    proxy.restore();
    assert.equal((await viaProxy()).stdout.trim(), 'PONG');
  } finally {
    await proxy.close();
  }
  assert.equal(proxy.connections.size, 0);
});
