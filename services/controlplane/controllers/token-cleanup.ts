/**
 * Token cleanup controller (leader only): has the token service delete
 * bootstrap tokens a day after they expired (`TokenService.deleteExpired`).
 * Until then a join with one gets TOKEN_EXPIRED rather than TOKEN_NOT_FOUND,
 * which tells the operator what happened.
 */
import type { Logger } from 'pino';
import type { TokenService } from '../features/tokens/token-service.ts';
import { type Controller, startPeriodicController } from './periodic.ts';

export function startTokenCleanupController(options: {
  tokens: Pick<TokenService, 'deleteExpired'>;
  intervalMs?: number;
  logger: Logger;
}): Controller {
  const { tokens, logger } = options;
  async function pass(): Promise<number> {
    const removed = await tokens.deleteExpired();
    if (removed > 0) logger.info({ removed }, 'deleted long-expired bootstrap tokens');
    return removed;
  }
  return startPeriodicController({
    pass,
    intervalMs: options.intervalMs ?? 60_000,
    logger,
    failMessage: 'token cleanup failed',
  });
}
