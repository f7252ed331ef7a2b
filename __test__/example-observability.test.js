'use strict';
// The example server's observability over real HTTP and real Redis: GET /metrics parses as
// Prometheus text (prom-client's own exposition, read back by a parser library) and its
// counters move with traffic; examples/express-server/src/otel.ts makes one OpenTelemetry span
// per store call, checked with the SDK's in-memory exporter.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { once } = require('node:events');
const path = require('node:path');

const { InMemoryConversationStore, RedisConversationStore } = require('..');
const { EXAMPLE_DIR, ensureExampleDeps, compileExample } = require('../examples/setup.js');
const { startRedis, stopAll } = require('../support/redis');
const { silentLogger } = require('../support/observe');
const { makeConversation } = require('../support/conversations');

const REQUEST_TIMEOUT_MS = 10_000;
const fromExample = (name) => require(require.resolve(name, { paths: [EXAMPLE_DIR] }));

let createApp;
let storeMetrics;
let traceStoreCalls;
let parsePrometheus;
let otelSdk;
let otelApi;
before(() => {
  ensureExampleDeps();
  compileExample([], { stdio: 'pipe' });
  ({ createApp } = require(path.join(EXAMPLE_DIR, 'dist', 'app.js')));
  ({ storeMetrics } = require(path.join(EXAMPLE_DIR, 'dist', 'metrics.js')));
  ({ traceStoreCalls } = require(path.join(EXAMPLE_DIR, 'dist', 'otel.js')));
  parsePrometheus = fromExample('parse-prometheus-text-format');
  otelSdk = fromExample('@opentelemetry/sdk-trace-base');
  otelApi = fromExample('@opentelemetry/api');
});
after(stopAll);

/** The app with /metrics on a free port; `scrape()` resolves the parsed families by name. */
async function serveMetrics(store, { metricsToken } = {}) {
  const metrics = storeMetrics(store);
  const server = createApp(store, {
    redisConfigured: true,
    auth: { secret: Buffer.alloc(32, 1) },
    metrics,
    metricsToken,
  }).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${server.address().port}`;
  /** GET /metrics with these headers. */
  const get = (headers = {}) => fetch(`${base}/metrics`, { headers, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  async function scrape(headers = metricsToken === undefined ? {} : { authorization: `Bearer ${metricsToken}` }) {
    const res = await get(headers);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
    const families = parsePrometheus(await res.text());
    return new Map(families.map((family) => [family.name, family]));
  }
  async function close() {
    metrics.stop();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  return { scrape, close, metrics, get };
}

/** The value of the sample of `family` whose labels include `labels`, as a number (0 when absent). */
function sample(families, name, labels = {}) {
  const family = families.get(name);
  assert.ok(family, `no metric ${name}`);
  const found = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return found === undefined ? 0 : Number(found.value ?? found.count);
}

describe('GET /metrics', () => {
  it('parses as Prometheus text, and its counters move with traffic', async () => {
    const redis = await startRedis();
    const store = new RedisConversationStore(redis.url, { tls: { ca: redis.caPem }, logger: silentLogger });
    await store.ready();
    const app = await serveMetrics(store);
    try {
      const before = await app.scrape();
      for (const name of [
        'redis_store_calls_total',
        'redis_store_errors_total',
        'redis_store_latency_percentile_seconds',
        'redis_store_call_duration_seconds',
        'redis_store_reconnects_total',
        'redis_store_status',
        'redis_store_status_since_seconds',
        'redis_store_credentials_expire_at_seconds',
        'process_cpu_seconds_total',
        'nodejs_eventloop_lag_seconds',
      ]) {
        assert.ok(before.has(name), `missing ${name}`);
      }
      assert.equal(before.get('redis_store_calls_total').type, 'COUNTER');
      assert.equal(before.get('redis_store_call_duration_seconds').type, 'HISTOGRAM');
      assert.equal(sample(before, 'redis_store_status', { status: 'ready' }), 1);
      assert.equal(sample(before, 'redis_store_status', { status: 'reconnecting' }), 0);
      assert.equal(sample(before, 'redis_store_calls_total', { operation: 'set' }), 0);
      // Credentials that never expire: the family, and no sample (not a 0, which an expiry
      // alert would read as long expired).
      assert.deepEqual(before.get('redis_store_credentials_expire_at_seconds').metrics, []);

      const conversations = Array.from({ length: 5 }, () => makeConversation({ userId: 'metrics-user' }));
      await Promise.all(conversations.map((c) => store.set(c.externalId, c)));
      await Promise.all(conversations.map((c) => store.get(c.externalId)));
      await assert.rejects(store.get(''), { code: 'STORE_INVALID_ARGUMENT' });

      const after = await app.scrape();
      assert.equal(sample(after, 'redis_store_calls_total', { operation: 'set' }), 5);
      assert.equal(sample(after, 'redis_store_calls_total', { operation: 'get' }), 6);
      assert.equal(sample(after, 'redis_store_errors_total', { operation: 'get', code: 'STORE_INVALID_ARGUMENT' }), 1);
      // The parser keeps a histogram's buckets but drops its labels: its series are read from
      // prom-client itself.
      const { values } = await app.metrics.registry.getSingleMetric('redis_store_call_duration_seconds').get();
      const setCount = values.find(
        (v) => v.metricName?.endsWith('_count') && v.labels.operation === 'set' && v.labels.code === 'ok',
      );
      assert.equal(setCount?.value, 5);
      const p50 = sample(after, 'redis_store_latency_percentile_seconds', { operation: 'set', percentile: 'p50' });
      const max = sample(after, 'redis_store_latency_percentile_seconds', { operation: 'set', percentile: 'max' });
      assert.ok(p50 > 0 && p50 <= max && max < 60, `${p50} ${max}`);
    } finally {
      await app.close();
      await store.close();
    }
  });
});

describe('GET /metrics with credentials that expire', () => {
  it('gives their expiry in seconds since the epoch', async () => {
    const password = 'metrics-test-password-0123';
    const redis = await startRedis({ password });
    const expiresAt = Date.now() + 3_600_000;
    const store = new RedisConversationStore(`rediss://127.0.0.1:${redis.port}`, {
      tls: { ca: redis.caPem },
      credentials: async () => ({ password, expiresAt }),
      logger: silentLogger,
    });
    await store.ready();
    const app = await serveMetrics(store);
    try {
      const families = await app.scrape();
      assert.equal(sample(families, 'redis_store_credentials_expire_at_seconds'), expiresAt / 1000);
      assert.equal(families.get('redis_store_credentials_expire_at_seconds').metrics.length, 1);
    } finally {
      await app.close();
      await store.close();
    }
  });
});

describe('GET /metrics with METRICS_TOKEN', () => {
  it('answers 401 without the bearer token or with another, 200 with it', async () => {
    const store = new InMemoryConversationStore();
    const token = 'scraper-token-0c1d';
    const app = await serveMetrics(store, { metricsToken: token });
    try {
      for (const headers of [
        {},
        { authorization: 'Bearer wrong' },
        { authorization: `Bearer ${token}x` },
        { authorization: token },
        { authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` },
      ]) {
        const res = await app.get(headers);
        assert.equal(res.status, 401, JSON.stringify(headers));
        assert.equal(res.headers.get('www-authenticate'), 'Bearer');
        const body = await res.text();
        assert.ok(!body.includes('redis_store_'), body);
      }
      const families = await app.scrape();
      assert.equal(sample(families, 'redis_store_status', { status: 'ready' }), 1);
    } finally {
      await app.close();
      await store.close();
    }
  });
});

describe('subscribers that throw', () => {
  it('become process warnings, not uncaught exceptions, and the call still settles', async () => {
    const throwingTracer = {
      startSpan() {
        throw new Error('exporter broke');
      },
    };
    const stop = traceStoreCalls({ tracer: throwingTracer });
    const uncaught = [];
    const onUncaught = (error) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    const warned = once(process, 'warning');
    const store = new InMemoryConversationStore();
    try {
      const c = makeConversation();
      await store.set(c.externalId, c);
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(
        uncaught.map((e) => e.message),
        [],
      );
      const [warning] = await warned;
      assert.match(warning.message, /subscriber failed: exporter broke/);
      assert.equal(store.stats().operations.set.calls, 1);
    } finally {
      process.off('uncaughtException', onUncaught);
      stop();
      await store.close();
    }
  });
});

describe('examples/express-server/src/otel.ts', () => {
  it('makes one CLIENT span per call with db.system.name redis, and the error code as status', async () => {
    const exporter = new otelSdk.InMemorySpanExporter();
    const provider = new otelSdk.BasicTracerProvider({ spanProcessors: [new otelSdk.SimpleSpanProcessor(exporter)] });
    const stop = traceStoreCalls({ tracer: provider.getTracer('test') });
    const store = new InMemoryConversationStore();
    try {
      const c = makeConversation({ userId: 'otel-user', messages: [{ text: 'private words' }] });
      await store.set(c.externalId, c);
      await store.get(c.externalId);
      await store.listByUser('otel-user');
      await assert.rejects(store.delete(''), { code: 'STORE_INVALID_ARGUMENT' });
    } finally {
      stop();
      await store.close();
    }
    const spans = exporter.getFinishedSpans();
    assert.deepEqual(
      spans.map((span) => span.name),
      ['set', 'get', 'listByUser', 'delete'],
    );
    for (const span of spans) {
      assert.equal(span.kind, otelApi.SpanKind.CLIENT);
      assert.equal(span.attributes['db.system.name'], 'redis');
      assert.equal(span.attributes['db.operation.name'], span.name);
      assert.ok(!JSON.stringify(span.attributes).includes('private words'));
    }
    const failed = spans[3];
    assert.equal(failed.status.code, otelApi.SpanStatusCode.ERROR);
    assert.equal(failed.status.message, 'STORE_INVALID_ARGUMENT');
    assert.equal(failed.attributes['error.type'], 'STORE_INVALID_ARGUMENT');
    assert.equal(spans[0].status.code, otelApi.SpanStatusCode.UNSET);
    await provider.shutdown();
  });
});
