'use strict';
// The command line of the bench scripts, read by Node's `util.parseArgs`: each script declares
// its options, and an unknown flag, a flag without its value or a stray word is refused.
// Values come as strings; `numberArg`, `listArg` and the others turn them into numbers and
// lists, and refuse what is out of range rather than run with NaN, 0 or a fraction of a count.
// A refusal prints its reason (and, for a malformed command line, the usage) to stderr and
// exits with status 2, before the script has started anything; 1 stays a bench's failure.

const fs = require('node:fs');
const { parseArgs } = require('node:util');

/**
 * @typedef {Record<string, string | boolean | undefined>} Values
 * @typedef {{ above?: number, min?: number, max?: number, whole?: boolean }} Range
 *   a lower bound `min` (inclusive) or `above` (exclusive; 0 when neither is given), an upper
 *   bound `max` (inclusive), and `whole` for a whole number
 */

/**
 * Prints why the command line is refused and exits 2.
 * @param {string} message
 * @returns {never}
 */
function refuse(message) {
  console.error(message);
  process.exit(2);
}

/**
 * The usage text a script keeps in its header comment: the comment lines after `'use strict'`,
 * without their `// `.
 * @param {string} file the script's `__filename`
 * @returns {string}
 */
function headerUsage(file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n').slice(1);
  const end = lines.findIndex((line) => !line.startsWith('//'));
  return lines
    .slice(0, end)
    .map((line) => line.replace(/^\/\/ ?/, ''))
    .join('\n');
}

/**
 * The options given on the command line, after `util.parseArgs` with `options` (`type`
 * 'string' or 'boolean'; a string option's default a string). `-h`/`--help` prints `usage`
 * and exits 0.
 * @param {import('node:util').ParseArgsConfig['options']} options
 * @param {string} usage
 * @returns {Values}
 */
function readArgs(options, usage) {
  /** @type {Values} */
  let values;
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    refuse(`${/** @type {Error} */ (error).message}\n${usage}`);
  }
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  return values;
}

/**
 * `text` as a number within `range`, or the reason it is not.
 * @param {string} text
 * @param {Range} range
 * @returns {number | string}
 */
function parseNumber(text, { above, min, max = Number.POSITIVE_INFINITY, whole = false }) {
  const value = text.trim() === '' ? Number.NaN : Number(text);
  const low = min === undefined ? value > (above ?? 0) : value >= min;
  if (Number.isFinite(value) && low && value <= max && (!whole || Number.isInteger(value))) return value;
  const lower = min === undefined ? `above ${above ?? 0}` : `from ${min}`;
  const upper = max < Number.POSITIVE_INFINITY ? `${min === undefined ? ' and at most' : ' to'} ${max}` : '';
  return `expected a ${whole ? 'whole ' : ''}number ${lower}${upper}, got '${text}'`;
}

/**
 * `values[name]` as a number within `range` (by default above 0); the option must have a
 * default or be given.
 * @param {Values} values
 * @param {string} name
 * @param {Range} [range]
 * @returns {number}
 */
function numberArg(values, name, range = {}) {
  const value = optionalNumberArg(values, name, range);
  return value === undefined ? refuse(`--${name}: expected a value`) : value;
}

/**
 * As `numberArg`, for an option without a default: undefined when it is not given.
 * @param {Values} values
 * @param {string} name
 * @param {Range} [range]
 * @returns {number | undefined}
 */
function optionalNumberArg(values, name, range = {}) {
  const text = values[name];
  if (text === undefined) return undefined;
  const value = parseNumber(String(text), range);
  return typeof value === 'number' ? value : refuse(`--${name}: ${value}`);
}

/**
 * `values[name]` split at commas, each item trimmed: at least one item, no item twice, and
 * each one of `allowed` when it is given.
 * @param {Values} values
 * @param {string} name
 * @param {readonly string[]} [allowed]
 * @returns {string[]}
 */
function listArg(values, name, allowed) {
  const text = values[name];
  const list = typeof text === 'string' ? text.split(',').map((item) => item.trim()) : [];
  const known = allowed ? ` (known: ${allowed.join(', ')})` : '';
  if (list.length === 0 || list.includes(''))
    refuse(`--${name}: expected items separated by commas, got '${text}'${known}`);
  const unknown = allowed ? list.filter((item) => !allowed.includes(item)) : [];
  if (unknown.length) refuse(`--${name}: unknown ${unknown.join(', ')}${known}`);
  const twice = list.filter((item, i) => list.indexOf(item) !== i);
  if (twice.length) refuse(`--${name}: ${twice.join(', ')} given twice`);
  return list;
}

/**
 * `listArg`'s items, each a number within `range` (by default above 0).
 * @param {Values} values
 * @param {string} name
 * @param {Range} [range]
 * @returns {number[]}
 */
function numberListArg(values, name, range = {}) {
  return listArg(values, name).map((item) => numberArg({ [name]: item }, name, range));
}

/**
 * `values[name]`, which must be one of `allowed`.
 * @param {Values} values
 * @param {string} name
 * @param {readonly string[]} allowed
 * @returns {string}
 */
function choiceArg(values, name, allowed) {
  const text = values[name];
  if (typeof text === 'string' && allowed.includes(text)) return text;
  return refuse(`--${name}: expected one of ${allowed.join(', ')}, got '${text ?? ''}'`);
}

module.exports = { refuse, readArgs, headerUsage, numberArg, optionalNumberArg, numberListArg, listArg, choiceArg };
