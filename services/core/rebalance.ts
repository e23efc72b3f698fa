/**
 * The rebalancing policy (the MOSIX rules, in user space), pure: given the
 * nodes and the cluster processes, which moves to make now.
 *
 * - Load of a node: the CPUs asked for by the processes whose home it is,
 *   per CPU and per unit of speed (`pressure`): the time a unit of work takes
 *   there. Declared demand, not the measured load average: on a shared
 *   machine the measured figure says more about the neighbours than about us.
 * - A move from the most to the least loaded node is made only when it
 *   lowers the gap by more than `threshold` (hysteresis): source pressure
 *   before minus target pressure after the move must exceed it. So nothing
 *   moves back and forth between two balanced nodes, and a faster node
 *   attracts work until its pressure matches.
 * - Candidates: migratable, not moving, started at least `minAgeMs` ago (or
 *   not started at all: free to move), moved less than `maxMovesPerProcess`
 *   times, and not within `cooldownMs` of its last move. Preferred: not yet
 *   started, then the most CPU-bound, then the longest-running.
 * - At most `maxMovesPerRound` moves per round.
 */
import { fits, type PlacementNode, pressure } from './placement.ts';
import type { Migratable, ProcessRecord, ProcessState } from './processes.ts';

export interface RebalanceProcess {
  cpid: number;
  home: string;
  cpus: number;
  migratable: Migratable;
  state: ProcessState;
  labels: Record<string, string>;
  /** When the current copy started; null when not started. */
  startedAt: number | null;
  /** Measured CPU use of the running copy (CPUs), when the agent reported it. */
  cpuUse: number | null;
  migrations: number;
  lastMovedAt: number | null;
}

export interface RebalancePolicy {
  threshold: number;
  cooldownMs: number;
  minAgeMs: number;
  maxMovesPerProcess: number;
  maxMovesPerRound: number;
}

export const DEFAULT_REBALANCE_POLICY: RebalancePolicy = {
  threshold: 0.5,
  cooldownMs: 10_000,
  minAgeMs: 1_000,
  maxMovesPerProcess: 2,
  maxMovesPerRound: 4,
};

export interface Move {
  cpid: number;
  from: string;
  to: string;
  /** Pressures before the move (source, target) and the target's after. */
  gap: { from: number; to: number; toAfter: number };
}

/** The policy's view of process records, with the CPU use the agents measured (by cluster PID). */
export function rebalanceCandidates(
  records: readonly ProcessRecord[],
  cpuUse: ReadonlyMap<number, number>,
): RebalanceProcess[] {
  return records.map((r) => ({
    cpid: r.cpid,
    home: r.home,
    cpus: r.cpus,
    migratable: r.migratable,
    state: r.state,
    labels: r.labels,
    startedAt: r.startedAt,
    cpuUse: cpuUse.get(r.cpid) ?? null,
    migrations: r.migrations,
    lastMovedAt: r.lastMovedAt,
  }));
}

export type RebalanceNode = Omit<PlacementNode, 'demand'>;

const ACTIVE: readonly ProcessState[] = ['pending', 'running', 'migrating'];

export function planMoves(
  nodes: readonly RebalanceNode[],
  processes: readonly RebalanceProcess[],
  now: number,
  policy: RebalancePolicy = DEFAULT_REBALANCE_POLICY,
): Move[] {
  const ready = nodes.filter((n) => n.ready && n.cpus > 0 && n.speed > 0);
  const demand = new Map<string, number>(nodes.map((n) => [n.name, 0]));
  for (const p of processes) {
    if (ACTIVE.includes(p.state) && demand.has(p.home)) {
      demand.set(p.home, (demand.get(p.home) ?? 0) + p.cpus);
    }
  }
  const moved = new Set<number>();
  const moves: Move[] = [];
  const byName = new Map(nodes.map((n) => [n.name, n]));

  const candidate = (p: RebalanceProcess): boolean =>
    !moved.has(p.cpid) &&
    p.migratable !== 'never' &&
    (p.state === 'pending' || (p.state === 'running' && p.startedAt !== null)) &&
    (p.state === 'pending' || now - (p.startedAt ?? now) >= policy.minAgeMs) &&
    p.migrations < policy.maxMovesPerProcess &&
    (p.lastMovedAt === null || now - p.lastMovedAt >= policy.cooldownMs);
  const preference = (a: RebalanceProcess, b: RebalanceProcess): number =>
    Number(b.state === 'pending') - Number(a.state === 'pending') ||
    (b.cpuUse ?? b.cpus) - (a.cpuUse ?? a.cpus) ||
    (a.startedAt ?? now) - (b.startedAt ?? now) ||
    a.cpid - b.cpid;

  while (moves.length < policy.maxMovesPerRound) {
    const load = (n: RebalanceNode) => pressure(demand.get(n.name) ?? 0, n);
    // Sources: every node (a NotReady node's processes are not moved from here: its agent may
    // still run them; they move when it is back or by an explicit migrate).
    const sources = ready
      .filter((n) => (demand.get(n.name) ?? 0) > 0)
      .sort((a, b) => load(b) - load(a) || a.name.localeCompare(b.name));
    let best: Move | undefined;
    for (const src of sources) {
      const movable = processes.filter((p) => p.home === src.name && candidate(p)).sort(preference);
      for (const p of movable) {
        for (const dst of ready) {
          if (dst.name === src.name || !fits(dst, p.labels)) continue;
          const before = load(src);
          const after = pressure((demand.get(dst.name) ?? 0) + p.cpus, dst);
          const gain = before - after;
          if (gain <= policy.threshold) continue;
          const bestGain = best ? best.gap.from - best.gap.toAfter : -Infinity;
          if (
            gain > bestGain ||
            (gain === bestGain &&
              best !== undefined &&
              (byName.get(dst.name)?.speed ?? 0) > (byName.get(best.to)?.speed ?? 0))
          ) {
            best = {
              cpid: p.cpid,
              from: src.name,
              to: dst.name,
              gap: { from: before, to: load(dst), toAfter: after },
            };
          }
        }
        if (best) break; // the most preferred movable process of the most loaded source
      }
      if (best) break;
    }
    if (!best) break;
    const p = processes.find((x) => x.cpid === best.cpid) as RebalanceProcess;
    demand.set(best.from, (demand.get(best.from) ?? 0) - p.cpus);
    demand.set(best.to, (demand.get(best.to) ?? 0) + p.cpus);
    moved.add(best.cpid);
    moves.push(best);
  }
  return moves;
}
