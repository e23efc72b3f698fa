import t from 'tap';
import { createBatcher } from '../../../../services/controlplane/service/batcher.ts';

t.test('calls that arrive during a batch go together in the next one', async (t) => {
  const batches: number[][] = [];
  const double = createBatcher<number, number>(async (items) => {
    batches.push(items);
    await new Promise((r) => setTimeout(r, 5));
    return items.map((n) => ({ ok: true, value: n * 2 }));
  }, 3);
  const results = await Promise.all([1, 2, 3, 4, 5, 6, 7].map((n) => double(n)));
  t.same(results, [2, 4, 6, 8, 10, 12, 14], 'each caller gets its own result');
  t.same(batches, [[1], [2, 3, 4], [5, 6, 7]], 'first alone, then full batches of at most 3');
});

t.test('an item error fails that item only; a batch error fails the batch', async (t) => {
  const run = createBatcher<number, number>(async (items) => {
    if (items.includes(99)) throw new Error('batch broke');
    return items.map((n) =>
      n % 2 ? { ok: true, value: n } : { ok: false, error: new Error(`even ${n}`) },
    );
  }, 10);
  const settled = await Promise.allSettled([run(1), run(2), run(3)]);
  t.same(
    settled.map((s) => s.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  await t.rejects(run(99), /batch broke/);
  t.equal(await run(5), 5, 'the batcher keeps working after a failed batch');
});
