// What metrics.ts and otel.ts share about subscribing to the `redis-store:call` channel.

/**
 * `handler`, made safe for a channel: Node turns a subscriber's throw into an uncaught
 * exception, which would stop the server. A failure becomes a process warning instead.
 */
export function guarded<A extends unknown[]>(handler: (...args: A) => void): (...args: A) => void {
  return (...args) => {
    try {
      handler(...args);
    } catch (error) {
      process.emitWarning(
        `redis-store:call subscriber failed: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  };
}
