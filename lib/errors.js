// @ts-check
'use strict';
// StoreError and its codes. napi-rs cannot put a `code` on an async rejection, so the native
// side prefixes each message with its code and `toStoreError` turns that into `error.code`.

/** @typedef {import('../index').StoreErrorCode} StoreErrorCode */

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
  if (isStoreError(error)) return /** @type {StoreError} */ (error);
  const message = printable(messageOf(error));
  const match = CODE_PREFIX.exec(message);
  if (match && isStoreErrorCode(match[1])) {
    return new StoreError(match[1], message.slice(match[0].length));
  }
  return new StoreError(fallbackCode, message);
}

/** `instanceof`, which a revoked Proxy makes throw. @param {unknown} error */
function isStoreError(error) {
  try {
    return error instanceof StoreError;
  } catch {
    return false;
  }
}

/**
 * What was thrown, as text. A caller's own code (an options getter, a Proxy trap) may throw
 * anything, a value with no string form or a throwing `toString` included.
 * @param {unknown} error
 * @returns {string}
 */
function messageOf(error) {
  try {
    return error instanceof Error ? String(error.message) : String(error);
  } catch {
    return 'a thrown value with no message';
  }
}

/**
 * `text` with control characters and the Unicode line separators escaped: one line, whatever
 * the caller's data holds, as the native side's messages are (whose escapes read `\n`
 * where these read `\u{a}`).
 * @param {string} text
 */
function printable(text) {
  return text.replace(/[\p{Cc}\u2028\u2029]/gu, (c) => `\\u{${c.codePointAt(0)?.toString(16)}}`);
}

/** @param {unknown} error @returns {never} */
function rejectWithStoreError(error) {
  throw toStoreError(error, 'STORE_UNAVAILABLE');
}

/**
 * @template T
 * @param {() => T} construct
 * @returns {T}
 */
function constructNative(construct) {
  try {
    return construct();
  } catch (error) {
    // A constructor only ever fails on its configuration. What the caller's own code threw
    // (an options getter, a Proxy trap), a StoreError of its own or a message with a code
    // included, gives neither its code nor its lines: the error is made anew.
    throw new StoreError('STORE_INVALID_CONFIG', printable(messageOf(toStoreError(error, 'STORE_INVALID_CONFIG'))));
  }
}

module.exports = {
  STORE_ERROR_CODES,
  StoreError,
  toStoreError,
  printable,
  messageOf,
  rejectWithStoreError,
  constructNative,
};
