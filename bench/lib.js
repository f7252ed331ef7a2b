'use strict';
// What run.js and memory.js share: the throwaway server, the peers, closed-loop cells with
// per-op checks, latency statistics and a full check of the stored state.

const v8 = require('node:v8');
const vm = require('node:vm');
const Redis = require('ioredis');
const { startRedis, stopAll } = require('../support/redis.js');
const { iso } = require('./workload');
const { conversationKey, userIndexKey, LIST_LIMIT } = require('./peers/common');

v8.setFlagsFromString('--expose-gc');
/** A full GC between cells, so one peer's garbage is not collected on the next one's time. */
const gc = vm.runInNewContext('gc');

const PEERS = ['ioredis-zod', 'ioredis-fast', 'glide', 'glide-zod', 'ours'];

/**
 * CPU ticks (USER_HZ) of the whole machine, of this process and of redis-server, so a cell can
 * say how much CPU other processes took while it ran: the machine has two cores, and anything
 * else running skews the numbers. Linux only; elsewhere the noise is reported as unknown.
 */
function cpuTicks(redisPid) {
  try {
    const fs = require('node:fs');
    const all = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const busy = all.reduce((a, b) => a + b, 0) - all[3] - all[4]; // minus idle and iowait
    const proc = (pid) => {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(f[11]) + Number(f[12]);
    };
    return { busy, self: proc('self'), redis: redisPid ? proc(redisPid) : 0 };
  } catch {
    return undefined;
  }
}

/**
 * CPU time used so far, in µs: this process in total (`process.cpuUsage`, µs), its JavaScript
 * thread and Node's helper threads (V8's GC and compiler workers and libuv's pool, all named
 * `node`) from the per-thread `/proc/self/task/<tid>/stat` ticks, and redis-server (all its
 * threads, from `INFO cpu`). The native threads (tokio's, GLIDE's) are the rest, and so is the
 * CPU of a thread that ended in between (it is gone from /proc). Linux only for the per-thread
 * split; `redis` is undefined without an admin client.
 */
async function cpuSnapshot(admin) {
  const redis = await redisCpu(admin);
  return { ...localCpu(), redis };
}

/** redis-server's CPU so far in µs (user + sys over all its threads), or undefined. */
async function redisCpu(admin) {
  if (!admin) return undefined;
  const info = await admin.info('cpu');
  const field = (name) => Number((info.match(new RegExp(`${name}:([0-9.]+)`)) || [])[1]);
  return Math.round((field('used_cpu_user') + field('used_cpu_sys')) * 1e6);
}

/** A redis-server's CPU so far in µs (user + sys over all its threads), asked by its redis-cli. */
async function serverCpuUs(server) {
  const info = await server.cli('INFO', 'cpu');
  const field = (name) => Number(info.match(new RegExp(`^${name}:([0-9.]+)`, 'm'))[1]);
  return (field('used_cpu_sys') + field('used_cpu_user')) * 1e6;
}

/** The median of `values` (of the middle two when their number is even). */
function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** This process's CPU so far in µs: in total, its JavaScript thread, Node's helper threads. */
function localCpu() {
  const fs = require('node:fs');
  const usage = process.cpuUsage();
  const total = usage.user + usage.system;
  let js;
  let helpers = 0;
  try {
    const TICK_US = 10_000; // USER_HZ = 100
    for (const tid of fs.readdirSync('/proc/self/task')) {
      let stat;
      let comm;
      try {
        stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
        comm = fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      } catch {
        continue; // a thread that ended meanwhile
      }
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const us = (Number(f[11]) + Number(f[12])) * TICK_US;
      if (Number(tid) === process.pid) js = us;
      else if (comm === 'node') helpers += us; // Node's own threads: V8's platform workers, libuv's pool
    }
  } catch {
    js = undefined;
  }
  return { total, js, helpers };
}

/**
 * CPU per operation between two snapshots, in µs: the JavaScript thread, Node's helper threads
 * (`helpersUs`), the native threads (everything else in the process: tokio's, GLIDE's core),
 * redis-server, and their sum.
 */
function cpuPerOp(a, b, ops) {
  if (!a || !b || !(ops > 0)) return undefined;
  const per = (us) => Math.round((us / ops) * 10) / 10;
  const total = b.total - a.total;
  const out = {};
  if (a.js !== undefined && b.js !== undefined) {
    const js = b.js - a.js;
    const helpers = b.helpers - a.helpers;
    out.jsUs = per(js);
    out.helpersUs = per(helpers);
    out.nativeUs = per(Math.max(0, total - js - helpers));
  }
  out.processUs = per(total);
  if (a.redis !== undefined && b.redis !== undefined) out.redisUs = per(b.redis - a.redis);
  out.totalUs = per(total + (out.redisUs !== undefined ? b.redis - a.redis : 0));
  return out;
}

/**
 * Waits (at most `maxMs`) until other processes use less than `maxOtherCores` over `windowMs`.
 * Returns the milliseconds waited, and whether it got quiet.
 */
async function waitForQuiet({ redisPid, maxMs, windowMs = 1000, maxOtherCores = 0.1 }) {
  const started = Date.now();
  for (;;) {
    const a = cpuTicks(redisPid);
    await sleep(windowMs);
    const b = cpuTicks(redisPid);
    const cpu = cpuBetween(a, b, windowMs / 1000);
    const waited = Date.now() - started;
    if (!cpu || cpu.others <= maxOtherCores) return { waitedMs: waited, quiet: true };
    if (waited + windowMs > maxMs) return { waitedMs: waited, quiet: false, others: cpu.others };
  }
}

/** CPU used between two cpuTicks() readings, in cores: this process, redis-server, everything else. */
function cpuBetween(a, b, seconds) {
  if (!a || !b) return undefined;
  const HZ = 100;
  const cores = (ticks) => Math.round((ticks / HZ / seconds) * 100) / 100;
  const self = b.self - a.self;
  const redis = b.redis - a.redis;
  return { node: cores(self), redis: cores(redis), others: cores(Math.max(0, b.busy - a.busy - self - redis)) };
}

/**
 * What Azure Cache for Redis serves on TLS 1.3: the two AES-GCM suites, no ChaCha20. Every
 * peer (rustls in this store and in GLIDE, OpenSSL in Node) then negotiates what it would
 * in production: TLS_AES_256_GCM_SHA384, the first of each client's own list.
 */
const AZURE_TLS = { protocols: 'TLSv1.3', ciphersuites: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384' };

/** A TLS-only redis-server on loopback (the test harness), plus an ioredis admin client for checks. */
async function startServer() {
  const redis = await startRedis({ tls: AZURE_TLS });
  const server = { host: redis.host, port: redis.port, url: redis.url, caPem: redis.caPem, caFile: redis.certs.caFile };
  const admin = new Redis({
    host: server.host,
    port: server.port,
    tls: { ca: server.caPem },
    commandTimeout: 10_000,
    lazyConnect: true,
  });
  await admin.connect();
  return {
    redis,
    server,
    admin,
    stop: async () => {
      admin.disconnect();
      await stopAll();
    },
  };
}

/** A monotonic clock for updatedAt: every set writes a newer timestamp than any before it. */
const SET_CLOCK_BASE = Date.parse('2026-03-01T00:00:00.000Z');
let setClock = 0;
function nextUpdatedAt() {
  const ms = SET_CLOCK_BASE + ++setClock;
  return { ms, text: iso(ms) };
}

/**
 * The operations. Each returns [t0, t1] of the timed part (process.hrtime.bigint()) and throws
 * when its result is wrong. `ctx`: { peer, data, admin, expected, checkEvery }.
 */
const OPS = {
  async set(ctx, k) {
    const item = pick(ctx.data.conversations, k);
    const { ms, text } = nextUpdatedAt();
    item.conversation.updatedAt = text;
    const t0 = process.hrtime.bigint();
    const result = await ctx.peer.set(item.id, item.conversation);
    const t1 = process.hrtime.bigint();
    if (result !== undefined) throw new Error(`set ${item.id}: resolved ${typeof result}, expected undefined`);
    ctx.expected.set(item.id, ms); // every set is checked against Redis after the cell
    return [t0, t1];
  },

  async get(ctx, k) {
    const item = pick(ctx.data.conversations, k);
    const t0 = process.hrtime.bigint();
    const got = await ctx.peer.get(item.id);
    const t1 = process.hrtime.bigint();
    if (
      !got ||
      got.externalId !== item.id ||
      got.userId !== item.userId ||
      !Array.isArray(got.history) ||
      got.history.length !== 20
    ) {
      throw new Error(
        `get ${item.id}: wrong result (${got ? `externalId ${got.externalId}, userId ${got.userId}` : got})`,
      );
    }
    return [t0, t1];
  },

  async listByUser(ctx, k) {
    const userId = ctx.data.userIds[k % ctx.data.userIds.length];
    const t0 = process.hrtime.bigint();
    const list = await ctx.peer.listByUser(userId);
    const t1 = process.hrtime.bigint();
    checkList(userId, list);
    return [t0, t1];
  },

  /** Times the delete alone; then puts the conversation back (untimed) so the data stays. */
  async delete(ctx, k) {
    const item = pick(ctx.data.conversations, k);
    const t0 = process.hrtime.bigint();
    const result = await ctx.peer.delete(item.id);
    const t1 = process.hrtime.bigint();
    if (result !== undefined) throw new Error(`delete ${item.id}: resolved ${typeof result}, expected undefined`);
    if (k % ctx.checkEvery === 0) {
      const [[, exists], [, score]] = await ctx.admin
        .multi()
        .exists(conversationKey(item.id))
        .zscore(userIndexKey(item.userId), item.id)
        .exec();
      if (exists !== 0 || score !== null)
        throw new Error(`delete ${item.id}: still there (exists ${exists}, score ${score})`);
    }
    await ctx.peer.set(item.id, item.conversation);
    return [t0, t1];
  },
};

/** A permutation of the conversations, so in-flight ids are distinct and users interleave. */
function pick(conversations, k) {
  return conversations[(k * 7919) % conversations.length];
}

function checkList(userId, list) {
  if (!Array.isArray(list) || list.length !== LIST_LIMIT) {
    throw new Error(
      `listByUser ${userId}: ${Array.isArray(list) ? list.length : typeof list} items, expected ${LIST_LIMIT}`,
    );
  }
  let previous = Infinity;
  for (const c of list) {
    if (!c || c.userId !== userId) throw new Error(`listByUser ${userId}: an item of user ${c?.userId}`);
    const t = Date.parse(c.updatedAt);
    if (!(t <= previous)) throw new Error(`listByUser ${userId}: not sorted by updatedAt desc (${c.updatedAt})`);
    previous = t;
  }
}

/**
 * One closed-loop cell: `concurrency` workers run `op` back to back; after `warmupMs` the
 * completions in the next `measureMs` are counted and their latencies kept.
 */
async function runCell({ op, concurrency, warmupMs, measureMs, ctx, keyBase = 0, redisPid }) {
  const fn = OPS[op];
  const latencies = new Float64Array(4096);
  const state = { latencies, count: 0, failures: 0, samples: [], phase: 0, next: keyBase };
  let measureStart = 0n;
  let measureEnd = 0n;

  const record = (t1, t0) => {
    if (state.phase !== 1) return;
    if (state.count === state.latencies.length) {
      const grown = new Float64Array(state.latencies.length * 2);
      grown.set(state.latencies);
      state.latencies = grown;
    }
    state.latencies[state.count++] = Number(t1 - t0) / 1000; // µs
  };

  async function worker() {
    let sinceYield = 0;
    while (state.phase < 2) {
      // A store that settles without I/O (broken, or in memory) would otherwise starve the
      // timers that end the cell: give the event loop a turn now and then.
      if (++sinceYield === 256) {
        sinceYield = 0;
        await new Promise(setImmediate);
      }
      const k = state.next++;
      try {
        const [t0, t1] = await fn(ctx, k);
        record(t1, t0);
      } catch (error) {
        state.failures++;
        if (state.samples.length < 5) state.samples.push(String(error?.message ? error.message : error).slice(0, 300));
      }
    }
  }

  const workers = Array.from({ length: concurrency }, worker);
  await sleep(warmupMs);
  // The window's edges are taken synchronously with the phase changes, so the CPU counted is
  // that of the ops counted (Redis's own figure brackets them, one INFO round trip wider).
  const redisStart = await redisCpu(ctx.admin);
  const cpuStart = { ...localCpu(), redis: redisStart };
  state.phase = 1;
  measureStart = process.hrtime.bigint();
  const ticksStart = cpuTicks(redisPid);
  await sleep(measureMs);
  state.phase = 2;
  measureEnd = process.hrtime.bigint();
  const ticksEnd = cpuTicks(redisPid);
  const cpuEnd = localCpu();
  cpuEnd.redis = await redisCpu(ctx.admin);
  await Promise.all(workers);
  const seconds = Number(measureEnd - measureStart) / 1e9;
  return {
    op,
    concurrency,
    ops: state.count,
    seconds,
    opsPerSec: state.count / seconds,
    ...percentiles(state.latencies.subarray(0, state.count)),
    failures: state.failures,
    failureSamples: state.samples,
    keysUsed: state.next - keyBase,
    cpuCores: cpuBetween(ticksStart, ticksEnd, seconds),
    // Ops completed between the two snapshots (those in flight at the end finish after it).
    cpuPerOp: cpuPerOp(cpuStart, cpuEnd, state.count),
  };
}

function percentiles(us) {
  if (us.length === 0) return { p50Ms: NaN, p99Ms: NaN, p999Ms: NaN, meanMs: NaN };
  const sorted = Float64Array.from(us).sort();
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] / 1000;
  let sum = 0;
  for (const v of sorted) sum += v;
  return { p50Ms: at(0.5), p99Ms: at(0.99), p999Ms: at(0.999), meanMs: sum / sorted.length / 1000 };
}

/**
 * Checks everything Redis holds against what the bench wrote: every conversation present,
 * every index entry's score equal to the last updatedAt written, nothing else. Returns problems.
 */
async function verifyState(admin, data, expected) {
  const problems = [];
  const dbsize = await admin.dbsize();
  const wantKeys = data.conversations.length + data.userIds.length;
  if (dbsize !== wantKeys) problems.push(`DBSIZE ${dbsize}, expected ${wantKeys}`);
  const pipeline = admin.pipeline();
  for (const userId of data.userIds) pipeline.zrange(userIndexKey(userId), 0, -1, 'WITHSCORES');
  const replies = await pipeline.exec();
  const seen = new Map();
  for (const [u, [error, flat]] of replies.entries()) {
    if (error) {
      problems.push(`ZRANGE ${data.userIds[u]}: ${error.message}`);
      continue;
    }
    for (let i = 0; i < flat.length; i += 2) seen.set(flat[i], { userId: data.userIds[u], score: Number(flat[i + 1]) });
  }
  for (const item of data.conversations) {
    const entry = seen.get(item.id);
    const want = expected.get(item.id);
    if (!entry) problems.push(`${item.id}: no index entry`);
    else if (entry.userId !== item.userId) problems.push(`${item.id}: indexed under ${entry.userId}`);
    else if (entry.score !== want) problems.push(`${item.id}: score ${entry.score}, expected ${want}`);
    if (problems.length > 10) break;
  }
  if (seen.size !== data.conversations.length)
    problems.push(`${seen.size} index entries, expected ${data.conversations.length}`);
  return problems;
}

/** Loads every conversation through `peer` with bounded concurrency. */
async function load(peer, data, expected, concurrency = 32) {
  let next = 0;
  const items = data.conversations;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const item = items[next++];
        await peer.set(item.id, item.conversation);
        expected.set(item.id, Date.parse(item.conversation.updatedAt));
      }
    }),
  );
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function mb(bytes) {
  return Math.round((bytes / 1048576) * 10) / 10;
}

/**
 * After a cell of writes (set, or delete with its re-set): what Redis holds, checked against
 * what the bench wrote, counted as the cell's failures.
 */
async function checkStateAfterCell(r, { admin, data, expected }) {
  if (r.op !== 'set' && r.op !== 'delete') return;
  const problems = await verifyState(admin, data, expected);
  r.failures += problems.length;
  r.failureSamples.push(...problems.slice(0, 5).map((p) => `state after the cell: ${p}`));
}

module.exports = {
  PEERS,
  serverCpuUs,
  median,
  OPS,
  cpuTicks,
  cpuBetween,
  cpuSnapshot,
  cpuPerOp,
  waitForQuiet,
  AZURE_TLS,
  startServer,
  runCell,
  verifyState,
  checkStateAfterCell,
  load,
  percentiles,
  gc,
  sleep,
  mb,
  checkList,
  pick,
};
