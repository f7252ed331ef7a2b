'use strict'
// Watching a store from a test: its log lines as events, its status, and a load whose
// every call is timed and checked.

const { EventEmitter } = require('node:events')
const { setTimeout: delay } = require('node:timers/promises')

/** A `logger` option that records lines and lets a test await one. */
function recordingLogger() {
  const lines = []
  const events = new EventEmitter()
  const record = (line) => {
    lines.push(line)
    events.emit('line', line)
  }
  return {
    logger: { info: record, warn: record, error: record },
    lines,
    /** Resolves with the first line (already logged since `from`, or next) matching `pattern`. */
    waitFor(pattern, { from = 0, timeoutMs = 15_000 } = {}) {
      const seen = lines.slice(from).find((line) => pattern.test(line))
      if (seen) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          events.off('line', onLine)
          reject(new Error(`no log line matching ${pattern} within ${timeoutMs} ms; lines:\n${lines.join('\n')}`))
        }, timeoutMs)
        const onLine = (line) => {
          if (!pattern.test(line)) return
          clearTimeout(timer)
          events.off('line', onLine)
          resolve(line)
        }
        events.on('line', onLine)
      })
    },
  }
}

/** Bounded polling of `store.status` (the store has no status events). */
async function waitForStatus(store, wanted, timeoutMs = 15_000) {
  const until = Date.now() + timeoutMs
  while (store.status !== wanted) {
    if (Date.now() > until) throw new Error(`status stayed '${store.status}', expected '${wanted}' within ${timeoutMs} ms`)
    await delay(20)
  }
}

/** Times one call: `{ ok, value?, error?, ms }`, never throws. */
async function timed(call) {
  const start = performance.now()
  try {
    const value = await call()
    return { ok: true, value, ms: performance.now() - start }
  } catch (error) {
    return { ok: false, error, ms: performance.now() - start }
  }
}

/**
 * Closed-loop writers and readers until `stop()`: every call is timed, every acknowledged
 * write remembered, so a test can check deadlines and that no acknowledged write was lost.
 */
const runningLoads = new Set()

/** Stops every load still running: a test that failed midway must not leave one behind. */
async function stopAllLoads() {
  await Promise.all([...runningLoads].map((load) => load.stop()))
}

function startLoad(store, makeConversation, { workers = 8, idPrefix = 'load' } = {}) {
  const results = []
  const acknowledged = new Map()
  let running = true
  let counter = 0
  const worker = async (w) => {
    while (running) {
      const conversation = makeConversation({ userId: `${idPrefix}-user-${w}`, seed: `${idPrefix}-${w}-${counter++}` })
      const id = conversation.externalId
      const write = await timed(() => store.set(id, conversation))
      results.push({ op: 'set', ...write })
      if (write.ok) acknowledged.set(id, conversation)
      results.push({ op: 'get', ...(await timed(() => store.get(id))) })
      // Yield so a fast failure loop does not starve the event loop.
      await delay(write.ok ? 0 : 10)
    }
  }
  const done = Promise.all(Array.from({ length: workers }, (_, w) => worker(w)))
  const load = {
    results,
    acknowledged,
    async stop() {
      running = false
      runningLoads.delete(load)
      await done
      return { results, acknowledged }
    },
  }
  runningLoads.add(load)
  return load
}

/** Lets a load run until it has `count` more acknowledged writes (bounded). */
async function untilAcknowledged(load, count, timeoutMs = 20_000) {
  const target = load.acknowledged.size + count
  const until = Date.now() + timeoutMs
  while (load.acknowledged.size < target) {
    if (Date.now() > until) throw new Error(`only ${load.acknowledged.size} of ${target} writes acknowledged`)
    await delay(10)
  }
}

module.exports = { recordingLogger, waitForStatus, timed, startLoad, stopAllLoads, untilAcknowledged }
