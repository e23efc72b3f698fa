/**
 * The rebalancer (leader only): every `intervalMs` it takes one snapshot of
 * the nodes, their load reports and the process records from the process
 * service, asks the pure policy (core/rebalance.ts) which moves to make, and
 * commits each through the service (`commitRebalanceMove`: a CAS on the
 * record, epoch + 1) before any agent acts. A record that changed since the
 * snapshot is left alone (the next pass sees it again). Level-based and
 * idempotent: a missed pass costs only time. The loop is a key on the
 * reconcile WorkQueue (services/reconcile).
 */
import type { Logger } from 'pino';
import {
  DEFAULT_REBALANCE_POLICY,
  planMoves,
  type RebalancePolicy,
  rebalanceCandidates,
} from '../../core/rebalance.ts';
import { WorkQueue } from '../../reconcile/index.ts';
import type { ProcessServiceInternal } from '../features/processes/process-service.ts';
import type { Controller } from './controller.ts';

export interface RebalancerOptions {
  processes: Pick<ProcessServiceInternal, 'snapshot' | 'commitRebalanceMove'>;
  now: () => number;
  logger: Logger;
  intervalMs?: number;
  policy?: Partial<RebalancePolicy>;
}

/** One pass: plan from a snapshot, commit each move; returns how many were made. */
export async function rebalanceOnce(
  options: Omit<RebalancerOptions, 'intervalMs' | 'policy'> & { policy: RebalancePolicy },
  stopped: () => boolean = () => false,
): Promise<number> {
  const { processes, now, logger, policy } = options;
  const { nodes, records, loads } = await processes.snapshot();
  const cpuUse = new Map<number, number>();
  for (const load of loads) for (const p of load.processes) cpuUse.set(p.cpid, p.cpu);
  const epochs = new Map(records.map((r) => [r.cpid, r.epoch]));
  let made = 0;
  for (const move of planMoves(nodes, rebalanceCandidates(records, cpuUse), now(), policy)) {
    if (stopped()) break;
    const next = await processes.commitRebalanceMove(move, epochs.get(move.cpid) as number);
    if (next?.state === 'migrating' && next.home === move.to) {
      made++;
      logger.info(
        { cpid: move.cpid, from: move.from, to: move.to, epoch: next.epoch, gap: move.gap },
        'rebalance: migration decided',
      );
    }
  }
  return made;
}

const KEY = 'rebalance';

/**
 * The periodic pass on the reconcile work queue: one key, `rebalance`, that
 * requeues itself every `intervalMs`; a failed pass is logged and retried
 * with the queue's back-off (from `intervalMs`); never two passes at once.
 */
class Rebalancer implements Controller {
  private readonly queue: WorkQueue;
  private stopped = false;
  private lastMade = 0;

  constructor(options: RebalancerOptions) {
    const intervalMs = options.intervalMs ?? 2000;
    const pass = {
      processes: options.processes,
      now: options.now,
      logger: options.logger,
      policy: { ...DEFAULT_REBALANCE_POLICY, ...options.policy },
    };
    this.queue = new WorkQueue({
      name: 'rebalancer',
      baseDelayMs: intervalMs,
      maxDelayMs: Math.max(intervalMs, 30_000),
      logger: options.logger,
      worker: async () => {
        try {
          this.lastMade = await rebalanceOnce(pass, () => this.stopped);
        } catch (err) {
          options.logger.warn({ err: (err as Error).message }, 'rebalance pass failed');
          throw err;
        }
        return { requeueAfterMs: intervalMs };
      },
    });
    this.queue.addAfter(KEY, intervalMs);
  }

  /** A pass now (or the one in flight, then this one); how many moves it made. */
  async reconcile(): Promise<number> {
    this.queue.add(KEY);
    await this.queue.idle();
    return this.lastMade;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.queue.close();
  }
}

export function startRebalancer(options: RebalancerOptions): Controller {
  return new Rebalancer(options);
}
