/**
 * bench:proc — 30 CPU-bound jobs submitted to one node; completion time
 * (makespan) with the rebalancer on versus off, and versus the ideal (total
 * work / total speed), all measured in one run.
 *
 * The machine has 2 cores shared by everything here (clusterd, the agents,
 * the jobs, and other work). To be honest about capacity the cluster is 2
 * nodes with one job slot each (the agents' `slots: 1`, reporting 1 CPU of
 * speed 1): at most 2 jobs run at once, so total speed is 2. Off: the 30 jobs
 * run one after another on the node they were submitted to. On: the
 * rebalancer moves queued (and, later, running) jobs to the idle node.
 *
 * The ideal is given two ways: the formula (30 x one job's time alone / 2,
 * one job timed before the runs), and a measured peer: the same 30 jobs run
 * straight from a queue on 2 worker slots, no cluster and no moves. The peer,
 * off and on run at the same time, so they share one window of the machine's
 * load (runs one after another would compare the neighbours' load, not the
 * scheduling; the kernel gives each job process the same share).
 * `makespan_vs_ideal` is on / measured peer.
 *
 * BENCH_JOBS (default 30) and BENCH_JOB_MS (default 2000) change the batch.
 */
import { spawn } from 'node:child_process';
import { COUNTER_FIXTURE, startProcCluster } from '../harness/proc-cluster.ts';
import { until } from '../harness/until.ts';

const JOBS = Number(process.env.BENCH_JOBS ?? 30);
const JOB_MS = Number(process.env.BENCH_JOB_MS ?? 2000);
const UNIT = 200_000;

function runFixture(total: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(
      process.execPath,
      [COUNTER_FIXTURE, '--total', String(total), '--unit', String(UNIT)],
      {
        stdio: 'ignore',
      },
    );
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0
        ? resolve(Number(process.hrtime.bigint() - started) / 1e6)
        : reject(new Error(`fixture exited ${code}`)),
    );
  });
}

function cluster(rebalance: boolean) {
  return startProcCluster({
    nodes: [
      { name: 'ba', cpus: 1, cpuSpeed: 1, slots: 1 },
      { name: 'bb', cpus: 1, cpuSpeed: 1, slots: 1 },
    ],
    nodeGraceSeconds: 5,
    processes: rebalance
      ? {
          rebalanceIntervalMs: 300,
          minAgeSeconds: 0.5,
          cooldownSeconds: 2,
          maxMovesPerRound: 8,
          threshold: 0.5,
        }
      : { rebalance: false },
  });
}

async function makespan(
  cluster: Awaited<ReturnType<typeof startProcCluster>>,
  total: number,
): Promise<{ ms: number; moves: number }> {
  {
    const start = Date.now();
    const cpids: number[] = [];
    for (let i = 0; i < JOBS; i++) {
      const p = await cluster.admin.create({
        command: process.execPath,
        args: [COUNTER_FIXTURE, '--total', String(total), '--unit', String(UNIT)],
        migratable: 'checkpoint',
        node: 'ba',
      });
      cpids.push(p.cpid);
    }
    const done = await until(
      'every job to finish',
      async () => {
        const mine = (await cluster.admin.list()).filter((r) => cpids.includes(r.cpid));
        if (mine.some((r) => r.state === 'failed' || (r.state === 'exited' && r.exitCode !== 0))) {
          throw new Error('a job failed');
        }
        return mine.every((r) => r.state === 'exited') ? mine : undefined;
      },
      30 * 60_000,
    );
    const ms = Date.now() - start;
    return { ms, moves: done.reduce((n, r) => n + r.migrations, 0) };
  }
}

/** The peer: the same jobs run straight from a queue on 2 worker slots (no cluster, no moves). */
async function directTwoSlots(total: number): Promise<number> {
  const start = Date.now();
  let next = 0;
  await Promise.all(
    [0, 1].map(async () => {
      while (next < JOBS) {
        next++;
        await runFixture(total);
      }
    }),
  );
  return Date.now() - start;
}

// Calibrate: units of work for a job of about JOB_MS (two sizes, so Node's start-up is
// not counted as work), then one job's time alone: the work of one job.
const small = await runFixture(20);
const large = await runFixture(220);
const perUnit = Math.max((large - small) / 200, 0.01);
const total = Math.max(1, Math.round(JOB_MS / perUnit));
const jobMs = await runFixture(total);
const formulaIdeal = (JOBS * jobMs) / 2;

// The three runs share one window of time: on a machine shared with other work the load
// changes from minute to minute, and runs made one after another would compare the load,
// not the scheduling. Each job process gets the same share of the CPUs from the kernel.
// The clusters start one after another (start-up is not measured), then all three run.
const offCluster = await cluster(false);
const onCluster = await cluster(true).catch(async (err) => {
  await offCluster.destroy();
  throw err;
});
let peer: number;
let off: { ms: number; moves: number };
let on: { ms: number; moves: number };
try {
  [peer, off, on] = await Promise.all([
    directTwoSlots(total),
    makespan(offCluster, total),
    makespan(onCluster, total),
  ]);
} finally {
  await Promise.all([offCluster.destroy(), onCluster.destroy()]);
}

const row = (name: string, ms: number, extra: string) =>
  `${name.padEnd(30)}${(ms / 1000).toFixed(2).padStart(10)} s   ${extra}`;
process.stdout.write(
  [
    `bench:proc — ${JOBS} jobs of ${total} work units (${jobMs.toFixed(0)} ms each alone), submitted to node ba; 2 nodes x 1 slot`,
    `${'run (concurrently)'.padEnd(30)}${'makespan'.padStart(12)}   notes`,
    row('ideal, formula', formulaIdeal, `${JOBS} x ${jobMs.toFixed(0)} ms alone / 2 (speed 2)`),
    row('ideal, measured peer', peer, 'the same jobs from a queue on 2 slots, no cluster'),
    row('rebalancer off', off.ms, `${off.moves} moves`),
    row('rebalancer on', on.ms, `${on.moves} moves`),
    '',
  ].join('\n'),
);
const round = (x: number) => Math.round(x * 1000) / 1000;
process.stdout.write(
  `${JSON.stringify({
    bench: 'proc',
    results: {
      jobs: JOBS,
      job_ms: round(jobMs),
      ideal_formula_ms: round(formulaIdeal),
      ideal_measured_ms: peer,
      rebalance_off_ms: off.ms,
      rebalance_on_ms: on.ms,
      moves_on: on.moves,
      machine_cores: 2,
      nodes: 2,
      slots_per_node: 1,
    },
    ratios: {
      makespan_vs_ideal: round(on.ms / peer),
      makespan_vs_formula_ideal: round(on.ms / formulaIdeal),
      speedup_vs_no_rebalance: round(off.ms / on.ms),
    },
  })}\n`,
);
