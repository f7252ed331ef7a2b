// @ts-check
'use strict';
// The options object of both stores: which names each takes, the logger, and what reaches
// the native side.

const { StoreError } = require('./errors.js');

/** @typedef {import('../index').StoreLogger} StoreLogger */
/** @typedef {import('../binding').NativeStoreOptions} NativeStoreOptions */
/** @typedef {import('../index').CredentialsProvider} CredentialsProvider */
/** @typedef {'info' | 'warn' | 'error'} LogLevel */

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
 * The caller's own properties, in an object with no prototype: nothing inherited (a polluted
 * `Object.prototype.tls`, say) becomes an option, here or where napi reads the fields.
 * @param {object} options
 * @returns {Record<string, unknown>}
 */
function ownOptions(options) {
  return Object.assign(Object.create(null), options);
}

/**
 * The options object a constructor or the factory was given: `{}` for none (undefined or
 * null); anything else but an object that is not an array throws.
 * @param {unknown} options
 * @returns {object}
 */
function optionsObject(options) {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new StoreError('STORE_INVALID_CONFIG', 'options: expected an object');
  }
  return options;
}

/**
 * Checks the options object; returns what the native side takes, the logger and the
 * credentials provider.
 * @param {unknown} options
 * @param {readonly string[]} allowed
 * @returns {{ native: NativeStoreOptions, logger: StoreLogger, credentials?: CredentialsProvider }}
 */
function splitOptions(options, allowed) {
  const given = optionsObject(options);
  for (const name of Object.keys(given)) {
    if (!allowed.includes(name)) {
      throw new StoreError('STORE_INVALID_CONFIG', `options: unknown option '${name}'`);
    }
  }
  const { logger = stderrLogger, credentials, ...rest } = ownOptions(given);
  const native = ownOptions(rest);
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
  for (const nested of ['tls', 'retry']) {
    if (native[nested] !== undefined) native[nested] = ownOptions(/** @type {object} */ (native[nested]));
  }
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

module.exports = {
  ownOptions,
  optionsObject,
  COMMON_OPTIONS,
  REDIS_OPTIONS,
  splitOptions,
  logSink,
};
