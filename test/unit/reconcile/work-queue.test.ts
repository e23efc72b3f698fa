import t from 'tap';
import { backoffDelay, TerminalError, WorkQueue } from '../../../services/reconcile/index.ts';
import { FakeTimers, settle } from './fakes.ts';

/** A worker the test releases by hand, recording what ran and how many at once. */
function gatedWorker() {
  const runs: string[] = [];
  const gates = new Map<string, (() => void)[]>();
  let active = 0;
  let maxActive = 0;
  const activeByKey = new Map<string, number>();
  let maxPerKey = 0;
  return {
    runs,
    get maxActive() {
      return maxActive;
    },
    get maxPerKey() {
      return maxPerKey;
    },
    release(key: string) {
      gates.get(key)?.shift()?.();
    },
    async worker(key: string) {
      runs.push(key);
      active += 1;
      maxActive = Math.max(maxActive, active);
      activeByKey.set(key, (activeByKey.get(key) ?? 0) + 1);
      maxPerKey = Math.max(maxPerKey, activeByKey.get(key) ?? 0);
      await new Promise<void>((resolve) => {
        gates.set(key, [...(gates.get(key) ?? []), resolve]);
      });
      active -= 1;
      activeByKey.set(key, (activeByKey.get(key) ?? 1) - 1);
    },
  };
}

t.test('keys added before a worker takes them are processed once', async (t) => {
  const w = gatedWorker();
  const q = new WorkQueue({ name: 'test', worker: (k) => w.worker(k), timers: new FakeTimers() });
  q.add('busy'); // occupies the only worker
  for (let i = 0; i < 5; i++) q.add('a');
  q.add('b');
  q.add('a');
  t.equal(q.stats().depth, 2, 'a and b wait once each');
  w.release('busy');
  await settle();
  w.release('a');
  await settle();
  w.release('b');
  await q.idle();
  t.same(w.runs, ['busy', 'a', 'b']);
  t.equal(w.maxActive, 1, 'concurrency 1 by default');
});

t.test('a key added while it is processed runs once more, never twice at once', async (t) => {
  const w = gatedWorker();
  const q = new WorkQueue({
    name: 'test',
    worker: (k) => w.worker(k),
    concurrency: 4,
    timers: new FakeTimers(),
  });
  q.add('a');
  await settle();
  q.add('a');
  q.add('a');
  await settle();
  t.same(w.runs, ['a'], 'the second add waits for the first run');
  w.release('a');
  await settle();
  t.same(w.runs, ['a', 'a'], 'one more run for any number of adds during the first');
  w.release('a');
  await q.idle();
  t.equal(w.maxPerKey, 1, 'single flight per key');
});

t.test('failures back off exponentially per key and a success resets', async (t) => {
  const timers = new FakeTimers();
  let failuresLeft = 3;
  const runs: number[] = [];
  const q = new WorkQueue({
    name: 'test',
    baseDelayMs: 10,
    maxDelayMs: 1000,
    timers,
    worker: async () => {
      runs.push(timers.now);
      if (failuresLeft-- > 0) throw new Error('store unavailable');
    },
  });
  q.add('k');
  await settle();
  await timers.advance(10);
  await timers.advance(20);
  await timers.advance(40);
  t.same(runs, [0, 10, 30, 70], 'retried after 10, 20, 40 ms');
  t.equal(q.stats().retries, 3);
  t.equal(timers.size, 0, 'nothing pending after the success');
  t.equal(backoffDelay(20, 10, 1000), 1000, 'capped');
  t.equal(backoffDelay(0, 10, 1000), 0);
});

t.test('a terminal error is not retried', async (t) => {
  const timers = new FakeTimers();
  let runs = 0;
  const q = new WorkQueue({
    name: 'test',
    timers,
    worker: async () => {
      runs++;
      throw new TerminalError('bad input');
    },
  });
  q.add('k');
  await q.idle();
  await timers.advance(60_000);
  t.equal(runs, 1);
  t.equal(q.stats().terminal, 1);
  t.equal(timers.size, 0);
});

t.test('requeueAfterMs runs the key again later; an add meanwhile runs it now', async (t) => {
  const timers = new FakeTimers();
  const runs: number[] = [];
  const q = new WorkQueue({
    name: 'test',
    timers,
    worker: async () => {
      runs.push(timers.now);
      return { requeueAfterMs: 100 };
    },
  });
  q.add('k');
  await settle();
  await timers.advance(100);
  t.same(runs, [0, 100]);
  await timers.advance(30);
  q.add('k');
  await settle();
  t.same(runs, [0, 100, 130], 'an add does not wait for the scheduled run');
  await timers.advance(100);
  t.same(runs, [0, 100, 130, 230], 'and the schedule follows the last run');
  await q.close();
  await timers.advance(1000);
  t.same(runs.length, 4, 'nothing after close');
});

t.test('close waits for the work in flight and drops the rest', async (t) => {
  const w = gatedWorker();
  const q = new WorkQueue({ name: 'test', worker: (k) => w.worker(k), timers: new FakeTimers() });
  q.add('a');
  q.add('b');
  await settle();
  let closed = false;
  const closing = q.close().then(() => {
    closed = true;
  });
  await settle();
  t.notOk(closed, 'waits for a');
  w.release('a');
  await closing;
  q.add('c');
  await settle();
  t.same(w.runs, ['a'], 'b dropped, c refused');
});
