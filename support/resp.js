'use strict';
// Just enough RESP (2 and 3) for a proxy that must rewrite some commands and their replies while
// keeping every other byte as it came: find where one request or one reply ends in a buffer.

const CRLF = Buffer.from('\r\n');

// Offset just past the CRLF that ends the line starting at `pos`, or -1 when it is not all here.
function lineEnd(buf, pos) {
  const cr = buf.indexOf(CRLF, pos);
  return cr < 0 ? -1 : cr + 2;
}

function lineInt(buf, pos, end) {
  return Number(buf.toString('latin1', pos + 1, end - 2));
}

/**
 * Where the reply starting at `pos` ends (one past its last byte), or -1 when it is incomplete.
 * An attribute (`|`) belongs to the reply after it, so both are one reply here.
 */
function replyEnd(buf, pos) {
  if (pos >= buf.length) return -1;
  const end = lineEnd(buf, pos);
  if (end < 0) return -1;
  switch (String.fromCharCode(buf[pos])) {
    case '+':
    case '-':
    case ':':
    case '_':
    case '#':
    case ',':
    case '(':
      return end;
    case '$':
    case '!':
    case '=': {
      const length = lineInt(buf, pos, end);
      if (length < 0) return end;
      return buf.length >= end + length + 2 ? end + length + 2 : -1;
    }
    case '*':
    case '~':
    case '>':
    case '%':
    case '|': {
      const count = lineInt(buf, pos, end);
      const type = String.fromCharCode(buf[pos]);
      const items = count < 0 ? 0 : type === '%' || type === '|' ? count * 2 : count;
      let at = end;
      for (let i = 0; i < items; i++) {
        at = replyEnd(buf, at);
        if (at < 0) return -1;
      }
      return type === '|' ? replyEnd(buf, at) : at;
    }
    default:
      throw new Error(`not RESP: byte 0x${buf[pos].toString(16)} at ${pos}`);
  }
}

/** Whether the reply at `pos` is an out-of-band RESP3 push (it answers no request). */
const isPush = (buf, pos) => buf[pos] === 0x3e; // '>'

/**
 * Parses the request starting at `pos`: `{ args: Buffer[], end }`, or undefined when it is not all
 * here. Takes the array form clients send and the inline form a human types.
 */
function parseRequest(buf, pos) {
  if (pos >= buf.length) return undefined;
  const head = lineEnd(buf, pos);
  if (head < 0) return undefined;
  if (buf[pos] !== 0x2a) {
    // Inline: words on one line.
    const words = buf
      .toString('latin1', pos, head - 2)
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    return { args: words.map((w) => Buffer.from(w, 'latin1')), end: head };
  }
  const count = lineInt(buf, pos, head);
  const args = [];
  let at = head;
  for (let i = 0; i < count; i++) {
    const end = lineEnd(buf, at);
    if (end < 0) return undefined;
    if (buf[at] !== 0x24) throw new Error(`not a RESP request: argument ${i} is not a bulk string`);
    const length = lineInt(buf, at, end);
    if (buf.length < end + length + 2) return undefined;
    args.push(buf.subarray(end, end + length));
    at = end + length + 2;
  }
  return { args, end: at };
}

/** A request as RESP bytes. */
function encodeRequest(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg));
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, CRLF);
  }
  return Buffer.concat(parts);
}

const simple = (text) => Buffer.from(`+${text}\r\n`);
const error = (text) => Buffer.from(`-${text}\r\n`);

module.exports = { replyEnd, isPush, parseRequest, encodeRequest, simple, error };
