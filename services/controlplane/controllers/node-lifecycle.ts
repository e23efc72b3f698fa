/**
 * Node lifecycle controller (leader only): a node whose liveness key has
 * expired with its lease is marked NotReady. Built on services/reconcile: two
 * informers (node records, heartbeats) enqueue a node's name on any change; the
 * work queue reconciles one name at a time. Level-based and idempotent: the
 * worker compares the node's recorded state with the presence of its
 * heartbeat (core/nodes.ts `stateWhenSilent`); a Joining node still within
 * its grace is looked at again when the grace ends (`requeueAfterMs`). The
 * write is the node service's CAS over the node and its liveness key, so a
 * heartbeat that races it wins. It never frees a range: only `node remove` does.
 */
import type { Logger } from 'pino';
import { stateWhenSilent } from '../../core/nodes.ts';
import { Informer, WorkQueue, type WorkResult } from '../../reconcile/index.ts';
import type { NodeService } from '../features/nodes/node-service.ts';
import type { NodeRecord } from '../features/nodes/records.ts';
import type { Controller } from './controller.ts';

export type { Controller };

export interface NodeLifecycleOptions {
  nodes: Pick<NodeService, 'nodeSource' | 'heartbeatSource' | 'markNotReadyIfSilent'>;
  nodeGraceSeconds: number;
  now: () => number;
  /** Re-list both informers and look at every node this often. Default 60 s. */
  resyncMs?: number;
  logger: Logger;
}

/** What the worker does with one node: nothing, mark it, or look again when its grace ends. */
function decide(
  node: NodeRecord,
  alive: boolean,
  graceMs: number,
  now: number,
): 'mark' | { requeueAfterMs: number } | undefined {
  if (stateWhenSilent(node, alive, graceMs, now) !== undefined) return 'mark';
  // A silent Joining node gets one grace period to beat: look again when it ends.
  if (!alive && node.state === 'Joining') {
    return { requeueAfterMs: Math.max(1, node.joinedAt + graceMs - now + 1) };
  }
  return undefined;
}

export function startNodeLifecycleController(options: NodeLifecycleOptions): Controller {
  const { nodes: service, logger } = options;
  let changed = 0;

  async function reconcileNode(name: string): Promise<WorkResult> {
    const node = nodes.get(name);
    if (!node) return;
    const alive = beats.get(name) !== undefined;
    const decision = decide(node, alive, options.nodeGraceSeconds * 1000, options.now());
    if (decision !== 'mark') return decision;
    const from = await service.markNotReadyIfSilent(name);
    if (from === undefined) return;
    changed++;
    logger.info({ node: name, from }, 'node NotReady: heartbeat lease expired');
  }

  const queue = new WorkQueue<string>({ name: 'node-lifecycle', worker: reconcileNode, logger });
  const enqueue = (name: string) => queue.add(name);
  const resyncMs = options.resyncMs ?? 60_000;
  const nodes = new Informer({
    name: 'nodes',
    source: service.nodeSource(),
    onChange: enqueue,
    resyncMs,
    logger,
  }).start();
  const beats = new Informer({
    name: 'heartbeats',
    source: service.heartbeatSource(),
    onChange: enqueue,
    resyncMs,
    logger,
  }).start();

  return {
    /** Looks at every node now and waits for the queue; returns how many it marked since the last call. */
    async reconcile() {
      await Promise.all([nodes.waitForSync(), beats.waitForSync()]);
      for (const [name] of nodes.entries()) queue.add(name);
      await queue.idle();
      const count = changed;
      changed = 0;
      return count;
    },
    async stop() {
      await Promise.all([nodes.close(), beats.close()]);
      await queue.close();
    },
  };
}
