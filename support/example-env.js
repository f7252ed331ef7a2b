'use strict';
// The environment the example server's tests run it in: the caller's own, without any REDIS_*
// of the caller's, plus what a test sets.

/** `process.env` without REDIS_*, plus `env`. */
function exampleEnvironment(env = {}) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REDIS_')));
  return { ...clean, ...env };
}

module.exports = { exampleEnvironment };
