'use strict';
// The benchmark: this package against the store it replaces (ioredis + Zod), ioredis with
// auto-pipelining, Valkey GLIDE and GLIDE + Zod, all over TLS to one throwaway redis-server on
// loopback, plus redis-benchmark against the same server for the raw GET/SET floor. Each cell
// reports ops/s, latency and the CPU per op of the JS thread, Node's helper threads, the native
// threads and redis-server.
//
//   node bench/run.js [--seconds 3] [--warmup 1] [--quick] [--peers ours,glide]
//                     [--ops set,get,listByUser,delete] [--concurrency 1,64,256]
//                     [--out latest | --no-write] [--no-redis-benchmark]
//                     [--quiet-wait 600] [--retries 2] [--trace-subscriber]
//
// --quick: cells of 1 s after 0.5 s of warm-up, at concurrency 1 and 64, unless --seconds,
// --warmup or --concurrency is given.
// --peers ours-before: also runs the build of this store at BENCH_BEFORE_MODULE (a checkout with
// its addon built), for a change's before/after figures in one run.
// --trace-subscriber: a subscriber that counts every event of the `redis-store:call`
// TracingChannel is attached while the bench runs, to measure what tracing costs.
//
// The machine is shared (2 cores for Redis and Node): before each cell the bench waits until
// other processes are idle, and reruns a cell during which they used more than 0.2 cores, up
// to --retries times, spending at most --quiet-wait seconds waiting over the whole run.
// Writes bench/results/<out>.{json,md,svg}. Exits 1 if any result was wrong.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFile, execFileSync } = require('node:child_process');
const { PEERS, startServer, runCell, verifyState, checkStateAfterCell, load, gc, mb, waitForQuiet } = require('./lib');
const { makeWorkload } = require('./workload');
const { renderSvg } = require('./svg');
const { refuse, readArgs, headerUsage, numberArg, numberListArg, listArg } = require('./args');

const OPS = ['set', 'get', 'listByUser', 'delete'];
const OP_LABEL = { set: 'set', get: 'get', listByUser: 'listByUser', delete: 'delete (+re-set)' };
const PEER_LABEL = {
  'ioredis-zod': 'ioredis+zod',
  'ioredis-fast': 'ioredis-fast',
  glide: 'glide',
  'glide-zod': 'glide+zod',
  ours: 'ours',
  'ours-before': 'ours-before',
};
const BASELINE = 'ioredis-zod';
const NOISY_CORES = 0.2; // other processes using more than this during a cell make it suspect

/** `--out`: a file name in bench/results, without a folder or an extension. */
function outName(text) {
  if (typeof text === 'string' && /^[\w-][\w.-]*$/.test(text)) return text;
  return refuse(`--out: expected a name such as latest (letters, digits, '.', '-', '_'), got '${text}'`);
}

function parseCommandLine() {
  const values = readArgs(
    {
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      quick: { type: 'boolean', default: false },
      concurrency: { type: 'string' },
      ops: { type: 'string', default: OPS.join(',') },
      peers: { type: 'string', default: PEERS.join(',') },
      out: { type: 'string', default: 'latest' },
      'no-write': { type: 'boolean', default: false },
      'no-redis-benchmark': { type: 'boolean', default: false },
      'quiet-wait': { type: 'string', default: '600' },
      retries: { type: 'string', default: '2' },
      'trace-subscriber': { type: 'boolean', default: false },
    },
    headerUsage(__filename),
  );
  // --quick: shorter cells and no c = 256, unless those are given.
  const quick = values.quick === true;
  values.seconds ??= quick ? '1' : '3';
  values.warmup ??= quick ? '0.5' : '1';
  values.concurrency ??= quick ? '1,64' : '1,64,256';
  return {
    seconds: numberArg(values, 'seconds', { max: 60 }),
    warmup: numberArg(values, 'warmup', { min: 0, max: 30 }),
    quick,
    concurrency: numberListArg(values, 'concurrency', { whole: true, max: 1024 }),
    ops: listArg(values, 'ops', OPS),
    // ours-before (BENCH_BEFORE_MODULE: another build of this store) runs only when asked for.
    peers: listArg(values, 'peers', [...PEERS, 'ours-before']),
    out: outName(values.out),
    write: values['no-write'] !== true,
    redisBenchmark: values['no-redis-benchmark'] !== true,
    quietWaitSeconds: numberArg(values, 'quiet-wait', { min: 0, max: 3600 }),
    retries: numberArg(values, 'retries', { min: 0, max: 5, whole: true }),
    traceSubscriber: values['trace-subscriber'] === true,
  };
}

/** The commit measured, and whether the working tree differs from it (the store's files). */
function gitState() {
  const { execFileSync } = require('node:child_process');
  const git = (...a) =>
    execFileSync('git', a, {
      cwd: path.join(__dirname, '..'),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5000,
    }).trim();
  try {
    const commit = git('rev-parse', '--short', 'HEAD');
    const dirty =
      git('status', '--porcelain', '--', 'src', 'index.js', 'binding.js', 'Cargo.toml', 'Cargo.lock') !== '';
    const addon = fs.readdirSync(path.join(__dirname, '..')).find((f) => f.endsWith('.node'));
    const addonBuilt = addon ? fs.statSync(path.join(__dirname, '..', addon)).mtime.toISOString() : undefined;
    return { commit, dirty, addonBuilt };
  } catch {
    return undefined;
  }
}

/** redis-benchmark GET/SET at the workload's value size: the floor no client can beat. */
function redisBenchmark(server, { concurrency, valueBytes }) {
  const requests = concurrency === 1 ? 20_000 : 100_000;
  const args = [
    '-h',
    server.host,
    '-p',
    String(server.port),
    '--tls',
    '--cacert',
    server.caFile,
    '--dbnum',
    '1',
    '-c',
    String(concurrency),
    '-n',
    String(requests),
    '-d',
    String(valueBytes),
    '-t',
    'set,get',
    '--csv',
  ];
  return new Promise((resolve) => {
    execFile('redis-benchmark', args, { timeout: 120_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      const rows = {};
      for (const line of stdout.split('\n')) {
        const cells = line.split(',').map((s) => s.replace(/^"|"$/g, ''));
        if (cells.length >= 5 && (cells[0] === 'SET' || cells[0] === 'GET')) {
          rows[cells[0].toLowerCase()] = {
            opsPerSec: Number(cells[1]),
            p50Ms: Number(cells[4]),
            p99Ms: Number(cells[6]),
          };
        }
      }
      if (!rows.get || !rows.set) {
        resolve({ error: `redis-benchmark failed: ${error ? error.message : ''} ${stderr.trim()}`.slice(0, 400) });
      } else {
        resolve({ command: `redis-benchmark ${args.join(' ').replace(server.caFile, '<ca.crt>')}`, ...rows });
      }
    });
  });
}

const fmtInt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');
const fmtMs = (n) => (Number.isFinite(n) ? (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)) : '–');
const fmtRatio = (n) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : '–');

function cellOf(results, peer, op, c) {
  return results.find((r) => r.peer === peer && r.op === op && r.concurrency === c);
}

/** The performance goals, judged on this run: ratios computed within it. */
function judgeGoals(results, ops) {
  const goals = [];
  const ours = (op, c) => cellOf(results, 'ours', op, c);
  const peer = (name, op, c) => cellOf(results, name, op, c);
  const cpu = (op, factor) => {
    const a = ours(op, 64)?.cpuPerOp;
    const b = peer(BASELINE, op, 64)?.cpuPerOp;
    if (!a?.redisUs || !b?.redisUs) return;
    const ratio = a.totalUs / b.totalUs;
    goals.push({
      goal: `${op} c=64: ours CPU per op ≤ ${factor}× ${PEER_LABEL[BASELINE]} (client + redis-server)`,
      measured: `${fmtUs(a.totalUs)} vs ${fmtUs(b.totalUs)} µs = ${fmtRatio(ratio)}`,
      met: ratio <= factor,
    });
  };
  const throughput = (op, c, name, factor) => {
    const a = ours(op, c);
    const b = peer(name, op, c);
    if (!a || !b) return;
    const ratio = a.opsPerSec / b.opsPerSec;
    goals.push({
      goal: `${op} c=${c}: ours ≥ ${factor}× ${PEER_LABEL[name]} ops/s`,
      measured: `${fmtInt(a.opsPerSec)} vs ${fmtInt(b.opsPerSec)} = ${fmtRatio(ratio)}`,
      met: ratio >= factor,
    });
  };
  const latency = (op) => {
    const a = ours(op, 1);
    const b = peer(BASELINE, op, 1);
    if (!a || !b) return;
    goals.push({
      goal: `${op} c=1: ours p50 ≤ ${PEER_LABEL[BASELINE]} p50`,
      measured: `${fmtMs(a.p50Ms)} ms vs ${fmtMs(b.p50Ms)} ms`,
      met: a.p50Ms <= b.p50Ms,
    });
  };
  cpu('get', 0.5);
  cpu('listByUser', 0.5);
  cpu('set', 0.7);
  for (const op of ops) {
    throughput(op, 64, BASELINE, 2);
    throughput(op, 64, 'glide', 1.2);
  }
  for (const op of ops) latency(op);
  return goals;
}

const fmtUs = (n) => (Number.isFinite(n) ? (n >= 1000 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1)) : '–');

/** CPU per op, one row per cell: JS thread, Node helpers, native threads, redis-server, total. */
function cpuRows(results, args) {
  const rows = [];
  for (const op of args.ops) {
    for (const c of args.concurrency) {
      const base = cellOf(results, BASELINE, op, c)?.cpuPerOp;
      for (const peer of args.peers) {
        const cpu = cellOf(results, peer, op, c)?.cpuPerOp;
        if (!cpu) continue;
        rows.push([
          OP_LABEL[op],
          String(c),
          PEER_LABEL[peer],
          fmtUs(cpu.jsUs),
          fmtUs(cpu.helpersUs),
          fmtUs(cpu.nativeUs),
          fmtUs(cpu.redisUs),
          fmtUs(cpu.totalUs),
          base?.totalUs ? fmtRatio(cpu.totalUs / base.totalUs) : '',
        ]);
      }
    }
  }
  return rows;
}

const CPU_HEADER = [
  'op',
  'c',
  'peer',
  'JS thread µs',
  'Node helpers µs',
  'native threads µs',
  'redis-server µs',
  'total µs',
  `÷ ${PEER_LABEL[BASELINE]}`,
];

function tableRows(results, args, rb) {
  const rows = [];
  for (const op of args.ops) {
    for (const c of args.concurrency) {
      const ours = cellOf(results, 'ours', op, c);
      for (const peer of args.peers) {
        const r = cellOf(results, peer, op, c);
        if (!r) continue;
        const floor = rb?.[c]?.[op];
        rows.push([
          OP_LABEL[op],
          String(c),
          PEER_LABEL[peer],
          fmtInt(r.opsPerSec),
          fmtMs(r.p50Ms),
          fmtMs(r.p99Ms),
          fmtMs(r.p999Ms),
          peer === 'ours' || !ours ? '' : fmtRatio(ours.opsPerSec / r.opsPerSec),
          floor?.opsPerSec ? `${Math.round((100 * r.opsPerSec) / floor.opsPerSec)}%` : '',
        ]);
      }
      const floor = rb?.[c]?.[op];
      if (floor?.opsPerSec) {
        rows.push([
          OP_LABEL[op],
          String(c),
          'redis-benchmark',
          fmtInt(floor.opsPerSec),
          fmtMs(floor.p50Ms),
          fmtMs(floor.p99Ms),
          '',
          '',
          '100%',
        ]);
      }
    }
  }
  return rows;
}

const HEADER = [
  'op',
  'c',
  'peer',
  'ops/s',
  'p50 ms',
  'p99 ms',
  'p99.9 ms',
  'ours ÷ peer (ops/s)',
  'of redis-benchmark',
];

function consoleTable(rows, header = HEADER) {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const right = new Set([1, 3, 4, 5, 6, 7, 8]);
  const line = (r) => r.map((v, i) => (right.has(i) ? v.padStart(widths[i]) : v.padEnd(widths[i]))).join('  ');
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('  ')];
  let last = '';
  for (const r of rows) {
    const group = r[0] + r[1];
    if (last && group !== last) out.push('');
    last = group;
    out.push(line(r));
  }
  return out.join('\n');
}

/** How much CPU other processes took during the cells (cores, of 2). */
function noiseOf(results) {
  const others = results.filter((r) => r.cpuCores).map((r) => r.cpuCores.others);
  if (others.length === 0) return { known: false };
  const noisy = results
    .filter((r) => r.cpuCores && r.cpuCores.others > NOISY_CORES)
    .map((r) => `${r.op} c=${r.concurrency} ${r.peer} (${r.cpuCores.others})`);
  return {
    known: true,
    meanOtherCores: Math.round((others.reduce((a, b) => a + b, 0) / others.length) * 100) / 100,
    maxOtherCores: Math.max(...others),
    noisyCells: noisy,
  };
}

/**
 * How this host's memmove copies 16 KiB 64 KiB + 5 bytes past its source, as rustls's record
 * copies can land, against 64 KiB past (bench/copy-alignment.js): a trait of the machine that
 * moves every peer's CPU. Run in a process of its own, so that its buffer stays out of the
 * bench's RSS; a failure is reported, never the end of the bench.
 */
function measureCopyAlignment() {
  try {
    const out = execFileSync(process.execPath, [path.join(__dirname, 'copy-alignment.js'), '--json'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    const { libc, bytes, micros, ratio } = JSON.parse(out.trim().split('\n').pop() ?? '');
    if (!Number.isFinite(ratio)) throw new Error(`no ratio in ${JSON.stringify(out.slice(0, 200))}`);
    return { libc, copy: { bytes, micros, ratio } };
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    console.error(`bench: bench/copy-alignment.js failed (${message}); its figures are left out`);
    return { libc: 'unknown C library', copy: { error: message } };
  }
}

/** The markdown sentence on bench/copy-alignment.js's figures. */
function copyAlignmentSentence(/** @type {any} */ c) {
  if (!c || !Number.isFinite(c.ratio))
    return 'The memmove check of `node bench/copy-alignment.js` failed: its figures are left out.';
  return (
    `A 16 KiB memmove 64 KiB + 5 bytes past its source took ${c.ratio.toFixed(1)}× the time of one 64 KiB past ` +
    `(${c.micros.fivePast} against ${c.micros.aligned} µs; 64 KiB + 69: ${c.micros.sixtyNinePast} µs; \`node bench/copy-alignment.js\`).`
  );
}

function markdown(report, rows, cpu) {
  const md = [];
  const e = report.environment;
  md.push(`Command: \`${report.command}\``);
  md.push('');
  md.push(
    `${e.cpus}× ${e.cpuModel}, ${e.platform}, Node ${e.node}, ${e.libc}` +
      (e.glibcTunables ? ` with GLIBC_TUNABLES=${e.glibcTunables}` : '') +
      `, redis-server ${e.redisVersion} (TLS 1.3 with AES-GCM only, as Azure serves it; loopback, same machine)` +
      (e.git
        ? `, commit ${e.git.commit}${e.git.dirty ? ' + local changes' : ''} (addon built ${e.git.addonBuilt})`
        : '') +
      '; ' +
      `load average ${e.loadBefore.map((x) => x.toFixed(2)).join(' ')} before, ${e.loadAfter.map((x) => x.toFixed(2)).join(' ')} after. ` +
      `${report.workload.conversations} conversations of ~${report.workload.averageBytes} B JSON over ${report.workload.users} users; ` +
      `closed-loop workers, ${report.settings.warmupSeconds} s warm-up + ${report.settings.seconds} s per cell; every result checked (${report.checks.failures} failures). ` +
      (report.noise.known
        ? `Other processes used ${report.noise.meanOtherCores} cores on average during the cells (max ${report.noise.maxOtherCores})` +
          (report.noise.noisyCells.length
            ? `; noisy cells (> ${NOISY_CORES}): ${report.noise.noisyCells.join(', ')}.`
            : '.')
        : '') +
      (report.noise.known ? ' ' : '') +
      copyAlignmentSentence(e.copyAlignment),
  );
  md.push('');
  md.push(`| ${HEADER.join(' | ')} |`);
  md.push(`|${HEADER.map((_, i) => (i < 3 ? '---' : '---:')).join('|')}|`);
  for (const r of rows) md.push(`| ${r.join(' | ')} |`);
  md.push('');
  md.push(
    '`delete (+re-set)`: the latency is the delete alone; each worker then puts the conversation back, so its ops/s counts delete + set pairs.',
  );
  md.push('');
  md.push(
    "CPU per operation in the same cells (µs): the bench process's JavaScript thread, Node's helper threads (V8's GC and compiler workers, libuv's pool), its other (native: tokio's, GLIDE's) threads, and redis-server, from `process.cpuUsage`, `/proc/self/task/*/stat` and `INFO cpu`. The bench's own per-op checks are included, equally for every peer; all peers share one process, so an idle peer's threads count (near zero) in another's native column.",
  );
  md.push('');
  md.push(`| ${CPU_HEADER.join(' | ')} |`);
  md.push(`|${CPU_HEADER.map((_, i) => (i < 3 ? '---' : '---:')).join('|')}|`);
  for (const r of cpu) md.push(`| ${r.join(' | ')} |`);
  if (report.goals.length) {
    md.push('');
    md.push('| goal | measured | met |');
    md.push('|---|---|:---:|');
    for (const g of report.goals) md.push(`| ${g.goal} | ${g.measured} | ${g.met ? 'yes' : '**no**'} |`);
  }
  md.push('');
  md.push(
    `RSS of the bench process: ${report.rss.startMb} MB at start, ${report.rss.afterLoadMb} MB after loading, ${report.rss.endMb} MB at the end (all peers in one process).`,
  );
  return `${md.join('\n')}\n`;
}

/** Subscribes to every event of the store's TracingChannel and counts them, as a cheap APM agent would. */
function countTraceEvents() {
  const counted = { events: 0 };
  const count = () => {
    counted.events += 1;
  };
  require('node:diagnostics_channel')
    .tracingChannel('redis-store:call')
    .subscribe({ start: count, end: count, asyncStart: count, asyncEnd: count, error: count });
  return counted;
}

async function main() {
  const args = parseCommandLine();
  const command = `node bench/run.js ${process.argv.slice(2).join(' ')}`.trim();
  const cells = args.ops.length * args.concurrency.length * args.peers.length;
  // Everything stops by itself: a hard deadline well beyond the planned time.
  const budgetMs =
    (cells * (1 + args.retries) * (args.warmup + args.seconds + 15) + args.quietWaitSeconds + 300) * 1000;
  setTimeout(() => {
    console.error(`bench: over its time budget (${Math.round(budgetMs / 1000)} s); giving up`);
    process.exit(2);
  }, budgetMs).unref();
  process.once('SIGINT', () => process.exit(130)); // runs the harness' exit hook: no orphan redis-server

  if (args.traceSubscriber) {
    const counted = countTraceEvents();
    process.once('exit', () => console.log(`bench: the trace subscriber counted ${counted.events} events`));
  }

  const git = gitState(); // at the start: the addon and index.js are loaded from this tree now
  const { libc, copy: copyAlignment } = measureCopyAlignment();
  const loadBefore = os.loadavg();
  const rssStart = process.memoryUsage().rss;
  console.log(
    `bench: ${cells} cells × (${args.warmup} s warm-up + ${args.seconds} s); load average ${loadBefore.map((x) => x.toFixed(2)).join(' ')}`,
  );

  const { server, admin, redis, stop } = await startServer();
  const redisVersion = (await admin.info('server')).match(/redis_version:(\S+)/)[1];
  const data = makeWorkload();
  console.log(
    `bench: redis-server ${redisVersion} TLS 1.3 (AES-GCM only, as Azure) on ${server.host}:${server.port}; ${data.conversations.length} conversations, ~${data.averageBytes} B JSON each`,
  );

  const peers = {};
  for (const name of args.peers) peers[name] = await require(`./peers/${name}`).create(server);
  const expected = new Map();
  await load(peers.ours || peers[args.peers[0]], data, expected);
  const loadProblems = await verifyState(admin, data, expected);
  if (loadProblems.length) throw new Error(`loading failed:\n  ${loadProblems.join('\n  ')}`);
  gc();
  const rssAfterLoad = process.memoryUsage().rss;

  const results = [];
  let failures = 0;
  let keyBase = 0;
  let cellIndex = 0;
  let quietWaitedMs = 0;
  for (const op of args.ops) {
    for (const c of args.concurrency) {
      // Rotate the order of peers from cell to cell, so none always runs first or last.
      const order = args.peers.map((_, i) => args.peers[(i + cellIndex) % args.peers.length]);
      cellIndex++;
      for (const name of order) {
        let r;
        for (let attempt = 0; ; attempt++) {
          gc();
          const quietBudgetMs = Math.max(0, args.quietWaitSeconds * 1000 - quietWaitedMs);
          const wait = await waitForQuiet({ redisPid: redis.pid, maxMs: Math.min(quietBudgetMs, 120_000) });
          quietWaitedMs += wait.waitedMs;
          const ctx = { peer: peers[name], data, admin, expected, checkEvery: 8 };
          r = await runCell({
            op,
            concurrency: c,
            warmupMs: args.warmup * 1000,
            measureMs: args.seconds * 1000,
            ctx,
            keyBase,
            redisPid: redis.pid,
          });
          keyBase += r.keysUsed;
          await checkStateAfterCell(r, ctx);
          r.attempts = attempt + 1;
          const noisy = r.cpuCores && r.cpuCores.others > NOISY_CORES;
          if (!noisy || r.failures || attempt >= args.retries || quietWaitedMs >= args.quietWaitSeconds * 1000) break;
          console.log(
            `  (${OP_LABEL[op]} c=${c} ${PEER_LABEL[name]}: other processes used ${r.cpuCores.others} cores; running the cell again)`,
          );
        }
        r.peer = name;
        r.rssMb = mb(process.memoryUsage().rss);
        results.push(r);
        failures += r.failures;
        console.log(
          `  ${OP_LABEL[op].padEnd(16)} c=${String(c).padEnd(3)} ${PEER_LABEL[name].padEnd(12)} ${fmtInt(r.opsPerSec).padStart(7)} ops/s` +
            `  p50 ${fmtMs(r.p50Ms)}  p99 ${fmtMs(r.p99Ms)}  p99.9 ${fmtMs(r.p999Ms)} ms` +
            (r.cpuCores
              ? `  cores: node ${r.cpuCores.node.toFixed(2)} redis ${r.cpuCores.redis.toFixed(2)} others ${r.cpuCores.others.toFixed(2)}`
              : '') +
            (r.cpuPerOp
              ? `  µs/op: js ${fmtUs(r.cpuPerOp.jsUs)} helpers ${fmtUs(r.cpuPerOp.helpersUs)} native ${fmtUs(r.cpuPerOp.nativeUs)} redis ${fmtUs(r.cpuPerOp.redisUs)} total ${fmtUs(r.cpuPerOp.totalUs)}`
              : '') +
            (r.failures ? `  FAILURES ${r.failures}: ${r.failureSamples[0]}` : ''),
        );
      }
    }
  }

  const rb = {};
  if (args.redisBenchmark) {
    for (const c of args.concurrency) {
      const quietBudgetMs = Math.max(0, args.quietWaitSeconds * 1000 - quietWaitedMs);
      quietWaitedMs += (await waitForQuiet({ redisPid: redis.pid, maxMs: Math.min(quietBudgetMs, 60_000) })).waitedMs;
      rb[c] = await redisBenchmark(server, { concurrency: c, valueBytes: data.averageBytes });
      const r = rb[c];
      console.log(
        r.error
          ? `  redis-benchmark c=${c}: ${r.error}`
          : `  redis-benchmark c=${c}: GET ${fmtInt(r.get.opsPerSec)}/s, SET ${fmtInt(r.set.opsPerSec)}/s`,
      );
    }
  }

  for (const name of Object.keys(peers)) await peers[name].close();
  await stop();
  gc();
  const rssEnd = process.memoryUsage().rss;
  const loadAfter = os.loadavg();

  const report = {
    command,
    date: new Date().toISOString(),
    environment: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0] ? os.cpus()[0].model.trim() : 'unknown',
      platform: `${os.platform()} ${os.release()}`,
      node: process.versions.node,
      libc,
      glibcTunables: process.env.GLIBC_TUNABLES ?? null,
      copyAlignment,
      redisVersion,
      git,
      loadBefore,
      loadAfter,
    },
    settings: {
      quietWaitSeconds: args.quietWaitSeconds,
      retries: args.retries,
      seconds: args.seconds,
      warmupSeconds: args.warmup,
      concurrency: args.concurrency,
      ops: args.ops,
      peers: args.peers,
    },
    workload: {
      conversations: data.conversations.length,
      users: data.userIds.length,
      messagesPerConversation: 20,
      averageBytes: data.averageBytes,
    },
    rss: { startMb: mb(rssStart), afterLoadMb: mb(rssAfterLoad), endMb: mb(rssEnd) },
    checks: { failures },
    noise: {
      ...noiseOf(results),
      waitedForQuietSeconds: Math.round(quietWaitedMs / 1000),
      reruns: results.reduce((a, r) => a + r.attempts - 1, 0),
    },
    redisBenchmark: rb,
    results,
    goals: judgeGoals(results, args.ops),
  };
  const rows = tableRows(results, args, rb);
  const cpu = cpuRows(results, args);

  console.log('');
  console.log(consoleTable(rows));
  console.log('');
  console.log(consoleTable(cpu, CPU_HEADER));
  console.log('');
  for (const g of report.goals) console.log(`${g.met ? 'MET   ' : 'NOT MET'}  ${g.goal}: ${g.measured}`);
  if (report.noise.known) {
    console.log(
      `noise: other processes used ${report.noise.meanOtherCores} cores on average during the cells, max ${report.noise.maxOtherCores}; waited ${report.noise.waitedForQuietSeconds} s for quiet, ${report.noise.reruns} cells rerun`,
    );
    if (report.noise.noisyCells.length)
      console.log(
        `WARNING: noisy cells (others > ${NOISY_CORES} cores): ${report.noise.noisyCells.join(', ')} — rerun on a quiet machine`,
      );
  }
  console.log(
    `RSS: ${report.rss.startMb} MB at start, ${report.rss.afterLoadMb} MB after load, ${report.rss.endMb} MB at end; load average after ${loadAfter.map((x) => x.toFixed(2)).join(' ')}`,
  );

  if (args.write) {
    const dir = path.join(__dirname, 'results');
    fs.mkdirSync(dir, { recursive: true });
    const base = path.join(dir, args.out);
    fs.writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
    fs.writeFileSync(`${base}.md`, markdown(report, rows, cpu));
    fs.writeFileSync(`${base}.svg`, renderSvg(report, { opLabel: OP_LABEL, peerLabel: PEER_LABEL }));
    console.log(`wrote ${path.relative(process.cwd(), base)}.{json,md,svg}`);
  }

  if (failures > 0) {
    console.error(`\nbench: ${failures} CHECK FAILURES — these numbers are not valid:`);
    for (const r of results.filter((x) => x.failures))
      console.error(`  ${r.op} c=${r.concurrency} ${r.peer}: ${r.failures}: ${r.failureSamples.join(' | ')}`);
    process.exit(1);
  }
  process.exit(0);
}

main().catch((error) => {
  console.error(error?.stack ? error.stack : error);
  process.exit(1);
});
