/**
 * Acceptance: a migrated process runs in exactly one place at any moment.
 *
 * 3 nodes (3 agent processes + 1 clusterd), 6 checkpointing CPU-bound
 * processes, and many migrations (PROC_MIGRATIONS, default 36 here so that
 * `npm test` stays within minutes; `npm run test:proc-exactly-once` runs the
 * issue's 200) made in rounds of up to 3, each round with a chaos event:
 * SIGKILL of the source or the target agent at a random moment of the
 * protocol (then a restart), or SIGSTOP of an agent for longer than its lease
 * plus the fence margin (then SIGCONT). Every copy's fence shim writes a
 * start line before the spawn and an end line after reaping it
 * (CLOCK_MONOTONIC, one host), so each interval covers the copy's whole life.
 *
 * Checked: 0 overlapping intervals for any cluster PID, and at the end every
 * process has exactly one live copy, on its home, or a recorded failure.
 */
import { readFile } from 'node:fs/promises';
import t from 'tap';
import {
  COUNTER_FIXTURE,
  intervalsOf,
  overlaps,
  startProcCluster,
} from '../harness/proc-cluster.ts';
import { until } from '../harness/until.ts';

const MIGRATIONS = Number(process.env.PROC_MIGRATIONS ?? 36);
const PROCS = 6;
const GRACE = 3;
const MARGIN = 1;
const seed = Number(process.env.PROC_SEED ?? Date.now() % 1_000_000);
let state = seed;
const random = () => {
  state = (state * 1103515245 + 12345) % 2 ** 31;
  return state / 2 ** 31;
};
const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const cluster = await startProcCluster({
  nodes: [
    { name: 'xa', cpus: 4 },
    { name: 'xb', cpus: 4 },
    { name: 'xc', cpus: 4 },
  ],
  nodeGraceSeconds: GRACE,
  leaseSeconds: GRACE,
  processes: { rebalance: false, fenceMarginSeconds: MARGIN },
});
t.teardown(() => cluster.destroy());
const { admin, names } = cluster;

t.test(`${MIGRATIONS} migrations under agent SIGKILL and SIGSTOP (seed ${seed})`, async (t) => {
  const cpids: number[] = [];
  for (let i = 0; i < PROCS; i++) {
    const p = await admin.create({
      command: process.execPath,
      args: [COUNTER_FIXTURE, '--unit', '50000'],
      migratable: i % 3 === 2 ? 'restart' : 'checkpoint',
    });
    cpids.push(p.cpid);
  }
  const settled = (what: string) =>
    until(
      what,
      async () => {
        const mine = (await admin.list()).filter((r) => cpids.includes(r.cpid));
        return mine.every(
          (r) => r.state === 'running' || r.state === 'failed' || r.state === 'exited',
        )
          ? mine
          : undefined;
      },
      120_000,
    );
  await settled('every process to run');

  let made = 0;
  const chaos: Record<string, number> = { none: 0, 'kill-source': 0, 'kill-target': 0, stop: 0 };
  let round = 0;
  while (made < MIGRATIONS) {
    round++;
    const running = (await admin.list()).filter(
      (r) => cpids.includes(r.cpid) && r.state === 'running',
    );
    const chosen = [...running].sort(() => random() - 0.5).slice(0, Math.min(3, MIGRATIONS - made));
    const decided: { cpid: number; from: string; to: string }[] = [];
    for (const r of chosen) {
      const to = pick(names.filter((n) => n !== r.home));
      try {
        await admin.migrate(r.cpid, to);
        decided.push({ cpid: r.cpid, from: r.home, to });
        made++;
      } catch (err) {
        t.comment(`round ${round}: migrate ${r.cpid} refused: ${(err as { code?: string }).code}`);
      }
    }
    const roll = random();
    const move = decided.length > 0 ? pick(decided) : undefined;
    if (move && roll < 0.3) {
      const victim = roll < 0.15 ? move.from : move.to;
      const kind = roll < 0.15 ? 'kill-source' : 'kill-target';
      chaos[kind] = (chaos[kind] ?? 0) + 1;
      await sleep(random() * 1500); // anywhere in the protocol: before, during or after the stop/ship
      const i = names.indexOf(victim);
      await cluster.kill(i, 'SIGKILL');
      await sleep(200 + random() * 1500);
      await cluster.restart(i);
    } else if (roll < 0.45) {
      chaos.stop = (chaos.stop ?? 0) + 1;
      const i = Math.floor(random() * names.length);
      await sleep(random() * 1000);
      cluster.signal(i, 'SIGSTOP');
      await sleep((GRACE + MARGIN + 1.5) * 1000); // past the lease and the fence margin
      cluster.signal(i, 'SIGCONT');
    } else chaos.none = (chaos.none ?? 0) + 1;
    await settled(`round ${round} to settle`);
    const found = overlaps(await readFile(cluster.intervalLog, 'utf8'));
    if (found.length > 0) {
      t.same(found, [], `round ${round}: overlapping copies`);
      return;
    }
  }
  t.comment(`seed ${seed}: ${made} migrations in ${round} rounds; chaos ${JSON.stringify(chaos)}`);
  t.ok(made >= MIGRATIONS, `${made} migrations committed`);

  // The end: every process has exactly one live copy, on its home, or a recorded failure.
  const final = await settled('the end state');
  await until(
    'the interval log to show one live copy per running process',
    async () => {
      const intervals = intervalsOf(await readFile(cluster.intervalLog, 'utf8'));
      return (
        final.every((r) => {
          const open = (intervals.get(r.cpid) ?? []).filter((c) => c.end === null);
          return r.state === 'running'
            ? open.length === 1 && open[0]?.node === r.home
            : open.length === 0;
        }) || undefined
      );
    },
    30_000,
  ).then(
    () => t.pass('exactly one live copy on its home per running process (or a recorded failure)'),
    (err: Error) => t.fail(err.message),
  );
  const text = await readFile(cluster.intervalLog, 'utf8');
  const copies = [...intervalsOf(text).values()].reduce((n, l) => n + l.length, 0);
  t.same(overlaps(text), [], `0 overlapping intervals among ${copies} copies`);
  const failed = final.filter((r) => r.state !== 'running');
  t.comment(
    `processes: ${final.length - failed.length} running, ${failed.length} recorded as ended/failed`,
  );
});
