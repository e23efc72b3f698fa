/**
 * What only a real, failing etcd cluster can show: quorum loss, replies lost
 * after commit, and leases whose renewals stop arriving.
 */
import t from 'tap';
import { type AmalgamError, isAmalgamError } from '../../services/core/errors.ts';
import { EtcdStore } from '../../services/store/etcd-store.ts';
import { put, type TxnRequest } from '../../services/store/store.ts';
import { startEtcdCluster } from '../harness/etcd-cluster.ts';
import { startReplyDroppingProxy } from '../harness/reply-dropping-proxy.ts';

t.test(
  '2 of 3 members stopped: writes fail with NO_QUORUM in bounded time, then recover',
  async (t) => {
    const cluster = await startEtcdCluster({ size: 3 });
    t.teardown(() => cluster.destroy());
    const operationTimeoutMs = 3000;
    const store = new EtcdStore({
      ...cluster.storeOptions(),
      attemptTimeoutMs: 1000,
      operationTimeoutMs,
    });
    t.teardown(() => store.close());
    await put(store, '/q/before', '1');

    await cluster.kill(1);
    await cluster.kill(2);
    const startedAt = Date.now();
    const createK = {
      compares: [{ key: '/q/k', target: 'version', op: '==', value: 0 }],
      onSuccess: [{ type: 'put', key: '/q/k', value: 'minority' }],
    } as const satisfies TxnRequest;
    let refused: AmalgamError | undefined;
    try {
      await store.txn(createK);
    } catch (err) {
      if (isAmalgamError(err)) refused = err;
      else throw err;
    }
    t.equal(refused?.code, 'NO_QUORUM', 'a write without quorum is refused with NO_QUORUM');
    t.equal(refused?.details.outcome, 'unknown', 'the refusal says the outcome is not known');
    t.match(refused?.details.requestId, /^[A-Za-z0-9_-]+$/, 'and carries the id that settles it');
    const elapsed = Date.now() - startedAt;
    // A bound, not a benchmark: the refusal must come, and must not hang.
    t.ok(
      elapsed < operationTimeoutMs + 5000,
      `refused after ${elapsed} ms (bound ${operationTimeoutMs} ms + slack)`,
    );
    await t.rejects(store.get('/q/before'), { code: 'NO_QUORUM' }, 'linearizable reads refuse too');

    await cluster.restart(1);
    await cluster.restart(2);
    // After the restart a write goes through, and the refused write never applied.
    let recovered = false;
    for (let i = 0; i < 20 && !recovered; i++) {
      try {
        await put(store, '/q/after', '1');
        recovered = true;
      } catch (err) {
        if ((err as { code?: string }).code !== 'NO_QUORUM') throw err;
      }
    }
    t.ok(recovered, 'writes are accepted again after the members return');
    // The refused write may have been in the surviving member's log and committed
    // on recovery. Resending it with its requestId settles it; a competing create
    // must then see exactly the opposite outcome: never two winners, never none.
    const settled = await store.txn({ ...createK, requestId: String(refused?.details.requestId) });
    const again = await store.txn({ ...createK, requestId: String(refused?.details.requestId) });
    t.same(again, settled, 'resending with the same requestId is idempotent');
    const rival = await store.txn({
      compares: [{ key: '/q/k', target: 'version', op: '==', value: 0 }],
      onSuccess: [{ type: 'put', key: '/q/k', value: 'majority' }],
    });
    t.equal(rival.succeeded, !settled.succeeded, 'exactly one create-if-absent won');
    t.equal((await store.get('/q/k'))?.value, settled.succeeded ? 'minority' : 'majority');
  },
);

t.test('a txn whose reply is lost after commit is reported as won, 200 of 200', async (t) => {
  const cluster = await startEtcdCluster({ size: 1 });
  t.teardown(() => cluster.destroy());
  const [endpoint] = cluster.endpoints();
  if (!endpoint) throw new Error('no endpoint');
  const proxy = await startReplyDroppingProxy(endpoint, {
    ...(cluster.tls ? { tls: cluster.tls } : {}),
  });
  t.teardown(() => proxy.close());
  const { credentials } = cluster.storeOptions();
  const store = new EtcdStore({
    endpoints: [proxy.url],
    ...(credentials ? { credentials } : {}),
    attemptTimeoutMs: 1000,
    operationTimeoutMs: 10000,
  });
  t.teardown(() => store.close());
  const direct = new EtcdStore(cluster.storeOptions());
  t.teardown(() => direct.close());

  const rounds = 200;
  let reportedWon = 0;
  let reportedLost = 0;
  for (let i = 0; i < rounds; i++) {
    const key = `/lost-reply/${i}`;
    // Even rounds: a create that must win. Odd rounds: a CAS that must lose
    // (the key exists), so the backend is also never told it won what it lost.
    if (i % 2 === 1) await put(direct, key, 'existing');
    proxy.armDropNextReply();
    const res = await store.txn({
      compares: [{ key, target: 'version', op: '==', value: 0 }],
      onSuccess: [{ type: 'put', key, value: `won-${i}` }],
      onFailure: [{ type: 'put', key: `${key}/lost`, value: 'yes' }],
    });
    const stored = await direct.get(key);
    if (i % 2 === 0) {
      if (res.succeeded && stored?.value === `won-${i}` && stored.modRevision === res.revision)
        reportedWon++;
      else t.fail(`round ${i}: won the write but was told ${JSON.stringify(res)}`);
    } else {
      const lostMark = await direct.get(`${key}/lost`);
      if (!res.succeeded && stored?.value === 'existing' && lostMark?.version === 1) reportedLost++;
      else t.fail(`round ${i}: lost the write but was told ${JSON.stringify(res)}`);
    }
  }
  t.equal(proxy.dropped(), rounds, 'every reply was dropped by the proxy');
  t.equal(reportedWon, rounds / 2, 'every committed win reported as won');
  t.equal(
    reportedLost,
    rounds / 2,
    'every lost compare reported as lost, its failure branch applied once',
  );
});

t.test('a lease is reported lost no later than its TTL when renewals stop', async (t) => {
  const cluster = await startEtcdCluster({ size: 1 });
  t.teardown(() => cluster.destroy());
  const store = new EtcdStore({
    ...cluster.storeOptions(),
    attemptTimeoutMs: 500,
    operationTimeoutMs: 1000,
  });
  t.teardown(() => store.close());
  const ttlSeconds = 2;
  const lease = await store.grantLease(ttlSeconds);
  // Let a few renewals succeed, then freeze the only member.
  await new Promise((r) => setTimeout(r, 1500));
  const frozenAt = Date.now();
  cluster.pause(0);
  t.teardown(() => cluster.resume(0));
  await lease.lost;
  const after = Date.now() - frozenAt;
  // The last acknowledged renewal was sent before the freeze, so loss is due within one TTL of it.
  // 300 ms of slack covers timer lateness on a loaded machine; the etcd3 default would take ~2 TTL.
  t.ok(
    after <= ttlSeconds * 1000 + 300,
    `lost reported ${after} ms after renewals stopped (TTL ${ttlSeconds * 1000} ms)`,
  );
});
