// @ts-check
'use strict';
// Credentials providers: the checked shape the native side calls for, and one from
// Microsoft Entra ID.

const { StoreError, printable, messageOf } = require('./errors.js');

/** @typedef {import('../binding').NativeCredentials} NativeCredentials */
/** @typedef {import('../index').CredentialsProvider} CredentialsProvider */

/** The longest provider failure a message quotes. */
const MAX_CAUSE_CHARS = 300;

/** What a secret in a provider's failure is replaced with. */
const REDACTED = '[redacted]';

/**
 * What looks like a JWT, an Entra ID access token among them: base64 JSON (`eyJ`, `{"`) and
 * its dot-separated parts, in base64url or in standard base64 (`+`, `/`, `=`). Also a token
 * cut short, which still names its holder.
 */
const JWT_LIKE = /eyJ[\w+/=-]{8,}(?:\.[\w+/=-]*){0,2}/g;

/**
 * A provider's failure as one short line: its message only, with every password in `secrets`
 * and anything that looks like a JWT replaced before it is cut, so that no part of one is
 * quoted (a provider's own error may repeat the token it could not refresh). The longest
 * password goes first: one that holds another must not leave its own tail. A short password
 * is replaced wherever it appears, in other words too: a message made hard to read is the
 * price of never quoting it.
 * @param {unknown} error
 * @param {readonly string[]} [secrets]
 */
function describeFailure(error, secrets = []) {
  let message = messageOf(error);
  const longestFirst = [...secrets].sort((a, b) => b.length - a.length);
  for (const secret of longestFirst) message = message.replaceAll(secret, REDACTED);
  return printable(message.replace(JWT_LIKE, REDACTED).slice(0, MAX_CAUSE_CHARS));
}

/** How many of the passwords a provider gave last are kept to be redacted from its failures. */
const KEPT_SECRETS = 2;

/**
 * What the native side calls for credentials: never throws, always resolves to one checked
 * shape, with `error` set when the provider failed or gave something unusable. No message
 * quotes a value (it may be a token).
 * @param {CredentialsProvider} provider
 * @returns {() => Promise<NativeCredentials>}
 */
function nativeCredentials(provider) {
  /** The passwords it gave last, newest first: the store may still hold either. */
  /** @type {string[]} */
  let given = [];
  return async () => {
    /** @type {NativeCredentials} */
    let checked;
    try {
      // Reading the result runs the caller's code too (a getter, a Proxy trap).
      checked = checkCredentials(await provider());
    } catch (error) {
      return { error: describeFailure(error, given) };
    }
    if (checked.password !== undefined && !given.includes(checked.password)) {
      given = [checked.password, ...given].slice(0, KEPT_SECRETS);
    }
    return checked;
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
 * @param {import('../index').EntraIdTokenCredential} tokenCredential
 * @param {import('../index').EntraIdCredentialsOptions} [options]
 * @returns {CredentialsProvider}
 */
function entraIdCredentials(tokenCredential, options) {
  /** The errors this function makes; anything else was thrown by the caller's own code. */
  const own = new WeakSet();
  const fail = (/** @type {string} */ message) => {
    const error = new StoreError('STORE_INVALID_CONFIG', `entraIdCredentials: ${message}`);
    own.add(error);
    return error;
  };
  try {
    return checkedEntraIdProvider(tokenCredential, options, fail);
  } catch (error) {
    // A getter or a Proxy trap of the arguments threw.
    if (own.has(/** @type {object} */ (error))) throw error;
    throw fail(`its arguments cannot be read (${describeFailure(error)})`);
  }
}

/**
 * `entraIdCredentials`' checks, which read the caller's arguments, and its provider.
 * @param {import('../index').EntraIdTokenCredential} tokenCredential
 * @param {import('../index').EntraIdCredentialsOptions | undefined} options
 * @param {(message: string) => StoreError} fail
 * @returns {CredentialsProvider}
 */
function checkedEntraIdProvider(tokenCredential, options, fail) {
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

module.exports = { nativeCredentials, checkCredentials, entraIdCredentials };
