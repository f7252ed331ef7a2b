'use strict';
// The package as npm publishes it: a root package without binaries, plus one package per
// platform holding one .node file, declared by the root as optionalDependencies when
// `napi pre-publish` runs. Installed offline into an empty project, only the package of
// this machine lands, and the store works there against a TLS redis-server.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startRedis, stopAll, withLogOnFailure } = require('../support/redis');
const { makeConversation, persisted } = require('../support/conversations');

const ROOT = path.resolve(__dirname, '..');
const pkg = require('../package.json');
const COMMAND_TIMEOUT_MS = 120_000;
const PLATFORMS = fs.readdirSync(path.join(ROOT, 'npm')).sort();

/** This machine's platform package, named as `napi create-npm-dirs` names them. */
function hostPlatform() {
  const base = `${process.platform}-${process.arch}`;
  if (process.platform === 'win32') return `${base}-msvc`;
  if (process.platform !== 'linux') return base;
  return `${base}-${process.report.getReport().header.glibcVersionRuntime ? 'gnu' : 'musl'}`;
}
const HOST = hostPlatform();
const HOST_ADDON = `${pkg.napi.binaryName}.${HOST}.node`;

let workDir;
let root; // { file, files }: the root tarball and what it holds
const platformTarballs = new Map(); // platform → { file, files }

before(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'redis-store-pack-'));
});
after(async () => {
  await stopAll();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

/** A command with captured output; fails the test with that output on a non-zero exit. */
function run(command, args, cwd) {
  const result = spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    timeout: COMMAND_TIMEOUT_MS,
    shell: process.platform === 'win32',
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });
  assert.equal(result.error, undefined, `${command} ${args.join(' ')}: ${result.error}`);
  assert.equal(
    result.status,
    0,
    `${command} ${args.join(' ')} exited ${result.status}:\n${result.stdout}${result.stderr}`,
  );
  return result.stdout;
}

function pack(dir, destination) {
  const [packed] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', destination], dir));
  return { file: path.join(destination, packed.filename), files: packed.files.map((f) => f.path).sort() };
}

/**
 * What the release workflow publishes, made here: a copy of the package with its npm/ dirs,
 * this machine's addon in its platform package and a stand-in file in every other one (they
 * must not be installed, so their content never runs), then the real `napi pre-publish`,
 * which writes the root's optionalDependencies.
 */
function stageRelease() {
  assert.ok(fs.existsSync(path.join(ROOT, HOST_ADDON)), `${HOST_ADDON} is not built: run \`npm run build\` first`);
  assert.ok(PLATFORMS.includes(HOST), `no npm/${HOST} package: this platform is not in napi.targets`);
  const stage = path.join(workDir, 'stage');
  fs.mkdirSync(stage);
  // The files npm would pack from the checkout, `files` globs and all.
  const [listed] = JSON.parse(run('npm', ['pack', '--dry-run', '--json'], ROOT));
  for (const { path: file } of listed.files) fs.cpSync(path.join(ROOT, file), path.join(stage, file));
  fs.cpSync(path.join(ROOT, 'npm'), path.join(stage, 'npm'), { recursive: true, filter: (f) => !f.endsWith('.node') });
  for (const platform of PLATFORMS) {
    const addon = path.join(stage, 'npm', platform, `${pkg.napi.binaryName}.${platform}.node`);
    if (platform === HOST) fs.copyFileSync(path.join(ROOT, HOST_ADDON), addon);
    else fs.writeFileSync(addon, `stand-in for the ${platform} binary, which is built by the release workflow\n`);
  }
  // pre-publish reads the release commit from git, as it does in the workflow.
  run('git', ['init', '-q'], stage);
  run('git', ['add', '-A'], stage);
  run(
    'git',
    ['-c', 'user.name=release', '-c', 'user.email=release@localhost', 'commit', '-q', '-m', pkg.version],
    stage,
  );
  run(
    path.join(ROOT, 'node_modules', '.bin', 'napi'),
    ['pre-publish', '--skip-optional-publish', '--tag-style', 'npm'],
    stage,
  );
  return stage;
}

test('napi pre-publish declares every platform package as an optional dependency at the root version', () => {
  const stage = stageRelease();
  const released = JSON.parse(fs.readFileSync(path.join(stage, 'package.json'), 'utf8'));
  assert.deepEqual(
    released.optionalDependencies,
    Object.fromEntries(PLATFORMS.map((platform) => [`${pkg.name}-${platform}`, pkg.version])),
  );
  // The checkout's own package.json declares none: unpublished optional dependencies fall out
  // of package-lock.json, and `npm ci` then refuses the lockfile.
  assert.equal(pkg.optionalDependencies, undefined);

  const packDir = path.join(workDir, 'pack');
  fs.mkdirSync(packDir);
  root = pack(stage, packDir);
  for (const platform of PLATFORMS) platformTarballs.set(platform, pack(path.join(stage, 'npm', platform), packDir));
});

test('the root tarball holds the JS entry and no binary; each platform tarball holds its one binary', () => {
  assert.ok(root, 'the release was not staged');
  for (const required of ['package.json', ...pkg.files]) {
    assert.ok(root.files.includes(required), `${required} missing from the tarball: ${root.files.join(', ')}`);
  }
  assert.deepEqual(
    root.files.filter((f) => f.endsWith('.node')),
    [],
    'binaries travel in the platform packages',
  );
  const stray = root.files.filter((f) => /^(src|target|__test__|examples|bench|npm)\//.test(f));
  assert.deepEqual(stray, [], 'sources, build output, tests and platform dirs stay out of the tarball');
  for (const [platform, tarball] of platformTarballs) {
    assert.deepEqual(
      tarball.files,
      ['README.md', 'package.json', `${pkg.napi.binaryName}.${platform}.node`].sort(),
      platform,
    );
  }
});

test('installed offline into an empty project, only the matching binary lands, and set/get work over TLS', async () => {
  assert.ok(root, 'the release was not staged');
  const consumerDir = path.join(workDir, 'consumer');
  fs.mkdirSync(consumerDir);
  // The platform packages come from the tarballs instead of the registry, as npm would fetch them;
  // so do the package's dependencies, packed from this checkout's node_modules (`npm ci` caches
  // their tarballs but not the registry's metadata that an offline install of a range needs).
  const overrides = Object.fromEntries(
    [...platformTarballs].map(([platform, t]) => [`${pkg.name}-${platform}`, `file:${t.file}`]),
  );
  for (const dependency of Object.keys(pkg.dependencies ?? {})) {
    const packed = run(
      'npm',
      ['pack', '--pack-destination', workDir, path.join(ROOT, 'node_modules', dependency)],
      workDir,
    );
    overrides[dependency] = `file:${path.join(workDir, packed.trim().split('\n').pop())}`;
  }
  fs.writeFileSync(
    path.join(consumerDir, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, overrides }),
  );
  run('npm', ['install', '--offline', '--no-audit', '--no-fund', root.file], consumerDir);

  const modules = path.join(fs.realpathSync(consumerDir), 'node_modules');
  const installedAddons = fs
    .readdirSync(modules, { recursive: true })
    .filter((f) => f.endsWith('.node'))
    .sort();
  assert.deepEqual(installedAddons, [path.join(...`${pkg.name}-${HOST}`.split('/'), HOST_ADDON)]);

  const server = await startRedis();
  const conversation = makeConversation({ seed: 'pack-install' });
  const script = `
    const { RedisConversationStore } = require(${JSON.stringify(pkg.name)});
    (async () => {
      const store = new RedisConversationStore(process.env.REDIS_URL, {
        tls: { ca: process.env.REDIS_CA }, logger: { info() {}, warn() {}, error() {} },
      });
      await store.ready();
      const conversation = JSON.parse(process.env.CONVERSATION);
      await store.set(conversation.externalId, conversation);
      const read = await store.get(conversation.externalId);
      await store.close();
      console.log(JSON.stringify({ entry: require.resolve(${JSON.stringify(pkg.name)}), read }));
    })().catch((error) => { console.error(error); process.exit(1); });
  `;
  await withLogOnFailure(server, async () => {
    const env = {
      ...process.env,
      REDIS_URL: server.url,
      REDIS_CA: server.caPem,
      CONVERSATION: JSON.stringify(conversation),
    };
    delete env.NODE_PATH;
    const child = spawnSync(process.execPath, ['-e', script], {
      cwd: consumerDir,
      env,
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(child.status, 0, `consumer failed:\n${child.stdout}${child.stderr}`);
    const { entry, read } = JSON.parse(child.stdout);
    assert.equal(
      entry,
      path.join(modules, ...pkg.name.split('/'), 'index.js'),
      'the installed copy ran, not the checkout',
    );
    assert.deepEqual(read, persisted(conversation));
  });
});
