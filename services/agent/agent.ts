/**
 * clusteragent, first slice: heartbeats with the node's load, and a level-based
 * reconciler that runs the page server on exactly the node's committed range.
 *
 * - Heartbeats every `heartbeatSeconds` (±10 % jitter), backing off on errors.
 * - Desired state: `nodes.get(name).range`, re-read on every change of
 *   `nodes/<name>` (watch), on every heartbeat answer and every `resyncMs`.
 *   When clusterd cannot be reached the last known range stays desired: a
 *   control-plane outage does not take the node's bytes away.
 * - The reconciler (reconcile.ts `decide`) runs from one deduplicated queue:
 *   any number of kicks while it runs make one more pass. It never starts the
 *   page server before a range of size > 0 is committed; restarts it with
 *   exponential back-off when it exits; health-checks it with STAT (which also
 *   feeds the metrics) and restarts it after 3 failed checks in a row.
 * - NotReady only when the page server cannot be restarted: once
 *   `failuresBeforeNotReady` (default 3) attempts in a row to have one failed
 *   (reconcile.ts `pageServerFailed`: a start that failed, e.g. a missing
 *   binary, or a process that exited before passing a health check; the crash
 *   that began the streak counts), the agent withholds its heartbeats while it
 *   keeps retrying with back-off. The design is the simplest honest one: the
 *   control plane needs no new field or rule, its node-lifecycle controller
 *   marks the node NotReady when the heartbeat lease expires, exactly as for a
 *   dead agent (a node that cannot serve its range is, to clients, down). A
 *   restart that succeeds sends a heartbeat at once (`publishEndpoint`) and the
 *   node is Ready again; a SIGKILL followed by a good restart never withholds
 *   a beat, so the node stays Ready. The watch and the resync keep the desired
 *   range current meanwhile (they do not depend on heartbeats).
 * - The network device space (device-space.ts): publishes this machine's
 *   devices (the `devices` fingerprinter, on each heartbeat's probe, when they
 *   changed), keeps the page server's `--devices` file and remotedev-fuse's
 *   `--tree` file in step with the control plane (SIGHUP after each rewrite),
 *   and with `remotedev.mount` runs and supervises remotedev-fuse; the page
 *   server is always started with `--devices`.
 * - `/metrics` (plain HTTP on loopback), its own prom-client registry.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { NodeView, PageServerEndpoint } from '../api/contracts.ts';
import { type AmalgamClient, createClient } from '../client/index.ts';
import { PageServerClient } from '../client/pageserver-client.ts';
import { closableTimers } from './closable-timers.ts';
import { type AgentConfig, checkDeviceConfig } from './config.ts';
import { type DeviceSpace, startDeviceSpace } from './device-space.ts';
import { fingerprint, procEnv } from './fingerprint/index.ts';
import { type AgentMetrics, createAgentMetrics } from './metrics.ts';
import {
  type Actual,
  backoffMs,
  type Desired,
  decide,
  pageServerFailed,
  type Range,
} from './page-server-decision.ts';
import {
  type PageServerOptions,
  type RunningPageServer,
  startPageServer,
} from './pageserver-process.ts';
import { startProcessesFromConfig } from './processes/hook.ts';

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
  close(): Promise<void>;
}

const HEALTH_FAILURES_BEFORE_RESTART = 3;
/**
 * And for at least this long: a restart loses the bytes the page server holds,
 * so a server that is only slow (a busy machine, or an event loop this agent
 * shares) must not be mistaken for a hung one. An exit is seen at once anyway.
 */
const HEALTH_GRACE_MS = 15_000;

function jitter(ms: number): number {
  return ms * (0.9 + Math.random() * 0.2);
}

function rangeOf(node: NodeView): Desired {
  if (node.state === 'Removed') return null;
  return { start: node.range.start, size: node.range.size };
}

export async function startAgent(options: AgentOptions): Promise<Agent> {
  const { config } = options;
  const logger = options.logger.child({ node: config.name });
  const heartbeatMs = (config.heartbeatSeconds ?? 5) * 1000;
  const resyncMs = options.resyncMs ?? 10_000;
  const healthMs = options.healthMs ?? 2000;
  const failuresBeforeNotReady = options.failuresBeforeNotReady ?? 3;
  const [ca, cert, key] = await Promise.all(
    [config.caFile, config.certFile, config.keyFile].map((f) => readFile(f, 'utf8')),
  );
  const client: AmalgamClient = createClient({
    endpoints: config.server,
    ca: ca as string,
    cert: cert as string,
    key: key as string,
  });
  checkDeviceConfig(config);
  const metrics = createAgentMetrics();
  const env = procEnv(config.contributeBytes, config.devices);
  // The page server speaks mutual TLS with this node's own certificate, so only
  // cluster members reach its bytes. Plaintext only when the config asks for it
  // (`pageserver.plaintextLoopback`), and the page server itself refuses that
  // on anything but a loopback address: it exists to measure what TLS costs.
  const pageServerTls = config.pageserver?.plaintextLoopback !== true;
  const basePageServerOptions: PageServerOptions = pageServerTls
    ? {
        ...config.pageserver,
        plaintextLoopback: false,
        extraArgs: [
          '--tls-cert',
          config.certFile,
          '--tls-key',
          config.keyFile,
          '--tls-ca',
          config.caFile,
          ...(config.pageserver?.extraArgs ?? []),
        ],
      }
    : (config.pageserver ?? {});
  const stateDir =
    config.stateDir ?? (await mkdtemp(join(tmpdir(), `amalgam-agent-${config.name}-`)));
  const ownStateDir = config.stateDir === undefined;
  // Set below, once the device space exists; the page server is started after that.
  let proc: RunningPageServer | null = null;
  /** Bumped at each rewrite of the page server's devices file (a start that raced one SIGHUPs). */
  let devicesVersion = 0;
  const deviceSpace: DeviceSpace = await startDeviceSpace({
    node: config.name,
    client,
    logger,
    stateDir,
    ...(config.remotedev ? { remotedev: config.remotedev } : {}),
    ...(pageServerTls
      ? { tls: { certFile: config.certFile, keyFile: config.keyFile, caFile: config.caFile } }
      : {}),
    resyncMs,
    metrics,
    onPageServerDevicesChanged: () => {
      devicesVersion++;
      proc?.child.kill('SIGHUP');
    },
  });
  const pageServerOptions: PageServerOptions = {
    ...basePageServerOptions,
    devicesFile: deviceSpace.devicesFile,
  };
  const nodeTls = () => ({
    ca: ca as string,
    cert: cert as string,
    key: key as string,
    node: config.name,
  });
  let closed = false;
  const { later, clear: clearTimers } = closableTimers(() => closed);

  // ---- desired state ----
  let desired: Desired = null;
  const setDesired = (next: Desired, why: string): void => {
    const changed =
      (desired === null) !== (next === null) ||
      (desired !== null &&
        next !== null &&
        (desired.start !== next.start || desired.size !== next.size));
    if (changed) logger.info({ range: next, why }, 'desired page server range');
    desired = next;
    kick();
  };
  let refreshFailures = 0;
  const refresh = async (why: string): Promise<void> => {
    try {
      setDesired(rangeOf(await client.nodes.get(config.name)), why);
      refreshFailures = 0;
    } catch (err) {
      refreshFailures++;
      logger.warn({ err, why }, 'cannot read this node; keeping the last known range');
      later(backoffMs(refreshFailures, 500, 30_000), () => void refresh('retry'));
    }
  };

  // ---- actual state and the reconciler ----
  let actual: Actual = { state: 'stopped', failures: 0, retryAt: 0 };
  let stopReason: string | null = null;
  let healthFailures = 0;
  /** When the running page server last passed a health check (or started). */
  let healthySince = Date.now();
  let running = false;
  let dirty = false;

  function kick(): void {
    dirty = true;
    if (!running && !closed) void loop();
  }

  async function loop(): Promise<void> {
    running = true;
    try {
      while (dirty && !closed) {
        dirty = false;
        await step();
      }
    } finally {
      running = false;
    }
  }

  async function step(): Promise<void> {
    const action = decide(desired, actual, Date.now());
    switch (action.kind) {
      case 'none':
        return;
      case 'wait':
        later(action.ms, kick);
        return;
      case 'stop':
        logger.info({ reason: action.reason }, 'stopping the page server');
        stopReason = action.reason;
        actual = { state: 'stopping' };
        await proc?.stop();
        return; // the exit handler moves to 'stopped' and kicks
      case 'start':
        await start(action.range);
        return;
    }
  }

  async function start(range: Range): Promise<void> {
    const failures = actual.state === 'stopped' ? actual.failures : 0;
    actual = { state: 'starting', range };
    const version = devicesVersion;
    try {
      const p = await startPageServer(pageServerOptions, range);
      if (closed) {
        await p.stop();
        return;
      }
      proc = p;
      // Its devices file changed while it started: it may have read the old one.
      if (devicesVersion !== version) p.child.kill('SIGHUP');
      healthFailures = 0;
      healthySince = Date.now();
      freshStats = true;
      metrics.pageServerStarted();
      actual = { state: 'running', range, healthy: true };
      logger.info({ pid: p.pid, port: p.port, range }, 'page server started');
      void publishEndpoint();
      void p.exited.then(({ code, signal }) => onExit(p, failures, code, signal));
      later(0, () => void healthCheck(p));
    } catch (err) {
      const n = failures + 1;
      const wait = backoffMs(n);
      logger.error({ err, range, failures: n, retryInMs: wait }, 'page server did not start');
      actual = { state: 'stopped', failures: n, retryAt: Date.now() + wait };
      later(wait, kick);
    }
  }

  function onExit(
    p: RunningPageServer,
    failuresBefore: number,
    code: number | null,
    signal: string | null,
  ): void {
    if (proc !== p) return;
    proc = null;
    metrics.pageServerExited();
    const expected = stopReason === 'no-range' || stopReason === 'range-changed';
    const reason = stopReason;
    stopReason = null;
    if (closed) return;
    // A process that passed a health check starts the back-off afresh.
    const base = p === lastHealthy ? 0 : failuresBefore;
    const failures = expected ? 0 : base + 1;
    const wait = backoffMs(failures);
    if (expected) logger.info({ pid: p.pid, reason }, 'page server stopped');
    else
      logger.warn(
        { pid: p.pid, code, signal, reason, stderr: p.stderrTail().trim(), retryInMs: wait },
        'page server exited; restarting',
      );
    actual = { state: 'stopped', failures, retryAt: Date.now() + wait };
    kick();
  }

  // ---- health check, which also reads the counters ----
  let freshStats = true;
  let lastHealthy: RunningPageServer | null = null;
  async function healthCheck(p: RunningPageServer): Promise<void> {
    if (closed || proc !== p) return;
    let ok = false;
    let conn: PageServerClient | null = null;
    try {
      conn = await withTimeout(
        PageServerClient.connect(p.host, p.port, pageServerTls ? { tls: nodeTls() } : {}),
        2000,
      );
      const stats = await withTimeout(conn.stat(), 2000);
      ok = BigInt(p.range.start) === stats.rangeStart && BigInt(p.range.size) === stats.rangeSize;
      if (proc === p) {
        metrics.pageServerStats(stats, freshStats);
        freshStats = false;
      }
    } catch (err) {
      logger.warn({ err, pid: p.pid }, 'page server health check failed');
    } finally {
      await conn?.close().catch(() => {});
    }
    if (proc !== p) return;
    metrics.pageServerUp(ok);
    if (ok) {
      healthFailures = 0;
      lastHealthy = p;
      healthySince = Date.now();
    } else if (
      ++healthFailures >= HEALTH_FAILURES_BEFORE_RESTART &&
      Date.now() - healthySince >= HEALTH_GRACE_MS &&
      actual.state === 'running'
    ) {
      actual = { ...actual, healthy: false };
      kick();
    }
    later(healthMs, () => void healthCheck(p));
  }

  // ---- heartbeats ----
  function pageServerEndpoint(): PageServerEndpoint | undefined {
    if (!proc) return undefined;
    const host = proc.host.includes(':') ? `[${proc.host}]` : proc.host;
    return { address: `${host}:${proc.port}`, tls: pageServerTls };
  }

  let heartbeatFailures = 0;
  /** One extra beat as soon as the page server is up, so clients find it without waiting. */
  async function publishEndpoint(): Promise<void> {
    try {
      const inventory = await fingerprint(env);
      if (!closed) await client.nodes.heartbeat(config.name, inventory.load, pageServerEndpoint());
    } catch (err) {
      logger.warn({ err }, 'cannot publish the page server endpoint; the next heartbeat will');
    }
  }
  let withholding = false;
  async function heartbeat(): Promise<void> {
    const failed = pageServerFailed(desired, actual, failuresBeforeNotReady);
    if (failed !== withholding) {
      withholding = failed;
      if (failed) {
        logger.error(
          { failures: actual.state === 'stopped' ? actual.failures : 0 },
          'the page server cannot be restarted; withholding heartbeats so the node turns NotReady',
        );
      } else logger.info('the page server runs again; heartbeats resume');
    }
    if (failed) {
      later(jitter(heartbeatMs), () => void heartbeat());
      return;
    }
    try {
      const inventory = await fingerprint(env);
      for (const { name, error } of inventory.errors) {
        logger.warn({ err: error, fingerprinter: name }, 'fingerprinter failed');
      }
      if (inventory.devices) deviceSpace.inventory(inventory.devices);
      const sentAt = Date.now();
      const node = await client.nodes.heartbeat(config.name, inventory.load, pageServerEndpoint());
      processes?.leaseRenewed(sentAt);
      metrics.heartbeat('ok');
      if (heartbeatFailures > 0)
        logger.info({ after: heartbeatFailures }, 'heartbeats acknowledged again');
      heartbeatFailures = 0;
      setDesired(rangeOf(node), 'heartbeat');
    } catch (err) {
      metrics.heartbeat('error');
      heartbeatFailures++;
      logger.warn({ err, failures: heartbeatFailures }, 'heartbeat failed');
    }
    const wait =
      heartbeatFailures === 0
        ? jitter(heartbeatMs)
        : Math.min(
            jitter(backoffMs(heartbeatFailures, 250, 30_000)),
            Math.max(heartbeatMs, 30_000),
          );
    later(wait, () => void heartbeat());
  }

  // ---- watch of nodes/<name> ----
  const nodeKey = `nodes/${config.name}`;
  let watch: ReturnType<AmalgamClient['watch']> | null = null;
  let watchFailures = 0;
  async function watchNode(): Promise<void> {
    if (closed) return;
    watch = client.watch({ prefix: nodeKey, retryForMs: 60_000 });
    try {
      await refresh('watch opened'); // whatever changed before the watch started
      for await (const event of watch) {
        watchFailures = 0;
        if (event.key === nodeKey) await refresh(`watch ${event.type}`);
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
    later(jitter(resyncMs), resync);
  };

  // ---- /metrics ----
  const server: Server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(text);
        },
        (err: Error) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(String(err.message));
        },
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.metricsPort ?? 0, config.metricsHost ?? '127.0.0.1', () => resolve());
    });
  } catch (err) {
    // Nothing of this agent may outlive a failed start: no mount, no watch, no client.
    closed = true;
    await deviceSpace.close();
    await client.close();
    if (ownStateDir) await rm(stateDir, { recursive: true, force: true });
    throw err;
  }
  const address = server.address() as AddressInfo;
  const metricsUrl = `http://${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}/metrics`;
  logger.info({ metricsUrl, server: config.server }, 'clusteragent started');

  const processes = await startProcessesFromConfig(
    config,
    { ca: ca as string, cert: cert as string, key: key as string },
    logger,
  );
  void heartbeat();
  void watchNode();
  later(jitter(resyncMs), resync);

  return {
    metricsUrl,
    metrics,
    pageServer: () =>
      proc ? { pid: proc.pid, host: proc.host, port: proc.port, range: proc.range } : null,
    devices: () => ({
      devicesFile: deviceSpace.devicesFile,
      treeFile: deviceSpace.treeFile,
      mount: deviceSpace.mount(),
    }),
    processes,
    async close() {
      if (closed) return;
      closed = true;
      await processes?.close();
      clearTimers();
      await watch?.close().catch(() => {});
      // The mount first: it may have I/O in flight to page servers.
      await deviceSpace.close();
      const p = proc;
      if (p) {
        logger.info({ pid: p.pid }, 'stopping the page server');
        await p.stop();
        metrics.pageServerExited();
      }
      proc = null;
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await client.close();
      if (ownStateDir) await rm(stateDir, { recursive: true, force: true });
      logger.info('clusteragent stopped');
    },
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
