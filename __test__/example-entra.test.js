'use strict';
// The example server's Entra ID start-up: REDIS_ENTRA=1 needs a Redis server, and
// @azure/identity is loaded only when it is set.

const { test, before } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const { EXAMPLE_DIR, ensureExampleDeps, compileExample } = require('../examples/setup.js');
const { exampleEnvironment } = require('../support/example-env');

const SERVER = path.join(EXAMPLE_DIR, 'dist', 'server.js');
const SECRET = 'a-secret-of-at-least-thirty-two-bytes-for-hs256';

before(() => {
  ensureExampleDeps();
  compileExample([], { stdio: 'pipe' });
});

/** Runs the compiled server with `env` (no REDIS_* of the caller's). */
function start(env, script = SERVER) {
  return spawnSync(process.execPath, ['-e', script], {
    env: exampleEnvironment({ AUTH_JWT_SECRET: SECRET, PORT: '0', ...env }),
    encoding: 'utf8',
    timeout: 30_000,
  });
}

test('REDIS_ENTRA=1 without REDIS_URL refuses to start, naming REDIS_URL, instead of using memory', () => {
  const result = start({ REDIS_ENTRA: '1' }, `require(${JSON.stringify(SERVER)}).main()`);
  // main() rejects; the unhandled rejection ends the process with its message.
  assert.notEqual(result.status, 0, result.stdout);
  assert.match(result.stderr, /REDIS_ENTRA: set REDIS_URL too/);
});

test('REDIS_ENTRA=true (any case) is REDIS_ENTRA=1: without REDIS_URL it refuses to start', () => {
  const result = start({ REDIS_ENTRA: ' True ' }, `require(${JSON.stringify(SERVER)}).main()`);
  assert.notEqual(result.status, 0, result.stdout);
  assert.match(result.stderr, /REDIS_ENTRA: set REDIS_URL too/);
});

test('without REDIS_ENTRA, loading the server does not load @azure/identity', () => {
  const script = `require(${JSON.stringify(SERVER)});
    const loaded = Object.keys(require.cache).filter((f) => f.includes('@azure'));
    process.stdout.write(JSON.stringify(loaded));`;
  const result = start({}, script);
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), []);
});
