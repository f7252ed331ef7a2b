'use strict';
// Valid StoredConversation fixtures with deterministic content: the same seed always
// yields the same conversation, and every call without a seed yields a new one.

const { createHash } = require('node:crypto');

/** Every fixture's clock starts here, so timestamps are reproducible. */
const BASE_TIME_MS = Date.parse('2026-02-22T10:00:00.000Z');

let sequence = 0;

/** A UUID (version 5 layout) derived from `seed`: stable across runs, distinct per seed. */
function uuidFrom(seed) {
  const hex = createHash('sha1').update(String(seed)).digest('hex');
  const variant = ((parseInt(hex[16], 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** ISO 8601 UTC with milliseconds, `offsetMs` after the fixtures' base time. */
function isoAt(offsetMs = 0) {
  return new Date(BASE_TIME_MS + offsetMs).toISOString();
}

/**
 * An id no other call of this process gets: a UUID, since a conversation's id is its
 * `externalId`. The label only seeds it (and keeps runs reproducible per process).
 */
function uniqueId(label = 'conv') {
  sequence += 1;
  return uuidFrom(`${label}-${process.pid}-${sequence}`);
}

/** Message `index` of the conversation seeded by `seed`; `overrides` replace or add fields. */
function makeMessage(seed, index, overrides = {}) {
  return {
    id: uuidFrom(`${seed}/message/${index}`),
    role: index % 2 === 0 ? 'user' : 'agent',
    type: 'text',
    text: index % 2 === 0 ? `Question ${index} of ${seed}` : `Answer ${index} to ${seed}`,
    timestamp: isoAt(index * 1000),
    ...overrides,
  };
}

/**
 * A valid StoredConversation.
 * messages: a count (default 2) or an array of per-message overrides.
 * Any other field given (known or not) is set as is; `undefined` removes a field.
 */
function makeConversation({
  seed,
  userId = 'user-1',
  tenantId = 'tenant-1',
  updatedAt = isoAt(60_000),
  createdAt = isoAt(0),
  status = 'active',
  messages = 2,
  ...rest
} = {}) {
  if (seed === undefined) {
    sequence += 1;
    seed = `conversation-${sequence}`;
  }
  const overrides = Array.isArray(messages) ? messages : Array.from({ length: messages }, () => ({}));
  const conversation = {
    externalId: uuidFrom(`${seed}/external`),
    history: overrides.map((fields, index) => makeMessage(seed, index, fields)),
    userId,
    tenantId,
    createdAt,
    updatedAt,
    status,
    ...rest,
  };
  for (const [name, value] of Object.entries(conversation)) {
    if (value === undefined) delete conversation[name];
  }
  return conversation;
}

/** The conversation as a store returns it: a deep copy without `sdkConversationRef`. */
function persisted(conversation) {
  const { sdkConversationRef: _live, ...rest } = conversation;
  return JSON.parse(JSON.stringify(rest));
}

module.exports = { BASE_TIME_MS, isoAt, uuidFrom, uniqueId, makeMessage, makeConversation, persisted };
