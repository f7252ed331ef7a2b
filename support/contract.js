'use strict';
// The storage contract of docs/DESIGN.md as one suite, registered once per store (in memory,
// standalone Redis, Redis Cluster): whatever one store does, the others do.

const { describe, test, afterEach } = require('node:test');
const assert = require('node:assert/strict');

const { makeConversation, persisted, isoAt, uniqueId } = require('./conversations');
const { StoreError } = require('..');

/** An assert.rejects predicate: the error has `code`, and its message names `path` if given. */
function rejectsWith(code, path) {
  return (error) => {
    assert.ok(error instanceof Error, `expected an Error, got ${error}`);
    assert.equal(error.code, code, `code of: ${error.message}`);
    if (path !== undefined) {
      assert.ok(namesPath(error.message, path), `message should name ${path}: ${error.message}`);
    }
    return true;
  };
}

/** True when `path` appears in `message` as a whole path, not inside a longer one. */
function namesPath(message, path) {
  const escaped = path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(?<![\\w\\].])${escaped}(?![\\w[])`).test(message);
}

/** Stores `count` conversations of `userId`, one second apart; returns them newest first. */
async function seedUser(store, userId, count) {
  const conversations = Array.from({ length: count }, (_, i) => {
    const conversation = makeConversation({ userId, updatedAt: isoAt(i * 1000) });
    return { id: conversation.externalId, conversation };
  });
  await Promise.all(conversations.map(({ id, conversation }) => store.set(id, conversation)));
  return conversations.reverse().map(({ conversation }) => persisted(conversation));
}

/** A later version of `conversation`: if it were ever written, get and list would show it. */
function newer(conversation, fields = {}) {
  return { ...conversation, updatedAt: isoAt(3_600_000), status: 'completed', ...fields };
}

function withMessage(conversation, index, fields) {
  const history = conversation.history.map((message, i) => (i === index ? { ...message, ...fields } : message));
  return { ...conversation, history };
}

/**
 * Each rule set() enforces. `id` replaces the conversation's id (for rules about the id);
 * `bad` turns a valid conversation into one that breaks the rule.
 */
const SET_VALIDATION_RULES = [
  { rule: 'an empty id', path: 'id', id: '', bad: (c) => newer(c) },
  {
    rule: 'a toJSON that serializes to nothing',
    path: 'conversation',
    bad: (c) => ({ ...newer(c), toJSON: () => undefined }),
  },
  { rule: 'a non-string id', path: 'id', id: 42, bad: (c) => newer(c) },
  {
    rule: "an id that is not the conversation's externalId",
    path: 'id',
    id: '0e8c1f3a-5b7d-4c9e-8f2a-1b3c5d7e9f00',
    bad: (c) => newer(c),
  },
  { rule: 'an id with a lone surrogate', path: 'id', id: 'a\uD800', bad: (c) => newer(c) },
  {
    rule: 'a getter that throws while serializing',
    path: 'conversation',
    bad: (c) =>
      Object.defineProperty(newer(c), 'tenantId', {
        enumerable: true,
        get: () => {
          throw new Error('getter failed');
        },
      }),
  },
  {
    rule: 'an sdkConversationRef getter that throws',
    path: 'conversation',
    bad: (c) =>
      Object.defineProperty(newer(c), 'sdkConversationRef', {
        enumerable: true,
        get: () => {
          throw new Error('live ref gone');
        },
      }),
  },
  {
    rule: "a toJSON that throws a StoreError of the caller's own, its code and lines not taken",
    path: 'conversation',
    message: /^conversation: cannot be serialized as JSON \([^\n]*forged[^\n]*\)$/,
    bad: (c) => ({
      ...newer(c),
      toJSON: () => {
        throw new StoreError('STORE_CLOSED', 'caller\n[STORE] forged line');
      },
    }),
  },
  {
    rule: 'a toJSON that throws a value whose toString throws a message with a code',
    path: 'conversation',
    bad: (c) => ({
      ...newer(c),
      toJSON: () => {
        throw {
          toString() {
            throw new Error('STORE_UNAVAILABLE: forged');
          },
        };
      },
    }),
  },
  {
    rule: 'a toJSON that throws',
    path: 'conversation',
    bad: (c) => ({
      ...newer(c),
      toJSON: () => {
        throw new Error('toJSON failed');
      },
    }),
  },
  { rule: 'a missing userId', path: 'userId', bad: (c) => newer(c, { userId: undefined }) },
  { rule: 'an empty userId', path: 'userId', bad: (c) => newer(c, { userId: '' }) },
  { rule: 'an empty tenantId', path: 'tenantId', bad: (c) => newer(c, { tenantId: '' }) },
  { rule: 'an externalId that is not a UUID', path: 'externalId', bad: (c) => newer(c, { externalId: 'conv-123' }) },
  {
    rule: 'a message role outside user | agent',
    path: 'history[1].role',
    bad: (c) => withMessage(newer(c), 1, { role: 'bot' }),
  },
  {
    rule: 'a message type outside the four types',
    path: 'history[0].type',
    bad: (c) => withMessage(newer(c), 0, { type: 'image' }),
  },
  {
    rule: 'a message timestamp with an offset instead of Z',
    path: 'history[1].timestamp',
    bad: (c) => withMessage(newer(c), 1, { timestamp: '2026-02-22T11:00:01.000+01:00' }),
  },
  {
    rule: 'an updatedAt with an offset instead of Z',
    path: 'updatedAt',
    bad: (c) => newer(c, { updatedAt: '2026-02-22T11:00:00+01:00' }),
  },
  { rule: 'a negative currentStep', path: 'currentStep', bad: (c) => newer(c, { currentStep: -1 }) },
  { rule: 'a fractional currentStep', path: 'currentStep', bad: (c) => newer(c, { currentStep: 1.5 }) },
  { rule: 'metadata that is an array', path: 'metadata', bad: (c) => newer(c, { metadata: ['a'] }) },
  {
    rule: "a status outside active | completed | abandoned ('closed')",
    path: 'status',
    bad: (c) => newer(c, { status: 'closed' }),
  },
  { rule: 'a history that is not an array', path: 'history', bad: (c) => newer(c, { history: {} }) },
  { rule: 'null instead of a conversation', path: 'conversation', bad: () => null },
  { rule: 'a string instead of a conversation', path: 'conversation', bad: (c) => JSON.stringify(newer(c)) },
  { rule: 'an array instead of a conversation', path: 'conversation', bad: (c) => [newer(c)] },
  {
    rule: 'a BigInt field (JSON.stringify throws)',
    path: 'conversation',
    bad: (c) => newer(c, { metadata: { tokens: 10n } }),
  },
  {
    rule: 'a conversation larger than maxRecordBytes',
    path: 'conversation',
    options: { maxRecordBytes: 2048 },
    message: /maxRecordBytes/,
    bad: (c) => withMessage(newer(c), 0, { text: 'x'.repeat(3000) }),
  },
];

/**
 * Registers the contract tests. `makeStore(options)` returns a usable store (ready);
 * `around(fn)` wraps each test body (the Redis suite prints the server log on failure).
 */
function defineContractSuite(name, makeStore, { around = (fn) => fn() } = {}) {
  describe(name, () => {
    const opened = [];
    async function openStore(options = {}) {
      const store = await makeStore(options);
      opened.push(store);
      return store;
    }
    afterEach(() => Promise.all(opened.splice(0).map((store) => store.close())));
    const it = (title, fn) => test(title, () => around(fn));

    // ------------------------------------------------------------ round trips

    it('set then get returns an equal object without sdkConversationRef (circular object there)', async () => {
      const store = await openStore();
      const sdkConversationRef = { activity: { id: 'a-1' } };
      sdkConversationRef.self = sdkConversationRef;
      const conversation = makeConversation({ sdkConversationRef });
      const id = conversation.externalId;
      await store.set(id, conversation);
      const got = await store.get(id);
      assert.deepEqual(got, persisted(conversation));
      assert.equal(Object.hasOwn(got, 'sdkConversationRef'), false);
      assert.equal(conversation.sdkConversationRef, sdkConversationRef, "set must not strip the caller's live object");
    });

    it('a function in sdkConversationRef does not stop set, and is not stored', async () => {
      const store = await openStore();
      const conversation = makeConversation({ sdkConversationRef: () => 'live SDK handle' });
      const id = conversation.externalId;
      await store.set(id, conversation);
      const got = await store.get(id);
      assert.deepEqual(got, persisted(conversation));
      assert.equal(Object.hasOwn(got, 'sdkConversationRef'), false);
    });

    it('every optional field, message type and timestamp form round-trips exactly', async () => {
      const store = await openStore();
      const conversation = makeConversation({
        status: 'abandoned',
        createdAt: '2026-02-22T10:00:00Z',
        updatedAt: '2026-02-22T10:00:07.5Z',
        workflowId: '3f0c2a1e-9b7d-4c55-8e21-7a6b5c4d3e2f',
        currentStep: 0,
        stepData: { form: { name: 'Ada', answers: [1, 2, 3] } },
        metadata: { channel: 'web', locale: 'fr-FR' },
        messages: [
          { text: 'Grüße, "quoted", back\\slash, new\nline, \u2028, emoji 🎉, 日本語' },
          {
            type: 'adaptiveCard',
            text: undefined,
            cardPayload: { type: 'AdaptiveCard', body: [{ type: 'TextBlock' }] },
          },
          { role: 'agent', type: 'typing', text: undefined, timestamp: '2026-02-22T10:00:02Z' },
          { role: 'agent', type: 'error', text: 'upstream failed', timestamp: '2026-02-22T10:00:03.123456Z' },
        ],
      });
      const id = conversation.externalId;
      await store.set(id, conversation);
      assert.deepEqual(await store.get(id), persisted(conversation));
      assert.deepEqual(await store.listByUser(conversation.userId), [persisted(conversation)]);
    });

    it('unknown fields at the top level and inside messages survive a round trip', async () => {
      const store = await openStore();
      const base = makeConversation({
        futureTopLevel: { nested: [1, 'two', null, { deep: true }] },
        nullField: null,
        schemaVersion: 7,
      });
      const conversation = withMessage(base, 1, {
        reactions: ['👍'],
        editedAt: '2026-02-22T10:05:00.000Z',
        score: 0.25,
      });
      const id = conversation.externalId;
      await store.set(id, conversation);
      assert.deepEqual(await store.get(id), conversation);
      assert.deepEqual(await store.listByUser(conversation.userId), [conversation]);
    });

    it('get of an id that was never set resolves undefined', async () => {
      const store = await openStore();
      assert.equal(await store.get(uniqueId('missing')), undefined);
    });

    it('every read returns a fresh object: mutating a result or the input changes nothing stored', async () => {
      const store = await openStore();
      const conversation = makeConversation();
      const expected = persisted(conversation);
      const id = conversation.externalId;
      await store.set(id, conversation);
      conversation.history.push({ ...conversation.history[0], id: 'added-after-set' });
      conversation.status = 'completed';

      const first = await store.get(id);
      first.history.length = 0;
      first.metadata = { mutated: true };
      const [listed] = await store.listByUser(expected.userId);
      listed.userId = 'someone-else';
      listed.history.pop();

      const again = await store.get(id);
      assert.notEqual(again, first);
      assert.deepEqual(again, expected);
      assert.deepEqual(await store.listByUser(expected.userId), [expected]);
    });

    it('set overwrites: get and listByUser show only the last version', async () => {
      const store = await openStore();
      const userId = uniqueId('user');
      const first = makeConversation({ userId, updatedAt: isoAt(1000) });
      const second = { ...newer(first), history: [...first.history, { ...first.history[0], id: 'third-message' }] };
      const id = first.externalId;
      await store.set(id, first);
      await store.set(id, second);
      assert.deepEqual(await store.get(id), persisted(second));
      assert.deepEqual(await store.listByUser(userId), [persisted(second)]);
    });

    // ------------------------------------------------------------ listByUser

    it('listByUser returns newest updatedAt first, whatever the write order and timestamp form', async () => {
      const store = await openStore();
      const userId = uniqueId('user');
      // Milliseconds decide between the close ones.
      const updatedAts = [
        '2026-02-22T10:00:05.001Z',
        '2025-12-31T23:59:59.5Z',
        '2026-03-01T00:00:00Z',
        '2026-02-22T10:00:05Z',
        '2026-02-22T10:00:04.999Z',
      ];
      const written = updatedAts.map((updatedAt) => {
        const conversation = makeConversation({ userId, updatedAt });
        return { id: conversation.externalId, conversation };
      });
      for (const { id, conversation } of written) await store.set(id, conversation);
      const expected = [...written]
        .sort((a, b) => Date.parse(b.conversation.updatedAt) - Date.parse(a.conversation.updatedAt))
        .map(({ conversation }) => persisted(conversation));
      assert.deepEqual(await store.listByUser(userId), expected);
    });

    it('listByUser returns at most 50 (the default listLimit) of 60 conversations: the newest', async () => {
      const store = await openStore();
      const userId = uniqueId('user');
      const newestFirst = await seedUser(store, userId, 60);
      assert.deepEqual(await store.listByUser(userId), newestFirst.slice(0, 50));
    });

    it('listByUser of a few hundred KB of JSON comes back exactly, ASCII or not', async () => {
      const store = await openStore();
      // A Redis list's JSON reaches JavaScript as Latin-1 JSON (src/binding/text.rs): ASCII,
      // Latin-1, characters past U+00FF (escaped), and one non-ASCII character at the very
      // end.
      const filler = 'x'.repeat(2000);
      const texts = {
        ascii: `plain ${filler}`,
        latin1: `café crème ${filler}`,
        wide: `日本語 🎉 ${filler}`,
        last: `${filler}é`,
      };
      for (const [kind, text] of Object.entries(texts)) {
        const userId = uniqueId(`large-${kind}`);
        const written = Array.from({ length: 40 }, (_, i) =>
          makeConversation({ userId, updatedAt: isoAt(i * 1000), messages: [{ text }, { text }] }),
        );
        await Promise.all(written.map((c) => store.set(c.externalId, c)));
        const expected = written.reverse().map(persisted);
        const listed = await store.listByUser(userId);
        assert.deepEqual(listed, expected, kind);
        assert.ok(JSON.stringify(listed).length > 64 * 1024, `${kind}: the list is past 64 KB`);
      }
    });

    it('listByUser respects a custom listLimit', async () => {
      const store = await openStore({ listLimit: 7 });
      const userId = uniqueId('user');
      const newestFirst = await seedUser(store, userId, 60);
      assert.deepEqual(await store.listByUser(userId), newestFirst.slice(0, 7));
    });

    it('listByUser takes a listLimit past 64 with the default maxRecordBytes (a list is bounded by what it returns)', async () => {
      const store = await openStore({ listLimit: 100 });
      const userId = uniqueId('user');
      const newestFirst = await seedUser(store, userId, 110);
      assert.deepEqual(await store.listByUser(userId), newestFirst.slice(0, 100));
    });

    it("listByUser returns only that user's conversations", async () => {
      const store = await openStore();
      const alice = uniqueId('alice');
      const bob = uniqueId('bob');
      const [aliceNewestFirst, bobNewestFirst] = await Promise.all([
        seedUser(store, alice, 4),
        seedUser(store, bob, 3),
      ]);
      assert.deepEqual(await store.listByUser(alice), aliceNewestFirst);
      assert.deepEqual(await store.listByUser(bob), bobNewestFirst);
      assert.deepEqual(await store.listByUser(uniqueId('nobody')), []);
    });

    it("a conversation set again with another userId leaves the old user's list and joins the new one's", async () => {
      const store = await openStore();
      const from = uniqueId('from');
      const to = uniqueId('to');
      const [otherOfFrom] = await seedUser(store, from, 1);
      const conversation = makeConversation({ userId: from, updatedAt: isoAt(500_000) });
      const id = conversation.externalId;
      await store.set(id, conversation);
      assert.deepEqual(await store.listByUser(from), [persisted(conversation), otherOfFrom]);

      const moved = { ...conversation, userId: to };
      await store.set(id, moved);
      assert.deepEqual(await store.listByUser(from), [otherOfFrom]);
      assert.deepEqual(await store.listByUser(to), [persisted(moved)]);
      assert.deepEqual(await store.get(id), persisted(moved));
    });

    // ------------------------------------------------------------ delete

    it("delete removes the conversation from get and from its user's list, and nothing else", async () => {
      const store = await openStore();
      const userId = uniqueId('user');
      const kept = makeConversation({ userId, updatedAt: isoAt(1000) });
      const deleted = makeConversation({ userId, updatedAt: isoAt(2000) });
      const keptId = kept.externalId;
      const deletedId = deleted.externalId;
      await store.set(keptId, kept);
      await store.set(deletedId, deleted);
      assert.equal(await store.delete(deletedId), undefined);
      assert.equal(await store.get(deletedId), undefined);
      assert.deepEqual(await store.get(keptId), persisted(kept));
      assert.deepEqual(await store.listByUser(userId), [persisted(kept)]);
    });

    it('delete of an id that does not exist (or no longer does) resolves', async () => {
      const store = await openStore();
      assert.equal(await store.delete(uniqueId('never-set')), undefined);
      const id = uniqueId();
      await store.set(id, makeConversation({ externalId: id }));
      await store.delete(id);
      assert.equal(await store.delete(id), undefined);
    });

    // ------------------------------------------------------------ validation

    for (const { rule, path, id: badId, bad, options, message } of SET_VALIDATION_RULES) {
      it(`set rejects ${rule} with STORE_INVALID_ARGUMENT naming ${path}, and writes nothing`, async () => {
        const store = await openStore(options);
        const userId = uniqueId('user');
        const previous = makeConversation({ userId });
        const id = previous.externalId;
        const freshId = uniqueId('fresh');
        await store.set(id, previous);

        const targets = badId === undefined ? [id, freshId] : [badId];
        for (const target of targets) {
          await assert.rejects(store.set(target, bad(previous)), (error) => {
            rejectsWith('STORE_INVALID_ARGUMENT', path)(error);
            if (message) assert.match(error.message, message);
            return true;
          });
        }
        assert.deepEqual(await store.get(id), persisted(previous));
        assert.equal(await store.get(freshId), undefined);
        assert.deepEqual(await store.listByUser(userId), [persisted(previous)]);
      });
    }

    it('maxRecordBytes counts UTF-8 bytes of the JSON: exactly the limit is accepted, one byte more is not', async () => {
      const conversation = makeConversation({ messages: [{ text: 'é'.repeat(400) + '🎉'.repeat(50) }] });
      const bytes = Buffer.byteLength(JSON.stringify(conversation));
      const atLimit = await openStore({ maxRecordBytes: bytes });
      const id = conversation.externalId;
      await atLimit.set(id, conversation);
      assert.deepEqual(await atLimit.get(id), conversation);

      const belowLimit = await openStore({ maxRecordBytes: bytes - 1 });
      await assert.rejects(belowLimit.set(id, conversation), rejectsWith('STORE_INVALID_ARGUMENT', 'conversation'));
      assert.equal(await belowLimit.get(id), undefined);
    });

    it('get, delete and listByUser reject an empty or non-string id with STORE_INVALID_ARGUMENT', async () => {
      const store = await openStore();
      await assert.rejects(store.get(''), rejectsWith('STORE_INVALID_ARGUMENT', 'id'));
      await assert.rejects(store.get(7), rejectsWith('STORE_INVALID_ARGUMENT', 'id'));
      await assert.rejects(store.delete(''), rejectsWith('STORE_INVALID_ARGUMENT', 'id'));
      await assert.rejects(store.delete(undefined), rejectsWith('STORE_INVALID_ARGUMENT', 'id'));
      await assert.rejects(store.listByUser(''), rejectsWith('STORE_INVALID_ARGUMENT', 'userId'));
      await assert.rejects(store.listByUser(null), rejectsWith('STORE_INVALID_ARGUMENT', 'userId'));
    });

    it('an id or userId over 64 KiB of UTF-8 is refused before anything is sent', async () => {
      const store = await openStore();
      const long = 'é'.repeat(40_000);
      await assert.rejects(store.get(long), rejectsWith('STORE_INVALID_ARGUMENT', 'id'));
      await assert.rejects(store.delete(long), rejectsWith('STORE_INVALID_ARGUMENT', 'id'));
      await assert.rejects(store.listByUser(long), rejectsWith('STORE_INVALID_ARGUMENT', 'userId'));
      assert.deepEqual(await store.listByUser('é'.repeat(30_000)), []);
      // A conversation whose owner's list could never be asked for is not stored either.
      const unlistable = makeConversation({ userId: long });
      await assert.rejects(
        store.set(unlistable.externalId, unlistable),
        rejectsWith('STORE_INVALID_ARGUMENT', 'userId'),
      );
      assert.equal(await store.get(unlistable.externalId), undefined);
      const listable = makeConversation({ userId: 'é'.repeat(30_000) });
      await store.set(listable.externalId, listable);
      assert.deepEqual(await store.listByUser(listable.userId), [persisted(listable)]);
    });

    it('get, delete and listByUser reject an id with a lone surrogate: it never aliases the id napi would make of it', async () => {
      const store = await openStore();
      const conversation = makeConversation({ userId: 'user-\uFFFD' });
      await store.set(conversation.externalId, conversation);
      await assert.rejects(store.get('a\uDC00'), rejectsWith('STORE_INVALID_ARGUMENT', 'id'));
      await assert.rejects(store.delete('\uD83D'), rejectsWith('STORE_INVALID_ARGUMENT', 'id'));
      await assert.rejects(store.listByUser('user-\uD800'), rejectsWith('STORE_INVALID_ARGUMENT', 'userId'));
      assert.deepEqual(await store.listByUser('user-\uFFFD'), [conversation]);
    });

    it('a toJSON that puts sdkConversationRef back does not get it stored', async () => {
      const store = await openStore();
      const conversation = makeConversation({ sdkConversationRef: { live: true } });
      conversation.toJSON = function toJSON() {
        return { ...this, sdkConversationRef: { smuggled: true } };
      };
      await store.set(conversation.externalId, conversation);
      const got = await store.get(conversation.externalId);
      assert.equal(Object.hasOwn(got, 'sdkConversationRef'), false, JSON.stringify(got));
      const [listed] = await store.listByUser(conversation.userId);
      assert.equal(Object.hasOwn(listed, 'sdkConversationRef'), false);
      assert.equal(Object.hasOwn(got, 'toJSON'), false);
    });

    // ------------------------------------------------------------ close

    it('a set made in the same tick before close() settles as if close() came after it', async () => {
      const store = await openStore();
      const conversations = [makeConversation(), makeConversation()];
      const writes = conversations.map((c) => store.set(c.externalId, c));
      const read = store.get(conversations[0].externalId);
      const closed = store.close();
      const outcomes = await Promise.allSettled([...writes, read]);
      assert.deepEqual(
        outcomes.map((o) => o.reason?.code ?? o.status),
        ['fulfilled', 'fulfilled', 'fulfilled'],
      );
      await closed;
      assert.equal(store.status, 'end');
      await assert.rejects(store.get(conversations[0].externalId), rejectsWith('STORE_CLOSED'));
    });

    it("after close() every method rejects with STORE_CLOSED and status is 'end'", async () => {
      const store = await openStore();
      const conversation = makeConversation();
      const id = conversation.externalId;
      await store.set(id, conversation);
      await store.close();
      assert.equal(store.status, 'end');
      await assert.rejects(store.get(id), rejectsWith('STORE_CLOSED'));
      await assert.rejects(store.set(id, conversation), rejectsWith('STORE_CLOSED'));
      await assert.rejects(store.delete(id), rejectsWith('STORE_CLOSED'));
      await assert.rejects(store.listByUser(conversation.userId), rejectsWith('STORE_CLOSED'));
      await assert.rejects(store.ready(), rejectsWith('STORE_CLOSED'));
      assert.equal(store.status, 'end');
    });
  });
}

// ---------------------------------------------------------------- the two stores

/**
 * The trim starts exactly past listLimit: `store` (listLimit 3) writes to the server `redis`,
 * and `indexKey` is the index of `userId` under its prefix. With a ghost (an entry without a
 * record) at the bottom and two live conversations, an update adds no entry, so the write
 * samples nothing and the ghost stays (its script counts the index before the ZADD and adds
 * what the ZADD added); a new conversation makes listLimit + 1 entries, and the ghost goes.
 */
async function checkTrimStartsPastListLimit(store, redis, { userId, indexKey }) {
  await redis.cli('ZADD', indexKey, Date.parse(isoAt(1)), 'expired-0');
  const live = [2, 3].map((i) => makeConversation({ userId, updatedAt: isoAt(i) }));
  for (const c of live) await store.set(c.externalId, c);
  await store.set(live[0].externalId, { ...live[0], status: 'completed' });
  assert.equal(await redis.cli('ZCARD', indexKey), '3');
  assert.match(await redis.cli('ZRANGE', indexKey, 0, -1), /expired-0/, 'an update at listLimit trimmed');
  const newer = makeConversation({ userId, updatedAt: isoAt(4) });
  await store.set(newer.externalId, newer);
  assert.deepEqual(
    new Set((await redis.cli('ZRANGE', indexKey, 0, -1)).split('\n')),
    new Set([...live, newer].map((c) => c.externalId)),
  );
}

module.exports = { defineContractSuite, rejectsWith, checkTrimStartsPastListLimit };
