/**
 * Follows this node's record (`nodes/<name>`, a NodeView) with an Informer of
 * services/reconcile: `nodes.get(name)` as its list, the watch of that key
 * (resumed with back-off, re-listed on WATCH_COMPACTED), and a re-read every
 * `resyncMs` that redelivers the node. When clusterd cannot be reached, or
 * the record goes away, the last known node stays: a control-plane outage
 * does not take the node's bytes away.
 */
import type { Logger } from 'pino';
import type { NodeView } from '../api/contracts.ts';
import type { AmalgamClient } from '../client/index.ts';
import { Informer } from '../reconcile/index.ts';
import { watchKeys } from './watch-source.ts';

export interface NodeFollowerOptions {
  node: string;
  client: Pick<AmalgamClient, 'nodes' | 'watch'>;
  resyncMs: number;
  logger: Logger;
  /** This node's record changed, or a resync redelivers it (the consumer is level based). */
  onNode(node: NodeView, why: string): void;
}

export function followNode(options: NodeFollowerOptions): { close(): Promise<void> } {
  const { client, node } = options;
  const key = `nodes/${node}`;
  const informer = new Informer<NodeView>({
    name: 'node',
    source: {
      list: async () => ({ items: [[key, await client.nodes.get(node)] as const] }),
      watch: (fromRevision) => watchKeys<NodeView>(client, key, (k) => k === key, fromRevision),
    },
    onChange: (_key, value, previous) => {
      if (value !== null) options.onNode(value, previous === null ? 'node read' : 'node changed');
    },
    resyncMs: options.resyncMs,
    baseDelayMs: 500,
    logger: options.logger,
  });
  informer.start();
  return { close: () => informer.close() };
}
