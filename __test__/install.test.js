'use strict';
// What a user sees when the package installed without a binary for their machine: the
// package's own files, copied without any .node file, required by a fresh Node process.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const pkg = require('../package.json');
const PLATFORM_KEY = `${process.platform}-${process.arch}`;

let workDir;
before(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'redis-store-install-'));
});
after(() => {
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

/** A project whose node_modules holds the package's published files and no compiled addon. */
function projectWithoutBinary(name) {
  const project = path.join(workDir, name);
  const installed = path.join(project, 'node_modules', ...pkg.name.split('/'));
  fs.mkdirSync(installed, { recursive: true });
  // The `files` entries that name one file; a glob such as `*.node` would bring the addon.
  for (const file of ['package.json', ...pkg.files.filter((f) => !f.includes('*'))]) {
    fs.mkdirSync(path.dirname(path.join(installed, file)), { recursive: true });
    fs.copyFileSync(path.join(ROOT, file), path.join(installed, file));
  }
  return { project, installed };
}

/** Requires the package in a child process (optionally after `preload`); returns the thrown error. */
function requireError(project, preload = '') {
  const script = `
    ${preload}
    try {
      require(${JSON.stringify(pkg.name)});
      console.log(JSON.stringify({ loaded: true }));
    } catch (error) {
      console.log(JSON.stringify({ message: error.message, cause: error.cause?.message }));
    }
  `;
  // The checkout's own addon must not be found through NODE_PATH or an override.
  const env = { ...process.env };
  delete env.NODE_PATH;
  delete env.NAPI_RS_NATIVE_LIBRARY_PATH;
  const run = spawnSync(process.execPath, ['-e', script], { cwd: project, env, encoding: 'utf8', timeout: 30_000 });
  assert.equal(run.status, 0, `child failed:\n${run.stdout}${run.stderr}`);
  const result = JSON.parse(run.stdout.trim().split('\n').pop());
  assert.equal(result.loaded, undefined, 'the package loaded although no binary was installed');
  return result;
}

function libcName() {
  return process.report.getReport().header.glibcVersionRuntime ? 'glibc' : 'musl';
}

test('with no binary installed, the error names the platform, the missing package and the fixes', (_t) => {
  const { project } = projectWithoutBinary('missing');
  const { message, cause } = requireError(project);
  const key =
    process.platform === 'linux' ? `${PLATFORM_KEY}-${libcName() === 'glibc' ? 'gnu' : 'musl'}` : PLATFORM_KEY;
  if (process.platform === 'linux') {
    assert.match(message, new RegExp(`no native binary for linux ${process.arch} with ${libcName()} \\(${key}\\)`));
  }
  assert.ok(message.includes(`optional package ${pkg.name}-${key}, which is not installed`), message);
  assert.ok(message.includes('`npm install --include=optional`'), message);
  assert.ok(message.includes('`npm run build`'), message);
  assert.ok(message.includes('Rust'), message);
  assert.match(cause, /Cannot find native binding/, "the generated loader's error stays attached as the cause");
});

test('on a platform with no prebuilt package, the error says so and lists the prebuilt ones', () => {
  const { project } = projectWithoutBinary('unsupported');
  // An architecture nothing is built for: the loader and the message both read process.arch.
  const { message } = requireError(project, "Object.defineProperty(process, 'arch', { value: 'riscv64' });");
  assert.ok(message.includes(`no native binary for ${process.platform} riscv64`), message);
  assert.ok(message.includes(`No prebuilt binary is published for ${process.platform}-riscv64`), message);
  assert.ok(message.includes('linux-arm64-gnu, linux-x64-musl'), message);
  assert.ok(message.includes('`npm run build`'), message);
  assert.ok(!message.includes('--include=optional'), 'installing optional dependencies cannot help here');
});

test('a binary that is present but does not load is reported as such, with the reason', {
  skip: process.platform !== 'linux',
}, () => {
  const { project, installed } = projectWithoutBinary('broken');
  const key = `${PLATFORM_KEY}-${libcName() === 'glibc' ? 'gnu' : 'musl'}`;
  fs.writeFileSync(path.join(installed, `${pkg.napi.binaryName}.${key}.node`), 'not an ELF file');
  const { message } = requireError(project);
  assert.ok(message.includes(`the native binary for ${key} was found but did not load`), message);
  assert.match(message, /invalid ELF header|too short/);
  assert.ok(!message.includes('not installed'), message);
});
