'use strict';
// What one set costs redis-server, in instructions (callgrind, so the machine's load does not
// move the figure): the set as the store sends it (src/store/scripts/set.lua), alone and as
// the sets of one turn, the same without MULTI/EXEC, earlier set scripts, empty scripts, and the
// MULTI/EXEC of ioredis + Zod, with the bench's documents, on a scratch plain-TCP
// redis-server under valgrind, every key already written. Also the halves of a set one slot
// per command (a cluster, Azure Managed Redis): the record's `SET … GET`, the record_set.lua
// it replaced (still used before Redis 6.2), and index_add.lua.
//
//   node bench/script-cost.js [--sets 1000] [--only PREFIX]
//
// Needs valgrind (callgrind_control). Each variant gets its own server: counters are zeroed
// after loading and warming up, and dumped after --sets calls.

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const Redis = require('ioredis');
const { makeWorkload } = require('./workload');
const { freePort } = require('../support/redis');
const { readArgs, numberArg } = require('./args');

const script = (name) => fs.readFileSync(path.join(__dirname, `../src/store/scripts/${name}`), 'utf8');
const SET_LUA = script('set.lua');
// One slot per command the store sends each script whole (EVAL), its comment lines emptied
// and without the file's last newline, byte for byte (`OneSlotScript` in src/store/redis.rs).
const withoutComments = (lua) =>
  lua
    .replace(/\n$/, '')
    .split('\n')
    .map((line) => (line.trimStart().startsWith('--') ? '' : line))
    .join('\n');
const RECORD_SET_LUA = withoutComments(script('record_set.lua'));
const INDEX_ADD_LUA = withoutComments(script('index_add.lua'));
// The set script before the document went to a pending key (commit 4b8a472 changed it): the
// document was its argument, so Lua hashed all of it. Read from git's history (without it, as
// in a shallow clone, its variants are left out).
// The pending-key script before its index check became the ZCARD the trim needs (be7079e:
// TYPE on both keys, ZCARD after the ZADD), too.
function fromHistory(revision, name = 'set.lua') {
  try {
    return execFileSync('git', ['show', `${revision}:src/store/scripts/${name}`], {
      cwd: __dirname,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return undefined;
  }
}
const FORMER_SET_LUA = fromHistory('4b8a472~1');
const PREVIOUS_SET_LUA = fromHistory('be7079e');
// set.lua before one call of it wrote all the sets of a turn (a29cd95: one set a call).
const ONE_SET_LUA = fromHistory('a29cd95');
// The one-slot scripts as sent before the record became SET … GET and their comment lines
// were emptied (fac5452 sent record_set.lua and index_add.lua whole, comments and all).
const PREVIOUS_RECORD_SET_LUA = fromHistory('fac5452~1', 'record_set.lua');
const PREVIOUS_INDEX_ADD_LUA = fromHistory('fac5452', 'index_add.lua');

const TTL = 86_400;
const INDEX_TTL = TTL + 3600;
// A fixed nonce: today's set.lua starts its trim sample at the same rank each time (its last 8
// hex digits), as the previous one did.
const pendingOf = (d) => `{${d.key}}#pending:0123456789abcdef0123456789abcdef`;
// The former script's arguments (listLimit 50, trim batch 4), and today's set.lua's (the previous
// one took the same).
const formerArgs = (d, i, json) => [2, d.key, d.index, json, TTL, 1e12 + i, d.id, INDEX_TTL, 50, 4, i];
const setArgs = (d, i) => [3, pendingOf(d), d.key, d.index, 1e12 + i, d.id, INDEX_TTL, 50];
const multiExec = (c, d, i) =>
  c
    .multi()
    .set(d.key, d.json, 'EX', TTL)
    .zadd(d.index, 1e12 + i, d.id)
    .expire(d.index, INDEX_TTL)
    .exec();

// Sets of one turn, as the store sends them on a standalone server (lib/batcher.js gathers up
// to 16): one MULTI, a SET of each pending key, one EVALSHA of set.lua for all, EXEC. `i` names
// the call; its sets take the documents after `d` in turn. Counted per set, not per call.
const TURN = 16;
const turnOfSets = (c, s, d, i) => {
  const transaction = c.multi();
  const docs = Array.from({ length: TURN }, (_, k) => DOCS[(DOCS.indexOf(d) + k) % DOCS.length]);
  for (const doc of docs) transaction.set(pendingOf(doc), doc.json, 'EX', TTL);
  const keys = docs.flatMap((doc) => [pendingOf(doc), doc.key, doc.index]);
  const args = docs.flatMap((doc, k) => [1e12 + i * TURN + k, doc.id]);
  return transaction.evalsha(s.set, keys.length, ...keys, ...args, INDEX_TTL, 50).exec();
};
const SETS_PER_CALL = {
  [`${TURN} sets of one turn: MULTI, ${TURN} SETs of pending keys, one EVALSHA set.lua, EXEC`]: TURN,
};
let DOCS = [];

const VARIANTS = {
  'MULTI, SET pending key, EVALSHA set.lua, EXEC (as the store sends it)': (c, s, d, i) =>
    c
      .multi()
      .set(pendingOf(d), d.json, 'EX', TTL)
      .evalsha(s.set, ...setArgs(d, i))
      .exec(),
  [`${TURN} sets of one turn: MULTI, ${TURN} SETs of pending keys, one EVALSHA set.lua, EXEC`]: turnOfSets,
  'MULTI, SET pending key, EVALSHA of the one-set set.lua (a29cd95), EXEC': (c, s, d, i) =>
    c
      .multi()
      .set(pendingOf(d), d.json, 'EX', TTL)
      .evalsha(s.oneSet, ...setArgs(d, i))
      .exec(),
  'SET pending key, EVALSHA set.lua, pipelined without MULTI': (c, s, d, i) =>
    c
      .pipeline()
      .set(pendingOf(d), d.json, 'EX', TTL)
      .evalsha(s.set, ...setArgs(d, i))
      .exec(),
  'MULTI, SET pending key, EVALSHA of the previous set.lua, EXEC': (c, s, d, i) =>
    c
      .multi()
      .set(pendingOf(d), d.json, 'EX', TTL)
      .evalsha(s.previous, ...setArgs(d, i))
      .exec(),
  'EVALSHA of the former set script, the document an argument': (c, s, d, i) =>
    c.evalsha(s.former, ...formerArgs(d, i, d.json)),
  'EVALSHA return 0, the former arguments': (c, s, d, i) => c.evalsha(s.empty, ...formerArgs(d, i, d.json)),
  'EVALSHA return 0, the former arguments, document empty': (c, s, d, i) => c.evalsha(s.empty, ...formerArgs(d, i, '')),
  'MULTI, SET, ZADD, EXPIRE, EXEC (ioredis + Zod)': (c, _s, d, i) => multiExec(c, d, i),
  'one slot per command, the record: SET … EX … GET (Redis 6.2 on)': (c, _s, d) =>
    c.set(d.key, d.json, 'EX', TTL, 'GET'),
  'one slot per command, the record: EVAL record_set.lua (before 6.2)': (c, _s, d) =>
    c.eval(RECORD_SET_LUA, 1, d.key, d.json, TTL),
  'one slot per command, the record: EVAL of the previous record_set.lua, whole': (c, _s, d) =>
    c.eval(PREVIOUS_RECORD_SET_LUA, 1, d.key, d.json, TTL),
  'one slot per command, the index: EVAL index_add.lua': (c, _s, d, i) =>
    c.eval(INDEX_ADD_LUA, 1, d.index, 1e12 + i, d.id, INDEX_TTL, 50, 4, i),
  'one slot per command, the index: EVAL of the previous index_add.lua, whole': (c, _s, d, i) =>
    c.eval(PREVIOUS_INDEX_ADD_LUA, 1, d.index, 1e12 + i, d.id, INDEX_TTL, 50, 4, i),
  'one slot per command, the index: EVAL of the previous index_add.lua, comments emptied': (c, _s, d, i) =>
    c.eval(withoutComments(PREVIOUS_INDEX_ADD_LUA), 1, d.index, 1e12 + i, d.id, INDEX_TTL, 50, 4, i),
  PING: (c) => c.ping(),
};

/** Waits until the (slowly starting, under valgrind) server listens, then connects once. */
async function connect(port) {
  for (let attempt = 0; ; attempt++) {
    const socket = net.connect(port, '127.0.0.1');
    const listening = await new Promise((resolve) => {
      socket.once('connect', () => resolve(true));
      socket.once('error', () => resolve(false));
    });
    socket.destroy();
    if (listening) break;
    if (attempt > 300) throw new Error(`redis-server on port ${port} did not start`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, commandTimeout: 120_000 });
  await client.connect();
  return client;
}

async function measure(name, run, docs, sets, dir) {
  const port = await freePort();
  const out = path.join(dir, `callgrind.${port}`);
  const server = spawn(
    'valgrind',
    ['--tool=callgrind', `--callgrind-out-file=${out}`, 'redis-server', '--port', String(port)].concat([
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--hz',
      '1',
    ]),
    { stdio: 'ignore' },
  );
  const exited = new Promise((resolve) => server.on('exit', resolve));
  const client = await connect(port);
  try {
    const shas = {
      set: await client.script('LOAD', SET_LUA),
      former: FORMER_SET_LUA && (await client.script('LOAD', FORMER_SET_LUA)),
      previous: PREVIOUS_SET_LUA && (await client.script('LOAD', PREVIOUS_SET_LUA)),
      oneSet: ONE_SET_LUA && (await client.script('LOAD', ONE_SET_LUA)),
      empty: await client.script('LOAD', 'return 0'),
    };
    const drive = async (count, offset) => {
      let next = 0;
      const worker = async () => {
        while (next < count) {
          const i = next++;
          const result = await run(client, shas, docs[i % docs.length], offset + i);
          // A transaction or pipeline resolves with [error, reply] pairs: a failed call
          // (NOSCRIPT, wrong arguments) must not pass for a cheap one.
          const failed = Array.isArray(result) && result.find((pair) => Array.isArray(pair) && pair[0]);
          if (failed) throw new Error(`${name}: ${failed[0].message}`);
        }
      };
      await Promise.all(Array.from({ length: 8 }, worker));
    };
    for (let i = 0; i < docs.length; i++) await multiExec(client, docs[i], i);
    await drive(200, docs.length);
    execFileSync('callgrind_control', ['-z', String(server.pid)], { stdio: 'ignore' });
    await drive(sets, 100_000);
    execFileSync('callgrind_control', ['-d', String(server.pid)], { stdio: 'ignore' });
  } finally {
    client.disconnect();
    server.kill('SIGINT');
    await exited;
  }
  const dumps = fs.readdirSync(dir).filter((f) => f.startsWith(`callgrind.${port}.`));
  const text = dumps.map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('\n');
  const total = Number((text.match(/^(?:summary|totals): (\d+)/m) || [])[1]);
  const per = SETS_PER_CALL[name] ? 'set' : 'call';
  const count = sets * (SETS_PER_CALL[name] ?? 1);
  console.log(`${name.padEnd(58)} ${(total / count / 1000).toFixed(1).padStart(7)} k instructions per ${per}`);
}

async function main() {
  const args = readArgs(
    { sets: { type: 'string', default: '1000' }, only: { type: 'string', default: '' } },
    'usage: node bench/script-cost.js [--sets 1000] [--only PREFIX]',
  );
  const sets = numberArg(args, 'sets', { whole: true });
  const only = /** @type {string} */ (args.only);
  const data = makeWorkload();
  const docs = data.conversations.map((x) => ({
    id: x.id,
    key: `conversation:${x.id}`,
    index: `user:${x.userId}:conversations`,
    json: JSON.stringify(x.conversation),
  }));
  DOCS = docs;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'redis-store-script-cost-'));
  console.log(`redis-server under callgrind; ${sets} calls per variant; ~${data.averageBytes} B documents`);
  try {
    for (const [name, run] of Object.entries(VARIANTS)) {
      if (!name.startsWith(only)) continue;
      const missing =
        (name.includes('former set script') && !FORMER_SET_LUA) ||
        (name.includes('previous set.lua') && !PREVIOUS_SET_LUA) ||
        (name.includes('one-set set.lua') && !ONE_SET_LUA) ||
        (name.includes('previous record_set.lua') && !PREVIOUS_RECORD_SET_LUA) ||
        (name.includes('previous index_add.lua') && !PREVIOUS_INDEX_ADD_LUA);
      if (missing) {
        console.log(`${name}: skipped (git history unavailable)`);
        continue;
      }
      await measure(name, run, docs, sets, dir);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
