// Compiled by `tsc -p __test__/types` (strict, no emit): the package's types as the server
// sees them. Every `@ts-expect-error` below must be an error, or tsc fails ("unused directive").

import { DefaultAzureCredential, ManagedIdentityCredential } from '@azure/identity';
import type {
  ConversationStore,
  CredentialsProvider,
  NormalizedMessage,
  RedisStoreOptions,
  StoreCredentials,
  StoredConversation,
  StoreErrorCode,
  StoreStatus,
} from '@copilot-chat/redis-store';
import {
  createConversationStore,
  entraIdCredentials,
  InMemoryConversationStore,
  RedisConversationStore,
  STORE_ERROR_CODES,
  StoreError,
} from '@copilot-chat/redis-store';

// Both classes and the factory give the interface the server codes against.
const redis: ConversationStore = new RedisConversationStore('rediss://:key@cache.redis.cache.windows.net:6380', {
  ttlSeconds: 3600,
  commandTimeoutMs: 2000,
  connectTimeoutMs: 5000,
  listLimit: 20,
  keyPrefix: 'chat:',
  tls: { ca: Buffer.from('PEM'), cert: 'PEM', key: 'PEM' },
  retry: { baseDelayMs: 50, maxDelayMs: 2000 },
  healthCheckIntervalMs: 1000,
  logger: console,
  maxRecordBytes: 1 << 20,
  cluster: false,
});
const memory: ConversationStore = new InMemoryConversationStore({ ttlSeconds: 60, listLimit: 5, logger: console });
const chosen: ConversationStore = createConversationStore({ redisUrl: process.env.REDIS_URL, commandTimeoutMs: 500 });
const stores: ConversationStore[] = [redis, memory, chosen, createConversationStore()];

// ready() is on the interface, so the store the factory chose can be awaited at start-up.
const readiness: Promise<void>[] = [
  new InMemoryConversationStore().ready(),
  new RedisConversationStore('rediss://h:6380').ready(),
  createConversationStore().ready(),
  ...stores.map((store) => store.ready()),
];

const message: NormalizedMessage = {
  id: 'm1',
  role: 'agent',
  type: 'adaptiveCard',
  text: 'Pick one',
  cardPayload: { type: 'AdaptiveCard', version: '1.5' },
  timestamp: '2026-02-22T10:00:00.000Z',
};
const conversation: StoredConversation = {
  externalId: '3f2b8c1e-7a4d-4e5f-9b6a-1c2d3e4f5a6b',
  sdkConversationRef: { anything: 'live' },
  history: [message, { id: 'm2', role: 'user', type: 'text', text: 'hi', timestamp: '2026-02-22T10:00:01Z' }],
  userId: 'user-1',
  tenantId: 'tenant-1',
  createdAt: '2026-02-22T10:00:00.000Z',
  updatedAt: '2026-02-22T10:00:01.000Z',
  status: 'completed',
  workflowId: '0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e',
  currentStep: 2,
  stepData: { answers: [1, 2] },
  metadata: { channel: 'web' },
};

async function roundTrip(store: ConversationStore): Promise<string> {
  await store.set(conversation.externalId, conversation);
  const read = await store.get(conversation.externalId);
  // @ts-expect-error get() may find nothing: the result must be checked before use
  read.userId;
  const listed: StoredConversation[] = await store.listByUser('user-1');
  await store.delete(conversation.externalId);
  const status: StoreStatus = store.status;
  // @ts-expect-error status is read-only
  store.status = 'end';
  await store.close();
  return `${read?.userId ?? 'none'} ${listed.length} ${status}`;
}

function errorCode(error: unknown): StoreErrorCode | undefined {
  return error instanceof StoreError ? error.code : undefined;
}
const codes: readonly StoreErrorCode[] = STORE_ERROR_CODES;
const options: RedisStoreOptions = { commandTimeoutMs: 100 };

// Microsoft Entra ID: any @azure/identity TokenCredential, or a provider of one's own.
const entra = new RedisConversationStore('rediss://cache.westeurope.redis.azure.net:10000', {
  credentials: entraIdCredentials(new DefaultAzureCredential()),
});
const managed: CredentialsProvider = entraIdCredentials(new ManagedIdentityCredential('client-id'), {
  objectId: '00000000-0000-0000-0000-000000000000',
  scopes: ['https://redis.azure.com/.default'],
});
const ownProvider: CredentialsProvider = async (): Promise<StoreCredentials> => ({
  username: 'app',
  password: 'token',
  expiresAt: Date.now() + 3_600_000,
  refreshAt: Date.now() + 1_800_000,
});
const withOwn = createConversationStore({ redisUrl: 'rediss://h:6380', credentials: ownProvider });

// @ts-expect-error a provider must give a password
const noPassword: CredentialsProvider = async () => ({ username: 'app', expiresAt: 1 });

// @ts-expect-error expiresAt is epoch milliseconds, not a Date
const dateExpiry: CredentialsProvider = async () => ({ password: 'p', expiresAt: new Date() });

// @ts-expect-error entraIdCredentials takes a TokenCredential, not a token
const fromString = entraIdCredentials('eyJ0eXAiOiJKV1Qi');

// @ts-expect-error there is no tenantId option (the credential knows its tenant)
const badEntraOption = entraIdCredentials(new DefaultAzureCredential(), { tenantId: 't' });

// Wrong shapes do not compile.
// @ts-expect-error 'archived' is not a conversation status
const badStatus: StoredConversation = { ...conversation, status: 'archived' };

const { userId: _userId, ...withoutUserId } = conversation;
// @ts-expect-error userId is required
const missingUserId: StoredConversation = withoutUserId;

// @ts-expect-error a message's role is 'user' or 'agent', not 'assistant'
const badRole: NormalizedMessage = { ...message, role: 'assistant' };

// @ts-expect-error a store status is ioredis' 'ready', not 'connected'
const badStoreStatus: StoreStatus = 'connected';

// @ts-expect-error there is no `commandTimeout` option (it is commandTimeoutMs)
const unknownOption: RedisStoreOptions = { commandTimeout: 100 };

// @ts-expect-error Redis-only options are not accepted by the in-memory store
const memoryWithRedisOption = new InMemoryConversationStore({ commandTimeoutMs: 100 });

// @ts-expect-error the factory's URL option is redisUrl
const misspelledUrl = createConversationStore({ redisURL: 'rediss://h:6380' });

// @ts-expect-error error codes are a closed union
const badCode: StoreErrorCode = 'STORE_TIMEOUT';

export const used = [
  stores,
  entra,
  managed,
  withOwn,
  noPassword,
  dateExpiry,
  fromString,
  badEntraOption,
  readiness,
  roundTrip,
  errorCode,
  codes,
  options,
  badStatus,
  missingUserId,
  badRole,
  badStoreStatus,
  unknownOption,
  memoryWithRedisOption,
  misspelledUrl,
  badCode,
];
