/**
 * The watch service's bounds on the embedded store: open watches per caller
 * and in total (TOO_MANY_WATCHES), and each watch's bounded queue (a client
 * that does not read is cut with WATCH_SLOW_CONSUMER; one that keeps up never is).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import t, { type Test } from 'tap';
import type { Caller } from '../../../../services/controlplane/service/contracts.ts';
import { keys } from '../../../../services/controlplane/service/keys.ts';
import {
  ResourceWatchService,
  type WatchLimits,
} from '../../../../services/controlplane/service/watch-service.ts';
import { openEmbeddedStore } from '../../../../services/store/embedded-store.ts';
import type { Store } from '../../../../services/store/store.ts';

const node = (name: string): Caller => ({ kind: 'node', name });
const views = [{ root: 'nodes/', view: (_key: string, raw: string) => raw }];

async function setup(t: Test, limits: Partial<WatchLimits>) {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-watch-limits-'));
  const store = await openEmbeddedStore({ dataDir: dir });
  const registry = new Registry();
  const service = new ResourceWatchService(store, { views, limits, registry });
  t.teardown(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { store, service, registry };
}

const put = (store: Store, name: string, value: string) =>
  store.txn({
    compares: [],
    onSuccess: [{ type: 'put', key: `${keys.root}nodes/${name}`, value }],
  });

async function metric(registry: Registry, name: string): Promise<number> {
  const values = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return values.reduce((sum, v) => sum + v.value, 0);
}

t.test('a caller gets at most watchesPerCaller watches; others are not affected', async (t) => {
  const { service, registry } = await setup(t, { watchesPerCaller: 3, watchesTotal: 5 });
  const mine = [1, 2, 3].map(() => service.open(node('a'), { prefix: 'nodes/' }));
  t.throws(() => service.open(node('a'), { prefix: 'nodes/' }), {
    code: 'TOO_MANY_WATCHES',
    details: { scope: 'caller', limit: 3 },
  });
  const other = service.open(node('b'), { prefix: 'nodes/' });
  t.equal(await metric(registry, 'amalgam_watches_open'), 4);
  await mine[0]?.close();
  await mine[0]?.close(); // twice counts once
  t.equal(service.openCount(node('a')), 2);
  const again = service.open(node('a'), { prefix: 'nodes/' });
  const another = service.open(node('c'), { prefix: 'nodes/' });
  t.throws(() => service.open(node('d'), { prefix: 'nodes/' }), {
    code: 'TOO_MANY_WATCHES',
    details: { scope: 'total', limit: 5 },
  });
  t.equal(await metric(registry, 'amalgam_watches_refused_total'), 2);
  for (const w of [...mine, other, again, another]) await w?.close();
  t.equal(service.openCount(), 0);
  t.equal(await metric(registry, 'amalgam_watches_open'), 0);
});

t.test('a watch whose client does not read is cut with WATCH_SLOW_CONSUMER', async (t) => {
  const { store, service, registry } = await setup(t, { watchQueueEvents: 16 });
  const watch = service.open(node('a'), { prefix: 'nodes/' });
  for (let i = 0; i < 40; i++) await put(store, `n${i}`, `v${i}`);
  const iterator = watch[Symbol.asyncIterator]();
  await t.rejects(iterator.next(), { code: 'WATCH_SLOW_CONSUMER' });
  t.equal(await metric(registry, 'amalgam_watches_cut_total'), 1);
  t.equal(service.openCount(node('a')), 0, 'a cut watch no longer counts');
  await watch.close();
  t.equal(service.openCount(), 0);
});

t.test('a client that keeps up is never cut, however many events pass', async (t) => {
  const { store, service } = await setup(t, { watchQueueEvents: 16 });
  const watch = service.open(node('a'), { prefix: 'nodes/' });
  const iterator = watch[Symbol.asyncIterator]();
  for (let i = 0; i < 100; i++) {
    await put(store, `n${i % 5}`, `v${i}`);
    const next = await iterator.next();
    t.equal(next.value?.value, `v${i}`);
  }
  await watch.close();
});
