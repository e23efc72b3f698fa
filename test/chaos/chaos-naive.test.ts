/**
 * The checker can fail: the same workload, nemesis, history and checker against a deliberately
 * naive allocator (naive-allocator.ts: each replica decides alone, gossips afterwards) on 3
 * machines in network namespaces. The checker must report violations: overlapping ranges and
 * PID blocks handed out by different replicas, and acknowledgements from the minority side.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startLocalCluster } from '../harness/netns.ts';
import { chaosRun, summary } from './run.ts';
import { naiveSystem } from './systems.ts';

const seconds = Number(process.env.CHAOS_NAIVE_SECONDS ?? 25);
const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);

// Machines in namespaces start slowly on a loaded 2-core runner: more than tap's 300 s default.
t.setTimeout(600_000);

t.test('a naive allocator without consensus is caught by the checker', async (t) => {
  const dir =
    process.env.CHAOS_DIR ?? mkdtempSync(join(tmpdir(), `amalgam-chaos-naive-${process.pid}-`));
  const cluster = await startLocalCluster(t, { control: 3, workers: 0, bare: true });
  const system = await naiveSystem(cluster);
  const run = await chaosRun({
    cluster,
    system,
    dir,
    seconds,
    faults: ['partition-minority', 'kill'],
    seed,
  });
  t.comment(summary(run));
  const kinds = new Set(run.violations.map((v) => v.check));
  t.ok(run.violations.length > 0, `the checker reports ${run.violations.length} violations`);
  t.ok(kinds.has('minority-ack'), 'the minority side acknowledged operations');
  t.ok(kinds.has('ranges-overlap'), 'replicas handed out overlapping ranges');
  t.ok(kinds.has('pid-twice'), "replicas' own PID counters handed out the same PIDs twice");
  if (!process.env.CHAOS_DIR) rmSync(dir, { recursive: true, force: true });
});
