import t from 'tap';
import {
  type Actual,
  backoffMs,
  decide,
  pageServerFailed,
} from '../../../services/agent/page-server-decision.ts';

const R = { start: 2 * 1024 * 1024, size: 64 * 1024 * 1024 };
const stopped: Actual = { state: 'stopped', failures: 0, retryAt: 0 };

t.test('serves no byte before the range is committed', async (t) => {
  t.same(decide(null, stopped, 1000), { kind: 'none' });
  t.same(decide({ start: 0, size: 0 }, stopped, 1000), { kind: 'none' });
  t.same(decide(null, { state: 'running', range: R, healthy: true }, 1000), {
    kind: 'stop',
    reason: 'no-range',
  });
  t.same(decide({ start: R.start, size: 0 }, { state: 'running', range: R, healthy: true }, 0), {
    kind: 'stop',
    reason: 'no-range',
  });
});

t.test('starts on the committed range, at once or after the back-off', async (t) => {
  t.same(decide(R, stopped, 1000), { kind: 'start', range: R });
  const backingOff: Actual = { state: 'stopped', failures: 2, retryAt: 1500 };
  t.same(decide(R, backingOff, 1000), { kind: 'wait', ms: 500 });
  t.same(decide(R, backingOff, 1500), { kind: 'start', range: R });
});

t.test('running: nothing while it matches; restart on a new range or when unhealthy', async (t) => {
  t.same(decide(R, { state: 'running', range: R, healthy: true }, 0), { kind: 'none' });
  t.same(decide({ ...R, start: 0 }, { state: 'running', range: R, healthy: true }, 0), {
    kind: 'stop',
    reason: 'range-changed',
  });
  t.same(decide(R, { state: 'running', range: R, healthy: false }, 0), {
    kind: 'stop',
    reason: 'unhealthy',
  });
});

t.test('transitions in progress are left alone; decisions are idempotent', async (t) => {
  t.same(decide(R, { state: 'starting', range: R }, 0), { kind: 'none' });
  t.same(decide(null, { state: 'stopping' }, 0), { kind: 'none' });
  const a = decide(R, stopped, 7);
  t.same(decide(R, stopped, 7), a);
});

t.test('back-off doubles and is capped', async (t) => {
  t.equal(backoffMs(0), 0);
  t.equal(backoffMs(1), 200);
  t.equal(backoffMs(2), 400);
  t.equal(backoffMs(5), 3200);
  t.equal(backoffMs(100), 30_000);
});

t.test(
  'the page server counts as failed only after `limit` failed attempts in a row',
  async (t) => {
    const after = (failures: number): Actual => ({ state: 'stopped', failures, retryAt: 0 });
    t.notOk(pageServerFailed(R, after(1), 3), 'a crash whose restart is pending');
    t.notOk(pageServerFailed(R, after(2), 3));
    t.ok(pageServerFailed(R, after(3), 3), 'the third failure in a row');
    t.ok(pageServerFailed(R, after(7), 3));
    t.notOk(pageServerFailed(R, { state: 'running', range: R, healthy: true }, 3), 'restarted');
    t.notOk(pageServerFailed(R, { state: 'starting', range: R }, 3), 'a start in progress');
    t.notOk(pageServerFailed(null, after(9), 3), 'no range: no page server is owed');
    t.notOk(pageServerFailed({ start: 0, size: 0 }, after(9), 3));
  },
);
