'use strict';
// How a list's JSON reaches JavaScript (src/binding/text.rs): as a one-byte string of Latin-1
// JSON meaning the same (other characters escaped), unless escaping would make it more than
// a quarter longer (text mostly past U+00FF), which goes as UTF-8. Checked in a child
// process, where V8's natives syntax can say what kind of string it got.

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

/** Writes `count` conversations of a new user whose messages carry `text`. */
async function seed(text, count) {
  const store = new RedisConversationStore(server.url, { tls: { ca: server.caPem }, logger: silentLogger });
  await store.ready();
  const userId = uniqueId('list-text');
  const written = Array.from({ length: count }, (_, i) =>
    makeConversation({ userId, updatedAt: isoAt(i * 1000), messages: [{ text }, { text }] }),
  );
  await Promise.all(written.map((c) => store.set(c.externalId, c)));
  await store.close();
  return { userId, expected: written.reverse().map(persisted) };
}

/**
 * Lists `userId` through the native half in a child Node with natives syntax; resolves with
 * the parsed list and the string's type as `%DebugPrint` names it (`ONE_BYTE_STRING_TYPE`,
 * `STRING_TYPE` for two bytes a character, …).
 */
function listInChild(userId) {
  const script = `
    const { NativeRedisStore } = require(${JSON.stringify(path.join(__dirname, '..', 'binding.js'))});
    (async () => {
      const native = new NativeRedisStore(process.env.URL, { tls: { ca: process.env.CA } }, () => {}, null, null);
      await native.ready();
      const text = await native.listByUser(process.env.USER_ID);
      await native.close();
      process.stderr.write('RESULT ' + JSON.stringify(JSON.parse(text)) + '\\n');
      %DebugPrint(text);
    })().catch((error) => { console.error(error); process.exit(1); });
  `;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--allow-natives-syntax', '-e', script],
      {
        env: { ...process.env, URL: server.url, CA: server.caPem, USER_ID: userId },
        maxBuffer: 256 * 1024 * 1024,
        timeout: 120_000,
      },
      (error, stdout, stderr) => {
        if (error) return reject(new Error(`${error.message}\n${stderr.slice(-2000)}`));
        const line = stderr.split('\n').find((l) => l.startsWith('RESULT '));
        const type = /^ - type: (\w+)$/m.exec(stdout);
        if (!line || !type) return reject(new Error(`no result:\n${stderr.slice(-2000)}`));
        resolve({ listed: JSON.parse(line.slice('RESULT '.length)), type: type[1] });
      },
    );
  });
}

test('a list of ASCII is a one-byte string and reads back exactly', async () => {
  const { userId, expected } = await seed(`plain ${'x'.repeat(2000)}`, 40);
  const { listed, type } = await listInChild(userId);
  assert.deepEqual(listed, expected);
  assert.equal(type, 'ONE_BYTE_STRING_TYPE');
});

test('a list with Latin-1, curly quotes and an emoji is a one-byte string (escapes), and reads back exactly', async () => {
  const { userId, expected } = await seed(`${'x'.repeat(2000)} café “quoted” 🎉 ÿ`, 40);
  const { listed, type } = await listInChild(userId);
  assert.deepEqual(listed, expected);
  assert.equal(type, 'ONE_BYTE_STRING_TYPE');
});

test('a list mostly past U+00FF (escaped, it would grow by more than a quarter) goes as UTF-8, and reads back exactly', async () => {
  const { userId, expected } = await seed('日本語のテキスト'.repeat(300), 20);
  const { listed, type } = await listInChild(userId);
  assert.deepEqual(listed, expected);
  assert.equal(type, 'STRING_TYPE');
});
