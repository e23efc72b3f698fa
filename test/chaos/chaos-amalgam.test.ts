/**
 * The chaos suite against amalgam: 3 control machines (etcd member + clusterd each) in network
 * namespaces; 6 clients, two per machine's API, join nodes, allocate segments (some names
 * and ids contended) and claim cluster-PID blocks while the nemesis partitions a minority,
 * isolates the etcd leader, kills, pauses past the lease and drops packets. Then everything is healed, the final state is read
 * after a fresh write, and the checker must find 0 violations.
 *
 * CHAOS_SECONDS (default 70) and CHAOS_SEED (default: from the clock, printed) change the run;
 * the history (JSONL) is kept in CHAOS_DIR when set, else in a temp dir removed on success.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startLocalCluster } from '../harness/netns.ts';
import { ALL_FAULTS } from './nemesis.ts';
import { chaosRun, summary } from './run.ts';
import { amalgamSystem } from './systems.ts';

const seconds = Number(process.env.CHAOS_SECONDS ?? 70);
const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);

// Machines in namespaces start slowly on a loaded 2-core runner: more than tap's 300 s default.
t.setTimeout(600_000);

t.test('amalgam under partitions, kills, pauses and loss: 0 violations', async (t) => {
  const dir = process.env.CHAOS_DIR ?? mkdtempSync(join(tmpdir(), `amalgam-chaos-${process.pid}-`));
  const cluster = await startLocalCluster(t, { control: 3, workers: 0, timeoutMs: 180_000 });
  const system = await amalgamSystem(cluster);
  t.teardown(() => system.close());
  const run = await chaosRun({ cluster, system, dir, seconds, faults: ALL_FAULTS, seed });
  t.comment(summary(run));
  t.same(run.violations, [], 'the checker finds no violation');
  t.ok((run.counts['join:ok'] ?? 0) > 0, 'joins were acknowledged');
  t.ok((run.counts['allocate:ok'] ?? 0) > 0, 'allocations were acknowledged');
  t.ok((run.counts['pid-block:ok'] ?? 0) > 0, 'PID-block claims were acknowledged');
  const minority = Object.values(run.minorityOps).reduce((a, b) => a + b, 0);
  t.ok(minority > 0, `operations were sent to a minority (${minority}), so that check had work`);
  if (!process.env.CHAOS_DIR && t.passing()) rmSync(dir, { recursive: true, force: true });
});
