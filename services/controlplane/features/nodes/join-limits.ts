/**
 * The limits of the one door open to anyone, join: at most
 * `maxContributedBytes` per join (so one token holder cannot take the whole
 * network memory space), and joins per source address: a token bucket per address (`burst` joins at
 * once, refilled at `ratePerSecond`), in a map bounded to `maxSources`
 * addresses with least-recently-seen eviction. A join is the only call open
 * to anyone who reaches clusterd; each costs a token hash check and a CSR
 * verification, so one address cannot make clusterd do that without bound.
 * A refusal is RATE_LIMITED with `retryAfterSeconds` (REST's Retry-After).
 */
import type { JoinRequest } from '../../../api/contracts.ts';
import { AmalgamError } from '../../../core/errors.ts';

export interface JoinRateConfig {
  ratePerSecond: number;
  burst: number;
  maxSources: number;
}

export const DEFAULT_JOIN_RATE: JoinRateConfig = {
  // A rack of machines behind one NAT joining at once: 50 without waiting.
  burst: 50,
  ratePerSecond: 5,
  maxSources: 10_000,
};

export interface JoinLimits extends JoinRateConfig {
  /** The most one join may contribute to the network memory space (bytes). */
  maxContributedBytes: number;
}

export const DEFAULT_JOIN_LIMITS: JoinLimits = {
  ...DEFAULT_JOIN_RATE,
  // 1 TiB: more than any machine's RAM + swap today, far less than the space (2^52 B).
  maxContributedBytes: 2 ** 40,
};

/** INVALID_ARGUMENT naming the field when one join would contribute more than the limit. */
export function checkContribution(request: JoinRequest, maxBytes: number): void {
  if (request.capacity.contributedBytes <= maxBytes) return;
  const field = 'capacity.contributedBytes';
  throw new AmalgamError('INVALID_ARGUMENT', `${field}: at most ${maxBytes} bytes per join`, {
    field,
    limit: maxBytes,
  });
}

interface Bucket {
  tokens: number;
  at: number;
}

export interface JoinRateStats {
  sources: number;
  refusedTotal: number;
  evictedTotal: number;
}

export class JoinRateLimiter {
  readonly #config: JoinRateConfig;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();
  #refused = 0;
  #evicted = 0;

  /** `now` in milliseconds, monotonic (performance.now). */
  constructor(config: JoinRateConfig, now: () => number = () => performance.now()) {
    this.#config = config;
    this.#now = now;
  }

  /** Takes one join from `source`'s bucket, or throws RATE_LIMITED. */
  admit(source: string): void {
    const { burst, ratePerSecond } = this.#config;
    const now = this.#now();
    const bucket = this.#buckets.get(source) ?? { tokens: burst, at: now };
    // Re-inserted on every use: the map's first key is the least recently seen.
    this.#buckets.delete(source);
    this.#buckets.set(source, bucket);
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * ratePerSecond);
    bucket.at = now;
    this.#evict();
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return;
    }
    this.#refused++;
    const retryAfterSeconds = Math.max(1, Math.ceil((1 - bucket.tokens) / ratePerSecond));
    throw new AmalgamError(
      'RATE_LIMITED',
      `more than ${burst} joins from ${source}; retry in ${retryAfterSeconds} s`,
      { source, retryAfterSeconds },
    );
  }

  stats(): JoinRateStats {
    return {
      sources: this.#buckets.size,
      refusedTotal: this.#refused,
      evictedTotal: this.#evicted,
    };
  }

  #evict(): void {
    while (this.#buckets.size > this.#config.maxSources) {
      const oldest = this.#buckets.keys().next().value as string;
      this.#buckets.delete(oldest);
      this.#evicted++;
    }
  }
}
