/// <reference types="node" />
// Types of `@copilot-chat/redis-store`. The native classes behind them are generated into
// `binding.d.ts` by `napi build`; this file states the contract of docs/DESIGN.md on top of them.
// `Buffer` is Node's: the reference above takes its types from the consumer's @types/node,
// also when its tsconfig lists no `types`.

/** One message of a conversation. */
export interface NormalizedMessage {
  id: string;
  role: 'user' | 'agent';
  type: 'text' | 'adaptiveCard' | 'typing' | 'error';
  text?: string;
  cardPayload?: Record<string, unknown>;
  /** ISO 8601 UTC, e.g. 2026-02-22T10:00:00.000Z */
  timestamp: string;
}

/** A conversation as the server keeps it. */
export interface StoredConversation {
  /** UUID */
  externalId: string;
  /** The live SDK object: never persisted, undefined after a read. */
  sdkConversationRef?: unknown;
  history: NormalizedMessage[];
  /** Non-empty. */
  userId: string;
  /** Non-empty. */
  tenantId: string;
  /** ISO 8601 UTC */
  createdAt: string;
  /** ISO 8601 UTC; its epoch milliseconds order `listByUser`. */
  updatedAt: string;
  status: 'active' | 'completed' | 'abandoned';
  /** UUID */
  workflowId?: string;
  /** >= 0 */
  currentStep?: number;
  stepData?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
}

/** In ioredis' words; `'ready'` means usable now. */
export type StoreStatus = 'connecting' | 'ready' | 'reconnecting' | 'end';

/** The stable `code` of every rejection. */
export type StoreErrorCode =
  | 'STORE_UNAVAILABLE'
  | 'STORE_INVALID_ARGUMENT'
  | 'STORE_CORRUPT_RECORD'
  | 'STORE_INVALID_CONFIG'
  | 'STORE_CLOSED';

export declare const STORE_ERROR_CODES: readonly StoreErrorCode[];

/** What every store rejects (or, in constructors, throws) with. */
export declare class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string);
}

/** The interface the server codes against. */
export interface ConversationStore {
  get(id: string): Promise<StoredConversation | undefined>;
  /** Idempotent: a `set` that timed out may be retried. */
  set(id: string, conversation: StoredConversation): Promise<void>;
  /** Removes the conversation and its index entry; a missing id resolves. */
  delete(id: string): Promise<void>;
  /** The user's newest conversations first, at most `listLimit`. */
  listByUser(userId: string): Promise<StoredConversation[]>;
  readonly status: StoreStatus;
  /**
   * Resolves once the store can serve calls (at once in memory); a server awaits it at
   * start-up. A Redis store rejects with `STORE_UNAVAILABLE` after `connectTimeoutMs`.
   */
  ready(): Promise<void>;
  /** Calls, errors and latency per operation, and the connection's state; never waits. */
  stats(): StoreStats;
  close(): Promise<void>;
}

/** A store call, as `stats()` and the `redis-store:call` channel name it. */
export type StoreOperation = 'get' | 'set' | 'delete' | 'listByUser';

/** What `stats()` returns: a plain snapshot. */
export interface StoreStats {
  status: StoreStatus;
  /** Epoch ms. */
  statusSince: number;
  reconnects: number;
  /** The last failed call or connection attempt; its message holds no credentials. */
  lastError?: { code: StoreErrorCode; message: string; at: number };
  /** Epoch ms, with `credentials`. */
  credentialsExpireAt?: number;
  operations: Record<
    StoreOperation,
    {
      /** Settled calls. */
      calls: number;
      errors: Partial<Record<StoreErrorCode, number>>;
      /** Milliseconds; p50 <= p99 <= max. */
      latencyMs: { p50: number; p99: number; max: number };
    }
  >;
}

/**
 * The context of every event on the `node:diagnostics_channel` TracingChannel
 * `redis-store:call`: one object from start to asyncEnd, never the conversation's content.
 */
export type StoreCallContext = (
  | { operation: 'get' | 'set' | 'delete'; id: string }
  | { operation: 'listByUser'; userId: string }
) & {
  /** The StoreError, on failure. */
  error?: StoreError;
};

/** The TracingChannel every call of both stores is published on. */
export declare const STORE_CALL_CHANNEL: 'redis-store:call';

/** Where `[STORE]` lines go: console and pino fit. */
export interface StoreLogger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** PEM text or Buffers. */
export interface StoreTlsOptions {
  /** An extra trusted CA, added to what Node trusts (its roots, NODE_EXTRA_CA_CERTS) and the system roots. */
  ca?: string | Buffer;
  /** Client certificate; needs `key`. */
  cert?: string | Buffer;
  /** Client private key; needs `cert`. */
  key?: string | Buffer;
}

export interface RetryOptions {
  /** Default 100. */
  baseDelayMs?: number;
  /** Default 5000. */
  maxDelayMs?: number;
}

/** Options that make sense without Redis. */
export interface InMemoryStoreOptions {
  /** TTL of a conversation, reset on every set. Default 86400. */
  ttlSeconds?: number;
  /** Most conversations `listByUser` returns. Default 50. */
  listLimit?: number;
  /** A larger serialized conversation is rejected. Default 4194304. */
  maxRecordBytes?: number;
  /** Default: stderr. */
  logger?: StoreLogger;
}

/** What a credentials provider resolves to. */
export interface StoreCredentials {
  /** The ACL user (Entra ID: the identity's object id). Default: the URL's user, else `default`. */
  username?: string;
  /** The password or access token. */
  password: string;
  /** Epoch milliseconds; without it the credentials are never refreshed. */
  expiresAt?: number;
  /** Epoch milliseconds: when to fetch new ones (Azure's `refreshAfterTimestamp`). Default: well before `expiresAt`. */
  refreshAt?: number;
}

/** A source of credentials that expire, such as Microsoft Entra ID (see `entraIdCredentials`). */
export type CredentialsProvider = () => Promise<StoreCredentials>;

/**
 * What `entraIdCredentials` needs of an `@azure/identity` TokenCredential, declared here so that
 * these types need neither `@azure/identity` nor the DOM library. Any TokenCredential fits.
 */
export interface TokenCredentialLike {
  getToken(
    scopes: string | string[],
    options?: object,
  ): Promise<{ token: string; expiresOnTimestamp: number; refreshAfterTimestamp?: number } | null>;
}

/** Former name of `TokenCredentialLike`. */
export type EntraIdTokenCredential = TokenCredentialLike;

export interface EntraIdCredentialsOptions {
  /** The identity's object id, the Redis user name. Default: the token's `oid` claim. */
  objectId?: string;
  /** Default 'https://redis.azure.com/.default'. */
  scopes?: string | string[];
}

/**
 * Credentials from Microsoft Entra ID, from any `@azure/identity` TokenCredential
 * (`DefaultAzureCredential`, `ManagedIdentityCredential`, …): the `credentials` option.
 */
export declare function entraIdCredentials(
  tokenCredential: EntraIdTokenCredential,
  options?: EntraIdCredentialsOptions,
): CredentialsProvider;

export interface RedisStoreOptions extends InMemoryStoreOptions {
  /** Deadline of one store call, all its round trips included. Default 5000. */
  commandTimeoutMs?: number;
  /** Deadline of one connection attempt. Default 10000. */
  connectTimeoutMs?: number;
  /** Prepended to every key. Default ''. */
  keyPrefix?: string;
  /** Extra trusted CA and client certificate. Default: what Node trusts (its roots, NODE_EXTRA_CA_CERTS) and the system roots. */
  tls?: StoreTlsOptions;
  /** Reconnect backoff: exponential from base, capped, with jitter; retries forever. */
  retry?: RetryOptions;
  /** An idle connection is PINGed this often (cluster: the primary of every slot, busy or not). Default 1000. */
  healthCheckIntervalMs?: number;
  /**
   * Redis Cluster mode: the URL names one seed node, and database 0 only. When the URL names a
   * host, nodes that announce IP addresses are verified against that host name. Default false.
   */
  cluster?: boolean;
  /**
   * Where the user name and password come from, for tokens that expire (Microsoft Entra ID):
   * fetched before connecting and again before they expire; live connections re-authenticate.
   * Not with a password in the URL.
   */
  credentials?: CredentialsProvider;
}

export interface CreateConversationStoreOptions extends RedisStoreOptions {
  /** `rediss://…`: a Redis store; empty or absent: the in-memory store. */
  redisUrl?: string;
}

/** Conversations in Redis over TLS (`rediss://`; default port 10000 for Azure Managed Redis, `*.redis.azure.net`, else 6380). */
export declare class RedisConversationStore {
  /** Validates synchronously (throws STORE_INVALID_CONFIG), then connects in the background. */
  constructor(url: string, options?: RedisStoreOptions);
  /** Resolves when connected; rejects with STORE_UNAVAILABLE after `connectTimeoutMs`. */
  ready(): Promise<void>;
}
export interface RedisConversationStore extends ConversationStore {}

/** The same semantics in memory, for development and tests. */
export declare class InMemoryConversationStore {
  constructor(options?: InMemoryStoreOptions);
  ready(): Promise<void>;
}
export interface InMemoryConversationStore extends ConversationStore {}

/** A RedisConversationStore when `redisUrl` is a non-empty string, else in memory. */
export declare function createConversationStore(options?: CreateConversationStoreOptions): ConversationStore;
