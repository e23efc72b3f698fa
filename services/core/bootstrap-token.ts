/**
 * Bootstrap tokens: `<id>.<secret>`, 6 and 16 characters of [a-z0-9].
 *
 * The id is public (it names the stored token record); the secret is what the
 * store keeps only as a hash. Randomness is injected so this module stays pure
 * and deterministic under test; the service layer passes `crypto.randomBytes`.
 * Times are milliseconds since the Unix epoch, passed in as `now`.
 *
 * Nothing here puts the token text into an error: a malformed token may still
 * be someone's real secret with a typo.
 */
import { AmalgamError } from './errors.ts';

export const TOKEN_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
export const TOKEN_ID_LENGTH = 6;
export const TOKEN_SECRET_LENGTH = 16;

const TOKEN_FORMAT = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;
/** The largest multiple of 36 that fits a byte: bytes at or above it are rejected (no modulo bias). */
const UNBIASED_LIMIT = 256 - (256 % TOKEN_ALPHABET.length);
/** A source that returns only rejected bytes this many times in a row is broken, not unlucky. */
const MAX_DRAWS = 64;

export interface BootstrapToken {
  id: string;
  secret: string;
}

/** The stored part of a token that expiry depends on. */
export interface ExpiringToken {
  /** Milliseconds since the Unix epoch; the token is expired from this instant on. */
  expiresAt: number;
}

export type RandomBytes = (n: number) => Uint8Array;

/** Throws TOKEN_MALFORMED unless `text` is `<6>.<16>` of [a-z0-9]. */
export function parseBootstrapToken(text: unknown): BootstrapToken {
  const match = typeof text === 'string' ? TOKEN_FORMAT.exec(text) : null;
  if (!match?.[1] || !match[2]) {
    throw new AmalgamError(
      'TOKEN_MALFORMED',
      `expected ${TOKEN_ID_LENGTH} then ${TOKEN_SECRET_LENGTH} characters of [a-z0-9] separated by '.'`,
      { reason: 'malformed' },
    );
  }
  return { id: match[1], secret: match[2] };
}

export function formatBootstrapToken(token: BootstrapToken): string {
  return `${token.id}.${token.secret}`;
}

function randomChars(count: number, randomBytes: RandomBytes): string {
  let out = '';
  let draws = 0;
  while (out.length < count) {
    if (draws++ >= MAX_DRAWS) {
      throw new Error('randomBytes keeps returning only bytes >= 252; it is not a random source');
    }
    const bytes = randomBytes(count - out.length);
    for (const byte of bytes) {
      if (byte < UNBIASED_LIMIT) {
        out += TOKEN_ALPHABET[byte % TOKEN_ALPHABET.length];
        if (out.length === count) break;
      }
    }
  }
  return out;
}

/**
 * A new random token. Each character comes from one byte of `randomBytes`;
 * bytes >= 252 are discarded and more are drawn, so all 36 characters are
 * equally likely.
 */
export function generateBootstrapToken(randomBytes: RandomBytes): BootstrapToken {
  return {
    id: randomChars(TOKEN_ID_LENGTH, randomBytes),
    secret: randomChars(TOKEN_SECRET_LENGTH, randomBytes),
  };
}

/** When a token created at `now` with a TTL of `ttlSeconds` expires (ms since the epoch). */
export function tokenExpiresAt(now: number, ttlSeconds: unknown): number {
  if (typeof ttlSeconds !== 'number' || !Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1) {
    throw new AmalgamError('INVALID_ARGUMENT', 'ttlSeconds: an integer >= 1 is required', {
      field: 'ttlSeconds',
    });
  }
  const expiresAt = now + ttlSeconds * 1000;
  if (!Number.isSafeInteger(expiresAt)) {
    throw new AmalgamError('INVALID_ARGUMENT', 'ttlSeconds: too large', { field: 'ttlSeconds' });
  }
  return expiresAt;
}

/**
 * A token is expired from `expiresAt` on (`now >= expiresAt`). Fails closed: a
 * record whose `expiresAt` is missing or not a number counts as expired.
 */
export function isTokenExpired(token: ExpiringToken, now: number): boolean {
  return !(now < token.expiresAt);
}
