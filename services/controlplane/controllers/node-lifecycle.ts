/**
 * Node lifecycle controller (leader only): a node whose liveness key has
 * expired with its lease is marked NotReady. Level-based and idempotent: each
 * pass compares every node's recorded state with the presence of its
 * heartbeat, so a missed watch event is corrected by the next pass. It never
 * frees a range: only `node remove` does.
 */
import type { Logger } from 'pino';
import type { Store } from '../../store/store.ts';
import type { NodeRecord } from '../features/nodes/node-service.ts';
import { keys } from '../service/keys.ts';
import { putJson } from '../service/optimistic.ts';
import { startPeriodicController } from './periodic.ts';

export interface Controller {
  /** Runs one reconcile pass now (tests, and the watch trigger). */
  reconcile(): Promise<number>;
  stop(): Promise<void>;
}

export function startNodeLifecycleController(options: {
  store: Store;
  now: () => number;
  nodeGraceSeconds: number;
  intervalMs?: number;
  logger: Logger;
}): Controller {
  const { store, now, logger } = options;
  const graceMs = options.nodeGraceSeconds * 1000;

  async function pass(): Promise<number> {
    const [nodes, beats] = await Promise.all([
      store.range(keys.nodes),
      store.range(keys.heartbeats),
    ]);
    const alive = new Set(beats.kvs.map((kv) => kv.key.slice(keys.heartbeats.length)));
    let changed = 0;
    for (const kv of nodes.kvs) {
      const node = JSON.parse(kv.value) as NodeRecord;
      const silent = !alive.has(node.name);
      // Draining is the admin's intent and stays; Joining gets one grace period to beat.
      const due =
        node.state === 'Ready' || (node.state === 'Joining' && now() - node.joinedAt > graceMs);
      if (!silent || !due) continue;
      // CAS on the revision we read: a heartbeat that raced us wins.
      const res = await store.txn({
        compares: [{ key: kv.key, target: 'modRevision', op: '==', value: kv.modRevision }],
        onSuccess: [putJson(kv.key, { ...node, state: 'NotReady' })],
      });
      if (res.succeeded) {
        changed++;
        logger.info(
          { node: node.name, from: node.state },
          'node NotReady: heartbeat lease expired',
        );
      }
    }
    return changed;
  }

  return startPeriodicController({
    pass,
    intervalMs: options.intervalMs ?? Math.max(250, graceMs / 3),
    logger,
    failMessage: 'node lifecycle pass failed',
  });
}
