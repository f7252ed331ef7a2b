'use strict';
// The exact Redis layout of docs/DESIGN.md ("Storage layout"), shared with the ioredis store this
// package replaces: inspected from a second connection with redis-cli, never through the store.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const { RedisConversationStore } = require('..');
const { startRedis, stopAll, withLogOnFailure } = require('../support/redis');
const { makeConversation, persisted, isoAt, uniqueId } = require('../support/conversations');
const { recordingLogger, silentLogger } = require('../support/observe');
const { startProxy } = require('../support/proxy');
const { checkTrimStartsPastListLimit } = require('../support/contract');

const DEFAULT_TTL_SECONDS = 86_400;
const INDEX_TTL_MARGIN_SECONDS = 3600;
const LOG_WAIT_MS = 5000;

let server;
const opened = [];

before(async () => {
  server = await startRedis();
});
afterEach(() => Promise.all(opened.splice(0).map((store) => store.close())));
after(stopAll);

async function openStore({ proxyPort, ...options } = {}) {
  // Through a proxy on loopback: the server's certificate names 127.0.0.1 too.
  const url = proxyPort === undefined ? server.url : `rediss://127.0.0.1:${proxyPort}`;
  const store = new RedisConversationStore(url, {
    tls: { ca: server.caPem },
    logger: silentLogger,
    ...options,
  });
  opened.push(store);
  await store.ready();
  return store;
}

/** A prefix of its own, so each test's keys are its own. */
function uniquePrefix() {
  return `${uniqueId('layout')}:`;
}

const it = (title, fn) => test(title, () => withLogOnFailure(server, fn));

function assertWithin(value, low, high, what) {
  const n = Number(value);
  assert.ok(n > low && n <= high, `${what}: ${value} not in (${low}, ${high}]`);
}

function corruptRecord(key) {
  return (error) => {
    assert.equal(error.code, 'STORE_CORRUPT_RECORD', error.message);
    assert.ok(error.message.includes(key), `the message should name ${key}: ${error.message}`);
    return true;
  };
}

// ---------------------------------------------------------------- keys, value, TTL, score

it('set writes conv:<id> (a string) and user:<userId>:conversations (a sorted set), and nothing else', async () => {
  const store = await openStore();
  const userId = uniqueId('user');
  const conversation = makeConversation({ userId });
  const id = conversation.externalId;
  const keysBefore = Number(await server.cli('DBSIZE'));
  await store.set(id, conversation);
  assert.equal(await server.cli('TYPE', `conv:${id}`), 'string');
  assert.equal(await server.cli('TYPE', `user:${userId}:conversations`), 'zset');
  assert.equal(
    await server.cli('ZRANGE', `user:${userId}:conversations`, 0, -1, 'WITHSCORES'),
    `${id}\n${Date.parse(conversation.updatedAt)}`,
  );
  assert.equal(Number(await server.cli('DBSIZE')), keysBefore + 2);
});

it('by default conv:<id> expires in 86400 s and the user index in 86400 + 3600 s', async () => {
  const store = await openStore();
  const conversation = makeConversation({ userId: uniqueId('user') });
  const id = conversation.externalId;
  await store.set(id, conversation);
  assertWithin(
    await server.cli('TTL', `conv:${id}`),
    DEFAULT_TTL_SECONDS - 5,
    DEFAULT_TTL_SECONDS,
    'TTL of the conversation',
  );
  const indexTtl = DEFAULT_TTL_SECONDS + INDEX_TTL_MARGIN_SECONDS;
  assertWithin(
    await server.cli('TTL', `user:${conversation.userId}:conversations`),
    indexTtl - 5,
    indexTtl,
    'TTL of the index',
  );
});

it('keyPrefix goes in front of both keys, and a store with another prefix sees nothing', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const conversation = makeConversation({ userId: uniqueId('user') });
  const id = conversation.externalId;
  const indexKey = `user:${conversation.userId}:conversations`;
  await store.set(id, conversation);
  assert.equal(await server.cli('EXISTS', `${prefix}conv:${id}`), '1');
  assert.equal(await server.cli('EXISTS', `${prefix}${indexKey}`), '1');
  assert.equal(await server.cli('EXISTS', `conv:${id}`), '0');
  assert.equal(await server.cli('EXISTS', indexKey), '0');

  const other = await openStore({ keyPrefix: uniquePrefix() });
  assert.equal(await other.get(id), undefined);
  assert.deepEqual(await other.listByUser(conversation.userId), []);
  assert.deepEqual(await store.get(id), persisted(conversation));
});

it('the stored value is exactly JSON.stringify of the conversation minus sdkConversationRef', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const sdkConversationRef = { socket: 'live' };
  sdkConversationRef.self = sdkConversationRef;
  // Key order of the caller's object, unknown fields, timestamps as given, non-ASCII text.
  const { status, ...rest } = makeConversation({
    updatedAt: '2026-02-22T10:00:07.5Z',
    messages: [{ text: 'Grüße "quoted" \\ \n 🎉 日本語', reactions: ['👍'] }, {}],
    futureField: { nested: [1, null, 'x'] },
  });
  const conversation = { status, sdkConversationRef, ...rest };
  const id = conversation.externalId;
  await store.set(id, conversation);
  const { sdkConversationRef: _live, ...expected } = conversation;
  assert.equal(await server.cli('GET', `${prefix}conv:${id}`), JSON.stringify(expected));
});

it('a document of more than a million UTF-16 units (copied in two passes) is stored exactly too', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  // 1.35 M units, 3.5 MB of UTF-8: three- and four-byte characters, under maxRecordBytes.
  const conversation = makeConversation({ messages: [{ text: '日本語😀'.repeat(270_000) }] });
  const json = JSON.stringify(conversation);
  assert.ok(json.length > 1 << 20 && Buffer.byteLength(json) < 4_194_304);
  await store.set(conversation.externalId, conversation);
  const key = `${prefix}conv:${conversation.externalId}`;
  const stored = await server.cli('EVAL', "return redis.sha1hex(redis.call('GET', KEYS[1]))", '1', key);
  assert.equal(stored, createHash('sha1').update(json).digest('hex'));
});

it('documents at the edges of the one-pass copy (its shrink, a million units) are stored exactly', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const conversation = makeConversation();
  const base = JSON.stringify({ ...conversation, messages: [] }).length;
  // The JSON's length in UTF-16 units is `base` plus the text's plus the message's own JSON.
  const messageOverhead = JSON.stringify({ ...conversation, messages: [{ text: '' }] }).length - base;
  const sized = (units, tail) => ({
    ...conversation,
    messages: [{ text: 'a'.repeat(units - base - messageOverhead - tail.length) + tail }],
  });
  const cases = [
    ['ASCII, 32,767 units: 65,535 bytes unused, kept', 32_767, ''],
    ['ASCII, 32,768 units: shrunk', 32_768, ''],
    ['ASCII, 100,000 units: shrunk', 100_000, ''],
    ['1,048,576 units ending in a surrogate pair: one pass', 1 << 20, '😀'],
    ['1,048,577 units: two passes', (1 << 20) + 1, 'é'],
  ];
  for (const [name, units, tail] of cases) {
    const value = sized(units, tail);
    const json = JSON.stringify(value);
    assert.equal(json.length, units, name);
    await store.set(value.externalId, value);
    const key = `${prefix}conv:${value.externalId}`;
    const stored = await server.cli('EVAL', "return redis.sha1hex(redis.call('GET', KEYS[1]))", '1', key);
    assert.equal(stored, createHash('sha1').update(json).digest('hex'), name);
  }
});

it('the index score is updatedAt as epoch milliseconds, whatever the fraction digits', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const userId = uniqueId('user');
  const updatedAts = [
    '2026-02-22T10:00:00.123Z',
    '2026-02-22T10:00:07Z',
    '2026-02-22T10:00:00.5Z',
    '2026-02-22T10:00:00.987654Z',
    '1999-12-31T23:59:59.999Z',
  ];
  for (const updatedAt of updatedAts) {
    const id = uniqueId('score');
    await store.set(id, makeConversation({ externalId: id, userId, updatedAt }));
    assert.equal(
      await server.cli('ZSCORE', `${prefix}user:${userId}:conversations`, id),
      String(Date.parse(updatedAt)),
      `score of ${updatedAt}`,
    );
  }
});

it('ttlSeconds sets both TTLs, and a second set resets both', async () => {
  const prefix = uniquePrefix();
  const ttlSeconds = 1000;
  const store = await openStore({ keyPrefix: prefix, ttlSeconds });
  const conversation = makeConversation({ userId: uniqueId('user') });
  const id = conversation.externalId;
  const conversationKey = `${prefix}conv:${id}`;
  const indexKey = `${prefix}user:${conversation.userId}:conversations`;
  const indexTtl = ttlSeconds + INDEX_TTL_MARGIN_SECONDS;

  await store.set(id, conversation);
  assertWithin(await server.cli('TTL', conversationKey), ttlSeconds - 5, ttlSeconds, 'TTL of the conversation');
  assertWithin(await server.cli('TTL', indexKey), indexTtl - 5, indexTtl, 'TTL of the index');

  await server.cli('EXPIRE', conversationKey, 100);
  await server.cli('EXPIRE', indexKey, 100);
  await store.set(id, conversation);
  assertWithin(
    await server.cli('TTL', conversationKey),
    ttlSeconds - 5,
    ttlSeconds,
    'TTL of the conversation after a second set',
  );
  assertWithin(await server.cli('TTL', indexKey), indexTtl - 5, indexTtl, 'TTL of the index after a second set');
});

/** The SHA-1 Redis knows a script by, from the file the store embeds. */
function scriptSha(name) {
  const lua = fs.readFileSync(path.join(__dirname, '..', 'src', 'store', 'scripts', name), 'utf8');
  return createHash('sha1').update(lua).digest('hex');
}

it('set is one round trip: MULTI, SET of a pending key, scripts/set.lua renaming it onto the record, EXEC', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const conversation = makeConversation({ userId: uniqueId('user') });
  const id = conversation.externalId;
  const recordKey = `${prefix}conv:${id}`;
  const indexKey = `${prefix}user:${conversation.userId}:conversations`;
  await store.set(id, conversation); // the script is cached from here on
  const monitor = await startMonitor();
  try {
    await store.set(id, { ...conversation, status: 'completed' });
    const exec = await monitor.waitFor((line) => commandOf(line) === 'EXEC');
    const client = clientOf(exec);
    const sent = monitor.lines.filter((line) => clientOf(line) === client);
    assert.deepEqual(sent.map(commandOf), ['MULTI', 'SET', 'EVALSHA', 'EXEC'], sent.join('\n'));
    // The document goes to a pending key under the prefix, in the record's hash slot (a tag
    // around its name),
    // named by 128 random bits, with the record's TTL, which RENAME carries over (and which
    // removes it should the script never run).
    const pending = new RegExp(
      `^\\S+ \\[[^\\]]+\\] "SET" "${prefix}\\{${recordKey}\\}#pending:[0-9a-f]{32}" ".*" "EX" "86400"$`,
    );
    assert.match(sent[1], pending);
    assert.ok(sent[2].includes(`"${scriptSha('set.lua')}" "3" "${prefix}{${recordKey}}`), sent[2]);
    const inScript = monitor.lines.filter((line) => line.includes(' lua] '));
    assert.deepEqual(inScript.map(commandOf), ['TYPE', 'ZCARD', 'RENAME', 'ZADD', 'EXPIRE'], inScript.join('\n'));
    assert.ok(inScript[4].endsWith(`"${indexKey}" "90000"`), inScript[4]);
    assert.equal(await server.cli('KEYS', `${prefix}*pending*`), '');
    assertWithin(Number(await server.cli('TTL', recordKey)), 86_400 - 5, 86_400, 'TTL of the record');
  } finally {
    monitor.stop();
  }
});

it('set after the server lost its scripts (SCRIPT FLUSH, as after a failover) resolves and leaves no pending key', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const conversation = makeConversation({ userId: uniqueId('user') });
  const id = conversation.externalId;
  await store.set(id, conversation);
  await server.cli('SCRIPT', 'FLUSH');
  const changed = { ...conversation, status: 'completed' };
  await store.set(id, changed);
  assert.deepEqual(await store.get(id), persisted(changed));
  assert.equal(
    (await server.cli('KEYS', `${prefix}*`)).split('\n').sort().join('\n'),
    [`${prefix}conv:${id}`, `${prefix}user:${conversation.userId}:conversations`].sort().join('\n'),
  );
});

// ---------------------------------------------------------------- healing the index

it('an index entry whose conversation is gone is left out of the list and removed from the index', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const userId = uniqueId('user');
  const indexKey = `${prefix}user:${userId}:conversations`;
  const live = makeConversation({ userId, updatedAt: isoAt(1000) });
  const liveId = live.externalId;
  await store.set(liveId, live);
  await server.cli('ZADD', indexKey, Date.parse(isoAt(9000)), 'ghost');

  assert.deepEqual(await store.listByUser(userId), [persisted(live)]);
  assert.equal(await server.cli('ZRANGE', indexKey, 0, -1), liveId);
});

it("a conversation of user B listed in user A's index is left out of A's list and removed from A's index only", async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const alice = uniqueId('alice');
  const bob = uniqueId('bob');
  const alicesOwn = makeConversation({ userId: alice, updatedAt: isoAt(1000) });
  const bobs = makeConversation({ userId: bob, updatedAt: isoAt(5000) });
  const alicesId = alicesOwn.externalId;
  const bobsId = bobs.externalId;
  await store.set(alicesId, alicesOwn);
  await store.set(bobsId, bobs);
  await server.cli('ZADD', `${prefix}user:${alice}:conversations`, Date.parse(bobs.updatedAt), bobsId);

  assert.deepEqual(await store.listByUser(alice), [persisted(alicesOwn)]);
  assert.equal(await server.cli('ZRANGE', `${prefix}user:${alice}:conversations`, 0, -1), alicesId);
  assert.equal(await server.cli('ZRANGE', `${prefix}user:${bob}:conversations`, 0, -1), bobsId);
  assert.deepEqual(await store.listByUser(bob), [persisted(bobs)]);
});

// The heal runs between two round trips of a list; a concurrent set cannot be slotted in
// there deterministically from outside. So the script is run directly, by the SHA of the
// very file the store embeds (and, as SCRIPT EXISTS shows, loaded).
it('healing is compare-and-remove: an entry whose score or record changed since the list read it is kept', async () => {
  const sha = scriptSha('heal.lua');
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const userId = uniqueId('user');
  const indexKey = `${prefix}user:${userId}:conversations`;
  await server.cli('ZADD', indexKey, 100, 'ghost-loader');
  await store.listByUser(userId); // heals, loading the script
  assert.equal(await server.cli('SCRIPT', 'EXISTS', sha), '1', 'the store did not run scripts/heal.lua');

  // KEYS: index, record; ARGV: member, score the list read, SHA-1 of the foreign record it read ('' if missing).
  const heal = (member, score, seen = '') =>
    server.cli('EVALSHA', sha, 2, indexKey, `${prefix}conv:${member}`, member, score, seen);

  await server.cli('ZADD', indexKey, 200, 'ghost');
  assert.equal(await heal('ghost', 100), '0', 'score changed (a concurrent set): kept');
  assert.equal(await server.cli('ZSCORE', indexKey, 'ghost'), '200');
  assert.equal(await heal('ghost', 200), '1', 'same score, record gone: removed');
  assert.equal(await server.cli('ZSCORE', indexKey, 'ghost'), '');

  const own = makeConversation({ userId, updatedAt: isoAt(1000) });
  await store.set(own.externalId, own);
  assert.equal(
    await heal(own.externalId, Date.parse(isoAt(1000))),
    '0',
    "the user's own live record (seen missing): kept",
  );

  const foreign = makeConversation({ userId: uniqueId('other'), updatedAt: isoAt(2000) });
  await store.set(foreign.externalId, foreign);
  const foreignSha = createHash('sha1').update(JSON.stringify(foreign)).digest('hex');
  await server.cli('ZADD', indexKey, 300, foreign.externalId);
  assert.equal(
    await heal(foreign.externalId, 250, foreignSha),
    '0',
    'score changed: kept even though the record is foreign',
  );
  assert.equal(
    await heal(foreign.externalId, 300, 'f'.repeat(40)),
    '0',
    'the record changed since the list read it: kept',
  );
  assert.equal(await heal(foreign.externalId, 300, foreignSha), '1', 'same score, same foreign record: removed');
  assert.equal(await server.cli('ZRANGE', indexKey, 0, -1), own.externalId);
});

// One slot per command a heal marks, then reads the records again, then finishes. Two heals
// and a set interleave here as they can under load on a cluster (found 2 runs in 2,500): the
// scripts are run directly, as the store sends them (EVAL of the file).
it('one slot per command, a heal finishes only on the entries that still hold its own mark', async () => {
  const script = (name) => fs.readFileSync(path.join(__dirname, '..', 'src', 'store', 'scripts', name), 'utf8');
  const mark = (own, ...pairs) => server.cli('EVAL', script('heal_cluster.lua'), 1, indexKey, own, ...pairs);
  const finish = (own, ...pairs) => server.cli('EVAL', script('heal_cluster_finish.lua'), 1, indexKey, own, ...pairs);
  const indexKey = `${uniquePrefix()}user:${uniqueId('user')}:conversations`;
  const [markA, markB] = ['-1.5e300', '-1.7e300'];
  await server.cli('ZADD', indexKey, 100, 'live');

  assert.equal(await mark(markA, 'live', 100), 'live', 'heal A, whose list read the record as gone, marks it');
  await server.cli('ZADD', indexKey, 100, 'live'); // a set writes the record and its entry again
  assert.equal(await mark(markB, 'live', 100), 'live', 'heal B, whose list read score 100 too, marks it');
  assert.equal(await finish(markA, 'live', ''), '0', "heal A's stale read removes nothing: the mark is B's");
  assert.equal(Number(await server.cli('ZSCORE', indexKey, 'live')), Number(markB));
  assert.equal(await finish(markB, 'live', 100), '0', 'heal B read the record again: its score is put back');
  assert.equal(await server.cli('ZSCORE', indexKey, 'live'), '100');

  assert.equal(await mark(markA, 'live', 100), 'live');
  assert.equal(await finish(markA, 'live', ''), '1', 'a record still gone at the finish: removed');
  assert.equal(await server.cli('ZSCORE', indexKey, 'live'), '');
});

// ---------------------------------------------------------------- corrupt and foreign data

for (const { what, value } of [
  { what: 'is not JSON', value: () => 'notjson' },
  {
    what: 'is JSON that fails validation',
    value: (userId) => JSON.stringify({ ...makeConversation({ userId }), status: 'closed' }),
  },
]) {
  it(`a stored value that ${what}: get rejects STORE_CORRUPT_RECORD naming the key; the list leaves it out with a [STORE] warning`, async () => {
    const prefix = uniquePrefix();
    const log = recordingLogger();
    const store = await openStore({ keyPrefix: prefix, logger: log.logger });
    const userId = uniqueId('user');
    const good = makeConversation({ userId, updatedAt: isoAt(1000) });
    await store.set(good.externalId, good);
    const badId = uniqueId('corrupt');
    const badKey = `${prefix}conv:${badId}`;
    await server.cli('SET', badKey, value(userId));
    await server.cli('ZADD', `${prefix}user:${userId}:conversations`, Date.parse(isoAt(9000)), badId);

    await assert.rejects(store.get(badId), corruptRecord(badKey));
    assert.deepEqual(await store.listByUser(userId), [persisted(good)]);
    const warning = await log.waitFor('warn', new RegExp(`${badKey}\\b`));
    assert.match(warning, /^\[STORE\] /);
  });
}

it('a conversation key holding another type: get rejects STORE_CORRUPT_RECORD naming the key', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const id = uniqueId('hash');
  await server.cli('HSET', `${prefix}conv:${id}`, 'a', 'b');
  await assert.rejects(store.get(id), corruptRecord(`${prefix}conv:${id}`));
});

it("a conversation key holding another type is left out of its user's list, and its index entry healed", async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const userId = uniqueId('user');
  const indexKey = `${prefix}user:${userId}:conversations`;
  const good = makeConversation({ userId, updatedAt: isoAt(1000) });
  await store.set(good.externalId, good);
  const hashId = uniqueId('hash');
  await server.cli('HSET', `${prefix}conv:${hashId}`, 'a', 'b');
  await server.cli('ZADD', indexKey, Date.parse(isoAt(9000)), hashId);

  assert.deepEqual(await store.listByUser(userId), [persisted(good)]);
  assert.equal(await server.cli('ZSCORE', indexKey, hashId), '', 'the entry of the hash was healed');
  assert.equal(await server.cli('HGET', `${prefix}conv:${hashId}`, 'a'), 'b', "the other writer's key is untouched");
});

it('a user index holding another type: listByUser rejects STORE_CORRUPT_RECORD naming the key', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const userId = uniqueId('user');
  await server.cli('HSET', `${prefix}user:${userId}:conversations`, 'a', 'b');
  await assert.rejects(store.listByUser(userId), corruptRecord(`${prefix}user:${userId}:conversations`));
});

it('a conversation written by another writer in the ioredis layout (SET EX + ZADD) is read and listed', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const userId = uniqueId('user');
  const id = uniqueId('ioredis');
  // As the ioredis + Zod store writes it: its own key order, a field this version lacks.
  const written = {
    userId,
    tenantId: 'tenant-9',
    externalId: '0b7e6c9a-2f41-4d8e-9a55-3c2b1a0f9e8d',
    status: 'completed',
    createdAt: '2026-01-05T08:00:00Z',
    updatedAt: '2026-01-05T08:30:00.250Z',
    history: [
      { id: 'm1', role: 'user', type: 'text', text: 'hi', timestamp: '2026-01-05T08:00:00Z', channelData: { a: 1 } },
    ],
    addedByANewerServer: true,
  };
  await server.cli('SET', `${prefix}conv:${id}`, JSON.stringify(written), 'EX', 3600);
  await server.cli('ZADD', `${prefix}user:${userId}:conversations`, Date.parse(written.updatedAt), id);
  assert.deepEqual(await store.get(id), written);
  assert.deepEqual(await store.listByUser(userId), [written]);
});

it("delete removes the conversation key and its entry in the owner's index, and leaves the other entries", async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const userId = uniqueId('user');
  const indexKey = `${prefix}user:${userId}:conversations`;
  const keptId = uniqueId('kept');
  const deletedId = uniqueId('deleted');
  await store.set(keptId, makeConversation({ externalId: keptId, userId, updatedAt: isoAt(1000) }));
  await store.set(deletedId, makeConversation({ externalId: deletedId, userId, updatedAt: isoAt(2000) }));
  await store.delete(deletedId);
  assert.equal(await server.cli('EXISTS', `${prefix}conv:${deletedId}`), '0');
  assert.equal(await server.cli('ZSCORE', indexKey, deletedId), '');
  assert.equal(await server.cli('ZRANGE', indexKey, 0, -1), keptId);
  assert.equal(await server.cli('EXISTS', `${prefix}conv:${keptId}`), '1');
});

it('calls made right after close(), not awaited, reject STORE_CLOSED and write nothing', async () => {
  // Sixteen sets fill a batch, which goes at once: before, it raced the native close on
  // tokio's thread and was taken in 4 runs in 30.
  for (let run = 0; run < 30; run++) {
    const prefix = uniquePrefix();
    const store = await openStore({ keyPrefix: prefix });
    const conversations = Array.from({ length: 16 }, () => makeConversation());
    const closed = store.close();
    assert.equal(store.status, 'end', 'end from the moment close() is called');
    const calls = [
      ...conversations.map((c) => store.set(c.externalId, c)),
      store.get(conversations[0].externalId),
      store.delete(conversations[1].externalId),
      store.listByUser(conversations[0].userId),
      store.ready(),
    ];
    for (const call of calls) await assert.rejects(call, { code: 'STORE_CLOSED' }, `run ${run}`);
    await closed;
    assert.equal(await server.cli('EVAL', `return #redis.call('KEYS', ARGV[1])`, '0', `${prefix}*`), '0');
  }
});

it("delete of a conversation whose owner's index holds another type deletes the record and resolves", async () => {
  const prefix = uniquePrefix();
  const log = recordingLogger();
  const store = await openStore({ keyPrefix: prefix, logger: log.logger });
  const conversation = makeConversation({ userId: uniqueId('user') });
  await store.set(conversation.externalId, conversation);
  const indexKey = `${prefix}user:${conversation.userId}:conversations`;
  await server.cli('DEL', indexKey);
  await server.cli('HSET', indexKey, 'a', 'b');

  await store.delete(conversation.externalId);
  assert.equal(await store.get(conversation.externalId), undefined);
  assert.equal(await server.cli('HGET', indexKey, 'a'), 'b', "the other writer's key is left as it is");
  await log.waitFor('warn', new RegExp(`${indexKey}\\b`));
});

it('delete removes a conversation key whose value is corrupt or of another type', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const notJson = uniqueId('not-json');
  const hash = uniqueId('hash');
  await server.cli('SET', `${prefix}conv:${notJson}`, 'notjson');
  await server.cli('HSET', `${prefix}conv:${hash}`, 'a', 'b');
  await store.delete(notJson);
  await store.delete(hash);
  assert.equal(await server.cli('EXISTS', `${prefix}conv:${notJson}`, `${prefix}conv:${hash}`), '0');
});

// ---------------------------------------------------------------- MONITOR

/** `redis-cli MONITOR` over TLS as a child process; lines arrive as Redis runs commands. */
async function startMonitor() {
  const { certs } = server;
  const child = spawn(
    'redis-cli',
    [
      '--tls',
      '--cacert',
      certs.caFile,
      '--cert',
      certs.clientCertFile,
      '--key',
      certs.clientKeyFile,
      '-h',
      server.host,
      '-p',
      String(server.port),
      'MONITOR',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines = [];
  const listeners = new Set();
  let pending = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    pending += chunk;
    const complete = pending.split('\n');
    pending = complete.pop();
    for (const line of complete) {
      lines.push(line);
      for (const listener of listeners) listener(line);
    }
  });
  const waitFor = (predicate) =>
    new Promise((resolve, reject) => {
      const seen = lines.find(predicate);
      if (seen) return resolve(seen);
      const timer = setTimeout(() => {
        listeners.delete(listener);
        reject(new Error(`MONITOR: no matching line within ${LOG_WAIT_MS} ms:\n${lines.join('\n')}`));
      }, LOG_WAIT_MS);
      const listener = (line) => {
        if (predicate(line)) {
          clearTimeout(timer);
          listeners.delete(listener);
          resolve(line);
        }
      };
      listeners.add(listener);
    });
  await waitFor((line) => line === 'OK');
  return {
    lines,
    waitFor,
    sawKey: (key) => lines.some((line) => line.includes(`"${key}"`)),
    stop: () => child.kill(),
  };
}

/** `1700000000.123456 [0 127.0.0.1:5555] "SET" …` → `127.0.0.1:5555` */
function clientOf(line) {
  return /^\S+ \[\d+ ([^\]]+)\]/.exec(line)?.[1];
}

function commandOf(line) {
  return /^\S+ \[[^\]]+\] "([^"]+)"/.exec(line)?.[1]?.toUpperCase();
}

// ---------------------------------------------------------------- calls in one tick

it('calls made in one tick go out together but settle one by one: a corrupt record or a bad write fails alone', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const userId = uniqueId('user');
  const good = Array.from({ length: 20 }, () => {
    const conversation = makeConversation({ userId });
    return { id: conversation.externalId, conversation };
  });
  const badIndexUser = uniqueId('user');
  const badIndex = makeConversation({ userId: badIndexUser });
  await server.cli('HSET', `${prefix}user:${badIndexUser}:conversations`, 'a', 'b');

  const writes = await Promise.allSettled([
    ...good.map(({ id, conversation }) => store.set(id, conversation)),
    store.set(badIndex.externalId, badIndex),
  ]);
  assert.deepEqual(
    writes.slice(0, -1).map((w) => w.status),
    good.map(() => 'fulfilled'),
  );
  assert.equal(writes.at(-1).status, 'rejected');
  assert.equal(writes.at(-1).reason.code, 'STORE_CORRUPT_RECORD');

  const corruptId = uniqueId('corrupt');
  await server.cli('SET', `${prefix}conv:${corruptId}`, 'not json');
  const reads = await Promise.allSettled([
    ...good.map(({ id }) => store.get(id)),
    store.get(corruptId),
    store.get(uniqueId('missing')),
  ]);
  for (const [i, { conversation }] of good.entries()) assert.deepEqual(reads[i].value, persisted(conversation));
  assert.equal(reads.at(-2).status, 'rejected');
  assert.ok(corruptRecord(`${prefix}conv:${corruptId}`)(reads.at(-2).reason));
  assert.deepEqual(reads.at(-1), { status: 'fulfilled', value: undefined });
});

it('sets made in one tick are one transaction with one script call, and each settles on its own', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const [userA, userB] = [uniqueId('user'), uniqueId('user')];
  const good = Array.from({ length: 10 }, (_, i) => makeConversation({ userId: i % 3 ? userA : userB }));
  const hashRecord = makeConversation({ userId: userA });
  await server.cli('HSET', `${prefix}conv:${hashRecord.externalId}`, 'a', 'b');
  const foreignIndexUser = uniqueId('user');
  const foreignIndex = makeConversation({ userId: foreignIndexUser });
  await server.cli('SET', `${prefix}user:${foreignIndexUser}:conversations`, 'theirs');
  // Passes index.js's checks, refused by the native store (another id than its externalId):
  // fails alone, before the transaction.
  const misnamed = makeConversation({ userId: userA });
  const calls = [good[0], hashRecord, ...good.slice(1, 5), foreignIndex, misnamed, ...good.slice(5)].map((c) => ({
    id: c === misnamed ? uniqueId('other') : c.externalId,
    conversation: c,
  }));
  assert.ok(calls.length <= 16, 'one batch of the store (lib/batcher.js, MAX_BATCH)');

  const monitor = await startMonitor();
  let sets;
  try {
    sets = await Promise.allSettled(calls.map(({ id, conversation }) => store.set(id, conversation)));
    await monitor.waitFor((line) => commandOf(line) === 'EXEC');
    // MULTI and EXEC name no key: one SET of a pending key for each set that reached Redis,
    // then one script call for all of them.
    const sent = monitor.lines.filter((line) => line.includes(prefix) && !line.includes(' lua] '));
    const written = calls.length - 1;
    assert.deepEqual(sent.map(commandOf), [...Array(written).fill('SET'), 'EVALSHA'], sent.join('\n'));
    assert.ok(sent.at(-1).includes(`"${scriptSha('set.lua')}" "${3 * written}"`), sent.at(-1));
  } finally {
    monitor.stop();
  }
  const outcome = (c) => sets[calls.findIndex(({ conversation }) => conversation === c)];
  for (const c of good) assert.equal(outcome(c).status, 'fulfilled', outcome(c).reason?.message);
  assert.ok(corruptRecord(`${prefix}conv:${hashRecord.externalId}`)(outcome(hashRecord).reason));
  assert.ok(corruptRecord(`${prefix}user:${foreignIndexUser}:conversations`)(outcome(foreignIndex).reason));
  assert.equal(outcome(misnamed).reason.code, 'STORE_INVALID_ARGUMENT');

  for (const c of good) {
    assert.deepEqual(await store.get(c.externalId), persisted(c));
    const indexKey = `${prefix}user:${c.userId}:conversations`;
    assert.equal(await server.cli('ZSCORE', indexKey, c.externalId), String(Date.parse(c.updatedAt)));
    assertWithin(Number(await server.cli('TTL', `${prefix}conv:${c.externalId}`)), 86_400 - 5, 86_400, 'record TTL');
    assertWithin(Number(await server.cli('TTL', indexKey)), 90_000 - 5, 90_000, 'index TTL');
  }
  assert.equal(await server.cli('HGET', `${prefix}conv:${hashRecord.externalId}`, 'a'), 'b');
  assert.equal(await server.cli('ZSCORE', `${prefix}user:${userA}:conversations`, hashRecord.externalId), '');
  assert.equal(await server.cli('GET', `${prefix}user:${foreignIndexUser}:conversations`), 'theirs');
  assert.equal(await server.cli('TTL', `${prefix}user:${foreignIndexUser}:conversations`), '-1');
  assert.equal(await server.cli('EXISTS', `${prefix}conv:${foreignIndex.externalId}`), '0');
  assert.equal(await server.cli('ZSCORE', `${prefix}user:${userA}:conversations`, misnamed.externalId), '');
  assert.equal(await server.cli('KEYS', `${prefix}*pending*`), '');
  const counted = store.stats().operations.set;
  assert.equal(counted.calls, calls.length);
  assert.deepEqual(counted.errors, { STORE_CORRUPT_RECORD: 2, STORE_INVALID_ARGUMENT: 1 });
});

it('sets made in one tick after the server lost its scripts (SCRIPT FLUSH) are all written, with no pending key', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const userId = uniqueId('user');
  const first = makeConversation({ userId });
  await store.set(first.externalId, first); // the script is cached from here on
  await server.cli('SCRIPT', 'FLUSH');
  const batch = [first, ...Array.from({ length: 7 }, () => makeConversation({ userId }))].map((c) => ({
    ...c,
    status: 'completed',
  }));
  await Promise.all(batch.map((c) => store.set(c.externalId, c)));
  for (const c of batch) assert.deepEqual(await store.get(c.externalId), persisted(c));
  assert.equal(Number(await server.cli('ZCARD', `${prefix}user:${userId}:conversations`)), batch.length);
  assert.equal(await server.cli('KEYS', `${prefix}*pending*`), '');
});

it('sets made in one tick past listLimit trim their index: each set drops the ghosts its sample finds', async () => {
  const prefix = uniquePrefix();
  const listLimit = 4;
  const store = await openStore({ keyPrefix: prefix, listLimit });
  const userId = uniqueId('user');
  const indexKey = `${prefix}user:${userId}:conversations`;
  // Ghosts: index entries whose record is gone, older than anything written below.
  const ghosts = Array.from({ length: 8 }, (_, i) => `ghost-${i}`);
  await server.cli('ZADD', indexKey, ...ghosts.flatMap((ghost, i) => [String(i + 1), ghost]));
  const batch = Array.from({ length: listLimit }, () => makeConversation({ userId }));
  await Promise.all(batch.map((c) => store.set(c.externalId, c)));
  const left = (await server.cli('ZRANGE', indexKey, 0, -1)).split('\n').filter(Boolean);
  for (const c of batch) assert.ok(left.includes(c.externalId), `${c.externalId} lost its entry`);
  // Each set past listLimit samples the oldest TRIM_BATCH entries (4) and drops those that are
  // ghosts: the four oldest go whichever set's trim finds them.
  for (const ghost of ghosts.slice(0, 4)) assert.ok(!left.includes(ghost), left.join(' '));
  assert.deepEqual(
    (await store.listByUser(userId)).map((c) => c.externalId).sort(),
    batch.map((c) => c.externalId).sort(),
  );
});

it('a native setBatch naming one id twice writes both in call order, without waiting out its deadline', async () => {
  const { NativeRedisStore } = require('../binding.js');
  const prefix = uniquePrefix();
  const native = new NativeRedisStore(
    server.url,
    { tls: { ca: server.caPem }, keyPrefix: prefix, commandTimeoutMs: 60_000 },
    () => {},
    null,
    null,
  );
  try {
    await native.ready();
    const first = makeConversation({ userId: uniqueId('user') });
    const second = { ...first, status: 'completed', updatedAt: isoAt(60_000) };
    const other = makeConversation({ userId: first.userId });
    const started = Date.now();
    const reply = await native.setBatch(
      [first.externalId, other.externalId, first.externalId],
      [first, other, second].map((c) => JSON.stringify(c)),
    );
    assert.deepEqual(reply.errors, [null, null, null]);
    assert.ok(Date.now() - started < 30_000, 'the batch waited for its own call');
    assert.deepEqual(JSON.parse(await native.get(first.externalId)), persisted(second));
    assert.deepEqual(JSON.parse(await native.get(other.externalId)), persisted(other));
  } finally {
    await native.close();
  }
});

it("sets made in one tick where an ACL's key pattern refuses one set's keys: that set fails alone", async () => {
  const prefix = uniquePrefix();
  const [alice, bob] = [uniqueId('alice'), uniqueId('bob')];
  // Records and pending keys (`<prefix>{<record key>}#pending:…`) allowed; of the indexes,
  // alice's only. Redis checks a command's keys as it is queued: the one script call of a
  // transaction of both sets is refused whole, and EXEC then refuses all of it.
  const store = await storeAsUser('alice-only', prefix, [
    `~${prefix}conv:*`,
    `~${prefix}{*`,
    `~${prefix}user:${alice}:*`,
    '+@all',
  ]);
  const [hers, his] = [makeConversation({ userId: alice }), makeConversation({ userId: bob })];
  const [herSet, hisSet] = await Promise.allSettled([hers, his].map((c) => store.set(c.externalId, c)));
  assert.equal(herSet.status, 'fulfilled', herSet.reason?.message);
  assert.equal(hisSet.status, 'rejected');
  assert.equal(hisSet.reason.code, 'STORE_UNAVAILABLE', hisSet.reason.message);
  assert.match(hisSet.reason.message, /NOPERM/);
  assert.deepEqual(await store.get(hers.externalId), persisted(hers));
  assert.equal(
    await server.cli('ZSCORE', `${prefix}user:${alice}:conversations`, hers.externalId),
    String(Date.parse(hers.updatedAt)),
  );
  assert.equal(await server.cli('EXISTS', `${prefix}conv:${his.externalId}`), '0');
  assert.equal(await server.cli('KEYS', `${prefix}*pending*`), '');
  assert.deepEqual(store.stats().operations.set.errors, { STORE_UNAVAILABLE: 1 });
  assert.equal(store.status, 'ready');
});

it('sets made in one tick by a user without EVAL, after the server lost its scripts: each rejects NOPERM, no pending key stays', async () => {
  const prefix = uniquePrefix();
  const store = await storeAsUser('no-eval', prefix, ['~*', '+@all', '-eval']);
  await server.cli('SCRIPT', 'FLUSH');
  const userId = uniqueId('user');
  const batch = Array.from({ length: 3 }, () => makeConversation({ userId }));
  const monitor = await startMonitor();
  try {
    const sets = await Promise.allSettled(batch.map((c) => store.set(c.externalId, c)));
    for (const set of sets) {
      assert.equal(set.status, 'rejected');
      assert.equal(set.reason.code, 'STORE_UNAVAILABLE', set.reason.message);
      assert.match(set.reason.message, /NOPERM.*'eval'/);
    }
    await monitor.waitFor((line) => commandOf(line) === 'UNLINK' && line.includes(prefix));
    // The transaction by SHA ran its SETs and the script's NOSCRIPT; the one with the script's
    // text was refused whole (EVAL, as it was queued); the pending keys went. A refused command
    // is not a refused key: the sets are not sent again one by one.
    const sent = monitor.lines.filter((line) => line.includes(prefix));
    assert.deepEqual(sent.map(commandOf), [...Array(batch.length).fill('SET'), 'EVALSHA', 'UNLINK'], sent.join('\n'));
  } finally {
    monitor.stop();
  }
  assert.equal(await server.cli('KEYS', `${prefix}*`), '');
  assert.equal(store.stats().operations.set.calls, batch.length);
  assert.equal(store.status, 'ready');
});

it('a native setBatch of 40 sets goes as transactions of at most 16: no script call holds redis-server long', async () => {
  const { NativeRedisStore } = require('../binding.js');
  const prefix = uniquePrefix();
  const native = new NativeRedisStore(
    server.url,
    { tls: { ca: server.caPem }, keyPrefix: prefix },
    () => {},
    null,
    null,
  );
  const monitor = await startMonitor();
  try {
    await native.ready();
    const userId = uniqueId('user');
    const conversations = Array.from({ length: 40 }, () => makeConversation({ userId }));
    const reply = await native.setBatch(
      conversations.map((c) => c.externalId),
      conversations.map((c) => JSON.stringify(c)),
    );
    assert.deepEqual(
      reply.errors,
      conversations.map(() => null),
    );
    for (const c of conversations) assert.deepEqual(JSON.parse(await native.get(c.externalId)), persisted(c));
    // The server ran the sets before these gets, and MONITOR shows commands in that order.
    const last = `${prefix}conv:${conversations.at(-1).externalId}`;
    await monitor.waitFor((line) => commandOf(line) === 'GET' && line.includes(last));
    const scriptCalls = monitor.lines.filter((line) => commandOf(line) === 'EVALSHA' && line.includes(prefix));
    assert.deepEqual(
      scriptCalls.map((line) => /"EVALSHA" "[0-9a-f]{40}" "(\d+)"/.exec(line)?.[1]).sort(),
      ['24', '48', '48'],
      scriptCalls.join('\n'),
    );
  } finally {
    monitor.stop();
    await native.close();
  }
});

it('deletes made in one tick go out together and each does its own work: good, corrupt, of another type, missing, a foreign index', async () => {
  const prefix = uniquePrefix();
  const log = recordingLogger();
  const store = await openStore({ keyPrefix: prefix, logger: log.logger });
  const userId = uniqueId('user');
  const indexKey = `${prefix}user:${userId}:conversations`;
  const good = Array.from({ length: 20 }, () => makeConversation({ userId }));
  const kept = makeConversation({ userId });
  for (const conversation of [...good, kept]) await store.set(conversation.externalId, conversation);
  const foreignIndexed = makeConversation({ userId: uniqueId('user') });
  await store.set(foreignIndexed.externalId, foreignIndexed);
  const foreignIndexKey = `${prefix}user:${foreignIndexed.userId}:conversations`;
  await server.cli('DEL', foreignIndexKey);
  await server.cli('HSET', foreignIndexKey, 'a', 'b');
  const corrupt = uniqueId('corrupt');
  const hash = uniqueId('hash');
  await server.cli('SET', `${prefix}conv:${corrupt}`, 'not json');
  await server.cli('HSET', `${prefix}conv:${hash}`, 'a', 'b');

  const ids = [...good.map((c) => c.externalId), corrupt, hash, uniqueId('missing'), foreignIndexed.externalId];
  // An id longer than the native store takes passes index.js's checks: refused in the batch,
  // alone.
  const tooLong = 'x'.repeat(64 * 1024 + 1);
  const deletes = await Promise.allSettled([...ids, tooLong].map((id) => store.delete(id)));
  assert.deepEqual(
    deletes.map((d) => d.status),
    [...ids.map(() => 'fulfilled'), 'rejected'],
  );
  assert.equal(deletes.at(-1).reason.code, 'STORE_INVALID_ARGUMENT');
  const keys = ids.map((id) => `${prefix}conv:${id}`);
  assert.equal(await server.cli('EXISTS', ...keys), '0');
  assert.equal(await server.cli('ZRANGE', indexKey, 0, -1), kept.externalId);
  assert.equal(await server.cli('HGET', foreignIndexKey, 'a'), 'b', "the other writer's key is left as it is");
  await log.waitFor('warn', new RegExp(`${foreignIndexKey}\\b`));
  assert.deepEqual(await store.listByUser(userId), [persisted(kept)]);
  assert.equal(store.stats().operations.delete.calls, ids.length + 1);
  assert.deepEqual(store.stats().operations.delete.errors, { STORE_INVALID_ARGUMENT: 1 });
});

/** redis-server's `INFO stats` counter `name`. */
async function serverStat(name) {
  const stats = await server.cli('INFO', 'stats');
  return Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(stats)[1]);
}

it('under load, the calls that completions prompt in one turn go out together, not one by one', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const conversations = Array.from({ length: 32 }, () => makeConversation({ userId: uniqueId('user') }));
  await Promise.all(conversations.map((c) => store.set(c.externalId, c)));
  const rounds = 40;
  const readsBefore = await serverStat('total_reads_processed');
  // 32 closed loops, each started in a turn of its own (as requests reach a server), each get
  // once settled making the next: completions that arrive together can only be sent together
  // if the store gathers calls past one callback's microtasks.
  const loops = [];
  for (const c of conversations) {
    loops.push(
      (async () => {
        for (let i = 0; i < rounds; i++) assert.equal((await store.get(c.externalId)).externalId, c.externalId);
      })(),
    );
    await new Promise((resolve) => require('node:timers').setImmediate(resolve));
  }
  await Promise.all(loops);
  const reads = (await serverStat('total_reads_processed')) - readsBefore - 1; // - the INFO
  const calls = conversations.length * rounds;
  // One by one, redis-server reads about once per call; gathered per turn, several calls a read.
  assert.ok(reads < calls / 2, `redis-server read ${reads} times for ${calls} gets`);
});

/** Loads the package in a child process between `fake` and `restore` (code run there), then sets and gets. */
async function settlesAfterLoadingUnder(fake, restore) {
  const probe = `
    ${fake}
    const { RedisConversationStore } = require(${JSON.stringify(path.join(__dirname, '..'))});
    ${restore}
    const { makeConversation } = require(${JSON.stringify(path.join(__dirname, '../support/conversations'))});
    (async () => {
      const store = new RedisConversationStore(process.env.URL, { tls: { ca: process.env.CA }, keyPrefix: process.env.PREFIX });
      const conversation = makeConversation();
      await store.set(conversation.externalId, conversation);
      const read = await store.get(conversation.externalId);
      console.log(read.externalId === conversation.externalId ? 'settled' : 'wrong');
      await store.close();
    })();
  `;
  const { execFile } = require('node:child_process');
  const env = { ...process.env, URL: server.url, CA: server.caPem, PREFIX: uniquePrefix() };
  return new Promise((resolve, reject) =>
    execFile(process.execPath, ['-e', probe], { env, timeout: 20_000 }, (error, stdout, stderr) =>
      error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout.trim()),
    ),
  );
}

it('loaded under fake timers (node:test, Sinon), the store still settles its calls after they are off', async () => {
  const nodeTest = await settlesAfterLoadingUnder(
    "const { mock } = require('node:test'); mock.timers.enable({ apis: ['setImmediate'] });",
    'mock.timers.reset();',
  );
  assert.equal(nodeTest, 'settled');
  // As @sinonjs/fake-timers installs itself: on the global and node:timers, marked with `clock`.
  const sinonLike = await settlesAfterLoadingUnder(
    `const timers = require('node:timers');
     const real = timers.setImmediate;
     const fake = function setImmediate() {};
     fake.clock = {};
     timers.setImmediate = globalThis.setImmediate = fake;`,
    'timers.setImmediate = globalThis.setImmediate = real;',
  );
  assert.equal(sinonLike, 'settled');
});

it('calls on one id leave in the order they are made (one tokio worker, the default): a set not awaited is seen by a later list, delete and get', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const userId = uniqueId('user');
  const first = makeConversation({ userId });
  const id = first.externalId;
  // The set script cached first: a set retried after NOSCRIPT takes two round trips, and a
  // list (which takes no turn on the id) may overtake the second.
  const warm = makeConversation({ userId: uniqueId('user') });
  await store.set(warm.externalId, warm);
  // A list a microtask after a set that was not awaited sees it.
  const written = store.set(id, first);
  await null;
  assert.deepEqual(await store.listByUser(userId), [persisted(first)]);
  await written;
  // A delete a tick after a set that was not awaited wins.
  const rewritten = store.set(id, { ...first, status: 'completed' });
  await new Promise((resolve) => process.nextTick(resolve));
  await store.delete(id);
  await rewritten;
  assert.equal(await store.get(id), undefined);
  // A get after a set, behind a full batch of gets made before them, reads the set.
  const others = Array.from({ length: 15 }, () => uniqueId('missing'));
  const second = makeConversation({ userId, externalId: id, status: 'abandoned' });
  const reads = others.map((other) => store.get(other));
  const write = store.set(id, second);
  const read = store.get(id);
  await Promise.all([...reads, write]);
  assert.deepEqual(await read, persisted(second));
});

it('a get or set made right after a delete of its id, not awaited, follows it; a delete right after a set follows it, even when the set is retried after NOSCRIPT', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const userId = uniqueId('user');
  // Before the order by id, the set landed between the delete's GET and its transaction and
  // was deleted with it in about one round in six, and the get read the deleted record.
  for (let round = 0; round < 60; round += 1) {
    const old = makeConversation({ userId });
    const id = old.externalId;
    await store.set(id, old);
    const fresh = { ...old, status: 'completed' };
    const deleted = store.delete(id);
    const read = store.get(id);
    const written = store.set(id, fresh);
    const readAfter = store.get(id);
    await Promise.all([deleted, written]);
    assert.deepEqual(await readAfter, persisted(fresh), `round ${round}: a get made after the set missed it`);
    assert.equal(await read, undefined, `round ${round}: the get overtook the delete, or a set made after it`);
    assert.deepEqual(await store.get(id), persisted(fresh), `round ${round}: the set was deleted`);
    const entry = await server.cli('ZSCORE', `${prefix}user:${userId}:conversations`, id);
    assert.notEqual(entry, '', `round ${round}: the set's index entry was deleted`);
  }
  // A set retried after NOSCRIPT takes a second round trip; the delete made after it waits.
  for (let round = 0; round < 10; round += 1) {
    const conversation = makeConversation({ userId });
    await server.cli('SCRIPT', 'FLUSH');
    const written = store.set(conversation.externalId, conversation);
    const deleted = store.delete(conversation.externalId);
    await Promise.all([written, deleted]);
    assert.equal(await store.get(conversation.externalId), undefined, `round ${round}: the set outlived the delete`);
  }
});

it('gets and sets of one id apply in the order made, also a tick apart and after NOSCRIPT', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const userId = uniqueId('user');
  const tick = () => new Promise((resolve) => setImmediate(resolve));
  // Before, tokio could run a later call's task first: the older set won, a get missed the set
  // before it, or read the one after it (one round in six to one in three, in review).
  for (let round = 0; round < 40; round += 1) {
    if (round % 4 === 3) await server.cli('SCRIPT', 'FLUSH');
    const first = makeConversation({ userId });
    const id = first.externalId;
    await store.set(id, first);
    const second = { ...first, status: 'completed' };
    const third = { ...first, status: 'abandoned' };
    const before = store.get(id);
    const written = [store.set(id, second)];
    await tick();
    const between = store.get(id);
    written.push(store.set(id, third));
    const after = store.get(id);
    await Promise.all(written);
    assert.deepEqual(await before, persisted(first), `round ${round}: a get read a set made after it`);
    assert.deepEqual(await between, persisted(second), `round ${round}: a get missed the set before it`);
    assert.deepEqual(await after, persisted(third), `round ${round}: a get missed the set before it`);
    assert.deepEqual(await store.get(id), persisted(third), `round ${round}: the older set won`);
  }
});

it('a burst of calls alternating on one id does not cost the connection: calls on other ids go on', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix, commandTimeoutMs: 300 });
  const userId = uniqueId('user');
  const other = makeConversation({ userId });
  await store.set(other.externalId, other);
  const conversation = makeConversation({ userId });
  const reconnectsBefore = store.stats().reconnects;
  // Each delete waits for the sets before it and each set for the delete before it: most of
  // the burst runs out of time waiting. A call sent with little of its time left and then
  // timed out used to be taken for a silent connection, which was dropped.
  const burst = [];
  for (let i = 0; i < 2000; i += 1) {
    burst.push(store.delete(conversation.externalId), store.set(conversation.externalId, conversation));
  }
  const reads = [];
  const outcomes = await Promise.allSettled(burst);
  for (let i = 0; i < 20; i += 1) reads.push(store.get(other.externalId));
  for (const read of await Promise.all(reads)) assert.deepEqual(read, persisted(other));
  const failed = outcomes.filter((outcome) => outcome.status === 'rejected');
  for (const { reason } of failed) assert.equal(reason.code, 'STORE_UNAVAILABLE', reason.message);
  assert.equal(
    store.stats().reconnects,
    reconnectsBefore,
    `the store reconnected (${failed.length} calls of the burst failed)`,
  );
});

// ---------------------------------------------------------------- trust: other writers, bounds

/** A raw client for what redis-cli cannot send: bytes that are not UTF-8. */
async function rawClient() {
  const Redis = require('ioredis');
  const client = new Redis({
    host: server.host,
    port: server.port,
    tls: { ca: server.caPem },
    lazyConnect: true,
    maxRetriesPerRequest: 0,
  });
  await client.connect();
  return client;
}

it('set into a user index holding another type writes nothing: no record, no TTL on the foreign key', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const userId = uniqueId('user');
  const indexKey = `${prefix}user:${userId}:conversations`;
  await server.cli('HSET', indexKey, 'a', 'b');
  const conversation = makeConversation({ userId });
  const keysBefore = await server.cli('DBSIZE');
  await assert.rejects(store.set(conversation.externalId, conversation), corruptRecord(indexKey));
  assert.equal(await server.cli('EXISTS', `${prefix}conv:${conversation.externalId}`), '0', 'the record was written');
  assert.equal(await server.cli('TTL', indexKey), '-1', 'the foreign key got a TTL');
  assert.equal(await server.cli('DBSIZE'), keysBefore, 'a key was left behind');
});

it('set over a conversation key holding another type writes nothing and names that key', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const conversation = makeConversation({ userId: uniqueId('user') });
  const recordKey = `${prefix}conv:${conversation.externalId}`;
  await server.cli('HSET', recordKey, 'a', 'b');
  const keysBefore = await server.cli('DBSIZE');
  await assert.rejects(store.set(conversation.externalId, conversation), corruptRecord(recordKey));
  assert.equal(await server.cli('TYPE', recordKey), 'hash');
  assert.equal(await server.cli('EXISTS', `${prefix}user:${conversation.userId}:conversations`), '0');
  assert.equal(await server.cli('DBSIZE'), keysBefore, 'a key was left behind');
});

it('the index stays bounded: a set past listLimit drops the oldest entries whose record is gone, never a live one', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix, listLimit: 3 });
  const userId = uniqueId('user');
  const indexKey = `${prefix}user:${userId}:conversations`;
  // Two live conversations older than everything, then ghosts of expired ones above them.
  const oldLive = [1, 2].map((i) => makeConversation({ userId, updatedAt: isoAt(i) }));
  for (const c of oldLive) await store.set(c.externalId, c);
  for (let i = 0; i < 5; i++) await server.cli('ZADD', indexKey, Date.parse(isoAt(10 + i)), `expired-${i}`);
  // And one whose key holds another type: no conversation either. Six ghosts in all: each of
  // the three sets below drops the two oldest (the two old live ones come first).
  await server.cli('HSET', `${prefix}conv:expired-hash`, 'a', 'b');
  await server.cli('ZADD', indexKey, Date.parse(isoAt(15)), 'expired-hash');
  const newer = [];
  for (let i = 0; i < 3; i++) {
    const c = makeConversation({ userId, updatedAt: isoAt(100 + i) });
    newer.push(c);
    await store.set(c.externalId, c);
  }
  const members = (await server.cli('ZRANGE', indexKey, 0, -1)).split('\n');
  assert.deepEqual(
    members.filter((m) => m.startsWith('expired-')),
    [],
    `ghosts left: ${members.join(' ')}`,
  );
  assert.deepEqual(new Set(members), new Set([...oldLive, ...newer].map((c) => c.externalId)));
});

it('the trim starts past listLimit: an update at listLimit entries samples nothing, a new conversation then does', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix, listLimit: 3 });
  const userId = uniqueId('user');
  await checkTrimStartsPastListLimit(store, server, { userId, indexKey: `${prefix}user:${userId}:conversations` });
});

it('set when both keys hold another type writes nothing and names the record', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const conversation = makeConversation({ userId: uniqueId('user') });
  const recordKey = `${prefix}conv:${conversation.externalId}`;
  const indexKey = `${prefix}user:${conversation.userId}:conversations`;
  await server.cli('HSET', recordKey, 'a', 'b');
  await server.cli('SADD', indexKey, 'a');
  const keysBefore = await server.cli('DBSIZE');
  await assert.rejects(store.set(conversation.externalId, conversation), corruptRecord(recordKey));
  assert.equal(await server.cli('TYPE', recordKey), 'hash');
  assert.equal(await server.cli('TYPE', indexKey), 'set');
  assert.equal(await server.cli('TTL', indexKey), '-1', 'the foreign key got a TTL');
  assert.equal(await server.cli('DBSIZE'), keysBefore, 'a key was left behind');
});

it("an active user's index does not grow with every conversation they ever had", async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix, listLimit: 5 });
  const userId = uniqueId('user');
  const indexKey = `${prefix}user:${userId}:conversations`;
  let previous;
  for (let i = 0; i < 60; i++) {
    const c = makeConversation({ userId, updatedAt: isoAt(i * 1000) });
    await store.set(c.externalId, c);
    // The conversation before this one expires (its record is gone, as its TTL would do).
    if (previous) await server.cli('DEL', `${prefix}conv:${previous.externalId}`);
    previous = c;
  }
  const size = Number(await server.cli('ZCARD', indexKey));
  assert.ok(size <= 5 + 1, `the index holds ${size} entries for 1 live conversation`);
});

it('a list refills from further down the index when ghosts sit on top: both stores return listLimit', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const userId = uniqueId('user');
  const indexKey = `${prefix}user:${userId}:conversations`;
  const live = await Promise.all(
    Array.from({ length: 60 }, async (_, i) => {
      const c = makeConversation({ userId, updatedAt: isoAt(i * 1000) });
      await store.set(c.externalId, c);
      return c;
    }),
  );
  for (let i = 0; i < 10; i++) await server.cli('ZADD', indexKey, Date.parse(isoAt(1_000_000 + i)), `ghost-${i}`);
  const expected = live
    .sort((a, b) => Date.parse(b.updatedAt) - Date.parse(a.updatedAt))
    .slice(0, 50)
    .map(persisted);
  assert.deepEqual(await store.listByUser(userId), expected);
  assert.equal((await server.cli('ZRANGE', indexKey, 0, -1)).includes('ghost-'), false, 'the ghosts were not healed');
});

it('a foreign record that Lua cannot decode (a lone surrogate) is still healed out of the index', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const alice = uniqueId('alice');
  const bob = uniqueId('bob');
  const bobs = makeConversation({ userId: bob, messages: [{ text: 'lone \ud800 surrogate' }] });
  await store.set(bobs.externalId, bobs);
  const aliceIndex = `${prefix}user:${alice}:conversations`;
  await server.cli('ZADD', aliceIndex, 5, bobs.externalId);
  assert.deepEqual(await store.listByUser(alice), []);
  assert.equal(await server.cli('ZCARD', aliceIndex), '0', 'the foreign entry stayed, to be re-scanned by every list');
  assert.deepEqual(await store.get(bobs.externalId), persisted(bobs));
});

/** A store that logs in as an ACL user made with `rules` (besides `on` and a password). */
async function storeAsUser(name, prefix, rules) {
  const user = `${name}-${process.pid}`;
  await server.cli('ACL', 'SETUSER', user, 'reset', 'on', '>secret-pass', ...rules);
  const store = new RedisConversationStore(server.url.replace('rediss://', `rediss://${user}:secret-pass@`), {
    tls: { ca: server.caPem },
    keyPrefix: prefix,
    logger: silentLogger,
  });
  opened.push(store);
  await store.ready();
  return store;
}

it('a user whose ACL allows only the keys under keyPrefix (~<prefix>*) can set, get and list', async () => {
  const prefix = uniquePrefix();
  const store = await storeAsUser('prefix-only', prefix, [`~${prefix}*`, '+@all']);
  const conversation = makeConversation({ userId: uniqueId('user') });
  await store.set(conversation.externalId, conversation);
  assert.deepEqual(await store.get(conversation.externalId), persisted(conversation));
  assert.deepEqual(await store.listByUser(conversation.userId), [persisted(conversation)]);
});

for (const command of ['rename', 'type', 'zcard']) {
  it(`a set refused by an ACL without ${command.toUpperCase()} rejects, writes nothing and leaves no pending key`, async () => {
    const prefix = uniquePrefix();
    const store = await storeAsUser(`no-${command}`, prefix, ['~*', '+@all', `-${command}`]);
    const conversation = makeConversation({ userId: uniqueId('user') });
    await assert.rejects(store.set(conversation.externalId, conversation), (error) => {
      assert.equal(error.code, 'STORE_UNAVAILABLE', error.message);
      assert.match(error.message, /can't run this command/);
      return true;
    });
    assert.equal(await server.cli('KEYS', `${prefix}*`), '');
    assert.equal(store.status, 'ready');
  });
}

it('a set of a stored conversation refused at RENAME changes nothing: record, entry, score, no pending key', async () => {
  const prefix = uniquePrefix();
  const writer = await openStore({ keyPrefix: prefix });
  const store = await storeAsUser('no-rename-update', prefix, ['~*', '+@all', '-rename']);
  const userId = uniqueId('user');
  const older = makeConversation({ userId, updatedAt: '2026-02-22T10:00:00.000Z' });
  const newer = makeConversation({ userId, updatedAt: '2026-02-22T11:00:00.000Z' });
  await writer.set(older.externalId, older);
  await writer.set(newer.externalId, newer);
  const moved = { ...older, status: 'completed', updatedAt: '2026-02-22T12:00:00.000Z' };
  await assert.rejects(store.set(older.externalId, moved), { code: 'STORE_UNAVAILABLE' });
  assert.deepEqual(await writer.get(older.externalId), persisted(older));
  assert.equal(
    await server.cli('ZSCORE', `${prefix}user:${userId}:conversations`, older.externalId),
    String(Date.parse(older.updatedAt)),
  );
  assert.deepEqual(await writer.listByUser(userId), [persisted(newer), persisted(older)]);
  assert.equal(await server.cli('KEYS', `${prefix}*pending*`), '');
});

it('a heal refused by an ACL (NOPERM) does not fail the list nor touch the connection', async () => {
  const prefix = uniquePrefix();
  const user = `noscript-${process.pid}`;
  await server.cli('ACL', 'SETUSER', user, 'on', '>secret-pass', '~*', '+@all', '-@scripting');
  const log = recordingLogger();
  const store = await openStore({ keyPrefix: prefix, logger: log.logger });
  const limitedUrl = server.url.replace('rediss://', `rediss://${user}:secret-pass@`);
  const limited = new RedisConversationStore(limitedUrl, {
    tls: { ca: server.caPem },
    keyPrefix: prefix,
    logger: log.logger,
  });
  opened.push(limited);
  await limited.ready();
  const userId = uniqueId('user');
  const live = makeConversation({ userId });
  await store.set(live.externalId, live);
  await server.cli('ZADD', `${prefix}user:${userId}:conversations`, 1, 'ghost');
  for (let i = 0; i < 3; i++) assert.deepEqual(await limited.listByUser(userId), [persisted(live)]);
  assert.equal(limited.status, 'ready');
  assert.deepEqual(await limited.get(live.externalId), persisted(live));
  const warnings = log.entries.filter((l) => l.level === 'warn').map((l) => l.line);
  assert.equal(warnings.filter((line) => /could not heal/.test(line)).length, 1, warnings.join('\n'));
  assert.ok(!warnings.some((line) => /connection lost/.test(line)), warnings.join('\n'));
  assert.ok(!log.lines.some((line) => line.includes('secret-pass')), 'a password reached a log line');
});

it('an index member that is not UTF-8 (another writer) is skipped, and the connection stays', async () => {
  const prefix = uniquePrefix();
  const log = recordingLogger();
  const store = await openStore({ keyPrefix: prefix, logger: log.logger });
  const userId = uniqueId('user');
  const live = makeConversation({ userId });
  await store.set(live.externalId, live);
  const raw = await rawClient();
  try {
    await raw.zadd(`${prefix}user:${userId}:conversations`, 9, Buffer.from([0xff, 0xfe]));
  } finally {
    raw.disconnect();
  }
  for (let i = 0; i < 3; i++) assert.deepEqual(await store.listByUser(userId), [persisted(live)]);
  assert.equal(store.status, 'ready');
  assert.ok(!log.lines.some((line) => /connection lost|reconnect/.test(line)), log.lines.join('\n'));
  await log.waitFor('warn', /not UTF-8/);
});

it('a list fetches its records in MGETs of bounded worst-case size', async () => {
  const prefix = uniquePrefix();
  // 16 MiB records at most: an MGET of 4 keys is 64 MiB in the worst case.
  const store = await openStore({ keyPrefix: prefix, listLimit: 10, maxRecordBytes: 16 * 1024 * 1024 });
  const userId = uniqueId('user');
  const written = await Promise.all(
    Array.from({ length: 10 }, async (_, i) => {
      const c = makeConversation({ userId, updatedAt: isoAt(i) });
      await store.set(c.externalId, c);
      return c;
    }),
  );
  const monitor = await startMonitor();
  try {
    const listed = await store.listByUser(userId);
    assert.equal(listed.length, 10);
    assert.deepEqual(new Set(listed.map((c) => c.externalId)), new Set(written.map((c) => c.externalId)));
    const mgets = () => monitor.lines.filter((line) => commandOf(line) === 'MGET' && line.includes(`"${prefix}conv:`));
    const keysIn = (line) => line.split(`"${prefix}conv:`).length - 1;
    await monitor.waitFor(() => mgets().reduce((sum, line) => sum + keysIn(line), 0) >= 10);
    const sizes = mgets().map(keysIn);
    assert.deepEqual(sizes, [4, 4, 2], mgets().join('\n'));
  } finally {
    monitor.stop();
  }
});

it('a list is two round trips: the index, then all its MGETs sent together', async () => {
  const proxy = await startProxy({ targetPort: server.port });
  try {
    const prefix = uniquePrefix();
    // An MGET of 4 keys at most (64 MiB in the worst case): three MGETs for 10 records.
    const store = await openStore({
      keyPrefix: prefix,
      listLimit: 10,
      maxRecordBytes: 16 * 1024 * 1024,
      healthCheckIntervalMs: 60_000,
    });
    const proxied = await openStore({
      keyPrefix: prefix,
      listLimit: 10,
      maxRecordBytes: 16 * 1024 * 1024,
      healthCheckIntervalMs: 60_000,
      proxyPort: proxy.port,
    });
    const userId = uniqueId('user');
    for (let i = 0; i < 10; i++) {
      const c = makeConversation({ userId, updatedAt: isoAt(i) });
      await store.set(c.externalId, c);
    }
    await proxied.listByUser(userId); // connected and warm
    // A round trip is a burst of requests after a reply: count the turns from reply to request.
    const seen = [];
    const onRequest = () => seen.push('request');
    const onReply = () => seen.push('reply');
    proxy.events.on('request', onRequest);
    proxy.events.on('reply', onReply);
    const listed = await proxied.listByUser(userId);
    proxy.events.off('request', onRequest);
    proxy.events.off('reply', onReply);
    assert.equal(listed.length, 10);
    const turns = seen.filter((event, i) => event === 'request' && seen[i - 1] === 'reply').length;
    assert.equal(seen[0], 'request', seen.join(' '));
    assert.equal(turns, 1, `one request burst after the index's reply, not one per MGET: ${seen.join(' ')}`);
  } finally {
    await proxy.close();
  }
});

/**
 * The lengths of the TLS application-data records in a byte stream that starts at a record's
 * header (RFC 8446 5.1: type, version, a 16-bit length), whatever the chunks it came in.
 */
function tlsRecordReader() {
  const lengths = [];
  let pending = Buffer.alloc(0);
  return {
    lengths,
    push(chunk) {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 5) {
        assert.equal(pending[1], 3, 'a record header: the reader lost its place');
        const length = pending.readUInt16BE(3);
        if (pending.length < 5 + length) break;
        if (pending[0] === 23) lengths.push(length);
        pending = pending.subarray(5 + length);
      }
    },
  };
}

it('sets made together leave together: their commands fill TLS records, not one write each', async () => {
  const proxy = await startProxy({ targetPort: server.port });
  try {
    const records = tlsRecordReader();
    proxy.events.on('request', (_, chunk) => records.push(chunk));
    const store = await openStore({ keyPrefix: uniquePrefix(), healthCheckIntervalMs: 60_000, proxyPort: proxy.port });
    // Each set's commands are about 10 KB: alone they fit one record with room to spare. The
    // 64 calls reach the native store as four batches of 16 (lib/batcher.js), each queued on
    // the connection at once: what a batch shares is its writes.
    const text = 'x'.repeat(10_000);
    const conversations = Array.from({ length: 64 }, () => makeConversation({ messages: [{ text }] }));
    // The first set loads the script, which the server does not hold yet.
    await store.set(conversations[0].externalId, conversations[0]);
    const before = records.lengths.length;
    await Promise.all(conversations.map((c) => store.set(c.externalId, c)));
    const sent = records.lengths.slice(before);
    // One connection, so one stream of records for the reader.
    assert.equal(proxy.totalAccepted, 1);
    const full = sent.filter((length) => length > 16_384).length;
    // A record holds at most 16 KiB of commands (its length adds the content type's byte and
    // the AEAD's tag, RFC 8446 5.2): a full one carries parts of two sets, which a write per
    // set never makes.
    assert.ok(full > 0 && sent.length < conversations.length, `${sent.length} records: ${sent.join(' ')}`);
    for (const c of conversations) assert.deepEqual(await store.get(c.externalId), persisted(c));
  } finally {
    await proxy.close();
  }
});

it('ids and keys in log lines and messages are escaped: a newline cannot forge a line', async () => {
  const prefix = uniquePrefix();
  const log = recordingLogger();
  const store = await openStore({ keyPrefix: prefix, logger: log.logger });
  const userId = uniqueId('user');
  const evilId = 'evil\n[STORE] forged line';
  const raw = await rawClient();
  try {
    await raw.set(`${prefix}conv:${evilId}`, 'not json');
    await raw.zadd(`${prefix}user:${userId}:conversations`, 1, evilId);
  } finally {
    raw.disconnect();
  }
  const error = await store.get(evilId).then(
    () => assert.fail('get should reject'),
    (e) => e,
  );
  assert.equal(error.code, 'STORE_CORRUPT_RECORD');
  assert.ok(!/[\n\r]/.test(error.message), JSON.stringify(error.message));
  assert.match(error.message, /evil\\n\[STORE\] forged line/);
  assert.deepEqual(await store.listByUser(userId), []);
  const warning = await log.waitFor('warn', /evil/);
  assert.ok(!/[\n\r]/.test(warning), JSON.stringify(warning));
});

it('a record another writer stored with sdkConversationRef comes back without it, from get and from a list', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix });
  const userId = uniqueId('user');
  const conversation = makeConversation({ userId });
  await server.cli(
    'SET',
    `${prefix}conv:${conversation.externalId}`,
    JSON.stringify({ ...conversation, sdkConversationRef: { activity: 'a-1' } }),
  );
  await server.cli(
    'ZADD',
    `${prefix}user:${userId}:conversations`,
    Date.parse(conversation.updatedAt),
    conversation.externalId,
  );
  const got = await store.get(conversation.externalId);
  assert.equal(Object.hasOwn(got, 'sdkConversationRef'), false);
  assert.deepEqual(got, conversation);
  const listed = await store.listByUser(userId);
  assert.deepEqual(listed, [conversation]);
  assert.equal(Object.hasOwn(listed[0], 'sdkConversationRef'), false);
});

it("lists that race another list's heal still return the newest conversations", async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix, listLimit: 5 });
  const userId = uniqueId('user');
  const indexKey = `${prefix}user:${userId}:conversations`;
  const live = [];
  for (let i = 0; i < 10; i++) {
    const c = makeConversation({ userId, updatedAt: isoAt(i * 1000) });
    await store.set(c.externalId, c);
    live.push(c);
  }
  const expected = live.slice(5).reverse().map(persisted);
  for (let round = 0; round < 150; round++) {
    // Ghosts on top: each list reads a short first round, and one list's heal removes them
    // while another reads its second round.
    await server.cli(
      'ZADD',
      indexKey,
      ...[1, 2, 3, 4, 5].flatMap((k) => [Date.parse(isoAt(1_000_000 + k)), `ghost-${k}`]),
    );
    const lists = await Promise.all([store.listByUser(userId), store.listByUser(userId), store.listByUser(userId)]);
    for (const list of lists) assert.deepEqual(list, expected, `round ${round}`);
  }
});

it('the index stays bounded when old live conversations sit below the ghosts', async () => {
  const prefix = uniquePrefix();
  const store = await openStore({ keyPrefix: prefix, listLimit: 3 });
  const userId = uniqueId('user');
  const indexKey = `${prefix}user:${userId}:conversations`;
  // More old live conversations than a set checks at the bottom of the index.
  for (let i = 0; i < 6; i++) {
    const c = makeConversation({ userId, updatedAt: isoAt(i) });
    await store.set(c.externalId, c);
  }
  for (let i = 0; i < 10; i++) await server.cli('ZADD', indexKey, Date.parse(isoAt(100 + i)), `expired-${i}`);
  for (let i = 0; i < 60; i++) {
    const c = makeConversation({ userId, updatedAt: isoAt(1000 + i) });
    await store.set(c.externalId, c);
  }
  const members = (await server.cli('ZRANGE', indexKey, 0, -1)).split('\n');
  assert.deepEqual(
    members.filter((m) => m.startsWith('expired-')),
    [],
    `ghosts left among ${members.length} entries`,
  );
});
