// @ts-check
'use strict';
// The package entry: a thin layer over the generated `binding.js`. napi-rs cannot put a
// `code` on an async rejection, so the native side prefixes each message with its code and
// this file turns that into `error.code`. Conversations cross the boundary as JSON text:
// V8's own JSON.stringify/JSON.parse are far faster than building objects through N-API.

const diagnosticsChannel = require('node:diagnostics_channel');
const { NativeRedisStore, NativeMemoryStore } = require('./load-binding.js');
const { trustedByNode } = require('./node-trust.js');

/** @typedef {import('./index').StoreErrorCode} StoreErrorCode */
/** @typedef {import('./index').StoreLogger} StoreLogger */
/** @typedef {import('./index').StoredConversation} StoredConversation */
/** @typedef {import('./binding').NativeStoreOptions} NativeStoreOptions */
/** @typedef {import('./binding').BatchReply} BatchReply */
/** @typedef {import('./index').StoreStats} StoreStats */
/** @typedef {import('./index').StoreCallContext} StoreCallContext */
/** @typedef {import('./index').StoreOperation} StoreOperation */
/** @typedef {import('./binding').NativeCredentials} NativeCredentials */
/** @typedef {import('./index').CredentialsProvider} CredentialsProvider */
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
 * @property {() => import('./binding').NativeStoreStats} stats
 * @property {(operation: StoreOperation, code: string, message: string) => void} recordRefused
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
/** @type {readonly (keyof NativeStoreOptions | 'logger' | 'credentials')[]} */
const COMMON_OPTIONS = ['ttlSeconds', 'listLimit', 'maxRecordBytes', 'logger'];
/** @type {readonly (keyof NativeStoreOptions | 'logger' | 'credentials')[]} */
const REDIS_OPTIONS = [
  ...COMMON_OPTIONS,
  'commandTimeoutMs',
  'connectTimeoutMs',
  'keyPrefix',
  'tls',
  'retry',
  'healthCheckIntervalMs',
  'cluster',
  'credentials',
];

/** @param {string} line */
const toStderr = (line) => {
  process.stderr.write(`${line}\n`);
};
/** @type {StoreLogger} */
const stderrLogger = { info: toStderr, warn: toStderr, error: toStderr };

/**
 * Checks the options object; returns what the native side takes, the logger and the
 * credentials provider.
 * @param {unknown} options
 * @param {readonly string[]} allowed
 * @returns {{ native: NativeStoreOptions, logger: StoreLogger, credentials?: CredentialsProvider }}
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
  const { logger = stderrLogger, credentials, ...native } = /** @type {Record<string, unknown>} */ (options);
  if (credentials !== undefined && typeof credentials !== 'function') {
    throw new StoreError(
      'STORE_INVALID_CONFIG',
      'credentials: expected a function returning a promise of { username?, password, expiresAt? }',
    );
  }
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
  return {
    native: /** @type {NativeStoreOptions} */ (native),
    logger: /** @type {StoreLogger} */ (logger),
    credentials: /** @type {CredentialsProvider | undefined} */ (credentials),
  };
}

/** The longest provider failure a message quotes. */
const MAX_CAUSE_CHARS = 300;

/**
 * A provider's failure as one short line: its message only, never the value it was given.
 * @param {unknown} error
 */
function describeFailure(error) {
  const text = error instanceof Error ? error.message : String(error);
  return printable(text.slice(0, MAX_CAUSE_CHARS));
}

/**
 * What the native side calls for credentials: never throws, always resolves to one checked
 * shape, with `error` set when the provider failed or gave something unusable. No message
 * quotes a value (it may be a token).
 * @param {CredentialsProvider} provider
 * @returns {() => Promise<NativeCredentials>}
 */
function nativeCredentials(provider) {
  return async () => {
    /** @type {unknown} */
    let result;
    try {
      result = await provider();
    } catch (error) {
      return { error: describeFailure(error) };
    }
    return checkCredentials(result);
  };
}

/**
 * @param {unknown} value
 * @returns {NativeCredentials}
 */
function checkCredentials(value) {
  const wrong = (/** @type {string} */ what) => ({ error: `its result ${what}` });
  if (value === null || typeof value !== 'object') {
    return wrong('is not an object { username?, password, expiresAt? }');
  }
  const { username, password, expiresAt, refreshAt } = /** @type {Record<string, unknown>} */ (value);
  if (typeof password !== 'string' || password === '') return wrong('has no password (a non-empty string)');
  if (!password.isWellFormed()) return wrong('has a password with lone surrogates');
  if (username !== undefined && username !== null) {
    if (typeof username !== 'string' || username === '') return wrong('has a username that is not a non-empty string');
    if (!username.isWellFormed()) return wrong('has a username with lone surrogates');
  }
  for (const [name, time] of [
    ['expiresAt', expiresAt],
    ['refreshAt', refreshAt],
  ]) {
    if (time !== undefined && time !== null && (typeof time !== 'number' || !Number.isFinite(time))) {
      return wrong(`has a ${name} that is not a number of epoch milliseconds`);
    }
  }
  return {
    username: /** @type {string | undefined} */ (username ?? undefined),
    password,
    expiresAt: /** @type {number | undefined} */ (expiresAt ?? undefined),
    refreshAt: /** @type {number | undefined} */ (refreshAt ?? undefined),
  };
}

/** The scope of an access token for Azure Cache for Redis and Azure Managed Redis. */
const ENTRA_REDIS_SCOPE = 'https://redis.azure.com/.default';

/**
 * Credentials from Microsoft Entra ID: wraps any `@azure/identity` TokenCredential. The
 * username is `objectId`, or else the token's `oid` claim.
 * @param {import('./index').EntraIdTokenCredential} tokenCredential
 * @param {import('./index').EntraIdCredentialsOptions} [options]
 * @returns {CredentialsProvider}
 */
function entraIdCredentials(tokenCredential, options) {
  const fail = (/** @type {string} */ message) =>
    new StoreError('STORE_INVALID_CONFIG', `entraIdCredentials: ${message}`);
  if (
    tokenCredential === null ||
    typeof tokenCredential !== 'object' ||
    typeof (/** @type {{ getToken?: unknown }} */ (tokenCredential).getToken) !== 'function'
  ) {
    throw fail(
      'expected a TokenCredential from @azure/identity (an object with getToken), e.g. new DefaultAzureCredential()',
    );
  }
  if (options !== undefined && (options === null || typeof options !== 'object' || Array.isArray(options))) {
    throw fail('options: expected an object { objectId?, scopes? }');
  }
  const { objectId, scopes = ENTRA_REDIS_SCOPE, ...unknown } = options ?? {};
  const unknownNames = Object.keys(unknown);
  if (unknownNames.length > 0) throw fail(`unknown option '${unknownNames[0]}' (expected objectId, scopes)`);
  if (objectId !== undefined && (typeof objectId !== 'string' || objectId === '')) {
    throw fail('objectId: expected a non-empty string');
  }
  const scopeList = typeof scopes === 'string' ? [scopes] : scopes;
  if (
    !Array.isArray(scopeList) ||
    scopeList.length === 0 ||
    !scopeList.every((scope) => typeof scope === 'string' && scope.trim() !== '')
  ) {
    throw fail('scopes: expected a non-empty string or array of non-empty strings');
  }
  return async () => {
    const token = await tokenCredential.getToken(scopeList);
    if (!token || typeof token.token !== 'string') throw new Error('getToken gave no access token');
    if (typeof token.expiresOnTimestamp !== 'number' || !Number.isFinite(token.expiresOnTimestamp)) {
      throw new Error('getToken gave a token without expiresOnTimestamp: when it expires is unknown');
    }
    return {
      username: objectId ?? objectIdOf(token.token),
      password: token.token,
      expiresAt: token.expiresOnTimestamp,
      refreshAt: token.refreshAfterTimestamp,
    };
  };
}

/**
 * The `oid` claim of an access token; the messages never quote the token.
 * @param {string} token
 */
function objectIdOf(token) {
  /** @type {Record<string, unknown>} */
  let claims;
  // Loaded here, so that a store without Entra ID does not load it.
  const { decodeJwt } = require('jose');
  try {
    claims = decodeJwt(token);
  } catch {
    throw new Error('the access token is not a JWT: pass objectId to entraIdCredentials');
  }
  if (typeof claims.oid !== 'string' || claims.oid === '') {
    throw new Error('the access token has no oid claim: pass objectId to entraIdCredentials');
  }
  return claims.oid;
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
    throw new StoreError('STORE_INVALID_ARGUMENT', `conversation: cannot be serialized as JSON (${echoed(reason)})`);
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

/** Every call of both stores, for APM and OpenTelemetry (docs/DESIGN.md "Observability"). */
const STORE_CALL_CHANNEL = 'redis-store:call';
const callChannel = diagnosticsChannel.tracingChannel(STORE_CALL_CHANNEL);
const callChannels = [
  callChannel.start,
  callChannel.end,
  callChannel.asyncStart,
  callChannel.asyncEnd,
  callChannel.error,
];

/**
 * Whether anyone listens on `redis-store:call`. `TracingChannel.hasSubscribers` exists from
 * Node 20.13 on only; before, it is undefined, and so each of the five channels is asked.
 * A channel's `hasSubscribers` also counts a store bound with `bindStore`.
 */
function traced() {
  return callChannels.some((channel) => channel.hasSubscribers);
}

/**
 * `tracingChannel.tracePromise`'s events for one call, but never with `context.result`: what
 * `get` and `listByUser` resolve is the conversations' content. One context travels from
 * start to asyncEnd; on failure `context.error` is the StoreError.
 * @template T
 * @param {StoreCallContext} context
 * @param {() => Promise<T>} run
 * @returns {Promise<T>}
 */
function traceCall(context, run) {
  const { start, end, asyncStart, asyncEnd, error } = callChannel;
  return start.runStores(context, () => {
    try {
      return run().then(
        (value) => {
          asyncStart.publish(context);
          asyncEnd.publish(context);
          return value;
        },
        (failure) => {
          // Every rejection of #get, #set, #delete and #listByUser is a StoreError already.
          context.error = toStoreError(failure, 'STORE_UNAVAILABLE');
          error.publish(context);
          asyncStart.publish(context);
          asyncEnd.publish(context);
          throw context.error;
        },
      );
    } catch (failure) {
      context.error = toStoreError(failure, 'STORE_INVALID_ARGUMENT');
      error.publish(context);
      throw context.error;
    } finally {
      end.publish(context);
    }
  });
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
  // even its context is built.

  /** @param {string} id */
  get(id) {
    if (!traced()) return this.#get(id);
    return traceCall({ operation: 'get', id }, () => this.#get(id));
  }

  /** @param {string} id @param {StoredConversation} conversation */
  set(id, conversation) {
    if (!traced()) return this.#set(id, conversation);
    return traceCall({ operation: 'set', id }, () => this.#set(id, conversation));
  }

  /** @param {string} id */
  delete(id) {
    if (!traced()) return this.#delete(id);
    return traceCall({ operation: 'delete', id }, () => this.#delete(id));
  }

  /** @param {string} userId */
  listByUser(userId) {
    if (!traced()) return this.#listByUser(userId);
    return traceCall({ operation: 'listByUser', userId }, () => this.#listByUser(userId));
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
    stats: () => native.stats(),
    recordRefused: (operation, code, message) => native.recordRefused(operation, code, message),
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
  entraIdCredentials,
  StoreError,
  STORE_ERROR_CODES,
  STORE_CALL_CHANNEL,
};
