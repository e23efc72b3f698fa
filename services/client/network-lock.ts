/**
 * A lease lock on one 8-aligned word of the network memory space, built on
 * nothing but `NetworkMemory.cas64`: no lock server, any node can take it.
 *
 * The word (a u64, little-endian in memory like every CAS64 operand):
 *
 *     bits 63..32  owner   a random non-zero u32 per NetworkLock: the token
 *     bits 31..0   expiry  Unix time in whole seconds (u32: good until 2106)
 *
 * 0 is free. `acquire` CASes 0 -> owner|expiry, or an EXPIRED word (expiry <=
 * now) -> owner|expiry, so a holder that crashed blocks the others for at
 * most its ttl; otherwise it retries with jittered exponential back-off (5 ms
 * doubling to 250 ms) until `timeoutMs`, then throws LOCK_TIMEOUT naming the
 * holder. `renew` CASes owner|old -> owner|new while the word still holds this
 * owner; `release` CASes owner|expiry -> 0. Either on a word that holds another
 * owner (or 0) is LOCK_NOT_HELD: the lease was lost and whatever it protected
 * may have been changed by the next holder.
 *
 * Clock assumption: expiry is compared with the local clock of whoever looks at
 * the word, so the holders' clocks must be roughly synchronized (NTP: well
 * under a second apart). Expiry has whole-second granularity: a lease of
 * `ttlSeconds` lasts between ttl and ttl + 1 s of the taker's clock (the
 * deadline is rounded up). A holder must renew well before its ttl (at ttl/3,
 * say) and must not touch the protected data once the ttl may have passed
 * without a successful renew: a lease lock gives mutual exclusion only to
 * holders that respect their own deadline. A word that is not a lock (non-zero
 * garbage with a past "expiry") is taken over like an expired lease.
 */
import { randomInt } from 'node:crypto';
import { AmalgamError } from '../core/errors.ts';
import type { NetworkMemory } from './network-memory.ts';

export interface LockOptions {
  /** Lease length in whole seconds (1 .. 2^31). */
  ttlSeconds: number;
  /** Give up (LOCK_TIMEOUT) after this long; 0 tries once. Default 10 s. */
  timeoutMs?: number;
}

export interface NetworkLockOptions {
  /** Resume a lock taken earlier (e.g. by `clusteradm mem lock`): its token. */
  token?: string;
  /** Milliseconds since the Unix epoch; default Date.now (tests inject a clock). */
  now?: () => number;
}

const U32 = 0xffffffffn;

/** The owner and expiry packed in a lock word. */
export function lockWord(owner: number, expiry: number): bigint {
  return (BigInt(owner >>> 0) << 32n) | (BigInt(expiry >>> 0) & U32);
}

export function parseLockWord(word: bigint): { owner: number; expiry: number } {
  return { owner: Number((word >> 32n) & U32), expiry: Number(word & U32) };
}

/** A token as printed: the owner id in 8 hex digits. */
export function formatToken(owner: number): string {
  return (owner >>> 0).toString(16).padStart(8, '0');
}

export function parseToken(token: string): number {
  if (!/^[0-9a-f]{1,8}$/i.test(token) || Number.parseInt(token, 16) === 0) {
    throw new AmalgamError('INVALID_ARGUMENT', 'token: 1 to 8 hex digits, not 0', {
      field: 'token',
    });
  }
  return Number.parseInt(token, 16);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class NetworkLock {
  /** This owner's id, the high half of the word while it holds the lock. */
  readonly owner: number;
  private readonly now: () => number;

  constructor(
    private readonly memory: Pick<NetworkMemory, 'cas64'>,
    readonly address: number,
    options: NetworkLockOptions = {},
  ) {
    this.owner = options.token !== undefined ? parseToken(options.token) : randomInt(1, 2 ** 32);
    this.now = options.now ?? Date.now;
    if (!Number.isSafeInteger(address) || address < 0 || address % 8 !== 0) {
      throw new AmalgamError('INVALID_ARGUMENT', 'address: 8-byte aligned for a lock word', {
        field: 'address',
      });
    }
  }

  /** What `release` and `clusteradm mem unlock --token` need. */
  get token(): string {
    return formatToken(this.owner);
  }

  /** The word's current value, read atomically (a CAS of 0 with 0 changes nothing). */
  async peek(): Promise<{ owner: number; expiry: number; expired: boolean } | null> {
    const { old } = await this.memory.cas64(this.address, 0n, 0n);
    if (old === 0n) return null;
    const word = parseLockWord(old);
    return { ...word, expired: this.isExpired(word.expiry) };
  }

  /** Takes the lock; resolves with the lease's expiry (Unix seconds). */
  async acquire(options: LockOptions): Promise<{ expiry: number }> {
    const ttl = checkTtl(options.ttlSeconds);
    const timeoutMs = options.timeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    let delay = 5;
    let expected = 0n;
    for (;;) {
      const expiry = this.deadline(ttl);
      const mine = lockWord(this.owner, expiry);
      const { swapped, old } = await this.memory.cas64(this.address, expected, mine);
      if (swapped) return { expiry };
      const held = parseLockWord(old);
      if (held.owner === this.owner && !this.isExpired(held.expiry)) {
        // Already ours (a retried acquire): extend it.
        const renewed = await this.memory.cas64(this.address, old, mine);
        if (renewed.swapped) return { expiry };
        expected = renewed.old;
        continue;
      }
      if (old === 0n || this.isExpired(held.expiry)) {
        expected = old; // free again, or a lease nobody renewed: try to take it at once
        continue;
      }
      expected = 0n;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new AmalgamError(
          'LOCK_TIMEOUT',
          `0x${this.address.toString(16)} is held by ${formatToken(held.owner)} until ${new Date(held.expiry * 1000).toISOString()}`,
          {
            address: this.address,
            holder: formatToken(held.owner),
            expiresAt: new Date(held.expiry * 1000).toISOString(),
          },
        );
      }
      await sleep(Math.min(left, delay * (0.5 + Math.random())));
      delay = Math.min(delay * 2, 250);
    }
  }

  /** Extends the lease to now + ttl while this owner still holds the word. */
  async renew(options: { ttlSeconds: number }): Promise<{ expiry: number }> {
    const ttl = checkTtl(options.ttlSeconds);
    let expected = lockWord(this.owner, 0);
    for (;;) {
      const { old } = await this.memory.cas64(this.address, expected, expected);
      this.mustHold(old);
      const expiry = this.deadline(ttl);
      const { swapped, old: now } = await this.memory.cas64(
        this.address,
        old,
        lockWord(this.owner, expiry),
      );
      if (swapped) return { expiry };
      expected = now;
    }
  }

  /** Frees the word; LOCK_NOT_HELD when it holds another owner or nothing. */
  async release(): Promise<void> {
    let expected = lockWord(this.owner, 0);
    for (;;) {
      const { swapped, old } = await this.memory.cas64(this.address, expected, 0n);
      if (swapped) return;
      this.mustHold(old);
      expected = old;
    }
  }

  private mustHold(word: bigint): void {
    const held = parseLockWord(word);
    if (word !== 0n && held.owner === this.owner) return;
    throw new AmalgamError(
      'LOCK_NOT_HELD',
      word === 0n
        ? `0x${this.address.toString(16)} is free`
        : `0x${this.address.toString(16)} is held by ${formatToken(held.owner)}, not ${this.token}`,
      { address: this.address, holder: word === 0n ? null : formatToken(held.owner) },
    );
  }

  private isExpired(expiry: number): boolean {
    return expiry * 1000 <= this.now();
  }

  private deadline(ttlSeconds: number): number {
    return Math.ceil(this.now() / 1000) + ttlSeconds;
  }
}

function checkTtl(ttlSeconds: number): number {
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 2 ** 31) {
    throw new AmalgamError('INVALID_ARGUMENT', 'ttlSeconds: a whole number of seconds >= 1', {
      field: 'ttlSeconds',
    });
  }
  return ttlSeconds;
}
