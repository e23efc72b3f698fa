/**
 * Controller leadership: the replica whose id sits at the leader key, on its
 * own kept-alive lease, runs the background controllers. The key is taken
 * only by create-if-absent, so two replicas can never both lead; a leader
 * that loses its lease stops leading at once (the lease's `lost` fires no
 * later than its TTL), and the key vanishes for another replica to take.
 */
import type { Logger } from 'pino';
import type { Lease, Store } from '../../store/store.ts';

export interface LeaderElection {
  isLeader(): boolean;
  /** Called with true when this replica starts leading, false when it stops. */
  onChange(listener: (leading: boolean) => void): void;
  close(): Promise<void>;
}

export function startLeaderElection(options: {
  store: Store;
  key: string;
  replicaId: string;
  ttlSeconds?: number;
  logger: Logger;
}): LeaderElection {
  const { store, key, replicaId, logger } = options;
  const ttlSeconds = options.ttlSeconds ?? 5;
  const listeners: ((leading: boolean) => void)[] = [];
  let lease: Lease | undefined;
  let leading = false;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;

  const setLeading = (value: boolean) => {
    if (leading === value) return;
    leading = value;
    logger.info({ replicaId, leading }, value ? 'became controller leader' : 'stopped leading');
    for (const listener of listeners) listener(value);
  };

  async function campaign(): Promise<void> {
    if (closed || leading) return;
    try {
      const candidate = await store.grantLease(ttlSeconds);
      const res = await store.txn({
        compares: [{ key, target: 'version', op: '==', value: 0 }],
        onSuccess: [{ type: 'put', key, value: replicaId, lease: candidate.id }],
      });
      if (!res.succeeded || closed) {
        await candidate.revoke().catch(() => {});
        return;
      }
      lease = candidate;
      setLeading(true);
      void candidate.lost.then(() => {
        if (lease === candidate) lease = undefined;
        setLeading(false);
      });
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'leader campaign failed; retrying');
    }
  }

  const loop = () => {
    timer = setTimeout(
      () => void campaign().finally(() => !closed && loop()),
      Math.max(200, (ttlSeconds * 1000) / 3),
    );
  };
  void campaign().finally(() => !closed && loop());

  return {
    isLeader: () => leading,
    onChange: (listener) => {
      listeners.push(listener);
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      const held = lease;
      lease = undefined;
      setLeading(false);
      await held?.revoke().catch(() => {});
    },
  };
}
