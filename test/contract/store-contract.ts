/**
 * The Store contract, written once and run against every backend
 * (embedded.test.ts, etcd.test.ts). A behaviour difference is a bug.
 */
import type { Test } from 'tap';
import { isAmalgamError } from '../../services/core/errors.ts';
import { put, type Store, type WatchEvent } from '../../services/store/store.ts';

export interface StoreFactory {
  name: string;
  /** A store on shared state: every call returns a new client of the same cluster/data. */
  client(): Promise<Store>;
  /** Number of independent clients the concurrency test uses (20 for real backends). */
  concurrentClients: number;
}

async function take(watch: AsyncIterable<WatchEvent>, n: number): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  if (n === 0) return out;
  for await (const ev of watch) {
    out.push(ev);
    if (out.length === n) break;
  }
  return out;
}

export function storeContract(t: Test, factory: StoreFactory): void {
  let seq = 0;
  /** A fresh key prefix per test so tests on a shared cluster never see each other. */
  const ns = (label: string) => `/contract/${label}-${process.pid}-${++seq}-${Date.now()}/`;

  t.test(`${factory.name}: put, get, versions and revisions`, async (t) => {
    const store = await factory.client();
    t.teardown(() => store.close());
    const p = ns('basic');
    t.equal(await store.get(`${p}a`), undefined, 'missing key reads as undefined');
    const r1 = await put(store, `${p}a`, 'one');
    const r2 = await put(store, `${p}a`, 'two');
    t.equal(r2, r1 + 1, 'each write bumps the revision by one');
    const kv = await store.get(`${p}a`);
    t.match(kv, { key: `${p}a`, value: 'two', createRevision: r1, modRevision: r2, version: 2 });
    t.ok((await store.revision()) >= r2, 'store revision is at least the last write');

    const del = await store.txn({ compares: [], onSuccess: [{ type: 'delete', key: `${p}a` }] });
    t.equal(del.revision, r2 + 1, 'a delete is a write');
    t.equal(await store.get(`${p}a`), undefined);
    const r4 = await put(store, `${p}a`, 'again');
    t.match(
      await store.get(`${p}a`),
      { version: 1, createRevision: r4 },
      're-created key starts over',
    );
  });

  t.test(`${factory.name}: range with prefix, limit and paging`, async (t) => {
    const store = await factory.client();
    t.teardown(() => store.close());
    const p = ns('range');
    const ops = ['c', 'a', 'e', 'b', 'd'].map((k) => ({
      type: 'put' as const,
      key: `${p}${k}`,
      value: k,
    }));
    await store.txn({ compares: [], onSuccess: ops });
    await put(store, `${p.slice(0, -1)}x`, 'outside the prefix');
    const all = await store.range(p);
    t.same(
      all.kvs.map((kv) => kv.value),
      ['a', 'b', 'c', 'd', 'e'],
      'keys in order',
    );
    t.equal(all.more, false);
    t.equal(new Set(all.kvs.map((kv) => kv.modRevision)).size, 1, 'one txn, one revision');
    const page1 = await store.range(p, { limit: 2 });
    t.same(
      page1.kvs.map((kv) => kv.value),
      ['a', 'b'],
    );
    t.equal(page1.more, true);
    const page2 = await store.range(p, { limit: 2, after: page1.kvs[1]?.key });
    t.same(
      page2.kvs.map((kv) => kv.value),
      ['c', 'd'],
    );
    const page3 = await store.range(p, { limit: 2, after: page2.kvs[1]?.key });
    t.same(
      page3.kvs.map((kv) => kv.value),
      ['e'],
    );
    t.equal(page3.more, false);

    await store.txn({ compares: [], onSuccess: [{ type: 'delete', key: p, prefix: true }] });
    t.same((await store.range(p)).kvs, [], 'prefix delete removes every key under it');
    t.ok(await store.get(`${p.slice(0, -1)}x`), 'and nothing outside it');
  });

  t.test(`${factory.name}: txn compares on every target, both branches`, async (t) => {
    const store = await factory.client();
    t.teardown(() => store.close());
    const p = ns('txn');
    const k = `${p}k`;
    // A missing key has version 0 and matches no value compare.
    let res = await store.txn({
      compares: [{ key: k, target: 'value', op: '==', value: '' }],
      onSuccess: [{ type: 'put', key: `${p}wrong`, value: 'x' }],
      onFailure: [{ type: 'put', key: `${p}failed`, value: '1' }],
    });
    t.equal(res.succeeded, false, 'value compare on a missing key is false');
    t.equal((await store.get(`${p}failed`))?.value, '1', 'failure branch applied');
    t.equal(await store.get(`${p}wrong`), undefined, 'success branch not applied');

    res = await store.txn({
      compares: [{ key: k, target: 'version', op: '==', value: 0 }],
      onSuccess: [{ type: 'put', key: k, value: 'v1' }],
    });
    t.equal(res.succeeded, true, 'create-if-absent wins on a missing key');
    const created = await store.get(k);
    if (!created) throw new Error('key not created');

    const cases = [
      { target: 'value', op: '==', value: 'v1', want: true },
      { target: 'value', op: '!=', value: 'v1', want: false },
      { target: 'value', op: '>', value: 'v0', want: true },
      { target: 'value', op: '<', value: 'v0', want: false },
      { target: 'version', op: '==', value: 1, want: true },
      { target: 'version', op: '>', value: 1, want: false },
      { target: 'createRevision', op: '==', value: created.createRevision, want: true },
      { target: 'createRevision', op: '<', value: created.createRevision, want: false },
      { target: 'modRevision', op: '==', value: created.modRevision, want: true },
      { target: 'modRevision', op: '!=', value: created.modRevision, want: false },
    ] as const;
    for (const c of cases) {
      const before = await store.revision();
      const r = await store.txn({ compares: [{ key: k, ...c } as never], onSuccess: [] });
      t.equal(r.succeeded, c.want, `${c.target} ${c.op} ${c.value}`);
      t.equal(await store.revision(), before, 'a txn without writes does not bump the revision');
    }

    const stale = await store.txn({
      compares: [{ key: k, target: 'modRevision', op: '==', value: created.modRevision - 1 }],
      onSuccess: [{ type: 'put', key: k, value: 'lost' }],
    });
    t.equal(stale.succeeded, false, 'a stale CAS loses');
    t.equal((await store.get(k))?.value, 'v1', 'and writes nothing');
  });

  t.test(`${factory.name}: a txn resent with the same requestId applies once`, async (t) => {
    const store = await factory.client();
    t.teardown(() => store.close());
    const p = ns('reqid');
    const requestId = `req-${process.pid}-${seq}-${Date.now()}`;
    const create = {
      requestId,
      compares: [{ key: `${p}k`, target: 'version', op: '==', value: 0 }],
      onSuccess: [{ type: 'put', key: `${p}k`, value: 'first' }],
      onFailure: [{ type: 'put', key: `${p}failures`, value: 'x' }],
    } as const;
    const first = await store.txn(create);
    t.equal(first.succeeded, true);
    const again = await store.txn(create);
    t.same(again, first, 'the resend reports the first outcome, not a lost compare');
    t.equal((await store.get(`${p}k`))?.version, 1, 'applied once');
    t.equal(await store.get(`${p}failures`), undefined, 'the failure branch never ran');
    const fresh = await store.txn({ ...create, requestId: `${requestId}-2` });
    t.equal(fresh.succeeded, false, 'a new requestId is a new txn');
    t.equal((await store.get(`${p}failures`))?.value, 'x');
    await t.rejects(store.txn({ ...create, requestId: 'spaces are not ok' }), {
      code: 'INVALID_ARGUMENT',
    });
  });

  t.test(
    `${factory.name}: bad input is refused with INVALID_ARGUMENT and writes nothing`,
    async (t) => {
      const store = await factory.client();
      t.teardown(() => store.close());
      const p = ns('bad');
      const before = await store.revision();
      const bad = [
        { compares: [], onSuccess: [{ type: 'put', key: '', value: 'x' }] },
        { compares: [], onSuccess: [{ type: 'put', key: '\0internal', value: 'x' }] },
        {
          compares: [],
          onSuccess: [
            { type: 'put', key: `${p}dup`, value: '1' },
            { type: 'put', key: `${p}dup`, value: '2' },
          ],
        },
        {
          compares: [],
          onSuccess: [
            { type: 'put', key: `${p}ok`, value: 'x' },
            { type: 'frobnicate', key: `${p}y` },
          ],
        },
      ];
      for (const req of bad) {
        await t.rejects(store.txn(req as never), { code: 'INVALID_ARGUMENT' }, JSON.stringify(req));
      }
      await t.rejects(store.get(''), { code: 'INVALID_ARGUMENT' });
      await t.rejects(store.grantLease(0), { code: 'INVALID_ARGUMENT' });
      await t.rejects(store.grantLease(1.5), { code: 'INVALID_ARGUMENT' });
      t.equal(await store.revision(), before, 'nothing was written');
      t.same((await store.range(p)).kvs, [], 'no partial write');
    },
  );

  t.test(
    `${factory.name}: ${factory.concurrentClients} concurrent CAS clients, one winner per revision`,
    async (t) => {
      const clients = await Promise.all(
        Array.from({ length: factory.concurrentClients }, () => factory.client()),
      );
      t.teardown(() => Promise.all(clients.map((c) => c.close())));
      const key = `${ns('cas')}counter`;
      const first = clients[0];
      if (!first) throw new Error('no client');
      await put(first, key, '0');
      const wins: { client: number; readRevision: number; value: number; revision: number }[] = [];
      let losses = 0;
      const attemptsPerClient = 8;
      await Promise.all(
        clients.map(async (store, client) => {
          for (let i = 0; i < attemptsPerClient; i++) {
            const kv = await store.get(key);
            if (!kv) throw new Error('counter vanished');
            const next = Number(kv.value) + 1;
            const res = await store.txn({
              compares: [{ key, target: 'modRevision', op: '==', value: kv.modRevision }],
              onSuccess: [{ type: 'put', key, value: String(next) }],
            });
            if (res.succeeded) {
              wins.push({
                client,
                readRevision: kv.modRevision,
                value: next,
                revision: res.revision,
              });
            } else {
              losses++;
            }
          }
        }),
      );
      const total = factory.concurrentClients * attemptsPerClient;
      t.equal(wins.length + losses, total, 'every attempt has an outcome');
      t.ok(wins.length > 0, 'someone won');
      const byRead = new Map<number, number>();
      for (const w of wins) byRead.set(w.readRevision, (byRead.get(w.readRevision) ?? 0) + 1);
      t.equal(
        [...byRead.values()].filter((n) => n > 1).length,
        0,
        'no two winners read the same revision (exactly one winner per revision)',
      );
      wins.sort((a, b) => a.revision - b.revision);
      t.same(
        wins.map((w) => w.value),
        wins.map((_, i) => i + 1),
        'winners form one unbroken chain of increments',
      );
      for (let i = 1; i < wins.length; i++) {
        const w = wins[i];
        const prev = wins[i - 1];
        if (w && prev && w.readRevision !== prev.revision) {
          t.fail(`winner ${i} read revision ${w.readRevision}, expected ${prev.revision}`);
        }
      }
      const final = await first.get(key);
      t.equal(final?.value, String(wins.length), 'the stored counter equals the number of wins');
    },
  );

  t.test(`${factory.name}: lease expiry removes keys and emits watch deletes`, async (t) => {
    const store = await factory.client();
    t.teardown(() => store.close());
    const p = ns('lease');
    const lease = await store.grantLease(1, { keepAlive: false });
    t.match(lease.id, /^[0-9]+$/, 'lease ids are decimal strings');
    const from = (await store.revision()) + 1;
    await store.txn({
      compares: [],
      onSuccess: [
        { type: 'put', key: `${p}a`, value: '1', lease: lease.id },
        { type: 'put', key: `${p}b`, value: '2', lease: lease.id },
      ],
    });
    await put(store, `${p}keep`, 'no lease');
    t.equal((await store.get(`${p}a`))?.lease, lease.id, 'key carries its lease');
    const watch = store.watch(p, { fromRevision: from });
    const events = await take(watch, 5);
    await watch.close();
    t.same(
      events.map((e) => [e.type, e.kv.key]),
      [
        ['put', `${p}a`],
        ['put', `${p}b`],
        ['put', `${p}keep`],
        ['delete', `${p}a`],
        ['delete', `${p}b`],
      ],
      'puts then one delete per leased key',
    );
    t.equal(events[3]?.revision, events[4]?.revision, 'expiry deletes every key in one revision');
    t.equal(await store.get(`${p}a`), undefined);
    t.ok(await store.get(`${p}keep`), 'keys without the lease stay');
    const lost = await lease.lost;
    t.ok(lost instanceof Error, 'lease.lost resolves with the reason');
    await t.rejects(put(store, `${p}late`, 'x', lease.id), { code: 'LEASE_NOT_FOUND' });
    t.equal(await store.get(`${p}late`), undefined, 'a put on an expired lease writes nothing');
  });

  t.test(
    `${factory.name}: kept-alive lease outlives its TTL; revoke deletes its keys`,
    async (t) => {
      const store = await factory.client();
      t.teardown(() => store.close());
      const p = ns('keepalive');
      const lease = await store.grantLease(1);
      await put(store, `${p}a`, '1', lease.id);
      await new Promise((r) => setTimeout(r, 2500));
      t.equal((await store.get(`${p}a`))?.value, '1', 'still there after 2.5 TTLs');
      await lease.revoke();
      t.equal(await store.get(`${p}a`), undefined, 'revoke deletes the keys');
      t.ok((await lease.lost) instanceof Error, 'a revoked lease reports itself lost');
    },
  );

  t.test(
    `${factory.name}: watch resumes from a revision with no gap and no duplicate`,
    async (t) => {
      const store = await factory.client();
      t.teardown(() => store.close());
      const p = ns('watch');
      const start = (await store.revision()) + 1;
      const writer = (async () => {
        for (let i = 0; i < 200; i++) {
          if (i % 10 === 9) {
            await store.txn({ compares: [], onSuccess: [{ type: 'delete', key: `${p}${i - 1}` }] });
          } else {
            await put(store, `${p}${i}`, String(i));
          }
        }
      })();
      const seen: WatchEvent[] = [];
      let from = start;
      // Cut and resume the watch at uneven points while the writer runs.
      for (const chunk of [7, 31, 1, 50, 13, 98]) {
        const watch = store.watch(p, { fromRevision: from });
        const got = await take(watch, chunk);
        await watch.close();
        seen.push(...got);
        const last = got.at(-1);
        if (last) from = last.revision + 1;
      }
      await writer;
      const history = await take(store.watch(p, { fromRevision: start }), 200);
      t.equal(seen.length, 200, 'every change seen');
      t.same(
        seen.map((e) => [e.type, e.kv.key, e.revision]),
        history.map((e) => [e.type, e.kv.key, e.revision]),
        'same events, same order, as one uncut watch',
      );
      const revisions = seen.map((e) => e.revision);
      t.ok(
        revisions.every((r, i) => i === 0 || r > (revisions[i - 1] ?? 0)),
        'strictly increasing revisions: no duplicate',
      );
    },
  );

  t.test(
    `${factory.name}: watch from a compacted revision fails with WATCH_COMPACTED`,
    async (t) => {
      const store = await factory.client();
      t.teardown(() => store.close());
      const p = ns('compact');
      const old = await put(store, `${p}a`, '1');
      await put(store, `${p}a`, '2');
      const now = await put(store, `${p}a`, '3');
      await store.compact(now);
      const watch = store.watch(p, { fromRevision: old });
      let caught: unknown;
      try {
        await take(watch, 1);
      } catch (err) {
        caught = err;
      }
      await watch.close();
      t.ok(isAmalgamError(caught, 'WATCH_COMPACTED'), `got ${String(caught)}`);
      // Watching from the current revision still works after a compaction.
      const live = store.watch(p, { fromRevision: now });
      const [ev] = await take(live, 1);
      await live.close();
      t.equal(ev?.kv.value, '3', 'watch from the compaction point itself sees its event');
    },
  );
}
