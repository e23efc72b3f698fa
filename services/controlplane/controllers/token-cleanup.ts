/**
 * Token cleanup controller (leader only): deletes bootstrap tokens a day
 * after they expired. Until then a join with one gets TOKEN_EXPIRED rather
 * than TOKEN_NOT_FOUND, which tells the operator what happened.
 */
import type { Logger } from 'pino';
import type { Store } from '../../store/store.ts';
import type { TokenRecord } from '../features/tokens/token-service.ts';
import { keys } from '../service/keys.ts';
import type { Controller } from './node-lifecycle.ts';

export const EXPIRED_TOKEN_RETENTION_MS = 24 * 3600 * 1000;

export function startTokenCleanupController(options: {
  store: Store;
  now: () => number;
  intervalMs?: number;
  logger: Logger;
}): Controller {
  const { store, now, logger } = options;
  async function reconcile(): Promise<number> {
    const { kvs } = await store.range(keys.tokens);
    let removed = 0;
    for (const kv of kvs) {
      const token = JSON.parse(kv.value) as TokenRecord;
      if (now() < token.expiresAt + EXPIRED_TOKEN_RETENTION_MS) continue;
      const res = await store.txn({
        compares: [{ key: kv.key, target: 'modRevision', op: '==', value: kv.modRevision }],
        onSuccess: [{ type: 'delete', key: kv.key }],
      });
      if (res.succeeded) removed++;
    }
    if (removed > 0) logger.info({ removed }, 'deleted long-expired bootstrap tokens');
    return removed;
  }
  const timer = setInterval(
    () =>
      void reconcile().catch((err) => logger.warn({ err: err.message }, 'token cleanup failed')),
    options.intervalMs ?? 60_000,
  );
  return {
    reconcile,
    async stop() {
      clearInterval(timer);
    },
  };
}
