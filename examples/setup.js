'use strict';
// Brings the example to a runnable state on a fresh clone: the addon built, the example's
// dependencies installed, its TypeScript compiled. Shared by `npm run demo`, `npm run
// typecheck` and the tests. `node examples/setup.js deps` installs the dependencies only.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const EXAMPLE_DIR = path.join(__dirname, 'express-server');
const INSTALL_LOCK = path.join(EXAMPLE_DIR, '.install.lock');
const LOCK_WAIT_MS = 180_000;
const LOCK_POLL_MS = 200;

function log(line) {
  process.stderr.write(`[setup] ${line}\n`);
}

/** Runs a command to completion with inherited output; throws on failure. */
function run(file, args, { cwd = ROOT, stdio = 'inherit' } = {}) {
  const result = spawnSync(file, args, { cwd, stdio, shell: process.platform === 'win32' && file === 'npm' });
  if (result.error) throw result.error;
  if (result.status !== 0) {
    throw new Error(`${path.basename(file)} ${args.join(' ')} exited ${result.status ?? result.signal}`);
  }
  return result;
}

/** npm itself: the running one under `npm run`, else the one on PATH. */
function npm(args, options) {
  const npmCli = process.env.npm_execpath;
  if (npmCli && /npm-cli\.js$/.test(npmCli)) return run(process.execPath, [npmCli, ...args], options);
  return run('npm', args, options);
}

/** True when binding.js finds a compiled addon for this platform (checked in a child, cheaply). */
function addonLoads() {
  const probe = spawnSync(process.execPath, ['-e', "require('./binding.js')"], { cwd: ROOT, stdio: 'ignore' });
  return probe.status === 0;
}

function ensureAddon() {
  if (addonLoads()) return;
  log('the native addon is not built yet: npm run build (needs a Rust toolchain)');
  npm(['run', 'build']);
  if (!addonLoads()) throw new Error('npm run build finished but binding.js still cannot load the addon');
}

function exampleDepsInstalled() {
  const required = [
    'express',
    'jose',
    'prom-client',
    '@opentelemetry/api',
    '@opentelemetry/sdk-trace-base',
    'parse-prometheus-text-format',
    '@types/express',
    'typescript',
    '@copilot-chat/redis-store',
  ];
  return required.every((name) => fs.existsSync(path.join(EXAMPLE_DIR, 'node_modules', name, 'package.json')));
}

function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/** Parallel test files may all find node_modules missing: one installs, the others wait. */
function withInstallLock(fn) {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      fs.writeFileSync(INSTALL_LOCK, String(process.pid), { flag: 'wx' });
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      const holder = Number(fs.readFileSync(INSTALL_LOCK, 'utf8'));
      if (holder && !processAlive(holder)) {
        fs.rmSync(INSTALL_LOCK, { force: true }); // left by a process that died mid-install
        continue;
      }
      if (Date.now() > deadline) throw new Error(`${INSTALL_LOCK} held by pid ${holder} for too long`);
      sleepSync(LOCK_POLL_MS);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(INSTALL_LOCK, { force: true });
  }
}

function ensureExampleDeps() {
  if (exampleDepsInstalled()) return;
  withInstallLock(() => {
    if (exampleDepsInstalled()) return; // another process installed them while we waited
    log('installing the example dependencies: npm ci --prefix examples/express-server');
    npm(['ci', '--prefix', EXAMPLE_DIR, '--no-audit', '--no-fund']);
  });
}

/** tsc of the example's own devDependencies; `extraArgs` e.g. ['--noEmit']. */
function compileExample(extraArgs = [], { stdio = 'inherit' } = {}) {
  const tsc = require.resolve('typescript/bin/tsc', { paths: [EXAMPLE_DIR] });
  return run(process.execPath, [tsc, '-p', EXAMPLE_DIR, ...extraArgs], { stdio });
}

module.exports = { ROOT, EXAMPLE_DIR, ensureAddon, ensureExampleDeps, compileExample };

if (require.main === module) {
  const step = process.argv[2];
  if (step !== 'deps') {
    process.stderr.write('usage: node examples/setup.js deps\n');
    process.exit(2);
  }
  ensureExampleDeps();
}
