'use strict';
// What every peer shares: the docs/DESIGN.md key layout and its constants.

const TTL_SECONDS = 86_400;
const INDEX_TTL_SECONDS = TTL_SECONDS + 3600;
const LIST_LIMIT = 50;
const COMMAND_TIMEOUT_MS = 5000;

const conversationKey = (id) => `conv:${id}`;
const userIndexKey = (userId) => `user:${userId}:conversations`;

/** The stored JSON: the conversation without the live `sdkConversationRef`. */
function serialize(conversation) {
  if (conversation.sdkConversationRef === undefined) return JSON.stringify(conversation);
  const { sdkConversationRef: _live, ...rest } = conversation;
  return JSON.stringify(rest);
}

module.exports = {
  TTL_SECONDS,
  INDEX_TTL_SECONDS,
  LIST_LIMIT,
  COMMAND_TIMEOUT_MS,
  conversationKey,
  userIndexKey,
  serialize,
};
