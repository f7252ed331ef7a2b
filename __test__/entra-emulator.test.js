'use strict';
// The Entra ID emulator of the harness, checked with a raw client (ioredis, and bare RESP where
// ioredis cannot speak it): it must behave as Azure does, or the store's tests prove nothing.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { once } = require('node:events');
const tls = require('node:tls');
const { setTimeout: delay } = require('node:timers/promises');
const Redis = require('ioredis');

const { makeCerts, stopAll } = require('../support/redis');
const { stopAllClusters } = require('../support/cluster');
const { createTokenIssuer, startEntraRedis, startEntraCluster } = require('../support/entra-emulator');
const resp = require('../support/resp');

const CEILING_MS = 15_000; // a hang ceiling, not a speed claim

let certs;
let entra; // one real redis-server behind one emulator

before(async () => {
  certs = await makeCerts();
  entra = await startEntraRedis({ certs });
});
after(async () => {
  await entra?.stop();
  await stopAllClusters();
  await stopAll();
});

/** A raw ioredis client on the emulator, unauthenticated, closed when test `t` ends. */
async function rawClient(t, { port = entra.emulator.port, host = '127.0.0.1' } = {}) {
  const client = new Redis({
    host,
    port,
    tls: { ca: certs.caPem, servername: 'localhost' },
    lazyConnect: true,
    enableReadyCheck: false, // its INFO would be refused before AUTH
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null, // a closed connection stays closed: the tests watch it
  });
  client.on('error', () => {});
  t.after(() => client.disconnect());
  await client.connect();
  return client;
}

const refusal = (promise) =>
  promise.then(
    () => assert.fail('expected a refusal'),
    (err) => err.message,
  );

test('a token the emulator issued, unexpired, for its oid: accepted; the server then answers', async (t) => {
  const before = { ...entra.stats };
  const client = await rawClient(t);
  const { token, oid } = await entra.issuer.issue({ lifetimeMs: 10_000 });
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'JWT-shaped');
  assert.equal(await client.auth(oid, token), 'OK');
  assert.equal(await client.set('emu:accepted', 'yes'), 'OK');
  assert.equal(await entra.server.cli('GET', 'emu:accepted'), 'yes', 'the write reached the real server');
  assert.equal(entra.stats.auths, before.auths + 1);
  assert.equal(entra.stats.accepted, before.accepted + 1);
});

test('no AUTH, an expired token, a foreign token, another oid: refused as Redis refuses, nothing written', async (t) => {
  const client = await rawClient(t);
  assert.match(await refusal(client.set('emu:refused', 'x')), /^NOAUTH /);

  const expired = await entra.issuer.issue({ lifetimeMs: 1 });
  await delay(5); // past its one millisecond
  assert.match(await refusal(client.auth(expired.oid, expired.token)), /^WRONGPASS /);

  const foreign = await createTokenIssuer({ oid: entra.issuer.oid }).issue({ lifetimeMs: 10_000 });
  assert.match(await refusal(client.auth(foreign.oid, foreign.token)), /^WRONGPASS /, 'signed by another issuer');

  const mine = await entra.issuer.issue({ lifetimeMs: 10_000 });
  assert.match(await refusal(client.auth('someone-else', mine.token)), /^WRONGPASS /, 'username is not its oid');
  assert.match(await refusal(client.auth(mine.token)), /^WRONGPASS /, 'no username: the default user');

  assert.match(await refusal(client.set('emu:refused', 'x')), /^NOAUTH /, 'still not authenticated');
  assert.equal(await entra.server.cli('EXISTS', 'emu:refused'), '0');
});

test('the connection is closed when the token it last authenticated with expires', async (t) => {
  const client = await rawClient(t);
  const lifetimeMs = 1500;
  const before = entra.stats.expiredClosed;
  const { token, oid, expiresAt } = await entra.issuer.issue({ lifetimeMs });
  await client.auth(oid, token);
  assert.equal(await client.ping(), 'PONG');
  const closed = once(client, 'end');
  await Promise.race([closed, delay(CEILING_MS).then(() => assert.fail('not closed at expiry'))]);
  assert.ok(Date.now() >= expiresAt, 'not before its token expired');
  assert.equal(entra.stats.expiredClosed, before + 1);
});

test('a re-AUTH with a fresh token extends the connection to the fresh token expiry', async (t) => {
  const client = await rawClient(t);
  const first = await entra.issuer.issue({ lifetimeMs: 1500 });
  await client.auth(first.oid, first.token);
  const second = await entra.issuer.issue({ lifetimeMs: 4000 });
  const before = { ...entra.stats };
  await client.auth(second.oid, second.token);
  assert.equal(entra.stats.reauths, before.reauths + 1);

  const closed = once(client, 'end').then(() => Date.now());
  await delay(first.expiresAt + 500 - Date.now()); // past the first token: a point in time, no event to await
  assert.equal(await client.ping(), 'PONG', 'alive past the first token');
  const closedAt = await Promise.race([closed, delay(CEILING_MS).then(() => assert.fail('never closed'))]);
  assert.ok(closedAt >= second.expiresAt, 'closed at the second token, not before');
  assert.equal(entra.stats.accepted, before.accepted, 'no connection opened meanwhile');
});

test('pipelined commands, AUTHs among them, get their replies in order, large ones too', async (t) => {
  const client = await rawClient(t);
  const { token, oid } = await entra.issuer.issue({ lifetimeMs: 20_000 });
  const big = 'x'.repeat(200_000); // spans many TLS records
  const pipeline = client.pipeline();
  const expected = [];
  pipeline.auth(oid, token);
  expected.push([null, 'OK']);
  for (let i = 0; i < 200; i++) {
    const value = i % 50 === 0 ? big + i : `v${i}`;
    pipeline.set(`emu:pipe:${i}`, value);
    expected.push([null, 'OK']);
    if (i % 7 === 0) {
      pipeline.auth(oid, i % 14 === 0 ? token : 'not-a-token');
      expected.push(i % 14 === 0 ? [null, 'OK'] : [/^WRONGPASS /]);
    }
    pipeline.get(`emu:pipe:${i}`);
    expected.push([null, value]);
    pipeline.incr('emu:pipe:count');
    expected.push([null, i + 1]);
  }
  const results = await pipeline.exec();
  assert.equal(results.length, expected.length);
  for (const [i, [err, value]] of results.entries()) {
    const [wantErr, wantValue] = expected[i];
    if (wantErr) assert.match(err?.message ?? '', wantErr, `reply ${i}`);
    else {
      assert.equal(err, null, `reply ${i}: ${err?.message}`);
      assert.equal(value, wantValue, `reply ${i}`);
    }
  }
});

test('HELLO 3 AUTH: authenticates and switches to RESP3; with a bad token it is refused', async () => {
  const { token, oid } = await entra.issuer.issue({ lifetimeMs: 10_000 });
  const socket = tls.connect({
    host: '127.0.0.1',
    port: entra.emulator.port,
    ca: certs.caPem,
    servername: 'localhost',
  });
  socket.on('error', () => {});
  try {
    await once(socket, 'secureConnect');
    let buffered = Buffer.alloc(0);
    const replies = [];
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (let end = resp.replyEnd(buffered, 0); end > 0; end = resp.replyEnd(buffered, 0)) {
        replies.push(buffered.subarray(0, end).toString());
        buffered = buffered.subarray(end);
      }
    });
    socket.write(
      Buffer.concat([
        resp.encodeRequest(['HELLO', '3']),
        resp.encodeRequest(['HELLO', '3', 'AUTH', oid, 'bad-token']),
        resp.encodeRequest(['HELLO', '3', 'AUTH', oid, token, 'SETNAME', 'emu-test']),
        resp.encodeRequest(['CLIENT', 'GETNAME']),
        resp.encodeRequest(['HGETALL', 'emu:no-such-hash']),
      ]),
    );
    const deadline = Date.now() + CEILING_MS;
    while (replies.length < 5 && Date.now() < deadline) await once(socket, 'data');
    assert.match(replies[0], /^-NOAUTH HELLO must be called/);
    assert.match(replies[1], /^-WRONGPASS /);
    assert.match(replies[2], /^%\d+\r\n/, 'a RESP3 map: the server took HELLO 3');
    assert.equal(replies[3], '$8\r\nemu-test\r\n', 'SETNAME reached the server');
    assert.equal(replies[4], '%0\r\n', 'RESP3 from now on');
  } finally {
    socket.destroy();
  }
});

test('cluster: every node announces its own emulator, and a cluster client works through them', async (t) => {
  const entraCluster = await startEntraCluster({ certs });
  t.after(() => entraCluster.stop());
  const ports = new Set(entraCluster.emulators.map((e) => e.port));
  const slots = await entraCluster.cluster.nodes[0].cli('CLUSTER', 'SLOTS');
  const announced = slots.split('\n').filter((line) => /^\d+$/.test(line) && Number(line) > 16383);
  assert.ok(announced.length >= 3 && announced.every((p) => ports.has(Number(p))), `CLUSTER SLOTS: ${slots}`);

  const { token, oid } = await entraCluster.issuer.issue({ lifetimeMs: 20_000 });
  const client = new Redis.Cluster([{ host: '127.0.0.1', port: entraCluster.emulators[0].port }], {
    redisOptions: { tls: { ca: certs.caPem, servername: 'localhost' }, username: oid, password: token },
    enableOfflineQueue: true,
  });
  client.on('error', () => {});
  t.after(() => client.disconnect());
  for (let i = 0; i < 30; i++) await client.set(`emu:cluster:${i}`, String(i));
  for (let i = 0; i < 30; i++) assert.equal(await client.get(`emu:cluster:${i}`), String(i));
  for (const emulator of entraCluster.emulators) {
    assert.ok(emulator.stats.auths >= 1, `emulator :${emulator.port} authenticated a connection`);
  }
});
