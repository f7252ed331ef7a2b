// @ts-check
'use strict';
// Every call of both stores on the `redis-store:call` tracing channel.

const diagnosticsChannel = require('node:diagnostics_channel');
const { toStoreError } = require('./errors.js');

/** @typedef {import('../index').StoreCallContext} StoreCallContext */

/** Every call of both stores, for APM and OpenTelemetry (docs/DESIGN.md "Observability"). */
const STORE_CALL_CHANNEL = 'redis-store:call';
const callChannel = diagnosticsChannel.tracingChannel(STORE_CALL_CHANNEL);
const callChannels = [
  callChannel.start,
  callChannel.end,
  callChannel.asyncStart,
  callChannel.asyncEnd,
  callChannel.error,
];

/**
 * Whether anyone listens on `redis-store:call`. `TracingChannel.hasSubscribers` exists from
 * Node 20.13 on only; before, it is undefined, and so each of the five channels is asked.
 * A channel's `hasSubscribers` also counts a store bound with `bindStore`.
 */
function traced() {
  return callChannels.some((channel) => channel.hasSubscribers);
}

/**
 * `tracingChannel.tracePromise`'s events for one call, but never with `context.result`: what
 * `get` and `listByUser` resolve is the conversations' content. One context travels from
 * start to asyncEnd; on failure `context.error` is the StoreError.
 * @template T
 * @param {StoreCallContext} context
 * @param {() => Promise<T>} run
 * @returns {Promise<T>}
 */
function traceCall(context, run) {
  const { start, end, asyncStart, asyncEnd, error } = callChannel;
  return start.runStores(context, () => {
    try {
      return run().then(
        (value) => {
          asyncStart.publish(context);
          asyncEnd.publish(context);
          return value;
        },
        (failure) => {
          // Every rejection of #get, #set, #delete and #listByUser is a StoreError already.
          context.error = toStoreError(failure, 'STORE_UNAVAILABLE');
          error.publish(context);
          asyncStart.publish(context);
          asyncEnd.publish(context);
          throw context.error;
        },
      );
    } catch (failure) {
      context.error = toStoreError(failure, 'STORE_INVALID_ARGUMENT');
      error.publish(context);
      throw context.error;
    } finally {
      end.publish(context);
    }
  });
}

module.exports = { STORE_CALL_CHANNEL, traced, traceCall };
