'use strict';
// What the text of a conversation costs a read: client CPU (all threads of this process,
// `process.cpuUsage`) per get and per listByUser of the bench's conversations, with their
// message texts rewritten into another script. The bench's data is ASCII; real chat text is
// not, and how a JSON text reaches V8 (src/binding/text.rs) depends on what it holds.
//
//   node bench/text-cost.js [--text ascii|curly|cyrillic|cjk] [--memory] [--module DIR]
//
// `--module` measures another checkout (its built addon); `--memory` the in-memory store.
// One store per process: to compare two builds, alternate runs of each, since the machine's
// load moves a run's figures more than a change of a few percent does.

const { startRedis, stopAll } = require('../support/redis');
const { makeWorkload } = require('./workload');
const { readArgs, choiceArg } = require('./args');

const TEXTS = {
  ascii: (text) => text,
  // Mostly ASCII with a few characters past U+00FF, as an agent's replies often are.
  curly: (text) => `${text.replace(/ the /g, ' the’ ')} 🎉`,
  // Every letter past U+00FF: two UTF-8 bytes (Cyrillic) or three (CJK) a character.
  cyrillic: (text) => text.replace(/[a-z]/g, (c) => String.fromCharCode(0x430 + c.charCodeAt(0) - 97)),
  cjk: (text) => text.replace(/[a-z]/g, (c) => String.fromCharCode(0x65e5 + c.charCodeAt(0) - 97)),
};
const ROUNDS = 4;
const IN_FLIGHT = { get: 16, listByUser: 8 };

/** Client CPU per call of `call(i)` over `count` calls, `inFlight` at a time, in µs. */
async function cpuPerCall(count, inFlight, call) {
  let next = 0;
  const start = process.cpuUsage();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) await call(next++);
    }),
  );
  const used = process.cpuUsage(start);
  return (used.user + used.system) / count;
}

async function main() {
  const args = readArgs(
    {
      text: { type: 'string', default: 'ascii' },
      memory: { type: 'boolean', default: false },
      module: { type: 'string', default: '..' },
    },
    'usage: node bench/text-cost.js [--text ascii|curly|cyrillic|cjk] [--memory] [--module DIR]',
  );
  const textName = choiceArg(args, 'text', Object.keys(TEXTS));
  const rewrite = TEXTS[textName];
  const memory = args.memory === true;
  const modulePath = /** @type {string} */ (args.module);
  const label = modulePath === '..' ? 'this checkout' : modulePath;
  const { RedisConversationStore, InMemoryConversationStore } = require(modulePath);

  const data = makeWorkload({ conversations: 2000, users: 40 });
  const conversations = data.conversations.map(({ id, conversation }) => {
    const copy = structuredClone(conversation);
    for (const message of copy.history) if (message.text) message.text = rewrite(message.text);
    return { id, conversation: copy };
  });
  const server = memory ? undefined : await startRedis();
  const silent = { info() {}, warn() {}, error() {} };
  const store = memory
    ? new InMemoryConversationStore()
    : new RedisConversationStore(server.url, { tls: { ca: server.caPem }, logger: silent });
  try {
    if (!memory) await store.ready();
    await Promise.all(conversations.map(({ id, conversation }) => store.set(id, conversation)));
    const bytes = conversations.reduce((sum, c) => sum + Buffer.byteLength(JSON.stringify(c.conversation)), 0);
    const perUser = conversations.length / data.userIds.length;
    const figures = { get: [], listByUser: [] };
    for (let round = 0; round < ROUNDS; round++) {
      figures.get.push(
        await cpuPerCall(6000, IN_FLIGHT.get, async (i) => {
          const { id } = conversations[i % conversations.length];
          if ((await store.get(id))?.externalId !== id) throw new Error(`get ${id}: wrong or missing`);
        }),
      );
      figures.listByUser.push(
        await cpuPerCall(memory ? 800 : 300, IN_FLIGHT.listByUser, async (i) => {
          const userId = data.userIds[i % data.userIds.length];
          const list = await store.listByUser(userId);
          if (list.length !== perUser) throw new Error(`listByUser ${userId}: ${list.length} items`);
        }),
      );
    }
    // The first round warms V8 and the allocators up.
    const shown = (values, unit) =>
      values
        .slice(1)
        .map((v) => (unit === 'ms' ? (v / 1000).toFixed(2) : v.toFixed(1)))
        .join(' / ');
    console.log(
      `${memory ? 'in-memory' : 'Redis (TLS)'} store of ${label}, ${textName} text ` +
        `(~${Math.round(bytes / conversations.length)} B of UTF-8 a conversation): ` +
        `get ${shown(figures.get, 'µs')} µs, listByUser (${perUser}) ${shown(figures.listByUser, 'ms')} ms ` +
        `client CPU a call (rounds 2–${ROUNDS})`,
    );
  } finally {
    await store.close();
    await stopAll();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
