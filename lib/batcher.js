// @ts-check
'use strict';
// The native Redis store with `get`, `set` and `delete` batched per turn of the event loop.

const timers = require('node:timers');

/**
 * `setImmediate` as Node loaded it. Fake timers (Sinon's, Vitest's, node:test's `mock.timers`)
 * replace the global and `node:timers`' own; should the package be loaded while they are on,
 * a batch would wait for a fake clock, so batches then close at the microtask checkpoint, as
 * they did before. Sinon marks its fakes with `clock`; node:test's is its bound
 * `#setImmediate`. A wrapper that calls the real one (an APM agent's) is kept.
 * @type {(callback: () => void) => void}
 */
const closeTurn =
  'clock' in timers.setImmediate || timers.setImmediate.name.includes('#setImmediate')
    ? queueMicrotask
    : timers.setImmediate;

/** @typedef {import('../binding').BatchReply} BatchReply */
/** @typedef {import('../index').StoreOperation} StoreOperation */
/**
 * What both stores' native halves offer: the Redis one answers with promises, the in-memory
 * one with values.
 * @typedef {object} NativeStore
 * @property {import('../binding').StoreStatus} status
 * @property {(id: string) => Promise<string | null> | string | null} get
 * @property {(id: string, json: string) => Promise<void> | void} set
 * @property {(id: string) => Promise<void> | void} delete
 * @property {(userId: string) => Promise<string> | string} listByUser
 * @property {() => Promise<void> | void} close
 * @property {() => import('../binding').NativeStoreStats} stats
 * @property {(operation: StoreOperation, code: string, message: string) => void} recordRefused
 */

/**
 * Gathers the calls made in one turn of the event loop into one native batch call: their
 * commands leave Node in one write, and one native promise settles them all.
 *
 * The batch goes at `setImmediate`, after the poll phase, not at the end of the current
 * microtask checkpoint: Node settles each native completion in its own callback, with a
 * checkpoint after each, so a batch closed at the checkpoint held the one call its completion
 * prompted, and under load every call went alone (its own native call, TLS record and write,
 * and a read and a reply write for redis-server). Closed at `setImmediate`, a batch takes the
 * calls prompted by every completion delivered in that turn (get at c=64: 54.7 → 44.3 µs of
 * CPU per call, redis-server's reads 62,000 → 5,000 a second; docs/performance.md,
 * "Changes measured").
 * `setImmediate` is captured when the package loads (a test's fake timers installed later do
 * not hold the store's calls back).
 *
 * Calls on one id are sent in the order they were made (see {@link Lane}); a `listByUser` and
 * `close()` send every queue first. The native store takes each call's turn on its id as it
 * is handed over and applies the calls on one id in that order (`src/store/order.rs`).
 */
// Several batches in flight keep JSON work on the JS thread overlapping with Redis round
// trips; one batch of everything would run them in lockstep (measured: 16 beats 4, 64, 1, and
// with batches closed at setImmediate, 8 and 64).
const MAX_BATCH = 16;

/**
 * One call waiting in a batch: its arguments and how to settle it.
 * @typedef {object} QueuedCall
 * @property {string} first
 * @property {string} [second]
 * @property {(value: any) => void} resolve
 * @property {(error: unknown) => void} reject
 */

/**
 * A store's batchers (its gets, its sets and its deletes) and the ids with calls queued or in
 * flight, so that calls on one id leave in the order they were made. A call that the native
 * store would make wait (a write on an id with any call queued or not settled, a get on an id
 * with a write queued or not settled) sends the queues holding that id, then goes alone:
 * alone it holds no batch of other ids back (a batch settles with its slowest call). Other
 * calls keep batching whatever their kinds; gets of one id join one another there without
 * waiting.
 */
/** Adds `by` to `id`'s count in `counts`, which holds no zero. */
function count(/** @type {Map<string, number>} */ counts, /** @type {string} */ id, /** @type {number} */ by) {
  const next = (counts.get(id) ?? 0) + by;
  if (next > 0) counts.set(id, next);
  else counts.delete(id);
}

class Lane {
  /** @type {CallBatcher[]} */
  #batchers = [];
  /** Calls queued or not settled, per id. @type {Map<string, number>} */
  #calls = new Map();
  /** Sets and deletes queued or not settled, per id. @type {Map<string, number>} */
  #writes = new Map();

  /** @param {CallBatcher} batcher */
  add(batcher) {
    this.#batchers.push(batcher);
  }

  /** Whether a call on `id` (a set or delete if `write`, else a get) would wait for others. */
  busy(/** @type {string} */ id, /** @type {boolean} */ write) {
    return (write ? this.#calls : this.#writes).has(id);
  }

  /** A call on `id` is queued or sent. */
  take(/** @type {string} */ id, /** @type {boolean} */ write) {
    count(this.#calls, id, 1);
    if (write) count(this.#writes, id, 1);
  }

  /** A call on `id` settled. */
  release(/** @type {string} */ id, /** @type {boolean} */ write) {
    count(this.#calls, id, -1);
    if (write) count(this.#writes, id, -1);
  }

  /**
   * Sends `run()`, a native call on `id`, alone, after the queues holding `id`; settles as it
   * does, and releases `id` then.
   * @template T
   * @param {string} id
   * @param {boolean} write
   * @param {() => Promise<T>} run
   * @returns {Promise<T>}
   */
  alone(id, write, run) {
    this.flushHolding(id);
    this.take(id, write);
    let sent;
    try {
      sent = run();
    } catch (error) {
      this.release(id, write);
      throw error;
    }
    return sent.then(
      (value) => {
        this.release(id, write);
        return value;
      },
      (error) => {
        this.release(id, write);
        throw error;
      },
    );
  }

  /** Sends the queues holding `id` now: before a call on it that goes alone (`alone`). */
  flushHolding(/** @type {string} */ id) {
    for (const batcher of this.#batchers) if (batcher.holds(id)) batcher.flush();
  }

  /** Sends every queue now: before a `listByUser` (a pending set may be its user's) and `close()`. */
  flush() {
    for (const batcher of this.#batchers) batcher.flush();
  }
}

class CallBatcher {
  /** @type {Lane} */
  #lane;
  /** @type {(first: string, second?: string) => Promise<any>} */
  #runOne;
  /** @type {(calls: QueuedCall[]) => Promise<BatchReply>} */
  #runBatch;
  /** Its calls are writes (sets or deletes), not gets. */
  #write;
  /** @type {QueuedCall[] | null} */
  #queue = null;
  /** The ids in `#queue`. */
  #ids = new Set();

  /**
   * @param {Lane} lane
   * @param {boolean} write
   * @param {(first: string, second?: string) => Promise<any>} runOne
   * @param {(calls: QueuedCall[]) => Promise<BatchReply>} runBatch
   */
  constructor(lane, write, runOne, runBatch) {
    this.#lane = lane;
    this.#write = write;
    this.#runOne = runOne;
    this.#runBatch = runBatch;
    lane.add(this);
  }

  /** Whether a call on `id` waits in this batcher's queue. */
  holds(/** @type {string} */ id) {
    return this.#ids.has(id);
  }

  /** @param {string} first @param {string} [second] @returns {Promise<any>} */
  call(first, second) {
    const lane = this.#lane;
    const write = this.#write;
    if (lane.busy(first, write)) return lane.alone(first, write, () => this.#runOne(first, second));
    lane.take(first, write);
    if (this.#queue === null) {
      /** @type {QueuedCall[]} */
      const queue = [];
      this.#queue = queue;
      closeTurn(() => this.#flush(queue));
    }
    const queue = /** @type {QueuedCall[]} */ (this.#queue);
    const settled = new Promise((resolve, reject) =>
      queue.push({
        first,
        second,
        resolve: (value) => {
          lane.release(first, write);
          resolve(value);
        },
        reject: (error) => {
          lane.release(first, write);
          reject(error);
        },
      }),
    );
    this.#ids.add(first);
    if (queue.length >= MAX_BATCH) this.#flush(queue);
    return settled;
  }

  /** Sends what this turn gathered now, e.g. before `close()`. */
  flush() {
    if (this.#queue !== null) this.#flush(this.#queue);
  }

  /** @param {QueuedCall[]} queue */
  #flush(queue) {
    if (this.#queue !== queue) return;
    this.#queue = null;
    this.#ids.clear();
    try {
      if (queue.length === 1) {
        const [only] = queue;
        this.#runOne(only.first, only.second).then(only.resolve, only.reject);
        return;
      }
      this.#runBatch(queue).then(
        ({ values, errors }) => {
          queue.forEach((call, i) => {
            const error = errors[i];
            if (error == null) call.resolve(values[i]);
            else call.reject(new Error(error));
          });
        },
        (error) => {
          for (const call of queue) call.reject(error);
        },
      );
    } catch (error) {
      for (const call of queue) call.reject(error);
    }
  }
}

/**
 * The native Redis store with `get`, `set` and `delete` batched per turn of the event loop.
 * @param {import('../binding').NativeRedisStore} native
 * @returns {NativeStore}
 */
function batchedRedisStore(native) {
  const lane = new Lane();
  const gets = new CallBatcher(
    lane,
    false,
    (id) => native.get(id),
    (calls) => native.getBatch(calls.map((call) => call.first)),
  );
  const sets = new CallBatcher(
    lane,
    true,
    (id, json) => native.set(id, /** @type {string} */ (json)),
    (calls) =>
      native.setBatch(
        calls.map((call) => call.first),
        calls.map((call) => /** @type {string} */ (call.second)),
      ),
  );
  const deletes = new CallBatcher(
    lane,
    true,
    (id) => native.delete(id),
    (calls) => native.deleteBatch(calls.map((call) => call.first)),
  );
  return {
    get status() {
      return native.status;
    },
    get: (id) => gets.call(id),
    set: (id, json) => sets.call(id, json),
    delete: (id) => deletes.call(id),
    listByUser: (userId) => {
      lane.flush();
      return native.listByUser(userId);
    },
    stats: () => native.stats(),
    recordRefused: (operation, code, message) => native.recordRefused(operation, code, message),
    // Calls gathered in this turn were made before close(): they go out first and finish.
    close: () => {
      lane.flush();
      return native.close();
    },
  };
}

module.exports = { batchedRedisStore };
