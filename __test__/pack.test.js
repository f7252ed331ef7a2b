'use strict';
// `npm pack` yields a tarball that installs into an empty project and works there: the
// compiled addon travels inside it (the package has no install step and no dependencies).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const NPM_TIMEOUT_MS = 60_000;

let workDir;
before(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'redis-store-pack-'));
});
after(() => {
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

/** npm with captured output; fails the test with that output on a non-zero exit. */
function npm(args, cwd) {
  const result = spawnSync('npm', args, {
    cwd,
    encoding: 'utf8',
    timeout: NPM_TIMEOUT_MS,
    shell: process.platform === 'win32',
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });
  assert.equal(result.error, undefined, `npm ${args.join(' ')}: ${result.error}`);
  assert.equal(result.status, 0, `npm ${args.join(' ')} exited ${result.status}:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

test('the packed tarball installs offline into an empty project and stores a conversation', () => {
  const addons = fs.readdirSync(ROOT).filter((name) => name.endsWith('.node'));
  assert.notEqual(addons.length, 0, 'no compiled addon at the package root: run `npm run build` first');

  const packDir = path.join(workDir, 'pack');
  fs.mkdirSync(packDir);
  const [packed] = JSON.parse(npm(['pack', '--json', '--pack-destination', packDir], ROOT));
  const files = packed.files.map((f) => f.path).sort();
  for (const required of ['package.json', 'index.js', 'index.d.ts', 'binding.js', 'binding.d.ts', ...addons]) {
    assert.ok(files.includes(required), `${required} missing from the tarball: ${files.join(', ')}`);
  }
  const stray = files.filter((f) => /^(src|target|__test__|examples|bench)\//.test(f));
  assert.deepEqual(stray, [], 'sources, build output and tests stay out of the tarball');

  const consumerDir = path.join(workDir, 'consumer');
  fs.mkdirSync(consumerDir);
  fs.writeFileSync(path.join(consumerDir, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  npm(['install', '--offline', '--no-audit', '--no-fund', path.join(packDir, packed.filename)], consumerDir);

  const script = `
    const { InMemoryConversationStore } = require('@copilot-chat/redis-store');
    (async () => {
      const store = new InMemoryConversationStore({ logger: { info() {}, warn() {}, error() {} } });
      const id = '3f2b8c1e-7a4d-4e5f-9b6a-1c2d3e4f5a6b';
      await store.set(id, {
        externalId: id, userId: 'user-1', tenantId: 'tenant-1', history: [], status: 'active',
        createdAt: '2026-02-22T10:00:00.000Z', updatedAt: '2026-02-22T10:00:00.000Z',
      });
      const read = await store.get(id);
      await store.close();
      if (read?.userId !== 'user-1') throw new Error('read back ' + JSON.stringify(read));
      console.log('OK ' + require.resolve('@copilot-chat/redis-store'));
    })().catch((error) => { console.error(error); process.exit(1); });
  `;
  const run = spawnSync(process.execPath, ['-e', script], { cwd: consumerDir, encoding: 'utf8', timeout: 10_000 });
  assert.equal(run.status, 0, `consumer failed:\n${run.stdout}${run.stderr}`);
  const installedEntry = path.join(fs.realpathSync(consumerDir), 'node_modules', '@copilot-chat', 'redis-store', 'index.js');
  assert.equal(run.stdout.trim(), `OK ${installedEntry}`, 'the installed copy ran, not the checkout');
});
