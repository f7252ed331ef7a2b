'use strict';
// What one set costs redis-server, in instructions (callgrind, so the machine's load does not
// move the figure): the set script as in src/store/scripts/set.lua, variants of it, and the
// MULTI/EXEC of ioredis + Zod, with the bench's documents, on a scratch plain-TCP
// redis-server under valgrind, every key already written.
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

const SET_LUA = fs.readFileSync(path.join(__dirname, '../src/store/scripts/set.lua'), 'utf8');
const SET_LINE = /redis\.call\('SET', KEYS\[1\], ARGV\[1\], 'EX', ARGV\[2\]\)\n/;
const WITHOUT_SET = SET_LUA.replace(SET_LINE, '');
// The document written to a pending key beforehand, and renamed onto the record here.
const RENAME_LUA = `local record_type = redis.call('TYPE', KEYS[2])['ok']
if record_type ~= 'none' and record_type ~= 'string' then
  redis.call('DEL', KEYS[1])
  return redis.error_reply('WRONGTYPE record')
end
local index_type = redis.call('TYPE', KEYS[3])['ok']
if index_type ~= 'none' and index_type ~= 'zset' then
  redis.call('DEL', KEYS[1])
  return redis.error_reply('WRONGTYPE index')
end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[3])
redis.call('ZCARD', KEYS[3])
return 0`;

const TTL = 86_400;
const INDEX_TTL = TTL + 3600;
// set.lua's arguments, as the store sends them (listLimit 50, trim batch 4).
const args = (d, i, json) => [2, d.key, d.index, json, TTL, 1e12 + i, d.id, INDEX_TTL, 'conversation:', 50, 4, i];
const multiExec = (c, d, i) =>
  c
    .multi()
    .set(d.key, d.json, 'EX', TTL)
    .zadd(d.index, 1e12 + i, d.id)
    .expire(d.index, INDEX_TTL)
    .exec();

const VARIANTS = {
  'EVALSHA set.lua': (c, s, d, i) => c.evalsha(s.set, ...args(d, i, d.json)),
  'EVALSHA return 0, same arguments': (c, s, d, i) => c.evalsha(s.empty, ...args(d, i, d.json)),
  'EVALSHA return 0, document argument empty': (c, s, d, i) => c.evalsha(s.empty, ...args(d, i, '')),
  'EVALSHA set.lua without its SET, document argument empty': (c, s, d, i) =>
    c.evalsha(s.withoutSet, ...args(d, i, '')),
  'MULTI, EVALSHA set.lua without its SET, SET, EXEC': (c, s, d, i) =>
    c
      .multi()
      .evalsha(s.withoutSet, ...args(d, i, ''))
      .set(d.key, d.json, 'EX', TTL)
      .exec(),
  'MULTI, SET pending key, EVALSHA rename script, EXEC': (c, s, d, i) =>
    c
      .multi()
      .set(`${d.key}:pending`, d.json, 'EX', TTL)
      .evalsha(s.rename, 3, `${d.key}:pending`, d.key, d.index, 1e12 + i, d.id, INDEX_TTL)
      .exec(),
  'MULTI, SET, ZADD, EXPIRE, EXEC (ioredis + Zod)': (c, _s, d, i) => multiExec(c, d, i),
  PING: (c) => c.ping(),
};

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

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
      empty: await client.script('LOAD', 'return 0'),
      withoutSet: await client.script('LOAD', WITHOUT_SET),
      rename: await client.script('LOAD', RENAME_LUA),
    };
    const drive = async (count, offset) => {
      let next = 0;
      const worker = async () => {
        while (next < count) {
          const i = next++;
          await run(client, shas, docs[i % docs.length], offset + i);
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
  console.log(`${name.padEnd(58)} ${(total / sets / 1000).toFixed(1).padStart(7)} k instructions per call`);
}

async function main() {
  const sets = Number(option('sets', '1000'));
  const only = option('only', '');
  const data = makeWorkload();
  const docs = data.conversations.map((x) => ({
    id: x.id,
    key: `conversation:${x.id}`,
    index: `user:${x.userId}:conversations`,
    json: JSON.stringify(x.conversation),
  }));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'redis-store-script-cost-'));
  console.log(`redis-server under callgrind; ${sets} calls per variant; ~${data.averageBytes} B documents`);
  try {
    for (const [name, run] of Object.entries(VARIANTS)) {
      if (name.startsWith(only)) await measure(name, run, docs, sets, dir);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
