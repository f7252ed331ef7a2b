'use strict';
// The batcher's own state machine (lib/batcher.js), over a native half that records what it is
// asked and answers at once: how calls are gathered into native calls, and in what order they
// leave. What the store does with them over a real Redis is tested in redis-layout.test.js.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { setImmediate: nextTurn } = require('node:timers/promises');

const { batchedRedisStore } = require('../lib/batcher');

/** A native half that logs each call as `method:ids` and settles it at once. */
function recordingNative() {
  const log = [];
  const answer = (entry, value) => {
    log.push(entry);
    return Promise.resolve(value);
  };
  const batch = (ids) => ({ values: ids.map(() => null), errors: ids.map(() => null) });
  const native = {
    status: 'ready',
    get: (id) => answer(`get:${id}`, null),
    set: (id) => answer(`set:${id}`, undefined),
    getBatch: (ids) => answer(`getBatch:${ids.join(',')}`, batch(ids)),
    setBatch: (ids) => answer(`setBatch:${ids.join(',')}`, batch(ids)),
    deleteBatch: (ids) => answer(`deleteBatch:${ids.join(',')}`, batch(ids)),
    delete: (id) => answer(`delete:${id}`, undefined),
    listByUser: (userId) => answer(`listByUser:${userId}`, '[]'),
    close: () => answer('close', undefined),
    stats: () => ({}),
    recordRefused: () => {},
  };
  return { native, log };
}

test('gets and sets on different ids made in one turn go as one batch of each kind, interleaved or not', async () => {
  const { native, log } = recordingNative();
  const store = batchedRedisStore(/** @type {any} */ (native));
  const calls = [];
  for (let i = 0; i < 8; i++) calls.push(store.get(`g${i}`), store.set(`s${i}`, '{}'));
  await Promise.all(calls);
  assert.deepEqual(log, ['getBatch:g0,g1,g2,g3,g4,g5,g6,g7', 'setBatch:s0,s1,s2,s3,s4,s5,s6,s7']);
});

test('deletes on different ids made in one turn go as one batch; a call made after one on its id sends that batch, then goes alone', async () => {
  const { native, log } = recordingNative();
  const store = batchedRedisStore(/** @type {any} */ (native));
  const calls = [store.delete('a'), store.delete('b'), store.get('c'), store.delete('d')];
  await Promise.all(calls);
  assert.deepEqual(log, ['deleteBatch:a,b,d', 'get:c']);
  // A get or a set made after a queued delete of its id sends that delete's batch first and
  // goes alone; a second delete of one id too.
  const more = [store.delete('e'), store.delete('f'), store.get('e'), store.delete('f'), store.set('g', '{}')];
  assert.deepEqual(log.slice(2), ['deleteBatch:e,f', 'get:e', 'delete:f']);
  await Promise.all(more);
  assert.deepEqual(log.slice(5), ['set:g']);
});

test('a call on a busy id sends the queues holding it, then goes alone; quiet ids keep batching', async () => {
  const { native, log } = recordingNative();
  const store = batchedRedisStore(/** @type {any} */ (native));
  const calls = [store.get('a'), store.get('b'), store.set('b', '{}'), store.get('b'), store.get('c')];
  await Promise.all(calls);
  assert.deepEqual(log, ['getBatch:a,b', 'set:b', 'get:b', 'get:c']);
  // Settled, b is quiet again.
  await Promise.all([store.get('b'), store.get('d')]);
  assert.deepEqual(log.slice(4), ['getBatch:b,d']);
});

test("a quiet id's call does not wait for a busy id's calls: it is never in their batch", async () => {
  const { native } = recordingNative();
  // The native store holds each write on `hot` until released, and a get made after it, as it
  // holds a call queued behind others on its id.
  /** @type {(() => void)[]} */
  const held = [];
  const hold = (/** @type {string[]} */ ids, /** @type {any} */ value) =>
    ids.includes('hot') ? new Promise((resolve) => held.push(() => resolve(value))) : Promise.resolve(value);
  const batch = (/** @type {string[]} */ ids) => ({ values: ids.map(() => null), errors: ids.map(() => null) });
  native.set = (id) => hold([id], undefined);
  native.get = (id) => hold([id], null);
  native.getBatch = (ids) => hold(ids, batch(ids));
  const store = batchedRedisStore(/** @type {any} */ (native));
  const write = store.set('hot', '{}');
  await nextTurn();
  // Made in one turn: before, both went in one batch, and the quiet get settled with the hot one.
  const read = store.get('hot');
  const quiet = store.get('quiet');
  const settled = await Promise.race([
    quiet.then(() => 'quiet'),
    nextTurn()
      .then(() => nextTurn())
      .then(() => 'held'),
  ]);
  assert.equal(settled, 'quiet');
  for (const release of held) release();
  await Promise.all([write, read]);
});

test('gets of one id with only gets in flight still batch: the native store lets them join', async () => {
  const { native, log } = recordingNative();
  const store = batchedRedisStore(/** @type {any} */ (native));
  await Promise.all([store.get('a'), store.get('a'), store.get('b')]);
  assert.deepEqual(log, ['getBatch:a,a,b']);
});

test('a delete sends the queues holding its id first; a list and close() send every queue first', async () => {
  const { native, log } = recordingNative();
  const store = batchedRedisStore(/** @type {any} */ (native));
  const calls = [store.set('x', '{}'), store.set('y', '{}'), store.get('z')];
  calls.push(store.delete('y'));
  assert.deepEqual(log, ['setBatch:x,y', 'delete:y']);
  calls.push(store.get('w'), store.listByUser('u'));
  assert.deepEqual(log.slice(2), ['getBatch:z,w', 'listByUser:u']);
  calls.push(store.set('v', '{}'), store.close());
  assert.deepEqual(log.slice(4), ['set:v', 'close']);
  await Promise.all(calls);
});

test('a batch leaves at the end of the turn, or at once when it holds 16 calls', async () => {
  const { native, log } = recordingNative();
  const store = batchedRedisStore(/** @type {any} */ (native));
  const calls = Array.from({ length: 17 }, (_, i) => store.get(`k${i}`));
  assert.equal(log.length, 1, 'the 16th call sends the batch');
  await nextTurn();
  assert.equal(log.length, 2);
  assert.equal(log[1], 'get:k16');
  await Promise.all(calls);
});
