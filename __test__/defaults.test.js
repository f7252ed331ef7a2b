'use strict';
// One home per default: the constants in src/store/options.rs. The README's option table,
// index.d.ts and the generated binding.d.ts must state the same values.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const read = (file) => fs.readFileSync(path.join(ROOT, file), 'utf8');

/** DEFAULT_* constants of the core, by option name: `DEFAULT_TTL_SECONDS` → `ttlSeconds`. */
function codeDefaults() {
  const defaults = {};
  for (const [, name, value] of read('src/store/options.rs').matchAll(/pub const DEFAULT_(\w+): [\w&']+ = ([^;]+);/g)) {
    const option = name.toLowerCase().replace(/_(\w)/g, (_, c) => c.toUpperCase());
    const text = value.trim().replaceAll('_', '');
    defaults[option] = /^[\d\s*]+$/.test(text)
      ? text.split('*').reduce((product, n) => product * Number(n), 1)
      : JSON.parse(text.replace(/^""$/, '""'));
  }
  return defaults;
}

/** `Default N.` in the doc comment right above each property of a .d.ts file. */
function declaredDefaults(file) {
  const defaults = {};
  for (const [, comment, property] of read(file).matchAll(/\/\*\*((?:(?!\*\/)[\s\S])*?)\*\/\s*\n\s*(\w+)\??:/g)) {
    const match = /Default (-?\d+|true|false|''|\{[^}]*\})/.exec(comment.replace(/\s*\*\s*/g, ' '));
    if (match) defaults[property] = match[1];
  }
  return defaults;
}

function tableDefaults(file) {
  const defaults = {};
  for (const [, option, value] of read(file).matchAll(/^\| `(\w+)` \| ([^|]+) \|/gm)) defaults[option] = value.trim();
  return defaults;
}

const code = codeDefaults();
const asText = (value) => (value === '' ? "''" : String(value));
const retry = `{ baseDelayMs: ${code.retryBaseDelayMs}, maxDelayMs: ${code.retryMaxDelayMs} }`;
const scalar = Object.entries(code).filter(([name]) => !name.startsWith('retry'));

test('the code has a default for every documented scalar option', () => {
  assert.deepEqual(scalar.map(([name]) => name).sort(), [
    'cluster',
    'commandTimeoutMs',
    'connectTimeoutMs',
    'healthCheckIntervalMs',
    'keyPrefix',
    'listLimit',
    'maxRecordBytes',
    'ttlSeconds',
  ]);
});

for (const file of ['index.d.ts', 'binding.d.ts']) {
  test(`${file} states the code's defaults`, () => {
    const declared = declaredDefaults(file);
    for (const [name, value] of scalar) assert.equal(declared[name], asText(value), `${file}: ${name}`);
    assert.equal(declared.baseDelayMs, String(code.retryBaseDelayMs), `${file}: retry.baseDelayMs`);
    assert.equal(declared.maxDelayMs, String(code.retryMaxDelayMs), `${file}: retry.maxDelayMs`);
  });
}

for (const file of ['README.md', 'docs/DESIGN.md'])
  test(`${file}'s option table states the code's defaults`, () => {
    const table = tableDefaults(file);
    for (const [name, value] of scalar) {
      const expected = name === 'keyPrefix' ? "`''`" : asText(value);
      assert.equal(table[name], expected, `${file}: ${name}`);
    }
    assert.equal(table.retry, `\`${retry}\``);
  });

/** The names of the tokio worker threads in a fresh Node process that loaded the package. */
function tokioWorkers(env) {
  const probe = `
    require(${JSON.stringify(ROOT)});
    const fs = require('node:fs');
    const names = fs.readdirSync('/proc/self/task').map((t) => fs.readFileSync(\`/proc/self/task/\${t}/comm\`, 'utf8').trim());
    console.log(names.filter((name) => name.startsWith('tokio-')).length);
  `;
  const childEnv = { ...process.env, ...env };
  for (const [name, value] of Object.entries(childEnv)) if (value === undefined) delete childEnv[name];
  return Number(
    require('node:child_process').execFileSync(process.execPath, ['-e', probe], { env: childEnv, encoding: 'utf8' }),
  );
}

test('the process runs one tokio worker thread, or as many as TOKIO_WORKER_THREADS says', {
  skip: process.platform !== 'linux' && '/proc',
}, () => {
  assert.equal(tokioWorkers({ TOKIO_WORKER_THREADS: undefined }), 1);
  assert.equal(tokioWorkers({ TOKIO_WORKER_THREADS: '3' }), 3);
});
