// @ts-check
'use strict';
// What Node trusts by default, handed to the native store as PEM: Node's bundled roots and the
// certificates of NODE_EXTRA_CA_CERTS (the system store is added natively).

const { X509Certificate } = require('node:crypto');
const fs = require('node:fs');
const tls = require('node:tls');
const { printable } = require('./lib/errors.js');

/**
 * NODE_EXTRA_CA_CERTS as it was when this module loaded. Node reads it once, at start-up, so a
 * value set later (a .env loader) is ignored by Node; taken here at load, it is ignored by the
 * store too (as long as the store is required before the loader runs, as it usually is).
 */
const EXTRA_CA_CERTS = process.env.NODE_EXTRA_CA_CERTS;

/** A certificate bundle larger than this is not read: Node's own roots are about 200 KiB. */
const MAX_EXTRA_CA_BYTES = 16 * 1024 * 1024;

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/** @type {{ pem: string, warning?: string } | undefined} */
let nodeTrust;

/**
 * The file's text, if it is a regular file of at most MAX_EXTRA_CA_BYTES; otherwise the
 * reason it was not read. Opened without blocking and checked with fstat before any read,
 * so a FIFO or a device (/dev/zero) never stalls or floods the constructor.
 * @param {string} file @returns {{ text: string } | { why: string }}
 */
function readBundle(file) {
  let fd;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) return { why: 'not a regular file' };
    if (stat.size > MAX_EXTRA_CA_BYTES) return { why: `larger than ${MAX_EXTRA_CA_BYTES} bytes` };
    const bytes = Buffer.alloc(stat.size);
    const read = fs.readSync(fd, bytes, 0, stat.size, 0);
    return { text: bytes.toString('latin1', 0, read) };
  } catch (error) {
    return { why: /** @type {NodeJS.ErrnoException} */ (error).code ?? 'unreadable' };
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Node's trust as PEM, built once per process. A NODE_EXTRA_CA_CERTS that cannot be read only
 * warns, as in Node: the store still starts, and the warning is for its logger.
 * @returns {{ pem: string, warning?: string }}
 */
function trustedByNode() {
  if (nodeTrust) return nodeTrust;
  const pems = [...tls.rootCertificates];
  let warning;
  const file = EXTRA_CA_CERTS;
  if (file) {
    const bundle = readBundle(file);
    if ('why' in bundle) {
      warning =
        `[STORE] NODE_EXTRA_CA_CERTS (${printable(file)}) could not be read (${bundle.why}): ` +
        "only Node's roots and the system store are trusted";
    } else {
      const found = bundle.text.match(PEM_CERTIFICATE) ?? [];
      const readable = found.filter((pem) => {
        try {
          return Boolean(new X509Certificate(pem));
        } catch {
          return false;
        }
      });
      pems.push(...readable);
      if (readable.length < found.length || found.length === 0) {
        warning =
          `[STORE] NODE_EXTRA_CA_CERTS (${printable(file)}): ${readable.length} of ${found.length} certificates ` +
          "could be read; only those are trusted besides Node's roots and the system store";
      }
    }
  }
  nodeTrust = { pem: pems.join('\n'), warning };
  return nodeTrust;
}

module.exports = { trustedByNode, MAX_EXTRA_CA_BYTES };
