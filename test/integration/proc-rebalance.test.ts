/**
 * Acceptance: 3 nodes (3 agent processes + 1 clusterd on loopback), 9
 * CPU-bound checkpointing processes all started on node A: the rebalancer
 * spreads them 3/3/3, each process's counter continues monotonically across
 * its moves (every resume starts from exactly its last checkpoint), no
 * process moves more than twice, and nothing moves once balanced.
 *
 * Each agent reports a configured 1 CPU and speed 1, so placement and
 * balancing are deterministic on a 2-core machine whatever else runs on it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { COUNTER_FIXTURE, overlaps, startProcCluster } from '../harness/proc-cluster.ts';
import { until } from '../harness/until.ts';

const cluster = await startProcCluster({
  nodes: [
    { name: 'ra', cpus: 1, cpuSpeed: 1 },
    { name: 'rb', cpus: 1, cpuSpeed: 1 },
    { name: 'rc', cpus: 1, cpuSpeed: 1 },
  ],
  processes: {
    rebalanceIntervalMs: 500,
    minAgeSeconds: 1,
    cooldownSeconds: 5,
    maxMovesPerRound: 4,
    threshold: 0.5,
  },
});
t.teardown(() => cluster.destroy());
const { admin } = cluster;
const counters = join(cluster.root, 'counters.log');

t.test('9 processes on one node end 3/3/3 with their counters intact', async (t) => {
  const cpids: number[] = [];
  for (let i = 0; i < 9; i++) {
    const p = await admin.create({
      command: process.execPath,
      args: [COUNTER_FIXTURE, '--log', counters, '--unit', '100000'],
      migratable: 'checkpoint',
      node: 'ra',
    });
    t.equal(p.home, 'ra', `process ${i} starts on ra`);
    cpids.push(p.cpid);
  }
  const spread = await until(
    'the processes to be spread 3/3/3 and running',
    async () => {
      const mine = (await admin.list()).filter((r) => cpids.includes(r.cpid));
      const per = new Map<string, number>();
      for (const r of mine) if (r.state === 'running') per.set(r.home, (per.get(r.home) ?? 0) + 1);
      return ['ra', 'rb', 'rc'].every((n) => per.get(n) === 3) ? mine : undefined;
    },
    180_000,
  );
  t.ok(
    spread.every((r) => r.migrations <= 2),
    'no process migrated more than twice',
  );
  t.equal(
    spread.reduce((n, r) => n + r.migrations, 0),
    6,
    'exactly the 6 moves needed were made',
  );

  // Balanced: hysteresis keeps it so.
  await new Promise((r) => setTimeout(r, 3000));
  const later = (await admin.list()).filter((r) => cpids.includes(r.cpid));
  t.same(
    later.map((r) => [r.cpid, r.home, r.migrations]),
    spread.map((r) => [r.cpid, r.home, r.migrations]),
    'nothing moves once balanced',
  );

  // The log is written by the processes themselves: wait until each has logged a start.
  const events = await until(
    'every process to have logged its start in counters.log',
    async () => {
      const all = (await readFile(counters, 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map(
          (l) => JSON.parse(l) as { cpid: number; epoch: number; event: string; counter: number },
        );
      const started = new Set(all.filter((e) => e.event === 'start').map((e) => e.cpid));
      return cpids.every((c) => started.has(c)) ? all : undefined;
    },
    60_000,
  );
  for (const cpid of cpids) {
    const mine = events.filter((e) => e.cpid === cpid);
    let last = -1;
    let checkpointed: number | null = null;
    let ok = true;
    for (const e of mine) {
      if (e.event === 'start') {
        // The first start is at 0; each later one resumes at the last checkpoint exactly.
        if (e.counter !== (checkpointed ?? 0)) ok = false;
      } else if (e.event === 'checkpoint') {
        if (e.counter < last) ok = false;
        checkpointed = e.counter;
      }
      if (e.counter < last) ok = false;
      last = e.counter;
    }
    t.ok(
      ok,
      `process ${cpid}: counter monotonic across ${mine.filter((e) => e.event === 'start').length} starts`,
    );
  }
  t.same(overlaps(await readFile(cluster.intervalLog, 'utf8')), [], 'no two copies overlapped');
});
