/**
 * Heartbeats: every `heartbeatMs` (±10 % jitter) the node's fingerprint goes
 * to clusterd with the page server's endpoint. The loop is one WorkQueue key
 * (services/reconcile) that requeues itself; a failed beat is retried with
 * the queue's per-key back-off (250 ms doubling, capped at the period or 30 s). Each
 * answer is the NodeView: its range is desired state for the page-server
 * controller, and an acknowledged beat renews the process supervisor's lease.
 *
 * NotReady only when the page server cannot be restarted: once
 * `failuresBeforeNotReady` attempts in a row to have one failed, the beats
 * are withheld while the controller keeps retrying, and the node-lifecycle
 * controller of clusterd marks the node NotReady when the heartbeat lease
 * expires, exactly as for a dead agent (the control plane needs no new field
 * or rule). A page server that starts again sends a beat at once
 * (`publishEndpoint`).
 */
import type { Logger } from 'pino';
import type { DeviceInventoryItem, NodeView } from '../api/contracts.ts';
import type { AmalgamClient } from '../client/index.ts';
import { WorkQueue } from '../reconcile/index.ts';
import { type FingerprintEnv, fingerprint } from './fingerprint/index.ts';
import type { AgentMetrics } from './metrics.ts';
import type { PageServerController } from './page-server-controller.ts';
import { monotonicMs } from './processes/monotonic.ts';

export interface HeartbeatOptions {
  node: string;
  client: Pick<AmalgamClient, 'nodes'>;
  env: FingerprintEnv;
  heartbeatMs: number;
  failuresBeforeNotReady: number;
  pageServer: Pick<PageServerController, 'endpoint' | 'failed'>;
  metrics: AgentMetrics;
  logger: Logger;
  /** Every beat's answer (the node as clusterd has it). */
  onNode(node: NodeView): void;
  /** A beat sent at `sentAt` (CLOCK_MONOTONIC ms, processes/monotonic.ts) was acknowledged. */
  onAcknowledged(sentAt: number): void;
  /** This machine's devices as the beat probed them. */
  onDevices(items: DeviceInventoryItem[]): void;
}

const jitter = (ms: number): number => ms * (0.9 + Math.random() * 0.2);

export class Heartbeat {
  readonly #o: HeartbeatOptions;
  readonly #queue: WorkQueue<'beat'>;
  #closed = false;
  #failures = 0;
  #withholding = false;

  constructor(options: HeartbeatOptions) {
    this.#o = options;
    this.#queue = new WorkQueue<'beat'>({
      name: 'heartbeat',
      worker: () => this.#beat(),
      baseDelayMs: 250,
      maxDelayMs: Math.max(options.heartbeatMs, 30_000),
      logger: options.logger,
    });
  }

  start(): void {
    this.#queue.add('beat');
  }

  close(): void {
    this.#closed = true;
    void this.#queue.close();
  }

  /** One extra beat as soon as the page server is up, so clients find it without waiting. */
  async publishEndpoint(): Promise<void> {
    const { client, node, env } = this.#o;
    try {
      const inventory = await fingerprint(env);
      if (!this.#closed)
        await client.nodes.heartbeat(node, inventory.load, this.#o.pageServer.endpoint());
    } catch (err) {
      this.#o.logger.warn(
        { err },
        'cannot publish the page server endpoint; the next heartbeat will',
      );
    }
  }

  /** One beat (unless withheld); the next is due one jittered period later, or after back-off on failure. */
  async #beat(): Promise<{ requeueAfterMs: number }> {
    if (!this.#withhold()) await this.#send();
    return { requeueAfterMs: jitter(this.#o.heartbeatMs) };
  }

  /** Whether to withhold this beat (the page server cannot be restarted); logs each change. */
  #withhold(): boolean {
    const { failed, failures } = this.#o.pageServer.failed(this.#o.failuresBeforeNotReady);
    if (failed !== this.#withholding) {
      this.#withholding = failed;
      if (failed)
        this.#o.logger.error(
          { failures },
          'the page server cannot be restarted; withholding heartbeats so the node turns NotReady',
        );
      else this.#o.logger.info('the page server runs again; heartbeats resume');
    }
    return failed;
  }

  async #send(): Promise<void> {
    const { client, node, logger, metrics } = this.#o;
    try {
      const inventory = await fingerprint(this.#o.env);
      for (const { name, error } of inventory.errors) {
        logger.warn({ err: error, fingerprinter: name }, 'fingerprinter failed');
      }
      if (inventory.devices) this.#o.onDevices(inventory.devices);
      const sentAt = monotonicMs(); // the lease clock: CLOCK_MONOTONIC, never the wall clock
      const view = await client.nodes.heartbeat(
        node,
        inventory.load,
        this.#o.pageServer.endpoint(),
      );
      this.#o.onAcknowledged(sentAt);
      metrics.heartbeat('ok');
      if (this.#failures > 0)
        logger.info({ after: this.#failures }, 'heartbeats acknowledged again');
      this.#failures = 0;
      this.#o.onNode(view);
    } catch (err) {
      metrics.heartbeat('error');
      this.#failures++;
      logger.warn({ err, failures: this.#failures }, 'heartbeat failed');
      throw err; // the queue retries with back-off
    }
  }
}
