'use strict';
// The package's types under `tsc --strict`, as a consumer and as the example server see them.

const { test, before } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
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

test('a consumer with only the ES2022 library and no skipLibCheck compiles: no DOM types pulled in', () => {
  const result = tsc('-p', path.join(ROOT, '__test__', 'types-bare'));
  assert.equal(result.status, 0, `tsc -p __test__/types-bare failed:\n${result.stdout}${result.stderr}`);
});

/**
 * `tsc --strict` of the bare consumer outside the repository, whose node_modules holds
 * @azure/identity: the package's .d.ts files, the consumer, and @types/node by its path only.
 * @param {import('node:test').TestContext} t
 * @param {string[]} types the consumer's `types`
 */
function compileOutside(t, types) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'store-types-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const file of ['index.d.ts', 'binding.d.ts']) fs.copyFileSync(path.join(ROOT, file), path.join(dir, file));
  fs.copyFileSync(path.join(ROOT, '__test__', 'types-bare', 'consumer.ts'), path.join(dir, 'consumer.ts'));
  const config = {
    compilerOptions: {
      target: 'es2022',
      lib: ['es2022'],
      module: 'nodenext',
      moduleResolution: 'nodenext',
      strict: true,
      noEmit: true,
      types,
      typeRoots: [path.join(ROOT, 'node_modules', '@types')],
      paths: { '@copilot-chat/redis-store': ['./index.d.ts'] },
    },
    include: ['consumer.ts'],
  };
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(config));
  return tsc('-p', dir);
}

test('a consumer that lists no ambient types (types: []) compiles: the package names the Node types it uses', (t) => {
  // index.d.ts uses Buffer; a consumer that names no types of its own gets Node's through the
  // package's own reference, from wherever its @types/node is installed.
  const result = compileOutside(t, []);
  assert.equal(result.status, 0, `tsc with types: [] failed:\n${result.stdout}${result.stderr}`);
});

test('a consumer without @azure/identity anywhere in reach compiles', (t) => {
  const result = compileOutside(t, ['node']);
  assert.equal(result.status, 0, `tsc without @azure/identity failed:\n${result.stdout}${result.stderr}`);
});
