'use strict';
// The command line of the bench scripts, read by Node's `util.parseArgs`: each script declares
// its options, and an unknown flag, a flag without its value or a stray word is refused with
// the script's usage. Values come as strings; `numberArg` and `listArg` turn them into numbers
// and lists, and refuse what is out of range rather than run with NaN, 0 or a fraction of a
// count.

const { parseArgs } = require('node:util');

/**
 * The options given on the command line, after `util.parseArgs` with `options` (`type`
 * 'string' or 'boolean', string defaults). `-h`/`--help` prints `usage` and exits; a refused
 * command line throws with `usage` below the reason.
 * @param {import('node:util').ParseArgsConfig['options']} options
 * @param {string} usage
 * @returns {Record<string, string | boolean | undefined>}
 */
function readArgs(options, usage) {
  let values;
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new Error(`${/** @type {Error} */ (error).message}\n${usage}`);
  }
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  return values;
}

/**
 * `values[name]` as a number from `min` (or above it, with `above`) to `max`, a whole one with
 * `whole`; undefined when the option was not given and has no default.
 * @param {Record<string, string | boolean | undefined>} values
 * @param {string} name
 * @param {{ min?: number, above?: boolean, max?: number, whole?: boolean }} [range]
 * @returns {number | undefined}
 */
function numberArg(values, name, { min = 0, above = true, max = Number.POSITIVE_INFINITY, whole = false } = {}) {
  const text = values[name];
  if (text === undefined) return undefined;
  const value = typeof text === 'string' && text.trim() !== '' ? Number(text) : Number.NaN;
  const low = above ? value > min : value >= min;
  if (!(Number.isFinite(value) && low && value <= max && (!whole || Number.isInteger(value)))) {
    const finite = max < Number.POSITIVE_INFINITY;
    const bounds = above
      ? `above ${min}${finite ? ` and at most ${max}` : ''}`
      : `from ${min}${finite ? ` to ${max}` : ''}`;
    throw new Error(`--${name}: expected a ${whole ? 'whole ' : ''}number ${bounds}, got '${text}'`);
  }
  return value;
}

/**
 * `values[name]` split at commas, each item a number as `numberArg` takes it.
 * @param {Record<string, string | boolean | undefined>} values
 * @param {string} name
 * @param {{ min?: number, above?: boolean, max?: number, whole?: boolean }} [range]
 * @returns {number[]}
 */
function numberListArg(values, name, range) {
  return listArg(values, name).map((item) => /** @type {number} */ (numberArg({ [name]: item }, name, range)));
}

/**
 * `values[name]` split at commas, each item trimmed, empty items dropped; each must be one of
 * `allowed` when it is given.
 * @param {Record<string, string | boolean | undefined>} values
 * @param {string} name
 * @param {readonly string[]} [allowed]
 * @returns {string[]}
 */
function listArg(values, name, allowed) {
  const text = values[name];
  const items = typeof text === 'string' ? text.split(',').map((item) => item.trim()) : [];
  const list = items.filter(Boolean);
  const unknown = allowed ? list.filter((item) => !allowed.includes(item)) : [];
  if (unknown.length) throw new Error(`--${name}: unknown ${unknown.join(', ')} (known: ${allowed?.join(', ')})`);
  return list;
}

/**
 * `values[name]`, which must be one of `allowed`.
 * @param {Record<string, string | boolean | undefined>} values
 * @param {string} name
 * @param {readonly string[]} allowed
 * @returns {string}
 */
function choiceArg(values, name, allowed) {
  const text = values[name];
  if (typeof text !== 'string' || !allowed.includes(text)) {
    throw new Error(`--${name}: one of ${allowed.join(', ')}, not ${text}`);
  }
  return text;
}

module.exports = { readArgs, numberArg, numberListArg, listArg, choiceArg };
