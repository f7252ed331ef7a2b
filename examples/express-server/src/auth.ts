// Who is calling: every route but /health needs `Authorization: Bearer <JWT>`, an HS256 token
// verified with jose. The caller's user id is the token's `sub`, and only that: routes read it
// with callerOf(res), never from the query or the body.
import type { RequestHandler, Response } from 'express';
import { errors, jwtVerify } from 'jose';

/** RFC 7518 §3.2: an HS256 key is at least as long as the hash, 256 bits. */
export const MIN_SECRET_BYTES = 32;

export interface AuthOptions {
  /** The HS256 key shared with whoever issues the tokens; at least 32 bytes. Never logged. */
  secret: Uint8Array;
  /** When set, a token's `iss` must equal it. */
  issuer?: string;
  /** When set, a token's `aud` must include it. */
  audience?: string;
}

const REALM = 'copilot-chat';
// RFC 6750 §2.1: `Bearer` then the token (b64token); anything else is no bearer credential.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const USER_ID_KEY = 'userId';

/** The verified caller's user id; throws (a 500) if a route was mounted before authenticate(). */
export function callerOf(res: Response): string {
  const userId: unknown = res.locals[USER_ID_KEY];
  if (typeof userId !== 'string') throw new Error('route reached without an authenticated caller');
  return userId;
}

type Refusal = 'missing' | 'invalid' | 'expired';

/** 401 with the RFC 6750 challenge; the body says what is wrong, never why a signature failed. */
function refuse(res: Response, refusal: Refusal): void {
  if (refusal === 'missing') {
    res
      .status(401)
      .set('WWW-Authenticate', `Bearer realm="${REALM}"`)
      .json({ error: 'unauthorized', message: 'a bearer token is required (Authorization: Bearer <token>)' });
    return;
  }
  const message = refusal === 'expired' ? 'the token has expired' : 'the token is invalid';
  res
    .status(401)
    .set('WWW-Authenticate', `Bearer realm="${REALM}", error="invalid_token", error_description="${message}"`)
    .json({ error: 'invalid_token', message });
}

/** The middleware that verifies the bearer token and records the caller for callerOf(). */
export function authenticate({ secret, issuer, audience }: AuthOptions): RequestHandler {
  if (secret.byteLength < MIN_SECRET_BYTES) {
    throw new Error(`auth secret: expected at least ${MIN_SECRET_BYTES} bytes, got ${secret.byteLength}`);
  }
  const key = Uint8Array.from(secret); // a copy: the caller cannot change it afterwards
  return async (req, res, next) => {
    const match = BEARER.exec(req.get('authorization') ?? '');
    const token = match?.[1];
    if (token === undefined) {
      refuse(res, 'missing');
      return;
    }
    let subject: unknown;
    try {
      const { payload } = await jwtVerify(token, key, {
        algorithms: ['HS256'], // never `none`, never an algorithm the token picks for itself
        issuer,
        audience,
        requiredClaims: ['sub', 'exp'], // a token without an expiry would be valid forever
      });
      subject = payload.sub;
    } catch (error) {
      if (!(error instanceof errors.JOSEError)) throw error; // a bug, not a bad token: a 500
      refuse(res, error instanceof errors.JWTExpired ? 'expired' : 'invalid');
      return;
    }
    if (typeof subject !== 'string' || subject === '') {
      refuse(res, 'invalid');
      return;
    }
    res.locals[USER_ID_KEY] = subject;
    next();
  };
}
