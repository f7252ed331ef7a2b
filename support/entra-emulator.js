'use strict';
// Microsoft Entra ID as Azure Managed Redis applies it, emulated on loopback in front of a REAL
// redis-server: a TLS-terminating RESP proxy that answers AUTH itself, accepts only unexpired
// tokens its issuer signed, and closes a connection when the token that connection last
// authenticated with expires. Every other command goes to the server unchanged, in order.
//
// Why a proxy and not ACL password rotation on the server: Azure closes a connection at its
// token's expiry, which no redis-server setting does; a proxy also counts AUTHs and accepted
// connections per listener, so a test can prove live connections were re-authenticated rather
// than replaced; and the server, its replies and the cluster's routing stay the real ones.

const { EventEmitter } = require('node:events');
const { randomBytes, randomUUID } = require('node:crypto');
const { SignJWT } = require('jose');

const { makeCerts, startRedis } = require('./redis');
const { startCluster, parseNodes } = require('./cluster');
const resp = require('./resp');
const { startRespProxy, PASS, PING } = require('./resp-proxy');

const HOST = '127.0.0.1';
const DEFAULT_LIFETIME_MS = 5000;
const WRONGPASS = 'WRONGPASS invalid username-password pair or user is disabled.';
const NOAUTH = 'NOAUTH Authentication required.';
const NOAUTH_HELLO =
  'NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time';

// ---------------------------------------------------------------- tokens

/**
 * Issues Entra-shaped access tokens (JWTs with `oid`, `exp`, `aud`, signed with HS256 by a key of
 * its own) and remembers them, so an emulator accepts only what it issued.
 * createTokenIssuer({ oid?, lifetimeMs? }) → { oid, issue({ oid?, lifetimeMs? }), check(user, token), credential(opts) }
 */
function createTokenIssuer({ oid = randomUUID(), lifetimeMs = DEFAULT_LIFETIME_MS } = {}) {
  const key = randomBytes(32);
  const tenant = randomUUID();
  const issued = new Map(); // token → { oid, expiresAt }
  const counts = { issued: 0 };

  async function issue({ oid: subject = oid, lifetimeMs: lifetime = lifetimeMs } = {}) {
    const issuedAt = Date.now();
    const expiresAt = issuedAt + lifetime;
    const token = await new SignJWT({ oid: subject, tid: tenant })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(`https://sts.windows.net/${tenant}/`)
      .setAudience('https://redis.azure.com')
      .setIssuedAt(Math.floor(issuedAt / 1000))
      // `exp` is in whole seconds; the emulator enforces the exact millisecond it remembers.
      .setExpirationTime(Math.ceil(expiresAt / 1000))
      .setJti(randomUUID())
      .sign(key);
    issued.set(token, { oid: subject, expiresAt });
    counts.issued++;
    return { token, oid: subject, expiresAt };
  }

  /** `{ ok: true, expiresAt }` for an unexpired token issued here to `username`, else `{ ok: false, reason }`. */
  function check(username, token) {
    const known = issued.get(token);
    if (!known) return { ok: false, reason: 'foreign' };
    if (known.oid !== username) return { ok: false, reason: 'username' };
    if (known.expiresAt <= Date.now()) return { ok: false, reason: 'expired' };
    return { ok: true, expiresAt: known.expiresAt };
  }

  /**
   * An `@azure/identity` TokenCredential over this issuer: every getToken() issues a fresh token,
   * `refreshAfterTimestamp` at `refreshRatio` of its life. `mode` makes it misbehave on purpose:
   * 'fresh' (default), 'throw' (rejects), 'hang' (never settles), 'same' (the last token again).
   */
  function credential({ lifetimeMs: lifetime = lifetimeMs, refreshRatio = 0.5 } = {}) {
    let last;
    const cred = {
      mode: 'fresh',
      calls: 0,
      async getToken(scopes) {
        cred.calls++;
        cred.lastScopes = scopes;
        if (cred.mode === 'throw') throw new Error('emulated identity endpoint failure');
        if (cred.mode === 'hang') return new Promise(() => {});
        if (cred.mode !== 'same' || !last) {
          const { token, expiresAt } = await issue({ lifetimeMs: lifetime });
          const refreshAfter = Date.now() + Math.floor(lifetime * refreshRatio);
          last = { token, expiresOnTimestamp: expiresAt, refreshAfterTimestamp: refreshAfter };
        }
        return { ...last };
      },
    };
    return cred;
  }

  return {
    oid,
    issue,
    check,
    credential,
    counts,
    /** Whether `text` contains any token issued here (for "no token in any log line"). */
    leaks(text) {
      for (const token of issued.keys()) if (String(text).includes(token)) return true;
      return false;
    },
  };
}

// ---------------------------------------------------------------- the proxy

/**
 * startEntraEmulator({ targetPort, targetHost?, certs, host?, issuer? }) → emulator
 * Listens with TLS (the harness's server certificate) on `host` and forwards to the TLS
 * redis-server at targetHost:targetPort.
 * emulator: { port, host, issuer, stats, connections, events, close() }
 * stats: accepted (connections ever), open, auths (accepted AUTH/HELLO AUTH), reauths (of those,
 * on a connection already authenticated), refused (WRONGPASS), noauth (commands refused for want
 * of AUTH), expiredClosed (connections closed at their token's expiry).
 * events: 'connection' (conn), 'auth' ({ conn, ok, reason }), 'expired' (conn).
 */
async function startEntraEmulator({ targetPort, targetHost = HOST, certs, host = HOST, issuer = createTokenIssuer() }) {
  const stats = { accepted: 0, open: 0, auths: 0, reauths: 0, refused: 0, noauth: 0, expiredClosed: 0 };
  const events = new EventEmitter();
  const proxy = await startRespProxy({
    targetPort,
    targetHost,
    certs,
    host,
    accept(conn) {
      stats.accepted++;
      stats.open++;
      Object.assign(conn, { authenticated: false, auths: 0, expiresAt: undefined, timer: undefined });
      conn.client.on('close', () => {
        clearTimeout(conn.timer);
        stats.open--;
      });
      conn.accepted = () => events.emit('connection', conn);
      return entraHandler(conn, { issuer, stats, events });
    },
  });
  return { port: proxy.port, host, issuer, stats, connections: proxy.connections, events, close: proxy.close };
}

// AUTH goes up as a PING, and the PING's reply comes down replaced by the AUTH's own answer.
function entraHandler(conn, { issuer, stats, events }) {
  const authenticate = (username, token) => {
    const verdict = issuer.check(username, token);
    events.emit('auth', { conn, ok: verdict.ok, reason: verdict.reason });
    if (!verdict.ok) {
      stats.refused++;
      return false;
    }
    stats.auths++;
    if (conn.authenticated) stats.reauths++;
    conn.auths++;
    conn.authenticated = true;
    conn.expiresAt = verdict.expiresAt;
    clearTimeout(conn.timer);
    conn.timer = setTimeout(() => {
      stats.expiredClosed++;
      events.emit('expired', conn);
      conn.closeBoth();
    }, verdict.expiresAt - Date.now());
    conn.timer.unref();
    return true;
  };

  // What goes up for one request, and what comes down in place of its reply.
  return (args, raw) => {
    const name = args[0]?.toString('latin1').toLowerCase();
    if (name === 'auth') {
      if (args.length < 2 || args.length > 3)
        return [PING, resp.error("ERR wrong number of arguments for 'auth' command")];
      const [username, token] = args.length === 3 ? [args[1], args[2]] : ['default', args[1]];
      return [PING, authenticate(String(username), String(token)) ? resp.simple('OK') : resp.error(WRONGPASS)];
    }
    if (name === 'hello') {
      const at = args.findIndex((a, i) => i >= 2 && a.toString('latin1').toLowerCase() === 'auth');
      if (at < 0) return conn.authenticated ? [raw, PASS] : [PING, resp.error(NOAUTH_HELLO)];
      if (!authenticate(String(args[at + 1]), String(args[at + 2]))) return [PING, resp.error(WRONGPASS)];
      return [resp.encodeRequest([...args.slice(0, at), ...args.slice(at + 3)]), PASS];
    }
    if (name === 'reset') {
      conn.authenticated = false;
      clearTimeout(conn.timer);
      return [raw, PASS];
    }
    if (!conn.authenticated && name !== 'quit') {
      stats.noauth++;
      return [PING, resp.error(NOAUTH)];
    }
    return [raw, PASS];
  };
}

// ---------------------------------------------------------------- standalone and cluster

/** A real TLS redis-server with an emulator in front: { server, emulator, issuer, url, stop() }. */
async function startEntraRedis({ issuer = createTokenIssuer(), certs } = {}) {
  certs ??= await makeCerts();
  const server = await startRedis({ certs });
  const emulator = await startEntraEmulator({ targetPort: server.port, certs, issuer });
  return {
    server,
    emulator,
    issuer,
    url: `rediss://${emulator.host}:${emulator.port}`,
    stats: emulator.stats,
    async stop() {
      await emulator.close();
      await server.kill();
    },
  };
}

/**
 * A TLS cluster whose every node has its own emulator in front, on the node's own address, and
 * announces the emulator's port (`cluster-announce-tls-port`), so CLUSTER SLOTS and MOVED send
 * clients through the emulators. No replicas: a replica dials its primary's announced port and
 * would have to authenticate with a token there.
 * → { cluster, emulators, issuer, url (the seed's emulator, by the name localhost), stats (summed), stop() }
 */
async function startEntraCluster({ primaries = 3, issuer = createTokenIssuer(), certs } = {}) {
  certs ??= await makeCerts();
  const cluster = await startCluster({ primaries, replicasPerPrimary: 0, certs });
  const emulators = [];
  try {
    for (const node of cluster.nodes) {
      const emulator = await startEntraEmulator({
        targetPort: node.port,
        targetHost: node.host,
        host: node.host,
        certs,
        issuer,
      });
      emulators.push(emulator);
      await node.cli('CONFIG', 'SET', 'cluster-announce-tls-port', emulator.port);
    }
    const wanted = emulators
      .map((e) => e.port)
      .sort()
      .join(',');
    await cluster.waitFor('every node to announce its emulator', async () => {
      for (const node of cluster.nodes) {
        const ports = parseNodes(await node.cli('CLUSTER', 'NODES')).map((n) => n.port);
        if (ports.sort().join(',') !== wanted) return `:${node.port} sees ${ports.join(',')}, not ${wanted}`;
      }
      return undefined;
    });
  } catch (err) {
    await Promise.all(emulators.map((e) => e.close()));
    await cluster.stop();
    throw err;
  }
  const seed = emulators[cluster.nodes.findIndex((n) => n.port === cluster.seedPort)];
  const sum = (key) => emulators.reduce((total, e) => total + e.stats[key], 0);
  return {
    cluster,
    emulators,
    issuer,
    // By name, as on Azure: the certificate names localhost, and the store reaches every node by
    // the seed's host name.
    url: `rediss://localhost:${seed.port}`,
    /** The emulators' counters, summed. */
    get stats() {
      return Object.fromEntries(Object.keys(emulators[0].stats).map((key) => [key, sum(key)]));
    },
    async stop() {
      await Promise.all(emulators.map((e) => e.close()));
      await cluster.stop();
    },
  };
}

module.exports = { createTokenIssuer, startEntraEmulator, startEntraRedis, startEntraCluster, DEFAULT_LIFETIME_MS };
