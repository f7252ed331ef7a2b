'use strict';
// The soak: a mixed closed-loop load on one RedisConversationStore while random faults hit
// the server or the network, one at a time. Checks that no call outlives its deadline, that
// every result is right, and that no acknowledged write is lost.
//
//   npm run soak -- [--minutes 1] [--seed 1] [--workers 32] [--token-lifetime <seconds>]
//
// One TLS redis-server (appendonly, appendfsync always: an acknowledged write survives a
// SIGKILL) behind a black-hole proxy; the store connects through the proxy. Faults: SIGSTOP,
// SIGKILL + restart on the same port, black hole, CLIENT KILL, REPLICAOF (READONLY),
// DEBUG SLEEP. --token-lifetime adds Microsoft Entra ID token rotation: the Entra emulator
// (support/entra-emulator.js) stands between the proxy and the server, the store authenticates
// with tokens of that lifetime through `credentials`, connections are closed at their token's
// expiry, and one more fault, tokenStall, has the provider return its last token for a while.
// Loopback only; everything it starts it stops. Exits 1 on a failure.

const { performance, monitorEventLoopDelay } = require('node:perf_hooks');
const { setTimeout: delay } = require('node:timers/promises');

const { RedisConversationStore, entraIdCredentials } = require('..');
const { startRedis, stopAll } = require('../support/redis.js');
const { startProxy } = require('../support/proxy.js');
const { createTokenIssuer, startEntraEmulator } = require('../support/entra-emulator.js');
const { makeConversation, isoAt, uuidFrom } = require('../support/conversations.js');
const { prng } = require('./workload.js');
const { readArgs, headerUsage, numberArg, optionalNumberArg } = require('./args');

const COMMAND_TIMEOUT_MS = 1000;
const HEALTH_CHECK_INTERVAL_MS = 500;
const RETRY = { baseDelayMs: 50, maxDelayMs: 1000 };
/** A call slower than the deadline plus this is "over deadline": a hang, a library bug. */
const SLACK_MS = 1000;
const OVER_DEADLINE_MS = COMMAND_TIMEOUT_MS + SLACK_MS;
const LIST_LIMIT = 50; // the store's default listLimit

const MIX = [
  ['set', 0.4],
  ['get', 0.4],
  ['listByUser', 0.15],
  ['delete', 0.05],
];
const MIX_CUMULATIVE = MIX.map(([op], i) => [op, MIX.slice(0, i + 1).reduce((sum, [, p]) => sum + p, 0)]);
const USERS_PER_WORKER = 4;
/** Live ids per worker: keeps the script's memory and Redis' dataset bounded; ~100 per user. */
const LIVE_IDS_PER_WORKER = 400;

const FAULT_KINDS = ['pause', 'kill', 'blackhole', 'clientKill', 'readonly', 'debugSleep'];
/** Only with --token-lifetime: the token provider returns its last token (no refresh) for a while. */
const TOKEN_FAULT_KINDS = ['tokenStall'];
/** A JWT, as every Entra token is: none may reach a log line or an error message. */
const JWT_PATTERN = /eyJ[\w-]+\.eyJ[\w-]+/;
const NORMAL_MS = [5000, 15000];
const FAULT_MS = [1000, 5000];
const DEBUG_SLEEP_S = 2;
/** No fault starts unless this much normal time is left after it ends. */
const TAIL_MS = 3000;
const RECOVERY_TIMEOUT_MS = 30_000;
const VERIFY_CONCURRENCY = 16;
const VERIFY_ATTEMPTS = 5;

// ------------------------------------------------------------------ arguments

function parseCommandLine() {
  const values = readArgs(
    {
      minutes: { type: 'string', default: '1' },
      seed: { type: 'string', default: '1' },
      workers: { type: 'string', default: '32' },
      'token-lifetime': { type: 'string' },
    },
    headerUsage(__filename),
  );
  const args = {
    minutes: numberArg(values, 'minutes', { max: 24 * 60 }),
    seed: numberArg(values, 'seed', { min: 0, max: 2 ** 32 - 1, whole: true }),
    workers: numberArg(values, 'workers', { whole: true, max: 1024 }),
    tokenLifetime: optionalNumberArg(values, 'token-lifetime', { min: 1, max: 3600 }),
  };
  if (args.tokenLifetime !== undefined && typeof entraIdCredentials !== 'function') {
    throw new Error('--token-lifetime: this build of the store has no entraIdCredentials');
  }
  return args;
}

// ------------------------------------------------------------------ determinism

/** A seed per stream, so the fault schedule does not depend on how fast the load runs. */
function streamSeed(seed, stream) {
  let h = (Math.imul(seed ^ 0x5eed, 0x9e3779b1) ^ Math.imul(stream + 1, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  return (h ^ (h >>> 15)) >>> 0;
}

const between = (rnd, [lo, hi]) => lo + rnd() * (hi - lo);

// ------------------------------------------------------------------ bookkeeping

const t0 = performance.now();
const now = () => performance.now() - t0;
const secs = (ms) => `${(ms / 1000).toFixed(1)}s`;
const mb = (bytes) => `${(bytes / 1048576).toFixed(1)} MB`;
const inc = (obj, key, by = 1) => {
  obj[key] = (obj[key] ?? 0) + by;
};
/** A log line or error message with its variable parts masked, to count by kind. */
const kindOf = (text) =>
  text
    .replace(/^\[STORE\] /, '')
    .replace(/\d+/g, 'N')
    .slice(0, 110);

const HIST_BOUNDS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 1500, 2000, Infinity];

function newOpStats() {
  return {
    calls: 0,
    ok: 0,
    rejected: {},
    wrong: 0,
    maxMs: 0,
    overTimeout: 0,
    overDeadline: 0,
    hist: HIST_BOUNDS.map(() => 0),
  };
}

function percentile(stats, p) {
  const target = stats.calls * p;
  let seen = 0;
  for (let i = 0; i < HIST_BOUNDS.length; i++) {
    seen += stats.hist[i];
    if (seen >= target) return HIST_BOUNDS[i] === Infinity ? `>${HIST_BOUNDS[i - 1]}` : `≤${HIST_BOUNDS[i]}`;
  }
  return '-';
}

// ------------------------------------------------------------------ main

/**
 * The rig: a TLS redis-server (AOF, fsync always) behind a black-hole proxy, and the store
 * under test, its log lines counted and its status and RSS polled. With --token-lifetime, the
 * Entra emulator stands between the proxy and the server, and the store authenticates with
 * tokens from an emulated `TokenCredential`.
 */
async function startRig(args) {
  const server = await startRedis({
    args: ['--appendonly', 'yes', '--appendfsync', 'always', '--enable-debug-command', 'yes'],
  });
  let entra;
  if (args.tokenLifetime !== undefined) {
    const lifetimeMs = args.tokenLifetime * 1000;
    const issuer = createTokenIssuer({ lifetimeMs });
    const emulator = await startEntraEmulator({ targetPort: server.port, certs: server.certs, issuer });
    entra = { issuer, emulator, credential: issuer.credential({ lifetimeMs }) };
  }
  const proxy = await startProxy({ targetPort: entra ? entra.emulator.port : server.port });
  console.log(
    `soak: redis-server pid ${server.pid} on :${server.port} (TLS), ` +
      (entra ? `Entra emulator on :${entra.emulator.port} (tokens live ${args.tokenLifetime} s), ` : '') +
      `black-hole proxy on :${proxy.port}`,
  );

  // The logger counts, keeps the last few lines, and prints nothing.
  const log = { total: 0, byLevel: {}, byKind: {}, last: [], tokenLeaks: 0 };
  const record = (level) => (line) => {
    log.total++;
    if (JWT_PATTERN.test(line)) log.tokenLeaks++;
    inc(log.byLevel, level);
    inc(log.byKind, kindOf(line));
    log.last.push(`${secs(now()).padStart(7)} ${level.padEnd(5)} ${line}`);
    if (log.last.length > 12) log.last.shift();
  };
  const store = new RedisConversationStore(`rediss://127.0.0.1:${proxy.port}`, {
    tls: { ca: server.caPem },
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    healthCheckIntervalMs: HEALTH_CHECK_INTERVAL_MS,
    retry: RETRY,
    logger: { info: record('info'), warn: record('warn'), error: record('error') },
    ...(entra && { credentials: entraIdCredentials(entra.credential) }),
  });

  // Status, polled every 50 ms (the store has no status events), and RSS, every second.
  const transitions = {};
  let lastStatus = store.status;
  const rss = { start: 0, max: 0, end: 0, perMinute: [], heapStart: 0, heapEnd: 0 };
  let pollTick = 0;
  const poller = setInterval(() => {
    const status = store.status;
    if (status !== lastStatus) {
      inc(transitions, `${lastStatus}→${status}`);
      lastStatus = status;
    }
    if (++pollTick % 20 === 0) rss.max = Math.max(rss.max, process.memoryUsage.rss());
  }, 50);
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();

  await store.ready();
  rss.start = process.memoryUsage.rss();
  rss.heapStart = process.memoryUsage().heapUsed;
  rss.max = rss.start;
  console.log(`soak: store ready, RSS ${mb(rss.start)}; load and faults start`);
  return { server, proxy, entra, log, store, transitions, rss, poller, loopDelay };
}

/** A redis-cli call, retried while the server is coming back (after a kill, a pause). */
async function cliUntilOk(server, cliArgs) {
  let lastError;
  for (let i = 0; i < 20; i++) {
    try {
      return await server.cli(...cliArgs);
    } catch (error) {
      lastError = error;
      await delay(250);
    }
  }
  throw lastError;
}

/** The faults around a moment, for a report line. */
function faultAround(faults, start, end) {
  return (
    faults
      .filter((f) => f.start <= end && (f.end ?? Infinity) >= start - 2000)
      .map((f) => `${f.kind}@${secs(f.start)}-${f.end === undefined ? '…' : secs(f.end)}`)
      .join(', ') || 'none'
  );
}

/** What the workload, the fault injector, the verifier and the report share. */
function newRun(args, rig) {
  const stats = Object.fromEntries(MIX.map(([op]) => [op, newOpStats()]));
  /** id → { ms: acknowledged updatedAt (epoch ms), userId, ackAt, rejectedMs: newest rejected update } */
  const acknowledged = new Map();
  const uncertain = new Set(); // ids whose delete was rejected: maybe gone, maybe not
  const wrongResults = []; // first few, with details
  const slowCalls = []; // first few over-deadline calls, with details
  const rejectionKinds = {};
  const faults = []; // { kind, start, end, ms, resumedAfterMs }
  return {
    args,
    ...rig,
    stats,
    acknowledged,
    uncertain,
    wrongResults,
    slowCalls,
    rejectionKinds,
    faults,
    faultErrors: [],
    tokenLeaksInErrors: 0,
    /** The last fault, until a write is acknowledged after its end. */
    awaitingResume: null,
    running: true,
    stopFaults: false,
  };
}

/** The workload: closed-loop workers of set, get, listByUser and delete, each call timed and checked. */
function startWorkload(ctx) {
  const { args, store, stats, acknowledged, uncertain, wrongResults, slowCalls, rejectionKinds, faults, loopDelay } =
    ctx;
  let clock = 0; // every set writes a newer updatedAt than any before it
  const UPDATED_BASE = 24 * 3600_000; // one day after the fixtures' createdAt
  const nextUpdatedAt = () => UPDATED_BASE + ++clock;

  function noteWrong(op, what, detail) {
    stats[op].wrong++;
    if (wrongResults.length < 20)
      wrongResults.push(
        `${secs(now())} ${op}: ${what} ${detail} (faults: ${faultAround(faults, now() - 3000, now())})`,
      );
  }

  /** Runs one timed call; `{ ok, value, error, ms }`. */
  async function timedCall(op, call) {
    const s = stats[op];
    const start = performance.now();
    let outcome;
    try {
      outcome = { ok: true, value: await call() };
    } catch (error) {
      outcome = { ok: false, error };
    }
    const end = performance.now();
    const ms = end - start;
    outcome.ms = ms;
    s.calls++;
    s.maxMs = Math.max(s.maxMs, ms);
    s.hist[HIST_BOUNDS.findIndex((b) => ms <= b)]++;
    if (ms > COMMAND_TIMEOUT_MS) s.overTimeout++;
    if (outcome.ok) {
      s.ok++;
    } else {
      const code = outcome.error?.code ?? `no code (${outcome.error?.name ?? typeof outcome.error})`;
      inc(s.rejected, code);
      inc(rejectionKinds, `${code}: ${kindOf(String(outcome.error?.message))}`);
      if (JWT_PATTERN.test(String(outcome.error?.message))) ctx.tokenLeaksInErrors++;
    }
    if (ms > OVER_DEADLINE_MS) {
      s.overDeadline++;
      if (slowCalls.length < 20) {
        const how = outcome.ok ? 'resolved' : `rejected ${outcome.error?.code}: ${outcome.error?.message}`;
        slowCalls.push(
          `${op} started ${secs(start - t0)} took ${Math.round(ms)} ms, ${how}; ` +
            `status now ${store.status}; faults: ${faultAround(faults, start - t0, end - t0)}; event loop delay max so far ${Math.round(loopDelay.max / 1e6)} ms`,
        );
      }
    }
    return outcome;
  }

  async function worker(w) {
    const rnd = prng(streamSeed(args.seed, 1000 + w));
    const live = []; // this worker's acknowledged ids: only this worker writes them or their users
    const pos = new Map();
    const addLive = (id) => {
      pos.set(id, live.length);
      live.push(id);
    };
    const dropLive = (id) => {
      const i = pos.get(id);
      const last = live.pop();
      if (last !== id) {
        live[i] = last;
        pos.set(last, i);
      }
      pos.delete(id);
    };
    const users = Array.from({ length: USERS_PER_WORKER }, (_, u) => `soak-u${w}-${u}`);
    let nextId = 0;

    while (ctx.running) {
      const r = rnd();
      let op = MIX_CUMULATIVE.find(([, upTo]) => r < upTo)?.[0] ?? 'set';
      if ((op === 'get' || op === 'delete') && live.length === 0) op = 'set';
      let ok = true;

      if (op === 'set') {
        const fresh = live.length === 0 || (live.length < LIVE_IDS_PER_WORKER && rnd() < 0.5);
        // A conversation's id is its externalId, a UUID; from the seed, so a run repeats.
        const id = fresh ? uuidFrom(`soak-${args.seed}-${w}-${nextId++}`) : live[Math.floor(rnd() * live.length)];
        const userId = fresh ? users[Math.floor(rnd() * users.length)] : acknowledged.get(id).userId;
        const ms = nextUpdatedAt();
        const conversation = makeConversation({
          seed: id,
          externalId: id,
          userId,
          tenantId: 'soak-tenant',
          updatedAt: isoAt(ms),
          messages: 1 + Math.floor(rnd() * 6),
        });
        const res = await timedCall('set', () => store.set(id, conversation));
        ok = res.ok;
        if (res.ok) {
          acknowledged.set(id, { ms, userId, ackAt: now(), rejectedMs: acknowledged.get(id)?.rejectedMs });
          if (fresh) addLive(id);
          if (ctx.awaitingResume && now() > ctx.awaitingResume.end) {
            ctx.awaitingResume.resumedAfterMs = now() - ctx.awaitingResume.end;
            ctx.awaitingResume = null;
          }
        } else if (!fresh) {
          const entry = acknowledged.get(id);
          entry.rejectedMs = Math.max(entry.rejectedMs ?? 0, ms);
        }
      } else if (op === 'get') {
        const id = live[Math.floor(rnd() * live.length)];
        const want = acknowledged.get(id);
        const res = await timedCall('get', () => store.get(id));
        ok = res.ok;
        if (res.ok) {
          const got = res.value;
          if (got === undefined)
            noteWrong('get', 'missing', `${id} (acknowledged ${isoAt(want.ms)} at ${secs(want.ackAt)})`);
          else if (Date.parse(got.updatedAt) < want.ms) {
            noteWrong(
              'get',
              'stale',
              `${id}: ${got.updatedAt} < acknowledged ${isoAt(want.ms)} (acknowledged at ${secs(want.ackAt)})`,
            );
          } else if (got.userId !== want.userId) noteWrong('get', 'wrong user', `${id}: ${got.userId}`);
        }
      } else if (op === 'listByUser') {
        const userId = users[Math.floor(rnd() * users.length)];
        const res = await timedCall('listByUser', () => store.listByUser(userId));
        ok = res.ok;
        if (res.ok) {
          const list = res.value;
          if (!Array.isArray(list)) noteWrong('listByUser', 'not an array', typeof list);
          else if (list.length > LIST_LIMIT) noteWrong('listByUser', 'too long', `${userId}: ${list.length} items`);
          else if (list.some((c) => c.userId !== userId)) noteWrong('listByUser', 'foreign item', userId);
          else {
            const bad = list.findIndex((c, i) => i > 0 && Date.parse(c.updatedAt) > Date.parse(list[i - 1].updatedAt));
            if (bad > 0)
              noteWrong(
                'listByUser',
                'not sorted',
                `${userId}: [${bad - 1}] ${list[bad - 1].updatedAt} < [${bad}] ${list[bad].updatedAt}`,
              );
          }
        }
      } else {
        const id = live[Math.floor(rnd() * live.length)];
        dropLive(id);
        const res = await timedCall('delete', () => store.delete(id));
        ok = res.ok;
        if (res.ok) acknowledged.delete(id);
        else {
          acknowledged.delete(id);
          uncertain.add(id);
        }
      }
      // Yield after a failure so a fast failure loop does not starve the event loop.
      if (!ok) await delay(10);
    }
  }

  return Promise.all(Array.from({ length: args.workers }, (_, w) => worker(w)));
}

/** The fault injector: a random fault of each kind in turn, until `loadEnd` ms after start. */
function startFaults(ctx, loadEnd) {
  const { args, server, proxy, entra, store, stats, faults, faultErrors } = ctx;
  const kinds = entra ? [...FAULT_KINDS, ...TOKEN_FAULT_KINDS] : FAULT_KINDS;

  /** Sleeps until `ms` from start or until the run ends, whichever is first. */
  const sleepFor = async (ms) => {
    const until = now() + ms;
    while (!ctx.stopFaults && now() < until) await delay(Math.min(250, until - now()));
  };

  /** Dead (black-holed) connections stay dead; once the store has dropped one, close its
   *  upstream side too, so they do not pile up on the server. */
  function reapDeadConnections() {
    for (const conn of proxy.connections) {
      if (conn.dead && conn.client.destroyed) conn.upstream?.destroy();
    }
  }

  async function inject(kind, ms) {
    reapDeadConnections();
    switch (kind) {
      case 'pause':
        server.pause();
        try {
          await delay(ms);
        } finally {
          server.resume();
        }
        break;
      case 'kill':
        await server.kill();
        await delay(ms);
        await server.restart();
        break;
      case 'blackhole':
        proxy.blackhole();
        try {
          await delay(ms);
        } finally {
          proxy.restore();
        }
        reapDeadConnections();
        break;
      case 'clientKill':
        await cliUntilOk(server, ['CLIENT', 'KILL', 'TYPE', 'normal']);
        break;
      case 'readonly':
        await cliUntilOk(server, ['REPLICAOF', '127.0.0.1', '1']);
        try {
          await delay(ms);
        } finally {
          await cliUntilOk(server, ['REPLICAOF', 'NO', 'ONE']);
        }
        break;
      case 'tokenStall':
        // The provider keeps returning its last token: it expires, the emulator closes the
        // connections that used it, and the store has nothing valid to reconnect with.
        entra.credential.mode = 'same';
        try {
          await delay(ms);
        } finally {
          entra.credential.mode = 'fresh';
        }
        break;
      case 'debugSleep': {
        const res = await server.tryCli(['DEBUG', 'SLEEP', String(DEBUG_SLEEP_S)], { timeoutMs: 15_000 });
        if (res.code !== 0) throw new Error(`DEBUG SLEEP failed: ${(res.stderr + res.stdout).trim()}`);
        break;
      }
      default:
        throw new Error(`unknown fault ${kind}`);
    }
  }

  async function faultLoop() {
    const rnd = prng(streamSeed(args.seed, 1));
    while (!ctx.stopFaults) {
      const normalMs = between(rnd, NORMAL_MS);
      const kind = kinds[Math.floor(rnd() * kinds.length)];
      const faultMs =
        kind === 'clientKill'
          ? 0
          : kind === 'debugSleep'
            ? DEBUG_SLEEP_S * 1000
            : kind === 'tokenStall'
              ? args.tokenLifetime * 1000 + between(rnd, FAULT_MS) // long enough for the last token to expire
              : between(rnd, FAULT_MS);
      if (now() + normalMs + faultMs + TAIL_MS > loadEnd) break;
      await sleepFor(normalMs);
      if (ctx.stopFaults) break;
      if (ctx.awaitingResume) {
        console.log(
          `${secs(now()).padStart(7)}   no write acknowledged since ${ctx.awaitingResume.kind} ended ${secs(now() - ctx.awaitingResume.end)} ago`,
        );
        ctx.awaitingResume = null;
      }
      const fault = { kind, start: now(), ms: faultMs };
      faults.push(fault);
      const statusBefore = store.status;
      try {
        await inject(kind, faultMs);
      } catch (error) {
        faultErrors.push(`${kind} at ${secs(fault.start)}: ${error.message}`);
        console.log(`${secs(now()).padStart(7)}   fault ${kind} failed: ${error.message}`);
      }
      fault.end = now();
      ctx.awaitingResume = fault;
      console.log(
        `${secs(fault.start).padStart(7)} fault ${kind.padEnd(10)} ${secs(fault.end - fault.start).padStart(5)} ` +
          `(status before ${statusBefore}, after ${store.status}; ${stats.set.ok} writes acknowledged so far)`,
      );
    }
  }

  return faultLoop();
}

/** The verifier: undoes what a fault left, waits for the store, and reads back every acknowledged write. */
async function verifyAcknowledged(ctx) {
  const { server, proxy, entra, store, acknowledged, faults } = ctx;

  // Whatever a fault left behind (none should be active now), undo it.
  if (!server.running) await server.restart();
  server.resume();
  proxy.restore();
  if (entra) entra.credential.mode = 'fresh';
  const role = await server.cli('ROLE').catch((e) => `? ${e.message}`);
  if (!role.startsWith('master')) await cliUntilOk(server, ['REPLICAOF', 'NO', 'ONE']);

  const readyWaitStart = now();
  while (store.status !== 'ready' && now() - readyWaitStart < RECOVERY_TIMEOUT_MS) await delay(50);
  const readyAfterMs = now() - readyWaitStart;
  const readyAtEnd = store.status === 'ready';

  const verify = {
    checked: 0,
    ok: 0,
    missing: 0,
    older: 0,
    olderFromRejectedWrite: 0,
    wrongUser: 0,
    unverifiable: 0,
    details: [],
  };
  const entries = [...acknowledged];
  let next = 0;
  const verifier = async () => {
    while (next < entries.length) {
      const [id, want] = entries[next++];
      let got;
      let lastError;
      let done = false;
      for (let attempt = 0; attempt < VERIFY_ATTEMPTS && !done; attempt++) {
        try {
          got = await store.get(id);
          done = true;
        } catch (error) {
          lastError = error;
          await delay(200);
        }
      }
      verify.checked++;
      const detail = (what) => {
        if (verify.details.length < 20)
          verify.details.push(
            `${id}: ${what}; acknowledged ${isoAt(want.ms)} at ${secs(want.ackAt)} (faults: ${faultAround(faults, want.ackAt - 3000, want.ackAt + 3000)})`,
          );
      };
      if (!done) {
        verify.unverifiable++;
        detail(`get kept failing: ${lastError?.code} ${lastError?.message}`);
        continue;
      }
      if (got === undefined) {
        verify.missing++;
        detail('missing');
        continue;
      }
      const gotMs = Date.parse(got.updatedAt);
      if (gotMs < want.ms) {
        verify.older++;
        // A rejected update may still have been applied, even late: telling that apart.
        if (want.rejectedMs !== undefined && gotMs <= want.rejectedMs) verify.olderFromRejectedWrite++;
        detail(
          `stored ${got.updatedAt} is older${want.rejectedMs !== undefined ? ` (newest rejected update ${isoAt(want.rejectedMs)})` : ''}`,
        );
        continue;
      }
      if (got.userId !== want.userId) {
        verify.wrongUser++;
        detail(`stored userId ${got.userId}`);
        continue;
      }
      verify.ok++;
    }
  };
  if (readyAtEnd) await Promise.all(Array.from({ length: VERIFY_CONCURRENCY }, verifier));
  else verify.unverifiable = entries.length;
  return { verify, readyAtEnd, readyAfterMs };
}

/** The report: the summary, and PASS or FAIL. Returns the exit code. */
function report(ctx, end) {
  const {
    args,
    stats,
    rejectionKinds,
    slowCalls,
    wrongResults,
    uncertain,
    faults,
    faultErrors,
    transitions,
    rss,
    loopDelay,
    log,
    acknowledged,
    entra,
    tokenLeaksInErrors,
  } = ctx;
  const { verify, readyAtEnd, readyAfterMs, loadMs, lastResumeFault, logTail, redisUsed, dbsize, statsLeak } = end;

  const lost = verify.missing + verify.older + verify.wrongUser;
  const totals = Object.values(stats).reduce(
    (t, s) => ({
      calls: t.calls + s.calls,
      ok: t.ok + s.ok,
      wrong: t.wrong + s.wrong,
      overDeadline: t.overDeadline + s.overDeadline,
      overTimeout: t.overTimeout + s.overTimeout,
    }),
    { calls: 0, ok: 0, wrong: 0, overDeadline: 0, overTimeout: 0 },
  );
  const rejectedByCode = {};
  for (const s of Object.values(stats))
    for (const [code, n] of Object.entries(s.rejected)) inc(rejectedByCode, code, n);
  const codeless = Object.entries(rejectedByCode)
    .filter(([code]) => !code.startsWith('STORE_'))
    .reduce((n, [, c]) => n + c, 0);
  const faultsByKind = {};
  const resumeByKind = {};
  for (const f of faults) {
    inc(faultsByKind, f.kind);
    resumeByKind[f.kind] ??= { max: 0, sum: 0, n: 0, never: 0 };
    const r = resumeByKind[f.kind];
    if (f.resumedAfterMs === undefined) r.never++;
    else {
      r.n++;
      r.sum += f.resumedAfterMs;
      r.max = Math.max(r.max, f.resumedAfterMs);
    }
  }
  if (lastResumeFault) resumeByKind[lastResumeFault.kind].never--; // the run ended before the next write, not a failure

  const out = [];
  const p = (line = '') => out.push(line);
  const fmtCounts = (obj) =>
    Object.entries(obj)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || 'none';
  p('');
  p('================ soak summary ================');
  p(
    `minutes: ${args.minutes} (load ran ${secs(loadMs)}), seed ${args.seed}, ${args.workers} workers, commandTimeoutMs ${COMMAND_TIMEOUT_MS}`,
  );
  p(
    `calls made: ${totals.calls} (${Math.round(totals.calls / (loadMs / 1000))}/s), resolved ${totals.ok}, rejected ${totals.calls - totals.ok}`,
  );
  p(`calls rejected by code: ${fmtCounts(rejectedByCode)}`);
  p('calls by op and outcome:');
  for (const [op, s] of Object.entries(stats)) {
    p(
      `  ${op.padEnd(10)} ${String(s.calls).padStart(8)} calls: ok ${s.ok}, rejected ${fmtCounts(s.rejected)}; ` +
        `wrong results ${s.wrong}; p50 ${percentile(s, 0.5)} ms, p99 ${percentile(s, 0.99)} ms, max ${Math.round(s.maxMs)} ms, ` +
        `> ${COMMAND_TIMEOUT_MS} ms: ${s.overTimeout}`,
    );
  }
  p('rejections by message (kind, top 8):');
  for (const [k, v] of Object.entries(rejectionKinds)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8))
    p(`  ${String(v).padStart(7)}  ${k}`);
  p(`calls over deadline (> ${OVER_DEADLINE_MS} ms = commandTimeoutMs + ${SLACK_MS} ms slack): ${totals.overDeadline}`);
  for (const line of slowCalls) p(`  ${line}`);
  p(`calls slower than commandTimeoutMs but within slack: ${totals.overTimeout - totals.overDeadline}`);
  p(`wrong results (get stale/missing, list too long/unsorted/foreign): ${totals.wrong}`);
  for (const line of wrongResults) p(`  ${line}`);
  p(
    `acknowledged writes lost: ${lost} (of ${verify.checked} verified: missing ${verify.missing}, older ${verify.older}` +
      ` [of which overwritten by a rejected update ${verify.olderFromRejectedWrite}], wrong user ${verify.wrongUser}; unverifiable ${verify.unverifiable})`,
  );
  for (const line of verify.details) p(`  ${line}`);
  p(`deletes rejected (ids uncertain, not counted): ${uncertain.size}`);
  p(`faults injected: ${faults.length} — ${fmtCounts(faultsByKind)}`);
  if (faultErrors.length) for (const e of faultErrors) p(`  fault error: ${e}`);
  p('writes acknowledged again after each fault ended (mean / max):');
  for (const [kind, r] of Object.entries(resumeByKind)) {
    p(
      `  ${kind.padEnd(10)} ${r.n ? `${Math.round(r.sum / r.n)} / ${Math.round(r.max)} ms` : '-'}${r.never > 0 ? `, ${r.never} never before the next fault` : ''}`,
    );
  }
  p(`status transitions observed (polled every 50 ms): ${fmtCounts(transitions)}`);
  p(`status ready at the end: ${readyAtEnd} (${Math.round(readyAfterMs)} ms after the load stopped)`);
  p(
    `RSS: start ${mb(rss.start)}, end ${mb(rss.end)}, max ${mb(rss.max)}; per minute: ${rss.perMinute.map((r) => (r / 1048576).toFixed(0)).join(' ') || '-'} MB; ` +
      `JS heap used: start ${mb(rss.heapStart)}, end ${mb(rss.heapEnd)} (${acknowledged.size} ids tracked)`,
  );
  p(
    `event loop delay: p99 ${Math.round(loopDelay.percentile(99) / 1e6)} ms, max ${Math.round(loopDelay.max / 1e6)} ms`,
  );
  p(`redis at the end: ${dbsize} keys, used_memory ${redisUsed}`);
  if (entra) {
    const e = entra.emulator.stats;
    p(
      `entra: tokens issued ${entra.issuer.counts.issued} (lifetime ${args.tokenLifetime} s, getToken calls ${entra.credential.calls}); ` +
        `AUTHs accepted ${e.auths}, of which re-AUTHs on live connections ${e.reauths}; refused ${e.refused}; ` +
        `connections accepted ${e.accepted}, closed at token expiry ${e.expiredClosed}`,
    );
    p(
      `tokens seen in log lines ${log.tokenLeaks}, in error messages ${tokenLeaksInErrors}, in stats() ${statsLeak ? 1 : 0}`,
    );
  }
  p(`logger lines: ${log.total} (${fmtCounts(log.byLevel)}); by kind:`);
  for (const [k, v] of Object.entries(log.byKind)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 15))
    p(`  ${String(v).padStart(7)}  ${k}`);
  p('last log lines:');
  for (const line of logTail) p(`  ${line}`);

  const failures = [];
  if (totals.overDeadline > 0) failures.push(`${totals.overDeadline} calls over deadline`);
  if (lost > 0) failures.push(`${lost} acknowledged writes lost`);
  if (verify.unverifiable > 0) failures.push(`${verify.unverifiable} acknowledged writes could not be read back`);
  if (totals.wrong > 0) failures.push(`${totals.wrong} wrong results`);
  if (codeless > 0) failures.push(`${codeless} rejections without a STORE_ code`);
  if (!readyAtEnd) failures.push(`status not ready ${RECOVERY_TIMEOUT_MS} ms after the faults stopped`);
  if (faultErrors.length) failures.push(`${faultErrors.length} faults could not be injected`);
  if (entra && entra.emulator.stats.reauths === 0) failures.push('no live connection was re-authenticated');
  const leaks = log.tokenLeaks + tokenLeaksInErrors + (statsLeak ? 1 : 0);
  if (leaks > 0) failures.push(`a token appeared ${leaks} times in logs, errors or stats()`);
  p(failures.length ? `RESULT: FAIL — ${failures.join('; ')}` : 'RESULT: PASS');
  console.log(out.join('\n'));
  return failures.length ? 1 : 0;
}

async function main() {
  const args = parseCommandLine();
  const durationMs = args.minutes * 60_000;
  // Self-stopping whatever happens: the load, the final checks and the teardown are bounded.
  const watchdog = setTimeout(
    () => {
      console.error(`soak: still running ${secs(durationMs + 5 * 60_000)} after start; giving up`);
      process.exit(2);
    },
    durationMs + 5 * 60_000,
  );
  watchdog.unref();

  console.log(
    `soak: ${args.minutes} min, seed ${args.seed}, ${args.workers} workers, ` +
      `commandTimeoutMs ${COMMAND_TIMEOUT_MS}, healthCheckIntervalMs ${HEALTH_CHECK_INTERVAL_MS}, ` +
      `retry ${JSON.stringify(RETRY)}; over deadline = slower than ${OVER_DEADLINE_MS} ms`,
  );

  const ctx = newRun(args, await startRig(args));
  const { server, proxy, store, stats, acknowledged, rss, poller, loopDelay, log } = ctx;
  const workersDone = startWorkload(ctx);
  const faultsDone = startFaults(ctx, durationMs);

  // Progress, once a minute.
  const progress = setInterval(() => {
    const calls = Object.values(stats).reduce((n, s) => n + s.calls, 0);
    const rejected = Object.values(stats).reduce((n, s) => n + s.calls - s.ok, 0);
    const r = process.memoryUsage.rss();
    rss.perMinute.push(r);
    console.log(
      `${secs(now()).padStart(7)} progress: ${calls} calls (${rejected} rejected), ` +
        `${acknowledged.size} acknowledged live ids, RSS ${mb(r)}, status ${store.status}`,
    );
  }, 60_000);

  while (now() < durationMs) await delay(Math.min(500, durationMs - now()));
  const loadMs = now();
  ctx.stopFaults = true;
  ctx.running = false;
  clearInterval(progress);
  await faultsDone;
  await workersDone;
  const lastResumeFault = ctx.awaitingResume;

  const checked = await verifyAcknowledged(ctx);

  clearInterval(poller);
  loopDelay.disable();
  rss.end = process.memoryUsage.rss();
  rss.heapEnd = process.memoryUsage().heapUsed;
  rss.max = Math.max(rss.max, rss.end);
  const logTail = log.last.slice(-8);
  const redisInfo = await server.cli('INFO', 'memory').catch(() => '');
  const redisUsed = /used_memory_human:(\S+)/.exec(redisInfo)?.[1] ?? '?';
  const dbsize = await server.cli('DBSIZE').catch(() => '?');
  const statsLeak = typeof store.stats === 'function' && JWT_PATTERN.test(JSON.stringify(store.stats()));

  await store.close();
  await proxy.close();
  await ctx.entra?.emulator.close();
  await stopAll();

  return report(ctx, { ...checked, loadMs, lastResumeFault, logTail, redisUsed, dbsize, statsLeak });
}

process.once('SIGINT', () => process.exit(130)); // the harness' exit hook kills redis-server

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error('soak: aborted:', error);
    process.exit(2);
  },
);
