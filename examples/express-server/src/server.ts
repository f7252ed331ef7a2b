// Start-up as the real server does it: the store from the environment (REDIS_URL set → Redis,
// else in memory; REDIS_CLUSTER=1 → a Redis Cluster endpoint, such as Azure Managed Redis with
// the OSS clustering policy; REDIS_ENTRA=1 → Microsoft Entra ID instead of a key in the URL), bearer
// tokens verified with AUTH_JWT_SECRET, the app on PORT, and a shutdown
// that closes the store on SIGTERM/SIGINT. `node dist/server.js` refuses to start without
// AUTH_JWT_SECRET; only `npm run demo` (examples/demo.js) may stand in a development identity.
// METRICS_TOKEN, when set, is the bearer token GET /metrics requires.
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { ConversationStore, CreateConversationStoreOptions } from '@copilot-chat/redis-store';
import { createConversationStore, entraIdCredentials } from '@copilot-chat/redis-store';
import { createApp } from './app.js';
import { type AuthOptions, MIN_SECRET_BYTES } from './auth.js';
import { type DevelopmentIdentity, developmentIdentity } from './dev-identity.js';
import { storeMetrics } from './metrics.js';

const SHUTDOWN_DEADLINE_MS = 10_000;

export interface MainOptions {
  /**
   * `npm run demo` only: when AUTH_JWT_SECRET is not set, verify tokens with a random secret made
   * for this process and print a development token, instead of refusing to start.
   */
  allowDevelopmentIdentity?: boolean;
}

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

/** `1`/`true` or `0`/`false` (any case, spaces around) from the environment, or undefined when unset; else start-up stops. */
function booleanFromEnv(name: string): boolean | undefined {
  const raw = process.env[name];
  const value = raw?.trim().toLowerCase();
  if (value === undefined || value === '') return undefined;
  if (value === '1' || value === 'true') return true;
  if (value === '0' || value === 'false') return false;
  throw new Error(`${name}: expected 1 or 0 (true or false), got '${raw}'`);
}

function stringFromEnv(name: string): string | undefined {
  const raw = process.env[name];
  return raw === undefined || raw === '' ? undefined : raw;
}

/** The store's options from REDIS_* (exported for the tests). */
export async function storeOptionsFromEnv(): Promise<CreateConversationStoreOptions> {
  const options: CreateConversationStoreOptions = {};
  const redisUrl = process.env.REDIS_URL;
  if (redisUrl) options.redisUrl = redisUrl;
  const caFile = process.env.REDIS_CA_FILE;
  if (caFile) options.tls = { ca: readFileSync(caFile, 'utf8') };
  const ttlSeconds = integerFromEnv('REDIS_TTL_SECONDS', { min: 1 });
  if (ttlSeconds !== undefined) options.ttlSeconds = ttlSeconds;
  const commandTimeoutMs = integerFromEnv('REDIS_COMMAND_TIMEOUT_MS', { min: 1 });
  if (commandTimeoutMs !== undefined) options.commandTimeoutMs = commandTimeoutMs;
  // Without it a cluster endpoint answers MOVED for most keys: calls fail, and the store's log
  // says to set it.
  const cluster = booleanFromEnv('REDIS_CLUSTER');
  if (cluster && !redisUrl)
    throw new Error('REDIS_CLUSTER: set REDIS_URL too (a cluster is a Redis server, not memory)');
  if (cluster !== undefined) options.cluster = cluster;
  // Microsoft Entra ID instead of an access key: the identity DefaultAzureCredential finds
  // (managed identity, workload identity, Azure CLI login, …); its object id is the user name.
  if (booleanFromEnv('REDIS_ENTRA') || process.env.REDIS_CREDENTIALS === 'entra') {
    if (!redisUrl) throw new Error('REDIS_ENTRA: set REDIS_URL too (Entra ID is for a Redis server, not memory)');
    const objectId = stringFromEnv('REDIS_ENTRA_OBJECT_ID');
    // Loaded only here: a server without Entra ID does not need @azure/identity.
    const { DefaultAzureCredential } = await import('@azure/identity');
    options.credentials = entraIdCredentials(new DefaultAzureCredential(), objectId ? { objectId } : {});
  }
  return options;
}

/** AUTH_JWT_SECRET's bytes (UTF-8) are the HS256 key; the value itself never reaches a message. */
async function authFromEnv(
  allowDevelopmentIdentity: boolean,
): Promise<{ auth: AuthOptions; development?: DevelopmentIdentity }> {
  const issuer = stringFromEnv('AUTH_JWT_ISSUER');
  const audience = stringFromEnv('AUTH_JWT_AUDIENCE');
  const secretText = stringFromEnv('AUTH_JWT_SECRET');
  if (secretText !== undefined) {
    const secret = new TextEncoder().encode(secretText);
    if (secret.byteLength < MIN_SECRET_BYTES) {
      throw new Error(`AUTH_JWT_SECRET: expected at least ${MIN_SECRET_BYTES} bytes, got ${secret.byteLength}`);
    }
    return { auth: { secret, issuer, audience } };
  }
  if (!allowDevelopmentIdentity) {
    throw new Error(
      `AUTH_JWT_SECRET is not set: the HS256 secret of the bearer tokens, at least ${MIN_SECRET_BYTES} bytes ` +
        '(`npm run demo` makes a development one instead)',
    );
  }
  const development = await developmentIdentity({ issuer, audience });
  return { auth: { secret: development.secret, issuer, audience }, development };
}

function printHints(base: string, development: DevelopmentIdentity | undefined): void {
  const body = (userId: string) =>
    `'{"externalId":"3f2b8c1e-7a4d-4e5f-9b6a-1c2d3e4f5a6b","userId":"${userId}","tenantId":"tenant-1",` +
    `"history":[],"status":"active","createdAt":"2026-02-22T10:00:00.000Z","updatedAt":"2026-02-22T10:00:00.000Z"}'`;
  console.log(`Try: curl -s ${base}/health`);
  console.log(`     curl -s ${base}/metrics`);
  if (development === undefined) {
    console.log(`     curl -s ${base}/api/conversations -H "Authorization: Bearer $TOKEN"`);
    console.log(`     (TOKEN: an HS256 JWT signed with AUTH_JWT_SECRET, with exp; its sub is the user id)`);
    return;
  }
  const auth = `-H 'Authorization: Bearer ${development.token}'`;
  console.log('');
  console.log('DEVELOPMENT ONLY: AUTH_JWT_SECRET is not set, so this process verifies tokens with a random');
  console.log('secret it made at start (never printed, gone when it exits). Set AUTH_JWT_SECRET anywhere else.');
  console.log(
    `Development token for user '${development.userId}', valid against this process only, ` +
      `until ${development.expiresAt.toISOString()}:`,
  );
  console.log(`     curl -s ${base}/api/conversations ${auth}`);
  console.log(
    `     curl -s -X POST ${base}/api/conversations ${auth} -H 'content-type: application/json' -d ` +
      body(development.userId),
  );
}

export async function main({ allowDevelopmentIdentity = false }: MainOptions = {}): Promise<void> {
  const port = integerFromEnv('PORT', { min: 0 }) ?? 3000;
  const options = await storeOptionsFromEnv();
  const { auth, development } = await authFromEnv(allowDevelopmentIdentity);
  const store: ConversationStore = createConversationStore(options);
  const metrics = storeMetrics(store);
  const metricsToken = stringFromEnv('METRICS_TOKEN');
  const app = createApp(store, { redisConfigured: options.redisUrl !== undefined, auth, metrics, metricsToken });

  const server = app.listen(port, () => {
    const { port: bound } = server.address() as AddressInfo;
    const base = `http://localhost:${bound}`;
    console.log(`Listening on ${base}`);
    if (metricsToken === undefined) {
      console.log('GET /metrics needs no token (METRICS_TOKEN is not set): keep the port off untrusted networks');
    }
    printHints(base, development);
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

/** main() with start-up failures reported on one line and exit code 1. */
export function run(options?: MainOptions): void {
  main(options).catch((error: unknown) => {
    // STORE_INVALID_CONFIG (a bad REDIS_URL, say) or a bad environment variable: fail start-up.
    console.error(`Cannot start: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}

if (require.main === module) run();
