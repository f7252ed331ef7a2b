'use strict';
// The store this package replaces: ioredis over TLS with `commandTimeout`, SET + ZADD + EXPIRE
// as one MULTI pipeline, and a Zod parse of every record read (docs/DESIGN.md "StoredConversation").

const Redis = require('ioredis');
const { z } = require('zod');
const {
  TTL_SECONDS,
  INDEX_TTL_SECONDS,
  LIST_LIMIT,
  COMMAND_TIMEOUT_MS,
  conversationKey,
  userIndexKey,
  serialize,
} = require('./common');

const isoUtc = z.string().datetime(); // UTC with `Z`, fractional seconds optional
const record = z.record(z.string(), z.unknown());

const NormalizedMessage = z
  .object({
    id: z.string(),
    role: z.enum(['user', 'agent']),
    type: z.enum(['text', 'adaptiveCard', 'typing', 'error']),
    text: z.string().optional(),
    cardPayload: record.optional(),
    timestamp: isoUtc,
  })
  .passthrough();

const StoredConversation = z
  .object({
    externalId: z.string().uuid(),
    history: z.array(NormalizedMessage),
    userId: z.string().min(1),
    tenantId: z.string().min(1),
    createdAt: isoUtc,
    updatedAt: isoUtc,
    status: z.enum(['active', 'completed', 'abandoned']),
    workflowId: z.string().uuid().optional(),
    currentStep: z.number().int().nonnegative().optional(),
    stepData: record.optional(),
    metadata: record.optional(),
  })
  .passthrough();

function connectOptions({ host, port, caPem }, extra) {
  return {
    host,
    port,
    tls: { ca: caPem },
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: 10_000,
    maxRetriesPerRequest: 1,
    lazyConnect: true,
    ...extra,
  };
}

/** A store over ioredis; `validate` decides whether reads go through Zod. */
async function createIoredisStore(server, { validate, clientOptions }) {
  const client = new Redis(connectOptions(server, clientOptions));
  await client.connect();
  const parse = validate ? (json) => StoredConversation.parse(JSON.parse(json)) : (json) => JSON.parse(json);

  return {
    async set(id, conversation) {
      const score = Date.parse(conversation.updatedAt);
      const index = userIndexKey(conversation.userId);
      await client
        .multi()
        .set(conversationKey(id), serialize(conversation), 'EX', TTL_SECONDS)
        .zadd(index, score, id)
        .expire(index, INDEX_TTL_SECONDS)
        .exec();
    },
    async get(id) {
      const json = await client.get(conversationKey(id));
      return json === null ? undefined : parse(json);
    },
    async listByUser(userId) {
      const ids = await client.zrevrangebyscore(userIndexKey(userId), '+inf', '-inf', 'LIMIT', 0, LIST_LIMIT);
      if (ids.length === 0) return [];
      const values = await client.mget(ids.map(conversationKey));
      const out = [];
      for (const json of values) if (json !== null) out.push(parse(json));
      return out;
    },
    async delete(id) {
      const key = conversationKey(id);
      const json = await client.get(key);
      const multi = client.multi().del(key);
      if (json !== null) multi.zrem(userIndexKey(JSON.parse(json).userId), id);
      await multi.exec();
    },
    async close() {
      await client.quit();
    },
  };
}

module.exports = {
  label: 'ioredis+zod',
  create: (server) => createIoredisStore(server, { validate: true }),
  createIoredisStore,
  StoredConversation,
};
