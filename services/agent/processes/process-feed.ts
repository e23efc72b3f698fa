/**
 * The supervisor's desired state: every `ProcessView` of the cluster, from a
 * watch of `processes/` (re-opened after it ends) and a full list every
 * `resyncMs` (which also catches what a re-opened watch missed).
 */
import type { Logger } from 'pino';
import type { ProcessView } from '../../api/process-contracts.ts';
import type { SupervisorClient } from './supervisor-client.ts';

export interface ProcessFeedOptions {
  client: Pick<SupervisorClient, 'list' | 'watch'>;
  logger: Logger;
  resyncMs: number;
  onView(view: ProcessView): void;
  onList(views: ProcessView[]): void;
}

const REOPEN_MS = 500;

export function followProcesses(options: ProcessFeedOptions): { close(): Promise<void> } {
  const { client, logger } = options;
  let closed = false;
  let watch: ReturnType<SupervisorClient['watch']> | null = null;
  let timer: NodeJS.Timeout | undefined;

  async function watchLoop(): Promise<void> {
    while (!closed) {
      watch = client.watch({ retryForMs: 60_000 });
      try {
        for await (const event of watch) {
          if (event.type === 'put' && event.value !== null)
            options.onView(event.value as ProcessView);
        }
      } catch (err) {
        if (!closed) logger.warn({ err }, 'process watch ended; re-opening');
      }
      await new Promise((r) => setTimeout(r, REOPEN_MS));
    }
  }

  async function resync(): Promise<void> {
    try {
      options.onList(await client.list());
    } catch (err) {
      logger.warn({ err }, 'cannot list processes');
    }
    if (!closed) timer = setTimeout(() => void resync(), options.resyncMs);
  }

  void watchLoop();
  void resync();
  return {
    async close() {
      closed = true;
      clearTimeout(timer);
      await watch?.close();
    },
  };
}
