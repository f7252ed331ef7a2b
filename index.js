// @ts-check
'use strict';
// The package entry: a thin layer over the generated `binding.js`. napi-rs cannot put a
// `code` on an async rejection, so the native side prefixes each message with its code and
// this file turns that into `error.code`. Conversations cross the boundary as JSON text:
// V8's own JSON.stringify/JSON.parse are far faster than building objects through N-API.

const { NativeRedisStore, NativeMemoryStore } = require('./load-binding.js');
const { trustedByNode } = require('./node-trust.js');

/** @typedef {import('./index').StoreErrorCode} StoreErrorCode */
/** @typedef {import('./index').StoreLogger} StoreLogger */
/** @typedef {import('./index').StoredConversation} StoredConversation */
/** @typedef {import('./binding').NativeStoreOptions} NativeStoreOptions */
/** @typedef {import('./binding').BatchReply} BatchReply */
/** @typedef {'info' | 'warn' | 'error'} LogLevel */
/**
 * What both stores' native halves offer: the Redis one answers with promises, the in-memory
 * one with values.
 * @typedef {object} NativeStore
 * @property {import('./binding').StoreStatus} status
 * @property {(id: string) => Promise<string | null> | string | null} get
 * @property {(id: string, json: string) => Promise<void> | void} set
 * @property {(id: string) => Promise<void> | void} delete
 * @property {(userId: string) => Promise<string> | string} listByUser
 * @property {() => Promise<void> | void} close
 */

/** @type {readonly StoreErrorCode[]} */
const STORE_ERROR_CODES = Object.freeze([
  'STORE_UNAVAILABLE',
  'STORE_INVALID_ARGUMENT',
  'STORE_CORRUPT_RECORD',
  'STORE_INVALID_CONFIG',
  'STORE_CLOSED',
]);
const CODE_PREFIX = /^(STORE_[A-Z_]+): /;

class StoreError extends Error {
  /**
   * @param {StoreErrorCode} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'StoreError';
    this.code = code;
  }
}

/** @param {string} code @returns {code is StoreErrorCode} */
function isStoreErrorCode(code) {
  return /** @type {readonly string[]} */ (STORE_ERROR_CODES).includes(code);
}

/**
 * A native error as a StoreError; `fallbackCode` for errors napi raised itself. napi 3 gives
 * an async rejection only its own status as `code`, so the native message carries the code
 * as a `STORE_…: ` prefix, read here and nowhere else.
 * @param {unknown} error
 * @param {StoreErrorCode} fallbackCode
 */
function toStoreError(error, fallbackCode) {
  if (error instanceof StoreError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const match = CODE_PREFIX.exec(message);
  if (match && isStoreErrorCode(match[1])) {
    return new StoreError(match[1], message.slice(match[0].length));
  }
  return new StoreError(fallbackCode, message);
}

/**
 * `text` with control characters and the Unicode line separators escaped, as the native
 * side does for its messages: one line, whatever the caller's data holds.
 * @param {string} text
 */
function printable(text) {
  return text.replace(/[\p{Cc}\u2028\u2029]/gu, (c) => `\\u{${c.codePointAt(0)?.toString(16)}}`);
}

/** @param {unknown} error @returns {never} */
function rejectWithStoreError(error) {
  throw toStoreError(error, 'STORE_UNAVAILABLE');
}

/** Option names: typed against the generated NativeStoreOptions, so a name tsc does not know fails the check. */
/** @type {readonly (keyof NativeStoreOptions | 'logger')[]} */
const COMMON_OPTIONS = ['ttlSeconds', 'listLimit', 'maxRecordBytes', 'logger'];
/** @type {readonly (keyof NativeStoreOptions | 'logger')[]} */
const REDIS_OPTIONS = [
  ...COMMON_OPTIONS,
  'commandTimeoutMs',
  'connectTimeoutMs',
  'keyPrefix',
  'tls',
  'retry',
  'healthCheckIntervalMs',
  'cluster',
];

/** @param {string} line */
const toStderr = (line) => {
  process.stderr.write(`${line}\n`);
};
/** @type {StoreLogger} */
const stderrLogger = { info: toStderr, warn: toStderr, error: toStderr };

/**
 * Checks the options object; returns what the native side takes and the logger.
 * @param {unknown} options
 * @param {readonly string[]} allowed
 * @returns {{ native: NativeStoreOptions, logger: StoreLogger }}
 */
function splitOptions(options, allowed) {
  if (options === undefined || options === null) return { native: {}, logger: stderrLogger };
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new StoreError('STORE_INVALID_CONFIG', 'options: expected an object');
  }
  for (const name of Object.keys(options)) {
    if (!allowed.includes(name)) {
      throw new StoreError('STORE_INVALID_CONFIG', `options: unknown option '${name}'`);
    }
  }
  const { logger = stderrLogger, ...native } = /** @type {Record<string, unknown>} */ (options);
  if (typeof native.keyPrefix === 'string' && !native.keyPrefix.isWellFormed()) {
    // Two prefixes napi would turn into the same one must not share keys.
    throw new StoreError('STORE_INVALID_CONFIG', 'keyPrefix: expected a string without lone surrogates');
  }
  checkNestedOption(native, 'tls', ['ca', 'cert', 'key']);
  checkNestedOption(native, 'retry', ['baseDelayMs', 'maxDelayMs']);
  const validLogger =
    logger !== null &&
    typeof logger === 'object' &&
    ['info', 'warn', 'error'].every(
      (level) => typeof (/** @type {Record<string, unknown>} */ (logger)[level]) === 'function',
    );
  if (!validLogger) {
    throw new StoreError('STORE_INVALID_CONFIG', 'logger: expected an object with info, warn and error methods');
  }
  // napi checks each field's type as it reads it (a wrong one is STORE_INVALID_CONFIG).
  return { native: /** @type {NativeStoreOptions} */ (native), logger: /** @type {StoreLogger} */ (logger) };
}

/**
 * napi would read a non-object as `{}` and drop unknown fields: say so instead.
 * @param {Record<string, unknown>} options
 * @param {string} name
 * @param {string[]} fields
 */
function checkNestedOption(options, name, fields) {
  const value = options[name];
  if (value === undefined) return;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new StoreError('STORE_INVALID_CONFIG', `${name}: expected an object with ${fields.join(', ')}`);
  }
  for (const field of Object.keys(value)) {
    if (!fields.includes(field)) {
      throw new StoreError('STORE_INVALID_CONFIG', `${name}: unknown field '${field}' (expected ${fields.join(', ')})`);
    }
  }
}

/**
 * The sink the native side logs through; a throwing logger must not break the store.
 * @param {StoreLogger} logger
 * @returns {(level: string, line: string) => void}
 */
function logSink(logger) {
  return (level, line) => {
    try {
      /** @type {unknown} */
      const result = logger[/** @type {LogLevel} */ (level)](line);
      // An async logger's rejection must not become an unhandled rejection.
      if (result instanceof Promise) result.catch(ignore);
    } catch {
      // Nothing sensible to do with a logger that throws.
    }
  };
}

const ignore = () => {};

/**
 * @template T
 * @param {() => T} construct
 * @returns {T}
 */
function constructNative(construct) {
  try {
    return construct();
  } catch (error) {
    throw toStoreError(error, 'STORE_INVALID_CONFIG');
  }
}

/** @param {string} message @returns {Promise<never>} */
function invalidArgument(message) {
  return Promise.reject(new StoreError('STORE_INVALID_ARGUMENT', message));
}

/**
 * The conversation as stored: JSON without the live `sdkConversationRef`, also when a
 * `toJSON` would put it back. Anything that throws on the way (a getter, a BigInt, a cycle)
 * is an invalid argument.
 * @param {unknown} conversation
 * @returns {string}
 */
function serialize(conversation) {
  try {
    /** @type {any} */
    let value = conversation;
    if (value !== null && typeof value === 'object' && typeof value.toJSON === 'function') value = value.toJSON('');
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new StoreError('STORE_INVALID_ARGUMENT', 'conversation: expected an object');
    }
    if (value !== conversation || Object.hasOwn(value, 'sdkConversationRef')) {
      const { sdkConversationRef: _live, ...rest } = value;
      // JSON.stringify calls toJSON once: the copy must not call an own one again.
      if (typeof rest.toJSON === 'function') delete rest.toJSON;
      value = rest;
    }
    const json = JSON.stringify(value);
    if (typeof json !== 'string') {
      throw new StoreError('STORE_INVALID_ARGUMENT', 'conversation: serializes to nothing');
    }
    return json;
  } catch (error) {
    if (error instanceof StoreError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new StoreError('STORE_INVALID_ARGUMENT', `conversation: cannot be serialized as JSON (${printable(reason)})`);
  }
}

/**
 * `sdkConversationRef` is never part of a read, even when another writer stored one.
 * @param {StoredConversation} conversation
 */
function withoutLiveRef(conversation) {
  if (Object.hasOwn(conversation, 'sdkConversationRef')) delete conversation.sdkConversationRef;
  return conversation;
}

const toUndefined = () => undefined;

/** @param {string | null} json @returns {StoredConversation | undefined} */
function parseConversation(json) {
  return json == null ? undefined : withoutLiveRef(JSON.parse(json));
}

/** @param {string} json @returns {StoredConversation[]} */
function parseConversations(json) {
  /** @type {StoredConversation[]} */
  const conversations = JSON.parse(json);
  for (const conversation of conversations) withoutLiveRef(conversation);
  return conversations;
}

/**
 * A non-empty string with no lone surrogate: napi would replace one with U+FFFD, and two
 * ids would then share a key. The message, or undefined when the id is fine.
 * @param {string} name
 * @param {unknown} id
 * @returns {string | undefined}
 */
function badId(name, id) {
  if (typeof id !== 'string' || id === '') return `${name}: expected a non-empty string`;
  if (!id.isWellFormed()) return `${name}: expected a string without lone surrogates`;
  return undefined;
}

/** What both stores do around their native half: argument shapes, JSON, errors. */
class NativeBackedStore {
  /** @type {NativeStore} */
  #native;

  /** @param {NativeStore} native */
  constructor(native) {
    this.#native = native;
  }

  get status() {
    return this.#native.status;
  }

  /**
   * Runs a native method that returns a promise (Redis) or a value (memory), and maps its
   * result with `onValue`: one promise hop on the hot path.
   * @template T
   * @param {'get' | 'set' | 'delete' | 'listByUser' | 'close'} method
   * @param {(value: any) => T} onValue
   * @param {string} [first]
   * @param {string} [second]
   * @returns {Promise<T>}
   */
  #call(method, onValue, first, second) {
    try {
      const result = /** @type {any} */ (this.#native)[method](first, second);
      return result instanceof Promise ? result.then(onValue, rejectWithStoreError) : Promise.resolve(onValue(result));
    } catch (error) {
      return Promise.reject(toStoreError(error, 'STORE_INVALID_ARGUMENT'));
    }
  }

  /** @param {string} id */
  get(id) {
    const bad = badId('id', id);
    if (bad) return invalidArgument(bad);
    return this.#call('get', parseConversation, id);
  }

  /** @param {string} id @param {StoredConversation} conversation @returns {Promise<void>} */
  set(id, conversation) {
    const bad = badId('id', id);
    if (bad) return invalidArgument(bad);
    let json;
    try {
      json = serialize(conversation);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#call('set', toUndefined, id, json);
  }

  /** @param {string} id @returns {Promise<void>} */
  delete(id) {
    const bad = badId('id', id);
    if (bad) return invalidArgument(bad);
    return this.#call('delete', toUndefined, id);
  }

  /** @param {string} userId */
  listByUser(userId) {
    const bad = badId('userId', userId);
    if (bad) return invalidArgument(bad);
    return this.#call('listByUser', parseConversations, userId);
  }

  close() {
    return this.#call('close', toUndefined);
  }
}

/**
 * Gathers the calls made in one turn of the event loop into one native batch call: their
 * commands leave Node in one write, and one native promise settles them all.
 */
// Several batches in flight keep JSON work on the JS thread overlapping with Redis round
// trips; one batch of everything would run them in lockstep (measured: 16 beats 4, 64, 1).
const MAX_BATCH = 16;

/**
 * One call waiting in a batch: its arguments and how to settle it.
 * @typedef {object} QueuedCall
 * @property {string} first
 * @property {string} [second]
 * @property {(value: any) => void} resolve
 * @property {(error: unknown) => void} reject
 */

class CallBatcher {
  /** @type {(first: string, second?: string) => Promise<any>} */
  #runOne;
  /** @type {(calls: QueuedCall[]) => Promise<BatchReply>} */
  #runBatch;
  /** @type {QueuedCall[] | null} */
  #queue = null;

  /**
   * @param {(first: string, second?: string) => Promise<any>} runOne
   * @param {(calls: QueuedCall[]) => Promise<BatchReply>} runBatch
   */
  constructor(runOne, runBatch) {
    this.#runOne = runOne;
    this.#runBatch = runBatch;
  }

  /** @param {string} first @param {string} [second] @returns {Promise<any>} */
  call(first, second) {
    if (this.#queue === null) {
      /** @type {QueuedCall[]} */
      const queue = [];
      this.#queue = queue;
      queueMicrotask(() => this.#flush(queue));
    }
    const queue = /** @type {QueuedCall[]} */ (this.#queue);
    const settled = new Promise((resolve, reject) => queue.push({ first, second, resolve, reject }));
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
 * The native Redis store with `get` and `set` batched per turn of the event loop.
 * @param {import('./binding').NativeRedisStore} native
 * @returns {NativeStore}
 */
function batchedRedisStore(native) {
  const gets = new CallBatcher(
    (id) => native.get(id),
    (calls) => native.getBatch(calls.map((call) => call.first)),
  );
  const sets = new CallBatcher(
    (id, json) => native.set(id, /** @type {string} */ (json)),
    (calls) =>
      native.setBatch(
        calls.map((call) => call.first),
        calls.map((call) => /** @type {string} */ (call.second)),
      ),
  );
  return {
    get status() {
      return native.status;
    },
    get: (id) => gets.call(id),
    set: (id, json) => sets.call(id, json),
    delete: (id) => native.delete(id),
    listByUser: (userId) => native.listByUser(userId),
    // Calls gathered in this turn were made before close(): they go out first and finish.
    close: () => {
      gets.flush();
      sets.flush();
      return native.close();
    },
  };
}

/**
 * `host:port` of a Redis store, for the factory's log line; no credentials.
 * @type {(store: RedisConversationStore) => string}
 */
let addressOf;

class RedisConversationStore extends NativeBackedStore {
  /** @type {import('./binding').NativeRedisStore} */
  #native;

  static {
    addressOf = (store) => store.#native.address;
  }

  /** @param {string} url @param {import('./index').RedisStoreOptions} [options] */
  constructor(url, options) {
    const store = constructNative(() => {
      if (typeof url !== 'string') {
        throw new StoreError('STORE_INVALID_CONFIG', 'redisUrl: expected a rediss:// URL string');
      }
      // napi would replace a lone surrogate (in a password) with U+FFFD.
      if (!url.isWellFormed())
        throw new StoreError('STORE_INVALID_CONFIG', 'redisUrl: expected a string without lone surrogates');
      const { native, logger } = splitOptions(options, REDIS_OPTIONS);
      const trust = trustedByNode();
      if (trust.warning) logSink(logger)('warn', trust.warning);
      return new NativeRedisStore(url, native, logSink(logger), trust.pem);
    });
    super(batchedRedisStore(store));
    this.#native = store;
  }

  /** Resolves once connected; rejects with STORE_UNAVAILABLE after connectTimeoutMs. */
  ready() {
    return this.#native.ready().catch(rejectWithStoreError);
  }
}

class InMemoryConversationStore extends NativeBackedStore {
  /** @param {import('./index').InMemoryStoreOptions} [options] */
  constructor(options) {
    super(constructNative(() => new NativeMemoryStore(splitOptions(options, COMMON_OPTIONS).native)));
  }

  ready() {
    return this.status === 'end'
      ? Promise.reject(new StoreError('STORE_CLOSED', 'the store is closed'))
      : Promise.resolve();
  }
}

/**
 * A Redis store when `redisUrl` is a non-empty string, else an in-memory one.
 * @param {import('./index').CreateConversationStoreOptions} [options]
 */
function createConversationStore(options = {}) {
  const { redisUrl, rest, logger } = constructNative(() => {
    if (options === null || typeof options !== 'object') {
      throw new StoreError('STORE_INVALID_CONFIG', 'options: expected an object');
    }
    const { redisUrl, ...rest } = options;
    const { logger } = splitOptions(rest, REDIS_OPTIONS);
    if (redisUrl !== undefined && redisUrl !== null && typeof redisUrl !== 'string') {
      throw new StoreError('STORE_INVALID_CONFIG', 'redisUrl: expected a rediss:// URL string');
    }
    return { redisUrl, rest, logger };
  });
  if (redisUrl) {
    const store = new RedisConversationStore(redisUrl, rest);
    logSink(logger)('info', `[STORE] using Redis at ${addressOf(store)}`);
    return store;
  }
  const memoryOptions = Object.fromEntries(
    Object.entries(rest).filter(([name]) => /** @type {readonly string[]} */ (COMMON_OPTIONS).includes(name)),
  );
  const store = new InMemoryConversationStore(memoryOptions);
  logSink(logger)('info', '[STORE] using the in-memory store (no Redis URL configured)');
  return store;
}

module.exports = {
  RedisConversationStore,
  InMemoryConversationStore,
  createConversationStore,
  StoreError,
  STORE_ERROR_CODES,
};
