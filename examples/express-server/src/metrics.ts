// Prometheus metrics of the store for GET /metrics, through prom-client. Counters, gauges and
// the store's own latency percentiles are read from `store.stats()` at each scrape (the store
// counts in Rust, lock-free); the latency histogram's buckets come from the `redis-store:call`
// TracingChannel, timed here from each call's start to its asyncEnd. The channel carries every
// store of the process and its context names no store: the histogram counts the calls of all
// of them, the stats()-fed series the one store given here.

import { tracingChannel } from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import {
  type ConversationStore,
  STORE_CALL_CHANNEL,
  type StoreCallContext,
  type StoreStatus,
} from '@copilot-chat/redis-store';
import { Counter, collectDefaultMetrics, Gauge, type GaugeConfiguration, Histogram, Registry } from 'prom-client';
import { guarded } from './subscriber.js';

const STATUSES: readonly StoreStatus[] = ['connecting', 'ready', 'reconnecting', 'end'];

export interface StoreMetrics {
  /** The registry to expose (`await registry.metrics()`, `registry.contentType`). */
  registry: Registry;
  /** Unsubscribes from the channel. */
  stop(): void;
}

export interface StoreMetricsOptions {
  /** prom-client's default process metrics (CPU, memory, event loop lag). Default true. */
  defaultMetrics?: boolean;
}

/**
 * A gauge with no sample while `read()` gives undefined. prom-client's own gauge without labels
 * always has one (`reset()` sets it to 0), and an expiry alert would read that 0 as credentials
 * long expired. Its one value is what `read()` gives at each scrape: it has no labels and no
 * `collect`, and what `set()` or `inc()` would put in it is never shown.
 */
class GaugeWhenKnown extends Gauge {
  readonly #read: () => number | undefined;

  constructor(
    configuration: Omit<GaugeConfiguration<string>, 'collect' | 'labelNames'>,
    read: () => number | undefined,
  ) {
    super(configuration);
    this.#read = read;
  }

  override async get(): ReturnType<Gauge['get']> {
    const value = this.#read();
    const metric = await super.get();
    return { ...metric, values: value === undefined ? [] : [{ value, labels: {} }] };
  }
}

/** A Registry with the store's metrics (prefix `redis_store_`) and Node's default ones. */
export function storeMetrics(
  store: ConversationStore,
  { defaultMetrics = true }: StoreMetricsOptions = {},
): StoreMetrics {
  const registry = new Registry();
  if (defaultMetrics) collectDefaultMetrics({ register: registry });
  const registers = [registry];

  new Counter({
    name: 'redis_store_calls_total',
    help: 'Settled store calls, by operation.',
    labelNames: ['operation'] as const,
    registers,
    collect() {
      this.reset();
      for (const [operation, { calls }] of Object.entries(store.stats().operations)) {
        this.inc({ operation }, calls);
      }
    },
  });
  new Counter({
    name: 'redis_store_errors_total',
    help: 'Failed store calls, by operation and error code.',
    labelNames: ['operation', 'code'] as const,
    registers,
    collect() {
      this.reset();
      for (const [operation, { errors }] of Object.entries(store.stats().operations)) {
        for (const [code, count] of Object.entries(errors)) this.inc({ operation, code }, count ?? 0);
      }
    },
  });
  new Gauge({
    name: 'redis_store_latency_percentile_seconds',
    help:
      "The store's own latency since start, by operation: percentile p50, p99 or max, in seconds " +
      '(calls refused before they ran are not in it).',
    labelNames: ['operation', 'percentile'] as const,
    registers,
    collect() {
      for (const [operation, { latencyMs }] of Object.entries(store.stats().operations)) {
        this.set({ operation, percentile: 'p50' }, latencyMs.p50 / 1000);
        this.set({ operation, percentile: 'p99' }, latencyMs.p99 / 1000);
        this.set({ operation, percentile: 'max' }, latencyMs.max / 1000);
      }
    },
  });
  new Counter({
    name: 'redis_store_reconnects_total',
    help: 'Connections that replaced a lost one, and cluster clients rebuilt.',
    registers,
    collect() {
      this.reset();
      this.inc(store.stats().reconnects);
    },
  });
  new Gauge({
    name: 'redis_store_status',
    help: "1 for the store's current status, 0 for the others.",
    labelNames: ['status'] as const,
    registers,
    collect() {
      const { status } = store.stats();
      for (const each of STATUSES) this.set({ status: each }, each === status ? 1 : 0);
    },
  });
  new Gauge({
    name: 'redis_store_status_since_seconds',
    help: 'When the store entered its current status, in seconds since the Unix epoch.',
    registers,
    collect() {
      this.set(store.stats().statusSince / 1000);
    },
  });
  new GaugeWhenKnown(
    {
      name: 'redis_store_credentials_expire_at_seconds',
      help: 'When the credentials in use expire, in seconds since the Unix epoch (absent when they do not).',
      registers,
      // Over the workers of an AggregatorRegistry: the soonest expiry, not a sum of epochs.
      aggregator: 'min',
    },
    () => {
      const { credentialsExpireAt } = store.stats();
      return credentialsExpireAt === undefined ? undefined : credentialsExpireAt / 1000;
    },
  );

  const duration = new Histogram({
    name: 'redis_store_call_duration_seconds',
    help: 'Store calls from start to settlement as the caller sees them, by operation and outcome.',
    labelNames: ['operation', 'code'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  const started = new WeakMap<object, number>();
  const channel = tracingChannel<unknown, StoreCallContext>(STORE_CALL_CHANNEL);
  const handlers = {
    start: guarded((context: StoreCallContext) => {
      started.set(context, performance.now());
    }),
    end() {},
    asyncStart() {},
    asyncEnd: guarded((context: StoreCallContext) => {
      const at = started.get(context);
      if (at === undefined) return;
      started.delete(context);
      const code = context.error?.code ?? 'ok';
      duration.observe({ operation: context.operation, code }, (performance.now() - at) / 1000);
    }),
    error() {},
  };
  channel.subscribe(handlers);
  return { registry, stop: () => channel.unsubscribe(handlers) };
}
