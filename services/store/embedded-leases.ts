/**
 * The clocks of the embedded store's leases. The state machine (mvcc.ts)
 * knows which leases exist; when each expires is wall-clock time, which the
 * log does not record, so it lives here: after a restart every recovered lease
 * gets a fresh full TTL, as etcd gives after a leader change.
 */
import { AmalgamError } from '../core/errors.ts';

/** The live side of a lease. */
interface LeaseClock {
  ttlMs: number;
  /** performance.now() after which the lease has expired. */
  deadline: number;
  expiry: NodeJS.Timeout;
  renewal: NodeJS.Timeout | undefined;
  settleLost: (reason: Error) => void;
}

/** What the clocks ask of the store. */
export interface LeaseClockHooks {
  /** True while the state holds the lease. */
  hasLease(id: string): boolean;
  /** The lease ran past its deadline unrenewed: revoke it (which stops its clock). */
  expire(id: string): void;
}

export class LeaseClocks {
  readonly #clocks = new Map<string, LeaseClock>();
  readonly #hooks: LeaseClockHooks;

  constructor(hooks: LeaseClockHooks) {
    this.#hooks = hooks;
  }

  /** Starts a full TTL for lease `id`; `settleLost` hears why it ended. */
  start(id: string, ttlSeconds: number, settleLost: (reason: Error) => void): void {
    const ttlMs = ttlSeconds * 1000;
    this.#clocks.set(id, {
      ttlMs,
      deadline: performance.now() + ttlMs,
      expiry: setTimeout(() => this.#checkExpiry(id), ttlMs),
      renewal: undefined,
      settleLost,
    });
  }

  /** Renews lease `id` every TTL/3 until its clock stops. */
  keepRenewing(id: string, ttlSeconds: number): void {
    const clock = this.#clocks.get(id);
    if (!clock) return;
    clock.renewal = setInterval(
      () => {
        if (this.#clocks.has(id)) this.renew(id);
      },
      (ttlSeconds * 1000) / 3,
    );
  }

  /** Restarts the TTL of lease `id`; LEASE_NOT_FOUND when it is gone. */
  renew(id: string): void {
    const clock = this.#clocks.get(id);
    if (!clock || !this.#hooks.hasLease(id)) {
      throw new AmalgamError('LEASE_NOT_FOUND', `lease ${id}`, { lease: id });
    }
    // The expiry timer re-arms itself from the deadline when it fires.
    clock.deadline = performance.now() + clock.ttlMs;
  }

  /** Stops the clock of lease `id` and tells its holder `reason`. */
  stop(id: string, reason: Error): void {
    const clock = this.#clocks.get(id);
    if (!clock) return;
    clearTimeout(clock.expiry);
    clearInterval(clock.renewal);
    this.#clocks.delete(id);
    clock.settleLost(reason);
  }

  /** Stops every clock: nobody can renew any more. */
  stopAll(reason: Error): void {
    for (const id of [...this.#clocks.keys()]) this.stop(id, reason);
  }

  #checkExpiry(id: string): void {
    const clock = this.#clocks.get(id);
    if (!clock) return;
    const remaining = clock.deadline - performance.now();
    if (remaining > 0) {
      clock.expiry = setTimeout(() => this.#checkExpiry(id), remaining);
      return;
    }
    this.#hooks.expire(id);
  }
}
