'use strict'
// The package entry: a thin layer over the generated `binding.js`. napi-rs cannot put a
// `code` on an async rejection, so the native side prefixes each message with its code and
// this file turns that into `error.code`. Conversations cross the boundary as JSON text:
// V8's own JSON.stringify/JSON.parse are far faster than building objects through N-API.

const { NativeRedisStore, NativeMemoryStore } = require('./load-binding.js')

const STORE_ERROR_CODES = [
  'STORE_UNAVAILABLE',
  'STORE_INVALID_ARGUMENT',
  'STORE_CORRUPT_RECORD',
  'STORE_INVALID_CONFIG',
  'STORE_CLOSED',
]
const CODE_PREFIX = /^(STORE_[A-Z_]+): /

class StoreError extends Error {
  constructor(code, message) {
    super(message)
    this.name = 'StoreError'
    this.code = code
  }
}

/** A native error as a StoreError; `fallbackCode` for errors napi raised itself. */
function toStoreError(error, fallbackCode) {
  if (error instanceof StoreError) return error
  const message = error instanceof Error ? error.message : String(error)
  const match = CODE_PREFIX.exec(message)
  if (match && STORE_ERROR_CODES.includes(match[1])) {
    return new StoreError(match[1], message.slice(match[0].length))
  }
  return new StoreError(fallbackCode, message)
}

function rejectWithStoreError(error) {
  throw toStoreError(error, 'STORE_UNAVAILABLE')
}

const COMMON_OPTIONS = ['ttlSeconds', 'listLimit', 'maxRecordBytes', 'logger']
const REDIS_OPTIONS = [
  ...COMMON_OPTIONS,
  'commandTimeoutMs',
  'connectTimeoutMs',
  'keyPrefix',
  'tls',
  'retry',
  'healthCheckIntervalMs',
  'cluster',
]

const stderrLogger = {
  info: (line) => process.stderr.write(line + '\n'),
  warn: (line) => process.stderr.write(line + '\n'),
  error: (line) => process.stderr.write(line + '\n'),
}

/** Checks the options object; returns what the native side takes and the logger. */
function splitOptions(options, allowed) {
  if (options === undefined || options === null) return { native: {}, logger: stderrLogger }
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new StoreError('STORE_INVALID_CONFIG', 'options: expected an object')
  }
  for (const name of Object.keys(options)) {
    if (!allowed.includes(name)) {
      throw new StoreError('STORE_INVALID_CONFIG', `options: unknown option '${name}'`)
    }
  }
  const { logger = stderrLogger, ...native } = options
  checkNestedOption(native, 'tls', ['ca', 'cert', 'key'])
  checkNestedOption(native, 'retry', ['baseDelayMs', 'maxDelayMs'])
  const validLogger =
    logger !== null &&
    typeof logger === 'object' &&
    ['info', 'warn', 'error'].every((level) => typeof logger[level] === 'function')
  if (!validLogger) {
    throw new StoreError('STORE_INVALID_CONFIG', 'logger: expected an object with info, warn and error methods')
  }
  return { native, logger }
}

/** napi would read a non-object as `{}` and drop unknown fields: say so instead. */
function checkNestedOption(options, name, fields) {
  const value = options[name]
  if (value === undefined) return
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new StoreError('STORE_INVALID_CONFIG', `${name}: expected an object with ${fields.join(', ')}`)
  }
  for (const field of Object.keys(value)) {
    if (!fields.includes(field)) {
      throw new StoreError('STORE_INVALID_CONFIG', `${name}: unknown field '${field}' (expected ${fields.join(', ')})`)
    }
  }
}

/** The sink the native side logs through; a throwing logger must not break the store. */
function logSink(logger) {
  return (level, line) => {
    try {
      logger[level](line)
    } catch {
      // Nothing sensible to do with a logger that throws.
    }
  }
}

function constructNative(construct) {
  try {
    return construct()
  } catch (error) {
    throw toStoreError(error, 'STORE_INVALID_CONFIG')
  }
}

function invalidArgument(message) {
  return Promise.reject(new StoreError('STORE_INVALID_ARGUMENT', message))
}

/** The conversation as stored: JSON without the live `sdkConversationRef`. */
function serialize(conversation) {
  if (conversation === null || typeof conversation !== 'object' || Array.isArray(conversation)) {
    throw new StoreError('STORE_INVALID_ARGUMENT', 'conversation: expected an object')
  }
  let persisted = conversation
  if (conversation.sdkConversationRef !== undefined) {
    const { sdkConversationRef: _live, ...rest } = conversation
    persisted = rest
  }
  let json
  try {
    json = JSON.stringify(persisted)
  } catch (error) {
    throw new StoreError('STORE_INVALID_ARGUMENT', `conversation: cannot be serialized as JSON (${error.message})`)
  }
  if (typeof json !== 'string') {
    throw new StoreError('STORE_INVALID_ARGUMENT', 'conversation: serializes to nothing (a toJSON that returns undefined?)')
  }
  return json
}

const toUndefined = () => undefined

function parseConversation(json) {
  return json == null ? undefined : JSON.parse(json)
}

/** What both stores do around their native half: argument shapes, JSON, errors. */
class NativeBackedStore {
  #native

  constructor(native) {
    this.#native = native
  }

  get status() {
    return this.#native.status
  }

  /**
   * Runs a native method that returns a promise (Redis) or a value (memory), and maps its
   * result with `onValue`: one promise hop on the hot path.
   */
  #call(method, onValue, first, second) {
    try {
      const result = this.#native[method](first, second)
      return result instanceof Promise ? result.then(onValue, rejectWithStoreError) : Promise.resolve(onValue(result))
    } catch (error) {
      return Promise.reject(toStoreError(error, 'STORE_INVALID_ARGUMENT'))
    }
  }

  get(id) {
    if (typeof id !== 'string') return invalidArgument('id: expected a non-empty string')
    return this.#call('get', parseConversation, id)
  }

  set(id, conversation) {
    if (typeof id !== 'string') return invalidArgument('id: expected a non-empty string')
    let json
    try {
      json = serialize(conversation)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.#call('set', toUndefined, id, json)
  }

  delete(id) {
    if (typeof id !== 'string') return invalidArgument('id: expected a non-empty string')
    return this.#call('delete', toUndefined, id)
  }

  listByUser(userId) {
    if (typeof userId !== 'string') return invalidArgument('userId: expected a non-empty string')
    return this.#call('listByUser', JSON.parse, userId)
  }

  close() {
    return this.#call('close', toUndefined)
  }
}

/**
 * Gathers the calls made in one turn of the event loop into one native batch call: their
 * commands leave Node in one write, and one native promise settles them all.
 */
// Several batches in flight keep JSON work on the JS thread overlapping with Redis round
// trips; one batch of everything would run them in lockstep (measured: 16 beats 4, 64, 1).
const MAX_BATCH = 16

class CallBatcher {
  #runOne
  #runBatch
  #queue = null

  constructor(runOne, runBatch) {
    this.#runOne = runOne
    this.#runBatch = runBatch
  }

  call(first, second) {
    if (this.#queue === null) {
      const queue = []
      this.#queue = queue
      queueMicrotask(() => this.#flush(queue))
    }
    const queue = this.#queue
    const settled = new Promise((resolve, reject) => queue.push({ first, second, resolve, reject }))
    if (queue.length >= MAX_BATCH) this.#flush(queue)
    return settled
  }

  #flush(queue) {
    if (this.#queue !== queue) return
    this.#queue = null
    try {
      if (queue.length === 1) {
        const [only] = queue
        this.#runOne(only.first, only.second).then(only.resolve, only.reject)
        return
      }
      this.#runBatch(queue).then(
        ({ values, errors }) => {
          queue.forEach((call, i) => (errors[i] == null ? call.resolve(values[i]) : call.reject(new Error(errors[i]))))
        },
        (error) => queue.forEach((call) => call.reject(error)),
      )
    } catch (error) {
      queue.forEach((call) => call.reject(error))
    }
  }
}

/** The native Redis store with `get` and `set` batched per turn of the event loop. */
function batchedRedisStore(native) {
  const gets = new CallBatcher(
    (id) => native.get(id),
    (calls) => native.getBatch(calls.map((call) => call.first)),
  )
  const sets = new CallBatcher(
    (id, json) => native.set(id, json),
    (calls) => native.setBatch(calls.map((call) => call.first), calls.map((call) => call.second)),
  )
  return {
    get status() {
      return native.status
    },
    get: (id) => gets.call(id),
    set: (id, json) => sets.call(id, json),
    delete: (id) => native.delete(id),
    listByUser: (userId) => native.listByUser(userId),
    close: () => native.close(),
  }
}

/** `host:port` of a Redis store, for the factory's log line; no credentials. */
let addressOf

class RedisConversationStore extends NativeBackedStore {
  #native

  static {
    addressOf = (store) => store.#native.address
  }

  constructor(url, options) {
    if (typeof url !== 'string') {
      throw new StoreError('STORE_INVALID_CONFIG', 'redisUrl: expected a rediss:// URL string')
    }
    const { native, logger } = splitOptions(options, REDIS_OPTIONS)
    const store = constructNative(() => new NativeRedisStore(url, native, logSink(logger)))
    super(batchedRedisStore(store))
    this.#native = store
  }

  /** Resolves once connected; rejects with STORE_UNAVAILABLE after connectTimeoutMs. */
  ready() {
    return this.#native.ready().catch(rejectWithStoreError)
  }
}

class InMemoryConversationStore extends NativeBackedStore {
  constructor(options) {
    const { native } = splitOptions(options, COMMON_OPTIONS)
    super(constructNative(() => new NativeMemoryStore(native)))
  }

  ready() {
    return this.status === 'end' ? Promise.reject(new StoreError('STORE_CLOSED', 'the store is closed')) : Promise.resolve()
  }
}

/** A Redis store when `redisUrl` is a non-empty string, else an in-memory one. */
function createConversationStore(options = {}) {
  if (options === null || typeof options !== 'object') {
    throw new StoreError('STORE_INVALID_CONFIG', 'options: expected an object')
  }
  const { redisUrl, ...rest } = options
  splitOptions(rest, REDIS_OPTIONS)
  const logger = rest.logger ?? stderrLogger
  if (redisUrl !== undefined && redisUrl !== null && typeof redisUrl !== 'string') {
    throw new StoreError('STORE_INVALID_CONFIG', 'redisUrl: expected a rediss:// URL string')
  }
  if (redisUrl) {
    const store = new RedisConversationStore(redisUrl, rest)
    logSink(logger)('info', `[STORE] using Redis at ${addressOf(store)}`)
    return store
  }
  const memoryOptions = Object.fromEntries(Object.entries(rest).filter(([name]) => COMMON_OPTIONS.includes(name)))
  const store = new InMemoryConversationStore(memoryOptions)
  logSink(logger)('info', '[STORE] using the in-memory store (no Redis URL configured)')
  return store
}

module.exports = {
  RedisConversationStore,
  InMemoryConversationStore,
  createConversationStore,
  StoreError,
  STORE_ERROR_CODES,
}
