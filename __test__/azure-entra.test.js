'use strict';
// Microsoft Entra ID through the harness's emulator (support/entra-emulator.js), standalone and
// on a TLS cluster: tokens of a few seconds rotate under load with no failed or hung call and
// `status` always `ready`; live connections are re-authenticated, not replaced; a token that
// expires unrefreshed gets its connections closed and the store back once the provider answers
// again; and no token shows in a log line, an error message or `stats()`.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { once } = require('node:events');

const { RedisConversationStore, entraIdCredentials } = require('..');
const { makeCerts, stopAll } = require('../support/redis');
const { stopAllClusters } = require('../support/cluster');
const { createTokenIssuer, startEntraRedis, startEntraCluster } = require('../support/entra-emulator');
const { makeConversation, persisted } = require('../support/conversations');
const {
  recordingLogger,
  startLoad,
  stopAllLoads,
  untilAcknowledged,
  stopAndVerify,
  waitForStatus,
  timed,
} = require('../support/observe');

const LIFETIME_MS = 3000; // refreshAfterTimestamp at half of it
const ROTATIONS = 10;
const COMMAND_TIMEOUT_MS = 1500;
const SETTLE_CEILING_MS = COMMAND_TIMEOUT_MS + 1500; // a hang ceiling, not a speed claim
const ROTATIONS_CEILING_MS = ROTATIONS * LIFETIME_MS * 3;
const RECOVERY_CEILING_MS = 30_000;

afterEach(stopAllLoads);
after(async () => {
  await stopAllClusters();
  await stopAll();
});

/** Every store of a test, its log, and what it rejected with, for the leak check at the end. */
function openStore(t, rig, credentials, options = {}) {
  const log = recordingLogger();
  const store = new RedisConversationStore(rig.url, {
    tls: { ca: rig.certs.caPem },
    credentials,
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    connectTimeoutMs: 3000,
    healthCheckIntervalMs: 500,
    logger: log.logger,
    ...options,
  });
  t.after(() => store.close());
  return { store, log };
}

/** Polls `store.status` every 20 ms until stopped: every status other than ready, once each. */
function watchStatus(store) {
  const seen = new Set();
  const timer = setInterval(() => {
    if (store.status !== 'ready') seen.add(store.status);
  }, 20);
  return () => {
    clearInterval(timer);
    return [...seen];
  };
}

/** No token issued in this run appears in the store's log lines, the messages given, or `stats()`. */
function assertNoTokenShown(issuer, store, log, messages = []) {
  for (const line of log.lines) assert.ok(!issuer.leaks(line), `a token in the log line: ${line.slice(0, 80)}…`);
  for (const message of messages) assert.ok(!issuer.leaks(message), 'a token in an error message');
  if (typeof store.stats === 'function') assert.ok(!issuer.leaks(JSON.stringify(store.stats())), 'a token in stats()');
}

/**
 * `promise`, or a failure after `ms`. The ceiling's timer also keeps the event loop alive while
 * only the emulator's (unreferenced) timers and sockets are pending.
 */
async function withCeiling(promise, ms, what) {
  let timer;
  const ceiling = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, ceiling]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once every emulator has re-authenticated `count` more live connections. */
async function untilReauthenticated(emulators, count) {
  const targets = emulators.map((e) => e.stats.reauths + count);
  const deadline = Date.now() + ROTATIONS_CEILING_MS;
  while (emulators.some((e, i) => e.stats.reauths < targets[i])) {
    if (Date.now() > deadline) {
      const seen = emulators.map((e, i) => `:${e.port} ${e.stats.reauths - targets[i] + count}`).join(', ');
      assert.fail(`fewer than ${count} re-AUTHs on live connections within ${ROTATIONS_CEILING_MS} ms: ${seen}`);
    }
    await withCeiling(Promise.race(emulators.map((e) => once(e.events, 'auth'))), ROTATIONS_CEILING_MS, 'an AUTH');
  }
}

/** One behaviour set, run standalone and on the cluster. */
function defineEntraSuite(name, startRig, storeOptions) {
  describe(name, () => {
    let rig;
    before(async () => {
      rig = await startRig();
      rig.certs = await makeCerts();
    });
    after(() => rig?.stop());

    const emulators = () => rig.emulators ?? [rig.emulator];

    for (const provider of ['entraIdCredentials', 'credentials callback']) {
      it(`${provider}: ${ROTATIONS}+ rotations under load, no failed or hung call, always ready, live connections re-authenticated`, async (t) => {
        const credential = rig.issuer.credential({ lifetimeMs: LIFETIME_MS });
        const credentials =
          provider === 'entraIdCredentials'
            ? entraIdCredentials(credential)
            : async () => {
                const { token, expiresOnTimestamp } = await credential.getToken('https://redis.azure.com/.default');
                return { username: rig.issuer.oid, password: token, expiresAt: expiresOnTimestamp };
              };
        const { store, log } = openStore(t, rig, credentials, storeOptions);
        await store.ready();
        const load = startLoad(store, { idPrefix: `entra-${provider.split(' ')[0]}`, workers: 6, noRejections: true });
        await untilAcknowledged(load, 30); // every connection the load needs is open
        const counted = emulators().map((e) => ({ ...e.stats }));
        const stopWatching = watchStatus(store);

        await untilReauthenticated(emulators(), ROTATIONS);
        await untilAcknowledged(load, 30);

        const notReady = stopWatching();
        await stopAndVerify(load, { settleCeilingMs: SETTLE_CEILING_MS, noRejections: true });
        assert.deepEqual(notReady, [], 'status left ready');
        for (const [i, e] of emulators().entries()) {
          assert.equal(
            e.stats.accepted,
            counted[i].accepted,
            `:${e.port}: a connection was opened, not re-authenticated`,
          );
          assert.equal(e.stats.expiredClosed, counted[i].expiredClosed, `:${e.port}: a connection outlived its token`);
          assert.equal(e.stats.refused, counted[i].refused, `:${e.port}: an AUTH was refused`);
        }
        assert.ok(credential.calls >= ROTATIONS, `the provider was asked ${credential.calls} times`);
        assertNoTokenShown(rig.issuer, store, log);
      });
    }

    for (const mode of ['same', 'hang', 'throw']) {
      it(`a provider that ${mode === 'same' ? 'returns the same token' : mode === 'hang' ? 'stops answering' : 'throws'}: its connections close at the token expiry, calls reject with STORE_UNAVAILABLE, the store comes back once the provider recovers`, async (t) => {
        const credential = rig.issuer.credential({ lifetimeMs: LIFETIME_MS });
        const { store, log } = openStore(t, rig, entraIdCredentials(credential), storeOptions);
        await store.ready();
        const early = persisted(makeConversation({ userId: `entra-${mode}` }));
        await store.set(early.externalId, early);

        // Every connection open now authenticated with a token that will not be refreshed: each is
        // closed at that token's expiry, by the emulator as Azure does, or by the store first.
        const open = emulators().flatMap((e) => [...e.connections]);
        assert.ok(open.length > 0);
        const closed = Promise.all(open.map((conn) => (conn.client.closed ? undefined : once(conn.client, 'close'))));
        credential.mode = mode;
        await withCeiling(closed, RECOVERY_CEILING_MS, 'the connections closed at their token expiry');
        if (mode === 'throw') await log.waitFor('warn', /\[STORE\]/, { timeoutMs: RECOVERY_CEILING_MS });

        // Past expiry, with no valid token: calls reject with STORE_UNAVAILABLE in time, none hangs.
        const messages = [];
        const deadline = Date.now() + RECOVERY_CEILING_MS;
        let rejected;
        while (!rejected && Date.now() < deadline) {
          const outcome = await timed(() => store.get(early.externalId));
          assert.ok(outcome.ms < SETTLE_CEILING_MS, `a call took ${Math.round(outcome.ms)} ms`);
          if (!outcome.ok) {
            rejected = outcome.error;
            messages.push(String(outcome.error.message));
          }
        }
        assert.equal(rejected?.code, 'STORE_UNAVAILABLE', 'no call rejected after the token expired');

        credential.mode = 'fresh';
        await waitForStatus(store, 'ready', RECOVERY_CEILING_MS);
        assert.deepEqual(await store.get(early.externalId), early, 'the write from before the outage');
        const late = persisted(makeConversation({ userId: `entra-${mode}` }));
        await store.set(late.externalId, late);
        assert.deepEqual(await store.get(late.externalId), late);
        assertNoTokenShown(rig.issuer, store, log, messages);
      });
    }
  });
}

defineEntraSuite('Entra ID, standalone', () => startEntraRedis({ issuer: createTokenIssuer() }), {});
defineEntraSuite('Entra ID, TLS cluster', () => startEntraCluster({ issuer: createTokenIssuer() }), { cluster: true });
