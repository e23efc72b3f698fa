/**
 * Node lifecycle controller (leader only): a node whose liveness key has
 * expired with its lease is marked NotReady. Level-based and idempotent: each
 * pass asks the node service which nodes are silent (one mirror read) and has
 * it mark each one in its own CAS, so a heartbeat that races the pass wins and
 * a missed watch event is corrected by the next pass. It never frees a range:
 * only `node remove` does.
 */
import type { Logger } from 'pino';
import type { NodeService } from '../features/nodes/node-service.ts';
import { type Controller, startPeriodicController } from './periodic.ts';

export type { Controller };

export function startNodeLifecycleController(options: {
  nodes: Pick<NodeService, 'silentNodes' | 'markNotReadyIfSilent'>;
  nodeGraceSeconds: number;
  intervalMs?: number;
  logger: Logger;
}): Controller {
  const { nodes, logger } = options;

  async function pass(stopped: () => boolean): Promise<number> {
    let changed = 0;
    for (const name of await nodes.silentNodes()) {
      if (stopped()) break;
      const from = await nodes.markNotReadyIfSilent(name);
      if (from === undefined) continue;
      changed++;
      logger.info({ node: name, from }, 'node NotReady: heartbeat lease expired');
    }
    return changed;
  }

  return startPeriodicController({
    pass,
    intervalMs: options.intervalMs ?? Math.max(250, (options.nodeGraceSeconds * 1000) / 3),
    logger,
    failMessage: 'node lifecycle pass failed',
  });
}
