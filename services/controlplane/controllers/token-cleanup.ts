/**
 * Token cleanup controller (leader only): has the token service delete
 * bootstrap tokens a day after they expired (`TokenService.deleteExpired`).
 * Until then a join with one gets TOKEN_EXPIRED rather than TOKEN_NOT_FOUND,
 * which tells the operator what happened. Built on services/reconcile: one
 * key on a work queue, requeued every `intervalMs` (a failed pass backs off
 * and is retried by the queue).
 */
import type { Logger } from 'pino';
import { WorkQueue } from '../../reconcile/index.ts';
import type { TokenService } from '../features/tokens/token-service.ts';
import type { Controller } from './controller.ts';

const EXPIRED_TOKENS = 'expired-tokens';

export function startTokenCleanupController(options: {
  tokens: Pick<TokenService, 'deleteExpired'>;
  intervalMs?: number;
  logger: Logger;
}): Controller {
  const { tokens, logger } = options;
  const intervalMs = options.intervalMs ?? 60_000;
  let removed = 0;
  const queue = new WorkQueue({
    name: 'token-cleanup',
    logger,
    async worker() {
      const count = await tokens.deleteExpired();
      if (count > 0) logger.info({ removed: count }, 'deleted long-expired bootstrap tokens');
      removed += count;
      return { requeueAfterMs: intervalMs };
    },
  });
  queue.addAfter(EXPIRED_TOKENS, intervalMs);
  return {
    /** A pass now; returns how many tokens went since the last call. */
    async reconcile() {
      queue.add(EXPIRED_TOKENS);
      await queue.idle();
      const count = removed;
      removed = 0;
      return count;
    },
    stop: () => queue.close(),
  };
}
