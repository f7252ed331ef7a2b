'use strict';
// The bench scripts' command lines (bench/args.js over util.parseArgs): a refused command line
// exits 2 with its reason before the script starts anything, and --help prints the usage.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const BENCH = path.join(__dirname, '..', 'bench');
const SCRIPTS = [
  'ab.js',
  'cluster-cells.js',
  'cluster-soak.js',
  'copy-alignment.js',
  'memory.js',
  'one-slot.js',
  'profile.js',
  'run.js',
  'script-cost.js',
  'soak.js',
  'text-cost.js',
  'trace-overhead.js',
];

/** Runs a bench script with `args`; what it printed and its exit status. */
function run(script, args) {
  const result = spawnSync(process.execPath, [path.join(BENCH, script), ...args], {
    encoding: 'utf8',
    env: { ...process.env, BENCH_BEFORE_MODULE: path.join(__dirname, '..') },
    timeout: 30_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

for (const script of SCRIPTS) {
  test(`${script} refuses an unknown flag with its usage, and prints the usage for --help`, () => {
    const refused = run(script, ['--no-such-flag']);
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, /Unknown option '--no-such-flag'/);
    assert.match(refused.stderr, /usage|node bench|npm run/);
    const help = run(script, ['--help']);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /bench|npm run/);
  });
}

test('run.js refuses an empty or repeated list and an --out that leaves bench/results', () => {
  for (const [args, reason] of [
    [['--ops', ','], /--ops: expected items separated by commas/],
    [['--concurrency', ' '], /--concurrency: expected items separated by commas/],
    [['--peers', 'ours,ours'], /--peers: ours given twice/],
    [['--concurrency', '1,64.5'], /--concurrency: expected a whole number above 0 and at most 1024, got '64.5'/],
    [['--out', '../elsewhere'], /--out: expected a name/],
    [['--out', ''], /--out: expected a name/],
  ]) {
    const refused = run('run.js', [...args, '--no-write', '--no-redis-benchmark']);
    assert.equal(refused.status, 2, `${args.join(' ')}: ${refused.stderr}`);
    assert.match(refused.stderr, reason);
  }
});

test('numbers out of range are refused by name: no NaN, 0 or fraction of a count runs', () => {
  for (const [script, args, reason] of [
    ['ab.js', ['--pairs', '0'], /--pairs: expected a whole number above 0 and at most 100, got '0'/],
    ['ab.js', ['--warmup', ''], /--warmup: expected a number from 0 to 30, got ''/],
    ['memory.js', ['--ops', '500'], /--ops: expected a whole number above 1000, got '500'/],
    ['memory.js', ['--concurrency', '0.5'], /--concurrency: expected a whole number above 0, got '0.5'/],
    ['soak.js', ['--seed=-3'], /--seed: expected a whole number from 0 to 4294967295, got '-3'/],
    ['soak.js', ['--token-lifetime', '0'], /--token-lifetime: expected a number from 1 to 3600, got '0'/],
    ['profile.js', ['--op', 'delete'], /--op: expected one of get, set, listByUser, got 'delete'/],
  ]) {
    const refused = run(script, args);
    assert.equal(refused.status, 2, `${script} ${args.join(' ')}: ${refused.stderr}`);
    assert.match(refused.stderr, reason);
  }
});
