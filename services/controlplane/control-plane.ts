/**
 * The composition root of clusterd's service layer: wires the services to a
 * store and the cluster CA, and runs the controllers while this replica holds
 * the leader lease. It never listens; transports (rest/, later grpc/) take the
 * runtime it returns.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type {
  Caller,
  ControlPlaneRuntime,
  ControlPlaneStats,
  NodeState,
} from '../api/contracts.ts';
import { createMemoryLayout, layoutStats, type MemoryLayout } from '../core/memory-layout.ts';
import { caCertHash } from '../pki/index.ts';
import { openMirror } from '../store/mirror.ts';
import type { Store } from '../store/store.ts';
import { startLeaderElection } from './controllers/leader-election.ts';
import { type Controller, startNodeLifecycleController } from './controllers/node-lifecycle.ts';
import { startRebalancer } from './controllers/rebalancer.ts';
import { startTokenCleanupController } from './controllers/token-cleanup.ts';
import { createDeviceService } from './features/devices/device-service.ts';
import { createMemoryService } from './features/memory/memory-service.ts';
import { createNodeService, type NodeRecord } from './features/nodes/node-service.ts';
import type { ProcessConfig } from './features/processes/process-config.ts';
import { createProcessService } from './features/processes/process-service.ts';
import { createTokenService } from './features/tokens/token-service.ts';
import { requireMember } from './service/authz.ts';
import { keys } from './service/keys.ts';
import { readJson } from './service/optimistic.ts';
import { createWatchService } from './service/watch-service.ts';

export interface ControlPlaneOptions {
  store: Store;
  ca: { certPem: string; keyPem: string };
  clusterName: string;
  logger: Logger;
  now?: () => number;
  /** Heartbeat lease TTL: a node silent this long becomes NotReady. Default 15. */
  nodeGraceSeconds?: number;
  /** Leader lease TTL. Default 5. */
  leaderTtlSeconds?: number;
  /** Run controllers when leading (default true; tests of the API alone turn it off). */
  controllers?: boolean;
  /** The network process space: rebalancer and fencing settings (process-config.ts). */
  processes?: ProcessConfig;
}

const STATES: NodeState[] = ['Joining', 'Ready', 'NotReady', 'Draining', 'Removed'];

export async function createControlPlane(
  options: ControlPlaneOptions,
): Promise<ControlPlaneRuntime> {
  const { store, logger } = options;
  const now = options.now ?? Date.now;
  const nodeGraceSeconds = options.nodeGraceSeconds ?? 15;
  const replicaId = randomUUID();
  const hash = caCertHash(options.ca.certPem);

  // The first replica records the cluster; later ones check they serve the same one.
  await store.txn({
    compares: [{ key: keys.cluster, target: 'version', op: '==', value: 0 }],
    onSuccess: [
      {
        type: 'put',
        key: keys.cluster,
        value: JSON.stringify({ name: options.clusterName, caCertHash: hash, createdAt: now() }),
      },
    ],
  });
  const cluster = await readJson<{ name: string; caCertHash: string }>(store, keys.cluster);
  if (cluster && cluster.caCertHash !== hash) {
    throw new Error(
      `this store belongs to cluster ${cluster.name} with CA ${cluster.caCertHash}; clusterd was given CA ${hash}`,
    );
  }

  const mirror = await openMirror(store, keys.root, { logger });
  const tokens = createTokenService(store, now);
  const nodes = createNodeService({ store, ca: options.ca, tokens, now, nodeGraceSeconds, mirror });
  const memory = createMemoryService(store, now);
  const devices = createDeviceService({ store, now, mirror });
  const processConfig = options.processes ?? {};
  const processes = createProcessService({
    store,
    mirror,
    now,
    replicaId,
    fenceMarginMs: (processConfig.fenceMarginSeconds ?? 2) * 1000,
    logger: logger.child({ component: 'processes' }),
  });

  const election = startLeaderElection({
    store,
    key: keys.leader,
    replicaId,
    ttlSeconds: options.leaderTtlSeconds ?? 5,
    logger,
  });
  let controllers: Controller[] = [];
  if (options.controllers ?? true) {
    election.onChange((leading) => {
      if (leading) {
        controllers = [
          startNodeLifecycleController({ store, now, nodeGraceSeconds, logger }),
          startTokenCleanupController({ store, now, logger }),
          ...(processConfig.rebalance === false
            ? []
            : [
                startRebalancer({
                  processes,
                  now,
                  logger: logger.child({ component: 'rebalancer' }),
                  ...(processConfig.rebalanceIntervalMs !== undefined
                    ? { intervalMs: processConfig.rebalanceIntervalMs }
                    : {}),
                  ...(processConfig.policy !== undefined ? { policy: processConfig.policy } : {}),
                }),
              ]),
        ];
      } else {
        const stopping = controllers;
        controllers = [];
        for (const c of stopping) void c.stop();
      }
    });
  }

  return {
    cluster: {
      async info(caller: Caller) {
        requireMember(caller);
        const { kvs } = await store.range(keys.nodes);
        return {
          name: cluster?.name ?? options.clusterName,
          caCertHash: hash,
          store: store.backend,
          nodes: kvs.length,
          leader: election.isLeader(),
        };
      },
    },
    tokens: { create: tokens.create, list: tokens.list, delete: tokens.delete },
    watch: createWatchService(store),
    nodes,
    memory,
    devices,
    processes,

    async stats(): Promise<ControlPlaneStats> {
      await mirror.sync();
      const kvs = mirror.range(keys.nodes);
      const layoutKv = mirror.get(keys.layout);
      const layout = layoutKv ? (JSON.parse(layoutKv.value) as MemoryLayout) : undefined;
      const nodesByState = Object.fromEntries(STATES.map((s) => [s, 0])) as Record<
        NodeState,
        number
      >;
      for (const kv of kvs) nodesByState[(JSON.parse(kv.value) as NodeRecord).state]++;
      const stats = layoutStats(layout ?? createMemoryLayout());
      return {
        nodesByState,
        addressSpaceAllocatedBytes: stats.allocatedBytes,
        addressSpaceFreeBytes: stats.freeBytes,
        leader: election.isLeader(),
      };
    },

    async ready() {
      try {
        await store.revision();
        return true;
      } catch {
        return false;
      }
    },

    isLeader: () => election.isLeader(),

    async close() {
      await Promise.all(controllers.map((c) => c.stop()));
      controllers = [];
      await election.close();
      await mirror.close();
    },
  };
}
