/**
 * Follows this node's record: `nodes.get(name)` on every change of
 * `nodes/<name>` (watch), and every `resyncMs`. When clusterd cannot be
 * reached the last known node stays: a control-plane outage does not take the
 * node's bytes away.
 */
import type { Logger } from 'pino';
import type { NodeView } from '../api/contracts.ts';
import type { AmalgamClient } from '../client/index.ts';
import { closableTimers } from './closable-timers.ts';
import { backoffMs } from './page-server-decision.ts';

export interface NodeFollowerOptions {
  node: string;
  client: Pick<AmalgamClient, 'nodes' | 'watch'>;
  resyncMs: number;
  logger: Logger;
  onNode(node: NodeView, why: string): void;
}

const jitter = (ms: number): number => ms * (0.9 + Math.random() * 0.2);

export function followNode(options: NodeFollowerOptions): { close(): Promise<void> } {
  const { client, node, logger } = options;
  const key = `nodes/${node}`;
  let closed = false;
  const { later, clear } = closableTimers(() => closed);
  let watch: ReturnType<AmalgamClient['watch']> | null = null;
  let refreshFailures = 0;
  let watchFailures = 0;

  async function refresh(why: string): Promise<void> {
    try {
      options.onNode(await client.nodes.get(node), why);
      refreshFailures = 0;
    } catch (err) {
      refreshFailures++;
      logger.warn({ err, why }, 'cannot read this node; keeping the last known range');
      later(backoffMs(refreshFailures, 500, 30_000), () => void refresh('retry'));
    }
  }

  async function watchNode(): Promise<void> {
    if (closed) return;
    watch = client.watch({ prefix: key, retryForMs: 60_000 });
    try {
      await refresh('watch opened'); // whatever changed before the watch started
      for await (const event of watch) {
        watchFailures = 0;
        if (event.key === key) await refresh(`watch ${event.type}`);
      }
    } catch (err) {
      if (!closed) logger.warn({ err }, 'the watch of this node ended');
    }
    if (closed) return;
    watchFailures++;
    later(backoffMs(watchFailures, 500, 30_000), () => void watchNode());
  }

  const resync = (): void => {
    void refresh('resync');
    later(jitter(options.resyncMs), resync);
  };

  void watchNode();
  later(jitter(options.resyncMs), resync);
  return {
    async close() {
      closed = true;
      clear();
      await watch?.close().catch(() => {});
    },
  };
}
