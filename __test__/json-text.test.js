'use strict';
// How a conversation's JSON reaches JavaScript (src/binding/text.rs), from a get, a batch of
// gets or a list, of either store: as a one-byte string of Latin-1 JSON meaning the same
// (other characters escaped), unless escaping would make it more than a quarter longer (text
// mostly past U+00FF), which goes as UTF-16. Checked in a child process, where V8's natives
// syntax can say what kind of string it got.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const path = require('node:path');

const { RedisConversationStore } = require('..');
const { startRedis, stopAll } = require('../support/redis');
const { makeConversation, isoAt, uniqueId, persisted } = require('../support/conversations');
const { silentLogger } = require('../support/observe');

let server;
before(async () => {
  server = await startRedis();
});
after(stopAll);

const ASCII = `plain ${'x'.repeat(2000)}`;
const MIXED = `${'x'.repeat(2000)} café “quoted” 🎉 ÿ`;
// Surrogate pairs and a Latin-1 character too, for the UTF-16 it then goes as.
const WIDE = '日本語のテキスト é 🎉'.repeat(300);

/** `count` conversations of a new user whose messages carry `text`, newest first. */
function conversationsOf(text, count) {
  const userId = uniqueId('json-text');
  const written = Array.from({ length: count }, (_, i) =>
    makeConversation({ userId, updatedAt: isoAt(i * 1000), messages: [{ text }, { text }] }),
  );
  return { userId, written, expected: written.toReversed().map(persisted) };
}

/** Writes `count` conversations carrying `text` to the test server. */
async function seed(text, count) {
  const { userId, written, expected } = conversationsOf(text, count);
  const store = new RedisConversationStore(server.url, { tls: { ca: server.caPem }, logger: silentLogger });
  await store.ready();
  await Promise.all(written.map((c) => store.set(c.externalId, c)));
  await store.close();
  return { userId, ids: written.map((c) => c.externalId), expected };
}

// What each child reads, through the native half; `native` is the store, `args` the test's.
const READS = {
  list: 'await native.listByUser(args.userId)',
  get: 'await native.get(args.ids[0])',
  getBatch: '(await native.getBatch(args.ids)).values[1]',
  lastOfBatch: '(await native.getBatch(args.ids)).values.at(-1)',
  memoryList: 'native.listByUser(args.userId)',
  memoryGet: 'native.get(args.ids[0])',
};

/**
 * Reads with `READS[read]` in a child Node with natives syntax; resolves with the parsed JSON
 * and the string's type as `%DebugPrint` names it (`ONE_BYTE_STRING_TYPE`, `STRING_TYPE` for
 * two bytes a character, …). `args` go on standard input; the in-memory reads first write
 * `args.written` to a new store.
 */
function readInChild(read, args) {
  const script = `
    const { NativeRedisStore, NativeMemoryStore } = require(${JSON.stringify(path.join(__dirname, '..', 'binding.js'))});
    (async () => {
      const args = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
      let native;
      if (args.written) {
        native = new NativeMemoryStore({});
        for (const c of args.written) native.set(c.externalId, JSON.stringify(c));
      } else {
        native = new NativeRedisStore(process.env.URL, { tls: { ca: process.env.CA } }, () => {}, null, null);
        await native.ready();
      }
      const text = ${READS[read]};
      await native.close();
      process.stderr.write('RESULT ' + JSON.stringify(JSON.parse(text)) + '\\n');
      %DebugPrint(text);
    })().catch((error) => { console.error(error); process.exit(1); });
  `;
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      ['--allow-natives-syntax', '-e', script],
      {
        env: { ...process.env, URL: server.url, CA: server.caPem },
        maxBuffer: 256 * 1024 * 1024,
        timeout: 120_000,
      },
      (error, stdout, stderr) => {
        if (error) return reject(new Error(`${error.message}\n${stderr.slice(-2000)}`));
        const line = stderr.split('\n').find((l) => l.startsWith('RESULT '));
        const type = /^ - type: (\w+)$/m.exec(stdout);
        if (!line || !type) return reject(new Error(`no result:\n${stderr.slice(-2000)}`));
        resolve({ parsed: JSON.parse(line.slice('RESULT '.length)), type: type[1] });
      },
    );
    child.stdin.end(JSON.stringify(args));
  });
}

const CASES = [
  ['ASCII', ASCII, 'ONE_BYTE_STRING_TYPE'],
  ['Latin-1, curly quotes and an emoji (escaped)', MIXED, 'ONE_BYTE_STRING_TYPE'],
  ['text mostly past U+00FF (escaped, it would grow by more than a quarter: UTF-16 instead)', WIDE, 'STRING_TYPE'],
];

for (const [name, text, type] of CASES) {
  test(`Redis: ${name} is a ${type} from a list, a get and a batch of gets, and reads back exactly`, async () => {
    const { userId, ids, expected } = await seed(text, 20);
    const reversed = expected.toReversed();
    assert.deepEqual(await readInChild('list', { userId }), { parsed: expected, type });
    assert.deepEqual(await readInChild('get', { ids }), { parsed: reversed[0], type });
    assert.deepEqual(await readInChild('getBatch', { ids }), { parsed: reversed[1], type });
  });

  test(`in memory: ${name} is a ${type} from a list and a get, and reads back exactly`, async () => {
    const { userId, written, expected } = conversationsOf(text, 20);
    const ids = written.map((c) => c.externalId);
    assert.deepEqual(await readInChild('memoryList', { userId, written }), { parsed: expected, type });
    assert.deepEqual(await readInChild('memoryGet', { ids, written }), { parsed: expected.at(-1), type });
  });
}

test('a batch of gets mixing a miss, a corrupt record and non-ASCII hits settles each call alone, the hits one-byte strings', async () => {
  const { ids, expected } = await seed(MIXED, 2);
  const [newer, older] = expected;
  const missing = uniqueId('json-text-miss');
  const corrupt = uniqueId('json-text-corrupt');
  await server.cli('SET', `conv:${corrupt}`, 'not json “at all” 🎉');
  const store = new RedisConversationStore(server.url, { tls: { ca: server.caPem }, logger: silentLogger });
  try {
    await store.ready();
    // Made in one turn of the event loop, so they go as one batch.
    const settled = await Promise.allSettled([ids[0], missing, corrupt, ids[1]].map((id) => store.get(id)));
    assert.deepEqual(settled[0], { status: 'fulfilled', value: older });
    assert.deepEqual(settled[1], { status: 'fulfilled', value: undefined });
    assert.equal(settled[2].status, 'rejected');
    assert.equal(settled[2].reason.code, 'STORE_CORRUPT_RECORD');
    assert.deepEqual(settled[3], { status: 'fulfilled', value: newer });
  } finally {
    await store.close();
  }
  assert.deepEqual(await readInChild('lastOfBatch', { ids: [missing, corrupt, ids[1]] }), {
    parsed: newer,
    type: 'ONE_BYTE_STRING_TYPE',
  });
});

test('the native setBatch refuses ids and documents of different lengths, and a document that is not a string, writing nothing', async () => {
  const { NativeRedisStore } = require('../binding.js');
  const native = new NativeRedisStore(server.url, { tls: { ca: server.caPem } }, () => {}, null, null);
  try {
    await native.ready();
    const [a, b] = [makeConversation(), makeConversation()];
    // The native half names the code first; index.js makes it the error's `code`.
    const mismatch = (ids, docs) => ({
      message: `STORE_INVALID_ARGUMENT: setBatch: ${ids} ids and ${docs} documents, not one document an id`,
    });
    assert.throws(() => native.setBatch([a.externalId, b.externalId], [JSON.stringify(a)]), mismatch(2, 1));
    assert.throws(() => native.setBatch([a.externalId], [JSON.stringify(a), JSON.stringify(b)]), mismatch(1, 2));
    assert.throws(() => native.setBatch([], [JSON.stringify(a)]), mismatch(0, 1));
    assert.deepEqual(native.stats().operations.set.errors, { STORE_INVALID_ARGUMENT: 5 });
    assert.throws(() => native.setBatch([a.externalId], [42]), /expected a string/);
    assert.throws(() => native.set(a.externalId, { json: true }), /expected a string/);
    for (const id of [a.externalId, b.externalId]) assert.equal(await server.cli('EXISTS', `conv:${id}`), '0');
    const reply = await native.setBatch([a.externalId], [JSON.stringify(a)]);
    assert.deepEqual(reply.errors, [null]);
    assert.equal(await server.cli('EXISTS', `conv:${a.externalId}`), '1');
  } finally {
    await native.close();
  }
});
