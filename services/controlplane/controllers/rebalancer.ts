/**
 * The rebalancer (leader only): every `intervalMs` it takes one snapshot of
 * the nodes, their load reports and the process records from the process
 * service, asks the pure policy (core/rebalance.ts) which moves to make, and
 * commits each through the service (`commitRebalanceMove`: a CAS on the
 * record, epoch + 1) before any agent acts. A record that changed since the
 * snapshot is left alone (the next pass sees it again). Level-based and
 * idempotent: a missed pass costs only time.
 */
import type { Logger } from 'pino';
import {
  DEFAULT_REBALANCE_POLICY,
  planMoves,
  type RebalancePolicy,
  rebalanceCandidates,
} from '../../core/rebalance.ts';
import type { ProcessServiceInternal } from '../features/processes/process-service.ts';
import type { Controller } from './node-lifecycle.ts';
import { startPeriodicController } from './periodic.ts';

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

export function startRebalancer(options: RebalancerOptions): Controller {
  const policy: RebalancePolicy = { ...DEFAULT_REBALANCE_POLICY, ...options.policy };
  const pass = { processes: options.processes, now: options.now, logger: options.logger, policy };
  return startPeriodicController({
    pass: (stopped) => rebalanceOnce(pass, stopped),
    intervalMs: options.intervalMs ?? 2000,
    logger: options.logger,
    failMessage: 'rebalance pass failed',
  });
}
