'use strict';
// The one command-line reader of the small bench scripts: `--name value`.

/**
 * The value after `--name` on the command line, or `fallback` when there is none.
 * @param {string} name
 * @param {string} fallback
 * @returns {string}
 */
function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

/**
 * `option` as a number; a value that is not one is refused rather than run as NaN.
 * @param {string} name
 * @param {number} fallback
 */
function numberOption(name, fallback) {
  const text = option(name, '');
  if (text === '') return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name}: expected a positive number, got ${text}`);
  return value;
}

module.exports = { option, numberOption };
