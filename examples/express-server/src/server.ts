// Start-up as the real server does it: the store from the environment (REDIS_URL set → Redis,
// else in memory), the app on PORT, and a shutdown that closes the store on SIGTERM/SIGINT.
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createConversationStore } from '@copilot-chat/redis-store';
import type { ConversationStore, CreateConversationStoreOptions } from '@copilot-chat/redis-store';
import { createApp } from './app.js';

const SHUTDOWN_DEADLINE_MS = 10_000;

/** An integer from the environment, or undefined when unset; a bad value stops start-up. */
function integerFromEnv(name: string, { min }: { min: number }): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${name}: expected an integer >= ${min}, got '${raw}'`);
  }
  return value;
}

function storeOptionsFromEnv(): CreateConversationStoreOptions {
  const options: CreateConversationStoreOptions = {};
  const redisUrl = process.env.REDIS_URL;
  if (redisUrl) options.redisUrl = redisUrl;
  const caFile = process.env.REDIS_CA_FILE;
  if (caFile) options.tls = { ca: readFileSync(caFile, 'utf8') };
  const ttlSeconds = integerFromEnv('REDIS_TTL_SECONDS', { min: 1 });
  if (ttlSeconds !== undefined) options.ttlSeconds = ttlSeconds;
  const commandTimeoutMs = integerFromEnv('REDIS_COMMAND_TIMEOUT_MS', { min: 1 });
  if (commandTimeoutMs !== undefined) options.commandTimeoutMs = commandTimeoutMs;
  return options;
}

function main(): void {
  const port = integerFromEnv('PORT', { min: 0 }) ?? 3000;
  const options = storeOptionsFromEnv();
  const store: ConversationStore = createConversationStore(options);
  const app = createApp(store, { redisConfigured: options.redisUrl !== undefined });

  const server = app.listen(port, () => {
    const { port: bound } = server.address() as AddressInfo;
    const base = `http://localhost:${bound}`;
    console.log(`Listening on ${base}`);
    console.log(`Try: curl -s ${base}/health`);
    console.log(
      `     curl -s -X POST ${base}/api/conversations -H 'content-type: application/json' -d ` +
        `'{"externalId":"3f2b8c1e-7a4d-4e5f-9b6a-1c2d3e4f5a6b","userId":"user-1","tenantId":"tenant-1",` +
        `"history":[],"status":"active","createdAt":"2026-02-22T10:00:00.000Z","updatedAt":"2026-02-22T10:00:00.000Z"}'`,
    );
  });
  server.on('error', (error) => {
    console.error(`Cannot listen on port ${port}: ${error.message}`);
    void store.close().finally(() => process.exit(1));
  });

  let shuttingDown = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    // npm forwards the terminal's Ctrl-C as a second SIGINT: one shutdown is enough.
    if (shuttingDown) return;
    shuttingDown = true;
    console.log(`${signal}: closing the HTTP server and the store`);
    setTimeout(() => {
      console.error(`Shutdown took longer than ${SHUTDOWN_DEADLINE_MS} ms; exiting anyway`);
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    server.close(async () => {
      try {
        await store.close();
        process.exit(0);
      } catch (error) {
        console.error('Closing the store failed:', error);
        process.exit(1);
      }
    });
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

try {
  main();
} catch (error) {
  // STORE_INVALID_CONFIG (a bad REDIS_URL, say) or a bad environment variable: fail start-up.
  console.error(`Cannot start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
