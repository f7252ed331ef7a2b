'use strict';
// A TLS-terminating RESP proxy on loopback in front of a REAL redis-server, for behaviour a
// stock server does not have: each request goes up unchanged unless the proxy's `handle` says
// otherwise, and replies come down in order. The Entra ID emulator (entra-emulator.js) is one;
// `startOlderRedis` below (a server that refuses SET's GET option, as Redis before 6.2 does)
// is another.

const { once } = require('node:events');
const fs = require('node:fs');
const tls = require('node:tls');

const resp = require('./resp');

const HOST = '127.0.0.1';
const PING = resp.encodeRequest(['PING']);
const PASS = Symbol('pass'); // the server's reply goes to the client as it came

/**
 * startRespProxy({ targetPort, targetHost?, certs, host?, accept }) → { port, host, connections, close() }
 * Listens with TLS (the harness's server certificate) on `host` and forwards to the TLS
 * redis-server at targetHost:targetPort, one upstream connection per client connection.
 * accept(conn) is called for each connection (conn: { id, client, upstream, closeBoth() }) and
 * returns its handler, handle(args, raw) → [up, reply]: `up` the bytes sent to the server for
 * the request (`raw` itself, or PING when the proxy answers it), `reply` PASS or the reply sent
 * to the client in place of the server's. conn.accepted?.() runs once the connection relays.
 */
async function startRespProxy({ targetPort, targetHost = HOST, certs, host = HOST, accept }) {
  const connections = new Set();
  let accepted = 0;
  const server = tls.createServer(
    { cert: fs.readFileSync(certs.certFile), key: fs.readFileSync(certs.keyFile) },
    (client) => {
      const upstream = tls.connect({ host: targetHost, port: targetPort, ca: certs.caPem, servername: 'localhost' });
      const conn = {
        id: ++accepted,
        client,
        upstream,
        closeBoth() {
          client.destroy();
          upstream.destroy();
        },
      };
      connections.add(conn);
      client.unref();
      upstream.unref();
      client.on('error', () => {});
      upstream.on('error', () => {});
      client.on('close', () => {
        upstream.destroy();
        connections.delete(conn);
      });
      upstream.on('close', () => client.destroy());
      relay(conn, accept(conn));
      conn.accepted?.();
    },
  );
  server.on('tlsClientError', () => {});
  server.unref();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });

  return {
    port: server.address().port,
    host,
    connections,
    /** Destroys every connection and stops listening. */
    async close() {
      const sockets = [...connections].flatMap((c) => [c.client, c.upstream]).filter((s) => !s.closed);
      const closed = sockets.map((s) => once(s, 'close'));
      for (const s of sockets) s.destroy();
      await Promise.all(closed);
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

// Requests go up as `handle` says; replies come down with each request's reply replaced when
// `handle` gave one, so pipelined replies keep their order.
function relay(conn, handle) {
  const { client, upstream } = conn;
  const pending = []; // per request sent up: PASS, or the reply to send instead of the server's
  let requests = Buffer.alloc(0);
  let replies = Buffer.alloc(0);

  client.on('data', (chunk) => {
    requests = requests.length ? Buffer.concat([requests, chunk]) : chunk;
    const out = [];
    let pos = 0;
    for (;;) {
      let request;
      try {
        request = resp.parseRequest(requests, pos);
      } catch {
        conn.closeBoth(); // a protocol error: Redis too closes the connection
        return;
      }
      if (!request) break;
      if (request.args.length) {
        const [up, reply] = handle(request.args, requests.subarray(pos, request.end));
        out.push(up);
        pending.push(reply);
      }
      pos = request.end;
    }
    requests = requests.subarray(pos);
    if (out.length && !upstream.write(Buffer.concat(out))) {
      client.pause();
      upstream.once('drain', () => client.resume());
    }
  });

  upstream.on('data', (chunk) => {
    replies = replies.length ? Buffer.concat([replies, chunk]) : chunk;
    const out = [];
    let pos = 0;
    for (;;) {
      const end = resp.replyEnd(replies, pos);
      if (end < 0) break;
      if (resp.isPush(replies, pos)) out.push(replies.subarray(pos, end));
      else {
        const instead = pending.shift();
        out.push(instead === PASS || instead === undefined ? replies.subarray(pos, end) : instead);
      }
      pos = end;
    }
    replies = replies.subarray(pos);
    if (out.length && !client.write(Buffer.concat(out))) {
      upstream.pause();
      client.once('drain', () => upstream.resume());
    }
  });
  client.on('end', () => upstream.end());
}

/**
 * A server that refuses SET's GET option with "ERR syntax error", as Redis before 6.2 (Azure
 * Cache for Redis 6) does, in front of the TLS redis-server at targetPort; every other request
 * is answered by that server. `refusal` sets another error for the option (for tests that
 * some other error is not taken for that one). { port, host, connections, refused (how many
 * SET … GET it refused), close() }
 */
async function startOlderRedis({ targetPort, certs, refusal = 'ERR syntax error' }) {
  const counts = { refused: 0 };
  const proxy = await startRespProxy({
    targetPort,
    certs,
    accept: () => (args, raw) => {
      const name = args[0]?.toString('latin1').toLowerCase();
      if (name === 'set' && args.slice(3).some((a) => a.toString('latin1').toLowerCase() === 'get')) {
        counts.refused++;
        return [PING, resp.error(refusal)];
      }
      return [raw, PASS];
    },
  });
  return {
    ...proxy,
    get refused() {
      return counts.refused;
    },
  };
}

module.exports = { startRespProxy, startOlderRedis, PASS, PING };
