// DEVELOPMENT ONLY. What `npm run demo` uses when AUTH_JWT_SECRET is not set, so the demo works
// out of the box: a random HS256 secret made for this one process (never printed, gone at exit)
// and a token signed with it for a demo user. A real deployment sets AUTH_JWT_SECRET and gets its
// tokens from its identity provider; server.ts never makes this identity by itself.
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { MIN_SECRET_BYTES } from './auth.js';

export interface DevelopmentIdentity {
  /** The random secret this process verifies tokens with. Never log it. */
  secret: Uint8Array;
  userId: string;
  /** A bearer token for `userId`, valid against this process only. */
  token: string;
  expiresAt: Date;
}

export const DEMO_USER_ID = 'demo-user';
const DEMO_TOKEN_TTL_SECONDS = 8 * 3600;

export interface DevelopmentIdentityOptions {
  userId?: string;
  /** The `iss` and `aud` the server checks (AUTH_JWT_ISSUER, AUTH_JWT_AUDIENCE), if any. */
  issuer?: string | undefined;
  audience?: string | undefined;
}

export async function developmentIdentity({
  userId = DEMO_USER_ID,
  issuer,
  audience,
}: DevelopmentIdentityOptions = {}): Promise<DevelopmentIdentity> {
  const secret = new Uint8Array(randomBytes(MIN_SECRET_BYTES));
  const expiresAt = new Date(Date.now() + DEMO_TOKEN_TTL_SECONDS * 1000);
  const jwt = new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(expiresAt);
  if (issuer !== undefined) jwt.setIssuer(issuer);
  if (audience !== undefined) jwt.setAudience(audience);
  return { secret, userId, token: await jwt.sign(secret), expiresAt };
}
