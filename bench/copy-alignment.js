'use strict';
// Whether this host's memcpy is slow into a destination a few bytes past the source's
// alignment, as glibc 2.36 (Debian 12's) is on AMD EPYC VMs: its `rep movsb` path, glibc's
// bug 30994. rustls copies each TLS record's plaintext in behind the record's 5-byte header
// before encrypting it in place, so the store's writes pay it there (README, "Performance", "At
// 7c5fd67"). Copies 16 KiB (a full TLS record) within one buffer, so that the two ends' relative
// alignment is exact: 5 bytes, and 0 and 37 bytes to compare. bench/run.js reports the ratio with
// each run's machine.
//
//   node bench/copy-alignment.js
//   GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=2097152 node bench/copy-alignment.js

const os = require('node:os');

const BYTES = 16 << 10;
const COPIES = 20_000;
const ROUNDS = 5;
/** How many times the aligned copy's time the 5-byte case must take to count as the flaw. */
const SLOW = 4;
const SHIFTS = [0, 37, 5];

/**
 * µs a 16 KiB copy takes with the destination 0, 37 and 5 bytes past the source's alignment
 * (the fastest of ROUNDS rounds each), and the 5-byte case's time ÷ the aligned one's.
 */
function measureCopyAlignment() {
  const buffer = Buffer.alloc(1 << 20, 'a');
  const target = 64 << 10;
  const microsPerCopy = (/** @type {number} */ shift) => {
    let best = Infinity;
    for (let round = 0; round < ROUNDS; round++) {
      const start = process.hrtime.bigint();
      for (let i = 0; i < COPIES; i++) buffer.copy(buffer, target + shift, 0, BYTES);
      best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e3 / COPIES);
    }
    return best;
  };
  microsPerCopy(0); // warm-up
  /** @type {Record<string, number>} */
  const micros = {};
  for (const shift of SHIFTS) micros[shift] = microsPerCopy(shift);
  return { micros, ratio: micros[5] / micros[0] };
}

/** The C library Node runs on: `glibc 2.36`, or `no glibc`. */
function libc() {
  const header = /** @type {any} */ (process.report.getReport()).header;
  return header.glibcVersionRuntime ? `glibc ${header.glibcVersionRuntime}` : 'no glibc';
}

if (require.main === module) {
  console.log(`${os.cpus()[0]?.model ?? 'unknown CPU'}, ${libc()}`);
  if (process.env.GLIBC_TUNABLES) console.log(`GLIBC_TUNABLES=${process.env.GLIBC_TUNABLES}`);
  const { micros, ratio } = measureCopyAlignment();
  for (const shift of SHIFTS) {
    const us = micros[shift];
    console.log(`16 KiB to ${shift} bytes past alignment: ${us.toFixed(2)} µs (${(BYTES / us / 1e3).toFixed(1)} GB/s)`);
  }
  console.log(
    ratio >= SLOW
      ? `slow: ${ratio.toFixed(1)}× the aligned copy's time 5 bytes past alignment; GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=2097152 in the environment avoids it`
      : `not slow here: ${ratio.toFixed(1)}× the aligned copy's time`,
  );
}

module.exports = { measureCopyAlignment, libc };
