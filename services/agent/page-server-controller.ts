/**
 * The page-server controller: runs the page server on exactly this node's
 * committed range. Level based: every change (the desired range, an exit, a
 * failed health check, a back-off that ran out) adds the node's key to a
 * keyed queue, and each pass asks page-server-decision.ts `decide` for ONE
 * action and performs it.
 *
 * It never starts the page server before a range of size > 0 is committed;
 * restarts it with exponential back-off when it exits; health-checks it with
 * STAT (which also feeds the metrics) and restarts it after 3 failed checks
 * in a row that span at least HEALTH_GRACE_MS.
 */
import type { Logger } from 'pino';
import type { PageServerEndpoint } from '../api/contracts.ts';
import { WorkQueue } from '../reconcile/index.ts';
import { closableTimers } from './closable-timers.ts';
import type { AgentMetrics } from './metrics.ts';
import {
  type Actual,
  backoffMs,
  type Desired,
  decide,
  pageServerFailed,
  type Range,
} from './page-server-decision.ts';
import { type NodeTls, statPageServer } from './page-server-health.ts';
import {
  type PageServerOptions,
  type RunningPageServer,
  startPageServer,
} from './pageserver-process.ts';

const HEALTH_FAILURES_BEFORE_RESTART = 3;
/**
 * And for at least this long: a restart loses the bytes the page server holds,
 * so a server that is only slow (a busy machine, or an event loop this agent
 * shares) must not be mistaken for a hung one. An exit is seen at once anyway.
 */
const HEALTH_GRACE_MS = 15_000;

export interface PageServerControllerOptions {
  node: string;
  options: PageServerOptions;
  /** The node's TLS identity for health checks; null when the page server serves plaintext. */
  tls: NodeTls | null;
  healthMs: number;
  metrics: AgentMetrics;
  logger: Logger;
  /** A page server just started: publish its endpoint without waiting for the next heartbeat. */
  onStarted(): void;
}

const sameDesired = (a: Desired, b: Desired): boolean =>
  a === null || b === null ? a === b : a.start === b.start && a.size === b.size;

export class PageServerController {
  readonly #o: PageServerControllerOptions;
  readonly #queue: WorkQueue<string>;
  readonly #timers: ReturnType<typeof closableTimers>;
  #closed = false;
  #desired: Desired = null;
  #actual: Actual = { state: 'stopped', failures: 0, retryAt: 0 };
  #proc: RunningPageServer | null = null;
  #stopReason: string | null = null;
  /** Bumped at each rewrite of the devices or peers file (a start that raced one SIGHUPs). */
  #devicesVersion = 0;
  #health = {
    failures: 0,
    since: Date.now(),
    fresh: true,
    lastHealthy: null as RunningPageServer | null,
  };

  constructor(options: PageServerControllerOptions) {
    this.#o = options;
    this.#timers = closableTimers(() => this.#closed);
    this.#queue = new WorkQueue<string>({
      name: 'page-server',
      worker: () => this.#pass(),
      logger: options.logger,
    });
  }

  setDesired(next: Desired, why: string): void {
    if (!sameDesired(this.#desired, next)) {
      this.#o.logger.info({ range: next, why }, 'desired page server range');
    }
    this.#desired = next;
    this.#kick();
  }

  /** The devices file was rewritten: the running page server re-reads it. */
  devicesChanged(): void {
    this.#devicesVersion++;
    this.#proc?.child.kill('SIGHUP');
  }

  /** The peers file was rewritten: the page server re-reads it (SIGHUP reloads both files). */
  peersChanged(): void {
    this.devicesChanged();
  }

  running(): { pid: number; host: string; port: number; range: Range } | null {
    const p = this.#proc;
    return p ? { pid: p.pid, host: p.host, port: p.port, range: p.range } : null;
  }

  endpoint(): PageServerEndpoint | undefined {
    const p = this.#proc;
    if (!p) return undefined;
    const host = p.host.includes(':') ? `[${p.host}]` : p.host;
    return { address: `${host}:${p.port}`, tls: this.#o.tls !== null };
  }

  /** Whether `limit` attempts in a row to have a page server failed (the node should look down). */
  failed(limit: number): { failed: boolean; failures: number } {
    const a = this.#actual;
    return {
      failed: pageServerFailed(this.#desired, a, limit),
      failures: a.state === 'stopped' ? a.failures : 0,
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#queue.close();
    this.#timers.clear();
    const p = this.#proc;
    this.#proc = null;
    if (!p) return;
    this.#o.logger.info({ pid: p.pid }, 'stopping the page server');
    await p.stop();
    this.#o.metrics.pageServerExited();
  }

  #kick(): void {
    this.#queue.add(this.#o.node);
  }

  async #pass(): Promise<void> {
    const action = decide(this.#desired, this.#actual, Date.now());
    switch (action.kind) {
      case 'none':
        return;
      case 'wait':
        return this.#timers.later(action.ms, () => this.#kick());
      case 'stop':
        this.#o.logger.info({ reason: action.reason }, 'stopping the page server');
        this.#stopReason = action.reason;
        this.#actual = { state: 'stopping' };
        await this.#proc?.stop();
        return; // the exit handler moves to 'stopped' and kicks
      case 'start':
        return this.#start(action.range);
    }
  }

  async #start(range: Range): Promise<void> {
    const failures = this.#actual.state === 'stopped' ? this.#actual.failures : 0;
    this.#actual = { state: 'starting', range };
    const version = this.#devicesVersion;
    let p: RunningPageServer;
    try {
      p = await startPageServer(this.#o.options, range);
    } catch (err) {
      const n = failures + 1;
      const wait = backoffMs(n);
      this.#o.logger.error(
        { err, range, failures: n, retryInMs: wait },
        'page server did not start',
      );
      this.#actual = { state: 'stopped', failures: n, retryAt: Date.now() + wait };
      return this.#timers.later(wait, () => this.#kick());
    }
    if (this.#closed) return void (await p.stop());
    this.#proc = p;
    // Its devices file changed while it started: it may have read the old one.
    if (this.#devicesVersion !== version) p.child.kill('SIGHUP');
    this.#health = { ...this.#health, failures: 0, since: Date.now(), fresh: true };
    this.#o.metrics.pageServerStarted();
    this.#actual = { state: 'running', range, healthy: true };
    this.#o.logger.info({ pid: p.pid, port: p.port, range }, 'page server started');
    this.#o.onStarted();
    void p.exited.then(({ code, signal }) => this.#onExit(p, failures, code, signal));
    this.#timers.later(0, () => void this.#healthCheck(p));
  }

  #onExit(
    p: RunningPageServer,
    failuresBefore: number,
    code: number | null,
    signal: string | null,
  ): void {
    if (this.#proc !== p) return;
    this.#proc = null;
    this.#o.metrics.pageServerExited();
    const reason = this.#stopReason;
    const expected = reason === 'no-range' || reason === 'range-changed';
    this.#stopReason = null;
    if (this.#closed) return;
    // A process that passed a health check starts the back-off afresh.
    const base = p === this.#health.lastHealthy ? 0 : failuresBefore;
    const failures = expected ? 0 : base + 1;
    const wait = backoffMs(failures);
    if (expected) this.#o.logger.info({ pid: p.pid, reason }, 'page server stopped');
    else
      this.#o.logger.warn(
        { pid: p.pid, code, signal, reason, stderr: p.stderrTail().trim(), retryInMs: wait },
        'page server exited; restarting',
      );
    this.#actual = { state: 'stopped', failures, retryAt: Date.now() + wait };
    this.#kick();
  }

  async #healthCheck(p: RunningPageServer): Promise<void> {
    if (this.#closed || this.#proc !== p) return;
    let ok = false;
    try {
      const result = await statPageServer(p, this.#o.tls);
      ok = result.ok;
      if (this.#proc === p) {
        this.#o.metrics.pageServerStats(result.stats, this.#health.fresh);
        this.#health.fresh = false;
      }
    } catch (err) {
      this.#o.logger.warn({ err, pid: p.pid }, 'page server health check failed');
    }
    if (this.#proc !== p) return;
    this.#o.metrics.pageServerUp(ok);
    this.#judge(p, ok);
    this.#timers.later(this.#o.healthMs, () => void this.#healthCheck(p));
  }

  #judge(p: RunningPageServer, ok: boolean): void {
    const h = this.#health;
    if (ok) {
      this.#health = { ...h, failures: 0, since: Date.now(), lastHealthy: p };
      return;
    }
    h.failures++;
    if (
      h.failures >= HEALTH_FAILURES_BEFORE_RESTART &&
      Date.now() - h.since >= HEALTH_GRACE_MS &&
      this.#actual.state === 'running'
    ) {
      this.#actual = { ...this.#actual, healthy: false };
      this.#kick();
    }
  }
}
