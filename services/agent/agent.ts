/**
 * clusteragent: small modules composed here, each with its own file.
 *
 * - page-server-controller.ts: runs the page server on exactly the node's
 *   committed range (desired state from node-follower.ts - a watch of
 *   `nodes/<name>` and a resync - and from every heartbeat answer).
 * - heartbeat.ts: heartbeats with the node's load and the page server's
 *   endpoint; withheld (the node turns NotReady) while the page server cannot
 *   be restarted.
 * - page-server-peers.ts: the page server's `--peers` file (the nodes it
 *   serves, each with its recorded key) kept from a watch of `nodes/`.
 * - device-space.ts: this machine's devices published, the page server's
 *   `--devices` file and remotedev-fuse's `--tree` file kept in step with the
 *   control plane, remotedev-fuse run and supervised when configured.
 * - processes/: the cluster process supervisor, when configured.
 * - metrics-server.ts: `/metrics` (plain HTTP on loopback), its own registry.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { NodeView } from '../api/contracts.ts';
import { type AmalgamClient, createClient } from '../client/index.ts';
import { type AgentConfig, checkDeviceConfig } from './config.ts';
import { type DeviceSpace, startDeviceSpace } from './device-space.ts';
import { procEnv } from './fingerprint/index.ts';
import { Heartbeat } from './heartbeat.ts';
import { type AgentMetrics, createAgentMetrics } from './metrics.ts';
import { startMetricsServer } from './metrics-server.ts';
import { followNode } from './node-follower.ts';
import { PageServerController } from './page-server-controller.ts';
import type { Desired, Range } from './page-server-decision.ts';
import { PageServerPeers } from './page-server-peers.ts';
import type { PageServerOptions } from './pageserver-process.ts';
import type { PeerIdentities } from './peer-identities.ts';
import { startProcessesFromConfig } from './processes/start-from-config.ts';
import type { ProcessSupervisor } from './processes/supervisor.ts';

export interface AgentOptions {
  config: AgentConfig;
  logger: Logger;
  /** Re-read the node every this many ms even without a watch event. Default 10 s. */
  resyncMs?: number;
  /** Health check (STAT) period. Default 2 s. */
  healthMs?: number;
  /** Withhold heartbeats (the node goes NotReady) after this many failed page-server attempts in a row. Default 3. */
  failuresBeforeNotReady?: number;
}

export interface Agent {
  /** `http://host:port/metrics`. */
  metricsUrl: string;
  metrics: AgentMetrics;
  /** The running page server, if any (for tests and status). */
  pageServer(): { pid: number; host: string; port: number; range: Range } | null;
  /** The device space: the two files it keeps, and the remotedev-fuse mount if one runs. */
  devices(): { devicesFile: string; treeFile: string; mount: { pid: number; dir: string } | null };
  /** The cluster process supervisor (when `processes` is configured). */
  processes: Awaited<ReturnType<typeof startProcessesFromConfig>>;
  /** The nodes this agent's endpoints serve, with their keys; null without TLS. */
  peers: PeerIdentities | null;
  close(): Promise<void>;
}

const rangeOf = (node: NodeView): Desired =>
  node.state === 'Removed' ? null : { start: node.range.start, size: node.range.size };

/**
 * The page server speaks mutual TLS with this node's own certificate, so only
 * cluster members reach its bytes. Plaintext only when the config asks for it
 * (`pageserver.plaintextLoopback`), and the page server itself refuses that on
 * anything but a loopback address: it exists to measure what TLS costs.
 */
function pageServerOptions(
  config: AgentConfig,
  devicesFile: string,
  peersFile: string | undefined,
): PageServerOptions {
  if (config.pageserver?.plaintextLoopback === true) return { ...config.pageserver, devicesFile };
  const tlsArgs = [
    '--tls-cert',
    config.certFile,
    '--tls-key',
    config.keyFile,
    '--tls-ca',
    config.caFile,
    ...(peersFile === undefined ? [] : ['--peers', peersFile]),
  ];
  return {
    ...config.pageserver,
    plaintextLoopback: false,
    devicesFile,
    extraArgs: [...tlsArgs, ...(config.pageserver?.extraArgs ?? [])],
  };
}

function deviceSpaceSettings(config: AgentConfig, tls: boolean) {
  const files = { certFile: config.certFile, keyFile: config.keyFile, caFile: config.caFile };
  return {
    node: config.name,
    ...(config.remotedev ? { remotedev: config.remotedev } : {}),
    ...(tls ? { tls: files } : {}),
  };
}

type Identity = { ca: string; cert: string; key: string };

async function readIdentity(config: AgentConfig): Promise<Identity> {
  const [ca, cert, key] = await Promise.all(
    [config.caFile, config.certFile, config.keyFile].map((f) => readFile(f, 'utf8')),
  );
  return { ca: ca as string, cert: cert as string, key: key as string };
}

/** The agent's state directory (a temporary one, removed on close, unless configured). */
async function agentStateDir(config: AgentConfig) {
  if (config.stateDir !== undefined) {
    return { stateDir: config.stateDir, removeStateDir: () => Promise.resolve() };
  }
  const stateDir = await mkdtemp(join(tmpdir(), `amalgam-agent-${config.name}-`));
  return { stateDir, removeStateDir: () => rm(stateDir, { recursive: true, force: true }) };
}

/** The page-server controller and the heartbeat, wired to each other and to the rest. */
function startNodeLoops(
  options: AgentOptions,
  identity: Identity,
  deps: {
    client: AmalgamClient;
    metrics: AgentMetrics;
    devices: DeviceSpace;
    peersFile: string | undefined;
    processes: ProcessSupervisor | null;
    setController(c: PageServerController): void;
  },
): { controller: PageServerController; heartbeat: Heartbeat } {
  const { config, logger } = options;
  const tls = config.pageserver?.plaintextLoopback !== true;
  const controller = new PageServerController({
    node: config.name,
    options: pageServerOptions(config, deps.devices.devicesFile, deps.peersFile),
    tls: tls ? { ...identity, node: config.name } : null,
    healthMs: options.healthMs ?? 2000,
    metrics: deps.metrics,
    logger,
    onStarted: () => void heartbeat.publishEndpoint(),
  });
  deps.setController(controller);
  const heartbeat = new Heartbeat({
    node: config.name,
    client: deps.client,
    env: procEnv(config.contributeBytes, config.devices),
    heartbeatMs: (config.heartbeatSeconds ?? 5) * 1000,
    failuresBeforeNotReady: options.failuresBeforeNotReady ?? 3,
    pageServer: controller,
    metrics: deps.metrics,
    logger,
    onNode: (node) => controller.setDesired(rangeOf(node), 'heartbeat'),
    onAcknowledged: (sentAt) => deps.processes?.leaseRenewed(sentAt),
    onDevices: (items) => deps.devices.inventory(items),
  });
  heartbeat.start();
  return { controller, heartbeat };
}

/** With TLS: the page server's `--peers` file, written before anything can start it. */
async function startPeers(
  config: AgentConfig,
  deps: { client: AmalgamClient; identity: Identity; stateDir: string; resyncMs: number },
  logger: Logger,
  onChanged: () => void,
): Promise<PageServerPeers | null> {
  if (config.pageserver?.plaintextLoopback === true) return null;
  const peers = new PageServerPeers({
    node: config.name,
    client: deps.client,
    file: join(deps.stateDir, 'pageserver-peers'),
    certPem: deps.identity.cert,
    resyncMs: deps.resyncMs,
    logger,
    onChanged,
  });
  await peers.start();
  return peers;
}

/** The agent's /metrics; when it cannot start, nothing of this agent may outlive it (no mount, no watch, no client). */
async function startMetrics(
  config: AgentConfig,
  metrics: ReturnType<typeof createAgentMetrics>,
  undo: () => Promise<void>,
) {
  return startMetricsServer(
    metrics.registry,
    config.metricsHost ?? '127.0.0.1',
    config.metricsPort ?? 0,
  ).catch(async (err: unknown) => {
    await undo();
    throw err;
  });
}

export async function startAgent(options: AgentOptions): Promise<Agent> {
  const { config } = options;
  const logger = options.logger.child({ node: config.name });
  const resyncMs = options.resyncMs ?? 10_000;
  const identity = await readIdentity(config);
  const client = createClient({ endpoints: config.server, ...identity });
  checkDeviceConfig(config);
  const metrics = createAgentMetrics();
  const tls = config.pageserver?.plaintextLoopback !== true;
  const { stateDir, removeStateDir } = await agentStateDir(config);
  let pageServer: PageServerController | null = null;
  const devices = await startDeviceSpace({
    ...deviceSpaceSettings(config, tls),
    client,
    logger,
    stateDir,
    resyncMs,
    metrics,
    onPageServerDevicesChanged: () => pageServer?.devicesChanged(),
  });
  const peers = await startPeers(config, { client, identity, stateDir, resyncMs }, logger, () =>
    pageServer?.peersChanged(),
  );
  const metricsServer = await startMetrics(config, metrics, async () => {
    await Promise.all([peers?.close(), devices.close()]);
    await client.close();
    await removeStateDir();
  });
  logger.info({ metricsUrl: metricsServer.url, server: config.server }, 'clusteragent started');
  const processes = await startProcessesFromConfig(
    config,
    client,
    identity,
    logger,
    peers?.identities,
  );
  const { controller, heartbeat } = startNodeLoops({ ...options, logger }, identity, {
    client,
    metrics,
    devices,
    peersFile: peers?.file,
    processes,
    setController: (c) => {
      pageServer = c;
    },
  });
  const follower = followNode({
    node: config.name,
    client,
    resyncMs,
    logger,
    onNode: (node, why) => controller.setDesired(rangeOf(node), why),
  });
  let closed = false;
  return {
    metricsUrl: metricsServer.url,
    metrics,
    pageServer: () => controller.running(),
    devices: () => ({
      devicesFile: devices.devicesFile,
      treeFile: devices.treeFile,
      mount: devices.mount(),
    }),
    processes,
    peers: peers?.identities ?? null,
    async close() {
      if (closed) return;
      closed = true;
      await processes?.close();
      heartbeat.close();
      await Promise.all([follower.close(), peers?.close()]);
      await devices.close(); // the mount first: it may have I/O in flight to page servers
      await controller.close();
      await metricsServer.close();
      await client.close();
      await removeStateDir();
      logger.info('clusteragent stopped');
    },
  };
}
