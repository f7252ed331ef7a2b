'use strict';
// The one command-line reader of the small bench scripts: `--name value`.

/**
 * The value after `--name` on the command line, or `fallback` when the flag is not given.
 * @param {string} name
 * @param {string} fallback
 * @returns {string}
 */
function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  if (i + 1 >= process.argv.length) throw new Error(`--${name}: expected a value after it`);
  return process.argv[i + 1];
}

/**
 * `option` as a positive number (a whole one if `whole`); any other value is refused rather
 * than run as NaN, 0 or a fraction of a count.
 * @param {string} name
 * @param {number} fallback
 * @param {{ whole?: boolean }} [kind]
 * @returns {number}
 */
function numberOption(name, fallback, { whole = false } = {}) {
  const text = option(name, String(fallback));
  const value = text.trim() === '' ? Number.NaN : Number(text);
  if (!(value > 0) || !Number.isFinite(value) || (whole && !Number.isInteger(value))) {
    throw new Error(`--${name}: expected a positive ${whole ? 'whole ' : ''}number, got '${text}'`);
  }
  return value;
}

module.exports = { option, numberOption };
