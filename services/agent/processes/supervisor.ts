/**
 * The process supervisor of clusteragent: runs this node's share of the
 * network process space and carries out migrations with the fencing rules of
 * services/core/processes.ts.
 *
 * Desired state: the process views (process-feed.ts: a watch of
 * `processes/` plus a periodic list), merged so that a view never goes back
 * (process-views.ts). Actual state: the copies this agent runs, each under a
 * fence shim (shim-copy.ts). One pass per cluster PID at a time (a keyed
 * queue): each pass asks copy-decision.ts `decideCopyAction` for ONE action
 * and performs it; whatever changes (an event, an exit, a lease) adds the key
 * again.
 *
 * Lease: each acknowledged heartbeat extends our lease to (its send time +
 * leaseSeconds); `leaseSeconds` must not exceed clusterd's nodeGraceSeconds,
 * so our deadline always comes before the store's lease expires. Each shim
 * holds the deadline and SIGKILLs its process when it passes, even if this
 * agent is frozen (SIGSTOP) or dead. Send times and deadlines are
 * CLOCK_MONOTONIC (monotonic.ts): a step of the wall clock changes no lease.
 * Copies run as an unprivileged user by default (run-as.ts, spawn-copy.ts).
 */
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import type { ProcessView } from '../../api/contracts.ts';
import type { ApiError } from '../../client/errors.ts';
import { WorkQueue } from '../../reconcile/index.ts';
import {
  type CopyAction,
  type CopyState,
  decideCopyAction,
  exitReport,
  type Here,
} from './copy-decision.ts';
import { CopyDirs } from './copy-dirs.ts';
import { EVERY_SIGNED_PEER, type PeerIdentities } from './endpoint-access.ts';
import { startLoadReports } from './load-report.ts';
import { type ShipDeps, shipCheckpoint } from './migration-source.ts';
import { monotonicMs } from './monotonic.ts';
import type { ProcessAgentConfig } from './process-agent-config.ts';
import { followProcesses } from './process-feed.ts';
import { KeyedProcesses } from './process-queue.ts';
import { ProcessViews } from './process-views.ts';
import type { ShimCopy } from './shim-copy.ts';
import { spawnCopy } from './spawn-copy.ts';
import type { SupervisorClient } from './supervisor-client.ts';
import { type AgentEndpoint, startAgentEndpoint, type Tls } from './transfer.ts';

export type { ProcessAgentConfig, SupervisorClient };

export interface ProcessSupervisor {
  /** A heartbeat sent at `sentAt` (CLOCK_MONOTONIC ms, monotonic.ts) was acknowledged. */
  leaseRenewed(sentAt: number): void;
  address(): string;
  /** For tests and status. */
  copies(): { cpid: number; epoch: number; pid: number | null }[];
  close(): Promise<void>;
}

export interface SupervisorOptions {
  node: string;
  client: SupervisorClient;
  tls: Tls;
  config: ProcessAgentConfig;
  logger: Logger;
  setpriv: string | null;
  /** The identities the cluster still accepts, for the agent endpoint (default: any signed peer). */
  identities?: PeerIdentities;
}

const MiB = 1024 * 1024;

const codeOf = (err: unknown): string | undefined => (err as ApiError | undefined)?.code;
/** The record moved on under us: re-read it and decide again. */
const isMovedOn = (err: unknown): boolean =>
  codeOf(err) === 'STALE_EPOCH' || codeOf(err) === 'PROCESS_STATE_CONFLICT';
const RETRY_MS = 1000;

class Supervisor implements ProcessSupervisor {
  readonly #o: SupervisorOptions;
  readonly #logger: Logger;
  readonly #dirs: CopyDirs;
  readonly #views = new ProcessViews();
  readonly #copies = new Map<number, ShimCopy>();
  readonly #queue: KeyedProcesses;
  #loads: { close(): void } | null = null;
  #deadline = 0;
  /** Starts under way (a slot is taken before the first await of a start). */
  #starting = 0;
  #closed = false;
  #endpoint: AgentEndpoint | null = null;
  #feed: { close(): Promise<void> } | null = null;

  constructor(options: SupervisorOptions) {
    this.#o = options;
    this.#logger = options.logger.child({ component: 'processes' });
    this.#dirs = new CopyDirs(options.config.dataDir);
    this.#queue = new KeyedProcesses(
      new WorkQueue<string>({
        name: 'processes',
        worker: (key) => this.#pass(Number(key)),
        concurrency: 64,
        baseDelayMs: RETRY_MS,
        logger: this.#logger,
      }),
    );
  }

  async start(): Promise<void> {
    await this.#dirs.waitForOrphans(this.#logger);
    const { config } = this.#o;
    if (!this.#o.identities) this.#logger.warn('no peer identities: any signed node is accepted');
    this.#endpoint = await startAgentEndpoint(
      {
        tls: this.#o.tls,
        host: config.listenHost ?? '127.0.0.1',
        port: config.listenPort ?? 0,
        node: this.#o.node,
        identities: this.#o.identities ?? EVERY_SIGNED_PEER,
        maxCheckpointBytes: config.maxCheckpointBytes ?? 256 * MiB,
        logger: this.#logger,
      },
      {
        receiveInto: (cpid, epoch, from) => this.#receiveInto(cpid, epoch, from),
        received: (cpid, epoch) => this.#logger.info({ cpid, epoch }, 'checkpoint received'),
        logFile: (cpid) => {
          const f = this.#dirs.logFile(cpid);
          return existsSync(f) ? f : null;
        },
        running: (cpid) => this.#copies.get(cpid)?.done === false,
      },
    );
    this.#feed = followProcesses({
      client: this.#o.client,
      logger: this.#logger,
      resyncMs: config.resyncMs ?? 3000,
      onChange: (cpid, view) => {
        if (view) this.#views.merge(view);
        const known = this.#views.get(cpid);
        if ((known && this.#relevant(known)) || this.#copies.has(cpid)) this.#queue.add(cpid);
      },
    });
    this.#loads = startLoadReports(
      {
        node: this.#o.node,
        ...(config.cpus !== undefined ? { cpus: config.cpus } : {}),
        ...(config.cpuSpeed !== undefined ? { cpuSpeed: config.cpuSpeed } : {}),
        agentAddress: () => this.address(),
        report: (node, report) => this.#o.client.reportLoad(node, report),
        copies: () => this.#copies.values(),
        logger: this.#logger,
      },
      config.reportMs ?? 1000,
    );
    this.#logger.info(
      { address: this.address(), slots: config.slots ?? null },
      'process supervisor started',
    );
  }

  leaseRenewed(sentAt: number): void {
    const next = sentAt + (this.#o.config.leaseSeconds ?? 10) * 1000;
    if (next <= this.#deadline) return;
    const wasValid = monotonicMs() + 1000 < this.#deadline;
    this.#deadline = next;
    for (const c of this.#copies.values()) if (!c.done) c.setDeadline(next);
    if (!wasValid) this.#kickAll();
  }

  address(): string {
    return this.#o.config.advertiseAddress ?? this.#endpoint?.address ?? '';
  }

  copies(): { cpid: number; epoch: number; pid: number | null }[] {
    return [...this.#copies.values()]
      .filter((c) => !c.done)
      .map((c) => ({ cpid: c.cpid, epoch: c.epoch, pid: c.pid }));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue.close();
    this.#loads?.close();
    await this.#feed?.close().catch(() => {});
    const live = [...this.#copies.values()];
    for (const c of live) c.kill();
    await Promise.all(live.map((c) => c.exited));
    await this.#endpoint?.close();
  }

  // ---- one pass: decide, then perform ----

  #here(): Here {
    const slots = this.#o.config.slots ?? Number.POSITIVE_INFINITY;
    return { node: this.#o.node, leaseDeadline: this.#deadline, slotFree: this.#busy() < slots };
  }

  #busy(): number {
    return this.#starting + [...this.#copies.values()].filter((c) => !c.done).length;
  }

  #copyState(cpid: number): CopyState | undefined {
    const c = this.#copies.get(cpid);
    if (!c) return undefined;
    if (c.outcome) return { phase: 'exited', epoch: c.epoch, outcome: c.outcome };
    return { phase: c.ending ? 'ending' : 'running', epoch: c.epoch };
  }

  async #pass(cpid: number): Promise<void> {
    const view = this.#views.get(cpid);
    const action = decideCopyAction(view, this.#copyState(cpid), this.#here(), monotonicMs());
    await this.#perform(cpid, view, action);
  }

  async #perform(cpid: number, view: ProcessView | undefined, action: CopyAction): Promise<void> {
    switch (action.kind) {
      case 'none':
        return;
      case 'wait':
        return this.#queue.addAfter(cpid, action.ms);
      case 'start':
        return this.#start(cpid);
      case 'report-running':
        return this.#reportRunning(view as ProcessView);
      case 'report-exit':
        return this.#reportExit(cpid);
      case 'end':
        return this.#end(cpid, action.how, action.why);
      case 'ship':
        return this.#shipAndConfirm(view as ProcessView);
      case 'ask-fence':
        return this.#askFence(view as ProcessView);
    }
  }

  // ---- the actions ----

  async #start(cpid: number): Promise<void> {
    this.#starting++;
    try {
      // A fresh read: the decision to start is made on the process as it is now.
      this.#views.merge(await this.#o.client.get(cpid));
      const view = this.#views.get(cpid);
      const again = decideCopyAction(
        view,
        undefined,
        { ...this.#here(), slotFree: true },
        monotonicMs(),
      );
      if (this.#closed || !view || again.kind !== 'start') return this.#queue.add(cpid);
      if (!(await this.#spawn(view))) return;
    } finally {
      this.#starting--;
    }
    await this.#reportRunning(this.#views.get(cpid) as ProcessView);
  }

  /** Starts a copy; false when this node refuses to run it (recorded as the process's failure). */
  async #spawn(view: ProcessView): Promise<boolean> {
    const started = await spawnCopy(view, {
      node: this.#o.node,
      config: this.#o.config,
      dirs: this.#dirs,
      setpriv: this.#o.setpriv,
      deadline: this.#deadline,
      onPid: (copy, pid) => void this.#dirs.recordCopy(copy, pid),
    });
    if (!started.ok) {
      const { code, why } = started;
      this.#logger.warn({ cpid: view.cpid, epoch: view.epoch, code }, `process refused: ${why}`);
      const failure = `${code}: ${why}`;
      await this.#reportOrReread(view.cpid, { epoch: view.epoch, event: 'failed', failure });
      return false;
    }
    const { copy } = started;
    this.#copies.set(view.cpid, copy);
    void copy.exited.then(() => this.#onExit(copy));
    this.#logger.info(
      { cpid: view.cpid, epoch: view.epoch, user: started.user },
      'process copy started',
    );
    return true;
  }

  async #onExit(copy: ShimCopy): Promise<void> {
    const o = copy.outcome;
    this.#dirs.forgetCopy(copy.cpid);
    this.#logger.info(
      { cpid: copy.cpid, epoch: copy.epoch, ...o, ending: copy.ending },
      'process copy ended',
    );
    if (copy.ending === 'checkpoint' && o?.code === 0 && !o.fenced) {
      await this.#dirs.markCheckpointComplete(copy.cpid, copy.epoch);
    }
    // Only a copy that ended by itself has an exit to report (for its epoch).
    if ((copy.ending !== null || o?.fenced) && this.#copies.get(copy.cpid) === copy) {
      this.#copies.delete(copy.cpid);
    }
    this.#kickAll(); // a slot is free
  }

  async #reportExit(cpid: number): Promise<void> {
    const copy = this.#copies.get(cpid) as ShimCopy;
    this.#copies.delete(cpid);
    try {
      const report = exitReport(
        copy.epoch,
        copy.outcome ?? { code: null, signal: null, fenced: false },
      );
      this.#views.merge(await this.#o.client.report(this.#o.node, cpid, report));
    } catch (err) {
      this.#logger.info({ err, cpid }, 'exit not recorded (the record moved on)');
    }
    this.#queue.add(cpid);
  }

  async #reportRunning(view: ProcessView): Promise<void> {
    const report = { epoch: view.epoch, event: 'running' as const };
    await this.#reportOrReread(view.cpid, report);
  }

  /** Sends a report; when the record moved on, re-reads it and decides again. */
  async #reportOrReread(
    cpid: number,
    report: Parameters<SupervisorClient['report']>[2],
  ): Promise<void> {
    try {
      this.#views.merge(await this.#o.client.report(this.#o.node, cpid, report));
    } catch (err) {
      if (!isMovedOn(err)) throw err;
      this.#views.merge(await this.#o.client.get(cpid));
      this.#queue.add(cpid);
    }
  }

  #end(cpid: number, how: 'checkpoint' | 'stop' | 'kill', why: string): void {
    const copy = this.#copies.get(cpid) as ShimCopy;
    this.#logger.info({ cpid, epoch: copy.epoch, how, why }, 'ending process copy');
    copy.end(how, this.#o.config.checkpointTimeoutMs ?? 10_000);
  }

  async #askFence(view: ProcessView): Promise<void> {
    // Waiting for the source; clusterd answers whether it is fenced (its lease gone).
    await this.#reportOrReread(view.cpid, { epoch: view.epoch, event: 'fence-source' });
    const now = this.#views.get(view.cpid);
    if (now?.migration?.sourceStopped == null) this.#queue.addAfter(view.cpid, 500);
    else this.#queue.add(view.cpid);
  }

  async #shipAndConfirm(view: ProcessView): Promise<void> {
    const dir = view.migratable === 'checkpoint' ? this.#dirs.shippable(view.cpid) : null;
    const shipped = dir === null ? null : await shipCheckpoint(this.#shipping(), view, dir);
    if (shipped === false) return this.#queue.addAfter(view.cpid, RETRY_MS);
    const how = shipped ? 'checkpointed' : 'stopped';
    await this.#reportOrReread(view.cpid, { epoch: view.epoch, event: 'source-stopped', how });
    this.#logger.info({ cpid: view.cpid, to: view.migration?.to, how }, 'source stop reported');
  }

  #shipping(): ShipDeps {
    return {
      tls: this.#o.tls,
      client: this.#o.client,
      logger: this.#logger,
      merge: (view) => this.#views.merge(view),
    };
  }

  // ---- around the passes ----

  async #receiveInto(cpid: number, epoch: number, from: string): Promise<string> {
    const known = this.#views.get(cpid);
    if (!known || known.epoch < epoch) this.#views.merge(await this.#o.client.get(cpid));
    const view = this.#views.get(cpid);
    if (view?.epoch !== epoch || view.home !== this.#o.node || view.migration?.from !== from) {
      throw new Error(`not expecting a checkpoint of ${cpid} at epoch ${epoch} from ${from}`);
    }
    return this.#dirs.receiving(cpid, epoch);
  }

  #relevant(view: ProcessView): boolean {
    const { node } = this.#o;
    return view.home === node || view.migration?.from === node || this.#copies.has(view.cpid);
  }

  #kickAll(): void {
    for (const view of this.#views.all()) if (this.#relevant(view)) this.#queue.add(view.cpid);
    for (const cpid of this.#copies.keys()) this.#queue.add(cpid);
  }
}

export async function startProcessSupervisor(
  options: SupervisorOptions,
): Promise<ProcessSupervisor> {
  const supervisor = new Supervisor(options);
  await supervisor.start();
  return supervisor;
}
