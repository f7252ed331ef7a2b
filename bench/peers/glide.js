'use strict';
// Valkey GLIDE (its Rust core ships inside the npm package) over TLS with the test CA as its
// root, the same layout, and JSON.parse without Zod (`glide-zod.js`: the same with the Zod parse).

const { GlideClient, Batch, TimeUnit, InfBoundary } = require('@valkey/valkey-glide');
const {
  TTL_SECONDS,
  INDEX_TTL_SECONDS,
  LIST_LIMIT,
  COMMAND_TIMEOUT_MS,
  conversationKey,
  userIndexKey,
  serialize,
} = require('./common');

const NEWEST_FIRST = {
  type: 'byScore',
  start: InfBoundary.PositiveInfinity,
  end: InfBoundary.NegativeInfinity,
  limit: { offset: 0, count: LIST_LIMIT },
};

/** A store over GLIDE; `parse` turns a stored JSON text into the record returned. */
async function createGlideStore({ host, port, caPem }, parse = JSON.parse) {
  const client = await GlideClient.createClient({
    addresses: [{ host, port }],
    useTLS: true,
    requestTimeout: COMMAND_TIMEOUT_MS,
    advancedConfiguration: {
      connectionTimeout: 10_000,
      tlsAdvancedConfiguration: { rootCertificates: Buffer.from(caPem) },
    },
  });

  return {
    async set(id, conversation) {
      const index = userIndexKey(conversation.userId);
      const batch = new Batch(true)
        .set(conversationKey(id), serialize(conversation), { expiry: { type: TimeUnit.Seconds, count: TTL_SECONDS } })
        .zadd(index, { [id]: Date.parse(conversation.updatedAt) })
        .expire(index, INDEX_TTL_SECONDS);
      await client.exec(batch, true);
    },
    async get(id) {
      const json = await client.get(conversationKey(id));
      return json === null ? undefined : parse(json);
    },
    async listByUser(userId) {
      const ids = await client.zrange(userIndexKey(userId), NEWEST_FIRST, { reverse: true });
      if (ids.length === 0) return [];
      const values = await client.mget(ids.map(conversationKey));
      const out = [];
      for (const json of values) if (json !== null) out.push(parse(json));
      return out;
    },
    async delete(id) {
      const key = conversationKey(id);
      const json = await client.get(key);
      const batch = new Batch(true).del([key]);
      if (json !== null) batch.zrem(userIndexKey(JSON.parse(json).userId), [id]);
      await client.exec(batch, true);
    },
    async close() {
      client.close();
    },
  };
}

module.exports = { label: 'glide', create: (server) => createGlideStore(server), createGlideStore };
