/**
 * The composition root of clusterd's service layer: wires the features'
 * services to a store and the cluster CA, and runs the controllers while this
 * replica holds the leader lease. It never listens; transports (rest/, grpc/)
 * take the runtime it returns.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { caCertHash } from '../pki/index.ts';
import { type Mirror, openMirror } from '../store/mirror.ts';
import type { Store } from '../store/store.ts';
import type { Controller } from './controllers/controller.ts';
import { type LeaderElection, startLeaderElection } from './controllers/leader-election.ts';
import { startNodeLifecycleController } from './controllers/node-lifecycle.ts';
import { startRebalancer } from './controllers/rebalancer.ts';
import { startTokenCleanupController } from './controllers/token-cleanup.ts';
import { DeviceService } from './features/devices/device-service.ts';
import { MemoryService } from './features/memory/memory-service.ts';
import type { JoinLimits } from './features/nodes/join-limits.ts';
import { NodeService } from './features/nodes/node-service.ts';
import type { ProcessConfig } from './features/processes/process-config.ts';
import {
  createProcessService,
  type ProcessServiceInternal,
} from './features/processes/process-service.ts';
import { TokenService } from './features/tokens/token-service.ts';
import { UserService } from './features/users/user-service.ts';
import type { LimitsConfig, QuotaConfig } from './limits.ts';
import { authorize } from './service/authz.ts';
import type { Caller, ControlPlaneRuntime, ControlPlaneStats } from './service/contracts.ts';
import { Credentials } from './service/credentials.ts';
import { keys } from './service/keys.ts';
import { putJson, updateAtomically } from './service/optimistic.ts';
import { ResourceWatchService } from './service/watch-service.ts';

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
  /** Limits of join (features/nodes/join-limits.ts); each field defaults. */
  join?: Partial<JoinLimits>;
  /** Every node is this machine: loopback page-server endpoints are allowed in heartbeats. */
  singleMachine?: boolean;
  /** Watch caps and queue bounds (limits.ts); defaults for what is left out. */
  limits?: Partial<LimitsConfig>;
  /** Quotas per owner: PID blocks, segments (limits.ts). */
  quotas?: Partial<QuotaConfig>;
  /** Where the service layer's metrics go (the watches'); default a registry of its own. */
  registry?: Registry;
}

interface ClusterRecord {
  name: string;
  caCertHash: string;
  createdAt?: number;
}

/** The features' services, built once per replica. */
interface Services {
  tokens: TokenService;
  nodes: NodeService;
  users: UserService;
  memory: MemoryService;
  devices: DeviceService;
  processes: ProcessServiceInternal;
}

/**
 * The first replica records the cluster; later ones check they serve the
 * same one (the same CA). Returns the record as stored.
 */
async function recordCluster(
  store: Store,
  clusterName: string,
  hash: string,
  now: number,
): Promise<ClusterRecord | undefined> {
  // Created once, by whichever replica comes first; the others read it.
  const cluster = await updateAtomically(store, [keys.cluster], (current) => {
    const existing = current.get<ClusterRecord>(keys.cluster);
    if (existing) return { writes: [], result: existing };
    const created: ClusterRecord = { name: clusterName, caCertHash: hash, createdAt: now };
    return { writes: [putJson(keys.cluster, created)], result: created };
  });
  if (cluster && cluster.caCertHash !== hash) {
    throw new Error(
      `this store belongs to cluster ${cluster.name} with CA ${cluster.caCertHash}; clusterd was given CA ${hash}`,
    );
  }
  return cluster;
}

function createServices(
  options: ControlPlaneOptions,
  mirror: Mirror,
  now: () => number,
  replicaId: string,
): Services {
  const { store, logger } = options;
  const nodeGraceSeconds = options.nodeGraceSeconds ?? 15;
  const tokens = new TokenService(store, now);
  return {
    tokens,
    nodes: new NodeService({
      store,
      ca: options.ca,
      tokens,
      now,
      nodeGraceSeconds,
      mirror,
      ...(options.join === undefined ? {} : { join: options.join }),
      singleMachine: options.singleMachine === true,
    }),
    users: new UserService({ store, mirror, ca: options.ca, now }),
    memory: new MemoryService({ store, mirror, now, quotas: options.quotas ?? {} }),
    devices: new DeviceService({ store, now, mirror }),
    processes: createProcessService({
      store,
      mirror,
      now,
      replicaId,
      fenceMarginMs: (options.processes?.fenceMarginSeconds ?? 2) * 1000,
      logger: logger.child({ component: 'processes' }),
      ...(options.quotas?.pidBlocksPerOwner === undefined
        ? {}
        : { pidBlocksPerOwner: options.quotas.pidBlocksPerOwner }),
    }),
  };
}

/** The leader-only controllers, each acting through a service. */
function startControllers(
  options: ControlPlaneOptions,
  services: Services,
  now: () => number,
): Controller[] {
  const { logger } = options;
  const config = options.processes ?? {};
  const controllers = [
    startNodeLifecycleController({
      nodes: services.nodes,
      nodeGraceSeconds: options.nodeGraceSeconds ?? 15,
      now,
      logger,
    }),
    startTokenCleanupController({ tokens: services.tokens, logger }),
  ];
  if (config.rebalance !== false) {
    controllers.push(
      startRebalancer({
        processes: services.processes,
        now,
        logger: logger.child({ component: 'rebalancer' }),
        ...(config.rebalanceIntervalMs !== undefined
          ? { intervalMs: config.rebalanceIntervalMs }
          : {}),
        ...(config.policy !== undefined ? { policy: config.policy } : {}),
      }),
    );
  }
  return controllers;
}

/** Runs `start()`'s controllers while `election` says this replica leads. */
class LeaderControllers {
  #running: Controller[] = [];

  constructor(election: LeaderElection, start: () => Controller[]) {
    election.onChange((leading) => {
      if (leading) {
        this.#running = start();
      } else {
        for (const c of this.#take()) void c.stop();
      }
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.#take().map((c) => c.stop()));
  }

  #take(): Controller[] {
    const running = this.#running;
    this.#running = [];
    return running;
  }
}

async function statsOf(services: Services, leader: boolean): Promise<ControlPlaneStats> {
  const [nodesByState, space] = await Promise.all([
    services.nodes.countByState(),
    services.memory.spaceStats(),
  ]);
  return {
    nodesByState,
    addressSpaceAllocatedBytes: space.allocatedBytes,
    addressSpaceFreeBytes: space.freeBytes,
    leader,
    joinRate: services.nodes.joinRateStats(),
  };
}

async function storeAnswers(store: Store): Promise<boolean> {
  try {
    await store.revision();
    return true;
  } catch {
    return false;
  }
}

export async function createControlPlane(
  options: ControlPlaneOptions,
): Promise<ControlPlaneRuntime> {
  const { store, logger } = options;
  const now = options.now ?? Date.now;
  const replicaId = randomUUID();
  const hash = caCertHash(options.ca.certPem);
  const cluster = await recordCluster(store, options.clusterName, hash, now());

  const mirror = await openMirror(store, keys.root, { logger });
  const services = createServices(options, mirror, now, replicaId);
  const election = startLeaderElection({
    store,
    key: keys.leader,
    replicaId,
    ttlSeconds: options.leaderTtlSeconds ?? 5,
    logger,
  });
  const controllers = new LeaderControllers(election, () =>
    options.controllers === false ? [] : startControllers(options, services, now),
  );
  const { tokens, nodes, users, memory, devices, processes } = services;

  return {
    cluster: {
      async info(caller: Caller) {
        authorize(caller, 'getCluster');
        return {
          name: cluster?.name ?? options.clusterName,
          caCertHash: hash,
          store: store.backend,
          nodes: await nodes.count(),
          leader: election.isLeader(),
        };
      },
    },
    // One checker per kind of credential; the admin credential has none (not revocable).
    credentials: new Credentials(
      { node: nodes.credentialChecker(), user: users.credentialChecker() },
      logger.child({ component: 'credentials' }),
    ),
    tokens,
    users,
    watch: new ResourceWatchService(store, {
      limits: options.limits ?? {},
      ...(options.registry ? { registry: options.registry } : {}),
      logger: logger.child({ component: 'watch' }),
    }),
    nodes,
    memory,
    devices,
    processes,
    stats: () => statsOf(services, election.isLeader()),
    ready: () => storeAnswers(store),
    isLeader: () => election.isLeader(),
    async close() {
      await controllers.stop();
      await election.close();
      await mirror.close();
    },
  };
}
