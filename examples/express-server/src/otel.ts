// OpenTelemetry spans for every store call: subscribes to the `redis-store:call`
// TracingChannel and makes one CLIENT span per call with `@opentelemetry/api`, following the
// database semantic conventions. Wire it once at start-up, after the SDK's tracer provider:
//
//   import { traceStoreCalls } from './otel.js';
//   const stop = traceStoreCalls();
//
// The span starts in the caller's context (so it nests under the HTTP request's span) and ends
// when the call settles; a failed call carries its StoreError code as `error.type` and status.
// A handler that throws (a broken exporter) becomes a process warning, not a crash.

import { tracingChannel } from 'node:diagnostics_channel';
import { STORE_CALL_CHANNEL, type StoreCallContext } from '@copilot-chat/redis-store';
import { type Span, SpanKind, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api';
import { guarded } from './subscriber.js';

// Attribute names of the OpenTelemetry database semantic conventions.
const DB_SYSTEM_NAME = 'db.system.name';
const DB_OPERATION_NAME = 'db.operation.name';
const ERROR_TYPE = 'error.type';
const SERVER_ADDRESS = 'server.address';
const SERVER_PORT = 'server.port';

export interface StoreTracingOptions {
  /** Default: `trace.getTracer('@copilot-chat/redis-store')` of the global provider. */
  tracer?: Tracer;
  /** The Redis host and port, as `server.address` and `server.port`. */
  server?: { address: string; port?: number };
}

/** Starts making spans; returns the function that stops. */
export function traceStoreCalls({
  tracer = trace.getTracer('@copilot-chat/redis-store'),
  server,
}: StoreTracingOptions = {}): () => void {
  const spans = new WeakMap<object, Span>();
  const channel = tracingChannel<unknown, StoreCallContext>(STORE_CALL_CHANNEL);
  const handlers = {
    start: guarded((context: StoreCallContext) => {
      const attributes: Record<string, string | number> = {
        [DB_SYSTEM_NAME]: 'redis',
        [DB_OPERATION_NAME]: context.operation,
      };
      if (server !== undefined) {
        attributes[SERVER_ADDRESS] = server.address;
        if (server.port !== undefined) attributes[SERVER_PORT] = server.port;
      }
      // No id or userId: they may identify a person. The span name is the operation.
      spans.set(context, tracer.startSpan(context.operation, { kind: SpanKind.CLIENT, attributes }));
    }),
    end() {},
    asyncStart() {},
    error: guarded((context: StoreCallContext) => {
      const span = spans.get(context);
      if (span === undefined) return;
      const type = context.error?.code ?? 'Error';
      span.setAttribute(ERROR_TYPE, type);
      span.setStatus({ code: SpanStatusCode.ERROR, message: type });
    }),
    asyncEnd: guarded((context: StoreCallContext) => {
      const span = spans.get(context);
      if (span === undefined) return;
      spans.delete(context);
      span.end();
    }),
  };
  channel.subscribe(handlers);
  return () => channel.unsubscribe(handlers);
}
