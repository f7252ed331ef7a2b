// The conversations API of the Copilot chat server, reduced to what touches the store.
// Every route but /health answers only an authenticated caller (auth.ts), and only about the
// caller's own conversations. Validation is the store's: the app passes the body through and maps
// the store's error codes to HTTP, so development (in memory) and production (Redis) answer alike.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { ConversationStore, StoredConversation, StoreErrorCode } from '@copilot-chat/redis-store';
import express, { type ErrorRequestHandler, type Express, type Response } from 'express';
import { type AuthOptions, authenticate, callerOf } from './auth.js';
import type { StoreMetrics } from './metrics.js';

/** Where the app logs what it does not tell the client (console, pino). */
export interface AppLogger {
  warn(message: string): void;
  error(message: string): void;
}

export interface AppOptions {
  /** false for the in-memory store: /health then reports `redis: 'not-configured'`. */
  redisConfigured: boolean;
  /** How bearer tokens are verified. */
  auth: AuthOptions;
  /** Default: console. */
  logger?: AppLogger;
  /** Served on GET /metrics (Prometheus text); absent: no /metrics route. */
  metrics?: StoreMetrics;
  /**
   * The bearer token GET /metrics requires (`Authorization: Bearer <token>`, Prometheus's
   * `authorization` scrape setting). Absent: /metrics answers anyone who reaches the port.
   */
  metricsToken?: string;
}

export type RedisHealth = 'connected' | 'disconnected' | 'not-configured';

/** GET /health. `since` and `lastError` only while disconnected; never a store message (it names hosts). */
export interface HealthBody {
  status: 'ok';
  redis: RedisHealth;
  /** ISO 8601: since when the store is in its current status. */
  since?: string;
  lastError?: { code: StoreErrorCode; at: string };
}

/** A refusal decided by the app itself, before or instead of a store call. */
class HttpError extends Error {
  constructor(
    readonly status: 400 | 403,
    readonly error: string,
    message: string,
  ) {
    super(message);
  }
}

const UNAVAILABLE_CODES: ReadonlySet<StoreErrorCode> = new Set(['STORE_UNAVAILABLE', 'STORE_CLOSED']);

// What clients are told when the store fails: fixed text. The store's own message (host:port,
// TLS details, the key of a corrupt record) goes to the server log only.
const UNAVAILABLE_MESSAGE = 'the conversation store is unavailable; retry later';
const CORRUPT_MESSAGE = 'a stored conversation could not be read';

/** Duck-typed on the stable `code`, so it holds whichever copy of the package made the error. */
function storeErrorCode(error: unknown): StoreErrorCode | undefined {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('STORE_') ? (code as StoreErrorCode) : undefined;
}

/**
 * body-parser's errors (malformed JSON, too large) carry a 4xx `status` and `expose`; the
 * router's `URIError` for a path parameter it cannot decode carries `status` 400 only.
 */
function clientHttpStatus(error: unknown): number | undefined {
  if (!(error instanceof Error)) return undefined;
  const { status, expose } = error as { status?: unknown; expose?: unknown };
  const shown = expose === true || error instanceof URIError;
  return typeof status === 'number' && status >= 400 && status < 500 && shown ? status : undefined;
}

function errorDetail(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

function withoutLiveRef(conversation: StoredConversation): StoredConversation {
  const { sdkConversationRef: _live, ...stored } = conversation;
  return stored;
}

/** Someone else's conversation answers exactly as a missing one: no existence leak. */
function notFound(res: Response, id: string): void {
  res.status(404).json({ error: 'not_found', message: `no conversation ${id}` });
}

/** Whether an Authorization header carries `token`, compared in constant time. */
function bearerCheck(token: string): (header: string | undefined) => boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  const expected = digest(token);
  return (header) => {
    const match = /^Bearer (.+)$/i.exec(header ?? '');
    return match?.[1] !== undefined && timingSafeEqual(digest(match[1]), expected);
  };
}

export function createApp(
  store: ConversationStore,
  { redisConfigured, auth, logger = console, metrics, metricsToken }: AppOptions,
): Express {
  const app = express();
  app.disable('x-powered-by');

  app.get('/health', (_req, res) => {
    const redis: RedisHealth = !redisConfigured
      ? 'not-configured'
      : store.status === 'ready'
        ? 'connected'
        : 'disconnected';
    const body: HealthBody = { status: 'ok', redis };
    if (redis === 'disconnected') {
      const { statusSince, lastError } = store.stats();
      body.since = new Date(statusSince).toISOString();
      if (lastError !== undefined) body.lastError = { code: lastError.code, at: new Date(lastError.at).toISOString() };
    }
    res.json(body);
  });

  if (metrics !== undefined) {
    const { registry } = metrics;
    // Not a user's JWT: the scraper's own token, when one is set. Without one, /metrics is
    // open to whoever reaches the port (call counts, error codes, status: no conversation).
    const allowed = metricsToken === undefined ? () => true : bearerCheck(metricsToken);
    app.get('/metrics', async (req, res) => {
      if (!allowed(req.get('authorization'))) {
        res.status(401).set('WWW-Authenticate', 'Bearer').json({ error: 'unauthorized' });
        return;
      }
      res.set('Content-Type', registry.contentType).send(await registry.metrics());
    });
  }

  // Everything below needs a verified caller; the body is parsed only for one.
  app.use(authenticate(auth));
  app.use(express.json({ limit: '5mb' }));

  app.post('/api/conversations', async (req, res) => {
    const caller = callerOf(res);
    const body: unknown = req.body;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new HttpError(400, 'invalid_request', 'expected a JSON object (Content-Type: application/json)');
    }
    // The store validates every field, externalId and userId included, before it writes anything;
    // the app only refuses a well-formed userId that is not the caller's.
    const conversation = body as StoredConversation;
    if (typeof conversation.userId === 'string' && conversation.userId !== caller) {
      throw new HttpError(403, 'forbidden', 'userId: must be the authenticated user');
    }
    // Read first: never replace a conversation that another user keeps under this id.
    const existing = await store.get(conversation.externalId);
    if (existing !== undefined && existing.userId !== caller) {
      throw new HttpError(403, 'forbidden', 'externalId: in use by another user');
    }
    await store.set(conversation.externalId, conversation);
    res
      .status(201)
      .location(`/api/conversations/${encodeURIComponent(conversation.externalId)}`)
      .json(withoutLiveRef(conversation));
  });

  app.get('/api/conversations/:id', async (req, res) => {
    const conversation = await store.get(req.params.id);
    if (conversation === undefined || conversation.userId !== callerOf(res)) {
      notFound(res, req.params.id);
      return;
    }
    res.json(conversation);
  });

  app.get('/api/conversations', async (req, res) => {
    const caller = callerOf(res);
    // The list is always the caller's; a userId in the query is allowed only if it says so too.
    const { userId } = req.query;
    if (userId !== undefined && userId !== caller) {
      throw new HttpError(403, 'forbidden', 'userId: must be the authenticated user');
    }
    res.json(await store.listByUser(caller));
  });

  app.delete('/api/conversations/:id', async (req, res) => {
    const conversation = await store.get(req.params.id);
    if (conversation === undefined || conversation.userId !== callerOf(res)) {
      notFound(res, req.params.id);
      return;
    }
    await store.delete(req.params.id);
    res.status(204).end();
  });

  app.use((_req, res) => {
    res.status(404).json({ error: 'not_found', message: 'no such route' });
  });

  const handleError: ErrorRequestHandler = (error: unknown, req, res, next) => {
    if (res.headersSent) {
      next(error); // Express ends the half-sent response
      return;
    }
    if (error instanceof HttpError) {
      res.status(error.status).json({ error: error.error, message: error.message });
      return;
    }
    const code = storeErrorCode(error);
    const where = `${req.method} ${req.path}`;
    if (code !== undefined && UNAVAILABLE_CODES.has(code)) {
      logger.warn(`[APP] 503 ${where}: ${code}: ${(error as Error).message}`);
      res.status(503).set('Retry-After', '1').json({ error: code, message: UNAVAILABLE_MESSAGE });
      return;
    }
    if (code === 'STORE_INVALID_ARGUMENT') {
      // The store's validation message names the field of the client's own input.
      res.status(400).json({ error: code, message: (error as Error).message });
      return;
    }
    const status = clientHttpStatus(error);
    if (status !== undefined) {
      res.status(status).json({ error: 'invalid_request', message: (error as Error).message });
      return;
    }
    if (code === 'STORE_CORRUPT_RECORD') {
      logger.error(`[APP] 500 ${where}: ${code}: ${errorDetail(error)}`);
      res.status(500).json({ error: code, message: CORRUPT_MESSAGE });
      return;
    }
    logger.error(`[APP] 500 ${where}: internal error: ${errorDetail(error)}`);
    res.status(500).json({ error: 'internal' });
  };
  app.use(handleError);

  return app;
}
