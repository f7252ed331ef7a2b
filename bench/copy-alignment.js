'use strict';
// Whether this host's memmove is slow when the destination is 1 to 31 bytes past the source
// modulo 4 KiB, as glibc 2.36's `rep movsb` path was on the AMD EPYC VM of docs/performance.md,
// "At 7c5fd67" (glibc's bug 30994). rustls copies each TLS record's plaintext into a new buffer,
// 5 bytes in (behind the record's header), before encrypting it in place, so such a copy
// lands in that band whenever its two buffers sit at about the same place in their pages;
// that the store's record copies did there is inferred from a profile (the copy ran at about
// 3 GB/s, on `rep movsb`), not seen. This copies 16 KiB (a full TLS record) within one buffer,
// so that the distance is exact: 64 KiB (a whole number of pages), 64 KiB + 5 (in the band)
// and 64 KiB + 69 (5 bytes past a cache line too, but outside the band). The distances take
// turns within each round, and each one's median over the rounds is kept.
//
//   node bench/copy-alignment.js [--json]
//   GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=2097152 node bench/copy-alignment.js
//
// bench/run.js runs it (with --json, in a process of its own, so that its buffer stays out of
// the bench's RSS) and reports its figures with each run's machine.

const os = require('node:os');
const { readArgs } = require('./args');

const BYTES = 16 << 10;
/** A whole number of 4 KiB pages: the band is counted modulo 4 KiB. */
const PAGES_APART = 64 << 10;
const CASES = { aligned: 0, fivePast: 5, sixtyNinePast: 69 };
const COPIES = 4_000;
const ROUNDS = 9;
/** How many times the aligned copy's time the 5-byte case must take to count as slow. */
const SLOW = 4;
const TUNABLE = 'glibc.cpu.x86_rep_movsb_threshold=2097152';

const round2 = (/** @type {number} */ n) => Math.round(n * 100) / 100;

/**
 * µs a 16 KiB copy takes at each distance (the median of ROUNDS rounds, to 0.01 µs), and the
 * 5-byte case's time ÷ the aligned one's (of the unrounded medians).
 */
function measureCopyAlignment() {
  const buffer = Buffer.alloc(PAGES_APART + BYTES + 4096, 'a');
  /** @type {Record<string, number[]>} */
  const samples = {};
  for (const name of Object.keys(CASES)) samples[name] = [];
  for (let round = -1; round < ROUNDS; round++) {
    for (const [name, shift] of Object.entries(CASES)) {
      const start = process.hrtime.bigint();
      for (let i = 0; i < COPIES; i++) buffer.copy(buffer, PAGES_APART + shift, 0, BYTES);
      const micros = Number(process.hrtime.bigint() - start) / 1e3 / COPIES;
      if (round >= 0) samples[name].push(micros); // round -1 warms up
    }
  }
  const median = (/** @type {number[]} */ xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
  /** @type {Record<string, number>} */
  const medians = {};
  for (const [name, xs] of Object.entries(samples)) medians[name] = median(xs);
  /** @type {Record<string, number>} */
  const micros = {};
  for (const [name, us] of Object.entries(medians)) micros[name] = round2(us);
  return { bytes: BYTES, micros, ratio: round2(medians.fivePast / medians.aligned) };
}

/** The C library Node runs on: `glibc 2.36`, or `no glibc`. */
function libc() {
  const header = /** @type {any} */ (process.report.getReport()).header;
  return header.glibcVersionRuntime ? `glibc ${header.glibcVersionRuntime}` : 'no glibc';
}

const args = readArgs({ json: { type: 'boolean', default: false } }, 'usage: node bench/copy-alignment.js [--json]');
const result = { libc: libc(), ...measureCopyAlignment() };
if (args.json) {
  console.log(JSON.stringify(result));
} else {
  console.log(`${os.cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${result.libc}`);
  if (process.env.GLIBC_TUNABLES) console.log(`GLIBC_TUNABLES=${process.env.GLIBC_TUNABLES}`);
  for (const [name, shift] of Object.entries(CASES)) {
    const us = result.micros[name];
    console.log(
      `16 KiB copied 64 KiB + ${shift} B past its source: ${us.toFixed(2)} µs (${(BYTES / us / 1e3).toFixed(1)} GB/s)`,
    );
  }
  const times = `${result.ratio.toFixed(1)}× the time of one 64 KiB past`;
  if (result.ratio < SLOW) {
    console.log(`not slow here: the copy 64 KiB + 5 B past took ${times}`);
  } else {
    const advice =
      result.libc.startsWith('glibc') && !process.env.GLIBC_TUNABLES
        ? `; GLIBC_TUNABLES=${TUNABLE} in the environment avoids it`
        : '';
    console.log(`slow: the copy 64 KiB + 5 B past took ${times}${advice}`);
  }
}
