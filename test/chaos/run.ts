/** One chaos run: workload and nemesis side by side until the deadline, heal, final state, check. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalCluster } from '../harness/netns.ts';
import { type CheckResult, check } from './checker.ts';
import { History } from './history.ts';
import { type Fault, healAll, runNemesis } from './nemesis.ts';
import type { SystemUnderTest } from './systems.ts';
import { runWorkload } from './workload.ts';

export interface ChaosRun extends CheckResult {
  historyFile: string;
  faults: Fault[];
  seed: number;
}

export async function chaosRun(o: {
  cluster: LocalCluster;
  system: SystemUnderTest;
  dir: string;
  seconds: number;
  faults: Fault[];
  seed: number;
  clients?: number;
}): Promise<ChaosRun> {
  mkdirSync(o.dir, { recursive: true });
  const historyFile = join(o.dir, `history-${o.system.name}-${o.seed}.jsonl`);
  const history = new History(historyFile);
  const until = performance.now() + o.seconds * 1000;
  const [, faults] = await Promise.all([
    runWorkload({ system: o.system, history, clients: o.clients ?? 6, until, seed: o.seed }),
    runNemesis({ cluster: o.cluster, history, faults: o.faults, until, seed: o.seed }),
  ]);
  healAll(o.cluster, history);
  const final = await o.system.finalState();
  const result = check(
    history.events,
    final,
    o.cluster.control.map((m) => m.name),
  );
  return { ...result, historyFile, faults, seed: o.seed };
}

export function summary(run: ChaosRun): string {
  const kinds: Record<string, number> = {};
  for (const v of run.violations) kinds[v.check] = (kinds[v.check] ?? 0) + 1;
  return [
    `seed ${run.seed}, faults ${run.faults.join(', ')}`,
    `operations ${JSON.stringify(run.counts)}`,
    `operations entirely inside a minority window, by outcome ${JSON.stringify(run.minorityOps)}`,
    `violations ${run.violations.length} ${JSON.stringify(kinds)}`,
    ...run.violations.slice(0, 10).map((v) => `  ${v.check}: ${v.detail}`),
    `history ${run.historyFile}`,
  ].join('\n');
}
