import t from 'tap';
import {
  confirmSourceStopped,
  decideMigration,
  fenceSource,
  killProcess,
  newProcessRecord,
  type ProcessRecord,
  reportEnded,
  reportRunning,
} from '../../../services/core/processes.ts';

const make = (migratable: 'checkpoint' | 'restart' | 'never' = 'checkpoint'): ProcessRecord =>
  newProcessRecord(
    { command: '/bin/x', args: [], migratable, cpus: 1, labels: {} },
    100_000,
    'a',
    'admin',
    0,
  );

t.test('a migration: decide, confirm, run; the epoch fences every step', async (t) => {
  let r = reportRunning(make(), 'a', 1, 1);
  t.equal(r.state, 'running');
  t.equal(r.starts, 1);
  r = decideMigration(r, 'b', 'manual', 2);
  t.match(r, { home: 'b', epoch: 2, state: 'migrating', migrations: 1 });
  t.match(r.migration, { from: 'a', to: 'b', sourceStopped: null });
  t.throws(
    () => reportRunning(r, 'b', 2, 3),
    { code: 'PROCESS_STATE_CONFLICT' },
    'the target waits for the source',
  );
  t.throws(() => reportRunning(r, 'a', 1, 3), { code: 'STALE_EPOCH' }, 'the old copy is stale');
  t.throws(
    () => confirmSourceStopped(r, 'b', 2, 'stopped', 3),
    { code: 'PROCESS_STATE_CONFLICT' },
    'only the source confirms',
  );
  t.throws(() => confirmSourceStopped(r, 'a', 1, 'stopped', 3), { code: 'STALE_EPOCH' });
  t.throws(
    () => decideMigration(r, 'c', 'manual', 3),
    { code: 'PROCESS_STATE_CONFLICT' },
    'one move at a time',
  );
  r = confirmSourceStopped(r, 'a', 2, 'checkpointed', 4);
  t.equal(r.migration?.sourceStopped, 'checkpointed');
  t.equal(confirmSourceStopped(r, 'a', 2, 'checkpointed', 5), r, 'idempotent');
  t.throws(() => reportRunning(r, 'a', 2, 5), { code: 'PROCESS_STATE_CONFLICT' }, 'not the home');
  r = reportRunning(r, 'b', 2, 6);
  t.match(r, { state: 'running', home: 'b', epoch: 2, migration: null, starts: 2 });
});

t.test(
  'fencing a silent source takes two looks a margin apart; a live source resets it',
  async (t) => {
    let r = decideMigration(reportRunning(make(), 'a', 1, 0), 'b', 'rebalance', 1);
    t.throws(
      () => fenceSource(r, 'c', 2, false, 1000, 2),
      { code: 'PROCESS_STATE_CONFLICT' },
      'only the target asks',
    );
    r = fenceSource(r, 'b', 2, false, 1000, 10);
    t.equal(r.migration?.sourceLostAt, 10);
    t.equal(r.migration?.sourceStopped, null);
    t.equal(
      fenceSource(r, 'b', 2, false, 1000, 500).migration?.sourceStopped,
      null,
      'not before the margin',
    );
    const back = fenceSource(r, 'b', 2, true, 1000, 2000);
    t.equal(back.migration?.sourceLostAt, null, 'a source that beats again resets the clock');
    r = fenceSource(r, 'b', 2, false, 1000, 1010);
    t.equal(r.migration?.sourceStopped, 'fenced');
    t.equal(reportRunning(r, 'b', 2, 1020).state, 'running');
  },
);

t.test('never-migratable, ended and killed processes', async (t) => {
  t.throws(() => decideMigration(make('never'), 'b', 'manual', 1), {
    code: 'PROCESS_NOT_MIGRATABLE',
  });
  t.throws(() => decideMigration(make(), 'a', 'manual', 1), { code: 'PROCESS_STATE_CONFLICT' });
  const ended = reportEnded(reportRunning(make(), 'a', 1, 0), 'a', 1, { exitCode: 3 }, 1);
  t.match(ended, { state: 'exited', exitCode: 3 });
  t.throws(() => decideMigration(ended, 'b', 'manual', 2), { code: 'PROCESS_STATE_CONFLICT' });
  t.equal(reportEnded(ended, 'a', 1, { failure: 'x' }, 3), ended, 'the first end stays');
  const failed = reportEnded(make(), 'a', 1, { failure: 'spawn ENOENT' }, 1);
  t.match(failed, { state: 'failed', failure: 'spawn ENOENT' });
  const killed = killProcess(decideMigration(make(), 'b', 'manual', 1), 2);
  t.match(killed, { state: 'killed', migration: null });
  t.equal(killProcess(killed, 3), killed);
  t.throws(() => reportRunning(killed, 'b', 2, 4), { code: 'PROCESS_STATE_CONFLICT' });
  let r = make();
  for (let i = 0; i < 40; i++) r = reportRunning(r, 'a', 1, i);
  t.equal(r.history.length, 16, 'history is bounded');
});
