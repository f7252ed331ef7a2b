'use strict';
// The package's types under `tsc --strict`, as a consumer and as the example server see them.

const { test, before } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const { ROOT, EXAMPLE_DIR, ensureExampleDeps } = require('../examples/setup.js');

const TSC = require.resolve('typescript/bin/tsc', { paths: [ROOT] });

function tsc(...args) {
  const result = spawnSync(process.execPath, [TSC, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(result.error, undefined);
  return result;
}

before(() => ensureExampleDeps()); // express' types live in the example's node_modules

test('a strict consumer compiles, and every wrong shape it marks with @ts-expect-error is an error', () => {
  const result = tsc('-p', path.join(ROOT, '__test__', 'types'));
  assert.equal(result.status, 0, `tsc -p __test__/types failed:\n${result.stdout}${result.stderr}`);
});

test('the hand-written entry (index.js, // @ts-check) type-checks against the generated binding.d.ts', () => {
  const result = tsc('-p', ROOT);
  assert.equal(result.status, 0, `tsc -p . failed:\n${result.stdout}${result.stderr}`);
});

test('the example server compiles under strict TypeScript against the package by its name', () => {
  const result = tsc('-p', EXAMPLE_DIR, '--noEmit');
  assert.equal(result.status, 0, `tsc -p examples/express-server failed:\n${result.stdout}${result.stderr}`);
});
