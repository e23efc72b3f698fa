/**
 * The rebalancer (leader only): every `intervalMs` it reads the nodes, their
 * load reports and the process records (one mirror snapshot), asks the pure
 * policy (core/rebalance.ts) which moves to make, and commits each as a
 * migration decision by CAS on the record (epoch + 1) before any agent acts.
 * A record that changed since the snapshot is left alone (the next pass sees
 * it again). Level-based and idempotent: a missed pass costs only time.
 */
import type { Logger } from 'pino';
import {
  DEFAULT_REBALANCE_POLICY,
  planMoves,
  type RebalancePolicy,
  type RebalanceProcess,
} from '../../core/rebalance.ts';
import type { ProcessServiceInternal } from '../features/processes/process-service.ts';
import type { Controller } from './node-lifecycle.ts';
import { startPeriodicController } from './periodic.ts';

export interface RebalancerOptions {
  processes: ProcessServiceInternal;
  now: () => number;
  logger: Logger;
  intervalMs?: number;
  policy?: Partial<RebalancePolicy>;
}

export function startRebalancer(options: RebalancerOptions): Controller {
  const { processes, now, logger } = options;
  const policy: RebalancePolicy = { ...DEFAULT_REBALANCE_POLICY, ...options.policy };

  async function pass(stopped: () => boolean): Promise<number> {
    const { nodes, records, loads } = await processes.snapshot();
    const cpu = new Map<number, number>();
    for (const load of loads) for (const p of load.processes) cpu.set(p.cpid, p.cpu);
    const candidates: RebalanceProcess[] = records.map((r) => ({
      cpid: r.cpid,
      home: r.home,
      cpus: r.cpus,
      migratable: r.migratable,
      state: r.state,
      labels: r.labels,
      startedAt: r.startedAt,
      cpuUse: cpu.get(r.cpid) ?? null,
      migrations: r.migrations,
      lastMovedAt: r.lastMovedAt,
    }));
    const epochs = new Map(records.map((r) => [r.cpid, r.epoch]));
    const moves = planMoves(nodes, candidates, now(), policy);
    let made = 0;
    for (const move of moves) {
      if (stopped()) break;
      const next = await processes.decide(
        move.cpid,
        move.from,
        move.to,
        epochs.get(move.cpid) as number,
      );
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

  return startPeriodicController({
    pass,
    intervalMs: options.intervalMs ?? 2000,
    logger,
    failMessage: 'rebalance pass failed',
  });
}
