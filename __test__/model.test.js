'use strict';
// Model-based test: random sequences of set/get/delete/listByUser, one call at a time or
// several made in one tick, run on a RedisConversationStore (a real TLS redis-server) and an
// InMemoryConversationStore side by side, and every outcome must agree: the value, or the
// error code. Ids, userIds and texts are odd on purpose (`:`, `{}`, `*`, newlines, emoji,
// NUL, 10 KB, lone surrogates), drawn from small pools so that sequences overwrite, move,
// tie and truncate.
//
// MODEL_RUNS sets the number of runs (npm run test:model runs many). On failure fast-check
// prints the seed, the path and the shrunk sequence; MODEL_SEED alone replays the run and its
// shrinking, MODEL_SEED + MODEL_PATH + MODEL_REPLAY_PATH (the counterexample's replayPath)
// jump straight to the shrunk sequence.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fc = require('fast-check');

const { InMemoryConversationStore, RedisConversationStore } = require('..');
const { startRedis, stopAll, withLogOnFailure } = require('../support/redis');
const { isoAt, uuidFrom } = require('../support/conversations');
const { silentLogger } = require('../support/observe');

const RUNS = positiveInteger('MODEL_RUNS', 150);
const SEED = process.env.MODEL_SEED === undefined ? undefined : Number(process.env.MODEL_SEED);
const PATH = process.env.MODEL_PATH;
// The `/*replayPath=...*/` of a counterexample: which of its commands ran.
const REPLAY_PATH = process.env.MODEL_REPLAY_PATH;

function positiveInteger(name, fallback) {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number < 1)
    throw new Error(`${name}: expected a positive integer, got ${value}`);
  return number;
}

// ------------------------------------------------------------------ inputs

const TEN_KB = 'x'.repeat(10 * 1024);
const LONE_SURROGATES = ['\uD800', 'a\uDFFF', '\uDE00\uD83D', 'user\uDBFF'];

/** Strings no store may trip over: key syntax, JSON syntax, control characters, size. */
const ODD = [
  ':',
  '{}',
  '*',
  'user:1:conversations',
  '{user}:*',
  'line\nbreak',
  '\r\n',
  '😀',
  '\u0000',
  'nul\u0000byte',
  TEN_KB,
  ' ',
  '"',
  '\\',
  '\u2028',
  '\uFEFF',
  'é',
];

/** A few conversation ids, so that sets overwrite, gets find and deletes remove. */
const IDS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => uuidFrom(`model-${i}`));
// The same UUID in capitals is another id: both stores must keep the two apart.
IDS.push(IDS[0].toUpperCase());

/** Most records go to a few users, so their lists fill past listLimit. */
const FREQUENT_USERS = ['u1', '{user}:*'];
const USERS = [
  'u2',
  TEN_KB,
  ':',
  '{}',
  '*',
  'user:1:conversations',
  'line\nbreak',
  '\r\n',
  'nul\u0000byte',
  '😀',
  '\u0000',
];

const loneSurrogate = fc.oneof(
  fc.constantFrom(...LONE_SURROGATES),
  fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => String.fromCharCode(unit)),
);

/** Any non-empty text without lone surrogates. */
const wellFormedText = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...ODD) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }) },
);

/** Text a conversation may carry anywhere a string goes (lone surrogates included). */
const anyText = fc.oneof({ weight: 6, arbitrary: wellFormedText }, { weight: 1, arbitrary: loneSurrogate });

const userId = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...FREQUENT_USERS) },
  { weight: 3, arbitrary: fc.constantFrom(...USERS) },
  { weight: 1, arbitrary: wellFormedText },
  // Refused by both: a lone surrogate could alias another user's key.
  { weight: 1, arbitrary: loneSurrogate },
);

/** An id for get/delete: mostly a stored one, sometimes anything at all. */
const anyId = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...IDS) },
  { weight: 2, arbitrary: wellFormedText },
  { weight: 1, arbitrary: loneSurrogate },
  { weight: 1, arbitrary: fc.constant('') },
);

/** updatedAt: a handful of seconds, each spelled several ways, so scores collide. */
const updatedAt = fc
  .tuple(fc.integer({ min: 0, max: 4 }), fc.constantFrom('ms', 'seconds', 'tenths', 'micros'))
  .map(([second, spelling]) => {
    const iso = isoAt(second * 1000);
    if (spelling === 'seconds') return iso.replace('.000Z', 'Z');
    if (spelling === 'tenths') return iso.replace('.000Z', '.0Z');
    if (spelling === 'micros') return iso.replace('.000Z', '.000000Z');
    return iso;
  });

const message = fc.record({
  id: anyText,
  role: fc.constantFrom('user', 'agent'),
  type: fc.constantFrom('text', 'typing', 'error'),
  text: anyText,
  timestamp: fc.constant(isoAt(0)),
});

const conversation = fc.record(
  {
    externalId: fc.constantFrom(...IDS),
    history: fc.array(message, { maxLength: 4 }),
    userId,
    tenantId: anyText,
    createdAt: fc.constant(isoAt(0)),
    updatedAt,
    status: fc.constantFrom('active', 'completed', 'abandoned'),
    metadata: fc.dictionary(fc.string({ maxLength: 4 }), anyText, { maxKeys: 2 }),
    sdkConversationRef: fc.constant({ live: 'SDK object' }),
  },
  { requiredKeys: ['externalId', 'history', 'userId', 'tenantId', 'createdAt', 'updatedAt', 'status'] },
);

// ------------------------------------------------------------------ commands

/** A readable, replayable spelling of a value: long repeats as `.repeat`, the rest as JSON. */
function show(value) {
  return JSON.stringify(value, (_, v) => (typeof v === 'string' && v === TEN_KB ? '<TEN_KB>' : v)).replaceAll(
    '"<TEN_KB>"',
    "'x'.repeat(10240)",
  );
}

/** What a call ended with: its value, or its error's code (never an uncoded error). */
async function outcome(call) {
  try {
    return { value: await call() };
  } catch (error) {
    return { code: error?.code ?? `uncoded ${error?.name}: ${error?.message}` };
  }
}

/** Runs one call on both stores and asserts they agree; returns the agreed outcome. */
async function onBoth(real, describe, call) {
  const [memory, redis] = await Promise.all([outcome(() => call(real.memory)), outcome(() => call(real.redis))]);
  real.log.push(`${describe} -> ${show(memory)}`);
  assert.deepStrictEqual(
    redis,
    memory,
    `Redis and memory disagree on ${describe}\nRedis:  ${show(redis)}\nmemory: ${show(memory)}\nsteps so far:\n  ${real.log.join('\n  ')}`,
  );
  return memory;
}

/** The argument rules both stores keep: agreeing on a wrong answer is still wrong. */
function assertRefused(result, why, describe) {
  assert.deepStrictEqual(result, { code: 'STORE_INVALID_ARGUMENT' }, `${describe}: ${why}, so both must refuse it`);
}

function badId(id) {
  if (id === '') return 'an empty id';
  if (!id.isWellFormed()) return 'a lone surrogate';
  return undefined;
}

class SetCommand {
  constructor(conversation, id) {
    this.conversation = conversation;
    this.id = id;
  }
  check() {
    return true;
  }
  async run(_model, real) {
    const describe = this.toString();
    const result = await onBoth(real, describe, (store) => store.set(this.id, this.conversation));
    if (this.id !== this.conversation.externalId) assertRefused(result, 'the id is not the externalId', describe);
    if (!this.conversation.userId.isWellFormed()) assertRefused(result, 'the userId has a lone surrogate', describe);
  }
  toString() {
    return `set(${show(this.id)}, ${show(this.conversation)})`;
  }
}

/** get, delete or listByUser of one id (or userId): both stores must agree, and refuse a bad one. */
class OneArgumentCommand {
  constructor(method, argument, name) {
    this.method = method;
    this.argument = argument;
    this.name = name;
  }
  check() {
    return true;
  }
  async run(_model, real) {
    const describe = this.toString();
    const result = await onBoth(real, describe, (store) => store[this.method](this.argument));
    const bad = badId(this.argument);
    if (bad) assertRefused(result, `${this.name} is ${bad}`, describe);
  }
  toString() {
    return `${this.method}(${show(this.argument)})`;
  }
}

/**
 * Several gets, sets and deletes made in one tick, not awaited one by one: the Redis store
 * sends them as batches (a turn's sets as one transaction), the memory store runs them in call
 * order. Calls on one id keep their order in both, so every outcome must agree.
 */
class BurstCommand {
  constructor(calls) {
    this.calls = calls;
  }
  check() {
    return true;
  }
  async run(_model, real) {
    const describe = this.toString();
    const inOneTick = (store) =>
      Promise.all(
        this.calls.map((call) =>
          outcome(() => (call.method === 'set' ? store.set(call.id, call.conversation) : store[call.method](call.id))),
        ),
      );
    const [memory, redis] = await Promise.all([inOneTick(real.memory), inOneTick(real.redis)]);
    real.log.push(`${describe} -> ${show(memory)}`);
    assert.deepStrictEqual(
      redis,
      memory,
      `Redis and memory disagree on ${describe}\nRedis:  ${show(redis)}\nmemory: ${show(memory)}\nsteps so far:\n  ${real.log.join('\n  ')}`,
    );
    for (const [i, call] of this.calls.entries()) {
      if (call.method === 'set' && call.id !== call.conversation.externalId)
        assertRefused(memory[i], 'the id is not the externalId', describe);
      if (call.method === 'set' && !call.conversation.userId.isWellFormed())
        assertRefused(memory[i], 'the userId has a lone surrogate', describe);
      if (call.method !== 'set' && badId(call.id)) assertRefused(memory[i], `the id is ${badId(call.id)}`, describe);
    }
  }
  toString() {
    const calls = this.calls.map((call) =>
      call.method === 'set'
        ? `store.set(${show(call.id)}, ${show(call.conversation)})`
        : `store.${call.method}(${show(call.id)})`,
    );
    return `inOneTick([${calls.join(', ')}])`;
  }
}

/** set's id: the conversation's own (externalId), else a mismatch both must refuse. */
const setCommand = fc
  .tuple(conversation, fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: anyId }))
  .map(([c, other]) => new SetCommand(c, other ?? c.externalId));

const burstCommand = fc
  .array(
    fc.oneof(
      { weight: 3, arbitrary: setCommand.map(({ id, conversation }) => ({ method: 'set', id, conversation })) },
      { weight: 1, arbitrary: anyId.map((id) => ({ method: 'get', id })) },
      { weight: 1, arbitrary: anyId.map((id) => ({ method: 'delete', id })) },
    ),
    { minLength: 2, maxLength: 20 },
  )
  .map((calls) => new BurstCommand(calls));

const commands = fc.commands(
  [
    burstCommand,
    // Four times as likely: sequences need records to read, move, tie and truncate.
    setCommand,
    setCommand,
    setCommand,
    setCommand,
    anyId.map((id) => new OneArgumentCommand('get', id, 'id')),
    anyId.map((id) => new OneArgumentCommand('delete', id, 'id')),
    userId.map((user) => new OneArgumentCommand('listByUser', user, 'userId')),
    userId.map((user) => new OneArgumentCommand('listByUser', user, 'userId')),
  ],
  { maxCommands: 80, size: 'large', replayPath: REPLAY_PATH },
);

// ------------------------------------------------------------------ the test

let server;
let runs = 0;

before(async () => {
  server = await startRedis();
});
after(stopAll);

test(
  `${RUNS} random sequences of set/get/delete/listByUser: Redis and memory agree on every outcome`,
  { timeout: 120_000 + RUNS * 2_000 },
  () =>
    withLogOnFailure(server, () =>
      fc.assert(
        fc.asyncProperty(
          fc.record({ listLimit: fc.integer({ min: 3, max: 5 }) }),
          commands,
          async ({ listLimit }, cmds) => {
            runs += 1;
            // A small maxRecordBytes: a few 10 KB texts make a record both must refuse.
            const options = { listLimit, maxRecordBytes: 32 * 1024, logger: silentLogger };
            const memory = new InMemoryConversationStore(options);
            const redis = new RedisConversationStore(server.url, {
              ...options,
              tls: { ca: server.caPem },
              keyPrefix: `model-${process.pid}-${runs}:`,
            });
            try {
              await redis.ready();
              await fc.asyncModelRun(() => ({ model: {}, real: { memory, redis, log: [] } }), cmds);
            } finally {
              await Promise.all([memory.close(), redis.close()]);
            }
          },
        ),
        { numRuns: RUNS, seed: SEED, path: PATH, endOnFailure: PATH !== undefined, includeErrorInReport: true },
      ),
    ),
);
