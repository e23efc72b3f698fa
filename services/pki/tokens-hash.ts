/**
 * Bootstrap token secrets are stored only as hashes.
 *
 * Why one salted SHA-256 and not scrypt or a pepper: the secret is 16
 * characters drawn uniformly from [a-z0-9] by the control plane (36^16, about
 * 82 bits), never chosen by a person. Slow hashes and peppers exist to protect
 * low-entropy secrets against offline guessing after the store leaks; here a
 * leaked hash already costs about 2^81 SHA-256 evaluations per token to
 * invert, which is out of reach, and tokens expire (24 h by default). A pepper would also
 * need a home that store backups do not contain, which the design does not
 * have. scrypt would instead hand anyone able to reach the join endpoint a way
 * to spend tens of milliseconds of control-plane CPU per attempt, for no
 * security gain. What the hash must do is keep the stored value from being a
 * usable credential (a preimage is infeasible) and keep equal secrets from
 * looking equal (the random per-hash salt). The `sha256$` prefix leaves room
 * for another scheme later.
 *
 * Stored form: `sha256$<32 hex salt>$<64 hex SHA-256(salt || secret)>`.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { TOKEN_SECRET_LENGTH } from '../core/bootstrap-token.ts';
import { AmalgamError } from '../core/errors.ts';

/** The secret half of a bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}`. */
export const TOKEN_SECRET_PATTERN = new RegExp(`^[a-z0-9]{${TOKEN_SECRET_LENGTH}}$`);
const STORED_HASH = /^sha256\$([0-9a-f]{32})\$([0-9a-f]{64})$/;

function digest(salt: Buffer, secret: string): Buffer {
  return createHash('sha256').update(salt).update(secret, 'utf8').digest();
}

export function hashTokenSecret(secret: string): string {
  if (typeof secret !== 'string' || !TOKEN_SECRET_PATTERN.test(secret)) {
    throw new AmalgamError('INVALID_ARGUMENT', 'secret: 16 characters of [a-z0-9] are required', {
      field: 'secret',
    });
  }
  const salt = randomBytes(16);
  return `sha256$${salt.toString('hex')}$${digest(salt, secret).toString('hex')}`;
}

/**
 * Whether `secret` is the one `hash` was made from. A malformed secret or
 * hash is false, not an error: the secret comes from an unauthenticated join.
 */
export function verifyTokenSecret(secret: string, hash: string): boolean {
  if (typeof secret !== 'string' || !TOKEN_SECRET_PATTERN.test(secret)) return false;
  const match = typeof hash === 'string' ? STORED_HASH.exec(hash) : null;
  if (match?.[1] === undefined || match[2] === undefined) return false;
  const actual = digest(Buffer.from(match[1], 'hex'), secret);
  return timingSafeEqual(actual, Buffer.from(match[2], 'hex'));
}
