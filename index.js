// @ts-check
'use strict';
// The package entry: a thin layer over the generated `binding.js` (the modules of `lib/` do
// its errors, options, credentials, tracing and batching). Conversations cross the boundary
// as JSON text: V8's own JSON.stringify/JSON.parse are far faster than building objects
// through N-API.

const { NativeRedisStore, NativeMemoryStore, checkStoreOptions } = require('./load-binding.js');
const { trustedByNode } = require('./node-trust.js');
const {
  StoreError,
  STORE_ERROR_CODES,
  toStoreError,
  printable,
  messageOf,
  rejectWithStoreError,
  constructNative,
} = require('./lib/errors.js');
const { COMMON_OPTIONS, REDIS_OPTIONS, ownOptions, optionsObject, splitOptions, logSink } = require('./lib/options.js');
const { nativeCredentials, entraIdCredentials } = require('./lib/credentials.js');
const { STORE_CALL_CHANNEL, traced, traceCall } = require('./lib/tracing.js');
const { batchedRedisStore } = require('./lib/batcher.js');

/** @typedef {import('./index').StoredConversation} StoredConversation */
/** @typedef {import('./index').StoreStats} StoreStats */
/** @typedef {import('./index').StoreOperation} StoreOperation */
/** @typedef {import('./lib/batcher.js').NativeStore} NativeStore */

/** How much of a caller's own error message a serialization failure repeats. */
const ECHOED_CHARS = 200;

/**
 * A caller's own error message as a StoreError repeats it: printable, and at most
 * `ECHOED_CHARS` code points (never half a surrogate pair), `…` marking a cut.
 * @param {string} text
 */
function echoed(text) {
  const points = Array.from(text);
  const kept = points.length > ECHOED_CHARS ? `${points.slice(0, ECHOED_CHARS).join('')}…` : text;
  return printable(kept);
}

/**
 * The conversation as stored: JSON without the live `sdkConversationRef`, also when a
 * `toJSON` would put it back. Anything that throws on the way (a getter, a BigInt, a cycle)
 * is an invalid argument.
 * @param {unknown} conversation
 * @returns {string}
 */
function serialize(conversation) {
  /** @type {any} */
  let value = conversation;
  let isObject = false;
  /** @type {string | undefined} */
  let json;
  try {
    if (value !== null && typeof value === 'object' && typeof value.toJSON === 'function') value = value.toJSON('');
    isObject = value !== null && typeof value === 'object' && !Array.isArray(value);
    if (isObject) {
      if (value !== conversation || Object.hasOwn(value, 'sdkConversationRef')) {
        const { sdkConversationRef: _live, ...rest } = value;
        // JSON.stringify calls toJSON once: the copy must not call an own one again.
        if (typeof rest.toJSON === 'function') delete rest.toJSON;
        value = rest;
      }
      json = JSON.stringify(value);
    }
  } catch (error) {
    // Whatever the caller's code threw, a StoreError of its own included, is quoted on one
    // line; its code is this one.
    throw new StoreError(
      'STORE_INVALID_ARGUMENT',
      `conversation: cannot be serialized as JSON (${echoed(messageOf(error))})`,
    );
  }
  if (!isObject) throw new StoreError('STORE_INVALID_ARGUMENT', 'conversation: expected an object');
  if (typeof json !== 'string') {
    throw new StoreError('STORE_INVALID_ARGUMENT', 'conversation: serializes to nothing');
  }
  return json;
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

  /**
   * A call refused here, before the native store: counted there too, as every settled call.
   * @param {StoreOperation} operation
   * @param {StoreError} error
   * @returns {Promise<never>}
   */
  #refuse(operation, error) {
    try {
      this.#native.recordRefused(operation, error.code, error.message);
    } catch {
      // Counting must never change what the caller gets.
    }
    return Promise.reject(error);
  }

  /** @param {string} id @returns {Promise<StoredConversation | undefined>} */
  #get(id) {
    const bad = badId('id', id);
    if (bad) return this.#refuse('get', new StoreError('STORE_INVALID_ARGUMENT', bad));
    return this.#call('get', parseConversation, id);
  }

  /** @param {string} id @param {StoredConversation} conversation @returns {Promise<void>} */
  #set(id, conversation) {
    const bad = badId('id', id);
    if (bad) return this.#refuse('set', new StoreError('STORE_INVALID_ARGUMENT', bad));
    let json;
    try {
      json = serialize(conversation);
    } catch (error) {
      return this.#refuse('set', toStoreError(error, 'STORE_INVALID_ARGUMENT'));
    }
    return this.#call('set', toUndefined, id, json);
  }

  /** @param {string} id @returns {Promise<void>} */
  #delete(id) {
    const bad = badId('id', id);
    if (bad) return this.#refuse('delete', new StoreError('STORE_INVALID_ARGUMENT', bad));
    return this.#call('delete', toUndefined, id);
  }

  /** @param {string} userId @returns {Promise<StoredConversation[]>} */
  #listByUser(userId) {
    const bad = badId('userId', userId);
    if (bad) return this.#refuse('listByUser', new StoreError('STORE_INVALID_ARGUMENT', bad));
    return this.#call('listByUser', parseConversations, userId);
  }

  // Each public call is traced on `redis-store:call` when someone listens; otherwise not
  // even its context is built. A method called without its store (`const { get } = store`)
  // throws the same TypeError either way, before any event: reading `this.#get` from no store
  // is what throws, as calling it does untraced.

  /** @param {string} id */
  get(id) {
    if (!traced()) return this.#get(id);
    const get = this.#get;
    return traceCall({ operation: 'get', id }, () => get.call(this, id));
  }

  /** @param {string} id @param {StoredConversation} conversation */
  set(id, conversation) {
    if (!traced()) return this.#set(id, conversation);
    const set = this.#set;
    return traceCall({ operation: 'set', id }, () => set.call(this, id, conversation));
  }

  /** @param {string} id */
  delete(id) {
    if (!traced()) return this.#delete(id);
    const remove = this.#delete;
    return traceCall({ operation: 'delete', id }, () => remove.call(this, id));
  }

  /** @param {string} userId */
  listByUser(userId) {
    if (!traced()) return this.#listByUser(userId);
    const list = this.#listByUser;
    return traceCall({ operation: 'listByUser', userId }, () => list.call(this, userId));
  }

  /** Calls, errors and latency per operation, and the connection's state: never waits. @returns {StoreStats} */
  stats() {
    return /** @type {StoreStats} */ (this.#native.stats());
  }

  close() {
    return this.#call('close', toUndefined);
  }
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
      const { native, logger, credentials } = splitOptions(options, REDIS_OPTIONS);
      const trust = trustedByNode();
      if (trust.warning) logSink(logger)('warn', trust.warning);
      const provider = credentials === undefined ? undefined : nativeCredentials(credentials);
      return new NativeRedisStore(url, native, logSink(logger), trust.pem, provider);
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
function createConversationStore(options) {
  const { redisUrl, rest, logger } = constructNative(() => {
    const { redisUrl, ...rest } = ownOptions(optionsObject(options));
    const { native, logger } = splitOptions(rest, REDIS_OPTIONS);
    if (redisUrl !== undefined && redisUrl !== null && typeof redisUrl !== 'string') {
      throw new StoreError('STORE_INVALID_CONFIG', 'redisUrl: expected a rediss:// URL string');
    }
    // In memory the Redis options go unused, but a bad one fails here as it would on Redis.
    if (!redisUrl) checkStoreOptions(native);
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
  entraIdCredentials,
  StoreError,
  STORE_ERROR_CODES,
  STORE_CALL_CHANNEL,
};
