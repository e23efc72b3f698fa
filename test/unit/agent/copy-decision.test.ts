/**
 * The supervisor's decision table (services/agent/processes/copy-decision.ts):
 * one row per case of a process view, this node's copy, lease and slots.
 */
import t from 'tap';
import {
  type CopyState,
  decideCopyAction,
  exitReport,
  type Here,
} from '../../../services/agent/processes/copy-decision.ts';
import type { ProcessView } from '../../../services/api/contracts.ts';

const NOW = 1_000_000;
const here: Here = { node: 'a', leaseDeadline: NOW + 10_000, slotFree: true };

function view(over: Partial<ProcessView> = {}): ProcessView {
  return {
    cpid: 7,
    command: '/bin/true',
    args: [],
    migratable: 'checkpoint',
    cpus: 1,
    labels: {},
    home: 'a',
    epoch: 3,
    state: 'running',
    migration: null,
    migrations: 0,
    lastMovedAt: null,
    starts: 1,
    owner: 'admin',
    createdAt: 0,
    startedAt: 0,
    exitCode: null,
    failure: null,
    history: [],
    ...over,
  };
}

const migration = (over: Partial<NonNullable<ProcessView['migration']>> = {}) => ({
  from: 'a',
  to: 'b',
  reason: 'manual' as const,
  decidedAt: 0,
  sourceStopped: null,
  sourceLostAt: null,
  ...over,
});

const running = (epoch = 3): CopyState => ({ phase: 'running', epoch });
const kind = (v: ProcessView | undefined, c: CopyState | undefined, h = here) =>
  decideCopyAction(v, c, h, NOW);

t.test('no copy', async (t) => {
  t.match(kind(view({ state: 'pending' }), undefined), { kind: 'start' }, 'ours, pending: start');
  t.match(kind(view(), undefined), { kind: 'start' }, 'ours, running elsewhere in the view: start');
  t.match(kind(undefined, undefined), { kind: 'none' }, 'unknown process: nothing');
  t.match(kind(view({ state: 'exited' }), undefined), { kind: 'none' }, 'terminal: nothing');
  t.match(kind(view({ home: 'b' }), undefined), { kind: 'none' }, 'not ours: nothing');
  t.match(
    kind(view(), undefined, { ...here, leaseDeadline: NOW + 500 }),
    { kind: 'wait', why: 'no lease' },
    'no lease (within the margin): wait',
  );
  t.match(
    kind(view(), undefined, { ...here, slotFree: false }),
    { kind: 'none', why: 'no free slot' },
    'no slot: nothing (a freed slot kicks)',
  );
});

t.test('migration to us (restore)', async (t) => {
  const to = (sourceStopped: 'checkpointed' | 'stopped' | 'fenced' | null) =>
    view({
      home: 'a',
      epoch: 4,
      state: 'migrating',
      migration: migration({ from: 'b', to: 'a', sourceStopped }),
    });
  t.match(kind(to(null), undefined), { kind: 'ask-fence' }, 'source not confirmed: ask fence');
  t.match(kind(to('checkpointed'), undefined), { kind: 'start' }, 'checkpointed: start (restore)');
  t.match(kind(to('stopped'), undefined), { kind: 'start' }, 'stopped: start fresh');
  t.match(kind(to('fenced'), undefined), { kind: 'start' }, 'fenced: start');
  t.match(
    kind(to('checkpointed'), undefined, { ...here, leaseDeadline: 0 }),
    { kind: 'wait' },
    'no lease: wait even when the source stopped',
  );
  t.match(kind(view({ state: 'migrating', migration: null }), undefined), { kind: 'none' });
});

t.test('migration from us (checkpoint + ship)', async (t) => {
  const away = (migratable: 'checkpoint' | 'restart', sourceStopped: 'stopped' | null = null) =>
    view({
      home: 'b',
      epoch: 4,
      migratable,
      state: 'migrating',
      migration: migration({ sourceStopped }),
    });
  t.match(kind(away('checkpoint'), running()), { kind: 'end', how: 'checkpoint' }, 'checkpoint it');
  t.match(kind(away('restart'), running()), { kind: 'end', how: 'stop' }, 'restart: stop it');
  t.match(kind(away('checkpoint'), undefined), { kind: 'ship' }, 'copy gone: ship and confirm');
  t.match(kind(away('checkpoint', 'stopped'), undefined), { kind: 'none' }, 'confirmed: nothing');
  t.match(
    kind(away('checkpoint'), { phase: 'ending', epoch: 3 }),
    { kind: 'none' },
    'ending: wait for its exit',
  );
});

t.test('a running copy', async (t) => {
  t.match(kind(view(), running()), { kind: 'none', why: 'running' }, 'ours and running: keep');
  t.match(kind(view({ state: 'pending' }), running()), { kind: 'report-running' });
  t.match(kind(view({ state: 'killed' }), running()), { kind: 'end', how: 'kill' }, 'killed: kill');
  t.match(kind(undefined, running()), { kind: 'end', how: 'kill' }, 'unknown: kill');
  t.match(
    kind(view({ epoch: 5 }), running(3)),
    { kind: 'end', how: 'kill', why: 'stale epoch' },
    'stale epoch (ours again at a later epoch): kill (fence)',
  );
  t.match(
    kind(view({ home: 'b', epoch: 5 }), running(3)),
    { kind: 'end', how: 'kill', why: 'stale epoch' },
    'moved away, nobody waits for us: kill',
  );
});

t.test('a copy that ended by itself: report its exit for its epoch', async (t) => {
  const outcome = { code: 2, signal: null, fenced: false };
  t.match(kind(view(), { phase: 'exited', epoch: 3, outcome }), { kind: 'report-exit', outcome });
  t.same(exitReport(3, outcome), { epoch: 3, event: 'exited', exitCode: 2 });
  t.same(exitReport(3, { code: null, signal: 'SIGSEGV', fenced: false }), {
    epoch: 3,
    event: 'failed',
    failure: 'killed by SIGSEGV',
  });
  t.same(exitReport(3, { code: null, signal: null, fenced: false, error: 'ENOENT' }), {
    epoch: 3,
    event: 'failed',
    failure: 'ENOENT',
  });
});

t.test('the same inputs answer the same', async (t) => {
  t.same(kind(view(), running()), kind(view(), running()));
});
