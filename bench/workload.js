'use strict';
// Deterministic benchmark data: 2,000 conversations over 40 users (50 each), 20 messages per
// conversation, every fifth message an `adaptiveCard` with a ~1 KB `cardPayload`; about
// 9.5 KB of JSON per conversation. Same seed, same bytes, every run.

const BASE_MS = Date.parse('2026-02-22T10:00:00.000Z');
const DEFAULTS = { conversations: 2000, users: 40, messages: 20, seed: 0x5eed };

/** mulberry32: a tiny seeded PRNG, good enough for filler text. */
function prng(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** 32 bits derived from (counter, lane): an integer hash, no state. */
function mix(counter, lane) {
  let h = (Math.imul(counter + 1, 0x9e3779b1) ^ Math.imul(lane + 7, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

function hex(n, digits) {
  return n.toString(16).padStart(8, '0').slice(-digits);
}

/** A version-4-shaped UUID from a seeded counter (`kind` separates id spaces). */
function uuidFromCounter(counter, kind = 0) {
  const c = counter * 4 + kind;
  const a = mix(c, 1);
  const b = mix(c, 2);
  const d = mix(c, 3);
  const e = mix(c, 4);
  const variant = (8 + (b & 3)).toString(16);
  return `${hex(a, 8)}-${hex(b >>> 16, 4)}-4${hex(b, 3)}-${variant}${hex(d >>> 20, 3)}-${hex(d, 4)}${hex(e, 8)}`;
}

const WORDS = (
  'the a to of and in for your on with is it that this can you we be are order account ' +
  'invoice refund shipping delivery status update ticket request approve workflow step ' +
  'please thanks sure here details below policy leave travel expense report manager team ' +
  'submitted pending approved rejected tomorrow today meeting schedule review document ' +
  'copilot agent summary customer support issue resolved escalate priority number date'
).split(' ');

function sentence(rand, minChars) {
  let out = '';
  while (out.length < minChars) {
    const word = WORDS[Math.floor(rand() * WORDS.length)];
    out += out.length === 0 ? word[0].toUpperCase() + word.slice(1) : ` ${word}`;
    if (rand() < 0.08) out += rand() < 0.5 ? ',' : '.';
  }
  return `${out}.`;
}

function iso(ms) {
  return new Date(ms).toISOString();
}

/** An Adaptive Card of about 1 KB of JSON. */
function adaptiveCard(rand, n) {
  return {
    type: 'AdaptiveCard',
    $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
    version: '1.5',
    body: [
      { type: 'TextBlock', text: `Request #${1000 + n}`, weight: 'Bolder', size: 'Medium', wrap: true },
      { type: 'TextBlock', text: sentence(rand, 160), wrap: true },
      {
        type: 'FactSet',
        facts: [
          { title: 'Status', value: 'Pending approval' },
          { title: 'Amount', value: `${(rand() * 1000).toFixed(2)} EUR` },
          { title: 'Submitted', value: '2026-02-22' },
          { title: 'Owner', value: 'Contoso Finance' },
        ],
      },
      {
        type: 'Input.Text',
        id: 'comment',
        placeholder: 'Add a comment',
        isMultiline: true,
      },
    ],
    actions: [
      { type: 'Action.Submit', title: 'Approve', data: { action: 'approve', requestId: 1000 + n } },
      { type: 'Action.Submit', title: 'Reject', data: { action: 'reject', requestId: 1000 + n } },
      { type: 'Action.OpenUrl', title: 'Open', url: `https://contoso.example/requests/${1000 + n}` },
    ],
  };
}

function userIdOf(u) {
  return `user-${String(u).padStart(3, '0')}@contoso.example`;
}

/**
 * `{ conversations: [{ id, userId, conversation }], userIds, bytes }`: conversation i belongs to
 * user i % users; its initial updatedAt is BASE_MS + i seconds (+ its history).
 */
function makeWorkload(options = {}) {
  const { conversations: count, users, messages, seed } = { ...DEFAULTS, ...options };
  const rand = prng(seed);
  const userIds = Array.from({ length: users }, (_, u) => userIdOf(u));
  const conversations = [];
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const id = uuidFromCounter(i, 0);
    const userId = userIds[i % users];
    const created = BASE_MS + i * 1000;
    const history = [];
    for (let m = 0; m < messages; m++) {
      const role = m % 2 === 0 ? 'user' : 'agent';
      const timestamp = iso(created + m * 1500);
      if (m % 5 === 4) {
        history.push({
          id: `msg-${i}-${m}`,
          role: 'agent',
          type: 'adaptiveCard',
          cardPayload: adaptiveCard(rand, i * 100 + m),
          timestamp,
        });
      } else {
        history.push({
          id: `msg-${i}-${m}`,
          role,
          type: 'text',
          text: sentence(rand, 190 + Math.floor(rand() * 40)),
          timestamp,
        });
      }
    }
    const conversation = {
      externalId: id,
      history,
      userId,
      tenantId: 'tenant-contoso',
      createdAt: iso(created),
      updatedAt: iso(created + messages * 1500),
      status: 'active',
      workflowId: uuidFromCounter(i, 1),
      currentStep: i % 7,
      stepData: { form: 'expense', amount: i * 3, approved: i % 2 === 0 },
      metadata: { channel: 'web', locale: 'en-US', clientVersion: '1.4.2' },
    };
    bytes += JSON.stringify(conversation).length;
    conversations.push({ id, userId, conversation });
  }
  return { conversations, userIds, bytes, averageBytes: Math.round(bytes / count) };
}

module.exports = { makeWorkload, prng, uuidFromCounter, iso, BASE_MS, DEFAULTS };

if (require.main === module) {
  const w = makeWorkload();
  const sizes = w.conversations.map((c) => JSON.stringify(c.conversation).length);
  console.log(
    `${w.conversations.length} conversations, ${w.userIds.length} users, ` +
      `JSON bytes avg ${w.averageBytes}, min ${Math.min(...sizes)}, max ${Math.max(...sizes)}`,
  );
  const card = w.conversations[0].conversation.history[4].cardPayload;
  console.log(`cardPayload bytes: ${JSON.stringify(card).length}; first id ${w.conversations[0].id}`);
}
