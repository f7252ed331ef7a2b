'use strict';
// Watching a store from a test: its log lines as events, its status, and a load whose every
// call is timed and whose every read is checked against what the load wrote.

const assert = require('node:assert/strict');
const { EventEmitter } = require('node:events');
const { isDeepStrictEqual } = require('node:util');
const { setTimeout: delay } = require('node:timers/promises');

const { makeConversation, isoAt, uniqueId, persisted } = require('./conversations');

/**
 * `openStore(t, url, options)` for a test file: a `RedisConversationStore` with `defaults`
 * (timeouts, say) under `options`, silent unless a logger is given, closed after the test.
 */
function storeOpener(RedisConversationStore, defaults) {
  return (t, url, options) => {
    const store = new RedisConversationStore(url, { logger: silentLogger, ...defaults, ...options });
    t.after(() => store.close());
    return store;
  };
}

/** A `logger` option that drops every line. */
const silentLogger = { info() {}, warn() {}, error() {} };

/**
 * A `logger` option that records lines (and when each came) and lets a test await one.
 * `lines` are the texts; `entries` the texts with their level. `waitFor(pattern, options)`
 * takes any line, `waitFor(level, pattern, options)` one of that level.
 */
function recordingLogger() {
  const lines = [];
  const entries = [];
  const times = []; // performance.now() of each line, same index
  const events = new EventEmitter();
  const record = (level) => (line) => {
    lines.push(line);
    entries.push({ level, line });
    times.push(performance.now());
    events.emit('line', lines.length - 1);
  };
  /** Resolves with the index of the first line (since `from`, or next) of `level` matching `pattern`. */
  const waitForIndex = (level, pattern, { from = 0, timeoutMs = 15_000 } = {}) => {
    const matches = (i) => (level === undefined || entries[i].level === level) && pattern.test(lines[i]);
    for (let i = from; i < lines.length; i++) if (matches(i)) return Promise.resolve(i);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        events.off('line', onLine);
        reject(
          new Error(
            `no ${level ?? 'log'} line matching ${pattern} within ${timeoutMs} ms; lines:\n${lines.join('\n')}`,
          ),
        );
      }, timeoutMs);
      const onLine = (i) => {
        if (!matches(i)) return;
        clearTimeout(timer);
        events.off('line', onLine);
        resolve(i);
      };
      events.on('line', onLine);
    });
  };
  const withLevel = (args) => (typeof args[0] === 'string' ? args : [undefined, ...args]);
  return {
    logger: { info: record('info'), warn: record('warn'), error: record('error') },
    lines,
    entries,
    times,
    /** Resolves with the first line (already logged since `from`, or next) matching. */
    async waitFor(...args) {
      return lines[await waitForIndex(...withLevel(args))];
    },
    /** Like waitFor, with the performance.now() at which the line was logged: `{ line, at }`. */
    async waitForEntry(...args) {
      const i = await waitForIndex(...withLevel(args));
      return { line: lines[i], at: times[i] };
    },
  };
}

/** Bounded polling of `store.status` (the store has no status events). */
async function waitForStatus(store, wanted, timeoutMs = 15_000) {
  const until = Date.now() + timeoutMs;
  while (store.status !== wanted) {
    if (Date.now() > until)
      throw new Error(`status stayed '${store.status}', expected '${wanted}' within ${timeoutMs} ms`);
    await delay(20);
  }
}

/** Times one call: `{ ok, value?, error?, ms }`, never throws. */
async function timed(call) {
  const start = performance.now();
  try {
    const value = await call();
    return { ok: true, value, ms: performance.now() - start };
  } catch (error) {
    return { ok: false, error, ms: performance.now() - start };
  }
}

/** Runs `promise` to its rejection; returns the error and how long it took. */
async function timedRejection(promise) {
  const started = performance.now();
  const error = await promise.then(
    () => assert.fail('expected a rejection'),
    (e) => e,
  );
  return { error, elapsedMs: performance.now() - started };
}

// ---------------------------------------------------------------- what a load wrote

/** A load's writes all carry updatedAt this far after the fixtures' createdAt, plus their number. */
const LOAD_CLOCK_START_MS = 24 * 3600_000;

/**
 * Every version a load tried to write, per id, in the order written, and how each write ended:
 * 'pending', 'acknowledged', or 'unknown' (rejected: a write that timed out may still apply).
 * From it, which values a read may return: nothing else passes.
 */
class WriteHistory {
  constructor({ listLimit }) {
    this.listLimit = listLimit;
    this.ids = new Map(); // id → { userId, versions: [{ seq, expected, state }] }
    this.users = new Map(); // userId → Set of ids
  }

  /** Records a write about to be sent; returns its version, to `settle` once it ends. */
  attempt(seq, conversation) {
    const id = conversation.externalId;
    let entry = this.ids.get(id);
    if (!entry) {
      entry = { userId: conversation.userId, versions: [] };
      this.ids.set(id, entry);
      if (!this.users.has(entry.userId)) this.users.set(entry.userId, new Set());
      this.users.get(entry.userId).add(id);
    }
    assert.equal(conversation.userId, entry.userId, 'a load never moves an id to another user');
    const version = { seq, expected: persisted(conversation), state: 'pending' };
    entry.versions.push(version);
    return version;
  }

  /** Marks how a write ended; once one is acknowledged, the versions before it no longer matter. */
  settle(version, ok) {
    version.state = ok ? 'acknowledged' : 'unknown';
    version.settledAt = performance.now();
    if (!ok) return;
    const entry = this.ids.get(version.expected.externalId);
    entry.versions = entry.versions.slice(entry.versions.indexOf(version));
  }

  /**
   * What a read of `id` may return now: the last acknowledged version, or any later one whose
   * write is unknown or still pending; nothing at all only while no write was acknowledged.
   */
  allowed(id) {
    const { versions } = this.ids.get(id);
    const last = versions.findLastIndex((v) => v.state === 'acknowledged');
    return { absentOk: last < 0, versions: versions.slice(Math.max(last, 0)), settled: last === versions.length - 1 };
  }

  /** Why `value`, read for `id`, is wrong; undefined when it is allowed. */
  checkRead(id, value, context) {
    if (!this.ids.has(id)) return `${context}: read ${id}, which the load never wrote`;
    const { absentOk, versions } = this.allowed(id);
    const allowed = `allowed: ${absentOk ? 'nothing or ' : ''}seq ${versions.map((v) => v.seq).join(' or ')}`;
    if (value === undefined) return absentOk ? undefined : `${context}: ${id} is missing (${allowed})`;
    if (versions.some((v) => isDeepStrictEqual(value, v.expected))) return undefined;
    const seq = value?.metadata?.seq;
    const close = versions.find((v) => v.seq === seq);
    const how = close ? 'seq matches but the content differs' : `read seq ${seq} (updatedAt ${value?.updatedAt})`;
    return `${context}: ${id}: ${how} (${allowed})`;
  }

  /**
   * Why `list`, listed for `userId`, is wrong; undefined when it is allowed. Each record must be
   * an allowed version of one of this user's ids, each id listed once; its length lies between
   * what was acknowledged and what may have been written (at most listLimit); and while every
   * write of the user is settled, the list is exactly the newest listLimit, newest first.
   */
  checkList(userId, list, context) {
    if (!Array.isArray(list)) return `${context}: ${userId}: not an array: ${typeof list}`;
    const ids = [...(this.users.get(userId) ?? [])];
    const problems = [];
    const seen = new Set();
    for (const [i, record] of list.entries()) {
      const id = record?.externalId;
      if (!ids.includes(id)) problems.push(`[${i}] ${id} is not one of ${userId}'s ids`);
      else if (seen.has(id)) problems.push(`[${i}] ${id} listed twice`);
      else problems.push(this.checkRead(id, record, `[${i}]`));
      seen.add(id);
    }
    const acknowledged = ids.filter((id) => !this.allowed(id).absentOk);
    const min = Math.min(this.listLimit, acknowledged.length);
    const max = Math.min(this.listLimit, ids.length);
    if (list.length < min || list.length > max) {
      problems.push(
        `${list.length} listed, expected ${min === max ? min : `${min} to ${max}`} (${acknowledged.length} ids acknowledged, ${ids.length} written, listLimit ${this.listLimit})`,
      );
    }
    if (ids.length <= this.listLimit) {
      const missing = acknowledged.filter((id) => !seen.has(id));
      if (missing.length) problems.push(`acknowledged ids not listed: ${missing.join(', ')}`);
    }
    if (ids.every((id) => this.allowed(id).settled)) {
      const newest = ids
        .map((id) => this.allowed(id).versions[0])
        .sort((a, b) => b.seq - a.seq)
        .slice(0, this.listLimit)
        .map((v) => v.seq);
      const order = list.map((c) => c?.metadata?.seq);
      if (!isDeepStrictEqual(order, newest))
        problems.push(`seq order ${order.join(',')}, expected ${newest.join(',')}`);
    }
    const found = problems.filter(Boolean);
    return found.length ? `${context}: ${userId}: ${found.join('; ')}` : undefined;
  }
}

// ---------------------------------------------------------------- the load

const runningLoads = new Set();

/** Stops every load still running: a test that failed midway must not leave one behind. */
async function stopAllLoads() {
  await Promise.all([...runningLoads].map((load) => load.stop()));
}

/**
 * Closed-loop workers until `stop()`. Worker w owns user `userOf(w)` and the ids it writes, so
 * each of its reads has one right answer (or a known few, after a write that was rejected):
 * - every write carries the next number of this load (`metadata.seq`, and `updatedAt`
 *   that many ms on), so a read shows which write it saw;
 * - every `rewriteEvery`th write, and the retry after a rejected write, sets an id it wrote
 *   before, so a lost or stale overwrite shows;
 * - each write is read back at once, and the user listed every `listEvery` rounds.
 * ids: fresh UUIDs (at most `maxIdsPerWorker`, then only rewrites), or those `idsOf(w)`
 * gives (written in turn, then rewritten).
 * With `noRejections`, the first rejected call fails the load (see `untilAcknowledged`).
 * `onCall(result)` sees every call's result; `keepResults: false` keeps none (a long soak).
 */
function startLoad(
  store,
  {
    workers = 8,
    idPrefix = 'load',
    userOf = (w) => `${idPrefix}-user-${w}`,
    idsOf,
    rewriteEvery = 3,
    listEvery = 4,
    listLimit = 50,
    maxIdsPerWorker = Infinity,
    noRejections = false,
    onCall,
    keepResults = true,
  } = {},
) {
  const history = new WriteHistory({ listLimit });
  const results = [];
  const problems = [];
  const changes = new EventEmitter();
  let running = true;
  let seq = 0;
  let acknowledgedWrites = 0;
  let settledWrites = 0;
  let lastRejection;
  let failure;
  let currentStage;

  const call = async (op, target, fn) => {
    const stage = currentStage;
    const outcome = await timed(fn);
    const result = { op, target, stage, ok: outcome.ok, error: outcome.error, ms: outcome.ms };
    if (keepResults) results.push(result);
    onCall?.(result);
    if (!outcome.ok) {
      lastRejection = `${op} ${target}${stage ? ` (${stage})` : ''}: ${outcome.error?.code} ${outcome.error?.message}`;
      if (noRejections && !failure) failure = new Error(`${lastRejection}\n(no call may be rejected here)`);
    }
    return outcome;
  };
  const check = (problem) => {
    if (problem) problems.push(problem);
  };

  const worker = async (w) => {
    const userId = userOf(w);
    const pool = idsOf ? [...idsOf(w)] : undefined;
    const mine = [];
    let retry;
    for (let round = 0; running; round++) {
      let id = retry;
      if (id === undefined) {
        const rewrite =
          mine.length > 0 &&
          (round % rewriteEvery === rewriteEvery - 1 || (pool && pool.length === 0) || mine.length >= maxIdsPerWorker);
        if (rewrite) id = mine[(round * 7) % mine.length];
        else id = pool ? pool.shift() : uniqueId(`${idPrefix}-${w}`);
      }
      if (!mine.includes(id)) mine.push(id);
      const number = ++seq;
      const conversation = makeConversation({
        seed: `${idPrefix}/${number}`,
        externalId: id,
        userId,
        updatedAt: isoAt(LOAD_CLOCK_START_MS + number),
        metadata: { load: idPrefix, seq: number },
        // Never stored: a read must not return it.
        sdkConversationRef: { live: true, seq: number },
      });
      const version = history.attempt(number, conversation);
      const write = await call('set', id, () => store.set(id, conversation));
      history.settle(version, write.ok);
      settledWrites += 1;
      retry = write.ok ? undefined : id;
      const read = await call('get', id, () => store.get(id));
      if (read.ok)
        check(
          history.checkRead(id, read.value, `get after set seq ${number} (${write.ok ? 'acknowledged' : 'rejected'})`),
        );
      if (round % listEvery === 0) {
        const list = await call('listByUser', userId, () => store.listByUser(userId));
        if (list.ok) check(history.checkList(userId, list.value, `listByUser after set seq ${number}`));
      }
      if (write.ok) acknowledgedWrites += 1;
      changes.emit('change');
      // Yield so a fast failure loop does not starve the event loop.
      await delay(write.ok ? 0 : 10);
    }
  };
  const done = Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  const load = {
    store,
    history,
    results,
    problems,
    changes,
    noRejections,
    /** What the test is doing to the server now, named in each call's result and rejection. */
    get stage() {
      return currentStage;
    },
    set stage(stage) {
      currentStage = stage;
    },
    /** Writes acknowledged so far (rewrites included). */
    get acknowledgedWrites() {
      return acknowledgedWrites;
    },
    /** Writes settled so far, acknowledged or rejected. */
    get settledWrites() {
      return settledWrites;
    },
    /** Ids with at least one acknowledged write. */
    acknowledgedIds() {
      return [...history.ids.keys()].filter((id) => !history.allowed(id).absentOk);
    },
    get lastRejection() {
      return lastRejection;
    },
    get failure() {
      return failure;
    },
    async stop() {
      running = false;
      runningLoads.delete(load);
      await done;
      return { results, history, problems };
    },
  };
  runningLoads.add(load);
  return load;
}

/** Resolves once `reached()`; rejects with `failure()` when it returns one, or after `timeoutMs`. */
function untilLoad(load, reached, failure, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const finish = (error) => {
      clearTimeout(timer);
      load.changes.off('change', onChange);
      if (error) reject(error);
      else resolve();
    };
    const onChange = () => {
      const failed = failure();
      if (failed) finish(failed);
      else if (reached()) finish();
    };
    const timer = setTimeout(
      () => finish(new Error(`${what()} within ${timeoutMs} ms; last rejection: ${load.lastRejection ?? 'none'}`)),
      timeoutMs,
    );
    load.changes.on('change', onChange);
    onChange();
  });
}

/**
 * Resolves once the load has `count` more acknowledged writes; rejects at once when a call was
 * rejected under `noRejections`, and after `timeoutMs` naming the last rejection.
 */
function untilAcknowledged(load, count, timeoutMs = 20_000) {
  const target = load.acknowledgedWrites + count;
  return untilLoad(
    load,
    () => load.acknowledgedWrites >= target,
    () => load.failure,
    timeoutMs,
    () => `only ${load.acknowledgedWrites} of ${target} writes acknowledged`,
  );
}

/** Resolves once one of the load's calls (kept in its results) settled from now on was rejected. */
function untilRejected(load, timeoutMs = 20_000) {
  const from = load.results.length;
  return untilLoad(
    load,
    () => load.results.slice(from).some((result) => !result.ok),
    () => undefined,
    timeoutMs,
    () => 'no call was rejected',
  );
}

/**
 * Resolves once the load has settled `count` more writes, acknowledged or not: paces a fault
 * by the load without stopping at a rejection, so a test can see every kind of one at the end.
 */
function untilWritten(load, count, timeoutMs = 20_000) {
  const target = load.settledWrites + count;
  return untilLoad(
    load,
    () => load.settledWrites >= target,
    () => undefined,
    timeoutMs,
    () => `only ${load.settledWrites} of ${target} writes settled`,
  );
}

/**
 * The rejections among `results`, one line per kind: how many, the operation, the stage and
 * the message (ids and addresses blanked so that alike ones count together).
 */
function summarizeRejections(results) {
  const kinds = new Map();
  for (const r of results.filter((r) => !r.ok)) {
    const message = String(r.error?.message)
      .replace(/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}/g, '<id>')
      .replace(/\d+\.\d+\.\d+\.\d+:\d+/g, '<host:port>');
    const kind = `${r.op}${r.stage ? ` (${r.stage})` : ''}: ${r.error?.code} ${message}`;
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return [...kinds].map(([kind, count]) => `${count} × ${kind}`);
}

const describeCall = (r) =>
  `${r.op} ${r.target}${r.stage ? ` (${r.stage})` : ''}: ${r.ok ? 'resolved' : `${r.error?.code} ${r.error?.message}`} after ${Math.round(r.ms)} ms`;

/**
 * Reads back everything the load wrote: every id must hold an allowed version (its last
 * acknowledged one, unless a later write's outcome is unknown), every user must list exactly
 * what the writes allow. Resolves with the problems found.
 */
async function readBack(load) {
  const { store, history } = load;
  const problems = [];
  const ids = [...history.ids.keys()];
  for (let i = 0; i < ids.length; i += 50) {
    const chunk = ids.slice(i, i + 50);
    const reads = await Promise.all(chunk.map((id) => timed(() => store.get(id))));
    for (const [j, read] of reads.entries()) {
      problems.push(
        read.ok
          ? history.checkRead(chunk[j], read.value, 'get after the load')
          : `get ${chunk[j]} after the load: ${read.error?.code} ${read.error?.message}`,
      );
    }
  }
  for (const userId of history.users.keys()) {
    const list = await timed(() => store.listByUser(userId));
    problems.push(
      list.ok
        ? history.checkList(userId, list.value, 'listByUser after the load')
        : `listByUser ${userId} after the load: ${list.error?.code} ${list.error?.message}`,
    );
  }
  return problems.filter(Boolean);
}

/**
 * Stops the load and checks all of it: writes were acknowledged; every call settled within
 * `settleCeilingMs`; every rejection was STORE_UNAVAILABLE (none at all with `noRejections`);
 * every read during the load returned what the writes allow; and so does every read after it.
 * Resolves with the load's results.
 */
async function stopAndVerify(load, { settleCeilingMs, noRejections = load.noRejections }) {
  assert.ok(Number.isFinite(settleCeilingMs), 'settleCeilingMs is required');
  const { results } = await load.stop();
  assert.ok(
    results.some((r) => r.op === 'set' && r.ok),
    'no write was acknowledged',
  );
  const slow = results.filter((r) => !(r.ms < settleCeilingMs));
  assert.deepEqual(slow.slice(0, 10).map(describeCall), [], `${slow.length} calls took ${settleCeilingMs} ms or more`);
  const rejected = results.filter((r) => !r.ok && (noRejections || r.error?.code !== 'STORE_UNAVAILABLE'));
  assert.deepEqual(
    summarizeRejections(rejected),
    [],
    `${rejected.length} of ${results.length} calls rejected${noRejections ? '' : ' with another code than STORE_UNAVAILABLE'}`,
  );
  assert.deepEqual(load.problems.slice(0, 10), [], `${load.problems.length} wrong results during the load`);
  const after = await readBack(load);
  assert.deepEqual(after.slice(0, 10), [], `${after.length} wrong results after the load`);
  return results;
}

module.exports = {
  storeOpener,
  silentLogger,
  recordingLogger,
  waitForStatus,
  timed,
  timedRejection,
  WriteHistory,
  startLoad,
  stopAllLoads,
  untilAcknowledged,
  untilRejected,
  untilWritten,
  readBack,
  stopAndVerify,
  summarizeRejections,
};
