/**
 * The rebalancer acts only through the process service (snapshot, then
 * commitRebalanceMove with the epoch it planned from), runs on the reconcile
 * work queue (periodic key, retried after a failed pass), and stops cleanly.
 */
import { pino } from 'pino';
import t from 'tap';
import { startRebalancer } from '../../../../services/controlplane/controllers/rebalancer.ts';
import type { ProcessServiceInternal } from '../../../../services/controlplane/features/processes/process-service.ts';
import { newProcessRecord, type ProcessRecord } from '../../../../services/core/processes.ts';

const logger = pino({ level: 'silent' });
const spec = { command: 'x', args: [], migratable: 'checkpoint' as const, cpus: 1, labels: {} };
const node = (name: string) => ({
  name,
  cpus: 2,
  speed: 1,
  labels: {},
  roles: [],
  ready: true,
  demand: 0,
});

function fakeService(failFirst: number) {
  const records = [1, 2, 3, 4].map((i) => ({
    ...newProcessRecord(spec, 100_000 + i, 'a', 'o', 0),
    epoch: 3,
  }));
  const commits: { cpid: number; from: string; to: string; epoch: number }[] = [];
  let snapshots = 0;
  const service: Pick<ProcessServiceInternal, 'snapshot' | 'commitRebalanceMove'> = {
    async snapshot() {
      snapshots++;
      if (snapshots <= failFirst) throw new Error('no quorum');
      return { nodes: [node('a'), node('b')], records, loads: [] };
    },
    async commitRebalanceMove(move, epoch) {
      commits.push({ cpid: move.cpid, from: move.from, to: move.to, epoch });
      const r = records.find((x) => x.cpid === move.cpid) as ProcessRecord;
      return { ...r, state: 'migrating', home: move.to, epoch: epoch + 1 };
    },
  };
  return { service, commits, snapshots: () => snapshots };
}

t.test('a pass plans from one snapshot and commits through the service', async (t) => {
  const fake = fakeService(0);
  const controller = startRebalancer({
    processes: fake.service,
    now: () => 1_000_000,
    logger,
    intervalMs: 3_600_000,
    policy: { maxMovesPerRound: 1 },
  });
  t.teardown(() => controller.stop());
  t.equal(await controller.reconcile(), 1);
  t.match(fake.commits, [{ from: 'a', to: 'b', epoch: 3 }], 'the epoch of the snapshot');
  t.equal(fake.snapshots(), 1);
});

t.test('the periodic key runs again after its interval, and after a failed pass', async (t) => {
  const fake = fakeService(1);
  const controller = startRebalancer({
    processes: fake.service,
    now: () => 1_000_000,
    logger,
    intervalMs: 20,
  });
  const deadline = Date.now() + 60_000;
  while (fake.snapshots() < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await controller.stop();
  t.ok(fake.snapshots() >= 3, 'passes go on after the first one failed');
  t.ok(fake.commits.length > 0);
  const after = fake.snapshots();
  await new Promise((r) => setTimeout(r, 100));
  t.equal(fake.snapshots(), after, 'no pass after stop');
});
