/**
 * The loop of a level-based controller (leader only): a pass every
 * `intervalMs`, never two at once (`reconcile` during a pass returns that
 * pass), a failed pass logged and retried by the next, and `stop` waiting for
 * the pass in flight. `pass` gets `stopped()` to end early.
 */
import type { Logger } from 'pino';

/** A running leader-only controller. */
export interface Controller {
  /** Runs one reconcile pass now (tests, and the watch trigger). */
  reconcile(): Promise<number>;
  stop(): Promise<void>;
}

export function startPeriodicController(options: {
  pass: (stopped: () => boolean) => Promise<number>;
  intervalMs: number;
  logger: Logger;
  /** The warning logged when a pass fails. */
  failMessage: string;
}): Controller {
  const { pass, logger, failMessage } = options;
  let stopped = false;
  let running: Promise<number> | undefined;
  const isStopped = (): boolean => stopped;

  function reconcile(): Promise<number> {
    running ??= pass(isStopped).finally(() => {
      running = undefined;
    });
    return running;
  }

  const timer = setInterval(() => {
    if (!stopped) {
      reconcile().catch((err: Error) => logger.warn({ err: err.message }, failMessage));
    }
  }, options.intervalMs);

  return {
    reconcile,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running?.catch(() => {});
    },
  };
}
