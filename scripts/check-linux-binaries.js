'use strict';
// Checks the four Linux addons with readelf: the right machine, glibc 2.17 as the floor of
// the gnu builds (no symbol version above it), only musl's libc for the musl builds, and no
// initial-exec (static) TLS, which a library loaded with dlopen may find no room for (mimalloc
// is built with its local-dynamic TLS model for this).
// Usage: node scripts/check-linux-binaries.js [dir] (default: the package root).

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const GLIBC_FLOOR = '2.17';
const BINARY = require('../package.json').napi.binaryName;
const MACHINES = { x64: 'Advanced Micro Devices X86-64', arm64: 'AArch64' };
// What a gnu build may link: glibc's own libraries (libgcc_s comes with every glibc system).
const GLIBC_LIBS =
  /^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libgcc_s\.so\.1|ld-linux-(x86-64|aarch64)\.so\.[12])$/;
// musl's loader answers to any of these names itself.
const MUSL_LIBS = /^(libc\.so|libc\.musl-(x86_64|aarch64)\.so\.1|ld-musl-(x86_64|aarch64)\.so\.1)$/;

function readelf(args, file) {
  return execFileSync('readelf', ['-W', ...args, file], { encoding: 'utf8' });
}

function versionAbove(a, b) {
  const [x, y] = [a, b].map((v) => v.split('.').map(Number));
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
  }
  return false;
}

function check(file, arch, libc) {
  const problems = [];
  const machine = /Machine:\s+(.*)/.exec(readelf(['-h'], file))?.[1].trim();
  if (machine !== MACHINES[arch]) problems.push(`machine is ${machine}, expected ${MACHINES[arch]}`);
  const dynamic = readelf(['-d'], file);
  const needed = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[(.+)\]/g)].map((m) => m[1]);
  const glibcVersions = [...new Set([...readelf(['-V'], file).matchAll(/Name: GLIBC_([0-9.]+)/g)].map((m) => m[1]))];
  const newest = glibcVersions.reduce((max, v) => (versionAbove(v, max) ? v : max), '0');
  if (/\bSTATIC_TLS\b/.test(dynamic)) problems.push('is flagged STATIC_TLS (initial-exec TLS)');
  const staticTls = new Set(readelf(['-r'], file).match(/\bR_(X86_64_TPOFF(32|64)|AARCH64_TLS_TPREL(64)?)\b/g));
  if (staticTls.size > 0) problems.push(`has initial-exec TLS relocations: ${[...staticTls].join(', ')}`);
  if (libc === 'gnu') {
    problems.push(...needed.filter((lib) => !GLIBC_LIBS.test(lib)).map((lib) => `links ${lib}, not a glibc library`));
    if (versionAbove(newest, GLIBC_FLOOR)) problems.push(`needs GLIBC_${newest}, above the ${GLIBC_FLOOR} floor`);
  } else {
    problems.push(...needed.filter((lib) => !MUSL_LIBS.test(lib)).map((lib) => `links ${lib}, not musl's libc`));
    if (glibcVersions.length > 0) problems.push(`refers to glibc symbol versions: ${glibcVersions.join(', ')}`);
  }
  const summary =
    `${path.basename(file)}: ${machine}; links ${needed.join(', ')}` +
    (libc === 'gnu' ? `; newest glibc symbol GLIBC_${newest}` : '');
  return { summary, problems };
}

const dir = path.resolve(process.argv[2] ?? path.join(__dirname, '..'));
let failed = false;
for (const arch of ['x64', 'arm64']) {
  for (const libc of ['gnu', 'musl']) {
    const file = path.join(dir, `${BINARY}.linux-${arch}-${libc}.node`);
    if (!fs.existsSync(file)) {
      console.error(`MISSING ${file}`);
      failed = true;
      continue;
    }
    const { summary, problems } = check(file, arch, libc);
    console.log(`${problems.length ? 'FAIL' : 'ok  '} ${summary}`);
    for (const problem of problems) console.log(`       ${problem}`);
    failed ||= problems.length > 0;
  }
}
process.exit(failed ? 1 : 0);
