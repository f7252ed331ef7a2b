'use strict';
// GLIDE with the server's Zod schema on every record read, as the ioredis + Zod peer does: the
// store this package replaces, on GLIDE's client.

const { createGlideStore } = require('./glide');
const { StoredConversation } = require('./ioredis-zod');

module.exports = {
  label: 'glide+zod',
  create: (server) => createGlideStore(server, (json) => StoredConversation.parse(JSON.parse(json))),
};
