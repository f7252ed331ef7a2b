'use strict';
// `npm run demo`: builds what is not built yet, then runs the example server in this process,
// so SIGTERM/SIGINT reach its graceful shutdown directly. In memory by default; Redis when
// REDIS_URL is set (REDIS_CA_FILE, REDIS_CLUSTER, REDIS_TTL_SECONDS, REDIS_COMMAND_TIMEOUT_MS, PORT
// also apply).
// Bearer tokens are verified with AUTH_JWT_SECRET; when it is not set, and only here, the server
// makes a DEVELOPMENT-ONLY random secret for this process and prints a token for a demo user.

const path = require('node:path');
const { EXAMPLE_DIR, ensureAddon, ensureExampleDeps, compileExample } = require('./setup.js');

try {
  ensureAddon();
  ensureExampleDeps();
  compileExample();
} catch (error) {
  process.stderr.write(`[demo] cannot prepare the example: ${error.message}\n`);
  process.exit(1);
}

require(path.join(EXAMPLE_DIR, 'dist', 'server.js')).run({ allowDevelopmentIdentity: true });

// `npm run` starts this under `sh -c`, and a SIGTERM sent to npm kills that shell without
// reaching us: once our parent is gone, shut down as the signal would have.
const parentPid = process.ppid;
setInterval(() => {
  if (process.ppid !== parentPid) process.kill(process.pid, 'SIGTERM');
}, 500).unref();
