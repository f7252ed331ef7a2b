'use strict';
// A TCP proxy in front of a redis-server that can turn into a black hole:
// a half-open connection as after a failover (no data, no FIN, no RST).

const { EventEmitter, once } = require('node:events');
const net = require('node:net');

const HOST = '127.0.0.1';

/**
 * startProxy({ targetPort, targetHost?, host? }) → { port, host, blackhole(), restore(), close(), connections, totalAccepted, events }
 * host: the loopback address it listens on (default 127.0.0.1).
 * events: 'reply' (bytes from the server, just passed on to the client) and 'request' (the
 * other way), each with the chunk's length and the chunk, emitted synchronously: a listener
 * that calls blackhole() stops everything after that chunk.
 *
 * blackhole(): every current connection goes dead for good (bytes both ways are
 * swallowed, sockets stay open, closes are not passed on); connections accepted
 * while blackholed get no upstream at all. restore(): NEW connections forward
 * again; the dead ones stay dead, as a half-open socket never recovers.
 */
async function startProxy({ targetPort, targetHost = HOST, host = HOST }) {
  const connections = new Set(); // { client, upstream, dead } with at least one side open
  let blackholed = false;
  let totalAccepted = 0;
  const events = new EventEmitter();

  const server = net.createServer((client) => {
    totalAccepted++;
    const conn = { client, upstream: null, dead: blackholed };
    connections.add(conn);
    client.unref(); // a proxy a test forgot to close must not hang the test file
    client.on('error', () => {});
    // Tracked until both sides are closed, so close() reaches a dead upstream too.
    const forget = () => {
      if (client.destroyed && (!conn.upstream || conn.upstream.destroyed)) connections.delete(conn);
    };
    client.on('close', () => {
      if (!conn.dead) conn.upstream?.destroy();
      forget();
    });
    if (conn.dead) {
      client.resume(); // read and drop
      return;
    }
    const upstream = net.connect({ port: targetPort, host: targetHost });
    conn.upstream = upstream;
    upstream.unref();
    upstream.on('error', () => {});
    upstream.on('close', () => {
      if (!conn.dead) client.destroy();
      forget();
    });
    forward(client, upstream, conn, (chunk) => events.emit('request', chunk.length, chunk));
    forward(upstream, client, conn, (chunk) => events.emit('reply', chunk.length, chunk));
  });
  server.unref();

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });

  return {
    port: server.address().port,
    host,
    connections,
    events,
    get totalAccepted() {
      return totalAccepted;
    },
    blackhole() {
      blackholed = true;
      for (const conn of connections) {
        conn.dead = true;
        // Unpause anything waiting on 'drain' so its bytes are swallowed too.
        conn.client.resume();
        conn.upstream?.resume();
      }
    },
    restore() {
      blackholed = false;
    },
    /** Destroys every connection, both sides, and resolves once all are closed and forgotten. */
    async close() {
      const sockets = [...connections].flatMap((conn) => [conn.client, conn.upstream]).filter(Boolean);
      const closed = sockets.filter((socket) => !socket.closed).map((socket) => once(socket, 'close'));
      for (const socket of sockets) socket.destroy();
      await Promise.all(closed);
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

function forward(from, to, conn, passed) {
  from.on('data', (chunk) => {
    if (conn.dead) return; // swallowed
    if (!to.write(chunk)) {
      from.pause();
      to.once('drain', () => from.resume());
    }
    passed(chunk);
  });
  // Half-close passes through while alive; a dead connection keeps silent.
  from.on('end', () => {
    if (!conn.dead) to.end();
  });
}

module.exports = { startProxy };
