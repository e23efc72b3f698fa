/**
 * A lease on the etcd backend, with its own clock of when it is lost.
 *
 * The etcd3 client reports a lost lease only after about twice the TTL. Here
 * a lease is presumed lost exactly TTL after the send time of the last
 * renewal the server acknowledged, which is no later than the server itself
 * can expire it.
 */
import { randomBytes } from 'node:crypto';
import { AmalgamError } from '../core/errors.ts';
import type { Lease } from './store.ts';

/** The calls a lease makes on its store (each retried there until answered). */
export interface LeaseCalls {
  /** One renewal; returns the TTL the server granted (0: lease gone). */
  renewLease(id: string): Promise<number>;
  /** Revokes the lease; a lease already gone is not an error. */
  revokeLease(id: string): Promise<void>;
}

export class EtcdLease implements Lease {
  readonly lost: Promise<Error>;
  private resolveLost!: (err: Error) => void;
  private expiryTimer: NodeJS.Timeout | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly calls: LeaseCalls,
    readonly id: string,
    readonly ttlSeconds: number,
    grantSentAt: number,
    keepAlive: boolean,
  ) {
    this.lost = new Promise((resolve) => {
      this.resolveLost = resolve;
    });
    this.armExpiry(grantSentAt);
    if (keepAlive) this.scheduleRenewal(this.renewIntervalMs());
  }

  private renewIntervalMs(): number {
    return Math.max(100, (this.ttlSeconds * 1000) / 3);
  }

  /** The server restarts the TTL when it receives a renewal, so sentAt + TTL is a safe bound. */
  private armExpiry(sentAt: number): void {
    clearTimeout(this.expiryTimer);
    const ms = Math.max(0, sentAt + this.ttlSeconds * 1000 - Date.now());
    this.expiryTimer = setTimeout(
      () =>
        this.markLost(
          new AmalgamError('LEASE_NOT_FOUND', `lease ${this.id} not renewed within its TTL`),
        ),
      ms,
    );
  }

  private scheduleRenewal(ms: number): void {
    if (this.stopped) return;
    this.renewTimer = setTimeout(() => {
      this.keepAliveOnce().then(
        () => this.scheduleRenewal(this.renewIntervalMs()),
        () => this.scheduleRenewal(Math.min(500, this.renewIntervalMs())),
      );
    }, ms);
  }

  async keepAliveOnce(): Promise<void> {
    if (this.stopped) throw new AmalgamError('LEASE_NOT_FOUND', `lease ${this.id} is lost`);
    const sentAt = Date.now();
    const ttl = await this.calls.renewLease(this.id);
    if (ttl <= 0) {
      const err = new AmalgamError(
        'LEASE_NOT_FOUND',
        `lease ${this.id} has expired or was revoked`,
      );
      this.markLost(err);
      throw err;
    }
    if (!this.stopped) this.armExpiry(sentAt);
  }

  async revoke(): Promise<void> {
    this.stop();
    await this.calls.revokeLease(this.id);
    this.markLost(new AmalgamError('LEASE_NOT_FOUND', `lease ${this.id} was revoked`));
  }

  private markLost(err: Error): void {
    this.stop();
    this.resolveLost(err);
  }

  /** @internal the store is closing: nothing guards this lease any more. */
  closed(): void {
    this.markLost(new AmalgamError('STORE_CLOSED', `lease ${this.id} abandoned on close`));
  }

  /** @internal stop timers. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.renewTimer);
    clearTimeout(this.expiryTimer);
  }
}

/** A positive int63 as a decimal string: etcd lease ids are int64 and 0 means "choose one". */
export function randomLeaseId(): string {
  const n = randomBytes(8).readBigUInt64BE() >> 2n;
  return (n === 0n ? 1n : n).toString();
}
