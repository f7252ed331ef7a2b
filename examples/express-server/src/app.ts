// The conversations API of the Copilot chat server, reduced to what touches the store.
// Validation is the store's: the app passes the body through and maps the store's error
// codes to HTTP, so development (in memory) and production (Redis) answer alike.
import express, { type ErrorRequestHandler, type Express } from 'express';
import type { ConversationStore, StoredConversation, StoreErrorCode } from '@copilot-chat/redis-store';

export interface AppOptions {
  /** false for the in-memory store: /health then reports `redis: 'not-configured'`. */
  redisConfigured: boolean;
}

export type RedisHealth = 'connected' | 'disconnected' | 'not-configured';

/** A client error raised by the app itself, before the store is asked. */
class BadRequest extends Error {}

const UNAVAILABLE_CODES: ReadonlySet<StoreErrorCode> = new Set(['STORE_UNAVAILABLE', 'STORE_CLOSED']);

/** Duck-typed on the stable `code`, so it holds whichever copy of the package made the error. */
function storeErrorCode(error: unknown): StoreErrorCode | undefined {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('STORE_') ? (code as StoreErrorCode) : undefined;
}

/** body-parser's errors (malformed JSON, too large) carry a 4xx `status` and `expose`. */
function clientHttpStatus(error: unknown): number | undefined {
  if (!(error instanceof Error)) return undefined;
  const { status, expose } = error as { status?: unknown; expose?: unknown };
  return typeof status === 'number' && status >= 400 && status < 500 && expose === true ? status : undefined;
}

function withoutLiveRef(conversation: StoredConversation): StoredConversation {
  const { sdkConversationRef: _live, ...stored } = conversation;
  return stored;
}

export function createApp(store: ConversationStore, { redisConfigured }: AppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '5mb' }));

  app.get('/health', (_req, res) => {
    const redis: RedisHealth = !redisConfigured
      ? 'not-configured'
      : store.status === 'ready'
        ? 'connected'
        : 'disconnected';
    res.json({ status: 'ok', redis });
  });

  app.post('/api/conversations', async (req, res) => {
    const body: unknown = req.body;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new BadRequest('expected a JSON object (Content-Type: application/json)');
    }
    // The store validates every field, externalId included, before it writes anything.
    const conversation = body as StoredConversation;
    await store.set(conversation.externalId, conversation);
    res
      .status(201)
      .location(`/api/conversations/${encodeURIComponent(conversation.externalId)}`)
      .json(withoutLiveRef(conversation));
  });

  app.get('/api/conversations/:id', async (req, res) => {
    const conversation = await store.get(req.params.id);
    if (conversation === undefined) {
      res.status(404).json({ error: 'not_found', message: `no conversation ${req.params.id}` });
      return;
    }
    res.json(conversation);
  });

  app.get('/api/conversations', async (req, res) => {
    const { userId } = req.query;
    if (typeof userId !== 'string') throw new BadRequest('userId: expected one userId query parameter');
    res.json(await store.listByUser(userId));
  });

  app.delete('/api/conversations/:id', async (req, res) => {
    await store.delete(req.params.id);
    res.status(204).end();
  });

  app.use((_req, res) => {
    res.status(404).json({ error: 'not_found', message: 'no such route' });
  });

  const handleError: ErrorRequestHandler = (error: unknown, _req, res, next) => {
    if (res.headersSent) {
      next(error); // Express ends the half-sent response
      return;
    }
    const code = storeErrorCode(error);
    if (code !== undefined && UNAVAILABLE_CODES.has(code)) {
      res.status(503).set('Retry-After', '1').json({ error: code, message: (error as Error).message });
      return;
    }
    if (code === 'STORE_INVALID_ARGUMENT') {
      res.status(400).json({ error: code, message: (error as Error).message });
      return;
    }
    if (error instanceof BadRequest) {
      res.status(400).json({ error: 'invalid_request', message: error.message });
      return;
    }
    const status = clientHttpStatus(error);
    if (status !== undefined) {
      res.status(status).json({ error: 'invalid_request', message: (error as Error).message });
      return;
    }
    // STORE_CORRUPT_RECORD and anything unexpected: logged here, never sent to the client.
    console.error('[APP] internal error:', error);
    res.status(500).json({ error: 'internal' });
  };
  app.use(handleError);

  return app;
}
