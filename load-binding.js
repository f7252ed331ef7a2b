// @ts-check
'use strict';
// Loads the generated `binding.js`. When no compiled addon matches this machine, the
// generated loader's error says little; this one names the platform, the package that
// should have brought the binary, and the commands that fix it.

/** @type {{ name: string, napi?: { targets?: string[] } }} */
const { name, napi } = require('./package.json');

/** napi-rs's name for this machine: `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`. */
function platformKey() {
  const base = `${process.platform}-${process.arch}`;
  if (process.platform === 'win32') return `${base}-msvc`;
  if (process.platform !== 'linux') return base;
  return `${base}-${linuxLibc()}`;
}

/** glibc reports its version in Node's diagnostic report; musl does not. */
function linuxLibc() {
  const report = /** @type {{ header?: { glibcVersionRuntime?: string } } | undefined} */ (
    process.report?.getReport?.()
  );
  const header = report?.header;
  return header?.glibcVersionRuntime ? 'gnu' : 'musl';
}

/**
 * Messages in the generated loader's cause chain other than "not found": a binary that failed to load.
 * @param {any} cause
 * @returns {string[]}
 */
function loadFailures(cause) {
  const messages = [];
  for (let error = cause; error; error = error.cause) {
    const message = String(error.message);
    if (!/^(Cannot find (module|native binding)|Unsupported |Failed to load native binding)/.test(message))
      messages.push(message.split('\n')[0]);
  }
  return messages;
}

/** @param {unknown} cause */
function missingBinaryError(cause) {
  const key = platformKey();
  const failures = loadFailures(cause);
  if (failures.length > 0) {
    const error = new Error(`${name}: the native binary for ${key} was found but did not load: ${failures.join('; ')}`);
    error.cause = cause;
    return error;
  }
  const libc = process.platform === 'linux' ? ` with ${key.endsWith('-musl') ? 'musl' : 'glibc'}` : '';
  const prebuilt = (napi?.targets ?? []).map(napiPlatformKey);
  const where = prebuilt.includes(key)
    ? `Its prebuilt binary comes in the optional package ${name}-${key}, which is not installed ` +
      `(optional dependencies were skipped, or the lockfile was made on another platform). ` +
      `Fix: \`npm install --include=optional\` in your project (when the lockfile came from another ` +
      `platform, delete node_modules and package-lock.json first: npm bug 4828), or build from source ` +
      `with Rust installed: \`npm run build\` in a checkout of ${name}.`
    : `No prebuilt binary is published for ${key} (there is no package ${name}-${key}; ` +
      `prebuilt: ${prebuilt.join(', ')}). Build from source with Rust installed: \`npm run build\` ` +
      `in a checkout of ${name}.`;
  const error = new Error(
    `${name}: no native binary for ${process.platform} ${process.arch}${libc} (${key}). ${where}`,
  );
  error.cause = cause;
  return error;
}

/** @type {Record<string, string>} */
const ARCHES = { x86_64: 'x64', aarch64: 'arm64', i686: 'ia32' };
/** @type {Record<string, string>} */
const PLATFORMS = { darwin: 'darwin', windows: 'win32', linux: 'linux' };

/**
 * `aarch64-unknown-linux-gnu` → `linux-arm64-gnu`, as `napi create-npm-dirs` names the packages.
 * @param {string} triple
 */
function napiPlatformKey(triple) {
  const [cpu, , os, abi] = triple.split('-');
  const arch = ARCHES[cpu] ?? cpu;
  const platform = PLATFORMS[os] ?? os;
  return [platform, arch, abi].filter(Boolean).join('-');
}

/** @type {typeof import('./binding')} */
let binding;
try {
  binding = require('./binding.js');
} catch (error) {
  throw missingBinaryError(error);
}

module.exports = binding;
