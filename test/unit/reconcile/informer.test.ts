import t from 'tap';
import { Informer } from '../../../services/reconcile/index.ts';
import { FakeSource, FakeTimers, settle } from './fakes.ts';

type Change = [string, number | null];

function start(source: FakeSource<number>, options: { resyncMs?: number } = {}) {
  const timers = new FakeTimers();
  const changes: Change[] = [];
  const informer = new Informer<number>({
    name: 'test',
    source,
    timers,
    baseDelayMs: 10,
    onChange: (key, value) => changes.push([key, value]),
    ...options,
  }).start();
  return { informer, changes, timers };
}

const compacted = Object.assign(new Error('compacted'), { code: 'WATCH_COMPACTED' });

t.test('lists, then watches from the revision after the list', async (t) => {
  const source = new FakeSource<number>();
  source.put('a', 1);
  source.put('b', 2);
  const { informer, changes } = start(source);
  await informer.waitForSync();
  await settle();
  t.same(source.calls, ['list', 'watch']);
  t.equal(source.current.fromRevision, source.revision + 1);
  t.same(changes, [
    ['a', 1],
    ['b', 2],
  ]);
  source.current.push(source.put('a', 10));
  source.current.push(source.del('b'));
  source.current.push({ type: 'put', key: 'a', value: 10, revision: source.revision });
  await settle();
  t.same(
    changes.slice(2),
    [
      ['a', 10],
      ['b', null],
    ],
    'an unchanged value is not delivered twice',
  );
  t.same(informer.entries(), [['a', 10]]);
  await informer.close();
  t.ok(source.current.closed);
});

t.test('a cut watch resumes from the last revision, without a re-list', async (t) => {
  const source = new FakeSource<number>();
  source.put('a', 1);
  const { informer, changes, timers } = start(source);
  await informer.waitForSync();
  await settle();
  source.current.push(source.put('a', 2));
  await settle();
  const last = source.revision;
  source.current.fail(new Error('connection reset'));
  await settle();
  await timers.advance(10);
  t.same(source.calls, ['list', 'watch', 'watch'], 'no second list');
  t.equal(source.current.fromRevision, last, 'resumes at the last revision seen');
  source.current.push({ type: 'put', key: 'a', value: 2, revision: last });
  source.current.push(source.put('a', 3));
  await settle();
  t.same(
    changes,
    [
      ['a', 1],
      ['a', 2],
      ['a', 3],
    ],
    'the re-delivered event changes nothing; the next one does',
  );
  t.equal(informer.stats().failures, 1);
  await informer.close();
});

t.test('consecutive failures back off; progress resets the back-off', async (t) => {
  const source = new FakeSource<number>();
  const { informer, timers } = start(source);
  await informer.waitForSync();
  await settle();
  source.put('x', 1);
  for (let i = 0; i < 3; i++) {
    source.current.fail(new Error('down'));
    await settle();
    await timers.advance(10 * 2 ** i);
  }
  t.same(timers.delays.slice(-3), [10, 20, 40]);
  source.current.push(source.put('x', 2));
  await settle();
  source.current.fail(new Error('down'));
  await settle();
  t.equal(timers.delays.at(-1), 10, 'an event resets the back-off');
  await informer.close();
});

t.test('WATCH_COMPACTED re-lists and replaces the cache', async (t) => {
  const source = new FakeSource<number>();
  source.put('a', 1);
  source.put('b', 2);
  const { informer, changes, timers } = start(source);
  await informer.waitForSync();
  await settle();
  // While the watch was away, b was deleted and c created; the history is gone.
  source.del('b');
  source.put('c', 3);
  source.current.fail(compacted);
  await settle();
  await timers.advance(10);
  t.same(source.calls, ['list', 'watch', 'list', 'watch']);
  t.equal(source.current.fromRevision, source.revision + 1);
  t.same(changes.slice(2).sort(), [
    ['b', null],
    ['c', 3],
  ]);
  t.same(informer.entries().sort(), [
    ['a', 1],
    ['c', 3],
  ]);
  t.equal(informer.stats().compactions, 1);
  await informer.close();
});

t.test(
  'WATCH_SLOW_CONSUMER (the server cut a slow watch) re-lists, then watches from the list',
  async (t) => {
    const source = new FakeSource<number>();
    source.put('a', 1);
    const { informer, changes, timers } = start(source);
    await informer.waitForSync();
    await settle();
    // The server dropped this watch's backlog: a changed, d created, none of it delivered.
    source.put('a', 2);
    source.put('d', 4);
    source.current.fail(Object.assign(new Error('slow'), { code: 'WATCH_SLOW_CONSUMER' }));
    await settle();
    await timers.advance(10);
    t.same(source.calls, ['list', 'watch', 'list', 'watch'], 're-listed, not resumed');
    t.equal(source.current.fromRevision, source.revision + 1, 'watches from the list revision');
    t.same(changes.slice(1).sort(), [
      ['a', 2],
      ['d', 4],
    ]);
    t.equal(informer.stats().slowConsumerCuts, 1);
    t.equal(informer.stats().compactions, 1);
    await informer.close();
  },
);

t.test('resync redelivers every key and corrects a missed change', async (t) => {
  const source = new FakeSource<number>();
  source.put('a', 1);
  source.put('b', 2);
  const { informer, changes, timers } = start(source, { resyncMs: 1000 });
  await informer.waitForSync();
  await settle();
  source.put('b', 20); // a change the watch never delivers
  await timers.advance(1000);
  t.same(changes.slice(2), [
    ['a', 1],
    ['b', 20],
  ]);
  await informer.close();
});

t.test('without list revisions the watch opens before the list', async (t) => {
  const source = new FakeSource<number>(false);
  source.put('a', 1);
  const { informer } = start(source);
  await informer.waitForSync();
  t.same(source.calls.slice(0, 2), ['watch', 'list']);
  t.equal(source.current.fromRevision, undefined);
  await informer.close();
});

t.test('a failing list is retried with back-off', async (t) => {
  const source = new FakeSource<number>();
  source.listFailure = new Error('no quorum');
  const { informer, timers } = start(source);
  await settle();
  t.notOk(informer.hasSynced);
  source.listFailure = null;
  await timers.advance(10);
  await informer.waitForSync();
  t.ok(informer.hasSynced);
  t.same(source.calls, ['list', 'list', 'watch']);
  await informer.close();
});
